"""The RPC layer over real sockets on 127.0.0.1: protocol, dispatch, server, clients, limits."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import pytest_asyncio

from runtime.errors import (
    ConnectError,
    ConnectionLost,
    MessageTooLarge,
    ProtocolError,
    RemoteError,
    RPCError,
    RPCTimeout,
    TypeMismatch,
    UnknownMethod,
)
from runtime.rpc.client import AsyncClient, Client
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.locks import LockMode, RWLock
from runtime.rpc.pool import ClientPool
from runtime.rpc.protocol import (
    Decoder,
    Notification,
    Request,
    Response,
    pack_request,
    pack_response,
)
from runtime.rpc.server import RpcServer
from runtime.wire import types as t

# -- protocol ------------------------------------------------------------------------------


def test_requests_pack_in_the_old_spec() -> None:
    frame = pack_request(0, "get_status", ["mycluster"])
    assert frame.hex() == "940000aa6765745f7374617475739" + "1a96d79636c7573746572"
    long = pack_response(1, None, "x" * 40)
    assert b"\xd9" not in long and b"\xc4" not in long
    assert b"\xda\x00\x28" in long


def test_decoder_handles_split_frames_and_all_types() -> None:
    decoder = Decoder()
    data = (
        pack_request(2**32 - 1, "m", [1])
        + pack_response(3, None, b"r")
        + msgpack.packb([2, "n", []])
    )
    messages: list[object] = []
    for i in range(len(data)):
        messages += decoder.feed(data[i : i + 1])
    assert messages == [
        Request(2**32 - 1, "m", [1]),
        Response(3, None, b"r"),
        Notification("n", []),
    ]


@pytest.mark.parametrize(
    "obj",
    [
        5,
        [],
        [0, 1, "m"],
        [0, -1, "m", []],
        [0, 2**32, "m", []],
        [0, 1, 5, []],
        [0, 1, "m", 7],
        [9, 1, 2, 3],
    ],
)
def test_decoder_rejects_malformed_envelopes(obj: object) -> None:
    with pytest.raises(ProtocolError):
        Decoder().feed(msgpack.packb(obj))


def test_decoder_rejects_garbage_and_oversized_frames() -> None:
    with pytest.raises(ProtocolError):
        Decoder().feed(b"\xc1\xc1\xc1")
    with pytest.raises(MessageTooLarge):
        Decoder(1024).feed(b"\xdb" + (100 * 1024 * 1024).to_bytes(4, "big") + b"x" * 2048)


# -- lock ----------------------------------------------------------------------------------


def test_readers_share_writers_exclude_and_are_not_starved() -> None:
    lock = RWLock()
    assert lock.try_acquire_read() and lock.try_acquire_read()
    assert not lock.try_acquire_write()
    writer_got_it = threading.Event()

    def writer() -> None:
        lock.acquire_write()
        writer_got_it.set()
        lock.release_write()

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 5
    while lock.waiting_writers == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not lock.try_acquire_read(), "a waiting writer must block new readers"
    lock.release_read()
    lock.release_read()
    assert writer_got_it.wait(5)
    thread.join()
    assert lock.try_acquire_write()
    assert not lock.try_acquire_read()
    lock.release_write()


# -- a live server -------------------------------------------------------------------------


class Service:
    def __init__(self) -> None:
        self.store: dict[str, str] = {}
        self.updates = 0

    def put(self, key: str, value: str) -> bool:
        self.store[key] = value
        return True

    def get(self, key: str) -> str:
        return self.store.get(key, "")

    def echo(self, value: Any) -> Any:
        return value

    def slow(self, seconds: float) -> bool:
        time.sleep(seconds)
        return True

    def boom(self) -> bool:
        raise ValueError("it broke")

    def score(self) -> float:
        return 1  # an int where a double is declared


def make_server(service: Service, **options: Any) -> RpcServer:
    def counted() -> None:
        service.updates += 1

    handlers = {
        "put": Handler(service.put, LockMode.UPDATE, (t.String(), t.String()), t.Bool()),
        "get": Handler(service.get, LockMode.ANALYSIS, (t.String(),), t.String()),
        "echo": Handler(service.echo, LockMode.NOLOCK, (t.Object(),), t.Object()),
        "slow": Handler(service.slow, LockMode.ANALYSIS, (t.Float(),), t.Bool()),
        "boom": Handler(service.boom, LockMode.UPDATE, (), t.Bool()),
        "score": Handler(service.score, LockMode.ANALYSIS, (), t.Float()),
    }
    dispatcher = Dispatcher(handlers, cluster_name="c", on_update=counted)
    return RpcServer(dispatcher, "127.0.0.1", 0, **options)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tuple[RpcServer, Service]]:
    service = Service()
    rpc = make_server(service, threads=2)
    await rpc.start()
    yield rpc, service
    await rpc.close(drain_timeout=2)


async def healthy(rpc: RpcServer) -> None:
    """The server still answers a well-formed call."""
    async with AsyncClient("127.0.0.1", rpc.port, timeout=5) as client:
        assert await client.call("get", ["c", "k"]) in (b"", b"v")


@pytest.mark.asyncio
async def test_calls_errors_and_update_counting(server: tuple[RpcServer, Service]) -> None:
    rpc, service = server
    async with AsyncClient("127.0.0.1", rpc.port) as client:
        assert await client.call("put", ["c", "k", "v"]) is True
        assert await client.call("get", ["c", "k"]) == b"v"
        assert service.updates == 1
        with pytest.raises(UnknownMethod, match="nope"):
            await client.call("nope", ["c"])
        with pytest.raises(UnknownMethod):
            await client.call("dummy", [])
        with pytest.raises(TypeMismatch, match="argument"):
            await client.call("put", ["c", "k"])
        with pytest.raises(TypeMismatch, match="put: argument 1: expected string, got integer"):
            await client.call("put", ["c", "k", 5])
        with pytest.raises(TypeMismatch, match="cluster name"):
            await client.call("get", [7, "k"])
        with pytest.raises(TypeMismatch, match="UTF-8"):
            await client.call("get", ["c", b"\xff\xfe"])
        # Another cluster name is served, as Jubatus serves it (tools call members with "").
        assert await client.call("get", ["other", "k"]) == await client.call("get", ["c", "k"])
        with pytest.raises(RemoteError, match="ValueError: it broke"):
            await client.call("boom", ["c"])
        assert service.updates == 1
        score = await client.call("score", ["c"])
        assert type(score) is float
    await healthy(rpc)


@pytest.mark.asyncio
async def test_raw_error_replies_match_jubatus(server: tuple[RpcServer, Service]) -> None:
    rpc, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
    writer.write(pack_request(7, "nope", ["c"]) + pack_request(8, "boom", ["c"]))
    unpacker = msgpack.Unpacker(raw=True)
    replies: list[Any] = []
    while len(replies) < 2:
        unpacker.feed(await reader.read(4096))
        replies.extend(unpacker)
    assert [1, 7, 1, b"nope"] in replies
    assert [1, 8, b"ValueError: it broke", None] in replies
    writer.close()


@pytest.mark.asyncio
async def test_ten_thousand_pipelined_calls(server: tuple[RpcServer, Service]) -> None:
    rpc, _ = server
    async with AsyncClient("127.0.0.1", rpc.port, timeout=30) as client:
        results = await asyncio.gather(*(client.call("echo", ["c", i]) for i in range(10_000)))
    assert results == list(range(10_000))


@pytest.mark.asyncio
async def test_two_hundred_connections_open_and_close(server: tuple[RpcServer, Service]) -> None:
    rpc, _ = server

    async def one(i: int) -> object:
        async with AsyncClient("127.0.0.1", rpc.port, timeout=10) as client:
            return await client.call("echo", ["c", i])

    assert await asyncio.gather(*(one(i) for i in range(200))) == list(range(200))
    await asyncio.sleep(0.05)
    assert len(rpc.connections) == 0


@pytest.mark.asyncio
async def test_a_slow_call_does_not_hold_up_other_connections(
    server: tuple[RpcServer, Service],
) -> None:
    rpc, _ = server
    async with (
        AsyncClient("127.0.0.1", rpc.port) as slow,
        AsyncClient("127.0.0.1", rpc.port) as fast,
    ):
        await fast.call("get", ["c", "k"])  # learn that get is fast
        await fast.call("get", ["c", "k"])
        slow_call = asyncio.create_task(slow.call("slow", ["c", 1.0]))
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        for _ in range(20):
            await fast.call("get", ["c", "k"])
        elapsed = time.perf_counter() - started
        assert not slow_call.done(), "the fast calls finished while the slow one still ran"
        assert elapsed < 0.5
        assert await slow_call is True


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "garbage",
    [
        b"\xc1" * 16,
        bytes(range(256)),
        msgpack.packb([0, 1, "get"]),
        msgpack.packb({"not": "an array"}),
        msgpack.packb([0, "id", "get", ["c", "k"]]),
        msgpack.packb([0, 1, 2, ["c"]]),
        msgpack.packb([0, 1, ["get"], ["c", "k"]]),  # a method name that is not hashable
        msgpack.packb([0, 1, None, ["c", "k"]]),
        msgpack.packb(b"\x00get"),  # a string of four bytes, not an array of four items
        msgpack.packb({0: 1, 2: 3, 4: 5, 6: 7}),
    ],
)
async def test_garbage_closes_only_that_connection(
    server: tuple[RpcServer, Service], garbage: bytes
) -> None:
    rpc, _ = server
    async with AsyncClient("127.0.0.1", rpc.port) as bystander:
        await bystander.call("put", ["c", "k", "v"])
        reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        writer.write(garbage)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert await bystander.call("get", ["c", "k"]) == b"v"
    await healthy(rpc)


@pytest.mark.asyncio
async def test_a_frame_over_the_limit_is_refused() -> None:
    service = Service()
    rpc = make_server(service, max_message_size=1024 * 1024)
    await rpc.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        # The start of an echo request whose argument is a 100 MiB raw value.
        writer.write(b"\x94\x00\x01\xa4echo\x92\xa1c\xdb" + (100 * 1024 * 1024).to_bytes(4, "big"))
        closed = False
        try:
            for _ in range(8):
                writer.write(b"x" * 512 * 1024)
                await writer.drain()
            closed = await asyncio.wait_for(reader.read(), 5) == b""
        except ConnectionError:
            closed = True
        assert closed
        writer.close()
        await healthy(rpc)
    finally:
        await rpc.close()


@pytest.mark.asyncio
async def test_clients_vanishing_mid_call_and_truncated_frames(
    server: tuple[RpcServer, Service],
) -> None:
    rpc, _ = server
    for _ in range(20):
        _reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        writer.write(pack_request(1, "slow", ["c", 0.05]) + pack_request(2, "get", ["c", "k"])[:5])
        await writer.drain()
        writer.transport.abort()
    await asyncio.sleep(0.2)
    await healthy(rpc)


@pytest.mark.asyncio
async def test_idle_connections_close_when_asked_and_the_client_reconnects() -> None:
    service = Service()
    rpc = make_server(service, idle_timeout=0.2)
    await rpc.start()
    try:
        async with AsyncClient("127.0.0.1", rpc.port) as client:
            await client.call("get", ["c", "k"])
            await asyncio.sleep(0.6)
            assert not client.connected
            assert await client.call("get", ["c", "k"]) == b""
    finally:
        await rpc.close()


@pytest.mark.asyncio
async def test_close_drains_calls_in_flight() -> None:
    service = Service()
    rpc = make_server(service)
    await rpc.start()
    client = AsyncClient("127.0.0.1", rpc.port)
    call = asyncio.create_task(client.call("slow", ["c", 0.3]))
    await asyncio.sleep(0.1)
    await rpc.close(drain_timeout=5)
    assert await call is True
    await client.close()


@pytest.mark.asyncio
async def test_client_timeout_and_connect_errors(server: tuple[RpcServer, Service]) -> None:
    rpc, _ = server
    async with AsyncClient("127.0.0.1", rpc.port, timeout=0.2) as client:
        with pytest.raises(RPCTimeout):
            await client.call("slow", ["c", 0.6])
        assert isinstance(RPCTimeout("x"), TimeoutError)
        assert await client.call("get", ["c", "k"]) == b""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(ConnectError):
        await AsyncClient("127.0.0.1", port).call("get", ["c", "k"])


def test_blocking_client_reconnects_after_the_server_closed() -> None:
    service = Service()
    loop = asyncio.new_event_loop()
    rpc = make_server(service)
    loop.run_until_complete(rpc.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with Client("127.0.0.1", rpc.port, timeout=5) as client:
            assert client.call("put", ["c", "k", "v"]) is True
            asyncio.run_coroutine_threadsafe(_drop_all(rpc), loop).result(5)
            time.sleep(0.1)
            with pytest.raises(ConnectionLost):
                client.call("get", ["c", "k"])
            assert client.call("get", ["c", "k"]) == b"v"
            with pytest.raises(RemoteError, match="it broke"):
                client.call("boom", ["c"])
    finally:
        asyncio.run_coroutine_threadsafe(rpc.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _drop_all(rpc: RpcServer) -> None:
    for connection in list(rpc.connections):
        connection.close()


@pytest.mark.asyncio
async def test_pool_reuses_and_drops_failed_clients(server: tuple[RpcServer, Service]) -> None:
    rpc, _ = server
    pool = ClientPool(timeout=5)
    assert await pool.call("127.0.0.1", rpc.port, "echo", ["c", 1]) == 1
    assert await pool.call("127.0.0.1", rpc.port, "echo", ["c", 2]) == 2
    assert len(pool._clients[("127.0.0.1", rpc.port)]) == 1
    with pytest.raises(ConnectError):
        await pool.call("127.0.0.1", 1, "echo", ["c", 1])
    assert ("127.0.0.1", 1) not in pool._clients
    await pool.close()


@pytest.mark.asyncio
async def test_pool_hands_a_client_a_batch_of_calls_then_the_next(
    server: tuple[RpcServer, Service],
) -> None:
    rpc, _ = server
    address = ("127.0.0.1", rpc.port)
    pool = ClientPool(timeout=5, max_per_host=2, batch=3)
    first = pool.client(*address)
    assert await first.call("echo", ["c", 0]) == 0
    answers: list[object] = []

    def record(error: RPCError | None, result: object) -> None:
        answers.append(error or result)

    for value in range(3):  # one loop iteration: these share one write
        client = pool.client(*address)
        assert client is first and client.call_soon("echo", ["c", value], record)
    second = pool.client(*address)  # the first has a full batch: another takes over
    assert second is not first and not second.connected
    assert await second.call("echo", ["c", 9]) == 9
    assert pool.client(*address) is second, "an empty queue keeps its client"
    for value in range(3):
        assert pool.client(*address).call_soon("echo", ["c", value], record)
    assert pool.client(*address) is first, "past max_per_host, back to the first"
    while len(answers) < 6:
        await asyncio.sleep(0.01)
    assert sorted(answers) == [0, 0, 1, 1, 2, 2]  # type: ignore[type-var]
    assert len(pool._clients[address]) == 2
    await pool.close()


@pytest.mark.asyncio
async def test_a_discarded_client_is_not_handed_out_again(
    server: tuple[RpcServer, Service],
) -> None:
    rpc, _ = server
    pool = ClientPool(timeout=5)
    first = pool.client("127.0.0.1", rpc.port)
    assert await first.call("echo", ["c", 1]) == 1
    await pool.discard("127.0.0.1", rpc.port, first)
    second = pool.client("127.0.0.1", rpc.port)
    assert second is not first
    assert await pool.call("127.0.0.1", rpc.port, "echo", ["c", 2]) == 2
    await pool.close()


@pytest.mark.asyncio
async def test_a_failing_callback_costs_no_other_reply(server: tuple[RpcServer, Service]) -> None:
    rpc, _ = server
    answers: list[object] = []

    def record(error: RPCError | None, result: object) -> None:
        if result == 1:
            raise RuntimeError("a broken callback")
        answers.append(error or result)

    async with AsyncClient("127.0.0.1", rpc.port, timeout=5) as client:
        assert await client.call("echo", ["c", 0]) == 0
        for value in (1, 2, 3):  # one write; their answers come back in one read
            assert client.call_soon("echo", ["c", value], record)
        async with asyncio.timeout(5):
            while len(answers) < 2:
                await asyncio.sleep(0.01)
        assert answers == [2, 3]
        assert client.connected, "the connection outlives the callback's failure"
        assert await client.call("echo", ["c", 4]) == 4
