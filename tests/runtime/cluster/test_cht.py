"""Consistent hashing: distinct replicas in ring order, determinism, little movement."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st
from uhashring import HashRing

from runtime.cluster.cht import Ring, key_hash

SERVERS = [f"10.0.0.{i}_9199" for i in range(1, 9)]
KEYS = [f"user-{i}" for i in range(10_000)]


def test_key_hash_is_md5_as_integer() -> None:
    assert key_hash("") == 0xD41D8CD98F00B204E9800998ECF8427E
    assert key_hash("abc") == int("900150983cd24fb0d6963f7d28e17f72", 16)


def test_replicas_are_distinct_servers() -> None:
    ring = Ring(SERVERS)
    for key in KEYS[:2000]:
        for replicas in (1, 2, 3, 5, 8):
            found = ring.nodes_for(key, replicas)
            assert len(found) == replicas
            assert len(set(found)) == replicas
            assert set(found) <= set(SERVERS)


def test_first_replica_is_the_key_owner() -> None:
    ring = Ring(SERVERS)
    for key in KEYS[:500]:
        assert ring.nodes_for(key, 3)[0] == ring.node_for(key)


def test_smaller_replica_sets_are_prefixes_of_larger_ones() -> None:
    ring = Ring(SERVERS, precompute=2)
    for key in KEYS[:500]:
        full = ring.nodes_for(key, len(SERVERS))
        for replicas in range(1, len(SERVERS) + 1):
            assert ring.nodes_for(key, replicas) == full[:replicas]


def test_order_is_uhashring_ring_order() -> None:
    reference = HashRing(sorted(SERVERS))
    ring = Ring(SERVERS)
    for key in KEYS[:1000]:
        expected = [node["nodename"] for node in reference.range(key, 3)]
        assert ring.nodes_for(key, 3) == expected


@pytest.mark.parametrize("count", [1, 2, 3])
def test_fewer_servers_than_replicas_gives_every_server_once(count: int) -> None:
    ring = Ring(SERVERS[:count])
    for key in KEYS[:300]:
        found = ring.nodes_for(key, 5)
        assert sorted(found) == sorted(SERVERS[:count])


def test_empty_ring() -> None:
    ring = Ring()
    assert ring.nodes_for("k", 2) == []
    assert ring.node_for("k") is None
    assert len(ring) == 0


def test_deterministic_across_insertion_orders_and_duplicates() -> None:
    shuffled = list(SERVERS)
    random.Random(7).shuffle(shuffled)
    a = Ring(SERVERS)
    b = Ring([*shuffled, *shuffled[:3]])
    built = Ring()
    for server in reversed(SERVERS):
        built = built.with_node(server)
    for key in KEYS[:2000]:
        assert a.nodes_for(key, 3) == b.nodes_for(key, 3) == built.nodes_for(key, 3)


def _moved(before: Ring, after: Ring) -> float:
    return sum(before.node_for(k) != after.node_for(k) for k in KEYS) / len(KEYS)


def test_adding_one_of_n_servers_moves_about_one_nth() -> None:
    n = len(SERVERS)
    before = Ring(SERVERS[:-1])
    after = before.with_node(SERVERS[-1])
    moved = _moved(before, after)
    assert 0.5 / n < moved < 2 / n
    # every moved key moved to the new server
    for key in KEYS:
        if before.node_for(key) != after.node_for(key):
            assert after.node_for(key) == SERVERS[-1]


def test_removing_one_of_n_servers_moves_only_its_keys() -> None:
    n = len(SERVERS)
    before = Ring(SERVERS)
    gone = SERVERS[3]
    after = before.without_node(gone)
    moved = _moved(before, after)
    assert 0.5 / n < moved < 2 / n
    for key in KEYS:
        if before.node_for(key) != gone:
            assert after.node_for(key) == before.node_for(key)


def test_removing_a_server_keeps_surviving_replicas_in_order() -> None:
    before = Ring(SERVERS)
    gone = SERVERS[0]
    after = before.without_node(gone)
    for key in KEYS[:2000]:
        survivors = [s for s in before.nodes_for(key, 3) if s != gone]
        assert after.nodes_for(key, 3)[: len(survivors)] == survivors


def test_load_is_spread_evenly() -> None:
    ring = Ring(SERVERS)
    counts = {server: 0 for server in SERVERS}
    for key in KEYS:
        counts[ring.nodes_for(key, 1)[0]] += 1
    expected = len(KEYS) / len(SERVERS)
    assert all(0.6 * expected < c < 1.4 * expected for c in counts.values()), counts


def test_membership_changes_return_new_rings() -> None:
    ring = Ring(SERVERS[:2])
    bigger = ring.with_node(SERVERS[2])
    assert ring.nodes == frozenset(SERVERS[:2])
    assert bigger.nodes == frozenset(SERVERS[:3])
    assert ring.with_node(SERVERS[0]) is ring
    assert ring.without_node("nobody") is ring
    assert bigger.without_node(SERVERS[2]).nodes == ring.nodes
    assert ring.with_nodes(SERVERS[:2]) is ring
    assert ring.with_nodes(SERVERS[4:6]).nodes == frozenset(SERVERS[4:6])
    assert SERVERS[0] in ring and SERVERS[5] not in ring


def test_bad_arguments() -> None:
    ring = Ring(SERVERS)
    with pytest.raises(ValueError, match="replicas must be at least 1"):
        ring.nodes_for("k", 0)
    with pytest.raises(ValueError, match="must not be empty"):
        Ring(["a", ""])
    with pytest.raises(TypeError, match="must be a string"):
        Ring([b"a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="vnodes"):
        Ring(SERVERS, vnodes=0)
    with pytest.raises(ValueError, match="precompute"):
        Ring(SERVERS, precompute=0)


def test_non_ascii_and_odd_keys_hash() -> None:
    ring = Ring(SERVERS)
    for key in ["", "日本語", "\udcff", "a" * 10_000, "\x00"]:
        assert len(ring.nodes_for(key, 2)) == 2


@settings(max_examples=60, deadline=None)
@given(
    servers=st.sets(
        st.from_regex(r"10\.0\.[0-9]{1,2}\.[0-9]{1,3}_[0-9]{4}", fullmatch=True),
        min_size=1,
        max_size=12,
    ),
    key=st.text(max_size=20),
    replicas=st.integers(1, 15),
    precompute=st.integers(1, 4),
)
def test_property_distinct_prefix_of_walk(
    servers: set[str], key: str, replicas: int, precompute: int
) -> None:
    ring = Ring(servers, vnodes=20, precompute=precompute)
    found = ring.nodes_for(key, replicas)
    assert len(found) == min(replicas, len(servers))
    assert len(set(found)) == len(found)
    assert found == ring.nodes_for(key, len(servers))[: len(found)]
