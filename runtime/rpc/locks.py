"""The model's read/write lock and the lock mode each method takes.

``#@analysis`` methods share the lock, ``#@update`` methods take it alone, ``#@nolock``
methods take nothing. :class:`RWLock` prefers writers: once a writer waits, new readers
wait behind it, so a stream of reads cannot starve an update. The non-blocking
``try_acquire_*`` forms let the event loop run a call inline only when it need not wait;
the loop thread must never block on this lock.

The loop's own reads (the RPC server's inline path, one per read of a socket) take a
cheaper way, without the mutex: one thread, the loop's, claims a read count of its own
(:meth:`RWLock.claim_loop_reads`). It publishes its read, then looks for writers; a writer
publishes itself (``_writer`` or ``waiting_writers``), then looks at that count. Under the
GIL one of the two sees the other, so they never both go on (Dekker's protocol); the loop
backs off and its call takes the general path. A writer that must wait counts itself in
``_sleepers`` before it looks, and the loop wakes sleepers after it lets go.
"""

from __future__ import annotations

import enum
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Whether this Python has a GIL (free-threaded builds may not): loop reads rely on it.
_GIL: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


class LockMode(enum.Enum):
    ANALYSIS = "analysis"  #: shared (read) lock
    UPDATE = "update"  #: exclusive (write) lock; counts as a model update
    NOLOCK = "nolock"  #: no lock


class RWLock:
    """A writer-preferring read/write lock for threads."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        #: Writers blocked in acquire_write (read without the mutex: a hint for holders).
        self.waiting_writers = 0
        self._sleepers = 0  # threads (about to be) blocked in wait(): only then notify
        #: Reads held by the thread that claimed them (written by that thread only).
        self._loop_reads = 0
        self._loop_owner: int | None = None

    def _sleep(self) -> None:
        """Wait for a notify; the caller holds the condition."""
        self._sleepers += 1
        try:
            self._cond.wait()
        finally:
            self._sleepers -= 1

    def try_acquire_read(self) -> bool:
        with self._mutex:
            if self._writer or self.waiting_writers:
                return False
            self._readers += 1
            return True

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer or self.waiting_writers:
                self._sleep()
            self._readers += 1

    def release_read(self) -> None:
        with self._mutex:
            if self._readers <= 0:
                raise RuntimeError("release_read without a reader")
            self._readers -= 1
            if self._readers == 0 and self._sleepers:
                self._cond.notify_all()

    def claim_loop_reads(self) -> bool:
        """Make the calling thread the one allowed :meth:`try_acquire_loop_read`; True if it
        is (now or already), False if another thread is or this Python runs without a GIL
        (the protocol relies on it): use :meth:`try_acquire_read` then."""
        with self._mutex:
            if self._loop_owner is None and _GIL:
                self._loop_owner = threading.get_ident()
            return self._loop_owner == threading.get_ident()

    def try_acquire_loop_read(self) -> bool:
        """:meth:`try_acquire_read` for the thread that claimed loop reads, without the
        mutex. Release with :meth:`release_loop_read`."""
        self._loop_reads += 1  # publish first ...
        # ... then look (writers do the reverse). waiting_writers first: acquire_write sets
        # _writer before it lowers waiting_writers, so one of the two is always seen.
        if self.waiting_writers or self._writer:
            self._loop_reads -= 1
            if self._sleepers:  # a writer may have seen the read and gone to sleep
                self._wake()
            return False
        return True

    def release_loop_read(self) -> None:
        self._loop_reads -= 1
        if self._sleepers and not self._loop_reads:
            self._wake()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def try_acquire_write(self) -> bool:
        with self._mutex:
            if self._writer or self._readers:
                return False
            self._writer = True  # publish first ...
            if self._loop_reads:  # ... then look for the loop's reads
                self._writer = False
                return False
            return True

    def acquire_write(self) -> None:
        with self._cond:
            self.waiting_writers += 1  # publish first (new reads back off) ...
            self._sleepers += 1  # ... count as a sleeper before looking at loop reads ...
            try:
                while self._writer or self._readers or self._loop_reads:  # ... then look
                    self._cond.wait()
                self._writer = True  # before waiting_writers drops: no read slips in between
            finally:
                self._sleepers -= 1
                self.waiting_writers -= 1

    def release_write(self) -> None:
        with self._mutex:
            if not self._writer:
                raise RuntimeError("release_write without the writer")
            self._writer = False
            if self._sleepers:
                self._cond.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def write(self) -> Iterator[None]:
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()
