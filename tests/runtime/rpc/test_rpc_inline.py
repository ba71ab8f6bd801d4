"""The server's inline path: many calls in one read, each answered as the general path
would answer it, under a model lock taken once per read and given up for writers.
Real servers on 127.0.0.1, raw pipelined frames."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import pytest_asyncio

from runtime.errors import ARGUMENT_ERROR, NO_METHOD_ERROR
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.inline import MAX_SERVED_PER_PASS
from runtime.rpc.locks import LockMode, RWLock
from runtime.rpc.server import RpcServer
from runtime.wire import types as t


class Model:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.updates = 0
        self.delay = 0.0
        self.threads: list[str] = []
        self.lock: RWLock | None = None
        self.swaps = 0

    def echo(self, value: bytes) -> bytes:
        return value

    def put(self, key: str, value: int) -> bool:
        self.values[key] = value
        return True

    def three(self, number: int, text: str, anything: Any) -> list[Any]:
        return [number, text, anything]

    def fail(self) -> int:
        raise ValueError("no such thing")

    def bad_result(self) -> int:
        return "not an int"  # type: ignore[return-value]

    def unpackable(self, kind: int) -> Any:
        return {kind} if kind else kind  # a set does not pack

    def half(self, value: float) -> float:
        return value / 2 if value != 7 else 3

    def blob(self) -> bytes:
        return bytearray(b"made")  # type: ignore[return-value]

    def swap(self) -> bool:
        """A ``#@nolock`` method that takes the model lock itself, as ``load`` does."""
        assert self.lock is not None
        with self.lock.write():
            self.swaps += 1
        return True

    def work(self) -> int:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)
        return len(self.threads)


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[RpcServer, Model]]:
    model = Model()

    def updated() -> None:
        model.updates += 1

    handlers = {
        "echo": Handler(model.echo, LockMode.ANALYSIS, (t.Raw(),), t.Raw()),
        "put": Handler(model.put, LockMode.UPDATE, (t.String(), t.Int()), t.Bool()),
        "three": Handler(
            model.three, LockMode.ANALYSIS, (t.Int(), t.String(), t.Object()), t.Object()
        ),
        "fail": Handler(model.fail, LockMode.ANALYSIS, (), t.Int()),
        "bad_result": Handler(model.bad_result, LockMode.UPDATE, (), t.Int()),
        "work": Handler(model.work, LockMode.NOLOCK, (), t.Int()),
        "unpackable": Handler(model.unpackable, LockMode.ANALYSIS, (t.Int(),), t.Object()),
        "half": Handler(model.half, LockMode.ANALYSIS, (t.Float(),), t.Float()),
        "blob": Handler(model.blob, LockMode.ANALYSIS, (), t.Raw()),
        "swap": Handler(model.swap, LockMode.NOLOCK, (), t.Bool()),
        "on_worker": Handler(model.work, LockMode.NOLOCK, (), t.Int(), on_worker=True),
    }
    dispatcher = Dispatcher(handlers, cluster_name="c", on_update=updated)
    model.lock = dispatcher.model_lock
    rpc = RpcServer(dispatcher, "127.0.0.1", 0, threads=2)
    await rpc.start()
    yield rpc, model
    await rpc.close()


class RawPeer:
    """A client that writes many frames at once and reads replies by msgid (old-spec raw
    values come back as bytes: strings are decoded here, binary values stay bytes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.unpacker = msgpack.Unpacker(raw=True)

    async def send(self, frames: list[list[Any]]) -> None:
        self.writer.write(b"".join(msgpack.packb(f, use_bin_type=False) for f in frames))
        await self.writer.drain()

    async def replies(self, count: int, timeout: float = 5.0) -> dict[int, tuple[Any, Any]]:
        out: dict[int, tuple[Any, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(out) < count:
            data = await asyncio.wait_for(self.reader.read(65536), deadline - time.monotonic())
            assert data, "the server closed the connection"
            self.unpacker.feed(data)
            for kind, msgid, error, result in self.unpacker:
                assert kind == 1
                out[msgid] = (_text(error), _text(result))
        return out

    async def call(self, method: str, params: list[Any], msgid: int = 0) -> tuple[Any, Any]:
        await self.send([[0, msgid, method, params]])
        return (await self.replies(1))[msgid]


def _text(value: Any) -> Any:
    """Old-spec raw values that are UTF-8 text, as str (binary ones stay bytes)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    return value


@pytest_asyncio.fixture
async def peer(served: tuple[RpcServer, Model]) -> AsyncIterator[RawPeer]:
    rpc, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
    client = RawPeer(reader, writer)
    # First calls run on workers; after them every method is known fast and runs inline.
    warm_up: list[tuple[str, list[Any]]] = [
        ("echo", ["c", b"x"]), ("put", ["c", "k", 0]), ("three", ["c", 1, "a", None]),
        ("fail", ["c"]), ("bad_result", ["c"]), ("work", ["c"]),
        ("half", ["c", 1.0]), ("blob", ["c"]), ("swap", ["c"]), ("unpackable", ["c", 0]),
    ]  # fmt: skip
    for method, params in warm_up:
        await client.call(method, params)
    yield client
    writer.close()


@pytest.mark.asyncio
async def test_one_read_answers_every_kind_of_call_as_the_general_path_does(
    served: tuple[RpcServer, Model], peer: RawPeer
) -> None:
    rpc, model = served
    assert all(rpc.timings[m].fast for m in ("echo", "put", "three", "fail", "bad_result"))
    updates_before = model.updates
    frames = [
        [0, 1, "echo", ["c", b"\xff\x00binary"]],
        [0, 2, "echo", ["c", 7]],  # wrong type
        [0, 3, "echo", ["other", b"x"]],  # another cluster: served, as Jubatus does
        [0, 4, "nothing", ["c"]],  # unknown method
        [0, 5, "fail", ["c"]],  # the method raises
        [0, 6, "put", ["c", "key", 42]],
        [0, 7, "bad_result", ["c"]],  # the result does not fit its type
        [0, 8, "echo", ["c", b"x", b"y"]],  # one argument too many
        [2, "put", ["c", "note", 1]],  # a notification: run, never answered
        [0, 9, "three", ["c", 5, "text", {"any": [1, 2]}]],
        [0, 10, "put", ["c", b"\xff", 1]],  # a string that is not UTF-8
        [0, 11, "echo", [None, b"x"]],  # nil for the cluster name
        [0, 12, "echo", ["c", b"last"]],
    ]
    await peer.send(frames)
    replies = await peer.replies(12)
    assert replies[1] == (None, b"\xff\x00binary")
    assert replies[2] == (ARGUMENT_ERROR, "echo: argument 0: expected raw, got integer")
    assert replies[3] == (None, "x")
    assert replies[4] == (NO_METHOD_ERROR, "nothing")
    assert replies[5] == ("ValueError: no such thing", None)
    assert replies[6] == (None, True)
    assert replies[7][0].startswith("TypeError: bad_result returned a bad value")
    assert replies[8][0] == ARGUMENT_ERROR
    assert replies[9] == (None, [5, "text", {"any": [1, 2]}])
    assert replies[10][0] == ARGUMENT_ERROR and "UTF-8" in replies[10][1]
    assert replies[11][0] == ARGUMENT_ERROR and "cluster name" in replies[11][1]
    assert replies[12] == (None, "last")
    assert model.values == {"k": 0, "key": 42, "note": 1}
    # put, bad_result (it ran) and the notified put count as updates; the refused put not.
    assert model.updates - updates_before == 3
    # The read gave the model lock back.
    lock = rpc.dispatcher.model_lock
    assert lock.try_acquire_write()
    lock.release_write()
    assert await peer.call("echo", ["c", b"again"], msgid=13) == (None, "again")


@pytest.mark.asyncio
async def test_replies_keep_the_order_of_the_calls_and_a_result_that_does_not_pack_fails_alone(
    peer: RawPeer,
) -> None:
    # Inline replies are packed together per run of calls: one that cannot be packed must
    # not take its neighbours with it, and replies go out in the order the calls came.
    frames: list[list[Any]] = []
    for msgid in range(40):
        if msgid in (7, 30):
            frames.append([0, msgid, "unpackable", ["c", 1]])
        elif msgid == 20:
            frames.append([0, msgid, "echo", ["c", 5]])  # wrong type: the general path
        else:
            frames.append([0, msgid, "unpackable", ["c", 0]])
    await peer.send(frames)
    order: list[int] = []
    unpacker = msgpack.Unpacker(raw=False)
    replies: dict[int, tuple[Any, Any]] = {}
    while len(order) < 40:
        data = await asyncio.wait_for(peer.reader.read(65536), 5)
        assert data, "the server closed the connection"
        unpacker.feed(data)
        for _, msgid, error, result in unpacker:
            order.append(msgid)
            replies[msgid] = (error, result)
    assert order == list(range(40))
    for msgid in (7, 30):
        assert replies[msgid][0].startswith("cannot pack the result")
    assert replies[20][0] == ARGUMENT_ERROR
    assert all(replies[m] == (None, 0) for m in range(40) if m not in (7, 20, 30))
    assert await peer.call("echo", ["c", b"after"], msgid=99) == (None, "after")  # as text


@pytest.mark.asyncio
async def test_values_not_of_the_exact_type_are_still_converted(
    served: tuple[RpcServer, Model], peer: RawPeer
) -> None:
    """The compiled runners pass values of the exact type through and convert the rest
    by the declared type, both ways."""
    rpc, _ = served
    assert _runs_inline(rpc, "half") and _runs_inline(rpc, "blob")
    await peer.send(
        [
            [0, 1, "half", ["c", 5.0]],  # a double as a double
            [0, 2, "half", ["c", 5]],  # an int for a double: decoded as 5.0
            [0, 3, "half", ["c", 7]],  # the method returns the int 3: sent as 3.0
            [0, 4, "half", ["c", True]],  # a bool is not a double
            [0, 5, "blob", ["c"]],  # a bytearray result: sent as raw
        ]
    )
    replies = await peer.replies(5)
    assert replies[1] == (None, 2.5) and replies[2] == (None, 2.5)
    assert replies[3] == (None, 3.0) and type(replies[3][1]) is float
    assert replies[4][0] == ARGUMENT_ERROR
    assert replies[5] == (None, "made")


@pytest.mark.asyncio
async def test_a_nolock_method_that_takes_the_model_lock_runs_after_reads_in_one_read(
    served: tuple[RpcServer, Model], peer: RawPeer
) -> None:
    """The read's model lock is given up before a ``#@nolock`` call: such a method may take
    the lock itself (``load`` takes it alone), which would otherwise wait for ever."""
    rpc, model = served
    assert _runs_inline(rpc, "swap") and _runs_inline(rpc, "echo")
    swaps_before = model.swaps
    await peer.send(
        [[0, 1, "echo", ["c", b"x"]], [0, 2, "swap", ["c"]], [0, 3, "echo", ["c", b"y"]]]
    )
    replies = await peer.replies(3, timeout=3)
    assert replies == {1: (None, "x"), 2: (None, True), 3: (None, "y")}
    assert model.swaps == swaps_before + 1


@pytest.mark.asyncio
async def test_a_waiting_writer_gets_the_lock_while_reads_keep_coming(
    served: tuple[RpcServer, Model], peer: RawPeer
) -> None:
    rpc, _ = served
    lock = rpc.dispatcher.model_lock
    stop = asyncio.Event()
    answered = 0

    async def read_load() -> None:
        nonlocal answered
        msgid = 100
        while not stop.is_set():
            batch = [[0, msgid + i, "echo", ["c", b"x"]] for i in range(64)]
            msgid += 64
            await peer.send(batch)
            answered += len(await peer.replies(64))

    load = asyncio.create_task(read_load())
    await asyncio.sleep(0.2)
    acquired = threading.Event()
    waited: list[float] = []

    def writer() -> None:
        started = time.monotonic()
        with lock.write():
            waited.append(time.monotonic() - started)
            acquired.set()
            time.sleep(0.05)

    thread = threading.Thread(target=writer)
    before = answered
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, acquired.wait, 5.0)
    await asyncio.sleep(0.2)
    stop.set()
    await load
    thread.join(5)
    assert acquired.is_set() and waited[0] < 1.0, waited
    assert answered > before, "reads went on after the writer"


@pytest.mark.asyncio
async def test_a_method_turning_slow_leaves_the_inline_path(
    served: tuple[RpcServer, Model], peer: RawPeer
) -> None:
    rpc, model = served
    for msgid in range(1, 9):
        await peer.call("work", ["c"], msgid=msgid)
    assert _runs_inline(rpc, "work")
    model.threads.clear()
    model.delay = 0.005  # five times the inline limit
    await peer.send([[0, 100 + i, "work", ["c"]] for i in range(16)])
    replies = await peer.replies(16)
    assert all(error is None for error, _ in replies.values())
    assert not _runs_inline(rpc, "work")
    model.threads.clear()
    await peer.send([[0, 200 + i, "work", ["c"]] for i in range(4)])
    await peer.replies(4)
    assert model.threads and all(name.startswith("rpc") for name in model.threads), model.threads


def _runs_inline(rpc: RpcServer, method: str) -> bool:
    return rpc.timings[method].fast


@pytest.mark.asyncio
async def test_an_on_worker_method_never_runs_on_the_loop(
    served: tuple[RpcServer, Model], peer: RawPeer
) -> None:
    _, model = served
    model.threads.clear()
    for msgid in range(1, 21):  # however fast it proves to be
        assert (await peer.call("on_worker", ["c"], msgid=msgid))[0] is None
    await peer.send([[0, 100 + i, "on_worker", ["c"]] for i in range(16)])
    await peer.replies(16)
    assert len(model.threads) == 36
    assert all(name.startswith("rpc") for name in model.threads), set(model.threads)


@contextlib.asynccontextmanager
async def _small_server(rpc: RpcServer, **options: Any) -> AsyncIterator[RpcServer]:
    """Another server over ``rpc``'s methods whose messages, and unsent answers per
    connection, are limited to 1 MiB."""
    small = RpcServer(rpc.dispatcher, "127.0.0.1", 0, max_message_size=1 << 20, **options)
    await small.start()
    try:
        yield small
    finally:
        await small.close(0.5)


def _echoes(count: int, payload: bytes) -> bytes:
    return b"".join(
        msgpack.packb([0, i, "echo", ["c", payload]], use_bin_type=False) for i in range(count)
    )


async def _write_until_blocked(writer: asyncio.StreamWriter, batch: bytes, most: int) -> int:
    """Write ``batch`` until the server stops reading (or ``most`` times); times written."""
    for written in range(1, most + 1):
        writer.write(batch)
        try:
            await asyncio.wait_for(writer.drain(), 1.0)
        except TimeoutError:
            return written
    raise AssertionError(f"the server read {most} batches without their answers being read")


async def _read_answers(
    reader: asyncio.StreamReader, count: int, payload: bytes, batch: int
) -> None:
    """Read ``count`` echo answers of ``payload`` for msgids 0 to ``batch`` - 1, sent over
    and over (a fresh server answers its first calls on workers: in any order)."""
    unpacker = msgpack.Unpacker(raw=True)
    msgids: collections.Counter[int] = collections.Counter()
    while sum(msgids.values()) < count:
        data = await asyncio.wait_for(reader.read(1 << 20), 10)
        assert data, f"the server closed the connection after {msgids.total()} answers"
        unpacker.feed(data)
        for kind, msgid, error, result in unpacker:
            assert (kind, error, result) == (1, None, payload)
            msgids[msgid] += 1
    assert msgids == {i: count // batch for i in range(batch)}


def _connection_of(rpc: RpcServer, writer: asyncio.StreamWriter) -> Any:
    local = writer.get_extra_info("sockname")
    (connection,) = [c for c in rpc.connections if c.peer == f"{local[0]}:{local[1]}"]
    return connection


@pytest.mark.asyncio
async def test_a_client_that_does_not_read_its_answers_is_not_read_either(
    served: tuple[RpcServer, Model],
) -> None:
    """Pipelining without reading: the server stops reading once the answers pile up (it
    used to read on and keep every answer, gigabytes for a hostile client), serves other
    clients meanwhile, and answers every request once the client reads."""
    payload = b"x" * 4096
    async with _small_server(served[0]) as rpc:
        reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        batches = await _write_until_blocked(writer, _echoes(256, payload), 1024)  # 1 GiB
        slow = _connection_of(rpc, writer)
        assert (slow.reading, slow.write_blocked) == (False, True)
        kept = slow.transport.get_write_buffer_size()
        # The limit, and at most one pass of answers beyond it.
        assert kept < (1 << 20) + MAX_SERVED_PER_PASS * 4200, f"{kept} bytes of answers kept"
        other = RawPeer(*await asyncio.open_connection("127.0.0.1", rpc.port))
        assert (await other.call("echo", ["c", b"still serving"]))[1] == "still serving"
        other.writer.close()
        sending = asyncio.ensure_future(writer.drain())  # the rest goes out as it reads
        await _read_answers(reader, batches * 256, payload, 256)
        await sending
        assert (slow.reading, slow.write_blocked) == (True, False)
        writer.close()


@pytest.mark.asyncio
async def test_a_client_that_pipelines_fast_and_reads_is_served_to_the_end(
    served: tuple[RpcServer, Model],
) -> None:
    """Small requests as fast as they can go, answers read as they come: nothing piles up
    unserved (reads of more requests than one pass serves are served whole)."""
    async with _small_server(served[0]) as rpc:
        reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        batch = _echoes(1000, b"x")  # 15 bytes a request
        rounds = 200  # 3 MB of requests: three times the limit of one message

        async def send() -> None:
            for _ in range(rounds):
                writer.write(batch)
                await writer.drain()

        sending = asyncio.ensure_future(send())
        await _read_answers(reader, rounds * 1000, b"x", 1000)
        await sending
        writer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("count", "payload"),
    [(20000, b"x"), (2000, b"y" * 4096)],  # many requests a read; more answers than kept
)
async def test_a_client_that_half_closes_gets_every_answer_then_eof(
    served: tuple[RpcServer, Model], count: int, payload: bytes
) -> None:
    async with _small_server(served[0]) as rpc:
        reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        writer.write(_echoes(count, payload))
        writer.write_eof()
        await asyncio.sleep(0.3)  # the server has the EOF before the client reads
        await _read_answers(reader, count, payload, count)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # then the server closes
        writer.close()


@pytest.mark.asyncio
async def test_an_idle_timeout_drops_a_client_that_reads_none_of_its_answers(
    served: tuple[RpcServer, Model],
) -> None:
    async with _small_server(served[0], idle_timeout=0.3) as rpc:
        _, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        with contextlib.suppress(ConnectionResetError):  # dropped while still writing
            await _write_until_blocked(writer, _echoes(256, b"z" * 4096), 1024)
        deadline = time.monotonic() + 3
        while rpc.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not rpc.connections, "a connection blocked on its client outlived the idle timeout"
        writer.close()


@pytest.mark.asyncio
async def test_a_read_of_more_requests_than_one_pass_serves_is_answered_whole(
    served: tuple[RpcServer, Model], peer: RawPeer
) -> None:
    count = MAX_SERVED_PER_PASS * 4 + 3  # one write: the server comes back for the rest
    await peer.send([[0, 1000 + i, "echo", ["c", b"%d" % i]] for i in range(count)])
    replies = await peer.replies(count)
    assert replies == {1000 + i: (None, str(i)) for i in range(count)}


@pytest.mark.asyncio
async def test_an_idle_timeout_drops_a_client_that_reads_nothing_below_the_limit(
    served: tuple[RpcServer, Model],
) -> None:
    """8 MiB of answers never read, far under the 64 MiB limit (so reading never stopped):
    close() would wait for the client for ever; the idle timeout drops it instead."""
    rpc = RpcServer(served[0].dispatcher, "127.0.0.1", 0, idle_timeout=0.3)
    await rpc.start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        writer.write(_echoes(2048, b"w" * 4096))
        deadline = time.monotonic() + 3
        while not rpc.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        while rpc.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not rpc.connections, "a client that reads nothing outlived its idle timeout"
        writer.transport.abort()
    finally:
        await rpc.close(0.5)


@pytest.mark.asyncio
async def test_answers_made_while_answering_are_written_at_its_end() -> None:
    """``RpcServer.answering``: calls of two connections answered from one callback (as a
    snapshot model's turn answers them) have their replies written when it returns, with
    no flush left for a later loop iteration."""
    held: list[Any] = []

    def later(params: list[Any], done: Any) -> None:
        held.append((params[1], done))

    row = Handler(
        lambda value: value, LockMode.NOLOCK, (t.Object(), t.Object()), t.Object(),
        takes_cluster_name=False, start=later,
    )  # fmt: skip
    rpc = RpcServer(Dispatcher({"later": row}, cluster_name="c"), "127.0.0.1", 0)
    await rpc.start()
    peers = []
    try:
        for value in (1, 2):
            peer = RawPeer(*await asyncio.open_connection("127.0.0.1", rpc.port))
            peers.append(peer)
            await peer.send([[0, value, "later", ["c", value * 10]]])
        deadline = time.monotonic() + 5
        while len(held) < 2:
            assert time.monotonic() < deadline, "the calls never started"
            await asyncio.sleep(0.005)

        def answer() -> None:
            for value, done in held:
                done(None, value + 1)
            assert rpc._to_flush and rpc._flush_handle is None  # held, not scheduled

        rpc.answering(answer)
        assert not rpc._to_flush and rpc._flush_handle is None
        assert [await peer.replies(1) for peer in peers] == [{1: (None, 11)}, {2: (None, 21)}]
    finally:
        for peer in peers:
            peer.writer.close()
        await rpc.close()


@pytest.mark.asyncio
async def test_a_start_row_with_now_is_finished_in_the_read_when_now_can() -> None:
    """A ``start`` row's ``now`` is tried first on the inline path: what it finishes is
    answered with the read's other replies (``start`` never sees it); ``NOT_NOW`` leaves
    the call to ``start``; what it raises is the call's error reply. Each call is answered
    under its own msgid, and the server goes on."""
    from runtime.rpc.dispatch import NOT_NOW

    tried: list[Any] = []
    started: list[Any] = []

    def now(params: list[Any]) -> Any:
        value = params[1]
        tried.append(value)
        if value < 0:
            raise ValueError(f"refused {value}")
        return value * 2 if value % 2 == 0 else NOT_NOW

    def start(params: list[Any], done: Any) -> None:
        started.append(params[1])
        asyncio.get_running_loop().call_soon(done, None, params[1] * 3)

    row = Handler(
        lambda value: value, LockMode.NOLOCK, (t.Object(), t.Object()), t.Object(),
        takes_cluster_name=False, start=start, now=now,
    )  # fmt: skip
    rpc = RpcServer(Dispatcher({"double": row}, cluster_name="c"), "127.0.0.1", 0)
    await rpc.start()
    try:
        peer = RawPeer(*await asyncio.open_connection("127.0.0.1", rpc.port))
        values = [2, 3, 4, -1, 6, 5]
        await peer.send([[0, i, "double", ["c", v]] for i, v in enumerate(values)])
        replies = await peer.replies(len(values))
        assert replies == {
            0: (None, 4), 1: (None, 9), 2: (None, 8),
            3: ("ValueError: refused -1", None), 4: (None, 12), 5: (None, 15),
        }  # fmt: skip
        assert tried == values  # every call tried now, in order
        assert started == [3, 5]  # only those now left
        assert await peer.call("double", ["c", 8], msgid=9) == (None, 16)
        peer.writer.close()
    finally:
        await rpc.close()


@pytest.mark.asyncio
async def test_a_result_packed_already_is_sent_as_it_is_in_order_with_the_others() -> None:
    """A row's ``packed`` (``get_status``'s) answers its inline calls: the reply is the
    bytes the packer makes of ``func``'s result, in its place among the read's other
    replies; calls the inline path does not take (another argument count, a blocked
    scheduler's) get ``func``'s result, packed, or the usual error."""
    status = {"127.0.0.1_1": {"clock_time": "1", "name": "x" * 40}}
    calls = collections.Counter[str]()

    def func() -> object:
        calls["func"] += 1
        return status

    def packed() -> bytes:
        calls["packed"] += 1
        return bytes(msgpack.packb(status, use_bin_type=False))

    rows = {
        "status": Handler(func, LockMode.ANALYSIS, (), t.Object(), packed=packed),
        # (a scalar result: its reply waits to be packed with the read's next ones)
        "echo": Handler(lambda value: value, LockMode.NOLOCK, (t.Int(),), t.Int()),
    }
    rpc = RpcServer(Dispatcher(rows, cluster_name="c"), "127.0.0.1", 0)
    await rpc.start()
    try:
        peer = RawPeer(*await asyncio.open_connection("127.0.0.1", rpc.port))
        # The first call runs on a worker (func), then the method is known fast.
        assert await peer.call("status", ["c"]) == (None, _text(status))
        assert calls == {"func": 1}
        for msgid in range(3):
            assert await peer.call("status", ["c"], msgid) == (None, _text(status))
            await peer.call("echo", ["c", msgid], msgid)
        assert rpc.timings["status"].fast and rpc.timings["echo"].fast
        assert calls == {"func": 1, "packed": 3}
        frames: list[list[Any]] = []
        for msgid in range(60):
            if msgid % 3 == 0:
                frames.append([0, msgid, "echo", ["c", msgid * 7]])
            elif msgid == 31:
                frames.append([0, msgid, "status", ["c", "extra"]])  # the general path
            else:
                frames.append([0, msgid, "status", ["c"]])
        expected = []
        for _, msgid, _, params in frames:
            if msgid == 31:
                error = "status takes 0 argument(s) after the cluster name, got 1"
                expected.append([1, msgid, ARGUMENT_ERROR, error])
            else:
                expected.append([1, msgid, None, params[1] if msgid % 3 == 0 else status])
        want = b"".join(msgpack.packb(e, use_bin_type=False) for e in expected)
        await peer.send(frames)
        got = b""
        while len(got) < len(want):
            data = await asyncio.wait_for(peer.reader.read(65536), 5)
            assert data, "the server closed the connection"
            got += data
        assert got == want
        assert calls == {"func": 1, "packed": 3 + 39}  # every status call but the bad one
        peer.writer.close()
    finally:
        await rpc.close()


class CountingUnpacker:
    """A connection's unpacker that counts how often the serving loop asks it for a
    message (asking one that has no whole message left costs a StopIteration)."""

    def __init__(self, inner: msgpack.Unpacker) -> None:
        self.inner = inner
        self.asked = 0

    def feed(self, data: bytes) -> None:
        self.inner.feed(data)

    def tell(self) -> int:
        return int(self.inner.tell())

    def __iter__(self) -> CountingUnpacker:
        return self

    def __next__(self) -> Any:
        self.asked += 1
        return next(self.inner)


@pytest.mark.asyncio
async def test_the_unpacker_is_asked_once_a_message_and_once_more_only_for_part_of_one(
    served: tuple[RpcServer, Model], peer: RawPeer
) -> None:
    rpc, _ = served
    (connection,) = rpc.connections
    counting = CountingUnpacker(connection.decoder.unpacker)
    connection.decoder.unpacker = counting
    # Three whole requests in one read: three messages, nothing more asked.
    await peer.send([[0, 10 + i, "echo", ["c", b"%d" % i]] for i in range(3)])
    assert await peer.replies(3) == {10 + i: (None, str(i)) for i in range(3)}
    assert counting.asked == 3
    # Half a request: asked once, and it is kept; its rest with a whole one: two more.
    frames = msgpack.packb([0, 20, "echo", ["c", b"x" * 40]], use_bin_type=False)
    frames += msgpack.packb([0, 21, "echo", ["c", b"y"]], use_bin_type=False)
    peer.writer.write(frames[:30])
    await peer.writer.drain()
    deadline = time.monotonic() + 5
    while counting.asked < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert counting.asked == 4
    peer.writer.write(frames[30:])
    assert await peer.replies(2) == {20: (None, "x" * 40), 21: (None, "y")}
    assert counting.asked == 6
