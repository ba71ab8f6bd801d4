"""When a read's replies are written: ReplyTiming's choice, and a server writing them at the
end of the loop iteration (real sockets on 127.0.0.1).

The choice is driven by a scripted count of involuntary switches: writing at once until
the loop's thread is switched out often enough; at the end while flushes gather several
connections, with a window at once now and then to look again; back, with a growing wait,
when they gather nothing.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import msgpack
import pytest

from runtime.rpc.coalescing import (
    MOST_WAIT,
    PREEMPTED,
    RECHECK,
    WINDOW,
    ReplyTiming,
    thread_preemptions,
)
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.locks import LockMode
from runtime.rpc.server import RpcServer
from runtime.wire import types as t
from tests.runtime.rpc.test_rpc_inline import RawPeer


class Script:
    """Involuntary switches, added to by the test."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


class AtTheEnd(ReplyTiming):
    """Always at the end of the iteration; records how many connections each flush wrote."""

    def __init__(self) -> None:
        super().__init__()
        self.deferred = True
        self.counts: list[int] = []

    def passed(self) -> None:
        pass

    def flushed(self, connections: int) -> None:
        self.counts.append(connections)


def at_end(timing: ReplyTiming) -> bool:
    return timing.deferred


def window(timing: ReplyTiming, script: Script, switches: float, per_flush: int = 0) -> None:
    """One window of passes with ``switches`` per pass, flushing ``per_flush``
    connections at a time while deferred."""
    script.count += int(switches * WINDOW)
    for n in range(WINDOW):
        if per_flush and timing.deferred and n % per_flush == 0:
            timing.flushed(per_flush)
        timing.passed()


def test_replies_wait_for_the_end_once_the_loop_is_switched_out_often() -> None:
    script = Script()
    timing = ReplyTiming(script)
    window(timing, script, 0.0)  # the first look only takes its mark
    assert not at_end(timing)
    window(timing, script, PREEMPTED / 2)
    assert not at_end(timing)
    window(timing, script, PREEMPTED)
    assert at_end(timing)


def test_flushes_that_gather_connections_keep_it_with_a_look_now_and_then() -> None:
    script = Script()
    timing = ReplyTiming(script)
    window(timing, script, 0.0)
    window(timing, script, 1.0)
    assert at_end(timing)
    for _ in range(RECHECK - 1):
        window(timing, script, 0.3, per_flush=8)
        assert at_end(timing)
    window(timing, script, 0.3, per_flush=8)
    assert not at_end(timing)  # a window at once, to look again
    window(timing, script, 1.0)
    assert at_end(timing)  # still switched out: back to the end
    window(timing, script, 0.3, per_flush=8)
    assert at_end(timing)


def test_flushes_that_gather_nothing_go_back_with_a_growing_wait() -> None:
    script = Script()
    timing = ReplyTiming(script)
    window(timing, script, 0.0)
    waits: list[int] = []
    window(timing, script, 1.2)
    for _ in range(9):
        assert at_end(timing)
        window(timing, script, 1.2, per_flush=1)  # one connection a flush: a lone client
        assert not at_end(timing)
        waited = 0
        while True:
            window(timing, script, 1.2)
            if at_end(timing):
                break
            waited += 1
        waits.append(waited)
    assert waits == [1, 2, 4, 8, 16, 32, 64, 64, 64]  # doubling, at most MOST_WAIT
    assert waits[-1] == MOST_WAIT


def test_where_switches_are_not_counted_replies_are_always_written_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A platform with no ``RUSAGE_THREAD`` (not Linux): the count is 0, and replies never
    wait for the end of the iteration."""
    import runtime.rpc.coalescing as coalescing

    monkeypatch.setattr(coalescing, "_RUSAGE_THREAD", None)
    assert coalescing.thread_preemptions() == 0
    timing = ReplyTiming()
    for _ in range(8 * WINDOW):
        timing.passed()
    assert not timing.deferred


def test_the_switch_count_is_the_threads_own() -> None:
    """The loop thread's own count: never above the whole process's, never going back."""
    first = thread_preemptions()
    assert 0 <= first <= resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
    assert thread_preemptions() >= first


async def in_arrival_order(peer: RawPeer, count: int) -> list[tuple[int, Any]]:
    """The next ``count`` replies on ``peer`` as (msgid, result), in the order they came."""
    unpacker = msgpack.Unpacker(raw=False)
    arrived: list[tuple[int, Any]] = []
    while len(arrived) < count:
        data = await asyncio.wait_for(peer.reader.read(1 << 20), 5)
        assert data, "the server closed the connection"
        unpacker.feed(data)
        arrived.extend((msgid, result) for _, msgid, _, result in unpacker)
    return arrived


@pytest.mark.asyncio
async def test_replies_left_for_the_end_of_the_iteration_all_arrive_in_order() -> None:
    """Forced to write at the end: the replies of several connections, each pipelining,
    arrive whole and in order; a reply past the output slack is written at once."""
    handlers = {
        "echo": Handler(lambda value: value, LockMode.ANALYSIS, (t.Raw(),), t.Raw()),
    }
    rpc = RpcServer(Dispatcher(handlers, cluster_name="c"), "127.0.0.1", 0)
    await rpc.start()
    forced = AtTheEnd()
    rpc.reply_timing = forced
    flushed = forced.counts
    peers: list[RawPeer] = []
    try:
        for _ in range(4):
            peers.append(RawPeer(*await asyncio.open_connection("127.0.0.1", rpc.port)))
        for peer in peers:  # first calls run on workers; then every call is inline
            assert await peer.call("echo", ["c", b"warm"]) == (None, "warm")
        flushed.clear()
        for round_ in range(3):
            for n, peer in enumerate(peers):
                frames: list[list[Any]] = [
                    [0, i, "echo", ["c", f"{n}.{round_}.{i}".encode()]] for i in range(20)
                ]
                await peer.send(frames)
            for n, peer in enumerate(peers):
                arrived = await in_arrival_order(peer, 20)
                assert arrived == [(i, f"{n}.{round_}.{i}") for i in range(20)]
        assert flushed and sum(flushed) >= 4  # written by flushes at the end
        flushes = len(flushed)
        big = b"x" * (2 * 65536)
        await peers[0].send([[0, 99, "echo", ["c", big]]])
        assert await in_arrival_order(peers[0], 1) == [(99, "x" * len(big))]
        assert len(flushed) == flushes  # past the output slack: written at once
    finally:
        for peer in peers:
            peer.writer.close()
        await rpc.close()
