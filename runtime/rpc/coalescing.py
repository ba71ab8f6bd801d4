"""When the server writes a read's replies: at once, or with the other connections'.

A read pass writes its replies at once by default: the client gets them soonest, and on
another CPU it sends its next request while the server serves the next connection. But
when the clients share the server's CPU, every reply written wakes a client that takes the
CPU from the server (an involuntary context switch) before the server has served the
other connections that are ready: each call then costs a switch and a cold cache.
Written at the end of the loop iteration, with every connection's replies of that
iteration, the replies wake those clients once the server has done its share.

:class:`ReplyTiming` picks between the two from what it sees, a window of
:data:`WINDOW` read passes at a time:

- writing at once, it turns to writing at the end of the iteration when the loop's thread
  was switched out involuntarily at least :data:`PREEMPTED` times per pass;
- writing at the end, it goes back when an iteration's flush writes the replies of fewer
  than :data:`SHARED` connections on average (nothing is gathered: a lone client), and
  waits twice as many windows as the time before (at most :data:`MOST_WAIT`) before it
  tries again; otherwise it writes at once for one window in :data:`RECHECK` to see
  whether it is still switched out.

The cost of a look: one ``getrusage`` call a window. Where a thread's switches cannot be
counted (no ``RUSAGE_THREAD``: not Linux), replies are always written at once.
"""

from __future__ import annotations

from collections.abc import Callable

try:
    import resource
except ImportError:  # pragma: no cover - not on Unix
    resource = None  # type: ignore[assignment]

#: ``getrusage``'s "the calling thread" (Linux), or None where there is none.
_RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)

__all__ = ["MOST_WAIT", "PREEMPTED", "RECHECK", "SHARED", "WINDOW", "ReplyTiming"]

#: Read passes that write replies, between two looks.
WINDOW = 256
#: Involuntary switches per pass (writing at once) from which replies wait for the end of
#: the iteration.
PREEMPTED = 0.25
#: Connections per flush (writing at the end) under which that gathers nothing.
SHARED = 1.5
#: Windows written at the end between two windows written at once.
RECHECK = 16
#: Windows, at most, written at once before the end of the iteration is tried again.
MOST_WAIT = 64


def thread_preemptions() -> int:
    """How many times the calling thread has been switched out involuntarily (0 where
    that is not counted)."""
    if _RUSAGE_THREAD is None:
        return 0
    return resource.getrusage(_RUSAGE_THREAD).ru_nivcsw


class ReplyTiming:
    """Whether read passes leave their replies for the end of the loop iteration
    (:attr:`deferred`); see the module docstring. Used on the loop's thread only."""

    __slots__ = (
        "_at_end", "_flushed", "_flushes", "_mark", "_passes", "_preemptions", "_wait",
        "_waited", "deferred",
    )  # fmt: skip

    def __init__(self, preemptions: Callable[[], int] = thread_preemptions) -> None:
        #: Read passes leave their replies for the end of the loop iteration.
        self.deferred = False
        self._preemptions = preemptions
        self._passes = 0
        self._mark: int | None = None
        self._flushes = 0
        self._flushed = 0
        #: Windows written at end since the last window written at once.
        self._at_end = 0
        #: Windows still to write at once before trying the end again, and the last wait.
        self._wait = 0
        self._waited = 0

    def passed(self) -> None:
        """A read pass wrote (or left) replies."""
        self._passes += 1
        if self._passes >= WINDOW:
            self._look()

    def flushed(self, connections: int) -> None:
        """A flush at the end of an iteration wrote the replies of ``connections``."""
        self._flushes += 1
        self._flushed += connections

    def _look(self) -> None:
        passes, self._passes = self._passes, 0
        count = self._preemptions()
        switched = 0 if self._mark is None else count - self._mark
        self._mark = count
        flushes, flushed = self._flushes, self._flushed
        self._flushes = self._flushed = 0
        if not self.deferred:
            if self._wait:
                self._wait -= 1
            elif switched >= PREEMPTED * passes:
                self.deferred = True
                self._at_end = 0
            return
        if flushed < SHARED * max(flushes, 1):  # a lone client: nothing gathered
            self.deferred = False
            self._waited = self._wait = min(max(1, self._waited * 2), MOST_WAIT)
            return
        self._waited = 0
        self._at_end += 1
        if self._at_end >= RECHECK:  # write at once for a window: still switched out?
            self.deferred = False
