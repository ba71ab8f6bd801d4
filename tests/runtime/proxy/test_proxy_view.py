"""The proxy's view of a cluster: a key's replicas by the key as sent (text, or bytes from
old clients), as the ring has them, remembered, and a key that is not text refused."""

from __future__ import annotations

import asyncio

import pytest

from runtime.cluster.cht import Ring
from runtime.cluster.static import StaticMembership
from runtime.errors import TypeMismatch
from runtime.proxy.view import DOWN_RECHECK, MembershipView

NODES = [("127.0.0.1", 9100 + i) for i in range(4)]


def _ring_replicas(key: str, count: int) -> tuple[tuple[str, int], ...]:
    ring = Ring(f"{host}_{port}" for host, port in NODES)
    found = []
    for name in ring.nodes_for(key, count):
        host, _, port = name.rpartition("_")
        found.append((host, int(port)))
    return tuple(found)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_text_and_bytes_keys_get_the_replicas_the_ring_gives(count: int) -> None:
    view = MembershipView(StaticMembership(NODES))
    for i in range(300):
        key = f"user-{i}"
        expected = _ring_replicas(key, count)
        assert tuple(view.replicas(key, count)) == expected
        assert tuple(view.replicas(key.encode(), count)) == expected
        assert view.replicas(key, count) is view.replicas(key, count), "remembered"


@pytest.mark.parametrize("key", [b"\xff\xfe", 5, 1.5, None, ["k"], {"k": 1}])
def test_a_key_that_is_not_text_is_a_type_mismatch(key: object) -> None:
    view = MembershipView(StaticMembership(NODES))
    with pytest.raises(TypeMismatch, match="key"):
        view.replicas(key, 2)  # type: ignore[arg-type]
    assert view.replicas("k", 2) == _ring_replicas("k", 2), "the view still answers"


@pytest.mark.asyncio
async def test_a_failed_server_is_read_last_while_marked_down_and_written_as_before() -> None:
    now = [0.0]
    membership = StaticMembership(NODES, retry_interval=5.0, clock=lambda: now[0])
    view = MembershipView(membership)
    keys = [f"user-{i}" for i in range(200)]
    ring = {key: _ring_replicas(key, 2) for key in keys}
    assert all(tuple(view.readers(key, 2)) == ring[key] for key in keys)
    failed = NODES[1]
    view.mark_failed(failed)
    assert membership.down() == [failed]
    for key in keys:
        assert tuple(view.replicas(key, 2)) == ring[key], "writes: ring order, failed included"
        readers = tuple(view.readers(key, 2))
        assert sorted(readers) == sorted(ring[key])
        if failed in ring[key]:
            assert readers[-1] == failed and readers[0] != failed
        else:
            assert readers == ring[key]
    assert any(failed == ring[key][0] for key in keys), "some reads did change order"
    now[0] = 6.0  # the mark ends; the view looks again within DOWN_RECHECK
    await asyncio.sleep(DOWN_RECHECK + 0.2)
    assert all(tuple(view.readers(key, 2)) == ring[key] for key in keys), "ring order again"
    assert view._recheck is None, "nothing left to recheck"


def test_readers_refuse_a_key_that_is_not_text_too() -> None:
    view = MembershipView(StaticMembership(NODES))
    with pytest.raises(TypeMismatch, match="key"):
        view.readers(b"\xff", 2)
    with pytest.raises(TypeMismatch, match="key"):
        view.readers(["k"], 2)  # type: ignore[arg-type]
