"""One client connection of the RPC server: reading, framing, output, back-pressure, idling.

Reading and framing: bytes go into the connection's
:class:`~runtime.rpc.protocol.Decoder` (a message larger than ``max_message_size`` or bytes
that are not MessagePack-RPC close only this connection, with one warning line); each pass
over the input (:func:`~runtime.rpc.inline.serve_read`) answers up to
:data:`~runtime.rpc.inline.MAX_SERVED_PER_PASS` requests, and what it cannot run on the
fast path comes to :meth:`Connection.handle_message`, then to the server's
:class:`~runtime.rpc.scheduler.Scheduler`.

Output: replies are packed into ``out`` and written once per read (or once per loop
iteration for replies that come later, shared by every connection: see
:meth:`~runtime.rpc.server.RpcServer.flush_soon`).

Back-pressure: the connection stops reading from a client that waits on
``max_in_flight`` calls (until half are answered), and from a client that does not read
its answers, once ``max_message_size`` bytes of them wait to be sent (asyncio's
``pause_writing``), until they drain: a client that pipelines without reading costs the
server a bounded amount of memory. Requests already read wait in the decoder meanwhile.

End and idling: a client's EOF closes its connection once what it sent is answered; with
``idle_timeout`` set, a connection idle that long is closed, or dropped if its answers
still wait for it to read. Activity is a whole request or answers read, not a byte: a
client that sends one byte a second is idle. A request that has begun to arrive must make
progress (:data:`READ_PROGRESS` bytes or a whole request every ``read_timeout`` seconds)
or the connection is dropped, idle timeout or not. TCP keepalive finds dead peers.
Notifications are executed and never answered.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import typing
from typing import TYPE_CHECKING, Any

from runtime.errors import ProtocolError
from runtime.rpc.dispatch import Call, ErrorReply, error_of
from runtime.rpc.frames import serve_frames
from runtime.rpc.framing import BoundedDecoder
from runtime.rpc.inline import OUTPUT_SLACK, InlineEntry, serve_read
from runtime.rpc.logbounds import cut, shown
from runtime.rpc.protocol import Message, Notification, Request, response_packer, unsent

if TYPE_CHECKING:
    from runtime.rpc.server import RpcServer

log = logging.getLogger(__name__)

#: Seconds a refused client has to read the answers sent before the refusal.
REFUSED_GRACE = 5.0
#: A client that leaves more than this many times ``max_message_size`` of answers unread
#: is dropped (reading from it stops at once ``max_message_size`` wait; the rest are the
#: answers of calls it had started before).
OUTPUT_LIMIT_FACTOR = 4
#: Bytes of a large message in progress walked per loop iteration (a few ms of Python).
SCAN_SLICE = 16 * 1024
#: Bytes a request in progress must gain every ``read_timeout`` seconds (when no whole
#: request arrives meanwhile): 2 KiB/s at the default 30 s, far below any real client.
READ_PROGRESS = 64 * 1024


class Connection(asyncio.Protocol):
    """One client connection."""

    # Slots: the read path touches these on every call.
    __slots__ = (
        "backlog", "closed", "closing", "debug", "decoder", "dispatcher", "eof",
        "flush_scheduled", "held", "idle_handle", "idle_taken", "in_flight", "in_read",
        "last_activity", "loop", "out", "out_bytes", "pack", "paused", "peer", "progress_handle",
        "progress_mark", "reading", "refused", "requests", "sample_countdown", "serve_scheduled",
        "server", "tracks_idle", "transport", "unserved", "write_blocked", "written",
    )  # fmt: skip

    def __init__(self, server: RpcServer) -> None:
        self.server = server
        self.dispatcher = server.dispatcher
        self.decoder = BoundedDecoder(server.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.out: list[bytes] = []
        #: Bytes in ``out`` (answers made, not yet handed to the transport).
        self.out_bytes = 0
        self.pack = response_packer().pack
        self.flush_scheduled = False
        self.in_read = False
        #: Whether DEBUG logging is on, read once per batch of requests (not per request).
        self.debug = False
        #: Inline calls until the next one is timed (each connection times one in
        #: SAMPLE_EVERY: enough to notice a method turning slow).
        self.sample_countdown = 1
        self.in_flight = 0
        #: What the requests waiting for answers cost in memory (decoded, at most).
        self.held = 0
        #: Not reading because ``max_in_flight`` calls, or ``max_message_size`` bytes of
        #: decoded requests, wait for answers ...
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
        #: The client sent bytes past a limit or not MessagePack-RPC: read nothing more.
        self.refused = False
        #: Bytes read but not pushed yet (a large message is scanned a slice at a time).
        self.backlog: bytes | memoryview = b""
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
        #: Whole requests read so far.
        self.requests = 0
        #: The check that a request in progress keeps coming, with what had arrived then.
        self.progress_handle: asyncio.TimerHandle | None = None
        self.progress_mark = (0, 0)

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
        # Read by the frame path before this connection's first pass (which refreshes it).
        self.debug = log.isEnabledFor(logging.DEBUG)
        if self.server.idle_timeout > 0:
            self.idle_handle = self.loop.call_later(self.server.idle_timeout, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        if self.progress_handle is not None:
            self.progress_handle.cancel()

    def close(self) -> None:
        if self.transport is not None and not self.closed and not self.closing:
            self.closing = True  # no more passes over the input
            self.flush()
            self.transport.close()

    def abort(self, error: Exception) -> None:
        """Drop the connection at once (a client that does not read its answers)."""
        self.server.throttle.log(
            logging.WARNING, "dropped", "dropping connection from %s: %s", self.peer, error
        )
        self.closed = True
        assert self.transport is not None
        self.transport.abort()

    def refuse(self, error: Exception) -> None:
        """Stop reading a client that sent bytes past a limit or not MessagePack-RPC: the
        requests before them are answered, then the connection closes (and is dropped if
        it is still open :data:`REFUSED_GRACE` seconds later)."""
        self.server.throttle.log(
            logging.WARNING, "refused", "closing connection from %s: %s", self.peer, error
        )
        if self.closed or self.closing or self.refused:
            return
        self.refused = True
        self._update_reading()
        # As after the client's EOF: close once what it sent before is answered.
        self.eof = True
        self.unserved = False
        self._close_if_answered()
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        self.idle_handle = self.loop.call_later(REFUSED_GRACE, self._abort_if_open)

    # -- reading and framing -----------------------------------------------------------

    def data_received(self, data: bytes | memoryview) -> None:
        if self.refused:  # bytes read before reading stopped
            return
        if self.server.frames is not None:
            data = serve_frames(self, data)
            if not data:  # all answered
                return
        decoder = self.decoder
        if decoder.scanner is not None and len(data) > SCAN_SLICE:
            # A large message is walked in Python: a slice per loop iteration, so other
            # connections wait for one slice at most. Once it is whole, the rest of the
            # read goes to the C unpacker at once; while it is not, the rest waits here,
            # unread (a view: no copy).
            view = memoryview(data)
            try:
                decoder.push(view[:SCAN_SLICE])
            except ProtocolError as error:
                self.refuse(error)
                return
            data = view[SCAN_SLICE:]
            if decoder.scanner is not None:
                was_waiting = bool(self.backlog)
                self.backlog = data
                if not was_waiting:
                    self._update_reading()
                self.loop.call_soon(self._take_backlog)
                if self._serve_pass():
                    self._serve_rest()
                return
        try:
            decoder.push(data)
        except ProtocolError as error:  # too large, or not MessagePack-RPC
            self.refuse(error)
            return
        if self._serve_pass():  # stopped at MAX_SERVED_PER_PASS: more may wait
            self._serve_rest()

    def _take_backlog(self) -> None:
        backlog = self.backlog
        if self.closed or self.closing or self.refused:
            self.backlog = b""
            return
        if backlog:
            self.data_received(backlog)  # sets a new backlog when a slice is left over
        if self.backlog is backlog:  # all taken: read again
            self.backlog = b""
            self._update_reading()

    def watch_progress(self) -> None:
        """Check in ``read_timeout`` seconds that the request in progress keeps coming."""
        if self.server.read_timeout <= 0:
            return
        self.progress_mark = (self.decoder.fed, self.requests)
        self.progress_handle = self.loop.call_later(
            self.server.read_timeout, self._check_progress
        )

    def _check_progress(self) -> None:
        self.progress_handle = None
        if self.closed or self.closing or not self.decoder.in_progress():
            return
        fed, requests = self.progress_mark
        if self.requests == requests and self.decoder.fed - fed < READ_PROGRESS:
            self.abort(
                ConnectionError(
                    f"a request has gained {self.decoder.fed - fed} bytes in "
                    f"{self.server.read_timeout:g} s (--read-timeout)"
                )
            )
            return
        self.watch_progress()

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
        """Answer what the input holds, up to ``MAX_SERVED_PER_PASS`` requests, and write
        the replies; True when it stopped at that limit (more requests may wait)."""
        self.in_read = True
        self.debug = log.isEnabledFor(logging.DEBUG)
        try:
            full = serve_read(self)
        finally:
            self.in_read = False
        if self.out:
            self.send_answers()
        return full

    def send_answers(self) -> None:
        """Write the answers a read made: now, or with the other connections' at the end
        of the loop iteration when the server's reply timing says so (coalescing.py)."""
        timing = self.server.reply_timing
        timing.passed()
        if timing.deferred and self.out_bytes < OUTPUT_SLACK:
            if not self.flush_scheduled:
                self.flush_scheduled = True
                self.server.flush_soon(self)
        else:
            self.flush()  # past the high-water mark, this pauses reading (pause_writing)

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

    def handle_message(self, message: Message, held: int = 0) -> None:
        """The general path of one message: checks, then the scheduler runs it. ``held``
        is what the message costs in memory while it waits for its answer."""
        if isinstance(message, Request):
            self._handle(message.msgid, message.method, message.params, held)
        elif isinstance(message, Notification):
            self._handle(None, message.method, message.params, held)
        else:
            log.debug("ignoring a response sent by %s", self.peer)

    def _handle(self, msgid: int | None, method: str, params: list[Any], held: int) -> None:
        prepared = self.dispatcher.prepare(method, params)
        if isinstance(prepared, ErrorReply):
            if method not in self.dispatcher.handlers:
                self.server.throttle.log(
                    logging.INFO,
                    "unknown method",
                    "unknown method %s from %s",
                    shown(method),
                    self.peer,
                )
            if self.debug:
                cluster = _shown(params[0]) if params else "-"
                log.debug(
                    "request %s msgid=%s peer=%s cluster=%s refused: %s",
                    cut(method), msgid, self.peer, cluster,
                    cut(prepared.result or prepared.error),
                )  # fmt: skip
            self.reply(msgid, prepared.error, prepared.result)
            return
        if self.debug:
            prepared.started = time.perf_counter()
        prepared.held = held
        self.server.scheduler.run(self, msgid, prepared)

    # -- back-pressure -----------------------------------------------------------------

    def pause_writing(self) -> None:
        """asyncio: the client does not read its answers fast enough; read no more
        requests from it until it does."""
        self.server.throttle.log(
            logging.INFO,
            "not reading",
            "client %s is not reading its answers: not reading its requests",
            self.peer,
        )
        self.write_blocked = True
        self._update_reading()

    def resume_writing(self) -> None:
        if self.tracks_idle:  # the client reads: not idle
            self.last_activity = time.monotonic()
        self.write_blocked = False
        self._update_reading()

    def _update_reading(self) -> None:
        """Read from the client unless it waits on too many calls or does not read."""
        reading = not (self.paused or self.write_blocked or self.refused or self.backlog)
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

    def start_pending(self, held: int = 0) -> None:
        """A call of this connection was handed over; it counts until it is answered, with
        what its request costs in memory (``held``)."""
        self.in_flight += 1
        self.held += held
        server = self.server
        if not server.pending:  # the server is no longer idle
            server._idle.clear()
        server.pending += 1
        if (
            self.in_flight >= server.max_in_flight or self.held >= server.max_message_size
        ) and not self.paused:
            self.paused = True
            self._update_reading()

    def end_pending(self, held: int = 0) -> None:
        """A call handed over has its answer (the caller adds it to the output next)."""
        self.in_flight -= 1
        self.held -= held
        server = self.server
        server.pending -= 1
        if not server.pending:
            server._idle.set()
        if self.tracks_idle:
            self.last_activity = time.monotonic()
        if self.paused:
            self._resume_if_drained()
        if self.eof:  # after the caller has added this call's answer to the output
            self.loop.call_soon(self._close_if_answered)

    def _resume_if_drained(self) -> None:
        """Read again once half the calls (and half the memory) a paused connection waits
        for are answered."""
        server = self.server
        if (
            self.in_flight < server.max_in_flight // 2 + 1
            and self.held <= server.max_message_size // 2
        ):
            self.paused = False
            self._update_reading()

    def output_room(self) -> int:
        """Bytes of answers that may still be made before the client must read some: the
        output limit (``max_message_size``) less what waits to be sent."""
        waiting = self.out_bytes
        if self.transport is not None:
            waiting += self.transport.get_write_buffer_size()
        return self.server.max_message_size - waiting

    # -- answers -----------------------------------------------------------------------

    def updated(self) -> None:
        """An ``#@update`` call ran: count it (the mixer's ``--interval_count``)."""
        on_update = self.dispatcher.on_update
        if on_update is not None:
            on_update()

    def done(self, msgid: int | None, call: Call, error: BaseException | None, result: Any) -> None:
        """How a ``start`` handler started by the scheduler ends."""
        self.end_pending(call.held)
        if error is not None:
            self.fail(msgid, call, error)
        else:
            self.succeed(msgid, call, result)

    def started_done(
        self,
        msgid: int,
        entry: InlineEntry,
        params: list[Any],
        held: int,
        error: BaseException | None,
        result: Any,
    ) -> None:
        """How a ``start`` handler started on the inline path (the proxy's relay) ends."""
        self.end_pending(held)
        if error is None:
            self.reply(msgid, None, result)
        else:
            self.fail(msgid, entry.call(params), error)

    def succeed(self, msgid: int | None, call: Call, result: Any) -> None:
        error, wire = self.dispatcher.encode(call, result)
        if call.started:
            self._log_request(msgid, call, "ok" if error is None else "error")
        self.reply(msgid, error, wire)

    def fail(self, msgid: int | None, call: Call, error: BaseException) -> None:
        if getattr(error, "wire_error", None) is None:
            self.server.throttle.log(
                logging.WARNING, f"failed {call.name}",
                "%s from %s (cluster %s) failed: %s: %s",
                call.name, self.peer, _shown(call.cluster), type(error).__name__, cut(str(error)),
            )  # fmt: skip
        if call.started:
            self._log_request(msgid, call, f"error {type(error).__name__}")
        wire_error, result = error_of(error)
        self.reply(msgid, wire_error, result)

    def _log_request(self, msgid: int | None, call: Call, outcome: str) -> None:
        """The per-request DEBUG line (only for calls that arrived while DEBUG was on)."""
        micros = (time.perf_counter() - call.started) * 1e6
        log.debug(
            "request %s msgid=%s peer=%s cluster=%s %s in %.0fus",
            call.name, msgid, self.peer, _shown(call.cluster), outcome, micros,
        )  # fmt: skip

    # -- output ------------------------------------------------------------------------

    def pack_replies(self, replies: list[tuple[int, int, None, Any]]) -> None:
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
                self.reply(msgid, None, result)  # the error reply for those that fail
        else:
            self.out.append(packed)
            self.out_bytes += len(packed)
        replies.clear()

    def add_packed_reply(
        self, replies: list[tuple[int, int, None, Any]], msgid: int, packed: bytes
    ) -> int:
        """Add the reply to ``msgid`` whose result is ``packed`` already to the output,
        after the inline calls' ``replies`` before it; its size."""
        if replies:
            self.pack_replies(replies)
        reply = self.pack((1, msgid, None, None))[:-1] + packed  # (nil's byte cut off)
        self.out.append(reply)
        self.out_bytes += len(reply)
        return len(reply)

    def reply(self, msgid: int | None, error: Any, result: Any) -> None:
        if msgid is None or self.closed:
            return
        try:
            packed = self.pack([1, msgid, error, result])
        except (TypeError, ValueError, OverflowError) as problem:
            log.error("cannot pack the reply to msgid %d: %s", msgid, problem)
            self.pack = response_packer().pack
            packed = self.pack([1, msgid, f"cannot pack the result: {problem}", None])
        self.out.append(packed)
        self.out_bytes += len(packed)
        if self.in_read:  # the pass writes (and counts) its answers itself
            return
        if self.out_bytes >= self.server.max_message_size:
            self.flush()  # now: past the high-water mark the transport stops our reading
        elif not self.flush_scheduled:
            self.flush_scheduled = True
            self.server.flush_soon(self)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.closed:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            if self.tracks_idle:  # the idle check reads what the client has taken
                self.written += len(data)
            self.transport.write(data)
            if self.write_blocked:  # the transport holds a backlog: how much?
                unread = self.transport.get_write_buffer_size()
                if unread > OUTPUT_LIMIT_FACTOR * self.server.max_message_size:
                    self.abort(ConnectionError(f"it has left {unread} bytes of answers unread"))
        self.out.clear()
        self.out_bytes = 0

    # -- idling ------------------------------------------------------------------------

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
                self.abort(ConnectionError(f"it has read none of its answers for {idle_for:.1f} s"))
                return
            self.server.throttle.log(
                logging.INFO,
                "idle",
                "closing idle connection from %s after %.1f s",
                self.peer,
                idle_for,
            )
            self.close()
            # Answers the transport does not show (uvloop hands them to libuv) may still
            # wait for a client that does not read: drop it if it is not gone by then.
            self.idle_handle = self.loop.call_later(timeout, self._abort_if_open)
            return
        self.idle_handle = self.loop.call_later(max(timeout - idle_for, 0.05), self._check_idle)

    def _abort_if_open(self) -> None:
        if not self.closed:
            self.abort(ConnectionError("closed, and its answers are still unread"))


def _shown(cluster: object) -> str:
    """A cluster name as sent, for a log line (cut short: a client chose it)."""
    return "-" if cluster is None else cut(cluster)
