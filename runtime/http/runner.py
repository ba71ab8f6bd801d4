"""Running jobs: inputs from the store in chunks, pipelined to the upstream, results back.

:class:`JobManager` starts queued jobs in submission order (``max_running`` at a time),
resumes the jobs a stopped gateway was running, cancels, and deletes finished jobs after
the TTL. :class:`JobRun` runs one job: it reads a chunk of unsent inputs from the store,
marks each group of :data:`MARK_GROUP` sent (committed) just before it leaves, sends them
with at most
``concurrency`` calls in flight, and writes each result back as it arrives (a commit at
least every ``FLUSH_SECONDS``). Every store call runs on one worker thread.

What happens to an input at each failure:

- the upstream answers with an error, or its answer does not fit the IDL: that error
  is the input's result (502); a timeout: 504;
- no connection can be made: nothing was sent; the job waits and tries again (backoff up
  to 10 s), its message says why;
- the connection drops, or the gateway is killed, while inputs are at the upstream: an
  ``#@analysis`` method's inputs are sent again (reading twice is harmless); any other
  method's get the error ``interrupted`` (it may or may not have been applied, and is
  never applied twice), unless the job was submitted with ``retry_interrupted=true``.

An input whose result is stored is never sent again.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from runtime.errors import ConnectError, ConnectionLost, RPCError, WireTypeError
from runtime.http.errors import upstream_error
from runtime.http.jsontext import dumps
from runtime.http.spec import MethodSpec, ServiceSpec
from runtime.http.store import (
    CANCELLED,
    COMPLETED,
    FAILED,
    QUEUED,
    RUNNING,
    Job,
    Store,
    StoreError,
)
from runtime.http.upstream import Upstream

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

FLUSH_SECONDS = 0.1
#: Inputs marked sent (one commit) just before they leave, at most: what a kill -9 can
#: leave marked sent without having sent, besides the calls in flight.
MARK_GROUP = 64
#: Calls queued per turn of the loop: a server reads them in several parts and answers
#: the first while the next arrive, instead of a whole window at once in lockstep.
SEND_BURST = 32
#: Seconds of progress the rate is measured over.
RATE_WINDOW = 10.0
INTERRUPTED = dumps(
    {
        "status": 502,
        "code": "interrupted",
        "message": "the gateway stopped or lost the upstream after this input was taken to "
        "be sent: it may or may not have been applied, and was not sent again; resubmit it "
        "if it was not (or submit with retry_interrupted=true when sending twice is "
        "harmless)",
    }
)


@dataclass(frozen=True)
class JobSettings:
    """How jobs run: calls in flight per job, inputs per chunk, per-call timeout (s),
    jobs at once, and seconds finished jobs are kept."""

    concurrency: int = 256
    chunk: int = 1024
    timeout: float = 60.0
    max_running: int = 1
    ttl: float = 7 * 86400.0


class JobRun:
    """One job being run; see the module docstring."""

    def __init__(self, manager: JobManager, job: Job, spec: MethodSpec) -> None:
        self.manager = manager
        self.job = job
        self.spec = spec
        self.cancelled = False
        self._pending: list[tuple[int, int, str]] = []
        self._unsent: list[int] = []
        self._dups: dict[int, list[int]] = {}
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: Calls that may still be sent (``concurrency`` minus those in flight), and the
        #: event a reply sets when it frees one.
        self._free = manager.settings.concurrency
        self._room = asyncio.Event()
        self._reading = False
        self._unreachable: RPCError | None = None
        self._resend = spec.reads_only or bool(job.options.get("retry_interrupted"))
        self._wakeup = asyncio.Event()
        #: (monotonic time, done) samples for the rate.
        self.samples: collections.deque[tuple[float, int]] = collections.deque()

    # -- progress ------------------------------------------------------------------------

    def rate(self) -> float:
        """Inputs per second over the last :data:`RATE_WINDOW` seconds."""
        if len(self.samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def _sample(self) -> None:
        now = time.monotonic()
        self.samples.append((now, self.job.done))
        while len(self.samples) > 2 and now - self.samples[0][0] > RATE_WINDOW:
            self.samples.popleft()

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> None:
        db, job = self.manager.db, self.job
        await db(self.manager.store.set_state, job, RUNNING, "")
        self._dups = await db(self.manager.store.duplicates, job)
        lost = await db(self.manager.store.interrupted, job)
        if lost and self._resend:
            log.info("job %s: %d interrupted inputs are sent again", job.id, len(lost))
            await db(self.manager.store.unsend, lost)
        elif lost:
            log.warning("job %s: %d inputs were at the upstream when the gateway stopped; "
                        "they get the error 'interrupted'", job.id, len(lost))  # fmt: skip
            rows = [(key, 0, INTERRUPTED) for key in lost]
            await db(self.manager.store.finish_items, job, rows, self._dups)
        self._sample()
        flusher = asyncio.create_task(self._flush_loop())
        try:
            await self._send_all()
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            if not self.cancelled:  # a stop gave the replies their time already
                await self._drain()
            await self._flush()
        if self.cancelled:
            return
        remaining = await db(self.manager.store.remaining, job)
        if remaining:
            await db(self.manager.store.set_state, job, FAILED,
                     f"{remaining} inputs were left without a result")  # fmt: skip
        else:
            await db(self.manager.store.set_state, job, COMPLETED, "")
        log.info("job %s: %s, %d inputs, %d errors", job.id, job.state, job.total, job.errors)

    async def _send_all(self) -> None:
        backoff = 0.5
        store = self.manager.store
        while True:
            sent_any = await self._send_pass()
            await self._flush()  # inputs taken and not sent go back before the wait
            await self._drain()
            await self._flush()
            if self.cancelled:
                return
            unreachable = self._problem()
            if unreachable is not None:
                problem = upstream_error(unreachable, self.manager.upstream.address, "")
                await self.manager.db(
                    store.set_message, self.job, f"waiting for the upstream: {problem.message}"
                )
                log.warning("job %s: %s; trying again in %.1f s", self.job.id, problem.message,
                            backoff)  # fmt: skip
                self._unreachable = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if backoff > 0.5:
                await self.manager.db(store.set_message, self.job, "")
                backoff = 0.5
            if not sent_any or not await self._left():
                return

    async def _send_pass(self) -> bool:
        """Send every unsent input once, in key order, while the next chunk is read from
        the store (on a thread of its own) as this one goes out; whether any was sent."""
        chunks: asyncio.Queue[list[tuple[int, bytes]]] = asyncio.Queue(maxsize=2)
        self._reading = True
        reader = asyncio.create_task(self._read_chunks(chunks))
        sent_any = False
        burst = 0
        rows: list[tuple[int, bytes]] = []
        index = marked = 0
        store = self.manager.store
        try:
            while True:
                rows, index, marked = await self._next_chunk(chunks, reader), 0, 0
                if not rows:
                    break
                while index < len(rows):
                    while self._free == 0 and not self._halted():
                        self._room.clear()
                        await self._room.wait()
                    if self._halted():
                        break
                    if index == marked:  # the next group is marked sent, committed, first
                        marked = min(index + MARK_GROUP, len(rows))
                        await self.manager.db(store.mark_sent, rows[index][0], rows[marked - 1][0])
                        if self._halted():
                            break
                    key, blob = rows[index]
                    self._free -= 1
                    self._send(key, blob)
                    index += 1
                    sent_any = True
                    burst += 1
                    if burst == SEND_BURST:  # let this much go out while we go on
                        burst = 0
                        await asyncio.sleep(0)
                if self._halted():
                    break
        finally:
            # Inputs not sent go back to unsent (the store's mark is what matters): the
            # rest of this chunk, whose next group may be marked already, whatever ended
            # the pass (a cancel, a stop), and the chunks read ahead (not marked: going
            # back costs nothing); the reader stops at its next turn, after its take.
            self._unsent.extend(k for k, _ in rows[index:])
            self._reading = False
            while True:
                try:
                    self._unsent.extend(k for k, _ in chunks.get_nowait())
                except asyncio.QueueEmpty:
                    if reader.done():
                        break
                    await asyncio.sleep(0.005)
            await reader
        return sent_any

    @staticmethod
    async def _next_chunk(
        chunks: asyncio.Queue[list[tuple[int, bytes]]], reader: asyncio.Task[None]
    ) -> list[tuple[int, bytes]]:
        """The next chunk read, or ``[]`` once the reader has ended (with its end mark,
        or without one when it stopped at a cancel before reading)."""
        while True:
            if not chunks.empty():
                return chunks.get_nowait()
            if reader.done():
                return []
            getting = asyncio.ensure_future(chunks.get())
            await asyncio.wait({getting, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getting.done():
                return getting.result()
            getting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getting

    async def _read_chunks(self, chunks: asyncio.Queue[list[tuple[int, bytes]]]) -> None:
        cursor = self.job.first - 1
        store, size = self.manager.store, self.manager.settings.chunk
        while self._reading and not self._halted():
            rows = await self.manager.reader(store.take, self.job, cursor, size)
            await chunks.put(rows)
            if not rows:
                return
            cursor = rows[-1][0]

    def _halted(self) -> bool:
        """Cancelled, or the upstream is out of reach (both change in reply callbacks)."""
        return self.cancelled or self._unreachable is not None

    def _problem(self) -> RPCError | None:
        return self._unreachable

    async def _left(self) -> bool:
        return bool(await self.manager.db(self.manager.store.remaining, self.job))

    def _send(self, key: int, blob: bytes) -> None:
        self._inflight += 1
        self._idle.clear()

        def reply(error: RPCError | None, result: Any) -> None:
            self._reply(key, error, result)

        self.manager.upstream.send_stored(
            self.spec.name, blob, reply, self.manager.settings.timeout
        )

    def _reply(self, key: int, error: RPCError | None, result: Any) -> None:
        self._inflight -= 1
        self._free += 1
        self._room.set()
        if error is None:
            try:
                self._pending.append((key, 1, self.spec.result_text(result)))
            except WireTypeError as bad:
                self._fail(key, bad)
        elif isinstance(error, ConnectError):  # nothing was sent
            self._unsent.append(key)
            self._unreachable = error
        elif isinstance(error, ConnectionLost):
            self._unreachable = error
            if self._resend:
                self._unsent.append(key)
            else:
                self._pending.append((key, 0, INTERRUPTED))
        else:
            self._fail(key, error)
        if self._inflight == 0:
            self._idle.set()

    def _fail(self, key: int, error: Exception) -> None:
        problem = upstream_error(error, self.manager.upstream.address, self.spec.name)
        body = {"status": problem.status, "code": problem.code, "message": problem.message}
        self._pending.append((key, 0, dumps(body)))

    async def _drain(self) -> None:
        await self._idle.wait()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self._flush()

    async def _flush(self) -> None:
        rows, self._pending = self._pending, []
        unsent, self._unsent = self._unsent, []
        store = self.manager.store
        if unsent:
            await self.manager.db(store.unsend, unsent)
        if rows:
            await self.manager.db(store.finish_items, self.job, rows, self._dups)
        self._sample()

    def cancel(self) -> None:
        """Stop sending (a DELETE, or the gateway stopping): the sender wakes at once."""
        self.cancelled = True
        self._wakeup.set()
        self._room.set()


class JobManager:
    """Every job of one gateway; see the module docstring."""

    def __init__(
        self, service: ServiceSpec, store: Store, upstream: Upstream, settings: JobSettings
    ) -> None:
        self.service = service
        self.store = store
        self.upstream = upstream
        self.settings = settings
        self.runs: dict[str, JobRun] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "jubako-jobs")
        #: Reading chunks has a thread of its own: a chunk is read while results are written.
        self._reader = concurrent.futures.ThreadPoolExecutor(1, "jubako-jobs-read")
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def db(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call on the jobs' store thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: func(*args, **kwargs))

    async def reader(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call on the thread that reads chunks."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, lambda: func(*args, **kwargs))

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._schedule(), name="jobs-scheduler"),
            asyncio.create_task(self._sweep(), name="jobs-sweeper"),
        ]
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop every run (inputs at the upstream get their results for up to 5 s)."""
        for task in self._tasks:
            task.cancel()
        for run in self.runs.values():
            run.cancel()
        if self._running:
            await asyncio.wait(self._running, timeout=5.0)
        for task in [*self._tasks, *self._running]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._executor.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    async def _schedule(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while len(self.runs) < self.settings.max_running:
                waiting = await self.db(self.store.jobs, (RUNNING, QUEUED))
                ready = sorted((j for j in waiting if j.id not in self.runs),
                               key=lambda j: (j.state != RUNNING, j.seq))  # fmt: skip
                if not ready:
                    break
                self._begin(ready[0])

    def _begin(self, job: Job) -> None:
        spec = self.service.method(job.method)
        run = JobRun(self, job, spec) if spec is not None else None
        task = asyncio.create_task(self._run(job, run), name=f"job-{job.id}")
        if run is not None:
            self.runs[job.id] = run
        self._running.add(task)

    async def _run(self, job: Job, run: JobRun | None) -> None:
        try:
            if run is None:
                await self.db(self.store.set_state, job, FAILED,
                              f"this gateway has no method {job.method}")  # fmt: skip
            else:
                await run.run()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("job %s failed", job.id)
            await self.db(self.store.set_state, job, FAILED, f"internal error: {error!r}")
        finally:
            self.runs.pop(job.id, None)
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)
            self.wake()

    async def cancel(self, job: Job) -> Job:
        """Cancel a queued or running job; results already stored are kept."""
        run = self.runs.get(job.id)
        if run is not None:
            run.cancel()
            job = run.job
        await self.db(self.store.set_state, job, CANCELLED, "cancelled by a DELETE request")
        return job

    def progress(self, job: Job) -> dict[str, Any]:
        """Live figures of ``job``: done and errors now, rate (inputs/s) and ETA (s)."""
        run = self.runs.get(job.id)
        done, errors = (run.job.done, run.job.errors) if run is not None else (job.done, job.errors)
        if run is not None:
            rate = run.rate()
        elif job.started and job.finished and job.finished > job.started:
            rate = job.total / (job.finished - job.started)
        else:
            rate = 0.0
        left = job.total - done
        eta = left / rate if run is not None and rate > 0 else (0.0 if left == 0 else None)
        return {"done": done, "errors": errors, "rate": round(rate, 1),
                "eta": None if eta is None else round(eta, 1)}  # fmt: skip

    async def _sweep(self) -> None:
        interval = min(60.0, max(self.settings.ttl / 4, 0.2))
        store_gone = False
        while True:
            try:
                await self.db(self.store.check_file)
                store_gone = False
            except StoreError as error:
                if not store_gone:  # said once, not every sweep
                    log.error("%s", error)
                store_gone = True
            for job in await self.db(self.store.expired, self.settings.ttl):
                log.info("job %s: %s %.0f s ago, deleted (--job-ttl)", job.id, job.state,
                         time.time() - (job.finished or 0))  # fmt: skip
                await self.db(self.store.delete, job)
            await asyncio.sleep(interval)
