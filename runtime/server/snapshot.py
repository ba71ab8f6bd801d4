"""A model held the snapshot way: one writer thread, read-only snapshots, an experience buffer.

The other way to hold a model (the first is the framework's read/write lock): every model
has **exactly one thread that may write it**, its writer; every other thread only reads a
snapshot that nobody will ever change. A service opts in by returning a
:class:`SnapshotModel` from :meth:`~runtime.server.base.ServerBase.snapshot_model`; the
server then routes its methods by the lock the IDL (or ``model_lock_for``) gives them:

- ``#@analysis`` methods run with **no lock at all**: they read :attr:`SnapshotModel.snapshot`,
  the published snapshot. Publishing a new one is one reference swap, so a reader that
  started on the old one finishes on it.
- ``#@update`` methods are **queued to the writer**, which applies them in arrival order,
  in batches, and publishes a new snapshot (``make_snapshot(model)``) after each batch, or
  at most every ``publish_interval`` seconds. By default a call is answered once its work
  is applied *and published* (Jubatus's meaning of ``train``: it returns how many were
  trained; a read sent after that answer sees the update). Methods named in ``queued``
  are answered as soon as they are in the buffer (fire-and-forget), with the value their
  ``queued`` function gives.
- The **experience buffer** between them is bounded (``buffer_size``, counted in the
  weight each update declares, e.g. its examples): when it is full, a call waits, in
  arrival order, for room; after ``wait_timeout`` seconds it fails with
  :class:`UpdateBufferFull`, having changed nothing. The connection it came on counts it
  as in flight meanwhile, so a client that floods the buffer stops being read (the RPC
  server's own back-pressure): memory never grows without bound.
- ``save``, ``get_status``, the mixer's ``get_diff`` and ``get_model`` read a snapshot;
  ``load`` and the mixer's ``put_diff`` and ``set_model`` go through the writer
  (:meth:`SnapshotModel.write`, from any thread). See :class:`SnapshotMixable`.

How a snapshot is made is the service's business (``make_snapshot``): a copy of a small
model, a copy-on-write structure, a persistent one, or two copies of the model the writer
swaps (``engines/classifier``); ``docs/writing-a-service.md`` compares their costs.

Contracts: an update is a function ``update(model)`` run on the writer thread; when it
raises, it must leave the model as it was (check everything first, then change: the rule
``unpack`` already follows), and the call fails with that error while the writer goes on.
A snapshot is never changed after ``make_snapshot`` returns it, but by an ``at_once``
function, in one step no reader sees half of (see :class:`SnapshotModel`). Before :meth:`start` (in
a process without a server: tests, scripts), :meth:`write` applies an update on the
calling thread and publishes at once.

Stopping (:meth:`stop`, the server's last step on SIGTERM, after the RPC server has
drained its calls): the writer applies everything still in the buffer (updates already
answered, in fire-and-forget mode), publishes, and exits; calls still waiting for room
fail with :class:`WriterStopped`. Nothing is saved: what was learned since the last
``save`` ends with the process, as in Jubatus.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from runtime.errors import JubakoError, TypeMismatch, WireTypeError
from runtime.rpc.dispatch import NOT_NOW, BadResult, Handler
from runtime.rpc.locks import LockMode
from runtime.wire.types import Descriptor, Object

#: In a ``queued`` method's weight, one unit per this many bytes of text (see
#: :func:`text_weight`).
TEXT_UNIT = 1024
#: How long the inline updates of one turn of the event loop (see :class:`SnapshotModel`'s
#: ``inline_weight``) may take to apply, estimated from the turns before; the rest of the
#: turn's updates go to the writer thread.
INLINE_TURN_SECONDS = 0.0005


def wire_text_bytes(value: object) -> int:
    """The bytes of text (``bytes`` and ``str``) in a wire value, lists and maps walked."""
    if type(value) is bytes or type(value) is str:
        return len(value)
    total = 0
    if type(value) is list:
        stack = [value]
        while stack:
            for item in stack.pop():
                kind = type(item)
                if kind is bytes or kind is str:
                    total += len(item)
                elif kind is list:
                    stack.append(item)
                elif kind is dict:
                    stack.append([*item.keys(), *item.values()])
    return total


def text_weight(count: int, *args: object) -> int:
    """A ``queued`` update's weight: ``count`` (its examples) or one unit per
    :data:`TEXT_UNIT` bytes of the text in ``args``, whichever is more. A queued call is
    answered before it is applied, so the buffer, counted this way, is what bounds the
    memory such calls hold: ``buffer_size`` examples, or KiB of text."""
    return max(count, sum(wire_text_bytes(arg) for arg in args) // TEXT_UNIT, 1)


__all__ = [
    "MixableSnapshot",
    "MixableWriter",
    "SnapshotMixable",
    "SnapshotModel",
    "UpdateBufferFull",
    "WriterStopped",
    "snapshot_rows",
    "text_weight",
    "wire_text_bytes",
]

log = logging.getLogger(__name__)

M = TypeVar("M")
S = TypeVar("S")
R = TypeVar("R")

#: How a loop-side call is told its outcome: ``done(None, wire_result)`` or
#: ``done(error, None)``; called on the event loop's thread, once.
Done = Callable[[BaseException | None, Any], None]


class UpdateBufferFull(JubakoError):
    """The experience buffer stayed full for the whole wait: the update was not queued."""


class WriterStopped(JubakoError):
    """The server is stopping: the update was not queued, nothing changed."""


@dataclass(slots=True, eq=False)
class _Item:
    """One update on its way to the writer."""

    update: Callable[[Any], Any]
    weight: int
    #: The loop-side caller, told the outcome on the loop (None once answered).
    reply: Done | None = None
    #: A blocking caller's future (:meth:`SnapshotModel.write` from another thread).
    future: Future[Any] | None = None
    #: Result → wire value, run on the writer (a row's result descriptor).
    encode: Callable[[Any], Any] | None = None
    #: The method's name, for errors and counts.
    name: str = "update"
    #: Fire-and-forget: answered ``answer`` as soon as it is in the buffer.
    queued: bool = False
    answer: Any = None
    #: A call of an ``#@update`` method: counted once applied (``on_applied``). The
    #: framework's own writes (load, the mix's put_diff and set_model) are not.
    counted: bool = False


@dataclass(slots=True, eq=False)
class _Waiting:
    item: _Item
    deadline: float


@dataclass
class _Counters:
    applied: int = 0
    failed: int = 0
    batches: int = 0
    published: int = 0
    timed_out: int = 0
    last_error: str = ""
    last_apply_seconds: float = 0.0
    largest_batch: int = 0
    waited: int = 0
    rested: float = 0.0
    inline: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class _Never:
    """A type no wire value has."""


class SnapshotModel(Generic[M, S]):
    """A model owned by one writer thread, read through published snapshots.

    ``model`` is the mutable model (only the writer touches it once :meth:`start` ran);
    ``make_snapshot(model)`` returns the read-only view readers get, called on the writer
    after each batch. ``buffer_size`` bounds the weight queued (an update's ``weight``,
    1 unless its row says otherwise: see ``weigh``), ``wait_timeout`` is how long a call
    waits for room before :class:`UpdateBufferFull`, ``publish_interval`` (seconds, 0:
    after every batch) how often the writer publishes while updates keep coming,
    ``max_batch`` the weight one batch takes at most. ``queued`` maps update methods that
    answer as soon as they are queued to the function giving their answer from their
    arguments (``{"train": lambda data: len(data)}``); ``weigh`` maps methods to their
    weight from their arguments. ``switch_interval`` lowers the interpreter's thread switch
    interval when the writer starts (a busy writer then gives the event loop the GIL
    within that many seconds; the default is 5 ms). ``read_share`` puts reads first: while
    readers are busy, the writer rests after each batch so that it keeps the interpreter at
    most ``1 - read_share`` of the time (Python runs one thread at a time: without this a
    client training at full speed would take half of it from the readers); 0 turns it off.

    ``inline_weight`` (0: off) lets small updates skip the trip to the writer thread: an
    update of at most that weight that arrives while the writer is idle, with nothing queued
    or waiting, is kept for the end of the event loop's turn, and so are the small ones
    after it in the same turn, up to about :data:`INLINE_TURN_SECONDS` of applying. At the
    end of the turn the loop's thread applies them as one batch, as the writer (:meth:`on_writer`
    says so; the writer thread takes no batch meanwhile), publishes one snapshot and answers
    their callers exactly as the writer would. A handover costs two thread wake-ups, tens of
    microseconds on a VM, more than a small update itself. ``inline_ready(model)``, when
    given, must also say yes (e.g. no reader holds what the update would wait for: the loop
    must not wait). With ``publish_interval`` set, updates always go to the writer.

    ``wire_updates`` maps update methods whose arguments come as they are on the wire (the
    service's ``wire_methods``) to the function the writer runs for them, given the model
    and those arguments (``{"train": Model.train_wire}``): the row's own function, which
    would hand the work to :meth:`write`, is then not called.

    ``at_once`` maps such wire updates to a function that may apply one call at once, on
    the loop's thread, to the **published** model itself: given the model and the wire
    arguments, it returns the call's result, or None having changed nothing (the call then
    goes the ways above). It is tried (by the RPC server's inline path) only with the
    writer idle, nothing queued, waiting or kept for the turn, and inline updates on; the
    loop's thread is the writer while it runs. The function must change what readers see
    in one step that no reader sees half of, and only when no reader is on the copy it
    changes (``engines/classifier``: one C call, holding the GIL, that checks for readers
    first). A call applied this way is counted as applied inline and published, and skips
    the turn's batch, its publish and its copy.
    """

    name = "writer"

    def __init__(
        self,
        model: M,
        make_snapshot: Callable[[M], S],
        *,
        buffer_size: int = 4096,
        wait_timeout: float = 10.0,
        publish_interval: float = 0.0,
        max_batch: int = 1024,
        queued: Mapping[str, Callable[..., Any]] | None = None,
        weigh: Mapping[str, Callable[..., int]] | None = None,
        switch_interval: float = 0.0005,
        read_share: float = 0.9,
        inline_weight: int = 0,
        inline_ready: Callable[[M], bool] | None = None,
        wire_updates: Mapping[str, Callable[..., Any]] | None = None,
        at_once: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        if buffer_size < 1 or max_batch < 1:
            raise ValueError("buffer_size and max_batch must be at least 1")
        self._model = model
        self._make_snapshot = make_snapshot
        self.buffer_size = buffer_size
        self.wait_timeout = wait_timeout
        self.publish_interval = publish_interval
        self.max_batch = max_batch
        self.queued: dict[str, Callable[..., Any]] = dict(queued or {})
        self.weigh: dict[str, Callable[..., int]] = dict(weigh or {})
        self.switch_interval = switch_interval
        if not 0.0 <= read_share < 1.0:
            raise ValueError("read_share must be at least 0 and under 1")
        self.read_share = read_share
        if inline_weight < 0:
            raise ValueError("inline_weight must be at least 0")
        # (At most a batch: a larger update would hold the loop, and reads, for its length.)
        self.inline_weight = 0 if publish_interval else min(inline_weight, max_batch)
        self._inline_ready = inline_ready
        self.wire_updates: dict[str, Callable[..., Any]] = dict(wire_updates or {})
        self.at_once: dict[str, Callable[..., Any]] = dict(at_once or {})
        if set(self.at_once) - set(self.wire_updates):
            raise ValueError("at_once: only wire updates can be applied at once")
        self._snapshot: S = make_snapshot(model)
        #: Reads of :attr:`snapshot` so far (how the writer knows readers are busy).
        self.reads = 0
        self.published_at = time.monotonic()
        #: Called on the writer after each applied call of an ``#@update`` method (the
        #: server counts it: ``update_count``, the mixer's ``--interval_count``).
        self.on_applied: Callable[[], None] | None = None
        #: How the loop answers a batch's callers: ``answering(answer)`` runs ``answer`` and
        #: then writes the replies it made (the RPC server's :meth:`answering`), not a loop
        #: iteration later. None: ``answer()`` alone.
        self.answering: Callable[[Callable[[], None]], None] | None = None
        self.counters = _Counters()
        #: :meth:`status`'s keys, and the figures they were made from.
        self._status: tuple[tuple[float, ...], dict[str, str]] | None = None
        lock = threading.Lock()
        #: The lock under both conditions, taken bare where nobody waits (cheaper).
        self._lock = lock
        #: The writer waits on it for work; threads in write() on ``_room`` for room.
        self._cond = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._queue: deque[_Item] = deque()
        self._queued_weight = 0
        self._has_waiting = False
        #: Threads blocked in write() waiting for room (woken when a batch is taken).
        self._blocked = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._writer_ident: int | None = None
        #: The writer thread waits for work with nothing to publish (under the lock).
        self._writer_idle = False
        #: The loop's thread holds the model for this turn's inline updates (under the lock);
        #: the writer thread takes no batch meanwhile.
        self._inline_claim = False
        self._inline_ident: int | None = None
        #: This turn's inline updates, applied at its end, and the weight they may reach.
        self._turn: list[_Item] = []
        self._turn_weight = 0
        self._turn_budget = self.inline_weight
        #: Seconds an inline update of weight 1 takes to apply (a running estimate).
        self._inline_unit_seconds = 0.0
        self._reads_seen = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        # Loop-side only: calls waiting for room, in arrival order, and their timer.
        self._waiting: deque[_Waiting] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def snapshot(self) -> S:
        """The published snapshot: read it with no lock; it does not change once published,
        but by an ``at_once`` function, in one step (see the class docstring)."""
        self.reads += 1  # (not exact across threads: a hint for the writer)
        return self._snapshot

    # -- the writer's side -----------------------------------------------------------------

    @property
    def model(self) -> M:
        """The mutable model: the writer's alone once the writer runs (updates get it as
        their argument; other threads must not touch it)."""
        return self._model

    @property
    def running(self) -> bool:
        return self._thread is not None

    def on_writer(self) -> bool:
        """Whether the calling thread is the writer (the writer thread, or the loop's while
        it applies an inline update)."""
        ident = threading.get_ident()
        return ident == self._writer_ident or ident == self._inline_ident

    async def start(self) -> None:
        """Start the writer thread (a lifecycle subsystem: the server's first part)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        if self.switch_interval and sys.getswitchinterval() > self.switch_interval:
            sys.setswitchinterval(self.switch_interval)
        thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread = thread
        thread.start()

    async def stop(self, timeout: float = 30.0) -> None:
        """Apply what the buffer holds, publish, and stop the writer (see the module doc)."""
        thread = self._thread
        if thread is None:
            return
        while self._waiting:
            waiting = self._waiting.popleft()
            self._fail(waiting.item, WriterStopped("the server is stopping: update not applied"))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._cond:
            left = len(self._queue)
            self._stopping = True
            self._cond.notify_all()
            self._room.notify_all()
        if left:
            log.info("applying the %d update(s) left in the buffer before stopping", left)
        await asyncio.to_thread(thread.join, timeout)
        if thread.is_alive():
            with self._cond:
                lost = len(self._queue)
            log.error(
                "the writer did not finish within %gs: %d update(s) not applied", timeout, lost
            )
        else:
            self._thread = None
            self._writer_ident = None
            if left:
                log.info("applied the buffered updates; writer stopped")

    def _run(self) -> None:
        self._writer_ident = threading.get_ident()
        held: list[tuple[_Item, BaseException | None, Any]] = []
        while True:
            with self._cond:
                # (While the loop holds the model, held is empty: it claims an idle writer.)
                while self._inline_claim or (not self._queue and not self._stopping):
                    if held:  # a publish is due at the end of the interval
                        wait = self.published_at + self.publish_interval - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._writer_idle = True
                        self._cond.wait()
                        self._writer_idle = False
                if not self._queue and self._stopping:
                    break
                batch = self._take_batch()
                notify_room = self._has_waiting
                if self._blocked:
                    self._room.notify_all()
            if notify_room:  # the batch taken made room: calls waiting for it go in now
                self._post(self._admit_waiting)
            if batch:
                held.extend(self._apply(batch))
            due = time.monotonic() - self.published_at >= self.publish_interval
            if held and (due or self._stopping or not batch):
                self._publish()
                self._deliver(held)
                held = []
            if batch and self.read_share and not self._stopping:
                self._rest(self.counters.last_apply_seconds)
        if held:
            self._publish()
            self._deliver(held)
        log.debug("writer thread ends")

    def _rest(self, busy: float) -> None:
        """Give the readers their share: rest ``busy * share / (1 - share)`` seconds (at
        most 50 ms) when they read since the writer last looked."""
        reads = self.reads
        if reads == self._reads_seen:
            return
        self._reads_seen = reads
        rest = min(busy * self.read_share / (1.0 - self.read_share), 0.05)
        if rest > 0.0:
            self.counters.rested += rest
            time.sleep(rest)

    def _take_batch(self) -> list[_Item]:
        """Up to ``max_batch`` weight of queued items (at least one); the caller holds the
        condition."""
        batch: list[_Item] = []
        weight = 0
        queue = self._queue
        while queue and (not batch or weight + queue[0].weight <= self.max_batch):
            item = queue.popleft()
            weight += item.weight
            batch.append(item)
        self._queued_weight -= weight
        return batch

    def _apply(self, batch: list[_Item]) -> list[tuple[_Item, BaseException | None, Any]]:
        model = self._model
        counters = self.counters
        counts = counters.counts
        on_applied = self.on_applied
        started = time.perf_counter()
        outcomes: list[tuple[_Item, BaseException | None, Any]] = []
        outcome = outcomes.append
        for item in batch:
            try:
                result = item.update(model)
                encode = item.encode
                if encode is not None:
                    try:
                        result = encode(result)
                    except WireTypeError as error:
                        raise BadResult(item.name, error) from None
            except Exception as error:
                counters.failed += 1
                counters.last_error = f"{item.name}: {type(error).__name__}: {error}"
                if item.reply is None and item.future is None:  # answered when queued
                    log.warning("queued %s failed: %s: %s", item.name, type(error).__name__, error)
                outcome((item, error, None))
                continue
            counters.applied += 1
            name = item.name
            counts[name] = counts.get(name, 0) + 1
            if item.counted and on_applied is not None:
                on_applied()
            outcome((item, None, result))
        counters.batches += 1
        counters.largest_batch = max(counters.largest_batch, len(batch))
        counters.last_apply_seconds = time.perf_counter() - started
        return outcomes

    def _publish(self) -> None:
        try:
            snapshot = self._make_snapshot(self._model)
        except Exception:  # a bug in the service: keep the last good snapshot
            log.exception("making a snapshot failed: readers keep the previous one")
            self.counters.last_error = "make_snapshot failed (see the log)"
            return
        self._snapshot = snapshot
        self.published_at = time.monotonic()
        self.counters.published += 1

    def _deliver(self, outcomes: list[tuple[_Item, BaseException | None, Any]]) -> None:
        """Tell the callers of a published batch: blocking ones here, the loop's on it."""
        loop_side: list[tuple[_Item, BaseException | None, Any]] = []
        for outcome in outcomes:
            item, error, result = outcome
            future = item.future
            if future is not None:
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)
            elif item.reply is not None:
                loop_side.append(outcome)
        if loop_side:
            self._post(lambda: self._deliver_on_loop(loop_side))
        elif self._has_waiting:
            self._post(self._admit_waiting)

    def _post(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    # -- the loop's side -------------------------------------------------------------------

    def _deliver_on_loop(self, outcomes: list[tuple[_Item, BaseException | None, Any]]) -> None:
        def answer() -> None:
            for item, error, result in outcomes:
                reply = item.reply
                if reply is not None:
                    item.reply = None
                    reply(error, result)

        if self.answering is None:
            answer()
        else:
            self.answering(answer)
        if self._waiting:
            self._admit_waiting()

    def submit(self, item: _Item) -> None:
        """Queue ``item`` from the event loop's thread. It waits for room when the buffer
        is full; its caller (``item.reply``) is told on the loop either way: when it is
        queued for a fire-and-forget item, when it is applied and published otherwise.
        A small one may be applied right here instead (see ``inline_weight``)."""
        if self._stopping or self._thread is None:
            raise WriterStopped("the server is stopping: update not applied")
        inline = claimed = False
        with self._lock:
            if item.weight <= self.inline_weight and not self._queue and not self._waiting:
                if self._inline_claim:
                    inline = self._turn_weight + item.weight <= self._turn_budget
                elif self._writer_idle and (
                    self._inline_ready is None or self._inline_ready(self._model)
                ):
                    inline = claimed = self._inline_claim = True
            if not inline:
                pushed = not self._waiting and self._fits(item.weight)
                if pushed:
                    answer = self._push(item)
                else:
                    self._has_waiting = True
        if inline:
            if claimed:
                assert self._loop is not None
                self._loop.call_soon(self._end_inline_turn)
            self._turn.append(item)
            self._turn_weight += item.weight
            if item.queued:  # answered now, as when queued; the outcome is only logged
                answer, item.reply = item.reply, None
                if answer is not None:
                    answer(None, item.answer)
            return
        if pushed:
            if answer is not None:
                answer(None, item.answer)
            return
        self.counters.waited += 1
        self._waiting.append(_Waiting(item, time.monotonic() + self.wait_timeout))
        if self._timer is None:
            self._arm_timer()

    def apply_at_once(self, function: Callable[..., Any], name: str, args: list[Any]) -> Any:
        """``function(model, *args)`` (an ``at_once`` function) on the loop's thread as the
        writer, when the writer is idle and nothing is queued, waiting or kept for this
        turn: the call's result, counted as applied, or None when it is not applied here
        (not now, or ``function`` declined it)."""
        if not self._claim():
            return None
        try:
            result = function(self._model, *args)
        except Exception as error:
            self._count_failed(name, error)
            raise
        finally:
            self._give_back()
        if result is not None:
            self._count_applied(name, 1)
        return result

    def apply_many_at_once(
        self,
        function: Callable[..., tuple[Any, int, BaseException | None] | None],
        name: str,
        *args: Any,
    ) -> Any:
        """:meth:`apply_at_once` for a function that applies any number of ``name``
        updates at once (a read of them answered from its bytes): ``function(model,
        *args)`` answers ``(result, applied, error)``, or None having applied none;
        ``result`` is returned, ``applied`` updates are counted, and ``error`` (of an
        update that failed part way, or None) is counted as a failure. None when the writer
        cannot be claimed now. Once updates are applied nothing here raises: a listener
        that fails is logged, so that no caller runs them again."""
        if not self._claim():
            return None
        try:
            outcome = function(self._model, *args)
        except Exception as error:
            self._count_failed(name, error)
            raise
        finally:
            self._give_back()
        if outcome is None:
            return None
        result, applied, failed = outcome
        if failed is not None:
            self._count_failed(name, failed)
        if applied:
            try:
                self._count_applied(name, applied)
            except Exception:
                log.exception("counting %d %s updates applied at once", applied, name)
        return result

    def _claim(self) -> bool:
        """Take the model as the writer on the loop's thread, when the writer is idle and
        nothing is queued, waiting or kept for this turn (:meth:`_give_back` returns it)."""
        with self._lock:
            if (
                self._inline_claim
                or self._queue
                or self._waiting
                or self._stopping
                or not self._writer_idle
            ):
                return False
            self._inline_claim = True
        self._inline_ident = threading.get_ident()
        return True

    def _count_failed(self, name: str, error: BaseException) -> None:
        counters = self.counters
        counters.failed += 1
        counters.last_error = f"{name}: {type(error).__name__}: {error}"

    def _count_applied(self, name: str, applied: int) -> None:
        """Count ``applied`` updates of ``name`` applied and published at once."""
        counters = self.counters
        counters.applied += applied
        counters.inline += applied
        counters.published += applied
        counts = counters.counts
        counts[name] = counts.get(name, 0) + applied
        self.published_at = time.monotonic()
        on_applied = self.on_applied
        if on_applied is not None:
            for _ in range(applied):
                on_applied()

    def _give_back(self) -> None:
        """Give the model back to the writer thread after the loop's thread held it. With
        no lock: a writer that found the model claimed waits on the condition, and whoever
        queues from now on wakes it; what was queued meanwhile is woken for here."""
        self._inline_ident = None
        self._inline_claim = False
        if self._queue or self._stopping:
            with self._cond:
                self._cond.notify()

    def _end_inline_turn(self) -> None:
        """Apply the turn's inline updates as one batch on the loop's thread (the writer
        for now), publish them, give the model back to the writer thread, and answer."""
        batch, self._turn = self._turn, []
        weight, self._turn_weight = self._turn_weight, 0
        self._inline_ident = threading.get_ident()
        try:
            outcomes = self._apply(batch)
            self._publish()
        finally:
            self._give_back()
        self.counters.inline += len(batch)
        # The next turns' budget: what fits in INLINE_TURN_SECONDS at this turn's pace.
        unit = self.counters.last_apply_seconds / max(weight, 1)
        estimate = self._inline_unit_seconds
        estimate = unit if not estimate else estimate * 0.75 + unit * 0.25
        self._inline_unit_seconds = estimate
        fits = int(INLINE_TURN_SECONDS / max(estimate, 1e-7))
        self._turn_budget = max(self.inline_weight, min(fits, self.max_batch))
        self._deliver_on_loop(outcomes)

    def _fits(self, weight: int) -> bool:
        """Whether ``weight`` more fits (an update heavier than the buffer fits an empty
        one); the caller holds the condition."""
        return self._queued_weight + weight <= self.buffer_size or not self._queue

    def _push(self, item: _Item) -> Done | None:
        """Append to the buffer and wake the writer; the caller holds the condition. For a
        fire-and-forget item, returns the reply to send its answer with (taken off the
        item first: the writer only logs how it ends)."""
        answer = None
        if item.queued:
            answer, item.reply = item.reply, None
        self._queue.append(item)
        self._queued_weight += item.weight
        if len(self._queue) == 1:
            self._cond.notify()
        return answer

    def _admit_waiting(self) -> None:
        """Move waiting calls into the buffer while they fit, in order."""
        waiting = self._waiting
        answers: list[tuple[Done, Any]] = []
        with self._cond:
            while waiting and self._fits(waiting[0].item.weight):
                item = waiting.popleft().item
                answer = self._push(item)
                if answer is not None:
                    answers.append((answer, item.answer))
            self._has_waiting = bool(waiting)
        for answer, value in answers:
            answer(None, value)
        if not waiting and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_timer(self) -> None:
        loop = self._loop
        if loop is None or not self._waiting:
            self._timer = None
            return
        delay = max(self._waiting[0].deadline - time.monotonic(), 0.0)
        self._timer = loop.call_later(delay, self._expire)

    def _expire(self) -> None:
        """Fail the calls that waited for room longer than ``wait_timeout``."""
        self._timer = None
        now = time.monotonic()
        waiting = self._waiting
        while waiting and waiting[0].deadline <= now:
            item = waiting.popleft().item
            self.counters.timed_out += 1
            with self._cond:
                depth = self._queued_weight
            self._fail(
                item,
                UpdateBufferFull(
                    f"{item.name}: the update buffer stayed full for {self.wait_timeout:g} s "
                    f"({depth} of {self.buffer_size} queued; the writer is behind): "
                    "not applied, try again later"
                ),
            )
        with self._cond:
            self._has_waiting = bool(waiting)
        self._arm_timer()

    @staticmethod
    def _fail(item: _Item, error: BaseException) -> None:
        reply, item.reply = item.reply, None
        if reply is not None:
            reply(error, None)
        elif item.future is not None:
            item.future.set_exception(error)

    # -- any thread ------------------------------------------------------------------------

    def write(
        self, update: Callable[[M], R], *, name: str = "update", timeout: float | None = None
    ) -> R:
        """Run ``update(model)`` as the writer and return its result, once published.

        On the writer thread it runs at once (inside the batch being applied); from any
        other thread it is queued and this call blocks until it is applied and published
        (waiting for room like any update); before :meth:`start` it runs on the calling
        thread and publishes at once. Must not be called on the event loop's thread
        while the writer runs (it blocks).
        """
        if self.on_writer():
            return update(self._model)
        if self._thread is None:
            result = update(self._model)
            self._publish()
            return result
        future: Future[R] = Future()
        item = _Item(update, 1, future=future, name=name)
        deadline = time.monotonic() + (self.wait_timeout if timeout is None else timeout)
        with self._cond:
            while not self._fits(1):
                if self._stopping:
                    raise WriterStopped("the server is stopping: update not applied")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UpdateBufferFull(f"{name}: the update buffer stayed full")
                self._blocked += 1
                try:
                    self._room.wait(left)
                finally:
                    self._blocked -= 1
            if self._stopping:
                raise WriterStopped("the server is stopping: update not applied")
            self._push(item)
        return future.result()

    def status(self) -> dict[str, str]:
        """``get_status`` keys: the buffer, the writer and the snapshot's age (made again
        only when a figure they show changed; the age, every call)."""
        c = self.counters
        figures = self._figures()
        depth = figures[0]
        made = self._status
        if made is None or made[0] != figures:
            status = {
                "buffer.depth": str(depth),
                "buffer.size": str(self.buffer_size),
                "buffer.waiting": str(len(self._waiting)),
                "buffer.waited": str(c.waited),
                "buffer.timed_out": str(c.timed_out),
                "buffer.queued_methods": ",".join(sorted(self.queued)),
                "writer.applied": str(c.applied),
                "writer.failed": str(c.failed),
                "writer.batches": str(c.batches),
                "writer.largest_batch": str(c.largest_batch),
                "writer.last_apply_seconds": f"{c.last_apply_seconds:.6f}",
                "writer.last_error": c.last_error,
                "writer.rested_seconds": f"{c.rested:.3f}",
                "writer.inline": str(c.inline),
                "snapshot.published": str(c.published),
                "snapshot.age_seconds": "",
                "snapshot.publish_interval": f"{self.publish_interval:g}",
            }
            made = self._status = (figures, status)
        status = dict(made[1])
        status["snapshot.age_seconds"] = f"{self._age_millis() / 1000:.3f}"
        return status

    def status_key(self) -> tuple[float, ...]:
        """What :meth:`status` is made from: its figures and the snapshot's age in ms."""
        return (*self._figures(), self._age_millis())

    def _figures(self) -> tuple[float, ...]:
        """The figures :meth:`status` shows but the age (the buffer's depth first)."""
        c = self.counters
        return (
            self._queued_weight, len(self._waiting), c.waited, c.timed_out, c.applied,
            c.failed, c.batches, c.rested, c.published,
        )  # fmt: skip

    def _age_millis(self) -> int:
        """Milliseconds since the published snapshot was made (whole ones)."""
        return int((time.monotonic() - self.published_at) * 1000)

    # -- dispatch rows ---------------------------------------------------------------------

    def update_row(self, name: str, row: Handler) -> Handler:
        """The row of an ``#@update`` method: decoded on the loop, applied by the writer,
        answered when published (or at once, for a ``queued`` method).

        It is a ``start`` row taking the wire values, cluster name included, so the RPC
        server starts it from its fast path with no record per call; the checks the
        dispatcher makes (cluster name, argument types) happen here, with its errors.
        """
        if row.start is not None or row.is_async or not row.takes_cluster_name:
            raise ValueError(f"{name}: only plain methods can go through the writer")
        func = row.func
        arg_types = row.arg_types
        labels = row.arg_labels or tuple(str(i) for i in range(len(arg_types)))
        decoders = tuple(_decoder(t) for t in arg_types)
        #: Every argument taken as it comes (``object`` types): no decoding per call.
        as_they_come = all(passes for _, _, passes in decoders)
        ret = row.ret_type
        encode = None if ret is None or type(ret) is Object else ret.encode
        ack = self.queued.get(name)
        weigh = self.weigh.get(name)
        direct = self.wire_updates.get(name)
        if direct is not None and not as_they_come:
            raise ValueError(f"{name}: a wire update takes its arguments as they come")
        at_once = self.at_once.get(name)

        def wire_result(result: Any) -> Any:
            """The method's result for the wire (its row's result descriptor)."""
            if encode is None:
                return result
            try:
                return encode(result)
            except WireTypeError as error:
                raise BadResult(name, error) from None

        def start(params: list[Any], done: Done) -> None:
            _check_cluster_name(params[0])
            args = params[1:] if as_they_come else _decode(name, decoders, labels, params)
            weight = 1
            if weigh is not None:
                weight = weigh(*args)
                if type(weight) is not int or weight < 1:
                    weight = max(int(weight), 1)
            update = (
                (lambda model: direct(model, *args))
                if direct is not None
                else (lambda _model: func(*args))
            )
            item = _Item(update, weight, done, encode=encode, name=name, counted=True)
            if ack is not None:  # fire-and-forget: answered once it is in the buffer
                item.queued = True
                item.answer = wire_result(ack(*args))
            self.submit(item)

        checked: list[object] = [None]  # the cluster name last found good

        def now(params: list[Any]) -> Any:
            """The call applied at once (:meth:`apply_at_once`), answered as ``start``
            would; ``NOT_NOW`` when it is not."""
            assert at_once is not None
            cluster = params[0]
            if cluster != checked[0] or type(cluster) is not type(checked[0]):
                _check_cluster_name(cluster)
                checked[0] = cluster
            args = params[1:]
            result = self.apply_at_once(at_once, name, args)
            if result is None:
                return NOT_NOW
            return wire_result(result if ack is None else ack(*args))

        return Handler(
            func,
            LockMode.NOLOCK,
            (Object(),) * (len(arg_types) + 1),
            Object(),
            takes_cluster_name=False,
            start=start,
            arg_labels=("cluster name", *labels),
            now=now if at_once is not None and self.inline_weight else None,
        )

    def mixable(self) -> SnapshotMixable:
        """The :class:`~runtime.mix.mixable.Mixable` the mixer gets (see its docstring)."""
        return SnapshotMixable(self)  # type: ignore[arg-type]


def _check_cluster_name(cluster: object) -> None:
    """Raise ``TypeMismatch``, worded as the dispatcher words it, for a cluster name that is
    not a string (text, or UTF-8 bytes)."""
    if type(cluster) is not str:
        if type(cluster) is not bytes:
            raise TypeMismatch("the first argument (cluster name) must be a string")
        try:
            cluster.decode("utf-8")
        except UnicodeDecodeError:
            raise TypeMismatch("cluster name is not valid UTF-8") from None


def _decoder(descriptor: Descriptor[Any]) -> tuple[Callable[[Any], Any], type, bool]:
    return (descriptor.decode, descriptor.as_is or _Never, type(descriptor) is Object)


def _decode(
    name: str,
    decoders: tuple[tuple[Callable[[Any], Any], type, bool], ...],
    labels: tuple[str, ...],
    params: list[Any],
) -> list[Any]:
    """The arguments after the cluster name, decoded by their types; a value that does not
    fit raises ``TypeMismatch`` worded as the dispatcher words it."""
    args: list[Any] = []
    for index, (decode, as_is, passes) in enumerate(decoders):
        value = params[index + 1]
        if passes or type(value) is as_is:
            args.append(value)
            continue
        try:
            args.append(decode(value))
        except WireTypeError as error:
            raise TypeMismatch(f"{name}: argument {labels[index]}: {error}") from None
    return args


def snapshot_rows(
    table: Mapping[str, Handler], holder: SnapshotModel[Any, Any]
) -> dict[str, Handler]:
    """The service's rows for a snapshot model: ``#@update`` rows go through the writer
    (:meth:`SnapshotModel.update_row`), ``#@analysis`` rows take no lock (they read the
    snapshot), ``#@nolock`` rows are left as they are."""
    rows: dict[str, Handler] = {}
    for name, row in table.items():
        if row.lock is LockMode.UPDATE:
            rows[name] = holder.update_row(name, row)
        elif row.lock is LockMode.ANALYSIS:
            rows[name] = replace(row, lock=LockMode.NOLOCK)
        else:
            rows[name] = row
    return rows


# -- the mix ---------------------------------------------------------------------------------


class MixableSnapshot(Protocol):
    """What a snapshot offers the mixer: the reading half of
    :class:`~runtime.mix.mixable.Mixable`."""

    @property
    def version(self) -> int: ...

    def get_diff(self) -> object: ...

    def mix(self, lhs: object, rhs: object) -> object: ...

    def get_model(self) -> object: ...


class MixableWriter(Protocol):
    """What the writer's model offers the mixer: the writing half.

    ``sent`` is the snapshot whose :meth:`~MixableSnapshot.get_diff` this server sent in
    the round being applied (``None`` when it sent none): ``put_diff`` takes out of the
    local diff exactly what was sent, so updates made while the round ran survive it.
    """

    def put_diff(self, mixed: object, sent: Any) -> bool: ...

    def set_model(self, model: object) -> None: ...


class SnapshotMixable:
    """A :class:`~runtime.mix.mixable.Mixable` over a :class:`SnapshotModel` whose model is
    a :class:`MixableWriter` and whose snapshots are :class:`MixableSnapshot`:
    ``version``, ``get_diff``, ``mix`` and ``get_model`` read the published snapshot (no
    lock), ``put_diff`` and ``set_model`` go through the writer. The mixer may call it from
    any thread but the event loop's."""

    def __init__(self, holder: SnapshotModel[MixableWriter, MixableSnapshot]) -> None:
        self.holder = holder
        self._sent: MixableSnapshot | None = None

    @property
    def version(self) -> int:
        return self.holder.snapshot.version

    def get_diff(self) -> object:
        snapshot = self.holder.snapshot
        diff = snapshot.get_diff()
        self._sent = snapshot
        return diff

    def mix(self, lhs: object, rhs: object) -> object:
        return self.holder.snapshot.mix(lhs, rhs)

    def put_diff(self, mixed: object) -> bool:
        sent, self._sent = self._sent, None
        return self.holder.write(lambda model: model.put_diff(mixed, sent), name="put_diff")

    def get_model(self) -> object:
        return self.holder.snapshot.get_model()

    def set_model(self, model: object) -> None:
        self._sent = None
        self.holder.write(lambda writer: writer.set_model(model), name="set_model")
