"""Closing clients and pools over real sockets on 127.0.0.1: close() returns even when the
server stopped reading, the calls still waiting fail at once, and nothing connects after;
a client drops a connection whose server stopped reading once calls on it time out."""

from __future__ import annotations

import asyncio
import contextlib
import time
import typing

import msgpack
import pytest

from runtime.errors import ConnectError, ConnectionLost, RPCError, RPCTimeout
from runtime.rpc.client import CLOSE_GRACE, AsyncClient
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.locks import LockMode
from runtime.rpc.server import RpcServer
from runtime.wire import types as t

Outcomes = list[tuple[str, RPCError | None]]


class _Hung(asyncio.Protocol):
    """A server that accepts and never reads."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = typing.cast(asyncio.Transport, transport)
        self.transport.pause_reading()


_Peer = typing.TypeVar("_Peer", bound=asyncio.Protocol)


async def _serve(peer: type[_Peer]) -> tuple[asyncio.Server, list[_Peer]]:
    """A server on 127.0.0.1 whose connections are ``peer`` protocols, kept in the list."""
    peers: list[_Peer] = []

    def accept() -> _Peer:
        peers.append(peer())
        return peers[-1]

    server = await asyncio.get_running_loop().create_server(accept, "127.0.0.1", 0)
    return server, peers


class _Counting(asyncio.Protocol):
    """A server that only counts the connections open to it."""

    open = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _Counting.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        _Counting.open -= 1


@pytest.mark.asyncio
async def test_close_drops_a_connection_whose_server_stopped_reading() -> None:
    server, peers = await _serve(_Hung)
    client = AsyncClient("127.0.0.1", server.sockets[0].getsockname()[1], timeout=30)
    with pytest.raises(RPCError):
        await client.call("ping", [], timeout=0.05)  # connects; nobody answers
    outcomes: Outcomes = []
    assert client.call_soon("big", [b"x" * (32 << 20)], lambda e, r: outcomes.append(("big", e)))
    assert client.call_soon("small", [], lambda e, r: outcomes.append(("small", e)))
    await asyncio.sleep(0.05)  # written: most of the 32 MiB waits in the transport
    started = time.monotonic()
    await asyncio.wait_for(client.close(), CLOSE_GRACE + 2)
    assert time.monotonic() - started < CLOSE_GRACE + 1
    assert [name for name, _ in outcomes] == ["big", "small"]
    assert all(isinstance(error, ConnectionLost) for _, error in outcomes)
    assert "closed" in str(outcomes[0][1])
    for peer in peers:
        peer.transport.abort()
    server.close()


@pytest.mark.asyncio
async def test_a_closed_client_does_not_connect_again() -> None:
    loop = asyncio.get_running_loop()
    _Counting.open = 0
    server = await loop.create_server(_Counting, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AsyncClient("127.0.0.1", port, timeout=2)
    # One call connects while a second waits for that connection; the client closes
    # before the connect completes: neither call gets a connection, none stays open.
    first = asyncio.ensure_future(client.call("m", []))
    second = asyncio.ensure_future(client.call("m", []))
    await asyncio.sleep(0)  # the first is connecting, the second waits for it
    await client.close()
    for call in (first, second):
        with pytest.raises(ConnectError, match="closed"):
            await call
    with pytest.raises(ConnectError, match="closed"):
        await client.call("m", [])
    assert client.call_soon("m", [], lambda e, r: None) is False
    await asyncio.sleep(0.1)
    assert _Counting.open == 0, "no connection left open"
    server.close()


@pytest.mark.asyncio
async def test_params_that_do_not_pack_leave_no_call_behind() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    client = AsyncClient("127.0.0.1", server.sockets[0].getsockname()[1], timeout=0.2)
    with pytest.raises(TypeError):
        await client.call("m", ["c", object()])
    called: Outcomes = []
    with pytest.raises(TypeError):
        client.call_soon("m", ["c", object()], lambda e, r: called.append(("m", e)))
    with pytest.raises(OverflowError):
        client.call_soon("m", ["c", 2**70], lambda e, r: called.append(("m", e)))
    assert client._pending == {}
    await asyncio.sleep(0.4)  # past the timeout: no late callback either
    assert called == []
    await client.close()
    server.close()


@pytest.mark.asyncio
async def test_a_server_that_stopped_reading_loses_its_connection_at_the_first_timeout() -> None:
    """Requests to a hung server used to pile up in the client for as long as it hung."""
    server, peers = await _serve(_Hung)
    client = AsyncClient("127.0.0.1", server.sockets[0].getsockname()[1], timeout=0.4)
    with pytest.raises(RPCTimeout):
        await client.call("ping", [], timeout=0.05)  # connects; nobody answers
    outcomes: Outcomes = []
    started = time.monotonic()
    def buggy(error: RPCError | None, result: object) -> None:
        outcomes.append(("buggy", error))
        raise RuntimeError("a callback's own bug")

    for _ in range(16):  # one write of 16 MiB: the kernel takes some, the rest waits here
        assert client.call_soon("big", [b"x" * (1 << 20)], lambda e, r: outcomes.append(("big", e)))
    await asyncio.sleep(0.2)
    # The later calls have a timeout of their own far past the big ones': failing with
    # ConnectionLost, they fail because the big ones timed out (robust on a busy machine).
    assert client.call_soon("buggy", [], buggy, timeout=3.0)
    assert client.call_soon("late", [], lambda e, r: outcomes.append(("late", e)), timeout=3.0)
    while len(outcomes) < 18 and time.monotonic() - started < 5:
        await asyncio.sleep(0.02)
    waited = time.monotonic() - started
    assert [name for name, _ in outcomes] == ["big"] * 16 + ["buggy", "late"]
    assert all(isinstance(error, RPCTimeout) for _, error in outcomes[:16]), outcomes
    # The later calls fail with the big ones' timeout, not after a timeout of their own,
    # and a callback that raises costs the others nothing.
    for _, error in outcomes[16:]:
        assert isinstance(error, ConnectionLost), error
        assert "stopped reading requests" in str(error)
    assert waited < 3.0, waited
    assert not client.connected
    with pytest.raises(RPCTimeout):  # the next call connects afresh
        await client.call("ping", [], timeout=0.05)
    assert len(peers) == 2
    with pytest.raises(RPCTimeout):  # an awaited call that times out unsent drops it too
        await client.call("big", [b"x" * (16 << 20)], timeout=0.3)
    assert not client.connected
    with pytest.raises(RPCTimeout):
        await client.call("ping", [], timeout=0.05)
    assert len(peers) == 3
    await client.close()
    for peer in peers:
        peer.transport.abort()
    server.close()


@pytest.mark.asyncio
async def test_a_busy_server_that_still_answers_keeps_its_connection() -> None:
    """A live server that stops reading at ``max_in_flight`` while slow calls run: our
    requests back up and calls time out, but answers keep coming, so nothing is dropped."""

    def slow(value: bytes) -> int:
        time.sleep(0.03)
        return len(value)

    handlers = {"slow": Handler(slow, LockMode.NOLOCK, (t.Raw(),), t.Int(), on_worker=True)}
    rpc = RpcServer(Dispatcher(handlers, cluster_name="c"), threads=2, max_in_flight=4)
    await rpc.start()
    client = AsyncClient("127.0.0.1", rpc.port, timeout=0.4)  # 0.2 s of silence would drop
    with contextlib.suppress(RPCTimeout):
        await client.call("slow", ["c", b""], timeout=2)
    outcomes: Outcomes = []
    for _ in range(60):  # 60 x 256 KiB, answered 2 at a time every 30 ms: ~0.9 s
        sent = client.call_soon(
            "slow", ["c", b"x" * (256 << 10)], lambda e, r: outcomes.append(("slow", e))
        )
        assert sent
    deadline = time.monotonic() + 10
    while len(outcomes) < 60 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    errors = [type(error).__name__ for _, error in outcomes if error is not None]
    assert len(outcomes) == 60
    assert "RPCTimeout" in errors, "no call timed out: the test did not test anything"
    assert "ConnectionLost" not in errors, errors
    assert client.connected
    await client.close()
    await rpc.close(1)


@pytest.mark.asyncio
async def test_a_server_that_read_everything_and_runs_a_long_call_keeps_its_connection() -> None:
    """The requests backed up once, but the server read them all: a call timing out
    behind its long call is no sign of a hung server."""

    def slow(value: bytes) -> int:
        time.sleep(1.2)
        return len(value)

    handlers = {
        "slow": Handler(slow, LockMode.UPDATE, (t.Raw(),), t.Int(), on_worker=True),
        "ping": Handler(lambda: 1, LockMode.ANALYSIS, (), t.Int()),
    }
    rpc = RpcServer(Dispatcher(handlers, cluster_name="c"), threads=2)
    await rpc.start()
    client = AsyncClient("127.0.0.1", rpc.port, timeout=0.6)  # 0.3 s of silence would drop
    assert await client.call("ping", ["c"]) == 1
    big = asyncio.ensure_future(client.call("slow", ["c", b"x" * (32 << 20)], timeout=10))
    await asyncio.sleep(0.3)  # read by the server, running under the write lock
    with pytest.raises(RPCTimeout):
        await client.call("ping", ["c"])  # waits behind the lock
    assert await big == 32 << 20
    assert client.connected
    await client.close()
    await rpc.close(1)


class _AnswersOnceThenHangs(asyncio.Protocol):
    """Answers the first request 0.2 s later, and reads nothing after it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)
        self.unpacker = msgpack.Unpacker(raw=True, max_buffer_size=1 << 30)

    def data_received(self, data: bytes) -> None:
        self.unpacker.feed(data)
        for request in self.unpacker:
            self.transport.pause_reading()
            answer = msgpack.packb([1, request[1], None, 1])
            asyncio.get_running_loop().call_later(0.2, self.transport.write, answer)
            return


@pytest.mark.asyncio
async def test_a_server_that_answers_once_and_then_hangs_loses_its_connection() -> None:
    server, peers = await _serve(_AnswersOnceThenHangs)
    client = AsyncClient("127.0.0.1", server.sockets[0].getsockname()[1], timeout=0.5)
    outcomes: Outcomes = []
    with pytest.raises(RPCTimeout):
        await client.call("ping", [], timeout=0.05)  # connects; the answer comes too late
    for _ in range(8):  # 32 MiB: backs up; the one answer comes after it did
        assert client.call_soon("big", [b"x" * (4 << 20)], lambda e, r: outcomes.append(("big", e)))
    deadline = time.monotonic() + 5
    while client.connected and time.monotonic() < deadline:
        with contextlib.suppress(RPCError):
            await client.call("ping", [])
    assert not client.connected, "a server that stopped reading kept its connection"
    assert time.monotonic() < deadline
    await client.close()
    for peer in peers:
        peer.transport.abort()
    server.close()
