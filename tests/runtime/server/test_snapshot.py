"""SnapshotModel: one writer thread, published snapshots, the experience buffer.

A toy model (a list of numbers) whose snapshots are tuples, driven on a real event loop
with a real writer thread: order, batches and publishing, read-your-writes, a failing
update, a full buffer (waiting in order, then the timeout error, nothing acknowledged
lost), fire-and-forget, stopping with a non-empty buffer, the rows the server makes of
``#@update`` methods (their checks and errors), and the mixable adapter.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from runtime import SnapshotModel, UpdateBufferFull, WriterStopped
from runtime.errors import TypeMismatch
from runtime.rpc.dispatch import Handler
from runtime.rpc.locks import LockMode
from runtime.server.snapshot import _Item, snapshot_rows
from runtime.wire import types as t


class Numbers:
    """The toy model: numbers appended in order; a gate can hold the writer up."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.holding = threading.Event()

    def add(self, value: int) -> int:
        if value < 0:
            raise ValueError(f"refused {value}: left as it was")
        if not self.gate.is_set():
            self.holding.set()
            self.gate.wait(10)
        self.values.append(value)
        return len(self.values)


def snapshot_of(model: Numbers) -> tuple[int, ...]:
    return tuple(model.values)


Holder = SnapshotModel[Numbers, tuple[int, ...]]


@pytest_asyncio.fixture
async def holder() -> AsyncIterator[Holder]:
    held: Holder = SnapshotModel(Numbers(), snapshot_of, buffer_size=4, wait_timeout=0.5)
    await held.start()
    yield held
    held.model.gate.set()
    await held.stop()


def submit(
    holder: SnapshotModel[Any, Any], value: int, *, weight: int = 1, queued: bool = False
) -> asyncio.Future[Any]:
    """Queue ``add(value)`` as the server's rows do; the future gets (error, result)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def done(error: BaseException | None, result: Any) -> None:
        future.set_result((error, result))

    item = _Item(lambda model: model.add(value), weight, done, name="add", counted=True)
    if queued:
        item.queued, item.answer = True, "queued"
    holder.submit(item)
    return future


@pytest.mark.asyncio
async def test_updates_apply_in_order_and_answer_once_published(holder: Holder) -> None:
    before = holder.snapshot
    answers = await asyncio.gather(*(submit(holder, v) for v in range(10)))
    assert [result for error, result in answers] == list(range(1, 11))
    assert all(error is None for error, _ in answers)
    # Answered after the snapshot that holds them was published: read-your-writes.
    assert holder.snapshot == tuple(range(10))
    assert before == ()  # a snapshot never changes once published
    status = holder.status()
    assert status["writer.applied"] == "10"
    assert int(status["writer.batches"]) <= 10
    assert status["buffer.depth"] == "0"


@pytest.mark.asyncio
async def test_the_status_follows_every_update_and_the_snapshot_ages(holder: Holder) -> None:
    first = holder.status()
    first["writer.applied"] = "spoiled"  # each call's dict is the caller's own
    assert holder.status()["writer.applied"] == "0"
    await submit(holder, 1)
    after_one = holder.status()
    assert after_one["writer.applied"] == "1"
    assert after_one["snapshot.published"] != first["snapshot.published"]
    await asyncio.sleep(0.02)
    aged = holder.status()
    assert float(aged["snapshot.age_seconds"]) > float(after_one["snapshot.age_seconds"])
    assert list(aged) == list(first)  # the same keys, in the same order
    await submit(holder, -1)
    assert holder.status()["writer.failed"] == "1"


@pytest.mark.asyncio
async def test_a_reader_never_waits_while_the_writer_is_busy(holder: Holder) -> None:
    await submit(holder, 1)
    holder.model.gate.clear()
    slow = submit(holder, 2)
    assert await asyncio.to_thread(holder.model.holding.wait, 5)
    started = time.perf_counter()
    published: tuple[int, ...] = holder.snapshot
    assert published == (1,)  # the last published one, at once
    # The writer is held until the gate opens: a read that waited for it would not return
    # at all; the bound only has to tell that from a busy machine's pause.
    assert time.perf_counter() - started < 1.0
    assert not slow.done()
    holder.model.gate.set()
    assert await slow == (None, 2)
    assert holder.snapshot == (1, 2)


@pytest.mark.asyncio
async def test_a_failing_update_fails_alone_and_the_writer_goes_on(holder: Holder) -> None:
    first, bad, after = await asyncio.gather(
        submit(holder, 1), submit(holder, -5), submit(holder, 2)
    )
    assert first == (None, 1) and after == (None, 2)
    error, result = bad
    assert isinstance(error, ValueError) and "refused -5" in str(error) and result is None
    assert holder.snapshot == (1, 2)  # the bad update left the model as it was
    status = holder.status()
    assert status["writer.failed"] == "1"
    assert "refused -5" in status["writer.last_error"]


@pytest.mark.asyncio
async def test_a_full_buffer_holds_calls_in_order_then_fails_them_after_the_wait(
    holder: Holder,
) -> None:
    holder.model.gate.clear()
    blocking = submit(holder, 0)  # the writer takes it and waits at the gate
    assert await asyncio.to_thread(holder.model.holding.wait, 5)
    queued = [submit(holder, v) for v in range(1, 5)]  # fills the buffer (4)
    waiting = [submit(holder, v) for v in range(5, 8)]  # wait for room, in order
    assert holder.status()["buffer.waiting"] == "3"
    results = await asyncio.gather(*waiting)  # 0.5 s later: the timeout error
    for error, result in results:
        assert isinstance(error, UpdateBufferFull) and result is None
        assert "stayed full for 0.5 s" in str(error) and "not applied" in str(error)
    assert holder.status()["buffer.timed_out"] == "3"
    holder.model.gate.set()
    assert await blocking == (None, 1)
    assert [await f for f in queued] == [(None, n) for n in range(2, 6)]
    # Everything answered with success is there; nothing that failed is.
    assert holder.snapshot == (0, 1, 2, 3, 4)


@pytest.mark.asyncio
async def test_waiting_calls_enter_in_order_when_room_comes(holder: Holder) -> None:
    holder.model.gate.clear()
    calls = [submit(holder, 0)]
    assert await asyncio.to_thread(holder.model.holding.wait, 5)
    calls += [submit(holder, v) for v in range(1, 8)]  # 4 in the buffer, 3 waiting
    await asyncio.sleep(0.05)
    holder.model.gate.set()  # room comes well before the 0.5 s wait ends
    assert [await f for f in calls] == [(None, n) for n in range(1, 9)]
    assert holder.snapshot == tuple(range(8))


@pytest.mark.asyncio
async def test_fire_and_forget_answers_when_queued_and_is_applied_in_order(
    holder: Holder,
) -> None:
    holder.model.gate.clear()
    answers = [submit(holder, v, queued=True) for v in range(4)]
    # Answered before anything is applied (the writer waits at the gate).
    assert [await f for f in answers] == [(None, "queued")] * 4
    published: tuple[int, ...] = holder.snapshot
    assert published == ()
    holder.model.gate.set()
    await submit(holder, 99)  # applied after them: the buffer keeps the order
    assert holder.snapshot == (0, 1, 2, 3, 99)


@pytest.mark.asyncio
async def test_stop_applies_what_the_buffer_holds_and_refuses_the_rest() -> None:
    holder: Holder = SnapshotModel(Numbers(), snapshot_of, buffer_size=3, wait_timeout=30)
    await holder.start()
    holder.model.gate.clear()
    acknowledged = [submit(holder, 0, queued=True)]
    assert await asyncio.to_thread(holder.model.holding.wait, 5)  # the writer holds it
    acknowledged += [submit(holder, v, queued=True) for v in range(1, 4)]  # the buffer is full
    late = submit(holder, 9, queued=True)  # waits for room
    await asyncio.sleep(0.01)
    assert [await f for f in acknowledged] == [(None, "queued")] * 4
    stopping = asyncio.ensure_future(holder.stop())
    await asyncio.sleep(0.05)
    holder.model.gate.set()
    await stopping
    error, _ = await late
    assert isinstance(error, WriterStopped)
    assert holder.model.values == [0, 1, 2, 3]  # every acknowledged update applied
    assert holder.snapshot == (0, 1, 2, 3)
    with pytest.raises(WriterStopped):
        submit(holder, 5)


@pytest.mark.asyncio
async def test_publish_interval_publishes_at_most_that_often_but_answers_after_it() -> None:
    holder: Holder = SnapshotModel(Numbers(), snapshot_of, publish_interval=0.2)
    await holder.start()
    try:
        started = time.monotonic()
        first = await submit(holder, 1)
        second = await submit(holder, 2)
        assert first == (None, 1) and second == (None, 2)
        assert holder.snapshot == (1, 2)
        assert time.monotonic() - started >= 0.15  # the second waited for the interval
    finally:
        await holder.stop()


@pytest.mark.asyncio
async def test_write_from_another_thread_waits_for_its_publish(holder: Holder) -> None:
    result = await asyncio.to_thread(holder.write, lambda model: model.add(7))
    assert result == 1 and holder.snapshot == (7,)
    with pytest.raises(ValueError, match="refused"):
        await asyncio.to_thread(holder.write, lambda model: model.add(-1))
    assert holder.snapshot == (7,)


def test_before_start_a_write_applies_at_once_and_publishes() -> None:
    holder: Holder = SnapshotModel(Numbers(), snapshot_of)
    assert holder.write(lambda model: model.add(3)) == 1
    assert holder.snapshot == (3,)


def test_a_bad_buffer_size_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SnapshotModel(Numbers(), snapshot_of, buffer_size=0)


# -- the rows of a service ------------------------------------------------------------------


def _rows(holder: Holder) -> dict[str, Handler]:
    def add(value: int) -> int:
        return holder.model.add(value)

    def last() -> int:
        return holder.snapshot[-1] if holder.snapshot else -1

    table = {
        "add": Handler(
            add,
            LockMode.UPDATE,
            (t.Int(signed=True, size=4),),
            t.Int(True, 4),
            arg_labels=("0 (value)",),
        ),
        "last": Handler(last, LockMode.ANALYSIS, (), t.Int(signed=True, size=4)),
        "ping": Handler(lambda: True, LockMode.NOLOCK, (), t.Bool()),
    }
    return snapshot_rows(table, holder)


@pytest.mark.asyncio
async def test_update_rows_go_through_the_writer_and_reads_take_no_lock(holder: Holder) -> None:
    rows = _rows(holder)
    assert rows["last"].lock is LockMode.NOLOCK and rows["ping"].lock is LockMode.NOLOCK
    add = rows["add"]
    assert add.start is not None and not add.takes_cluster_name and add.passes_args
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    add.start([b"cluster", 5], lambda e, r: future.set_result((e, r)))
    assert await future == (None, 1)
    assert rows["last"].func() == 5
    assert holder.status()["writer.applied"] == "1"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([3, 5], "the first argument (cluster name) must be a string"),
        ([b"\xff", 5], "cluster name is not valid UTF-8"),
        ([b"c", "five"], "add: argument 0 (value): expected int, got string"),
    ],
)
@pytest.mark.asyncio
async def test_update_rows_refuse_bad_calls_as_the_dispatcher_does(
    holder: Holder, params: list[Any], message: str
) -> None:
    add = _rows(holder)["add"]
    assert add.start is not None
    with pytest.raises(TypeMismatch) as refused:
        add.start(params, lambda e, r: None)
    assert str(refused.value) == message
    assert holder.snapshot == ()


def test_a_queued_updates_weight_counts_its_text() -> None:
    """A fire-and-forget update is answered before it is applied: its weight in the buffer
    is its examples or one unit per KiB of its text, whichever is more, so the buffer
    bounds the memory queued calls hold (the classifier's and stat's queued modes)."""
    import json

    from engines.classifier.classifier_serv import ClassifierServ
    from engines.stat.stat_serv import StatServ
    from runtime import text_weight
    from runtime.server.snapshot import wire_text_bytes

    assert wire_text_bytes([b"ab", ["cd", {b"k": [b"v" * 10]}], 1.5, None]) == 15
    assert text_weight(3) == 3 and text_weight(0) == 1
    assert text_weight(1, [b"x" * 10_240]) == 10
    converter = {"string_rules": [{"key": "*", "type": "space", "sample_weight": "bin",
                                   "global_weight": "bin"}]}  # fmt: skip
    config = {"method": "AROW", "parameter": {"regularization_weight": 1.0},
              "converter": converter, "jubako": {"train": "queued"}}  # fmt: skip
    classifier = ClassifierServ(json.dumps(config))
    assert classifier.holder is not None
    weigh = classifier.holder.weigh["train"]
    big = [[b"label", [[[b"text", b"word " * 4096]], [], []]]]  # 20 KiB of text, 1 example
    assert weigh(big) == 20
    assert weigh([[b"a", [[], [[b"x", 1.0]], []]]] * 5) == 5  # small examples: their count
    applied = ClassifierServ(json.dumps({k: v for k, v in config.items() if k != "jubako"}))
    assert applied.holder is not None and applied.holder.weigh["train"](big) == 1
    stat = StatServ(json.dumps({"window_size": 4, "jubako": {"push": "queued"}}))
    assert stat.holder.weigh["push"]("k" * 8192, 1.0) == 8
