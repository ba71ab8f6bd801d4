"""The garbage collector's first threshold in a serving process.

A request is decoded into container objects that stay alive until it is answered: a
``classify`` of 100 datums is about 800 lists. CPython starts a young collection once 700
more container objects are alive than at the last one, so with its defaults such a request
starts about one young collection, every tenth request an older one, and now and then a
full one over the whole heap. None of them finds garbage (the request's objects are
alive), and they cost more than the decoding itself: decoding that request takes 85-130
µs with them, 43 µs without (in process; the more the heap holds, the more), and a
classifier server spends 255 µs of CPU on the whole call with them, 168 µs without. A
serving process raises the first threshold to :data:`YOUNG_THRESHOLD`, so that a request
of up to that many objects starts none.

What this costs: cyclic garbage (rare here: requests and replies are trees) waits until
that many container objects have piled up, about a megabyte, before it is collected.
The collector stays on, and the older thresholds are left as they are. (The HTTP gateway
sets its own, in :mod:`runtime.http.main`.)
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

#: The first threshold a serving process sets (CPython's default is 700).
YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    """Raise the collector's first threshold to :data:`YOUNG_THRESHOLD` (one set higher,
    by the user's own start-up code, is kept; so is a collector turned off)."""
    young, older, oldest = gc.get_threshold()
    if young and young < YOUNG_THRESHOLD:  # (0 turns collection off: left so)
        gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    log.debug("garbage collector thresholds %s", gc.get_threshold())
