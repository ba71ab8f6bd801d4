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
import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from runtime.errors import (
    WIRE_ERRORS,
    ConnectError,
    ConnectionLost,
    ProtocolError,
    RemoteError,
    RPCError,
    RPCTimeout,
)
from runtime.rpc.protocol import MSGID_LIMIT, Decoder, Response, pack_request

_UNSET: Any = object()


def error_for(error: Any, result: Any) -> RPCError:
    """The exception for an error reply."""
    if type(error) is int and error in WIRE_ERRORS:
        detail = result.decode("utf-8", "replace") if isinstance(result, bytes) else result
        return WIRE_ERRORS[error](str(detail) if detail is not None else "")
    if isinstance(error, bytes):
        return RemoteError(error.decode("utf-8", "replace"))
    if isinstance(error, str):
        return RemoteError(error)
    return RemoteError(repr(error))


#: What :meth:`AsyncClient.call_soon` calls with the outcome: ``(error, result)``, where
#: ``error`` is None on success and an :class:`RPCError` otherwise.
ReplyCallback = Callable[[RPCError | None, Any], None]


def _expire(future: asyncio.Future[Any], where: str) -> None:
    if not future.done():
        future.set_exception(RPCTimeout(f"{where}: request timed out"))


class _Waiter:
    """A pending :meth:`AsyncClient.call_soon`: its callback and timeout timer."""

    __slots__ = ("callback", "timer")

    def __init__(self, callback: ReplyCallback) -> None:
        self.callback = callback
        self.timer: asyncio.TimerHandle | None = None

    def finish(self, error: RPCError | None, result: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.callback(error, result)


_Pending = dict[int, "asyncio.Future[Any] | _Waiter"]


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, pending: _Pending, max_size: int) -> None:
        self.pending = pending
        self.decoder = Decoder(max_size)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.lost = self.loop.create_future()
        self.out: list[bytes] = []

    def send(self, frame: bytes) -> None:
        """Queue a request; everything queued in one loop iteration goes out in one write."""
        if not self.out:
            self.loop.call_soon(self._flush)
        self.out.append(frame)

    def _flush(self) -> None:
        if self.out and self.transport is not None and not self.lost.done():
            self.transport.write(self.out[0] if len(self.out) == 1 else b"".join(self.out))
        self.out.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as error:
            self._fail_all(ConnectionLost(f"bad reply from server: {error}"))
            assert self.transport is not None
            self.transport.abort()
            return
        for message in messages:
            if isinstance(message, Response):
                waiting = self.pending.pop(message.msgid, None)
                if waiting is None:
                    continue
                if type(waiting) is _Waiter:
                    failure = None
                    if message.error is not None:
                        failure = error_for(message.error, message.result)
                    waiting.finish(failure, message.result)
                    continue
                assert isinstance(waiting, asyncio.Future)
                if waiting.done():
                    continue
                if message.error is None:
                    waiting.set_result(message.result)
                else:
                    waiting.set_exception(error_for(message.error, message.result))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(ConnectionLost(f"connection closed by the server ({exc or 'EOF'})"))
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail_all(self, error: RPCError) -> None:
        pending = list(self.pending.values())
        self.pending.clear()
        for waiting in pending:
            if isinstance(waiting, _Waiter):
                waiting.finish(error, None)
            elif not waiting.done():
                waiting.set_exception(error)


class AsyncClient:
    """An asyncio MessagePack-RPC client with pipelining and per-call timeouts."""

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
        self._pending: _Pending = {}
        self._protocol: _ClientProtocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._ids = itertools.count()

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
            loop = asyncio.get_running_loop()
            try:
                connect = loop.create_connection(
                    lambda: _ClientProtocol(self._pending, self.max_message_size),
                    self.host,
                    self.port,
                )
                _, protocol = await asyncio.wait_for(connect, self.timeout)
            except TimeoutError:
                raise ConnectError(f"connect to {self.host}:{self.port} timed out") from None
            except OSError as error:
                raise ConnectError(f"cannot connect to {self.host}:{self.port}: {error}") from None
            self._protocol = protocol
            return protocol

    async def call(
        self, method: str, params: Sequence[object], *, timeout: float | None = _UNSET
    ) -> Any:
        """Call ``method`` with wire ``params``; raises an :class:`RPCError` subclass."""
        protocol = await self._connection()
        msgid = next(self._ids) % MSGID_LIMIT
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msgid] = future
        assert protocol.transport is not None
        protocol.send(pack_request(msgid, method, list(params)))
        limit = self.timeout if timeout is _UNSET else timeout
        # A timer per call is much cheaper than asyncio.wait_for (which spawns a task).
        timer = None
        if limit is not None:
            where = f"{method} to {self.host}:{self.port}"
            timer = asyncio.get_running_loop().call_later(limit, _expire, future, where)
        try:
            return await future
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
    ) -> bool:
        """Send a call now and have ``callback(error, result)`` called with its outcome.

        The cheap path for relaying calls (no task, no future): it needs a live connection
        and returns False, sending nothing, when there is none (use :meth:`call`, which
        connects). ``callback`` runs on the loop, exactly once, with an :class:`RPCError`
        on failure (``RPCTimeout`` after ``timeout`` seconds, ``ConnectionLost`` ...).
        """
        protocol = self._live()
        if protocol is None:
            return False
        msgid = next(self._ids) % MSGID_LIMIT
        waiter = _Waiter(callback)
        self._pending[msgid] = waiter
        protocol.send(pack_request(msgid, method, list(params)))
        limit = self.timeout if timeout is _UNSET else timeout
        if limit is not None:
            where = f"{method} to {self.host}:{self.port}"
            waiter.timer = protocol.loop.call_later(limit, self._expire_waiter, msgid, where)
        return True

    def _expire_waiter(self, msgid: int, where: str) -> None:
        waiting = self._pending.pop(msgid, None)
        if isinstance(waiting, _Waiter):
            waiting.timer = None
            waiting.finish(RPCTimeout(f"{where}: request timed out"), None)

    async def close(self) -> None:
        protocol = self._protocol
        self._protocol = None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
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
