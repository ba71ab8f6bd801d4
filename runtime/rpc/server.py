"""The MessagePack-RPC server: listening, connections, limits, and where calls run.

The server is five modules along its seams: this one listens, keeps the set of
connections and drains them on close; :mod:`runtime.rpc.connection` is one client's
connection (reading and framing, output, back-pressure, idling); :mod:`runtime.rpc.inline`
is the fast path, :mod:`runtime.rpc.frames` a faster one a service may offer;
:mod:`runtime.rpc.scheduler` runs everything else.

Where a call runs (the concurrency policy):

- A thread hop per call costs more server CPU than a cheap call itself, so cheap
  synchronous methods run **inline** on the event loop, with their replies written in one
  batch per read: at once, or with the other connections' at the end of the loop
  iteration while writing them at once lets clients take the server's CPU before it has
  served the others (:mod:`runtime.rpc.coalescing`).
- A call runs inline only when its method is *known to be fast* (its running duration
  estimate is under :data:`~runtime.rpc.inline.FAST_CALL_SECONDS`) **and** its lock can
  be taken without waiting (``try_acquire``). The loop thread never blocks on the model
  lock.
- A fast call whose lock is busy (a worker holds it) waits on the loop, in a queue kept in
  arrival order, and runs inline as soon as the lock is free: handing it to a worker
  instead would keep the lock busy for the calls behind it, and the server would stay on
  the slow path for as long as the load lasts. Later fast calls queue behind it, so a
  waiting writer is not overtaken by readers.
- Everything else (a method's first calls, methods seen to be slow) goes to a pool of
  ``threads`` worker threads, where waiting for the lock is fine.
  A slow call therefore occupies a worker, not the loop: other connections keep being
  served. One slow inline run is enough to send that method to the workers from then on.
- ``async def`` handlers run as tasks on the loop; ``start`` handlers (the proxy's
  relay) are started on the loop and answer through a callback.

How a read is answered: requests for methods known to be fast, with the right argument
count and the accepted cluster name, take the *inline path* (``inline.serve_read``): no
record objects, a function compiled per method that decodes, calls and encodes
(:class:`~runtime.rpc.dispatch.InlinePlan`), and the model lock taken once for the read's
run of such calls and given back at the end of the read, before any other call, or as
soon as a writer waits. Everything else (errors included) takes the general path, which
answers exactly as the inline path would. A service may go further for some methods
(:meth:`RpcServer.answer_frames_with`): the plain calls of them a read starts with are
answered from its bytes, with no objects at all (:mod:`runtime.rpc.frames`).

Limits (their detail is in :mod:`runtime.rpc.connection`): a message larger than
``max_message_size`` or bytes that are not MessagePack-RPC close only that connection (one
warning line); at most ``max_in_flight`` calls per connection wait for answers before the
server stops reading from it; it also stops reading from a client that does not read its
answers; an idle connection is closed after ``idle_timeout`` seconds (0, the default, never
closes: the official Jubatus client never reconnects). Notifications are executed and
never answered; the server never sends one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from runtime.rpc.coalescing import ReplyTiming
from runtime.rpc.connection import Connection
from runtime.rpc.dispatch import Dispatcher
from runtime.rpc.frames import FrameAnswerer
from runtime.rpc.inline import InlineTable, Timing
from runtime.rpc.listener import Listener, Network
from runtime.rpc.logbounds import Throttle
from runtime.rpc.scheduler import Scheduler

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT = 1024
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_READ_TIMEOUT = 30.0


class RpcServer:
    """Serves a :class:`Dispatcher` over TCP; ``await start()`` then ``.port``."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        threads: int = 2,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        idle_timeout: float = 0.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        allow: Sequence[Network] = (),
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        self.dispatcher = dispatcher
        self.host = host
        self.requested_port = port
        self.max_message_size = max_message_size
        self.max_in_flight = max_in_flight
        self.idle_timeout = idle_timeout
        #: Seconds a request that has begun to arrive may go without progress.
        self.read_timeout = read_timeout
        #: How the fast path runs each method, and every method's timing.
        self.inline = InlineTable(dispatcher)
        #: Where the other calls run: workers, tasks, the queue of calls waiting for a lock.
        self.scheduler = Scheduler(dispatcher, self.inline, threads)
        #: The service's answerer of whole requests, if any, and its methods' raw names
        #: (:meth:`answer_frames_with`).
        self.frames: FrameAnswerer | None = None
        self.frame_methods: tuple[bytes, ...] = ()
        self.connections: set[Connection] = set()
        #: The log lines clients can cause, at most one a second per kind.
        self.throttle = Throttle(logging.getLogger("runtime.rpc.connection"))
        self._to_flush: list[Connection] = []
        #: Whether read passes write their replies at once or at the end of the iteration.
        self.reply_timing = ReplyTiming()
        self._flush_handle: asyncio.Handle | None = None
        #: In :meth:`answering`: replies wait for its end, with no callback scheduled.
        self._answering = False
        #: Calls handed over and not yet answered, over every connection.
        self.pending = 0
        self._idle = asyncio.Event()
        self.listener = Listener(
            lambda: Connection(self),
            host,
            port,
            max_connections=max_connections,
            open_connections=lambda: len(self.connections),
            allow=allow,
            throttle=self.throttle,
        )

    def answer_frames_with(self, answerer: FrameAnswerer | None) -> None:
        """Let ``answerer`` answer its methods' plain calls from their bytes
        (:mod:`runtime.rpc.frames`); None stops it. ValueError for a method the dispatcher
        does not serve."""
        if answerer is not None:
            missing = [m for m in answerer.methods if m not in self.dispatcher.handlers]
            if missing or not answerer.methods:
                raise ValueError(f"no method {missing} to answer whole requests of")
        self.frames = answerer
        self.frame_methods = () if answerer is None else answerer.raw_methods

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self.listener.port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def timings(self) -> dict[str, Timing]:
        """Each method's running duration estimate (whether it is known to be fast)."""
        return self.inline.timings

    async def start(self) -> None:
        """Bind and listen; ``port=0`` picks a free port, read it from :attr:`port`."""
        self._idle.set()
        await self.listener.start()
        log.info("rpc server bound %s:%d", self.host, self.port)

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, wait up to ``drain_timeout`` for calls in flight, then close."""
        await self.listener.close()
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except TimeoutError:
            log.warning("closing with %d call(s) still in flight", self.pending)
        for connection in list(self.connections):
            connection.close()
        self.scheduler.close()

    def flush_soon(self, connection: Connection) -> None:
        """Write ``connection``'s replies at the end of this loop iteration. Connections
        share one callback per iteration: a relaying proxy answers many connections from
        one upstream read."""
        self._to_flush.append(connection)
        if len(self._to_flush) == 1 and not self._answering:
            # (The connection's loop: asyncio.get_running_loop() costs a getpid() call.)
            self._flush_handle = connection.loop.call_soon(self._flush_all)

    def answering(self, answer: Callable[[], None]) -> None:
        """Run ``answer``, which answers calls of any connections, then write the replies
        it made at once (not at the end of the loop iteration, with no callback for it)."""
        self._answering = True
        try:
            answer()
        finally:
            self._answering = False
            self.flush_now()

    def flush_now(self) -> None:
        """Write the replies :meth:`flush_soon` holds now, not at the end of the loop
        iteration: for a relaying proxy, when a server's read has answered all it can."""
        if self._to_flush:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._flush_all()

    def _flush_all(self) -> None:
        self._flush_handle = None
        to_flush, self._to_flush = self._to_flush, []
        self.reply_timing.flushed(len(set(to_flush)))  # (one flushed at once may come back)
        for connection in to_flush:
            connection.flush()
