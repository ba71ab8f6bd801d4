"""A service's frame answerer (runtime.rpc.frames): offered a read only when the fast path
would run its method right there and nothing is held back, answering all of it or none;
whatever it leaves, or fails on, the usual path answers. Real servers on 127.0.0.1.

The answerer here marks its answers (``frame:`` before the echoed value), which a real one
must not do, so that each test sees which path answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import msgpack
import pytest
import pytest_asyncio

from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.frames import FrameAnswerer
from runtime.rpc.locks import LockMode
from runtime.rpc.server import RpcServer
from runtime.wire import types as t
from tests.runtime.rpc.test_rpc_inline import RawPeer


class Answerer:
    """Answers reads of nothing but ``look`` calls (``mode`` "answer"), declines every
    read ("decline") or raises ("raise"); keeps what it was offered."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.offered: list[bytes] = []
        self.answered = 0

    def answer(
        self, data: bytes, cluster: bytes, max_count: int, max_reply: int
    ) -> tuple[bytes, int] | None:
        self.offered.append(data)
        if self.mode == "raise":
            raise RuntimeError("a broken answerer")
        if self.mode == "decline":
            return None
        unpacker = msgpack.Unpacker(raw=True)
        unpacker.feed(data)
        replies = []
        for kind, msgid, method, params in unpacker:
            if kind != 0 or method != b"look" or params[0] != cluster:
                return None
            replies.append(msgpack.packb([1, msgid, None, b"frame:" + params[1]]))
        if unpacker.tell() != len(data) or not replies or len(replies) > max_count:
            return None
        self.answered += len(replies)
        return b"".join(replies), len(replies)


def _handlers() -> dict[str, Handler]:
    return {
        "look": Handler(lambda value: value, LockMode.NOLOCK, (t.Raw(),), t.Raw()),
        "echo": Handler(lambda value: value, LockMode.ANALYSIS, (t.Raw(),), t.Raw()),
    }


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[RpcServer, Answerer]]:
    rpc = RpcServer(Dispatcher(_handlers(), cluster_name="c"), "127.0.0.1", 0, threads=2)
    answerer = Answerer()
    rpc.answer_frames_with(FrameAnswerer("look", answerer.answer))
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
    yield client
    writer.close()


@pytest.mark.asyncio
async def test_a_fresh_method_is_answered_the_usual_way_then_from_its_bytes() -> None:
    rpc = RpcServer(Dispatcher(_handlers(), cluster_name="c"), "127.0.0.1", 0, threads=2)
    answerer = Answerer()
    rpc.answer_frames_with(FrameAnswerer("look", answerer.answer))
    await rpc.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        peer = RawPeer(reader, writer)
        assert await peer.call("look", ["c", b"a"], msgid=1) == (None, "a")
        assert answerer.offered == []  # not known to be fast yet, no name accepted
        for msgid in range(2, 12):
            await peer.call("look", ["c", b"b"], msgid=msgid)
        assert await peer.call("look", ["c", b"b"], msgid=20) == (None, "frame:b")
        writer.close()
    finally:
        await rpc.close()


@pytest.mark.asyncio
async def test_a_read_of_many_calls_is_answered_whole(
    served: tuple[RpcServer, Answerer], peer: RawPeer
) -> None:
    rpc, answerer = served
    before = answerer.answered
    await peer.send([[0, 100 + i, "look", ["c", b"%d" % i]] for i in range(40)])
    replies = await peer.replies(40)
    assert replies == {100 + i: (None, f"frame:{i}") for i in range(40)}
    assert answerer.answered - before == 40
    (connection,) = rpc.connections
    assert connection.requests >= 40


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
async def test_other_calls_in_the_read_leave_all_of_it_to_the_usual_path(
    served: tuple[RpcServer, Answerer], peer: RawPeer
) -> None:
    _, answerer = served
    answered = answerer.answered
    await peer.send([[0, 1, "look", ["c", b"a"]], [0, 2, "echo", ["c", b"b"]]])
    assert await peer.replies(2) == {1: (None, "a"), 2: (None, "b")}
    await peer.send([[0, 3, "look", ["other", b"a"]]])  # another cluster name
    assert await peer.replies(1) == {3: (None, "a")}
    assert answerer.answered == answered


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
    assert answerer.offered[offered:] == [data[:30]]  # declined: part of a request
    assert await peer.call("look", ["c", b"z"], msgid=32) == (None, "frame:z")


@pytest.mark.asyncio
async def test_a_read_larger_than_a_message_may_be_is_not_offered() -> None:
    rpc = RpcServer(
        Dispatcher(_handlers(), cluster_name="c"), "127.0.0.1", 0, max_message_size=4096
    )
    answerer = Answerer()
    rpc.answer_frames_with(FrameAnswerer("look", answerer.answer))
    await rpc.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", rpc.port)
        peer = RawPeer(reader, writer)
        for msgid in range(12):
            await peer.call("look", ["c", b"w"], msgid=msgid)
        offered = len(answerer.offered)
        assert offered > 0
        writer.write(msgpack.packb([0, 50, "look", ["c", b"x" * 5000]], use_bin_type=False))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # refused, as before
        assert all(len(data) <= 4096 for data in answerer.offered[offered:])
        writer.close()
    finally:
        await rpc.close()


def test_only_a_method_the_server_serves_can_be_answered_so() -> None:
    rpc = RpcServer(Dispatcher(_handlers(), cluster_name="c"), "127.0.0.1", 0)
    with pytest.raises(ValueError, match="no method 'nothing'"):
        rpc.answer_frames_with(FrameAnswerer("nothing", Answerer().answer))
    rpc.answer_frames_with(FrameAnswerer("look", Answerer().answer))
    assert rpc.frame_method == b"look"
    rpc.answer_frames_with(None)
    assert rpc.frames is None
