"""MessagePack-RPC clients: :class:`AsyncClient` (asyncio) and :class:`Client` (blocking).

Both connect lazily, pipeline by msgid, reconnect on the next call after the server closed
the connection, and map error replies to exceptions: ``1`` → UnknownMethod, ``2`` →
TypeMismatch, a string (or bytes) → RemoteError with that text, anything else →
RemoteError with its repr. Requests are packed in the old msgpack spec; replies in either
spec are accepted. ``call`` returns the wire result as unpacked (``raw=True``: strings as
bytes); generated code decodes it with the method's descriptors.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import typing
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import msgpack

from runtime.errors import (
    WIRE_ERRORS,
    ConnectError,
    ConnectionLost,
    MessageTooLarge,
    ProtocolError,
    RemoteError,
    RPCError,
    RPCTimeout,
)
from runtime.rpc.protocol import MSGID_LIMIT, Decoder, Response, pack_request, unsent

log = logging.getLogger(__name__)

_UNSET: Any = object()
_NEVER = float("inf")
#: A request's first bytes: an array of 4, then its type (0).
_REQUEST_HEAD = b"\x94\x00"
#: Seconds :meth:`AsyncClient.close` lets a connection send what it still holds before it
#: drops it (a server that stopped reading would keep it open for ever).
CLOSE_GRACE = 1.0


def error_for(error: Any, result: Any) -> RPCError:
    """The exception for an error reply."""
    if type(error) is int and error in WIRE_ERRORS:
        detail = result.decode("utf-8", "replace") if isinstance(result, bytes) else result
        return WIRE_ERRORS[error](str(detail) if detail is not None else "")
    if isinstance(error, bytes):
        return RemoteError(error.decode("utf-8", "replace"), result)
    if isinstance(error, str):
        return RemoteError(error, result)
    return RemoteError(repr(error), result)


#: What :meth:`AsyncClient.call_soon` calls with the outcome: ``(error, result)``, where
#: ``error`` is None on success and an :class:`RPCError` otherwise.
ReplyCallback = Callable[[RPCError | None, Any], None]


def _expire(future: asyncio.Future[Any], where: str) -> None:
    if not future.done():
        future.set_exception(RPCTimeout(f"{where}: request timed out"))


#: What a :meth:`AsyncClient.call_soon` call given ``on_error`` calls when it fails, instead
#: of its callback: ``on_error(error, (host, port), method, params, callback)``. One bound
#: method serves every call: a relay fails over without a closure per call.
FailureHandler = Callable[[RPCError, tuple[str, int], str, Sequence[object], ReplyCallback], None]

#: A pending :meth:`AsyncClient.call_soon`: its callback, the method (for the timeout
#: message), its params and failure handler (for ``on_error``), and its deadline on the
#: loop's clock (``inf``: none). A plain tuple: cheaper than an object per relayed call.
_Waiter = tuple[ReplyCallback, str, Sequence[object], FailureHandler | None, float]

_Pending = dict[int, "asyncio.Future[Any] | _Waiter"]


def _fail_waiter(waiting: _Waiter, error: RPCError, node: tuple[str, int]) -> None:
    """Report a failed ``call_soon`` call to its failure handler, or else its callback."""
    callback, method, params, on_error, _ = waiting
    if on_error is None:
        callback(error, None)
    else:
        on_error(error, node, method, params, callback)


def _settle(future: asyncio.Future[Any], error: object, result: object) -> None:
    """Give a ``call`` its reply (unless it timed out already)."""
    if not future.done():
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error_for(error, result))


class _ClientProtocol(asyncio.Protocol):
    def __init__(
        self,
        pending: _Pending,
        max_size: int,
        node: tuple[str, int],
        after_read: Callable[[], None] | None,
        on_lost: Callable[[tuple[str, int]], None] | None = None,
    ) -> None:
        self.pending = pending
        self.node = node
        self.after_read = after_read
        self.on_lost = on_lost
        self.decoder = Decoder(max_size)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.lost = self.loop.create_future()
        #: Connected and not lost yet (what call_soon checks: cheaper than the future).
        self.open = False
        #: When our requests last backed up (the transport past its high-water mark) with
        #: no answer received since, and the bytes received by then (see :meth:`stalled`).
        self.backed_up_at: float | None = None
        self.received_then = 0
        #: The loop's time when this loop iteration's first request was queued: the
        #: requests written together share it as the start of their timeouts.
        self.batch_time = 0.0
        self.out: list[bytes] = []
        #: Packs requests in the old spec, as ``pack_request`` does (one Packer per
        #: connection: cheaper than a new one per call).
        self.pack = msgpack.Packer(use_bin_type=False).pack

    def send(self, frame: bytes) -> None:
        """Queue a request; everything queued in one loop iteration goes out in one write."""
        if not self.out:
            self.loop.call_soon(self._flush)
            self.batch_time = self.loop.time()  # call_soon deadlines count from here
        self.out.append(frame)

    def _flush(self) -> None:
        if self.out and self.transport is not None and not self.lost.done():
            self.transport.write(self.out[0] if len(self.out) == 1 else b"".join(self.out))
        self.out.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = typing.cast(asyncio.Transport, transport)
        self.open = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def pause_writing(self) -> None:
        if self.backed_up_at is None or self.decoder.fed != self.received_then:
            self.backed_up_at = self.loop.time()
            self.received_then = self.decoder.fed

    # resume_writing is left alone: uvloop calls it as soon as libuv has taken the bytes,
    # which says nothing of the server reading them. Only an answer clears the backlog.

    def stalled(self, silence: float) -> bool:
        """Whether our requests backed up, are not all read yet, and the server has
        answered nothing for ``silence`` seconds or more: a hung process. A server that
        read them all, or still answers, is busy, not hung (answers re-arm the watch)."""
        since = self.backed_up_at
        if since is None or not self.open:
            return False
        assert self.transport is not None
        if not unsent(self.transport):  # it read everything we sent
            self.backed_up_at = None
            return False
        now = self.loop.time()
        if self.decoder.fed != self.received_then:  # it answered since: watch from now
            self.backed_up_at, self.received_then = now, self.decoder.fed
            return False
        return now - since >= silence

    def data_received(self, data: bytes) -> None:
        decoder = self.decoder
        pending = self.pending
        answered = False
        try:
            decoder.push(data)
            for obj in decoder.unpacker:
                # The common reply, read without a record object.
                if type(obj) is list and len(obj) == 4 and obj[0] == 1:
                    _, msgid, error, result = obj
                    if type(msgid) is not int or not 0 <= msgid < MSGID_LIMIT:
                        raise ProtocolError(f"msgid must be a uint32, not {msgid!r}")
                else:
                    message = decoder.message(obj)
                    if not isinstance(message, Response):  # a server never sends these
                        continue
                    msgid, error, result = message.msgid, message.error, message.result
                answered = True
                waiting = pending.pop(msgid, None)
                if waiting is None:
                    continue
                try:
                    if type(waiting) is tuple:
                        if error is None:
                            waiting[0](None, result)
                        else:
                            _fail_waiter(waiting, error_for(error, result), self.node)
                    else:
                        _settle(typing.cast("asyncio.Future[Any]", waiting), error, result)
                except Exception:  # a callback's own failure: the replies after it still count
                    log.exception("a reply's callback failed (msgid %d)", msgid)
        except (
            ProtocolError,
            MessageTooLarge,
            ValueError,
            TypeError,
            msgpack.UnpackException,
        ) as bad:
            problem = decoder.stream_error(bad)
            self._fail_all(ConnectionLost(f"bad reply from server: {problem}"))
            assert self.transport is not None
            self.transport.abort()
        if answered and self.after_read is not None:
            self.after_read()

    def connection_lost(self, exc: Exception | None) -> None:
        closed_by_peer = self.open  # not by our close() or a drop (they clear it first)
        self.open = False
        self._fail_all(ConnectionLost(f"connection closed by the server ({exc or 'EOF'})"))
        if not self.lost.done():
            self.lost.set_result(None)
        if closed_by_peer and self.on_lost is not None:
            try:
                self.on_lost(self.node)
            except Exception:
                log.exception("a lost connection's callback failed")

    def _fail_all(self, error: RPCError) -> None:
        _fail_pending(self.pending, error, self.node)


def _fail_pending(pending: _Pending, error: RPCError, node: tuple[str, int]) -> None:
    """Fail every call in ``pending`` with ``error`` and empty it; a callback that raises
    is logged and costs no other call its outcome."""
    waiters = list(pending.values())
    pending.clear()
    for waiting in waiters:
        try:
            if isinstance(waiting, asyncio.Future):
                if not waiting.done():
                    waiting.set_exception(error)
            else:
                _fail_waiter(waiting, error, node)
        except Exception:
            log.exception("a failed call's callback failed")


class AsyncClient:
    """An asyncio MessagePack-RPC client with pipelining and per-call timeouts."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float | None = 10.0,
        max_message_size: int = 64 * 1024 * 1024,
        after_read: Callable[[], None] | None = None,
        on_lost: Callable[[tuple[str, int]], None] | None = None,
    ) -> None:
        """``after_read``: called after the replies of each read were handed to their
        callbacks (a proxy writes the answers they produced there). ``on_lost``: called
        with ``(host, port)`` when the server closed an open connection (a proxy learns at
        once that a server went away, maybe to come back as a new process)."""
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_message_size = max_message_size
        self.after_read = after_read
        self.on_lost = on_lost
        self._pending: _Pending = {}
        #: One timer for the deadlines of every ``call_soon`` call (kept in their waiters),
        #: set for the earliest of them; ``_sweep_at`` is inf while none is set.
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_at = _NEVER
        self._protocol: _ClientProtocol | None = None
        #: Requests sent in this loop iteration, waiting for its one write (the last
        #: connection's queue: a pool reads its length for every call).
        self.outbox: list[bytes] = []
        self._connecting: asyncio.Lock | None = None
        self._ids = itertools.count()
        #: Set by :meth:`close`: no more connections (calls fail with ConnectError).
        self.closed = False
        self._node = (host, port)

    def _live(self) -> _ClientProtocol | None:
        p = self._protocol
        if p is not None and p.transport is not None and not p.lost.done():
            return p
        return None

    @property
    def connected(self) -> bool:
        return self._live() is not None

    async def _connection(self) -> _ClientProtocol:
        live = self._live()
        if live is not None:
            return live
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            live = self._live()
            if live is not None:
                return live
            self._refuse_if_closed()  # closed while this call waited for another's connect
            loop = asyncio.get_running_loop()
            try:
                connect = loop.create_connection(
                    lambda: _ClientProtocol(
                        self._pending,
                        self.max_message_size,
                        self._node,
                        self.after_read,
                        self.on_lost,
                    ),
                    self.host,
                    self.port,
                )
                _, protocol = await asyncio.wait_for(connect, self.timeout)
            except TimeoutError:
                raise ConnectError(f"connect to {self.host}:{self.port} timed out") from None
            except OSError as error:
                raise ConnectError(f"cannot connect to {self.host}:{self.port}: {error}") from None
            if self.closed:  # closed while connecting: this connection is nobody's
                assert protocol.transport is not None
                protocol.transport.abort()
                self._refuse_if_closed()
            self._protocol = protocol
            self.outbox = protocol.out
            return protocol

    def _refuse_if_closed(self) -> None:
        if self.closed:
            raise ConnectError(f"client to {self.host}:{self.port} is closed")

    async def call(
        self, method: str, params: Sequence[object], *, timeout: float | None = _UNSET
    ) -> Any:
        """Call ``method`` with wire ``params``; raises an :class:`RPCError` subclass."""
        protocol = await self._connection()
        msgid = next(self._ids) % MSGID_LIMIT
        frame = protocol.pack([0, msgid, method, list(params)])  # first: it may raise
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msgid] = future
        assert protocol.transport is not None
        protocol.send(frame)
        limit = self.timeout if timeout is _UNSET else timeout
        # A timer per call is much cheaper than asyncio.wait_for (which spawns a task).
        timer = None
        if limit is not None:
            where = f"{method} to {self.host}:{self.port}"
            timer = asyncio.get_running_loop().call_later(limit, _expire, future, where)
        try:
            return await future
        except RPCTimeout:
            if protocol is self._protocol:
                self._drop_if_stalled(protocol)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(msgid, None)

    def call_soon(
        self,
        method: str,
        params: Sequence[object],
        callback: ReplyCallback,
        *,
        timeout: float | None = _UNSET,
        on_error: FailureHandler | None = None,
    ) -> bool:
        """Send a call now and have ``callback(error, result)`` called with its outcome.

        The cheap path for relaying calls (no task, no future): it needs a live connection
        and returns False, sending nothing, when there is none (use :meth:`call`, which
        connects). ``callback`` runs on the loop, exactly once, with an :class:`RPCError`
        on failure (``RPCTimeout`` after ``timeout`` seconds, ``ConnectionLost`` ...); with
        ``on_error``, a failure goes there instead (see :data:`FailureHandler`).
        """
        protocol = self._protocol
        if protocol is None or not protocol.open:
            return False
        msgid = next(self._ids) % MSGID_LIMIT
        frame = protocol.pack([0, msgid, method, params])  # first: it may raise
        self._queue_soon(protocol, msgid, frame, callback, method, params, on_error, timeout)
        return True

    def call_soon_packed(
        self,
        method: str,
        packed_params: bytes,
        callback: ReplyCallback,
        *,
        timeout: float | None = _UNSET,
    ) -> bool:
        """:meth:`call_soon` with the params already packed, as the wire carries them (one
        msgpack array, the cluster name first): nothing is decoded and packed again per
        call (a gateway job's stored inputs)."""
        protocol = self._protocol
        if protocol is None or not protocol.open:
            return False
        msgid = next(self._ids) % MSGID_LIMIT
        frame = b"".join(
            (_REQUEST_HEAD, protocol.pack(msgid), protocol.pack(method), packed_params)
        )
        self._queue_soon(protocol, msgid, frame, callback, method, (), None, timeout)
        return True

    def _queue_soon(
        self,
        protocol: _ClientProtocol,
        msgid: int,
        frame: bytes,
        callback: ReplyCallback,
        method: str,
        params: Sequence[object],
        on_error: FailureHandler | None,
        timeout: float | None,
    ) -> None:
        """Queue a ``call_soon`` frame; its reply goes to ``callback`` (or ``on_error``)."""
        loop = protocol.loop
        out = protocol.out  # as protocol.send, inline: a proxy comes here for every call
        if not out:
            loop.call_soon(protocol._flush)
            protocol.batch_time = loop.time()
        limit = self.timeout if timeout is _UNSET else timeout
        deadline = _NEVER if limit is None else protocol.batch_time + limit
        self._pending[msgid] = (callback, method, params, on_error, deadline)
        out.append(frame)
        if deadline < self._sweep_at:  # the earliest deadline
            self._set_timer(loop, deadline)

    def _set_timer(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Have :meth:`_sweep` run at ``deadline`` (instead of later)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweep_at = deadline
        self._sweeper = loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        """Time out every ``call_soon`` call past its deadline; set the timer for the next.

        One pass over the calls in flight, about once per timeout under steady load (the
        earliest deadline of calls still waiting is then about a timeout away): nothing
        is kept per call beyond its waiter, whatever the rate of calls.
        """
        self._sweeper = None
        self._sweep_at = _NEVER
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired: list[int] = []
        earliest = _NEVER
        for msgid, waiting in self._pending.items():
            if type(waiting) is tuple:
                deadline = waiting[4]
                if deadline <= now:
                    expired.append(msgid)
                elif deadline < earliest:
                    earliest = deadline
        for msgid in expired:  # callbacks may send new calls: the pass above is over
            late = self._pending.get(msgid)
            if type(late) is tuple:
                del self._pending[msgid]
                where = f"{late[1]} to {self.host}:{self.port}"
                try:
                    _fail_waiter(late, RPCTimeout(f"{where}: request timed out"), self._node)
                except Exception:  # costs no other call its outcome, nor the next sweep
                    log.exception("a timed-out call's callback failed")
        if expired and self._protocol is not None:
            self._drop_if_stalled(self._protocol)
        if earliest < self._sweep_at:  # a callback above may have set it already
            self._set_timer(loop, earliest)

    def _drop_if_stalled(self, protocol: _ClientProtocol) -> None:
        """Calls timed out: if the server has answered nothing since our requests backed
        up, for half the client's timeout or more (a hung process, see
        :meth:`_ClientProtocol.stalled`), drop the connection and the requests it holds,
        instead of queueing every later call behind them until it reads again; the calls
        still waiting fail now, and the next call connects afresh."""
        if self.timeout is None or not protocol.stalled(self.timeout / 2):
            return
        assert protocol.transport is not None
        silent = protocol.loop.time() - (protocol.backed_up_at or 0)
        log.warning(
            "%s:%d has answered nothing for %.1f s since requests backed up: "
            "dropping the connection", self.host, self.port, silent,
        )  # fmt: skip
        waiting = protocol.pending
        protocol.pending = {}  # the calls of the next connection are not this one's to fail
        self._protocol = None
        self.outbox = []
        protocol.open = False
        protocol.out.clear()
        protocol.transport.abort()
        stalled = f"{self.host}:{self.port} stopped reading requests ({silent:.1f} s silent)"
        _fail_pending(waiting, ConnectionLost(stalled), self._node)

    async def close(self) -> None:
        """Close the connection for good; calls still waiting fail at once with
        ConnectionLost (no answer is read after this).

        What the connection still has to send gets :data:`CLOSE_GRACE` seconds, then the
        connection is dropped.
        """
        self.closed = True
        protocol = self._protocol
        self._protocol = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
            self._sweep_at = _NEVER
        if protocol is not None and protocol.transport is not None:
            protocol.open = False
            protocol._fail_all(ConnectionLost(f"connection to {self.host}:{self.port} closed"))
            protocol.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(protocol.lost), CLOSE_GRACE)
            except TimeoutError:
                protocol.transport.abort()
                await protocol.lost

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Client:
    """A blocking MessagePack-RPC client over a plain socket (no event loop)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float | None = 10.0,
        max_message_size: int = 64 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_message_size = max_message_size
        self._sock: socket.socket | None = None
        self._decoder = Decoder(max_message_size)
        self._ids = itertools.count()

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except TimeoutError:
            raise ConnectError(f"connect to {self.host}:{self.port} timed out") from None
        except OSError as error:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {error}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._sock = sock
        self._decoder = Decoder(self.max_message_size)
        return sock

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None

    def call(self, method: str, params: Sequence[object], *, timeout: float | None = _UNSET) -> Any:
        """Call ``method`` with wire ``params``; raises an :class:`RPCError` subclass."""
        msgid = next(self._ids) % MSGID_LIMIT
        frame = pack_request(msgid, method, list(params))
        sock = self._connect()
        sock.settimeout(self.timeout if timeout is _UNSET else timeout)
        try:
            sock.sendall(frame)
        except OSError:
            # The server may have closed an idle connection: one fresh try.
            self._drop()
            sock = self._connect()
            sock.settimeout(self.timeout if timeout is _UNSET else timeout)
            try:
                sock.sendall(frame)
            except OSError as error:
                self._drop()
                raise ConnectionLost(f"cannot send to {self.host}:{self.port}: {error}") from None
        while True:
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                raise RPCTimeout(
                    f"{method} to {self.host}:{self.port}: request timed out"
                ) from None
            except OSError as error:
                self._drop()
                raise ConnectionLost(f"{self.host}:{self.port}: {error}") from None
            if not data:
                self._drop()
                raise ConnectionLost(f"connection to {self.host}:{self.port} closed by the server")
            try:
                messages = self._decoder.feed(data)
            except ProtocolError as error:
                self._drop()
                raise ConnectionLost(f"bad reply from {self.host}:{self.port}: {error}") from None
            for message in messages:
                if isinstance(message, Response) and message.msgid == msgid:
                    if message.error is None:
                        return message.result
                    raise error_for(message.error, message.result)

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
