"""The stat model in Jubatus's layout (the user data of a ``jubastat`` model file, user-data
version 1), converted from and to what :meth:`~engines.stat.model.StatModel.pack` gives and
:meth:`~engines.stat.model.StatModel.unpack` takes.

jubatus_core's ``stat::stat`` packs itself as::

    [window_size, window, stats, e, n, jubako]
    window = [[clock_time, [key, value]], ...]          oldest first
    stats  = {key: [count, sum, sum of squares, max, min]}

``e`` and ``n`` are the totals of the last mix (``Σ n_k log n_k`` and ``Σ n_k``; both 0
before any mix). ``stats`` are the running sums Jubatus answers ``sum``, ``stddev``,
``max`` and ``min`` from: Jubako writes them from the window (sums with ``math.fsum``, as
it answers), and on reading recomputes them from the window, so Jubako's answers on a
file from Jubatus may differ from Jubatus's in the last digits where Jubatus's running
sums have drifted. Jubako does not keep when each value was pushed: it writes the time of
the save as every entry's ``clock_time`` (nothing reads it). ``jubako``, a trailing
element Jubatus skips, holds ``{"jubako": 1, "version": mix version}``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from engines.common.jubatus_file import read_count, read_number, read_struct
from engines.stat.model import exact_sum
from runtime.mix.mixable import DiffError, read_int, read_list, read_map, read_text

#: The version of the trailing ``jubako`` element's layout.
EXTRA_VERSION = 1


def to_jubatus(packed: object, now: int | None = None) -> list[object]:
    """``StatModel.pack()``'s value as Jubatus's user data (see the module docstring)."""
    assert isinstance(packed, dict)
    model: Mapping[str, object] = packed
    clock = int(time.time()) if now is None else now
    entries = model["window"]
    mixed = model["mixed"]
    assert isinstance(entries, list) and isinstance(mixed, dict)
    values: dict[str, list[float]] = {}
    window = []
    for key, value in entries:
        values.setdefault(key, []).append(value)
        window.append([clock, [key, value]])
    stats = {
        key: [len(xs), exact_sum(xs), exact_sum([x * x for x in xs]), max(xs), min(xs)]
        for key, xs in values.items()
    }
    return [
        model["window_size"],
        window,
        stats,
        float(mixed["n_log_n"]),
        float(mixed["count"]),
        {"jubako": EXTRA_VERSION, "version": model["version"]},
    ]


def from_jubatus(payload: object) -> dict[str, object]:
    """Jubatus's user data of a stat model as ``StatModel.unpack()`` takes it; raises
    :class:`~runtime.mix.mixable.DiffError`."""
    items = read_list(payload, "model")
    window_size, window, _, e, n = read_struct(items, "model", 5)
    if window_size is None:
        raise DiffError("model: expected [window_size, window, stats, e, n]")
    entries = []
    for i, entry in enumerate(read_list(window or [], "model[1]")):
        _, pair = read_struct(entry, f"model[1][{i}]", 2)
        key, value = read_struct(pair, f"model[1][{i}][1]", 2)
        if value is None:
            raise DiffError(f"model[1][{i}][1]: expected [key, value]")
        entries.append([read_text(key, f"model[1][{i}][1][0]"), value])
    version = 0
    extra = items[5] if len(items) > 5 else None
    if isinstance(extra, dict):
        fields = read_map(extra, "model[5]")
        if fields.get("jubako") == EXTRA_VERSION:
            version = read_int(fields.get("version", 0), "model[5].version")
    return {
        "window_size": window_size,
        "window": entries,
        "mixed": {
            "n_log_n": 0.0 if e is None else read_number(e, "model[3]"),
            "count": 0 if n is None else read_count(n, "model[4]"),
        },
        "version": version,
    }


__all__ = ["from_jubatus", "to_jubatus"]
