"""Two copies of a model and the threads reading them: readers never wait, the writer does.

A model held this way (the *left-right* technique) keeps two copies of its numbers. One is
*published*: readers read it with no lock. The writer changes the other; to publish its
changes it swaps the two, and before it changes the copy readers had, it waits until the
last reader that started on it has finished, then brings it up to date (only the rows that
changed). A reader never waits for anything; the writer waits at most for the longest
read in progress, and every change is made twice (once per copy: a copy of the rows it
touched the second time).

:class:`Readers` is how a reader says which copy it reads: ``enter(copy)`` before, and
``leave()`` after, on the same thread (naming it), never nested. It works under the GIL's ordering:
the reader writes its registration, then looks whether its copy is still published; the
writer marks the copy retired, then looks at the registrations. One of the two sees the
other, so a reader never reads a copy the writer has started to change (when it finds its
copy retired it takes the newest one instead). ``retired`` must be an attribute of the
copy, set True by the writer before it waits (:meth:`Readers.wait_until_free`) and False
when it publishes the copy again.

One exception, the classifier's: a write into the *published* copy itself, made by one C
call that holds the GIL, runs no Python code and first finds no reader registered at all
(``train_known``; see ``ClassifierModel.train_at_once``). A reader then sees the copy
before that write or after it, never during it; reads that do not register must be C calls
of the same kind (``classify_wire``).
"""

from __future__ import annotations

import time
from typing import Protocol, TypeVar


class Copy(Protocol):
    retired: bool


C = TypeVar("C", bound=Copy)

#: How long the writer sleeps between looks at readers still on a copy, seconds.
POLL_SECONDS = 0.00002


class Readers:
    """Which copy each reading thread is on (see the module docstring)."""

    __slots__ = ("current", "slots", "waited")

    def __init__(self, current: Copy) -> None:
        #: Thread id -> the copy it reads.
        self.slots: dict[int, Copy] = {}
        #: The copy published last (a reader whose copy is retired takes this one).
        self.current: Copy = current
        #: Times the writer found a reader on a copy it wanted (a status figure).
        self.waited = 0

    def enter(self, copy: C, me: int) -> C:
        """Register thread ``me`` (``threading.get_ident()``, the caller's) as a reader of
        ``copy`` and return the copy to read: ``copy``, or the newest one when ``copy`` has
        been retired meanwhile."""
        slots = self.slots
        while True:
            slots[me] = copy
            if not copy.retired:
                return copy
            copy = self.current  # type: ignore[assignment]

    def leave(self, me: int) -> None:
        self.slots.pop(me, None)

    def wait_until_free(self, copy: Copy) -> None:
        """Return once no reader is on ``copy`` (which the caller has marked retired)."""
        while True:
            if not self.slots:
                return
            # list() takes the values in one step: no reader moves meanwhile.
            if not any(held is copy for held in list(self.slots.values())):
                return
            self.waited += 1
            time.sleep(POLL_SECONDS)
