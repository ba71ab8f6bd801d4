"""Closing clients and pools over real sockets on 127.0.0.1: close() returns even when the
server stopped reading, the calls still waiting fail at once, and nothing connects after;
a client drops a connection whose server stopped reading once calls on it time out."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime.errors import ConnectError, ConnectionLost, RPCError, RPCTimeout
from runtime.rpc.client import CLOSE_GRACE, AsyncClient

Outcomes = list[tuple[str, RPCError | None]]


class _Hung(asyncio.Protocol):
    """A server that accepts and never reads."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.pause_reading()


class _Counting(asyncio.Protocol):
    """A server that only counts the connections open to it."""

    open = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _Counting.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        _Counting.open -= 1


@pytest.mark.asyncio
async def test_close_drops_a_connection_whose_server_stopped_reading() -> None:
    loop = asyncio.get_running_loop()
    peers: list[_Hung] = []

    def accept() -> _Hung:
        peers.append(_Hung())
        return peers[-1]

    server = await loop.create_server(accept, "127.0.0.1", 0)
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
    loop = asyncio.get_running_loop()
    peers: list[_Hung] = []

    def accept() -> _Hung:
        peers.append(_Hung())
        return peers[-1]

    server = await loop.create_server(accept, "127.0.0.1", 0)
    client = AsyncClient("127.0.0.1", server.sockets[0].getsockname()[1], timeout=0.4)
    with pytest.raises(RPCTimeout):
        await client.call("ping", [], timeout=0.05)  # connects; nobody answers
    outcomes: Outcomes = []
    started = time.monotonic()
    for _ in range(16):  # one write of 16 MiB: the kernel takes some, the rest waits here
        assert client.call_soon("big", [b"x" * (1 << 20)], lambda e, r: outcomes.append(("big", e)))
    await asyncio.sleep(0.2)
    assert client.call_soon("late", [], lambda e, r: outcomes.append(("late", e)))
    while len(outcomes) < 17 and time.monotonic() - started < 5:
        await asyncio.sleep(0.02)
    waited = time.monotonic() - started
    assert [name for name, _ in outcomes] == ["big"] * 16 + ["late"]
    assert all(isinstance(error, RPCTimeout) for _, error in outcomes[:16]), outcomes
    # The late call fails with the big ones' timeout, not after a timeout of its own.
    assert isinstance(outcomes[16][1], ConnectionLost), outcomes[16][1]
    assert "stopped reading requests" in str(outcomes[16][1])
    assert waited < 0.4 + 0.2 + 0.15, waited
    assert not client.connected
    with pytest.raises(RPCTimeout):  # the next call connects afresh
        await client.call("ping", [], timeout=0.05)
    assert len(peers) == 2
    with pytest.raises(RPCTimeout):  # an awaited call that times out unsent drops it too
        await client.call("big", [b"x" * (16 << 20)], timeout=0.2)
    assert not client.connected
    with pytest.raises(RPCTimeout):
        await client.call("ping", [], timeout=0.05)
    assert len(peers) == 3
    await client.close()
    for peer in peers:
        peer.transport.abort()
    server.close()
