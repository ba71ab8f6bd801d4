"""The client's reply path against a server that answers garbage: every waiting call fails
with ConnectionLost naming a bad reply, both for ``call`` and ``call_soon``, and the client
connects again afterwards. A real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgpack
import pytest
import pytest_asyncio

from runtime.errors import ConnectionLost, RPCError
from runtime.rpc.client import AsyncClient

BAD_REPLIES = {
    "not msgpack": b"\xc1",
    "msgid out of range": msgpack.packb([1, -5, None, 1]),
    "msgid not an int": msgpack.packb([1, "x", None, 1]),
    "not an array": msgpack.packb({"a": 1}),
}


class Replier(asyncio.Protocol):
    """Per connection: answers the first request properly (``[1, msgid, nil, 7]``), then
    sends ``bad`` instead of the second reply, and nothing more."""

    def __init__(self, bad: bytes) -> None:
        self.bad = bad
        self.seen = 0
        self.unpacker = msgpack.Unpacker(raw=False)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.unpacker.feed(data)
        for _, msgid, _, _ in self.unpacker:
            self.seen += 1
            if self.seen == 1:
                self.transport.write(msgpack.packb([1, msgid, None, 7]))
            elif self.seen == 2:
                self.transport.write(self.bad)


@pytest_asyncio.fixture(params=sorted(BAD_REPLIES))
async def port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    bad = BAD_REPLIES[request.param]
    server = await asyncio.get_running_loop().create_server(lambda: Replier(bad), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.mark.asyncio
async def test_a_bad_reply_fails_every_waiting_call_and_the_client_recovers(port: int) -> None:
    client = AsyncClient("127.0.0.1", port, timeout=5)
    assert await client.call("m", ["c"]) == 7  # connected
    outcomes: list[tuple[RPCError | None, object]] = []
    got = asyncio.Event()

    def record(error: RPCError | None, result: object) -> None:
        outcomes.append((error, result))
        got.set()

    assert client.call_soon("m", ["c"], record)  # answered with garbage
    with pytest.raises(ConnectionLost, match="bad reply"):
        await client.call("m", ["c"])  # waiting behind it on the same connection
    await asyncio.wait_for(got.wait(), 5)
    error, result = outcomes[0]
    assert isinstance(error, ConnectionLost) and "bad reply" in str(error) and result is None
    assert await client.call("m", ["c"]) == 7  # a new connection, answered properly
    await client.close()
