"""A proxy's view of one cluster: its servers, its hash ring, and whom to call for a key.

:class:`MembershipView` answers the forwarder's questions for one cluster:

- ``actives()``: the servers a ``random`` or ``broadcast`` call may go to (not those
  down or catching up);
- ``members()``: every server of the cluster, up or not (a broadcast write needs all);
- ``replicas(key, n)``: the key's ``n`` servers in ring order;
- ``readers(key, n)``: the same in the order a read tries them: servers down or catching
  up last, and while keys move (a server joined or left and is not caught up yet), the
  servers that held the key before first (they may no longer be its replicas);
- ``writers(key, n)``: the key's primary (its first replica that is up: it orders the
  key's writes), the other replicas a write reaches through it (those catching up
  included), and the replicas that are down (a write cannot reach them: an error names
  them, and they are repaired when they answer again).

With a :class:`~runtime.proxy.replicas.ReplicaKeeper` the states are the keeper's (probed
and repaired); without one (a bare view in tests) a server a call failed to reach is
marked down in the membership for its retry interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from runtime.cluster.cht import Ring
from runtime.cluster.membership import Membership, Node, Snapshot
from runtime.proxy.forwarder import ClusterView
from runtime.proxy.replicas import DOWN, UP, ReplicaKeeper, node_name
from runtime.wire.types import text_param

__all__ = ["DOWN_RECHECK", "RECENT_KEYS", "MembershipView"]

#: How many keys' replica lists a view remembers (a hashed key costs an MD5 and a search).
RECENT_KEYS = 4096
#: Seconds between looks at which servers are still marked down, while any is (without a
#: keeper).
DOWN_RECHECK = 1.0


class MembershipView(ClusterView):
    """A :class:`ClusterView` over a :class:`Membership`, with a cached hash ring."""

    def __init__(self, membership: Membership, keeper: ReplicaKeeper | None = None) -> None:
        self.membership = membership
        self.keeper = keeper
        #: Whether cht writes go through their primary (``jubako.replicate``); False once
        #: the cluster's servers answer that they cannot (not Jubako servers).
        self.ordered = keeper is not None
        self._ring_members: tuple[Node, ...] = ()
        self._ring = Ring()
        self._by_name: dict[str, Node] = {}
        self._ring_snapshot: Snapshot | None = None
        #: Replicas of recent keys (as sent) in ring order, for the current ring.
        self._recent: dict[tuple[str | bytes, int], tuple[Node, ...]] = {}
        #: The same in read order: servers down or catching up last.
        self._readers: dict[tuple[str | bytes, int], tuple[Node, ...]] = {}
        self._demoted: frozenset[Node] = frozenset()
        self._recheck: asyncio.TimerHandle | None = None
        #: The ring before a server left, while its keys are handed off.
        self._previous: Ring | None = None
        self._previous_by_name: dict[str, Node] = {}
        if keeper is not None:
            keeper.on_change = self.refresh

    def actives(self) -> list[Node]:
        """Up-to-date servers the keeper has up (all the membership offers when none is)."""
        offered = self.membership.actives()
        if self.keeper is None or not self._demoted:
            return offered
        up = [node for node in offered if node not in self._demoted]
        return up or offered

    def members(self) -> list[Node]:
        return list(self.membership.members())

    def replicas(self, key: str | bytes, count: int) -> Sequence[Node]:
        if self.membership.snapshot() is not self._ring_snapshot:
            self._rebuild()
        try:
            found = self._recent.get((key, count))
        except TypeError:  # not even hashable: _find says what it is
            found = None
        return found if found is not None else self._find(key, count)

    def readers(self, key: str | bytes, count: int) -> Sequence[Node]:
        if self.membership.snapshot() is not self._ring_snapshot:
            self._rebuild()
        try:
            found = self._readers.get((key, count))
        except TypeError:  # not even hashable: _find says what it is
            found = None
        return found if found is not None else self._find_readers(key, count)

    def writers(self, key: str | bytes, count: int) -> tuple[Node | None, list[Node], list[Node]]:
        """``(primary, backups, missing)`` of a write to ``key`` (see the module docstring)."""
        nodes = self.replicas(key, count)
        keeper = self.keeper
        if keeper is None:
            return (nodes[0] if nodes else None), list(nodes[1:]), []
        primary: Node | None = None
        backups: list[Node] = []
        missing: list[Node] = []
        for node in nodes:
            state = keeper.state(node)
            if state == DOWN:
                missing.append(node)
            elif primary is None and state == UP:
                primary = node
            else:
                backups.append(node)
        return primary, backups, missing

    def _rebuild(self) -> None:
        """Membership changed: a new ring if its members did, and nothing remembered."""
        snapshot = self.membership.snapshot()
        if self.keeper is not None and self.keeper.running:
            self.keeper.follow_members()  # joined servers catch up before a read meets them
        members = tuple(snapshot.cht)
        if members != self._ring_members:
            self._ring = Ring(node_name(node) for node in members)
            self._ring_members = members
            self._by_name = {node_name(node): node for node in members}
        self._ring_snapshot = snapshot
        self._recent.clear()
        self._readers.clear()

    def _find(self, key: str | bytes, count: int) -> tuple[Node, ...]:
        """Look ``key`` up on the ring and remember its replicas (by the key as sent)."""
        by_name = self._by_name
        names = self._ring.nodes_for(text_param(key, "key"), count)
        found = tuple(by_name[name] for name in names)
        if len(self._recent) >= RECENT_KEYS:
            self._recent.clear()
        self._recent[(key, count)] = found
        return found

    def _find_readers(self, key: str | bytes, count: int) -> tuple[Node, ...]:
        """``key``'s replicas in read order, remembered."""
        found = tuple(self.replicas(key, count))
        if self._previous is not None:  # keys moving: the servers that held it first
            members = self._ring_members
            held = [
                node
                for name in self._previous.nodes_for(text_param(key, "key"), count)
                if (node := self._previous_by_name[name]) in members
            ]
            found = (*held, *(node for node in found if node not in held))
        demoted = self._demoted
        if demoted and not demoted.isdisjoint(found):
            found = tuple(sorted(found, key=demoted.__contains__))  # stable: ring order kept
        if len(self._readers) >= RECENT_KEYS:
            self._readers.clear()
        self._readers[(key, count)] = found
        return found

    def mark_failed(self, node: Node) -> None:
        if self.keeper is not None:
            self.keeper.failed(node, "a call to it failed")
            return
        self.membership.mark_down(*node)
        if node not in self._demoted:
            self._refresh_demoted()

    def not_up(self) -> list[tuple[Node, str]]:
        """Members down or catching up, with their state as shown."""
        keeper = self.keeper
        if keeper is not None:
            return [
                (node, member.shown())
                for node, member in sorted(keeper.states.items())
                if member.state != UP or member.suspect
            ]
        return [(node, "down") for node in self.membership.down()]

    def missed_write(self, node: Node) -> None:
        """A write did not reach ``node`` (down): it is repaired when it is back."""
        if self.keeper is not None:
            self.keeper.missed_write(node)

    def refresh(self) -> None:
        """The keeper's states changed: read orders follow them."""
        keeper = self.keeper
        assert keeper is not None
        previous = keeper.previous_ring
        if previous is None:
            self._previous, self._previous_by_name = None, {}
        else:
            self._previous = Ring(node_name(node) for node in previous)
            self._previous_by_name = {node_name(node): node for node in previous}
        self._demoted = keeper.not_up()
        self._readers.clear()

    def _refresh_demoted(self) -> None:
        """Read orders follow the servers marked down; rechecked while there are any (a
        server's mark ends after the membership's retry interval)."""
        demoted = frozenset(self.membership.down())
        if demoted != self._demoted:
            self._demoted = demoted
            self._readers.clear()
        if demoted and self._recheck is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): the next failure refreshes
                return
            self._recheck = loop.call_later(DOWN_RECHECK, self._on_recheck)

    def _on_recheck(self) -> None:
        self._recheck = None
        self._refresh_demoted()
