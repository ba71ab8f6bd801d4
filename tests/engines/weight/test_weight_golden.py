"""Jubako's weight engine names and weighs features exactly as Jubatus's core does.

Four converter configs (idf text rules; every filter, splitter, sample and global weight
including bm25 and idf1; combination features; feature hashing) over the same 120 rows:
``update`` counts the first 80 as documents, ``calc_weight`` weighs the other 40.
"""

from __future__ import annotations

from typing import Any

import pytest

from engines.weight.model import WeightModel
from tests.oracle.goldens import close, datum, golden

GOLDEN = golden("weight")


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=["idf", "filters", "combinations", "hash"])
def test_features_agree_with_the_core(case: dict[str, Any]) -> None:
    rows = GOLDEN["rows"]
    model = WeightModel({"converter": case["converter"]})
    got = [model.update(datum(row)) for row in rows[:80]]
    got += [model.calc_weight(datum(row)) for row in rows[80:]]
    expected = case["updates"] + case["calc_weight"]
    for i, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        assert [name for name, _ in mine] == [name for name, _ in theirs], f"row {i}"
        assert all(close(a, b, 1e-12) for (_, a), (_, b) in zip(mine, theirs, strict=True)), (
            f"row {i}: {mine} != {theirs}"
        )
