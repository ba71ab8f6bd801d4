"""A service's frame answerer (runtime.rpc.frames): offered a read only when it starts at a
message boundary with nothing held back, told which of its methods the fast path would run
right there now, answering the requests the read starts with; whatever it leaves, or fails
on, the usual path answers. Real servers on 127.0.0.1.

The answerer here marks its answers (``frame:`` before the echoed value), which a real one
must not do, so that each test sees which path answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import pytest_asyncio

from runtime.rpc.dispatch import Dispatcher, Done, Handler
from runtime.rpc.frames import FrameAnswer, FrameAnswerer
from runtime.rpc.locks import LockMode
from runtime.rpc.server import RpcServer
from runtime.wire import types as t
from tests.runtime.rpc.test_rpc_inline import RawPeer

METHODS = ("look", "bump")


class Answerer:
    """Answers the ``look`` and ``bump`` calls a read starts with, as far as ``allowed``
    lets it (``mode`` "answer"), declines every read ("decline") or raises ("raise");
    keeps what it was offered and with which bits."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.offered: list[tuple[bytes, int]] = []
        self.clusters: list[bytes | None] = []
        self.answered = 0
        #: A bump of this value fails part way: taken, named as failed.
        self.fail_on = b""

    def answer(
        self, data: bytes, cluster: bytes | None, allowed: int, max_count: int, max_reply: int
    ) -> FrameAnswer | None:
        self.offered.append((data, allowed))
        self.clusters.append(cluster)
        if self.mode == "raise":
            raise RuntimeError("a broken answerer")
        if self.mode == "decline":
            return None
        unpacker = msgpack.Unpacker(raw=True)
        unpacker.feed(data)
        replies: list[bytes] = []
        consumed = 0
        for message in unpacker:
            kind, msgid, method, params = message
            names = [m.encode() for i, m in enumerate(METHODS) if allowed & (1 << i)]
            if kind != 0 or method not in names:
                break
            if params[0] != cluster and not (method == b"bump" and cluster is None):
                break  # (bump, a start row, takes any name: its now checks it)
            if len(replies) == max_count:
                break
            if method == b"bump" and params[1] == self.fail_on:
                failed = (msgid, "bump", ValueError("failed part way"))
                return b"".join(replies), len(replies), unpacker.tell(), failed
            replies.append(msgpack.packb([1, msgid, None, b"frame:" + params[1]]))
            consumed = unpacker.tell()
        if not replies:
            return None
        self.answered += len(replies)
        return b"".join(replies), len(replies), consumed, None


#: How many times bump's now ran (a request answered from bytes must not run again).
bumps_now_ran = [0]


def _handlers() -> dict[str, Handler]:
    def start(params: list[Any], done: Done) -> None:
        done(None, params[1])

    def now(params: list[Any]) -> Any:
        bumps_now_ran[0] += 1
        return params[1]

    return {
        "look": Handler(lambda value: value, LockMode.NOLOCK, (t.Raw(),), t.Raw()),
        "echo": Handler(lambda value: value, LockMode.ANALYSIS, (t.Raw(),), t.Raw()),
        "bump": Handler(
            lambda cluster, value: value,
            LockMode.NOLOCK,
            (t.Object(), t.Object()),
            t.Object(),
            takes_cluster_name=False,
            start=start,
            now=now,
        ),
    }


def _server(**options: Any) -> tuple[RpcServer, Answerer]:
    rpc = RpcServer(Dispatcher(_handlers(), cluster_name="c"), "127.0.0.1", 0, **options)
    answerer = Answerer()
    rpc.answer_frames_with(FrameAnswerer(METHODS, answerer.answer))
    return rpc, answerer


@contextlib.asynccontextmanager
async def _fresh(**options: Any) -> AsyncIterator[tuple[RpcServer, Answerer, RawPeer]]:
    """A server of its own, started, and a connection to it."""
    rpc, answerer = _server(**options)
    await rpc.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        try:
            yield rpc, answerer, RawPeer(reader, writer)
        finally:
            writer.close()
    finally:
        await rpc.close()


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[RpcServer, Answerer]]:
    rpc, answerer = _server(threads=2)
    await rpc.start()
    yield rpc, answerer
    await rpc.close()


@pytest_asyncio.fixture
async def peer(served: tuple[RpcServer, Answerer]) -> AsyncIterator[RawPeer]:
    rpc, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
    client = RawPeer(reader, writer)
    # The first calls run on workers; then look is known fast and runs inline.
    for msgid in range(3):
        await client.call("look", ["c", b"warm"], msgid=msgid)
        await client.call("echo", ["c", b"warm"], msgid=msgid)
        await client.call("bump", ["c", b"warm"], msgid=msgid)
    yield client
    writer.close()


@pytest.mark.asyncio
async def test_a_fresh_method_is_answered_the_usual_way_then_from_its_bytes() -> None:
    async with _fresh(threads=2) as (_, answerer, peer):
        assert await peer.call("look", ["c", b"a"], msgid=1) == (None, "a")
        assert answerer.offered == []  # not known to be fast yet, no name accepted
        for msgid in range(2, 12):
            await peer.call("look", ["c", b"b"], msgid=msgid)
        assert await peer.call("look", ["c", b"b"], msgid=20) == (None, "frame:b")
        assert answerer.offered[-1][1] == 0b01  # bump not seen yet: not offered
        assert await peer.call("bump", ["c", b"u"], msgid=21) == (None, "u")
        assert await peer.call("bump", ["c", b"u"], msgid=22) == (None, "frame:u")
        assert answerer.offered[-1][1] == 0b11  # a start row with now: at once


@pytest.mark.asyncio
async def test_a_start_row_is_offered_before_any_cluster_name_is_accepted() -> None:
    async with _fresh(threads=2) as (_, answerer, peer):
        assert await peer.call("bump", ["any", b"u"], msgid=1) == (None, "u")
        assert await peer.call("bump", ["any", b"v"], msgid=2) == (None, "frame:v")
        assert answerer.offered[-1][1] == 0b10 and answerer.clusters[-1] is None
        assert await peer.call("look", ["c", b"w"], msgid=3) == (None, "w")  # not offered


@pytest.mark.asyncio
async def test_a_read_of_many_calls_is_answered_whole(
    served: tuple[RpcServer, Answerer], peer: RawPeer
) -> None:
    rpc, answerer = served
    before = answerer.answered
    await peer.send(
        [[0, 100 + i, "look" if i % 3 else "bump", ["c", b"%d" % i]] for i in range(40)]
    )
    replies = await peer.replies(40)
    assert replies == {100 + i: (None, f"frame:{i}") for i in range(40)}
    assert answerer.answered - before == 40
    (connection,) = rpc.connections
    assert connection.requests >= 40


@pytest.mark.asyncio
async def test_what_follows_the_first_call_it_does_not_take_is_read_the_usual_way(
    served: tuple[RpcServer, Answerer], peer: RawPeer
) -> None:
    _, answerer = served
    before = answerer.answered
    await peer.send(
        [
            [0, 1, "look", ["c", b"a"]],
            [0, 2, "bump", ["c", b"b"]],
            [0, 3, "echo", ["c", b"c"]],
            [0, 4, "look", ["c", b"d"]],
        ]
    )
    assert await peer.replies(4) == {
        1: (None, "frame:a"),
        2: (None, "frame:b"),
        3: (None, "c"),
        4: (None, "d"),
    }
    assert answerer.answered - before == 2
    await peer.send([[0, 5, "look", ["other", b"a"]]])  # another cluster name
    assert await peer.replies(1) == {5: (None, "a")}


@pytest.mark.asyncio
async def test_calls_answered_from_their_bytes_are_timed(
    served: tuple[RpcServer, Answerer], peer: RawPeer
) -> None:
    rpc, _ = served
    runs = rpc.timings["look"].runs
    for msgid in range(64):
        assert await peer.call("look", ["c", b"x"], msgid=msgid) == (None, "frame:x")
    assert rpc.timings["look"].runs >= runs + 64 // 8 - 1
    assert rpc.timings["look"].fast


@pytest.mark.asyncio
async def test_a_read_it_declines_is_answered_the_usual_way(
    served: tuple[RpcServer, Answerer], peer: RawPeer
) -> None:
    _, answerer = served
    answerer.mode = "decline"
    offered = len(answerer.offered)
    assert await peer.call("look", ["c", b"x"], msgid=7) == (None, "x")
    assert len(answerer.offered) == offered + 1


@pytest.mark.asyncio
async def test_an_answerer_that_fails_is_logged_and_the_usual_path_answers(
    served: tuple[RpcServer, Answerer], peer: RawPeer, caplog: pytest.LogCaptureFixture
) -> None:
    _, answerer = served
    answerer.mode = "raise"
    with caplog.at_level(logging.ERROR, logger="runtime.rpc.frames"):
        assert await peer.call("look", ["c", b"x"], msgid=5) == (None, "x")
        assert await peer.call("echo", ["c", b"y"], msgid=6) == (None, "y")
    assert "internal error answering whole requests" in caplog.text
    assert "a broken answerer" in caplog.text


@pytest.mark.asyncio
async def test_a_read_after_part_of_a_message_is_not_offered(
    served: tuple[RpcServer, Answerer], peer: RawPeer
) -> None:
    _, answerer = served
    data = msgpack.packb([0, 30, "look", ["c", b"x" * 40]], use_bin_type=False)
    data += msgpack.packb([0, 31, "look", ["c", b"y"]], use_bin_type=False)
    offered = len(answerer.offered)
    peer.writer.write(data[:30])
    await peer.writer.drain()
    await asyncio.sleep(0.1)
    peer.writer.write(data[30:])
    assert await peer.replies(2) == {30: (None, "x" * 40), 31: (None, "y")}
    assert [data for data, _ in answerer.offered[offered:]] == [data[:30]]
    assert await peer.call("look", ["c", b"z"], msgid=32) == (None, "frame:z")


@pytest.mark.asyncio
async def test_a_read_larger_than_a_message_may_be_is_not_offered() -> None:
    async with _fresh(max_message_size=4096) as (_, answerer, peer):
        for msgid in range(12):
            await peer.call("look", ["c", b"w"], msgid=msgid)
        offered = len(answerer.offered)
        assert offered > 0
        peer.writer.write(msgpack.packb([0, 50, "look", ["c", b"x" * 5000]], use_bin_type=False))
        assert await asyncio.wait_for(peer.reader.read(), 5) == b""  # refused, as before
        assert all(len(data) <= 4096 for data, _ in answerer.offered[offered:])


def test_only_methods_the_server_serves_can_be_answered_so() -> None:
    rpc = RpcServer(Dispatcher(_handlers(), cluster_name="c"), "127.0.0.1", 0)
    with pytest.raises(ValueError, match="nothing"):
        rpc.answer_frames_with(FrameAnswerer(("look", "nothing"), Answerer().answer))
    with pytest.raises(ValueError):
        rpc.answer_frames_with(FrameAnswerer((), Answerer().answer))
    rpc.answer_frames_with(FrameAnswerer(METHODS, Answerer().answer))
    assert rpc.frame_methods == (b"look", b"bump")
    rpc.answer_frames_with(None)
    assert rpc.frames is None


@pytest.mark.asyncio
async def test_a_connection_made_with_debug_logging_on_is_read_the_usual_way(
    served: tuple[RpcServer, Answerer], peer: RawPeer, caplog: pytest.LogCaptureFixture
) -> None:
    rpc, answerer = served
    assert await peer.call("look", ["c", b"x"], msgid=40) == (None, "frame:x")
    with caplog.at_level(logging.DEBUG, logger="runtime.rpc.connection"):
        reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        fresh = RawPeer(reader, writer)
        offered = len(answerer.offered)
        assert await fresh.call("look", ["c", b"y"], msgid=41) == (None, "y")
        assert len(answerer.offered) == offered  # every call is logged: none from bytes
        writer.close()


@pytest.mark.asyncio
async def test_a_request_that_failed_part_way_is_answered_as_an_error_and_not_run_again(
    served: tuple[RpcServer, Answerer], peer: RawPeer
) -> None:
    _, answerer = served
    answerer.fail_on = b"boom"
    runs = bumps_now_ran[0]
    await peer.send(
        [[0, 1, "look", ["c", b"a"]], [0, 2, "bump", ["c", b"boom"]], [0, 3, "look", ["c", b"b"]]]
    )
    replies = await peer.replies(3)
    assert replies == {
        1: (None, "frame:a"),
        2: ("ValueError: failed part way", None),
        3: (None, "b"),  # after the failed one: the usual path
    }
    assert bumps_now_ran[0] == runs  # the failed one was not run again


@pytest.mark.asyncio
async def test_a_timed_read_is_offered_only_the_timed_methods(
    served: tuple[RpcServer, Answerer], peer: RawPeer
) -> None:
    rpc, answerer = served
    runs = rpc.timings["look"].runs
    offered = len(answerer.offered)
    answers = [await peer.call("bump", ["c", b"u"], msgid=msgid) for msgid in range(64)]
    bits = [allowed for _, allowed in answerer.offered[offered:]]
    assert 0b01 in bits and 0b11 in bits  # the timed reads: look alone
    assert rpc.timings["look"].runs == runs  # bump's time is never look's
    assert answers == [(None, "frame:u")] * 64  # (offered again with bump when none led)
