"""Where the calls the fast path does not take run: on the loop, on workers, or later.

:meth:`Scheduler.run` takes a prepared :class:`~runtime.rpc.dispatch.Call` and

- starts a ``start`` handler (the proxy's relay) on the loop; it answers through a
  callback;
- runs an ``async def`` handler as a task on the loop;
- runs a method known to be fast inline, and times one call in
  :data:`~runtime.rpc.inline.SAMPLE_EVERY` (a method that looks slow, but not very, is
  probed on the loop now and then, to be timed exactly);
- queues a fast call whose lock a worker holds (:meth:`Scheduler.defer`): it waits on the
  loop, in arrival order, and runs inline as soon as the lock is free (handing it to a
  worker instead would keep the lock busy for the calls behind it);
- hands everything else to a pool of worker threads, where waiting for the lock is fine.

Every outcome goes back to the connection (``succeed``, ``fail``, ``reply``), which
counts the call as pending from the moment it is handed over until it is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from runtime.rpc.dispatch import Call, Dispatcher
from runtime.rpc.inline import SAMPLE_EVERY, InlineTable

if TYPE_CHECKING:
    from runtime.rpc.connection import Connection

#: How often calls waiting for a busy lock are retried (besides after each worker call).
RETRY_BLOCKED_SECONDS = 0.0005


class Scheduler:
    """Per server: the worker pool and the queue of fast calls waiting for the lock."""

    def __init__(self, dispatcher: Dispatcher, inline: InlineTable, threads: int) -> None:
        self.dispatcher = dispatcher
        self.inline = inline
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="rpc")
        #: Fast calls waiting on the loop for a lock a worker holds, in arrival order.
        self.blocked: deque[tuple[Connection, int | None, Call]] = deque()
        self._retry_handle: asyncio.TimerHandle | None = None

    def close(self) -> None:
        """Stop the workers; calls not started are cancelled (their callers are told)."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    def run(self, connection: Connection, msgid: int | None, call: Call) -> None:
        """Run ``call`` where it belongs and answer it on ``connection``."""
        handler = call.handler
        if handler.start is not None:
            connection.start_pending(call.held)
            try:
                handler.start(
                    call.args, lambda error, result: connection.done(msgid, call, error, result)
                )
            except Exception as error:
                connection.done(msgid, call, error, None)
            return
        if handler.is_async:
            connection.start_pending(call.held)
            task = connection.loop.create_task(handler.func(*call.args))
            task.add_done_callback(lambda t: self._async_done(connection, msgid, call, t))
            return
        timing = self.inline.timings.get(call.name) or self.inline.timing(call.name)
        fast = timing.fast and not handler.on_worker
        if fast or (timing.should_probe() and not handler.on_worker):
            if fast and self.blocked:  # keep the order: behind calls waiting for a lock
                self.defer(connection, msgid, call)
                return
            # Time one inline call in SAMPLE_EVERY: enough to notice a method turning slow.
            sampled = not fast or not timing.runs % SAMPLE_EVERY
            started = time.perf_counter() if sampled else 0.0
            try:
                ran, result = self.dispatcher.try_run_inline(call)
            except Exception as error:
                if sampled:
                    timing.record(time.perf_counter() - started, on_loop=True)
                else:
                    timing.skip()
                connection.fail(msgid, call, error)
                return
            if ran:
                if sampled:
                    timing.record(time.perf_counter() - started, on_loop=True)
                else:
                    timing.skip()
                connection.succeed(msgid, call, result)
                return
            if fast:
                # The lock is held by a worker: wait on the loop, not on another worker.
                self.defer(connection, msgid, call)
                return
        connection.start_pending(call.held)
        future = connection.loop.run_in_executor(self.executor, self._run_timed, connection, call)
        future.add_done_callback(lambda f: self._worker_done(connection, msgid, call, f))

    def defer(self, connection: Connection, msgid: int | None, call: Call) -> None:
        """Queue a fast call whose lock is busy; it runs inline, in order, once free."""
        connection.start_pending(call.held)
        self.blocked.append((connection, msgid, call))
        if self._retry_handle is None:
            self._retry_handle = asyncio.get_running_loop().call_later(
                RETRY_BLOCKED_SECONDS, self.retry_blocked
            )

    def retry_blocked(self) -> None:
        """Run queued calls in order while their locks are free (called after a worker
        finishes, and on a short timer while anything waits: threads outside the pool,
        such as the mixer's, hold the model lock too)."""
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        blocked = self.blocked
        while blocked:
            connection, msgid, call = blocked[0]
            try:
                ran, result = self.dispatcher.try_run_inline(call)
            except Exception as error:
                blocked.popleft()
                connection.end_pending(call.held)
                connection.fail(msgid, call, error)
                continue
            if not ran:
                break
            blocked.popleft()
            connection.end_pending(call.held)
            connection.succeed(msgid, call, result)
        if blocked:
            self._retry_handle = asyncio.get_running_loop().call_later(
                RETRY_BLOCKED_SECONDS, self.retry_blocked
            )

    def _run_timed(self, connection: Connection, call: Call) -> tuple[float, Any]:
        """On a worker thread: run ``call``, and report its time to the loop."""
        try:
            return self.dispatcher.run_blocking(call)
        finally:
            timing = self.inline.timing(call.name)
            connection.loop.call_soon_threadsafe(timing.record, call.ran_seconds)

    def _worker_done(
        self,
        connection: Connection,
        msgid: int | None,
        call: Call,
        future: asyncio.Future[Any],
    ) -> None:
        connection.end_pending(call.held)
        if self.blocked:
            self.retry_blocked()
        if future.cancelled():
            connection.reply(msgid, "cancelled: the server is shutting down", None)
            return
        error = future.exception()
        if error is not None:
            connection.fail(msgid, call, error)
        else:
            connection.succeed(msgid, call, future.result()[1])

    def _async_done(
        self, connection: Connection, msgid: int | None, call: Call, task: asyncio.Task[Any]
    ) -> None:
        connection.end_pending(call.held)
        if task.cancelled():
            connection.reply(msgid, "cancelled: the server is shutting down", None)
            return
        error = task.exception()
        if error is not None:
            connection.fail(msgid, call, error)
        else:
            connection.succeed(msgid, call, task.result())
