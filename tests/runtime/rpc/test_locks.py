"""The model lock's loop reads (no mutex) against writers on other threads: never a read
and a write at once, no writer left asleep, and only the claiming thread gets them."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from runtime.rpc.locks import RWLock


class Watch:
    """Counts who is inside; any overlap of a write with anything else is recorded."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.readers = 0
        self.writers = 0
        self.overlaps = 0

    def enter(self, writing: bool) -> None:
        with self.mutex:
            if self.writers or (writing and self.readers):
                self.overlaps += 1
            if writing:
                self.writers += 1
            else:
                self.readers += 1

    def leave(self, writing: bool) -> None:
        with self.mutex:
            if writing:
                self.writers -= 1
            else:
                self.readers -= 1


@pytest.mark.skipif(
    not getattr(sys, "_is_gil_enabled", lambda: True)(), reason="loop reads need the GIL"
)
def test_loop_reads_and_writers_never_overlap_and_writers_always_wake() -> None:
    lock = RWLock()
    assert lock.claim_loop_reads()
    watch = Watch()
    stop = threading.Event()
    writes = [0, 0, 0]
    mutex_reads = [0]

    def writer(index: int) -> None:
        while not stop.is_set():
            if index == 2:  # one writer only tries, as the loop's inline updates do
                if not lock.try_acquire_write():
                    continue
            else:
                lock.acquire_write()
            watch.enter(True)
            time.sleep(0)  # let the other threads run while the write is held
            watch.leave(True)
            lock.release_write()
            writes[index] += 1
            time.sleep(0.0002)  # writers are preferred: leave the readers some time

    def reader() -> None:  # a worker thread's reads, through the mutex
        while not stop.is_set():
            lock.acquire_read()
            watch.enter(False)
            watch.leave(False)
            lock.release_read()
            mutex_reads[0] += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=reader))
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads between almost any two bytecodes
    try:
        for thread in threads:
            thread.start()
        loop_reads = backed_off = 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            if lock.try_acquire_loop_read():
                watch.enter(False)
                if loop_reads % 3 == 0 and lock.try_acquire_loop_read():  # nested, as allowed
                    lock.release_loop_read()
                watch.leave(False)
                lock.release_loop_read()
                loop_reads += 1
            else:
                backed_off += 1
        stop.set()
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive(), "a writer or reader never woke up"
    finally:
        sys.setswitchinterval(old_interval)
        stop.set()
    assert watch.overlaps == 0
    assert loop_reads > 100 and backed_off > 0, (loop_reads, backed_off)
    assert writes[0] > 10 and writes[1] > 10 and mutex_reads[0] > 10, (writes, mutex_reads)
    assert lock._loop_reads == 0 and not lock._writer and lock.waiting_writers == 0


def test_only_the_claiming_thread_gets_loop_reads() -> None:
    lock = RWLock()
    claimed: list[bool] = []
    other = threading.Thread(target=lambda: claimed.append(lock.claim_loop_reads()))
    other.start()
    other.join()
    assert claimed == [getattr(sys, "_is_gil_enabled", lambda: True)()]
    if claimed[0]:
        assert not lock.claim_loop_reads(), "another thread has claimed them"
    second = RWLock()
    assert second.claim_loop_reads() and second.claim_loop_reads(), "claiming again is fine"


def test_a_loop_read_blocks_a_writer_until_it_is_released() -> None:
    lock = RWLock()
    assert lock.claim_loop_reads()
    assert lock.try_acquire_loop_read()
    assert not lock.try_acquire_write()
    got = threading.Event()

    def write() -> None:
        lock.acquire_write()
        got.set()
        lock.release_write()

    writer = threading.Thread(target=write)
    writer.start()
    assert not got.wait(0.2), "the writer went in while the loop read was held"
    assert lock.waiting_writers == 1
    assert not lock.try_acquire_loop_read(), "a waiting writer turns new loop reads away"
    lock.release_loop_read()
    assert got.wait(5), "the writer was not woken when the loop read ended"
    writer.join(5)
    assert lock.try_acquire_loop_read()
    lock.release_loop_read()
