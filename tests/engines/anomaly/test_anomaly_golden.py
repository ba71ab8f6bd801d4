"""Jubako's anomaly scores are Jubatus's core's: ``lof`` over ``inverted_index_euclid``,
``inverted_index`` (with ``ignore_kth_same_point``) and ``euclid_lsh`` (probing included),
``light_lof`` over ``euclid_lsh`` and ``lsh`` (with an ``lru`` unlearner), on scikit-learn's
``wine`` and a seeded text set: the same ids for ``add`` and ``add_bulk``, the same scores
for ``add``, ``update``, ``overwrite`` and ``calc_score`` (to 1e-9: Jubatus sums the
neighbours' densities in its hash table's order), the same rows after ``clear_row``.
"""

from __future__ import annotations

from typing import Any

import pytest

from engines.anomaly.model import AnomalyModel
from tests.oracle.goldens import close, datum, golden

GOLDEN = golden("anomaly")


def _case_id(case: dict[str, Any]) -> str:
    config = case["config"]
    return f"{config['method']}-{config['parameter']['method']}-{case['data']}"


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[_case_id(c) for c in GOLDEN["cases"]])
def test_scores_agree_with_the_core(case: dict[str, Any]) -> None:
    rows = GOLDEN["datasets"][case["data"]]
    model = AnomalyModel(case["config"])
    method = case["config"]["method"]
    adds = [model.add(datum(row)) for row in rows[:100]]
    assert [key for key, _ in adds] == [key for key, _ in case["add"]]
    assert all(close(a, b, 1e-9) for (_, a), (_, b) in zip(adds, case["add"], strict=True))
    assert model.add_bulk([datum(row) for row in rows[100:120]]) == case["add_bulk"]
    for i, (row, (kind, key, score)) in enumerate(zip(rows[120:130], case["changes"], strict=True)):
        assert key == str(i * 7)
        got = (
            model.update(key, datum(row)) if kind == "update" else model.overwrite(key, datum(row))
        )
        assert close(got, score, 1e-9), (kind, key, got, score)
    if method == "lof":
        for key in ("3", "11", "50"):
            assert model.clear_row(key) is True
    assert sorted(model.get_all_rows()) == case["all_rows"]
    scores = [model.calc_score(datum(row)) for row in rows[130:]]
    assert all(close(a, b, 1e-9) for a, b in zip(scores, case["calc_score"], strict=True))
