"""Where calls run: fast calls wait on the loop for a lock a worker holds, in order; method
timings; the event-loop setting. Real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from runtime.errors import ConfigError
from runtime.process.serving import run_on_event_loop
from runtime.process.settings import ServerSettings
from runtime.rpc.client import AsyncClient
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.inline import FAST_CALL_SECONDS, Timing
from runtime.rpc.locks import LockMode
from runtime.rpc.server import RpcServer
from runtime.wire import types as t


class Register:
    """A value behind the model lock, with a slow writer."""

    def __init__(self) -> None:
        self.value = 0
        self.writing = threading.Event()

    def slow_set(self, value: int) -> bool:
        self.writing.set()
        time.sleep(0.3)
        self.value = value
        return True

    def get(self) -> int:
        return self.value

    def bump(self) -> int:
        self.value += 1
        return self.value


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[RpcServer, Register]]:
    register = Register()
    handlers = {
        "slow_set": Handler(register.slow_set, LockMode.UPDATE, (t.Int(),), t.Bool()),
        "get": Handler(register.get, LockMode.ANALYSIS, (), t.Int()),
        "bump": Handler(register.bump, LockMode.UPDATE, (), t.Int()),
    }
    rpc = RpcServer(Dispatcher(handlers, cluster_name="c"), "127.0.0.1", 0, threads=2)
    await rpc.start()
    yield rpc, register
    await rpc.close()


@pytest.mark.asyncio
async def test_fast_calls_wait_on_the_loop_for_a_workers_lock_in_order(
    served: tuple[RpcServer, Register],
) -> None:
    rpc, register = served
    async with AsyncClient("127.0.0.1", rpc.port) as warm:
        await warm.call("get", ["c"])  # first calls run on workers; now both are known fast
        await warm.call("bump", ["c"])
        await warm.call("slow_set", ["c", 0])  # the slow writer is known to be slow
    assert rpc.timings["get"].fast and not rpc.timings["slow_set"].fast
    register.writing.clear()  # set by the warm-up's slow_set
    writer = AsyncClient("127.0.0.1", rpc.port)
    readers = [AsyncClient("127.0.0.1", rpc.port) for _ in range(3)]
    try:
        slow = asyncio.ensure_future(writer.call("slow_set", ["c", 100]))
        assert await asyncio.to_thread(register.writing.wait, 5), "the writer holds the lock"
        calls = [
            asyncio.ensure_future(readers[0].call("get", ["c"])),
            asyncio.ensure_future(readers[1].call("bump", ["c"])),
            asyncio.ensure_future(readers[2].call("get", ["c"])),
        ]
        await asyncio.sleep(0.1)
        assert len(rpc.scheduler.blocked) == 3, "the fast calls wait on the loop, not on workers"
        assert await slow is True
        # In arrival order once the writer is done: get, bump, get.
        assert await asyncio.gather(*calls) == [100, 101, 101]
        assert not rpc.scheduler.blocked
        assert rpc.timings["get"].fast, "waiting for the lock does not make a method slow"
    finally:
        for client in (writer, *readers):
            await client.close()


def test_worker_timings_decay_and_loop_timings_are_trusted() -> None:
    timing = Timing()
    timing.record(0.005)  # a worker run that waited for the GIL
    assert timing.estimate > FAST_CALL_SECONDS
    assert not timing.should_probe()  # one run: not yet the probing turn
    for _ in range(15):
        timing.record(0.0001)
    assert timing.should_probe(), "near-fast methods are probed on the loop now and then"
    timing.record(0.00002, on_loop=True)
    assert timing.fast and timing.estimate == pytest.approx(0.00002)
    timing.record(1.0, on_loop=True)
    assert timing.estimate == 1.0
    assert not timing.should_probe(), "a slow method is never probed"


def test_event_loop_setting_is_checked_and_uvloop_must_be_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="event_loop: 'tokio' is not one of"):
        ServerSettings(event_loop="tokio").validate()

    async def main() -> int:
        return 7

    assert run_on_event_loop(main(), "asyncio") == 7
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert run_on_event_loop(main(), "auto") == 7, "auto falls back to asyncio"
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        run_on_event_loop(main(), "uvloop")
