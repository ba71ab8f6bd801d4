"""Jubako's nearest_neighbor finds the same rows with the same scores as Jubatus's core.

Jubako reproduces Jubatus's hashing bit for bit (FNV-1 feature hashes, SFMT-607 normals
through the AVX2 polynomial log/sin/cos, minhash's 64-bit mix), so ``lsh``, ``minhash`` and
``euclid_lsh`` over scikit-learn's ``digits`` and a seeded text set give the core's answers:
the same ids in the same order (ties by insertion, as Jubatus's heap) and the same scores.
"""

from __future__ import annotations

from typing import Any

import pytest

from engines.nearest_neighbor.model import NearestNeighborModel
from tests.oracle.goldens import close, datum, golden

GOLDEN = golden("nearest_neighbor")


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['config']['method']}-{case['config']['parameter']['hash_num']}-{case['data']}"


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[_case_id(c) for c in GOLDEN["cases"]])
def test_neighbours_agree_with_the_core(case: dict[str, Any]) -> None:
    rows = GOLDEN["datasets"][case["data"]]
    model = NearestNeighborModel(case["config"])
    for i, row in enumerate(rows[: case["stored"]]):
        assert model.set_row(f"r{i}", datum(row)) is True
    queries = rows[case["stored"] :]
    got = {
        "from_id": [model.neighbor_row_from_id(f"r{i}", 10) for i in range(0, 60, 3)],
        "from_datum": [model.neighbor_row_from_datum(datum(q), 10) for q in queries],
        "similar_id": [model.similar_row_from_id(f"r{i}", 5) for i in range(0, 30, 3)],
        "similar_datum": [model.similar_row_from_datum(datum(q), 5) for q in queries[:10]],
    }
    for kind, results in got.items():
        for mine, theirs in zip(results, case[kind], strict=True):
            assert [key for key, _ in mine] == [key for key, _ in theirs], kind
            assert all(close(a, b, 1e-12) for (_, a), (_, b) in zip(mine, theirs, strict=True))
