"""What a proxy knows of each server of a cluster, and how it keeps replicas whole.

Every server of a cluster is ``up``, ``down`` (since when, and why) or ``catching up`` (a
repair copies its keys to it). A :class:`ReplicaKeeper`, one per cluster a proxy serves:

- **probes** every server with ``jubako.ping``: every :data:`PROBE_SECONDS` while it is
  up, then backing off (1, 2, 4 ... :data:`MAX_BACKOFF` s) while it is down; no answer
  within :data:`PROBE_TIMEOUT` marks it down, hung or dead. Calls that fail mark it down
  too (:meth:`ReplicaKeeper.failed`);
- **repairs** a server that comes back as a new process (its ``incarnation`` changed: a
  restart, empty or from an old file), one that came back after missing writes, or one
  that joins: it is ``catching up`` (reads go to the other replicas first, writes reach it)
  while the keys it should hold are copied from the first caught-up replica of each, page
  by page (``jubako.export`` there, ``jubako.import`` on it);
- **hands off** the keys of a server that left for good (removed from ZooKeeper): every
  server is repaired for the keys it now holds, and until that ends reads of a key go to
  the servers that held it before (:meth:`ReplicaKeeper.previous_ring`);
- logs each change of a server's state once, and shows every state in ``get_proxy_status``
  (``server.<ip>_<port>``).

A service whose servers cannot export rows (no ``export_rows`` hook) is never repaired: a
returning server is up at once, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.cluster.membership import Membership, Node
from runtime.errors import RPCError, UnknownMethod
from runtime.rpc.pool import ClientPool

__all__ = ["CATCHING_UP", "DOWN", "UP", "MemberState", "ReplicaKeeper"]

log = logging.getLogger(__name__)

UP = "up"
DOWN = "down"
CATCHING_UP = "catching up"
#: Seconds between probes of a server that is up.
PROBE_SECONDS = 1.0
#: Seconds a probe waits for its answer.
PROBE_TIMEOUT = 2.0
#: The longest wait between probes of a server that is down.
MAX_BACKOFF = 8.0
#: Rows a repair copies per call.
PAGE_ROWS = 2000


@dataclass
class MemberState:
    """One server as the proxy sees it."""

    state: str = UP
    #: Wall-clock time of the last change of ``state``.
    since: float = 0.0
    reason: str = ""
    #: The process last seen answering (``jubako.ping``); "" before the first answer.
    incarnation: str = ""
    #: Writes failed on it since it was last caught up: it needs a repair.
    missed_writes: bool = False
    next_probe: float = 0.0
    backoff: float = PROBE_SECONDS
    #: It closed a connection while up: reads go elsewhere first until a probe answers
    #: (it may be a new, empty process on the same address).
    suspect: bool = False

    def shown(self) -> str:
        when = datetime.datetime.fromtimestamp(self.since).isoformat(timespec="seconds")
        if self.state == UP and self.suspect:
            return "up? (it closed its connection; a probe is on its way)"
        if self.state == UP:
            return UP
        detail = f" ({self.reason})" if self.reason else ""
        return f"{self.state} since {when}{detail}"


def node_name(node: Node) -> str:
    """A server's name on the ring: ``ip_port``."""
    return f"{node[0]}_{node[1]}"


class ReplicaKeeper:
    """Server states, probes and repairs of one cluster (see the module docstring)."""

    def __init__(
        self,
        cluster: str,
        membership: Membership,
        pool: ClientPool,
        *,
        replicas: int,
        cht_writes: Sequence[str],
        on_change: Callable[[], None] = lambda: None,
        probe_seconds: float = PROBE_SECONDS,
    ) -> None:
        self.cluster = cluster
        #: How log lines name the cluster ("" for a static list, which serves any name).
        self.label = f"cluster {cluster}: " if cluster else ""
        self.membership = membership
        self.pool = pool
        self.replicas = max(1, replicas)
        self.cht_writes = list(cht_writes)
        self.on_change = on_change
        self.probe_seconds = probe_seconds
        snapshot = membership.snapshot()
        self.states: dict[Node, MemberState] = {
            node: MemberState(since=time.time())
            for node in sorted({*snapshot.members, *snapshot.cht})
        }
        #: The ring of the members before a server left, while its keys are handed off.
        self.previous_ring: tuple[Node, ...] | None = None
        self._repairs: dict[Node, asyncio.Task[None]] = {}
        self._handoff: set[Node] = set()
        #: Servers whose hand-off failed and is tried again after a while.
        self._retrying: set[Node] = set()
        self._task: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        #: Whether the servers can be repaired (known after the first export; assumed).
        self.repairable = True
        #: Counts joins and leaves; ``whole_epoch`` is its value when every server was
        #: last up with no repair running (a returning server may then drop the rows its
        #: replicas no longer have: the ring has not moved keys since).
        self.epoch = 0
        self.whole_epoch = 0

    # -- what callers ask --------------------------------------------------------------------

    def state(self, node: Node) -> str:
        member = self.states.get(node)
        return UP if member is None else member.state

    def not_up(self) -> frozenset[Node]:
        """Servers down, catching up, or not heard from since they closed a connection."""
        return frozenset(node for node, m in self.states.items() if m.state != UP or m.suspect)

    def down(self) -> list[Node]:
        return sorted(node for node, m in self.states.items() if m.state == DOWN)

    def status(self) -> dict[str, str]:
        """``server.<ip>_<port>`` → its state, for ``get_proxy_status``."""
        return {f"server.{node_name(n)}": m.shown() for n, m in sorted(self.states.items())}

    def failed(self, node: Node, reason: str) -> None:
        """A call to ``node`` failed for want of an answer: it is down."""
        self._set(node, DOWN, reason)
        self.membership.mark_down(*node)

    def lost(self, node: Node) -> None:
        """``node`` closed a connection: probe it now, and read from others until it
        answers (a restart on the same address is caught before a read meets it empty)."""
        member = self.states.get(node)
        if member is None or member.state != UP or member.suspect or self._task is None:
            return
        member.suspect = True
        member.next_probe = time.monotonic() + PROBE_TIMEOUT + self.probe_seconds
        probe = asyncio.get_running_loop().create_task(self._probe(node))
        self._probes.add(probe)
        probe.add_done_callback(self._probes.discard)
        self.on_change()

    def missed_write(self, node: Node) -> None:
        """A write did not reach ``node``: repair it once it answers again, or now when it
        answers probes all the same (a link between two servers failed, not the server)."""
        member = self.states.get(node)
        if member is None:
            return
        member.missed_writes = True
        if member.state == UP and self._task is not None:
            log.warning("%s%s:%d missed a write: repairing it", self.label, *node)
            self._repair(node)

    # -- running ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Probe and repair from now on. A proxy that starts does not know what changed
        while no proxy watched (a server dropped from ``--servers``, a session that ended):
        every server is first brought to the keys it owns on this ring (a hand-off)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
            if len(self.states) > 1:
                self._handoff |= set(self.states)
                for node in sorted(self.states):
                    self._repair(node, handoff=True)

    def _retry_handoff(self, node: Node) -> None:
        """A hand-off to ``node`` failed (a source or it did not answer): again later."""

        def again() -> None:
            member = self.states.get(node)
            if member is not None and member.state == UP and self._task is not None:
                self._repair(node, handoff=True)
            elif member is None or member.state == DOWN or self._task is None:
                self._handoff.discard(node)  # a repair brings it its keys when it is back

        def now() -> None:
            self._retrying.discard(node)
            again()

        self._retrying.add(node)
        asyncio.get_running_loop().call_later(MAX_BACKOFF, now)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._repairs.values(), *self._probes) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        self._repairs.clear()

    async def _run(self) -> None:
        while True:
            self.follow_members()
            now = time.monotonic()
            for node, member in list(self.states.items()):
                if now >= member.next_probe:
                    member.next_probe = now + PROBE_TIMEOUT + self.probe_seconds
                    probe = asyncio.get_running_loop().create_task(self._probe(node))
                    self._probes.add(probe)
                    probe.add_done_callback(self._probes.discard)
            await asyncio.sleep(min(0.2, self.probe_seconds))

    def follow_members(self) -> None:
        """Servers that joined are caught up; keys of servers that left are handed off.
        Called by the view as soon as it sees the membership change (before a read meets
        the new ring), and every turn of the probe loop."""
        snapshot = self.membership.snapshot()  # a server is on the ring before it is
        members = set(snapshot.members) | set(snapshot.cht)  # listed (ZooKeeper's order)
        known = set(self.states)
        joined = sorted(members - known)
        if joined and self.previous_ring is None and known:
            self.previous_ring = tuple(sorted(known))  # reads go where keys were until...
        for node in joined:
            self.epoch += 1
            self.states[node] = MemberState(since=time.time())
            log.info("%s%s:%d joined", self.label, *node)
            self._handoff.add(node)  # ... it holds its keys
            self._repair(node)
        gone = sorted(known - members)
        if gone:
            self.epoch += 1
            if self.previous_ring is None:
                self.previous_ring = tuple(sorted(known))
            for node in gone:
                del self.states[node]
                self._handoff.discard(node)
                log.info("%s%s:%d left; handing its keys over", self.label, *node)
                task = self._repairs.pop(node, None)
                if task is not None:
                    task.cancel()
            # every server may own keys it lacks now: those up get the keys handed off,
            # and catch-ups under way start again on the new ring
            self._handoff |= {n for n, m in self.states.items() if m.state != DOWN}
            for node, member in sorted(self.states.items()):
                if member.state == UP:
                    self._repair(node, handoff=True, again=True)
                elif member.state == CATCHING_UP:
                    self._repair(node, again=True)
            self.on_change()
        elif joined:
            self.on_change()
        if not self._handoff and self.previous_ring is not None:
            self.previous_ring = None
            self.on_change()

    async def _probe(self, node: Node) -> None:
        member = self.states.get(node)
        if member is None:
            return
        try:
            answer = await self.pool.call(
                node[0], node[1], "jubako.ping", [self.cluster], timeout=PROBE_TIMEOUT
            )
        except UnknownMethod:  # a server without replicas to keep: alive is all we learn
            answer = {}
        except (RPCError, OSError) as error:
            member.backoff = min(member.backoff * 2, MAX_BACKOFF) if member.state == DOWN else 1.0
            member.next_probe = time.monotonic() + member.backoff
            member.suspect = False
            if member.state != DOWN:
                self.failed(node, f"no answer to a probe: {type(error).__name__}")
            return
        if member.suspect:
            member.suspect = False
            self.on_change()
        member.backoff = self.probe_seconds
        member.next_probe = time.monotonic() + self.probe_seconds
        incarnation = _text(answer.get(b"incarnation", answer.get("incarnation", "")))
        new_process = bool(member.incarnation) and incarnation != member.incarnation
        member.incarnation = incarnation
        if member.state == CATCHING_UP:
            return
        if new_process or (member.state == DOWN and member.missed_writes):
            self._repair(node)
        elif member.state == DOWN:
            self._set(node, UP, "")
            self.membership.mark_up(*node)
            self._note_whole()

    # -- repairs ---------------------------------------------------------------------------

    def _repair(self, node: Node, *, handoff: bool = False, again: bool = False) -> None:
        """Copy the keys ``node`` should hold to it (``handoff``: it stays up meanwhile).
        A repair under way goes on, or with ``again`` (the ring changed) starts over."""
        running = self._repairs.get(node)
        if running is not None and not running.done():
            if not again:
                return
            running.cancel()
        if not self.repairable:  # nothing to copy: a server is up once it answers
            self._handoff.discard(node)
            if not handoff:
                self.membership.mark_up(*node)
                self._set(node, UP, "")
            return
        if not handoff:
            self._set(node, CATCHING_UP, "copying its keys to it")
        task = asyncio.get_running_loop().create_task(self._copy_to(node, handoff=handoff))
        self._repairs[node] = task

    async def _copy_to(self, target: Node, *, handoff: bool) -> None:
        started = time.monotonic()
        rows = 0
        pruned = 0
        token: object = None
        try:
            members = sorted(self.states)
            names = [node_name(n) for n in members]
            sources = [n for n in members if n != target and self.state(n) == UP]
            settled = not handoff and self.whole_epoch == self.epoch
            if target in self.states:  # a write it misses from now on means a new round
                self.states[target].missed_writes = False
            token = await self._call(target, "jubako.catch_up", [True, self.cht_writes])
            # copies left by an earlier ring first, then current replicas' (they win)
            for holders in (False, True):
                for source in sources:
                    copied = await self._copy_from(source, target, names, holders)
                    if copied is None:  # the servers keep no rows to copy
                        break
                    rows += copied
            if settled and self.whole_epoch == self.epoch and sources and self.repairable:
                # the ring has not changed since every replica was whole: rows the others
                # no longer have were deleted while it was away
                live = [node_name(n) for n in sources]
                pruned = await self._call(
                    target, "jubako.prune", [names, self.replicas, node_name(target), live]
                )
            await self._call(target, "jubako.catch_up", [False, token])
            token = None
        except asyncio.CancelledError:
            raise
        except (RPCError, OSError) as error:
            log.warning(
                "%srepairing %s:%d failed (%s); trying again",
                self.label, *target, error,
            )  # fmt: skip
            member = self.states.get(target)
            if member is not None and handoff:  # the target stays up: the hand-off again
                self._retry_handoff(target)
                return  # (still in _handoff: reads keep going where keys were)
            if member is not None and not handoff:
                member.missed_writes = True
                self._set(target, DOWN, f"repair failed: {type(error).__name__}")
                self.membership.mark_down(*target)
            return
        finally:
            if token is not None:  # cancelled or failed half way: end it if it answers
                self._end_quietly(target, token)
            retrying = handoff and target in self._retrying
            if self._repairs.get(target) is asyncio.current_task() and not retrying:
                self._handoff.discard(target)  # (unless started over, or to be retried)
        member = self.states.get(target)
        if member is None:
            return
        if member.missed_writes:  # a write did not reach it while it was copied: again
            log.warning("%s%s:%d missed a write while it was repaired: again", self.label, *target)
            asyncio.get_running_loop().call_soon(self._repair, target)
            return
        if not handoff:
            self.membership.mark_up(*target)
            self._set(target, UP, "")
        log.info(
            "%s%s:%d holds its keys (%d rows copied, %d deleted, in %.1f s%s)",
            self.label, *target, rows, pruned, time.monotonic() - started,
            ", a hand-off" if handoff else "",
        )  # fmt: skip
        self._note_whole()

    def _note_whole(self) -> None:
        """Every server up and no repair left: the replicas are whole for this ring."""
        me = asyncio.current_task()
        busy = any(not t.done() and t is not me for t in self._repairs.values())
        if not busy and not self._handoff and all(m.state == UP for m in self.states.values()):
            self.whole_epoch = self.epoch

    def _end_quietly(self, target: Node, token: object) -> None:
        """Tell ``target`` a repair of it ended unfinished (best effort: the server
        forgets it after a while anyway)."""

        async def end() -> None:
            with contextlib.suppress(RPCError, OSError):
                await self._call(target, "jubako.catch_up", [False, token])

        ending = asyncio.get_running_loop().create_task(end())
        self._probes.add(ending)
        ending.add_done_callback(self._probes.discard)

    async def _copy_from(
        self, source: Node, target: Node, names: list[str], holders: bool
    ) -> int | None:
        """Rows of ``source`` that ``target`` should hold (those ``source`` is a replica of
        too, or the others: see ``jubako.export``), copied; None when the servers keep no
        rows to copy (no ``export_rows``)."""
        copied = 0
        after: object = None
        while True:
            wanted = [names, self.replicas, node_name(target), node_name(source), holders]
            page = await self._call(source, "jubako.export", [*wanted, after, PAGE_ROWS])
            if page is None:
                log.info("%sits servers keep no rows to copy", self.label)
                self.repairable = False
                return None
            rows, after = page
            if rows:
                await self._call(target, "jubako.import", [rows])
                copied += len(rows)
            if after is None:
                return copied

    async def _call(self, node: Node, method: str, args: list[Any]) -> Any:
        return await self.pool.call(node[0], node[1], method, [self.cluster, *args])

    def _set(self, node: Node, state: str, reason: str) -> None:
        member = self.states.get(node)
        if member is None or (member.state == state and member.reason == reason):
            return
        changed = member.state != state
        member.state, member.reason = state, reason
        if changed:
            member.since = time.time()
            if state == UP:
                log.info("%s%s:%d is up", self.label, *node)
            else:
                detail = f" ({reason})" if reason else ""
                log.warning("%s%s:%d is %s%s", self.label, *node, state, detail)
            self.on_change()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
