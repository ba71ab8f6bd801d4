"""The inverted index's ``update_row`` (a row at once) against ``set_value`` feature by
feature, the definition it must match to the bit: norms, columns, postings and scores."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engines.common.inverted_index import DENSE_AFTER_QUERIES, DENSE_MIN_ROWS, InvertedIndex
from tests.engines.kernel_modes import with_and_without

FEATURES = st.sampled_from(["a", "b", "c", "d", "e"])
VALUES = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 0.5, 3.0]),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
)
UPDATES = st.lists(
    st.tuples(
        st.sampled_from(["r0", "r1", "r2", "r3"]),
        st.lists(st.tuples(FEATURES, VALUES), max_size=6),  # repeated features allowed
        st.booleans(),  # remove the row first
    ),
    max_size=12,
)


def _one_by_one(index: InvertedIndex, key: str, features: list[tuple[str, float]]) -> None:
    for feature, value in features:
        index.set_value(key, feature, value)
    index.log.touch(key)


def _state(index: InvertedIndex) -> object:
    rows = len(index.keys)
    postings = {
        feature: (
            posting.numbers[: posting.size].tolist(),
            [v.hex() for v in posting.values[: posting.size].tolist()],
            posting.dense,
        )
        for feature, posting in index.postings.items()
    }
    return (
        index.ids,
        index.columns,
        {n: v.hex() for n, v in index.norms.items()},
        [v.hex() for v in index._norm_array[:rows].tolist()],
        postings,
        index.generation,
    )


@settings(max_examples=300, deadline=None)
@given(UPDATES, st.lists(st.tuples(FEATURES, VALUES), min_size=1, max_size=4))
def test_update_row_matches_set_value_feature_by_feature(
    updates: list[tuple[str, list[tuple[str, float]], bool]], query: list[tuple[str, float]]
) -> None:
    at_once, one_by_one = InvertedIndex("a"), InvertedIndex("b")
    for key, features, remove in updates:
        if remove:
            at_once.remove_row(key)
            one_by_one.remove_row(key)
        at_once.update_row(key, features)
        _one_by_one(one_by_one, key, features)
    assert _state(at_once) == _state(one_by_one)
    for scores in ("cosine", "euclid"):
        mine = getattr(at_once, scores)(query, 10)
        theirs = getattr(one_by_one, scores)(query, 10)
        assert [(k, math.copysign(1.0, s), s) for k, s in mine] == [
            (k, math.copysign(1.0, s), s) for k, s in theirs
        ]


def test_a_row_set_back_to_zero_has_no_norm() -> None:
    index = InvertedIndex("a")
    index.update_row("r", [("x", 3.0), ("y", 4.0)])
    assert index.norms == {0: 25.0}
    index.update_row("r", [("x", 0.0), ("y", 0.0)])
    assert index.norms == {}
    assert index._norm_array[0] == 0.0
    assert np.signbit(index._norm_array[0]) == np.False_


def _dense_index(rows: int, features: int, rng: random.Random) -> InvertedIndex:
    index = InvertedIndex("a")
    for r in range(rows):
        index.update_row(f"r{r}", [(f"f{j}", rng.uniform(-1e3, 1e3)) for j in range(features)])
    return index


def _bits(values: list[tuple[str, float]]) -> list[tuple[str, str]]:
    return [(key, value.hex()) for key, value in values]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=DENSE_MIN_ROWS, max_value=80),
    st.lists(VALUES, min_size=1, max_size=12),
    st.randoms(use_true_random=False),
)
def test_the_dense_copy_gives_the_loops_dot_products_and_scores(
    rows: int, query_values: list[float], rng: random.Random
) -> None:
    features = len(query_values)
    index = _dense_index(rows, features, rng)
    names = [f"f{j}" for j in range(features)] + ["absent"]
    query = list(zip(rng.sample(names, features), query_values, strict=False))
    looped = [index._dots(query, touched=True)[0] for _ in range(DENSE_AFTER_QUERIES)]
    euclid = [_bits(index.euclid(query, 7)) for _ in range(DENSE_AFTER_QUERIES)]
    cosine = [_bits(index.cosine(query, 7)) for _ in range(DENSE_AFTER_QUERIES)]
    assert index._dense is not None  # the copy was made and is used from here on
    dense, _ = index._dots(query)
    assert dense.tobytes() == looped[0].tobytes()
    assert _bits(index.euclid(query, 7)) == euclid[0]
    assert _bits(index.cosine(query, 7)) == cosine[0]


@pytest.mark.parametrize("picked", [range(6), range(2, 5), [0, 1, 2, 4], [5, 4, 3]])
def test_the_dense_copy_of_a_run_of_features_gives_the_loops_bits(picked: list[int]) -> None:
    """A query whose features are consecutive rows of the copy (multiplied as a view) and
    one that is not (gathered) both sum to the loop's bits."""
    rng = random.Random(11)
    index = _dense_index(DENSE_MIN_ROWS + 9, 6, rng)
    query = [(f"f{j}", rng.uniform(-5.0, 5.0)) for j in picked]
    looped = index._dots(query, touched=True)[0]
    for _ in range(DENSE_AFTER_QUERIES):
        index.euclid(query, 3)
    assert index._dense is not None
    assert index._dots(query)[0].tobytes() == looped.tobytes()


def test_the_dense_copy_follows_writes_and_is_not_made_for_irregular_rows() -> None:
    rng = random.Random(5)
    index = _dense_index(40, 5, rng)
    query = [("f0", 1.0), ("f3", -2.0)]
    for _ in range(DENSE_AFTER_QUERIES):
        index.euclid(query, 3)
    copy = _copy_of(index)
    assert copy is not None
    index.update_row("r0", [("f0", 1.0), ("f1", 0.0), ("f2", 0.0), ("f3", -2.0), ("f4", 0.0)])
    # The write is seen at once (r0 is the query now; its norm, kept the Jubatus way by
    # subtracting old squares, leaves a rounding error).
    assert _nearest(index, query) == "r0"
    assert _copy_of(index) is None  # the stale copy is dropped, none made yet
    for _ in range(DENSE_AFTER_QUERIES):
        assert _nearest(index, query) == "r0"
    assert _copy_of(index) is not None and _copy_of(index) is not copy
    index.remove_row("r1")  # a posting now holds a 0 for a row without the feature
    for _ in range(2 * DENSE_AFTER_QUERIES):
        index.euclid(query, 1)
    assert _copy_of(index) is None
    small = _dense_index(DENSE_MIN_ROWS - 1, 3, rng)  # too few rows: never a copy
    for _ in range(2 * DENSE_AFTER_QUERIES):
        small.euclid(query, 1)
    assert _copy_of(small) is None


def _nearest(index: InvertedIndex, query: list[tuple[str, float]]) -> str:
    [(key, score)] = index.euclid(query, 1)
    assert -1e-3 < score <= 0.0
    return key


def _copy_of(index: InvertedIndex) -> object:
    return index._dense


def test_queries_over_the_dense_copy_with_the_kernel_and_without() -> None:
    """The compiled euclid and cosine queries (``dense_query``) order ties as numpy does
    (the larger row number first) and leave rows with no norm out, to the bit."""
    rng = random.Random(5)
    index = InvertedIndex("a")
    patterns = [[(f"f{j}", float(rng.randint(-2, 2))) for j in range(4)] for _ in range(6)]
    for r in range(DENSE_MIN_ROWS + 20):  # repeated rows: equal scores
        index.update_row(f"r{r}", patterns[r % len(patterns)])
    index.update_row("zero", [(f"f{j}", 0.0) for j in range(4)])  # no norm
    queries = [[(f"f{j}", float(rng.randint(-2, 2))) for j in rng.sample(range(5), 3)]]
    queries += [[("f9", 1.0)], [], [(f"f{j}", 1e-3 * j) for j in range(4)]]

    def answers() -> list[list[tuple[str, str]]]:
        for _ in range(DENSE_AFTER_QUERIES):
            index.euclid(queries[0], 3)
        return [_bits(index.euclid(q, k)) for q in queries for k in (1, 5, 100)] + [
            _bits(index.cosine(q, k)) for q in queries for k in (1, 5, 100)
        ]

    compiled, python = with_and_without(answers)
    assert index._dense is not None  # the copy the kernel reads was made
    assert compiled == python


@settings(max_examples=40, deadline=None)
@given(UPDATES, st.lists(st.tuples(FEATURES, VALUES), max_size=6), st.integers(0, 6))
def test_queries_over_the_postings_with_the_kernel_and_without(
    updates: list[tuple[str, list[tuple[str, float]], bool]],
    query: list[tuple[str, float]],
    count: int,
) -> None:
    """The compiled euclid and cosine queries over postings (``postings_query``: rows
    missing features, removed and out of order) give the loop's scores and order, to the
    bit."""
    index = InvertedIndex("a")
    for key, features, remove in updates:
        if remove:
            index.remove_row(key)
        index.update_row(key, features)
    compiled, python = with_and_without(
        lambda: _bits(index.euclid(query, count)) + _bits(index.cosine(query, count))
    )
    assert compiled == python
