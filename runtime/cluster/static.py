"""A fixed list of servers: the standalone cluster, no ZooKeeper (``--servers h:p,h:p``).

Every listed server is a member, is active and is on the cht ring. The only thing that
changes is what callers report: :meth:`StaticMembership.mark_down` leaves a server out of
:meth:`~StaticMembership.actives` for ``retry_interval`` seconds, then it is tried again;
:meth:`~StaticMembership.mark_up` brings it back at once. Watchers hear about both.

Registering (servers, proxies) is accepted and does nothing: a static cluster is described
by its list, not by announcements. This module does no I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from runtime.cluster.membership import ChangeCallback, DownList, Node, Snapshot, Watchers

__all__ = ["StaticMembership", "parse_servers"]

log = logging.getLogger(__name__)


def parse_servers(spec: str) -> list[Node]:
    """``"h1:9199,h2:9199"`` → ``[("h1", 9199), ("h2", 9199)]`` in the given order.

    Hosts may be names or addresses (IPv6 in brackets: ``[::1]:9199``); ports are 1-65535.
    Raises ValueError naming the bad entry on an empty list, an entry without a port, a
    bad port, or the same server listed twice.
    """
    entries = [entry.strip() for entry in spec.split(",")]
    if not spec.strip() or not all(entries):
        raise ValueError(f"server list {spec!r}: expected HOST:PORT[,HOST:PORT...]")
    nodes: list[Node] = []
    for entry in entries:
        if entry.startswith("["):  # [IPv6]:port
            host, sep, port_text = entry[1:].partition("]:")
        else:
            host, sep, port_text = entry.rpartition(":")
            if ":" in host:
                raise ValueError(f"server {entry!r}: write IPv6 addresses as [ADDR]:PORT")
        if not sep or not host or any(c.isspace() for c in host):
            raise ValueError(f"server {entry!r}: expected HOST:PORT")
        digits = port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
        if not digits or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"server {entry!r}: port {port_text!r} is not in 1..65535")
        node = (host, int(port_text))
        if node in nodes:
            raise ValueError(f"server {entry!r} is listed twice")
        nodes.append(node)
    return nodes


class StaticMembership:
    """A :class:`~runtime.cluster.membership.Membership` over a fixed list of servers."""

    def __init__(
        self,
        nodes: Iterable[Node],
        *,
        retry_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """:param nodes: the servers; :param retry_interval: seconds a down server sits out."""
        members = tuple(sorted(set(nodes)))
        if not members:
            raise ValueError("a static membership needs at least one server")
        self._snapshot = Snapshot(members=members, actives=members, cht=members)
        self._down = DownList(retry_interval, clock=clock)
        self._watchers = Watchers()

    @classmethod
    def from_spec(cls, spec: str, *, retry_interval: float = 10.0) -> StaticMembership:
        """Build from ``--servers`` text (see :func:`parse_servers`)."""
        return cls(parse_servers(spec), retry_interval=retry_interval)

    async def start(self) -> None:
        log.info("static membership: %s", ", ".join(f"{h}:{p}" for h, p in self.members()))

    async def stop(self) -> None:
        self._watchers.clear()

    async def register_node(self, host: str, port: int) -> None:
        log.debug("static membership: register_node(%s, %d) has nothing to do", host, port)

    async def set_active(self, active: bool) -> None:
        log.debug("static membership: set_active(%s) has nothing to do", active)

    async def register_proxy(self, host: str, port: int) -> None:
        log.debug("static membership: register_proxy(%s, %d) has nothing to do", host, port)

    def members(self) -> list[Node]:
        return list(self._snapshot.members)

    def actives(self) -> list[Node]:
        return self._down.usable(self._snapshot.actives)

    def cht_members(self) -> list[Node]:
        return list(self._snapshot.cht)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def down(self) -> list[Node]:
        """Servers currently left out of :meth:`actives`."""
        return self._down.down()

    def watch(self, callback: ChangeCallback) -> Callable[[], None]:
        return self._watchers.add(callback)

    def mark_down(self, host: str, port: int) -> None:
        node = (host, port)
        if node not in self._snapshot.members:
            log.debug("mark_down(%s:%d): not a member, ignored", host, port)
            return
        if not self._down.is_down(node):
            log.debug(  # the proxy's keeper logs each server's state
                "%s:%d marked down; retried after %.1fs", host, port, self._down.retry_interval
            )
        self._down.mark_down(node)
        self._watchers.notify(self._snapshot)

    def mark_up(self, host: str, port: int) -> None:
        if self._down.mark_up((host, port)):
            log.debug("%s:%d is up again", host, port)
            self._watchers.notify(self._snapshot)
