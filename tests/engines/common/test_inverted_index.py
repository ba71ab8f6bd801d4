"""The inverted index's ``update_row`` (a row at once) against ``set_value`` feature by
feature, the definition it must match to the bit: norms, columns, postings and scores."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings, strategies as st

from engines.common.inverted_index import InvertedIndex

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

