"""Aggregators: pure, ordered folds; the registry matches the IDL's annotation names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, strategies as st

from runtime.proxy.aggregators import (
    AGGREGATORS,
    add,
    all_and,
    all_or,
    concat,
    ignore,
    merge,
    merge_status,
    pass_,
)


def test_registry_names_match_the_idl_annotations() -> None:
    from jenerator.model import Aggregator

    assert set(AGGREGATORS) == {a.value for a in Aggregator}


def test_pass_returns_the_first_result() -> None:
    assert pass_(["a", "b", "c"]) == "a"
    assert pass_([None, 1]) is None


def test_all_and_all_or() -> None:
    assert all_and([True, True]) is True
    assert all_and([True, False, True]) is False
    assert all_or([False, False]) is False
    assert all_or([False, True]) is True
    assert all_and([False]) is False
    assert all_or([True]) is True


def test_merge_later_wins_on_duplicate_keys() -> None:
    assert merge([{"a": 1, "b": 2}, {"b": 3, "c": 4}, {"c": 5}]) == {"a": 1, "b": 3, "c": 5}


def test_concat_keeps_order() -> None:
    assert concat([[1, 2], [], [3], (4, 5)]) == [1, 2, 3, 4, 5]


def test_add_sums_left_to_right_and_keeps_int() -> None:
    assert add([1, 2, 3]) == 6
    assert isinstance(add([1, 2]), int)
    assert add([0.5, 1]) == 1.5


def test_ignore_returns_first_or_none() -> None:
    assert ignore([7, 8]) == 7
    assert ignore([]) is None


def test_merge_status_unions_servers_and_merges_duplicates() -> None:
    a = {"10.0.0.1_9199": {"uptime": "5", "x": "1"}}
    b = {"10.0.0.2_9199": {"uptime": "7"}}
    c = {"10.0.0.1_9199": {"x": "2"}}
    assert merge_status([a, b, c]) == {
        "10.0.0.1_9199": {"uptime": "5", "x": "2"},
        "10.0.0.2_9199": {"uptime": "7"},
    }
    assert a == {"10.0.0.1_9199": {"uptime": "5", "x": "1"}}  # inputs untouched


@pytest.mark.parametrize("name", sorted(set(AGGREGATORS) - {"ignore"}))
def test_empty_results_are_a_caller_bug(name: str) -> None:
    with pytest.raises(ValueError, match="at least one result"):
        AGGREGATORS[name]([])


def test_merge_status_needs_a_result() -> None:
    with pytest.raises(ValueError, match="at least one result"):
        merge_status([])


@pytest.mark.parametrize(
    ("name", "results"),
    [
        ("all_and", [True, 1]),
        ("all_or", ["yes"]),
        ("merge", [{"a": 1}, [("b", 2)]]),
        ("concat", [[1], "ab"]),
        ("add", [1, "2"]),
        ("add", [True, 1]),
    ],
)
def test_wrong_result_types_raise_type_error(name: str, results: Sequence[Any]) -> None:
    with pytest.raises(TypeError, match=name):
        AGGREGATORS[name](results)


def test_merge_status_refuses_non_maps() -> None:
    with pytest.raises(TypeError):
        merge_status([{"s": "not a map"}])  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        merge_status([["s"]])  # type: ignore[list-item]


# ---------------------------------------------------------------- properties

small_maps = st.dictionaries(st.text(max_size=3), st.integers(), max_size=5)


@given(st.lists(small_maps, min_size=1, max_size=6))
def test_merge_equals_sequential_update_and_does_not_mutate(maps: list[dict[str, int]]) -> None:
    copies = [dict(m) for m in maps]
    expected: dict[str, int] = {}
    for m in maps:
        expected.update(m)
    assert merge(maps) == expected
    assert list(merge(maps)) == list(expected)  # key order too
    assert maps == copies


@given(st.lists(small_maps, min_size=1, max_size=6))
def test_merge_every_key_takes_its_last_value(maps: list[dict[str, int]]) -> None:
    merged = merge(maps)
    for key, value in merged.items():
        last = next(m[key] for m in reversed(maps) if key in m)
        assert value == last
    assert set(merged) == set().union(*maps)


@given(st.lists(st.lists(st.integers(), max_size=4), min_size=1, max_size=6))
def test_concat_is_associative_and_length_adds(lists: list[list[int]]) -> None:
    joined = concat(lists)
    assert len(joined) == sum(len(x) for x in lists)
    split = len(lists) // 2
    if 0 < split < len(lists):
        assert joined == concat([concat(lists[:split]), concat(lists[split:])])


@given(st.lists(st.booleans(), min_size=1, max_size=8))
def test_all_and_all_or_agree_with_builtins(values: list[bool]) -> None:
    assert all_and(values) is all(values)
    assert all_or(values) is any(values)
    assert all_or(values) is (not all_and([not v for v in values]))


@given(st.lists(st.integers(), min_size=1, max_size=8))
def test_add_matches_sum_and_is_order_independent_for_ints(values: list[int]) -> None:
    assert add(values) == sum(values)
    assert add(list(reversed(values))) == add(values)


@given(st.lists(st.integers() | st.text(), min_size=1, max_size=5))
def test_pass_and_ignore_return_the_first(values: list[object]) -> None:
    assert pass_(values) is values[0]
    assert ignore(values) is values[0]
