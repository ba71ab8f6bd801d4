"""The proxy's view of a cluster: a key's replicas by the key as sent (text, or bytes from
old clients), as the ring has them, remembered, and a key that is not text refused."""

from __future__ import annotations

import pytest

from runtime.cht import Ring
from runtime.errors import TypeMismatch
from runtime.membership.static import StaticMembership
from runtime.proxy_main import MembershipView

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
