"""The model's read/write lock and the lock mode each method takes.

``#@analysis`` methods share the lock, ``#@update`` methods take it alone, ``#@nolock``
methods take nothing. :class:`RWLock` prefers writers: once a writer waits, new readers
wait behind it, so a stream of reads cannot starve an update. The non-blocking
``try_acquire_*`` forms let the event loop run a call inline only when it need not wait;
the loop thread must never block on this lock.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterator
from contextlib import contextmanager


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
        self._sleepers = 0  # threads blocked in wait(): only then is a notify needed

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

    def try_acquire_write(self) -> bool:
        with self._mutex:
            if self._writer or self._readers:
                return False
            self._writer = True
            return True

    def acquire_write(self) -> None:
        with self._cond:
            self.waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._sleep()
            finally:
                self.waiting_writers -= 1
            self._writer = True

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
