"""The MessagePack-RPC server: asyncio protocol, pipelining, limits, and where calls run.

Where a call runs (the concurrency policy):

- A thread hop per call costs more server CPU than a cheap call itself, so cheap
  synchronous methods run **inline** on the event loop, with their replies written in one
  batch per read.
- A call runs inline only when its method is *known to be fast* (its running duration
  estimate is under :data:`FAST_CALL_SECONDS`) **and** its lock can be taken without
  waiting (``try_acquire``). The loop thread never blocks on the model lock.
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
count and the accepted cluster name, take the *inline path* (``_serve_read``): no record
objects, a function compiled per method that decodes, calls and encodes
(:class:`~runtime.rpc.dispatch.InlinePlan`), and the model lock taken once for the read's
run of such calls and given back at the end of the read, before any other call, or as
soon as a writer waits. Everything else (errors included) takes the general path, which
answers exactly as the inline path would.

Limits: a message larger than ``max_message_size`` or bytes that are not
MessagePack-RPC close only that connection (one warning line); at most ``max_in_flight``
calls per connection wait for workers before the server stops reading from it; the
server also stops reading from a client that does not read its answers, once
``max_message_size`` bytes of them wait to be sent, until they drain (checked every
:data:`MAX_SERVED_PER_PASS` requests), so a client that pipelines without reading costs
the server a bounded amount of memory; a client's EOF closes its connection once what it
sent is answered; an idle connection is closed after ``idle_timeout`` seconds (0, the
default, never closes: the official Jubatus client never reconnects), dropped if its
answers still wait for it to read. TCP keepalive finds dead peers. Notifications are
executed and never answered; the server never sends one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import time
import typing
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

from runtime.errors import MessageTooLarge, ProtocolError
from runtime.locks import LockMode, RWLock
from runtime.rpc.dispatch import (
    BAD_ARGUMENTS,
    BadResult,
    Call,
    Dispatcher,
    ErrorReply,
    InlinePlan,
    error_of,
)
from runtime.rpc.protocol import (
    MSGID_LIMIT,
    Decoder,
    Message,
    Notification,
    Request,
    response_packer,
    unsent,
)

log = logging.getLogger(__name__)

#: A method whose estimated duration is under this runs inline on the event loop.
FAST_CALL_SECONDS = 0.001
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT = 1024
#: Inline calls are timed one in this many.
SAMPLE_EVERY = 8
#: Requests one pass over a connection's buffered input answers before the loop runs
#: again (other connections, and a check that this client reads its answers).
MAX_SERVED_PER_PASS = 256
#: A method timed on workers under this may be probed on the loop, one call in PROBE_EVERY.
PROBE_LIMIT_SECONDS = 0.02
PROBE_EVERY = 16
#: How often calls waiting for a busy lock are retried (besides after each worker call).
RETRY_BLOCKED_SECONDS = 0.0005
#: Method names (known or not) whose inline plans a server keeps.
_INLINE_CACHE_SIZE = 256
_ANALYSIS, _UPDATE, _NOLOCK = LockMode.ANALYSIS, LockMode.UPDATE, LockMode.NOLOCK


class _Timing:
    """Running estimate of one method's duration."""

    __slots__ = ("entries", "estimate", "fast", "runs")

    def __init__(self) -> None:
        self.estimate = 0.0
        self.runs = 0
        #: Timed at least once and estimated under FAST_CALL_SECONDS: runs inline.
        self.fast = False
        #: The inline entries of this method, told when ``fast`` changes.
        self.entries: list[_Inline] = []

    def record(self, seconds: float, *, on_loop: bool = False) -> None:
        """Add one run. A fast run timed on the loop thread sets the estimate: it is exact.
        A worker's time also holds its waits for the GIL (up to the switch interval while
        the loop is busy), so a fast worker run only pulls the estimate down slowly."""
        self.runs += 1
        if seconds > FAST_CALL_SECONDS:
            self.estimate = max(seconds, self.estimate)
        elif on_loop:
            self.estimate = seconds
        else:
            self.estimate = self.estimate * 0.8 + seconds * 0.2
        fast = self.estimate < FAST_CALL_SECONDS
        if fast is not self.fast:
            self.fast = fast
            for entry in self.entries:
                entry.ready_arity = entry.arity if fast else -1

    def should_probe(self) -> bool:
        """Whether a method that looks slow, but not very, should run once on the loop to be
        timed exactly (a trivial method timed on busy workers looks slow for ever)."""
        return 0 < self.runs and self.estimate < PROBE_LIMIT_SECONDS and not self.runs % PROBE_EVERY

    def skip(self) -> None:
        """Count a run that was not timed."""
        self.runs += 1


class _Inline:
    """A method's :class:`InlinePlan` with this server's timing of it; without a plan, the
    entry of a name the inline path cannot run (it matches no call: arity -1)."""

    __slots__ = ("arity", "lock", "plan", "ready_arity", "run", "start", "timing")

    def __init__(self, plan: InlinePlan | None, timing: _Timing) -> None:
        self.plan = plan
        self.timing = timing
        self.lock = LockMode.NOLOCK if plan is None else plan.lock
        self.arity = -1 if plan is None else plan.arity
        #: ``arity`` while the method is known to be fast, else -1 (no call has it): one
        #: comparison checks both on the inline path. Kept by ``timing`` once the server
        #: caches the entry.
        self.ready_arity = self.arity if timing.fast else -1
        self.run = _never_run if plan is None else plan.run
        self.start = None if plan is None else plan.start

    def call(self, params: list[Any]) -> Call:
        """A record of one call, for the rare replies that need one (errors)."""
        assert self.plan is not None
        return Call(self.plan.name, self.plan.handler, [], params[0])


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
    ) -> None:
        self.dispatcher = dispatcher
        self.host = host
        self.requested_port = port
        self.max_message_size = max_message_size
        self.max_in_flight = max_in_flight
        self.idle_timeout = idle_timeout
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="rpc")
        self.timings: dict[str, _Timing] = {}
        #: Raw method name → how the inline path runs it (an entry that matches no call
        #: when it cannot), for ``inline_version`` of the dispatcher's table.
        self.inline: dict[bytes, _Inline] = {}
        self.inline_version = -1
        self.connections: set[_Connection] = set()
        #: Fast calls waiting on the loop for a lock a worker holds, in arrival order.
        self.blocked: deque[tuple[_Connection, int | None, Call]] = deque()
        self._retry_handle: asyncio.TimerHandle | None = None
        self._to_flush: list[_Connection] = []
        #: How the inline path takes and gives back a read of the model lock (set on the
        #: first read, on the loop's thread: see :meth:`claim_read_ops`).
        self.read_ops: tuple[Callable[[], bool], Callable[[], None]] | None = None
        self._flush_handle: asyncio.Handle | None = None
        self.pending = 0
        self._idle = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self._port)

    async def start(self) -> None:
        """Bind and listen; ``port=0`` picks a free port, read it from :attr:`port`."""
        loop = asyncio.get_running_loop()
        self._idle.set()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self.requested_port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("rpc server bound %s:%d", self.host, self._port)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, wait up to ``drain_timeout`` for calls in flight, then close."""
        if self._server is not None:
            self._server.close()
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except TimeoutError:
            log.warning("closing with %d call(s) still in flight", self.pending)
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def defer(self, connection: _Connection, msgid: int | None, call: Call) -> None:
        """Queue a fast call whose lock is busy; it runs inline, in order, once free."""
        connection._start_pending()
        self.blocked.append((connection, msgid, call))
        if self._retry_handle is None:
            self._retry_handle = asyncio.get_running_loop().call_later(
                RETRY_BLOCKED_SECONDS, self.retry_blocked
            )

    def retry_blocked(self) -> None:
        """Run queued calls in order while their locks are free (called after a worker
        finishes, and on a short timer while anything waits: threads outside the pool,
        such as the mixer's, hold the model lock too)."""
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        blocked = self.blocked
        while blocked:
            connection, msgid, call = blocked[0]
            try:
                ran, result = self.dispatcher.try_run_inline(call)
            except Exception as error:
                blocked.popleft()
                connection._end_pending()
                connection._fail(msgid, call, error)
                continue
            if not ran:
                break
            blocked.popleft()
            connection._end_pending()
            connection._succeed(msgid, call, result)
        if blocked:
            self._retry_handle = asyncio.get_running_loop().call_later(
                RETRY_BLOCKED_SECONDS, self.retry_blocked
            )

    def inline_entry(self, raw_name: object) -> _Inline:
        """How the inline path runs the method called ``raw_name`` (an entry matching no
        call when it cannot: a name that is not a string is not cached)."""
        if type(raw_name) is not bytes:
            return _Inline(None, _Timing())
        try:
            plan = self.dispatcher.inline_plan(raw_name.decode("utf-8"))
        except UnicodeDecodeError:
            plan = None
        if plan is None:
            entry = _Inline(None, _Timing())
        else:  # start handlers are not timed: they never run inline, only start there
            entry = _Inline(plan, _Timing() if plan.start else self.timing(plan.name))
        if len(self.inline) < _INLINE_CACHE_SIZE:
            self.inline[raw_name] = entry
            entry.timing.entries.append(entry)
        return entry

    def clear_inline(self) -> None:
        """Forget the inline entries (the dispatcher's table changed)."""
        self.inline.clear()
        for timing in self.timings.values():
            timing.entries.clear()
        self.inline_version = self.dispatcher.version

    def claim_read_ops(self) -> tuple[Callable[[], bool], Callable[[], None]]:
        """The loop's reads of the model lock: without its mutex when this thread can claim
        them (``RWLock.claim_loop_reads``), else the ordinary ones."""
        lock = self.dispatcher.model_lock
        if lock.claim_loop_reads():
            self.read_ops = (lock.try_acquire_loop_read, lock.release_loop_read)
        else:
            self.read_ops = (lock.try_acquire_read, lock.release_read)
        return self.read_ops

    def flush_soon(self, connection: _Connection) -> None:
        """Write ``connection``'s replies at the end of this loop iteration. Connections
        share one callback per iteration: a relaying proxy answers many connections from
        one upstream read."""
        self._to_flush.append(connection)
        if len(self._to_flush) == 1:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush_all)

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
        for connection in to_flush:
            connection._flush()

    def timing(self, method: str) -> _Timing:
        timing = self.timings.get(method)
        if timing is None:
            timing = self.timings[method] = _Timing()
        return timing

    def call_started(self) -> None:
        if not self.pending:
            self._idle.clear()
        self.pending += 1

    def call_finished(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self._idle.set()


class _Connection(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: RpcServer) -> None:
        self.server = server
        self.dispatcher = server.dispatcher
        self.decoder = Decoder(server.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.out: list[bytes] = []
        self.pack = response_packer().pack
        self.flush_scheduled = False
        self.in_read = False
        #: Whether DEBUG logging is on, read once per batch of requests (not per request).
        self.debug = False
        #: Inline calls until the next one is timed (each connection times one in
        #: SAMPLE_EVERY: enough to notice a method turning slow).
        self.sample_countdown = 1
        self.in_flight = 0
        #: Not reading because ``max_in_flight`` calls wait for answers ...
        self.paused = False
        #: ... or because the client does not read its answers (the transport's output is
        #: past its high-water mark).
        self.write_blocked = False
        self.reading = True
        #: Requests left in the decoder when the connection stopped reading, and whether a
        #: pass over them is scheduled (once it may read again).
        self.unserved = False
        self.serve_scheduled = False
        #: The client sent its EOF: close once everything it sent is answered.
        self.eof = False
        self.closing = False
        self.closed = False
        self.peer = "?"
        self.last_activity = time.monotonic()
        #: Whether idle connections are closed (else last_activity is not kept).
        self.tracks_idle = server.idle_timeout > 0
        self.idle_handle: asyncio.TimerHandle | None = None
        #: Bytes of answers written to the transport, and how many of them the client
        #: had taken at the last idle check (more now: it reads).
        self.written = 0
        self.idle_taken = 0

    # -- transport events --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = typing.cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Answers may wait to be sent up to the size a request may have: a client may
        # send a batch that large before it reads (then reading it stops: pause_writing).
        self.transport.set_write_buffer_limits(high=self.server.max_message_size)
        if self.server.idle_timeout > 0:
            self.idle_handle = self.loop.call_later(self.server.idle_timeout, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.idle_handle is not None:
            self.idle_handle.cancel()

    def close(self) -> None:
        if self.transport is not None and not self.closed and not self.closing:
            self.closing = True  # no more passes over the input
            self._flush()
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.tracks_idle:
            self.last_activity = time.monotonic()
        try:
            self.decoder.push(data)
        except MessageTooLarge as error:
            self._abort(error)
            return
        if self._serve_pass():  # stopped at MAX_SERVED_PER_PASS: more may wait
            self._serve_rest()

    def eof_received(self) -> bool:
        """asyncio: the client sent all it will send. Its requests are answered first; the
        connection closes once they are (True keeps the transport open until then)."""
        self.eof = True
        self._close_if_answered()
        return True

    def _close_if_answered(self) -> None:
        if self.eof and not self.in_flight and not self.unserved:
            self.close()

    def _serve_pass(self) -> bool:
        """Answer what the input holds, up to :data:`MAX_SERVED_PER_PASS` requests, and
        write the replies; True when it stopped at that limit (more requests may wait)."""
        self.in_read = True
        self.debug = log.isEnabledFor(logging.DEBUG)
        try:
            full = self._serve_read()
        finally:
            self.in_read = False
        if self.out:
            self._flush()  # past the high-water mark, this pauses reading (pause_writing)
        return full

    def _serve_rest(self) -> None:
        """Serve pass after pass while the connection may read; what is left when it may
        not waits in the decoder for :meth:`_update_reading` to let it read again."""
        while self.reading and not self.closing and not self.closed:
            if not self._serve_pass():
                self.unserved = False
                self._close_if_answered()
                return
        self.unserved = True

    def _serve_unserved(self) -> None:
        self.serve_scheduled = False
        if self.unserved:
            self._serve_rest()

    def pause_writing(self) -> None:
        """asyncio: the client does not read its answers fast enough; read no more
        requests from it until it does."""
        log.info("client %s is not reading its answers: not reading its requests", self.peer)
        self.write_blocked = True
        self._update_reading()

    def resume_writing(self) -> None:
        if self.tracks_idle:  # the client reads: not idle
            self.last_activity = time.monotonic()
        self.write_blocked = False
        self._update_reading()

    def _update_reading(self) -> None:
        """Read from the client unless it waits on too many calls or does not read."""
        reading = not (self.paused or self.write_blocked)
        if reading == self.reading or self.transport is None:
            return
        self.reading = reading
        if self.closed or self.closing:
            return
        if not reading:
            self.transport.pause_reading()
            return
        self.transport.resume_reading()
        if self.unserved and not self.serve_scheduled:
            self.serve_scheduled = True
            self.loop.call_soon(self._serve_unserved)

    def _abort(self, error: Exception) -> None:
        log.warning("closing connection from %s: %s", self.peer, error)
        self.closed = True
        assert self.transport is not None
        self.transport.abort()

    def _serve_read(self) -> bool:
        """Answer the messages the input holds, up to :data:`MAX_SERVED_PER_PASS`; True
        when it stopped at that limit.

        The inline path: a well-formed request for a method known to be fast, with the
        right argument count and the accepted cluster name, runs right here, with no
        record objects, under the model lock this read holds for its whole run of such
        calls (taken once; given up when a writer waits, and before any other call, a
        ``#@nolock`` one included: it may take the model lock itself, as ``load`` does).
        Everything else goes through :meth:`_handle`.
        """
        server = self.server
        dispatcher = self.dispatcher
        if server.inline_version != dispatcher.version:
            server.clear_inline()
        inline = server.inline
        lock = dispatcher.model_lock
        try_read, release_read = server.read_ops or server.claim_read_ops()
        decoder = self.decoder
        # The replies of this read's inline calls, packed together: before any other reply
        # is written (the order is kept) and at the end of the read.
        replies: list[tuple[int, int, None, Any]] = []
        reply = replies.append
        # Refreshed after every call that takes the general path (it may change them).
        inline_ok = not self.debug and not server.blocked
        accepted = dispatcher.accepted_name
        held: LockMode | None = None  # the model lock this read holds, if any
        analysis, update, nolock, bad_arguments = _ANALYSIS, _UPDATE, _NOLOCK, BAD_ARGUMENTS
        limit = MSGID_LIMIT
        countdown = self.sample_countdown
        served = 0
        try:
            # ``served`` is read after the loop: whether this pass stopped at the limit.
            for served, obj in enumerate(islice(decoder.unpacker, MAX_SERVED_PER_PASS), 1):  # noqa: B007
                try:
                    try:  # a request is [0, msgid, method, params]
                        kind, msgid, raw_name, params = obj
                    except (TypeError, ValueError):  # not a sequence of four
                        kind = None
                    if kind == 0 and inline_ok and type(params) is list:
                        try:
                            entry = inline[raw_name]
                        except (KeyError, TypeError):  # new, or not even hashable
                            entry = server.inline_entry(raw_name)
                        if (
                            len(params) == entry.ready_arity  # -1 unless known to be fast
                            and params[0] == accepted
                            and type(msgid) is int
                            and 0 <= msgid < limit
                        ):
                            mode = entry.lock
                            if mode is held:  # a writer waiting makes readers let go
                                runnable = mode is not analysis or not lock.waiting_writers
                            elif mode is nolock:
                                if held is not None:  # it may take the lock itself (load)
                                    _release(lock, held, release_read)
                                    held = None
                                runnable = True
                            elif held is update:
                                runnable = True
                            elif held is None:
                                if mode is analysis:
                                    runnable = try_read()
                                else:
                                    runnable = lock.try_acquire_write()
                                if runnable:
                                    held = mode
                            else:  # held for reading, and an update comes
                                held = self._upgrade()
                                runnable = held is not None
                            if runnable:
                                countdown -= 1
                                try:
                                    if countdown:
                                        result = entry.run(params)
                                    else:  # time one inline call in SAMPLE_EVERY
                                        countdown = SAMPLE_EVERY
                                        started = time.perf_counter()
                                        result = entry.run(params)
                                        entry.timing.record(
                                            time.perf_counter() - started, on_loop=True
                                        )
                                except Exception as error:
                                    if mode is update and type(error) is BadResult:
                                        self._updated()  # the method did run
                                    if replies:
                                        self._pack_replies(replies)
                                    self._fail(msgid, entry.call(params), error)
                                    continue
                                if result is not bad_arguments:
                                    if mode is update:
                                        self._updated()
                                    reply((1, msgid, None, result))
                                    continue
                        elif (
                            entry.start is not None
                            and len(params) == entry.arity
                            and type(msgid) is int
                            and 0 <= msgid < limit
                        ):
                            if held is not None:
                                _release(lock, held, release_read)
                                held = None
                            if replies:
                                self._pack_replies(replies)
                            self._start_pending()
                            done = functools.partial(self._started_done, msgid, entry, params)
                            try:
                                entry.start(params, done)
                            except Exception as error:
                                done(error, None)
                            continue
                    # The general path: give up the lock this read holds first.
                    if held is not None:
                        _release(lock, held, release_read)
                        held = None
                    if replies:
                        self._pack_replies(replies)
                    self._handle_message(decoder.message(obj))
                    inline_ok = not self.debug and not server.blocked
                    accepted = dispatcher.accepted_name
                except ProtocolError:
                    raise
                except Exception:
                    log.exception("internal error answering a message from %s", self.peer)
        except Exception as error:  # from the unpacker, or a malformed message
            self._abort(decoder.stream_error(error))
            return False
        finally:
            self.sample_countdown = countdown
            if held is not None:
                _release(lock, held, release_read)
            if replies:
                self._pack_replies(replies)
        return served == MAX_SERVED_PER_PASS

    def _pack_replies(self, replies: list[tuple[int, int, None, Any]]) -> None:
        """Add the inline calls' ``replies`` to the output, packed in one call (as an
        array, whose header is cut off), and empty the list."""
        count = len(replies)
        try:
            if count == 1:
                packed = self.pack(replies[0])
            else:  # fixarray header under 16 items, array 16 under 65536, else array 32
                packed = self.pack(replies)[1 if count < 16 else 3 if count < 0x10000 else 5 :]
        except (TypeError, ValueError, OverflowError):  # a result that does not pack
            self.pack = response_packer().pack  # a packer that failed may hold a partial value
            for _, msgid, _, result in replies:
                self._reply(msgid, None, result)  # the error reply for those that fail
        else:
            self.out.append(packed)
        replies.clear()

    def _started_done(
        self,
        msgid: int,
        entry: _Inline,
        params: list[Any],
        error: BaseException | None,
        result: Any,
    ) -> None:
        """How a ``start`` handler started on the inline path (the proxy's relay) ends."""
        self._end_pending()
        if error is None:
            self._reply(msgid, None, result)
        else:
            self._fail(msgid, entry.call(params), error)

    def _upgrade(self) -> LockMode | None:
        """Trade the read lock an inline run holds for the write lock; returns what is held
        afterwards (None: the lock is busy, the call takes the general path)."""
        lock = self.dispatcher.model_lock
        (self.server.read_ops or self.server.claim_read_ops())[1]()
        return _UPDATE if lock.try_acquire_write() else None

    def _updated(self) -> None:
        on_update = self.dispatcher.on_update
        if on_update is not None:
            on_update()

    def _handle_message(self, message: Message) -> None:
        if isinstance(message, Request):
            self._handle(message.msgid, message.method, message.params)
        elif isinstance(message, Notification):
            self._handle(None, message.method, message.params)
        else:
            log.debug("ignoring a response sent by %s", self.peer)

    # -- calls -------------------------------------------------------------------------

    def _handle(self, msgid: int | None, method: str, params: list[Any]) -> None:
        prepared = self.dispatcher.prepare(method, params)
        if isinstance(prepared, ErrorReply):
            if method not in self.dispatcher.handlers:
                log.info("unknown method %r from %s", method, self.peer)
            if self.debug:
                cluster = _shown(params[0]) if params else "-"
                log.debug(
                    "request %s msgid=%s peer=%s cluster=%s refused: %s",
                    method, msgid, self.peer, cluster, prepared.result or prepared.error,
                )  # fmt: skip
            self._reply(msgid, prepared.error, prepared.result)
            return
        call = prepared
        if self.debug:
            call.started = time.perf_counter()
        handler = call.handler
        if handler.start is not None:
            self._start_pending()
            try:
                handler.start(
                    call.args, lambda error, result: self._done(msgid, call, error, result)
                )
            except Exception as error:
                self._done(msgid, call, error, None)
            return
        if handler.is_async:
            self._start_pending()
            task = self.loop.create_task(handler.func(*call.args))
            task.add_done_callback(lambda t: self._async_done(msgid, call, t))
            return
        timing = self.server.timings.get(method) or self.server.timing(method)
        fast = timing.fast and not handler.on_worker
        if fast or (timing.should_probe() and not handler.on_worker):
            if fast and self.server.blocked:  # keep the order: behind calls waiting for a lock
                self.server.defer(self, msgid, call)
                return
            # Time one inline call in SAMPLE_EVERY: enough to notice a method turning slow.
            sampled = not fast or not timing.runs % SAMPLE_EVERY
            started = time.perf_counter() if sampled else 0.0
            try:
                ran, result = self.dispatcher.try_run_inline(call)
            except Exception as error:
                if sampled:
                    timing.record(time.perf_counter() - started, on_loop=True)
                else:
                    timing.skip()
                self._fail(msgid, call, error)
                return
            if ran:
                if sampled:
                    timing.record(time.perf_counter() - started, on_loop=True)
                else:
                    timing.skip()
                self._succeed(msgid, call, result)
                return
            if fast:
                # The lock is held by a worker: wait on the loop, not on another worker.
                self.server.defer(self, msgid, call)
                return
        self._start_pending()
        future = self.loop.run_in_executor(self.server.executor, self._run_timed, call)
        future.add_done_callback(lambda f: self._worker_done(msgid, call, f))

    def _run_timed(self, call: Call) -> tuple[float, Any]:
        try:
            return self.dispatcher.run_blocking(call)
        finally:
            timing = self.server.timing(call.name)
            self.loop.call_soon_threadsafe(timing.record, call.ran_seconds)

    def _worker_done(self, msgid: int | None, call: Call, future: asyncio.Future[Any]) -> None:
        self._end_pending()
        if self.server.blocked:
            self.server.retry_blocked()
        if future.cancelled():
            self._reply(msgid, "cancelled: the server is shutting down", None)
            return
        error = future.exception()
        if error is not None:
            self._fail(msgid, call, error)
        else:
            self._succeed(msgid, call, future.result()[1])

    def _async_done(self, msgid: int | None, call: Call, task: asyncio.Task[Any]) -> None:
        self._end_pending()
        if task.cancelled():
            self._reply(msgid, "cancelled: the server is shutting down", None)
            return
        error = task.exception()
        if error is not None:
            self._fail(msgid, call, error)
        else:
            self._succeed(msgid, call, task.result())

    def _done(
        self, msgid: int | None, call: Call, error: BaseException | None, result: Any
    ) -> None:
        self._end_pending()
        if error is not None:
            self._fail(msgid, call, error)
        else:
            self._succeed(msgid, call, result)

    def _succeed(self, msgid: int | None, call: Call, result: Any) -> None:
        error, wire = self.dispatcher.encode(call, result)
        if call.started:
            self._log_request(msgid, call, "ok" if error is None else "error")
        self._reply(msgid, error, wire)

    def _fail(self, msgid: int | None, call: Call, error: BaseException) -> None:
        if getattr(error, "wire_error", None) is None:
            log.warning(
                "%s from %s (cluster %s) failed: %s: %s",
                call.name, self.peer, _shown(call.cluster), type(error).__name__, error,
            )  # fmt: skip
        if call.started:
            self._log_request(msgid, call, f"error {type(error).__name__}")
        wire_error, result = error_of(error)
        self._reply(msgid, wire_error, result)

    def _log_request(self, msgid: int | None, call: Call, outcome: str) -> None:
        """The per-request DEBUG line (only for calls that arrived while DEBUG was on)."""
        micros = (time.perf_counter() - call.started) * 1e6
        log.debug(
            "request %s msgid=%s peer=%s cluster=%s %s in %.0fus",
            call.name, msgid, self.peer, _shown(call.cluster), outcome, micros,
        )  # fmt: skip

    def _start_pending(self) -> None:
        self.in_flight += 1
        server = self.server
        if not server.pending:  # as server.call_started() does
            server._idle.clear()
        server.pending += 1
        if self.in_flight >= self.server.max_in_flight and not self.paused:
            self.paused = True
            self._update_reading()

    def _end_pending(self) -> None:
        self.in_flight -= 1
        server = self.server
        server.pending -= 1  # as server.call_finished() does
        if not server.pending:
            server._idle.set()
        if self.tracks_idle:
            self.last_activity = time.monotonic()
        if self.paused:
            self._resume_if_drained()
        if self.eof:  # after the caller has added this call's answer to the output
            self.loop.call_soon(self._close_if_answered)

    def _resume_if_drained(self) -> None:
        """Read again once half the calls a paused connection waits for are answered."""
        if self.in_flight < self.server.max_in_flight // 2 + 1:
            self.paused = False
            self._update_reading()

    # -- output ------------------------------------------------------------------------

    def _reply(self, msgid: int | None, error: Any, result: Any) -> None:
        if msgid is None or self.closed:
            return
        try:
            self.out.append(self.pack([1, msgid, error, result]))
        except (TypeError, ValueError, OverflowError) as problem:
            log.error("cannot pack the reply to msgid %d: %s", msgid, problem)
            self.pack = response_packer().pack
            self.out.append(self.pack([1, msgid, f"cannot pack the result: {problem}", None]))
        if not self.flush_scheduled and not self.in_read:
            self.flush_scheduled = True
            self.server.flush_soon(self)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.closed:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            if self.tracks_idle:  # the idle check reads what the client has taken
                self.written += len(data)
            self.transport.write(data)
        self.out.clear()

    def _check_idle(self) -> None:
        timeout = self.server.idle_timeout
        now = time.monotonic()
        assert self.transport is not None
        waiting = unsent(self.transport)
        taken = self.written - waiting  # answers the client has taken so far
        if taken > self.idle_taken:
            self.last_activity = now
        self.idle_taken = taken
        idle_for = now - self.last_activity
        if self.in_flight == 0 and idle_for >= timeout:
            if waiting:  # close() would wait for it to read: drop it
                self._abort(
                    ConnectionError(f"it has read none of its answers for {idle_for:.1f} s")
                )
                return
            log.info("closing idle connection from %s after %.1f s", self.peer, idle_for)
            self.close()
            # Answers the transport does not show (uvloop hands them to libuv) may still
            # wait for a client that does not read: drop it if it is not gone by then.
            self.idle_handle = self.loop.call_later(timeout, self._abort_if_open)
            return
        self.idle_handle = self.loop.call_later(max(timeout - idle_for, 0.05), self._check_idle)

    def _abort_if_open(self) -> None:
        if not self.closed:
            self._abort(ConnectionError("closed as idle, and its answers are still unread"))


def _never_run(params: list[Any]) -> Any:
    raise AssertionError("an entry without a plan matches no call")


def _release(lock: RWLock, held: LockMode, release_read: Callable[[], None]) -> None:
    """Give up the model lock an inline run holds (``held`` is what it took; a read is
    given back with ``release_read``, the server's way of taking it)."""
    if held is LockMode.ANALYSIS:
        release_read()
    else:
        lock.release_write()


def _shown(cluster: object) -> str:
    """A cluster name as sent, for a log line."""
    if isinstance(cluster, bytes):
        return cluster.decode("utf-8", "replace")
    return "-" if cluster is None else str(cluster)
