"""The recommender's rows as ``update_row`` gave them (``OriginalRows``): after any run of
updates (new rows and old ones, features in any order, a feature twice in one update),
a row reads back as its latest values in Jubatus's column order (the order features were
first seen), whether the row was ordered as it came or sorted when read."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings, strategies as st

from engines.common.recommender_index import OriginalRows

FEATURES = st.sampled_from(["a", "b", "c", "d", "e"])
UPDATES = st.lists(
    st.tuples(
        st.sampled_from(["r1", "r2", "r3"]),
        st.lists(st.tuples(FEATURES, st.floats(-10, 10, allow_nan=False)), max_size=6),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(UPDATES)
def test_a_row_reads_back_in_column_order_with_its_latest_values(
    updates: list[tuple[str, list[tuple[str, float]]]],
) -> None:
    rows = OriginalRows()
    columns: dict[str, int] = {}
    latest: dict[str, dict[str, float]] = {}
    updated: set[str] = set()
    for key, features in updates:
        new = key not in updated
        updated.add(key)
        in_order = rows.update(key, features)
        known = dict(columns)
        seen = [known.setdefault(feature, len(known)) for feature, _ in features]
        # "as given" only for a new row whose features came once each, in column order
        assert in_order == (new and all(a < b for a, b in pairwise(seen)))
        if in_order:
            assert rows.get(key) == list(features)
        for feature, value in features:
            columns.setdefault(feature, len(columns))
            latest.setdefault(key, {})[feature] = value
        for row_key, row in latest.items():
            want = sorted(row.items(), key=lambda item: columns[item[0]])
            assert rows.get(row_key) == want
    assert rows.feature_ids == columns
