"""Consistent hashing: which servers hold a key.

:class:`Ring` places every server on a hash ring with ``uhashring`` (MD5 points, 160
virtual nodes per server by default) and answers :meth:`Ring.nodes_for`: the first
``replicas`` **distinct** servers met walking the ring clockwise from the key's MD5. With
fewer servers than replicas every server comes back once. Jubatus's own ring can list a
server twice (two neighbouring virtual nodes); this one never does.

A ring is immutable: :meth:`Ring.with_node` and :meth:`Ring.without_node` return a new
ring, so a proxy can swap its ring on a membership change while calls in flight keep
using the old one, without locks. The ring depends only on the set of server names, not
on the order they were given in.

Lookups are cheap because the distinct-server walk is done once per ring point when the
ring is built (up to ``precompute`` replicas, 3 by default); a lookup is one MD5, one
bisect and a slice. Deeper replica sets are walked on demand. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import logging
from bisect import bisect
from collections.abc import Iterable, Iterator

from uhashring import HashRing

__all__ = ["DEFAULT_PRECOMPUTE", "DEFAULT_VNODES", "Ring", "key_hash"]

log = logging.getLogger(__name__)

#: Virtual nodes per server (uhashring's default for its MD5 ring).
DEFAULT_VNODES = 160
#: Replica sets up to this size are precomputed for every ring point.
DEFAULT_PRECOMPUTE = 3


def key_hash(key: str) -> int:
    """The ring position of ``key``: its MD5 as a 128-bit integer (as uhashring hashes)."""
    digest = hashlib.md5(key.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return int.from_bytes(digest.digest(), "big")


class Ring:
    """An immutable consistent-hash ring over a set of server names."""

    __slots__ = ("_nodes", "_owners", "_points", "_precompute", "_sets", "_vnodes")

    def __init__(
        self,
        nodes: Iterable[str] = (),
        *,
        vnodes: int = DEFAULT_VNODES,
        precompute: int = DEFAULT_PRECOMPUTE,
    ) -> None:
        """Build the ring.

        :param nodes: server names (e.g. ``"10.0.0.1_9199"``); duplicates count once.
        :param vnodes: points per server on the ring.
        :param precompute: replica-set size prepared for every point.
        :raises ValueError: for an empty name, ``vnodes < 1`` or ``precompute < 1``.
        :raises TypeError: for a name that is not a string.
        """
        names = set()
        for node in nodes:
            if not isinstance(node, str):
                raise TypeError(f"a ring node must be a string, not {type(node).__name__}")
            if not node:
                raise ValueError("a ring node name must not be empty")
            names.add(node)
        if vnodes < 1:
            raise ValueError(f"vnodes must be at least 1, not {vnodes}")
        if precompute < 1:
            raise ValueError(f"precompute must be at least 1, not {precompute}")
        self._nodes: frozenset[str] = frozenset(names)
        self._vnodes = vnodes
        self._precompute = precompute
        self._points: list[int] = []
        self._owners: list[str] = []
        if names:
            ring = HashRing(sorted(names), vnodes=vnodes)
            # get_points() is sorted by position. A collision of two servers' points
            # (astronomically unlikely with MD5) keeps the later server in sorted order.
            for point, owner in ring.get_points():
                self._points.append(int(point))
                self._owners.append(str(owner))
        depth = min(precompute, len(names))
        self._sets: list[tuple[str, ...]] = [
            tuple(self._walk(index, depth)) for index in range(len(self._points))
        ]
        log.debug("ring of %d servers, %d points", len(names), len(self._points))

    @property
    def nodes(self) -> frozenset[str]:
        """The servers on the ring."""
        return self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._nodes

    def __repr__(self) -> str:
        return f"Ring({sorted(self._nodes)!r}, vnodes={self._vnodes})"

    def _walk(self, start: int, count: int) -> Iterator[str]:
        """The first ``count`` distinct owners from point ``start`` on, wrapping once."""
        seen: set[str] = set()
        total = len(self._owners)
        for step in range(total):
            owner = self._owners[(start + step) % total]
            if owner not in seen:
                seen.add(owner)
                yield owner
                if len(seen) == count:
                    return

    def _index(self, key: str) -> int:
        index = bisect(self._points, key_hash(key))
        return 0 if index == len(self._points) else index

    def nodes_for(self, key: str, replicas: int) -> list[str]:
        """The first ``replicas`` distinct servers from ``key``'s position, in ring order.

        Fewer servers than ``replicas`` gives every server once; an empty ring gives ``[]``.

        :raises ValueError: when ``replicas < 1``.
        """
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, not {replicas}")
        if not self._points:
            return []
        index = self._index(key)
        wanted = min(replicas, len(self._nodes))
        prepared = self._sets[index]
        if wanted <= len(prepared):
            return list(prepared[:wanted])
        return list(self._walk(index, wanted))

    def node_for(self, key: str) -> str | None:
        """The first server of ``key`` (None on an empty ring)."""
        if not self._points:
            return None
        return self._sets[self._index(key)][0]

    def with_node(self, node: str) -> Ring:
        """A new ring that also holds ``node`` (this ring itself when it already does)."""
        if node in self._nodes:
            return self
        return Ring(self._nodes | {node}, vnodes=self._vnodes, precompute=self._precompute)

    def without_node(self, node: str) -> Ring:
        """A new ring without ``node`` (this ring itself when it does not hold it)."""
        if node not in self._nodes:
            return self
        return Ring(self._nodes - {node}, vnodes=self._vnodes, precompute=self._precompute)

    def with_nodes(self, nodes: Iterable[str]) -> Ring:
        """A ring over exactly ``nodes`` with this ring's settings (self if unchanged)."""
        wanted = frozenset(nodes)
        if wanted == self._nodes:
            return self
        return Ring(wanted, vnodes=self._vnodes, precompute=self._precompute)
