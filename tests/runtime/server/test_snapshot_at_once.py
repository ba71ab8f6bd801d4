"""SnapshotModel's ``at_once`` updates: applied on the loop's thread as the call is read.

A toy model on a real event loop with a real writer thread. A row's ``now`` applies the
call at once when the writer is idle and nothing is queued or kept for the turn, counts it
as the writer would, and answers its wire result; it leaves the call to ``start`` (NOT_NOW)
when the function declines it, while a turn holds inline updates (their order is kept),
while the writer thread is busy, with inline updates off, and with a publish interval.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from runtime import SnapshotModel
from runtime.errors import TypeMismatch
from runtime.rpc.dispatch import NOT_NOW, Handler
from runtime.rpc.locks import LockMode
from runtime.wire import types as t
from tests.runtime.server.test_snapshot import submit


class Board:
    """Numbers appended in order, each with the thread that appended it. Its snapshot is
    the list itself: what the at-once function appends, readers see."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.threads: list[int] = []
        self.pause = 0.0
        self.writer_flags: list[bool] = []
        self.holder: SnapshotModel[Board, list[int]] | None = None

    def add(self, value: int) -> int:
        if self.pause:
            time.sleep(self.pause)
        self.values.append(value)
        self.threads.append(threading.get_ident())
        return len(self.values)

    def add_now(self, value: int) -> int | None:
        """Even numbers only (None: left to the writer); a negative one fails."""
        if value < 0:
            raise ValueError(f"refused {value}")
        if value % 2:
            return None
        if self.holder is not None:
            self.writer_flags.append(self.holder.on_writer())
        return self.add(value)


Holder = SnapshotModel[Board, list[int]]


def live(model: Board) -> list[int]:
    return model.values


def row_of(holder: Holder) -> Handler:
    def never(value: object) -> int:
        raise AssertionError("the row's own function ran")

    row = Handler(never, LockMode.UPDATE, (t.Object(),), t.Object())
    return holder.update_row("add", row)


async def writer_idle(holder: Holder) -> None:
    deadline = time.monotonic() + 5
    while not holder._writer_idle:
        assert time.monotonic() < deadline, "the writer never went idle"
        await asyncio.sleep(0.001)


def make(**options: Any) -> Holder:
    board = Board()
    holder: Holder = SnapshotModel(
        board,
        live,
        wire_updates={"add": Board.add},
        at_once={"add": Board.add_now},
        **{"inline_weight": 4, **options},
    )
    board.holder = holder
    return holder


@pytest_asyncio.fixture
async def holder() -> AsyncIterator[Holder]:
    held = make()
    await held.start()
    await writer_idle(held)
    yield held
    await held.stop()


@pytest.mark.asyncio
async def test_a_call_the_function_takes_is_applied_and_counted_at_once(holder: Holder) -> None:
    applied: list[int] = []
    holder.on_applied = lambda: applied.append(1)
    row = row_of(holder)
    assert row.now is not None
    published = holder.counters.published
    assert row.now([b"c", 4]) == 1  # the result, before any loop turn
    assert holder.model.values == [4] and holder.snapshot == [4]
    assert holder.model.threads == [threading.get_ident()]
    assert holder.model.writer_flags == [True]  # the loop's thread was the writer
    assert not holder.on_writer()  # and is not any more
    assert applied == [1]
    assert holder.counters.published == published + 1
    status = holder.status()
    assert status["writer.applied"] == "1" and status["writer.inline"] == "1"
    assert status["writer.batches"] == "0"  # no batch, no turn
    assert holder.counters.counts == {"add": 1}


@pytest.mark.asyncio
async def test_a_call_the_function_declines_is_left_to_start(holder: Holder) -> None:
    row = row_of(holder)
    assert row.now is not None and row.start is not None
    assert row.now([b"c", 3]) is NOT_NOW
    assert holder.model.values == [] and holder.counters.applied == 0
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    row.start([b"c", 3], lambda error, result: future.set_result((error, result)))
    assert await future == (None, 1)
    assert holder.model.values == [3]


@pytest.mark.asyncio
async def test_nothing_is_applied_at_once_while_a_turn_holds_updates(holder: Holder) -> None:
    row = row_of(holder)
    assert row.now is not None
    first = submit(holder, 1)  # kept for the end of this turn
    assert row.now([b"c", 2]) is NOT_NOW  # it would overtake the update kept
    assert holder.model.values == []
    assert await first == (None, 1)
    assert row.now([b"c", 2]) == 2
    assert holder.model.values == [1, 2]


@pytest.mark.asyncio
async def test_nothing_is_applied_at_once_while_the_writer_thread_works(holder: Holder) -> None:
    row = row_of(holder)
    assert row.now is not None
    holder.model.pause = 0.2
    heavy = submit(holder, 1, weight=5)  # too heavy for the loop: the writer thread
    deadline = time.monotonic() + 5
    while holder._writer_idle or holder._queue:
        assert time.monotonic() < deadline, "the writer never took the update"
        await asyncio.sleep(0.001)
    assert row.now([b"c", 2]) is NOT_NOW
    assert await heavy == (None, 1)
    holder.model.pause = 0.0
    await writer_idle(holder)
    assert row.now([b"c", 2]) == 2
    assert holder.model.values == [1, 2]


@pytest.mark.asyncio
async def test_a_write_queued_from_a_thread_during_a_call_at_once_is_applied_after_it(
    holder: Holder,
) -> None:
    """The writer thread, woken by a write from another thread while the loop's thread
    holds the model, waits; the loop gives the model back and wakes it: the write is
    applied after the call, on the writer thread."""
    row = row_of(holder)
    assert row.now is not None
    board = holder.model
    written: list[int] = []
    original = board.add_now

    def add_now_with_a_write(value: int) -> int | None:
        thread = threading.Thread(
            target=lambda: written.append(holder.write(lambda model: model.add(11)))
        )
        thread.start()
        deadline = time.monotonic() + 5
        while not holder._queue:  # queued while this call holds the model
            assert time.monotonic() < deadline, "the write was never queued"
            time.sleep(0.001)
        time.sleep(0.02)  # the writer thread, woken, found the model claimed
        assert board.values == []
        return original(value)

    board.add_now = add_now_with_a_write  # type: ignore[method-assign]
    holder.at_once["add"] = lambda model, value: model.add_now(value)
    row = row_of(holder)
    assert row.now is not None
    assert row.now([b"c", 10]) == 1
    deadline = time.monotonic() + 5
    while not written:
        assert time.monotonic() < deadline, "the write was never applied"
        await asyncio.sleep(0.005)
    assert board.values == [10, 11] and written == [2]
    assert board.threads[1] != threading.get_ident()  # on the writer thread


@pytest.mark.asyncio
async def test_a_failing_call_fails_alone_and_is_counted(holder: Holder) -> None:
    row = row_of(holder)
    assert row.now is not None
    with pytest.raises(ValueError, match="refused -2"):
        row.now([b"c", -2])
    assert holder.counters.failed == 1
    assert holder.status()["writer.last_error"] == "add: ValueError: refused -2"
    assert not holder._inline_claim  # the model is the writer thread's again
    assert row.now([b"c", 6]) == 1
    with pytest.raises(TypeMismatch, match="cluster name"):
        row.now([7, 2])
    with pytest.raises(TypeMismatch, match="UTF-8"):
        row.now([b"\xff", 2])
    assert holder.model.values == [6]


@pytest.mark.asyncio
async def test_a_fire_and_forget_call_applied_at_once_answers_its_queued_answer() -> None:
    holder = make(queued={"add": lambda value: "queued"})
    await holder.start()
    try:
        await writer_idle(holder)
        row = row_of(holder)
        assert row.now is not None
        assert row.now([b"c", 8]) == "queued"
        assert holder.model.values == [8]
    finally:
        await holder.stop()


def test_at_once_needs_a_wire_update_and_inline_updates_on() -> None:
    with pytest.raises(ValueError, match="only wire updates"):
        SnapshotModel(Board(), live, inline_weight=4, at_once={"add": Board.add_now})
    assert row_of(make(inline_weight=0)).now is None
    assert row_of(make(publish_interval=0.5)).now is None
    assert row_of(make()).now is not None


@pytest.mark.asyncio
async def test_nothing_is_applied_at_once_before_start_or_once_stopping() -> None:
    holder = make()
    row = row_of(holder)
    assert row.now is not None
    assert row.now([b"c", 2]) is NOT_NOW  # no writer yet
    await holder.start()
    await writer_idle(holder)
    assert row.now([b"c", 2]) == 1
    await holder.stop()
    assert row.now([b"c", 4]) is NOT_NOW
    assert holder.model.values == [2]
