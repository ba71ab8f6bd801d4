"""Jubako's recommender answers as Jubatus's core does, method by method.

The same rows (each sent in two ``update_row`` halves, some cleared) go to both; every
query of the IDL is compared: the same ids in the same order with the same scores
(``euclid_lsh`` orders equal scores its own way, Jubatus by its hash table; here none are
equal), the same completed and decoded datums, similarities and norms.
"""

from __future__ import annotations

from typing import Any

import pytest

from engines.recommender.model import RecommenderModel
from tests.oracle.datasets import split_row
from tests.oracle.goldens import close, datum, golden

GOLDEN = golden("recommender")
ROWS = golden("nearest_neighbor")["datasets"]


def _case_id(case: dict[str, Any]) -> str:
    parameter = case["config"]["parameter"]
    extra = "-unlearner" if "unlearner" in parameter else ""
    return f"{case['config']['method']}-{case['data']}{extra}"


def _values(parts: Any) -> list[Any]:
    return [[list(p) for p in parts[0]], [list(p) for p in parts[1]]]


def _same_datum(mine: Any, theirs: Any) -> bool:
    return (
        mine[0] == theirs[0]
        and [k for k, _ in mine[1]] == [k for k, _ in theirs[1]]
        and all(close(a, b, 1e-12) for (_, a), (_, b) in zip(mine[1], theirs[1], strict=True))
    )


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[_case_id(c) for c in GOLDEN["cases"]])
def test_answers_agree_with_the_core(case: dict[str, Any]) -> None:
    rows = ROWS[case["data"]]
    model = RecommenderModel(case["config"])
    for i, row in enumerate(rows[: case["stored"]]):
        first, second = split_row(row)
        assert model.update_row(f"r{i}", datum(first)) is True
        if second:
            model.update_row(f"r{i}", datum(second))
    for i in range(0, 40, 7):
        assert model.clear_row(f"r{i}") is True
    queries = rows[case["stored"] :]
    ids = [f"r{i}" for i in range(1, 60, 4)]
    assert sorted(model.get_all_rows()) == case["all_rows"]
    euclid = case["config"]["method"] in ("inverted_index_euclid", "euclid_lsh")
    scored = {
        "similar_id": [model.similar_row_from_id(k, 8) for k in ids],
        "similar_datum": [model.similar_row_from_datum(datum(q), 8) for q in queries],
        "similar_id_score": [model.similar_row_from_id_and_score(k, 0.5) for k in ids[:4]],
        "similar_datum_rate": [
            model.similar_row_from_datum_and_rate(datum(q), 0.02) for q in queries[:6]
        ],
    }
    for kind, results in scored.items():
        for mine, theirs in zip(results, case[kind], strict=True):
            assert [k for k, _ in mine] == [k for k, _ in theirs], kind
            for (_, a), (_, b) in zip(mine, theirs, strict=True):
                # a row's distance to itself is a difference of large sums: 0 or ~1e-7
                assert close(a, b, 1e-12, 1e-6 if euclid else 1e-12), (kind, a, b)
    datums = {
        "complete_id": [_values(model.complete_row_from_id(k)) for k in ids[:6]],
        "complete_datum": [_values(model.complete_row_from_datum(datum(q))) for q in queries[:6]],
        "decode": [_values(model.decode_row(k)) for k in ids],
    }
    for kind, results in datums.items():
        for mine, theirs in zip(results, case[kind], strict=True):
            assert _same_datum(mine, theirs), (kind, mine, theirs)
    similarities = [
        model.calc_similarity(datum(a), datum(b))
        for a, b in zip(queries[:10], queries[10:20], strict=True)
    ]
    assert all(close(a, b, 1e-12) for a, b in zip(similarities, case["similarity"], strict=True))
    norms = [model.calc_l2norm(datum(q)) for q in queries[:10]]
    assert all(close(a, b, 1e-12) for a, b in zip(norms, case["l2norm"], strict=True))
