"""The membership protocol servers, proxies and the mixer share, and its two helpers.

A :class:`Membership` says where the servers of one cluster (a service type and a name)
are. Servers announce themselves (:meth:`~Membership.register_node`, then
:meth:`~Membership.set_active` once their model is current); proxies and the mixer read
the lists (:meth:`~Membership.members`, :meth:`~Membership.actives`,
:meth:`~Membership.cht_members`) and are told when they change
(:meth:`~Membership.watch`).

Threads and loops: the ``async`` methods are called on the caller's event loop and never
block it (ZooKeeper calls run in worker threads). The list methods are plain, cheap reads
of a cache, safe from any thread. Watch callbacks always run on the event loop that was
running when :meth:`~Membership.watch` was called, whatever thread saw the change
(:class:`Watchers` does the hand-over with ``loop.call_soon_threadsafe``).

Failures seen by callers: :meth:`~Membership.mark_down` takes a server out of
:meth:`~Membership.actives` for ``retry_interval`` seconds, after which it is offered
again (:class:`DownList`). When every active server is marked down, all of them are
offered anyway: a connect error names the real problem, "no server" would not.

Nothing here talks to ZooKeeper or the network.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "ChangeCallback",
    "DownList",
    "Membership",
    "Node",
    "Snapshot",
    "Watchers",
]

log = logging.getLogger(__name__)

#: A server as ``(host, port)``.
Node = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The lists as the membership source last reported them (sorted, no duplicates).

    ``actives`` here is the source's view; :meth:`Membership.actives` also leaves out
    servers marked down.
    """

    #: Every running server (``nodes``).
    members: tuple[Node, ...] = ()
    #: Servers whose model is up to date (``actives``).
    actives: tuple[Node, ...] = ()
    #: Servers with virtual nodes on the consistent-hash ring (``cht``).
    cht: tuple[Node, ...] = ()


#: Called with the new snapshot, on the watcher's event loop, after every change.
ChangeCallback = Callable[[Snapshot], None]


@runtime_checkable
class Membership(Protocol):
    """Where the servers of one cluster are, and how a process announces itself."""

    async def start(self) -> None:
        """Connect (if needed) and load the lists; raises MembershipError if it cannot."""
        ...

    async def stop(self) -> None:
        """Withdraw everything this process registered and stop watching. Idempotent."""
        ...

    async def register_node(self, host: str, port: int) -> None:
        """Announce a server at ``host:port`` (plus its cht vnodes if the service uses cht)."""
        ...

    async def set_active(self, active: bool) -> None:
        """Mark the registered server up to date (``True``) or obsolete (``False``)."""
        ...

    async def register_proxy(self, host: str, port: int) -> None:
        """Announce a proxy at ``host:port``."""
        ...

    def members(self) -> list[Node]:
        """Every running server, sorted."""
        ...

    def actives(self) -> list[Node]:
        """Up-to-date servers not marked down, sorted (all of them if all are down)."""
        ...

    def cht_members(self) -> list[Node]:
        """Servers on the consistent-hash ring, sorted."""
        ...

    def snapshot(self) -> Snapshot:
        """The lists as last reported, in one consistent value."""
        ...

    def watch(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback`` on the running loop after each change; returns an unsubscriber."""
        ...

    def mark_down(self, host: str, port: int) -> None:
        """``host:port`` could not be reached: leave it out of ``actives()`` for a while."""
        ...

    def down(self) -> list[Node]:
        """Servers marked down and still within their retry interval, sorted."""
        ...

    def mark_up(self, host: str, port: int) -> None:
        """``host:port`` answered again: offer it at once."""
        ...


class Watchers:
    """Callbacks registered from event loops, called on their own loop after a change.

    :meth:`notify` may be called from any thread. A callback whose loop has closed is
    dropped; an exception in a callback is logged and does not reach the notifier.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[asyncio.AbstractEventLoop, ChangeCallback]] = []

    def add(self, callback: ChangeCallback) -> Callable[[], None]:
        """Register ``callback`` on the running loop; returns a function that unregisters it.

        Raises RuntimeError when called outside a running event loop.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("watch() must be called from a running event loop") from None
        entry = (loop, callback)
        with self._lock:
            self._entries.append(entry)

        def remove() -> None:
            with self._lock:
                if entry in self._entries:
                    self._entries.remove(entry)

        return remove

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def notify(self, snapshot: Snapshot) -> None:
        """Schedule every callback with ``snapshot`` on its loop (thread-safe, non-blocking)."""
        with self._lock:
            entries = list(self._entries)
        for entry in entries:
            loop, callback = entry
            try:
                loop.call_soon_threadsafe(self._deliver, callback, snapshot)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                with self._lock:
                    if entry in self._entries:
                        self._entries.remove(entry)

    @staticmethod
    def _deliver(callback: ChangeCallback, snapshot: Snapshot) -> None:
        try:
            callback(snapshot)
        except Exception:
            log.exception("membership watch callback %r failed", callback)


class DownList:
    """Servers callers found unreachable, each left out until its retry time (thread-safe)."""

    def __init__(
        self, retry_interval: float = 10.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """:param retry_interval: seconds a down server is left out before it is tried again."""
        if retry_interval < 0:
            raise ValueError(f"retry_interval must be >= 0, not {retry_interval}")
        self.retry_interval = retry_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._until: dict[Node, float] = {}

    def mark_down(self, node: Node) -> None:
        with self._lock:
            self._until[node] = self._clock() + self.retry_interval

    def mark_up(self, node: Node) -> bool:
        """Forget ``node``'s failure; True if it was marked down."""
        with self._lock:
            return self._until.pop(node, None) is not None

    def is_down(self, node: Node) -> bool:
        """True while ``node`` is within its retry interval."""
        with self._lock:
            until = self._until.get(node)
        return until is not None and self._clock() < until

    def down(self) -> list[Node]:
        """Servers currently left out, sorted."""
        now = self._clock()
        with self._lock:
            return sorted(node for node, until in self._until.items() if now < until)

    def usable(self, nodes: Iterable[Node]) -> list[Node]:
        """``nodes`` without the ones down; all of ``nodes`` if every one is down."""
        candidates = list(nodes)
        now = self._clock()
        with self._lock:
            up = [node for node in candidates if self._until.get(node, now) <= now]
        if not up and candidates:
            return candidates
        return up
