"""The stat engine's model: statistics over a sliding window of values, as Jubatus's stat.

**The window is global, as in Jubatus.** Jubatus's ``stat::push`` appends ``(key, value)``
to one deque shared by every key and, once it holds more than ``window_size`` entries,
drops the oldest entry whatever its key; a key whose last value drops out is forgotten
(Jubatus's own test pushes three values of ``test`` into a window of 3, then three other
keys, and expects ``test`` gone and the entropy of three equal keys). So ``window_size``
bounds the values of all keys together, and one busy key can push another's values out.

Definitions, for the ``n`` values ``x`` of a key still in the window (Jubatus's; Jubatus
keeps running sums, Jubako sums the window exactly with ``math.fsum``, so results are the
same up to Jubatus's own rounding):

- ``sum`` = Σx; ``max``/``min`` over the values;
- ``moment(k, c)`` = Σ(x - c)^k / n; ``-1`` for a negative ``k`` (before the key is
  looked up), ``1`` for ``k = 0``;
- ``stddev`` = √moment(2, mean): the population deviation;
- ``entropy`` = -Σ p log p over the keys in the window, p = (values of the key) / (values
  in the window), natural log; 0 for an empty window. The key argument of the service's
  ``entropy`` call is ignored, as in Jubatus. After a mix, ``entropy`` answers from the
  cluster-wide totals of the last mix: ``log N - E/N`` with ``N = Σ n_k`` and
  ``E = Σ n_k log n_k`` over every server's keys (Jubatus's rule, which keeps answering
  from those totals until the next mix).

A key with no values raises :class:`StatError` (a ``KeyError``) with Jubatus's message,
e.g. ``sum: key K not found``.

Mixing (Jubatus mixes stat too): a diff is this server's ``(E, N)`` and its version; ``mix``
adds them; ``put_diff`` stores the totals, never refuses (a diff is a current total, not a
change, so it cannot be obsolete; Jubatus's stat has a constant version) and increments the
version. ``get_model`` carries only those totals: values stay on the server their key is
routed to. Two deliberate differences from Jubatus: ``clear`` also forgets the mixed
totals (Jubatus keeps answering ``entropy`` from them), and NaN values are refused.

**How it is held.** Every value pushed gets the next sequence number; the window at any
moment is the last ``window_size`` numbers (those since the last ``clear``). Per key, an
append-only log keeps the sequence numbers and values of its pushes, and the sequence
numbers at which the key came (back) into the window. So a *snapshot* of the model is a
handful of numbers (how many were pushed, where the window starts, the mixed totals, the
version) and the logs as they are: values pushed later have later numbers, and a reader
of the snapshot ignores them. :meth:`StatModel.snapshot` is O(1); the writer
(:meth:`StatModel.push`, one thread) only ever appends to a log or replaces the whole
dict of logs (``clear``, ``load``, and a compaction that drops what left the window once
the logs hold more than twice the window: logs a snapshot still reads are never changed).
:class:`StatSnapshot` answers ``sum``, ``stddev``, ``max``, ``min``, ``entropy``,
``moment``, ``pack`` and the mix's reads from any thread, with no lock; the model itself
answers them too, for one thread.

The answers are the same to the bit as the engine's before it held its model this way
(``tests/engines/stat/reference.py``): the same values, summed in the same order, and
``entropy`` over the keys in the order the window learned them (a key comes last again
when it comes back after all its values had left). Nothing here does I/O.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable

from runtime.errors import ConfigError, ModelFileError
from runtime.mix.mixable import DiffError, read_fields, read_float, read_int, read_list, read_text

#: The largest window Jubatus accepts (its config field is a 32-bit int).
MAX_WINDOW_SIZE = 2**31 - 1
#: Logs are compacted when they hold more than this many times the window (and this many
#: entries at least).
COMPACT_FACTOR = 2
COMPACT_MINIMUM = 1024


class StatError(KeyError):
    """A key with no values in the window."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "stat error"


class KeyLog:
    """One key's pushes: sequence numbers and values, and the numbers at which the key came
    (back) into the window. Only appended to."""

    __slots__ = ("runs", "seqs", "values")

    def __init__(self) -> None:
        self.seqs: array[int] = array("q")
        self.values: array[float] = array("d")
        self.runs: array[int] = array("q")


class _View:
    """The window as of ``pushed`` values: what a snapshot reads (see the module doc)."""

    __slots__ = ("count", "logs", "low", "mixed_count", "mixed_n_log_n", "pushed", "version")

    def __init__(
        self,
        logs: dict[str, KeyLog],
        pushed: int,
        low: int,
        mixed_n_log_n: float,
        mixed_count: int,
        version: int,
    ) -> None:
        self.logs = logs
        self.pushed = pushed
        #: The first sequence number in the window.
        self.low = low
        self.count = pushed - low
        self.mixed_n_log_n = mixed_n_log_n
        self.mixed_count = mixed_count
        self.version = version

    def values(self, key: str) -> array[float] | None:
        """The key's values in the window, oldest first; None when it has none."""
        log = self.logs.get(key)
        if log is None:
            return None
        seqs = log.seqs
        start = bisect_left(seqs, self.low)
        end = bisect_left(seqs, self.pushed, start)
        if start == end:
            return None
        return log.values[start:end]

    def of(self, what: str, key: str) -> array[float]:
        values = self.values(key)
        if values is None:
            raise StatError(f"{what}: key {key} not found")
        return values

    def counts(self) -> list[int]:
        """The number of values of each key in the window, keys in the order the window
        learned them (a key that came back is last again)."""
        found: list[tuple[int, int]] = []
        low, pushed = self.low, self.pushed
        for log in list(self.logs.values()):  # in one step: the writer may add keys
            seqs = log.seqs
            start = bisect_left(seqs, low)
            end = bisect_left(seqs, pushed, start)
            if start == end:
                continue
            runs = log.runs
            came = runs[bisect_left(runs, seqs[end - 1] + 1) - 1]  # the run of its last value
            found.append((came, end - start))
        found.sort()
        return [n for _, n in found]

    def entries(self) -> list[tuple[str, float]]:
        """The window, oldest first."""
        numbered: list[tuple[int, str, float]] = []
        for key, log in list(self.logs.items()):  # in one step: the writer may add keys
            seqs = log.seqs
            start = bisect_left(seqs, self.low)
            end = bisect_left(seqs, self.pushed, start)
            numbered.extend(
                zip(seqs[start:end], [key] * (end - start), log.values[start:end], strict=True)
            )
        numbered.sort()
        return [(key, value) for _, key, value in numbered]

    # -- the statistics -------------------------------------------------------------------

    def sum(self, key: str) -> float:
        return exact_sum(self.of("sum", key))

    def max(self, key: str) -> float:
        return max(self.of("max", key))

    def min(self, key: str) -> float:
        return min(self.of("min", key))

    def moment(self, key: str, degree: int, center: float) -> float:
        if isinstance(degree, bool) or not isinstance(degree, int):
            raise ValueError("moment: the degree must be an integer")
        if degree < 0:
            return -1.0
        return _moment(self.of("moment", key), degree, float(center))

    def stddev(self, key: str) -> float:
        values = self.of("stddev", key)
        mean = exact_sum(values) / len(values)
        return math.sqrt(_moment(values, 2, mean))

    def entropy(self) -> float:
        if self.mixed_count:
            n = float(self.mixed_count)
            return math.log(n) - self.mixed_n_log_n / n
        total = self.count
        result = 0.0
        for n in self.counts():
            p = n / total
            result += p * math.log(p)
        return -result if result else 0.0

    def get_diff(self) -> dict[str, object]:
        n_log_n = exact_sum(n * math.log(n) for n in self.counts())
        return {"version": self.version, "n_log_n": n_log_n, "count": self.count}

    def get_model(self) -> dict[str, object]:
        return {
            "version": self.version,
            "n_log_n": self.mixed_n_log_n,
            "count": self.mixed_count,
        }


def _moment(values: Iterable[float], degree: int, center: float) -> float:
    if degree == 0:
        return 1.0
    items = list(values)
    return exact_sum(_power(x - center, degree) for x in items) / len(items)


def exact_sum(values: Iterable[float]) -> float:
    """The correctly rounded sum (``math.fsum``); where that has no finite answer (a partial
    sum past the largest double, or inf and -inf both), the running sum's inf or NaN, as
    Jubatus's running sums give, instead of fsum's error."""
    items = values if isinstance(values, list) else list(values)
    try:
        return math.fsum(items)
    except (OverflowError, ValueError):
        total = 0.0
        for x in items:
            total += x
        return total


class StatModel:
    """One sliding window shared by all keys, and the statistics of each key in it."""

    def __init__(self, config: object) -> None:
        if not isinstance(config, dict):
            raise ConfigError("stat config must be a JSON object with window_size")
        for key in config:
            if key != "window_size":
                raise ConfigError.unknown_key(str(key), ["window_size"])
        size = config.get("window_size")
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_WINDOW_SIZE:
            raise ConfigError(
                f"window_size: must be an integer from 1 to {MAX_WINDOW_SIZE}, not {size!r}"
            )
        self.window_size = size
        self._logs: dict[str, KeyLog] = {}
        #: Values pushed so far, and the sequence number the window starts at after clear.
        self._pushed = 0
        self._since = 0
        #: Entries the logs hold (compaction keeps this under COMPACT_FACTOR windows).
        self._stored = 0
        self._mixed_n_log_n = 0.0
        self._mixed_count = 0
        self._version = 0

    def _low(self) -> int:
        return max(self._since, self._pushed - self.window_size)

    def _view(self) -> _View:
        return _View(
            self._logs,
            self._pushed,
            self._low(),
            self._mixed_n_log_n,
            self._mixed_count,
            self._version,
        )

    def snapshot(self) -> StatSnapshot:
        """The model as it is now, for readers on any thread (see the module docstring)."""
        return StatSnapshot(self._view(), self.window_size)

    # -- the service's calls ---------------------------------------------------------------

    def push(self, key: str, value: float) -> bool:
        """Add ``value`` under ``key``; the oldest entry of the window drops out when full."""
        if not isinstance(key, str):
            raise ValueError("push: the key must be a string")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("push: the value must be a number")
        number = float(value)
        if math.isnan(number):
            raise ValueError("push: the value must be a number, not NaN")
        seq = self._pushed
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = KeyLog()
        seqs = log.seqs
        # The key comes (back) into the window unless its last value is in it as this one
        # comes (the window takes the new value, then drops its oldest).
        if not seqs or seqs[-1] < max(self._since, seq - self.window_size):
            log.runs.append(seq)
        seqs.append(seq)
        log.values.append(number)
        self._pushed = seq + 1
        self._stored += 1
        if self._stored > max(COMPACT_FACTOR * self.window_size, COMPACT_MINIMUM):
            self._compact()
        return True

    def _compact(self) -> None:
        """New logs holding only what is in the window (the old ones stay as they were)."""
        low = self._low()
        logs: dict[str, KeyLog] = {}
        stored = 0
        for key, old in self._logs.items():
            seqs = old.seqs
            start = bisect_left(seqs, low)
            if start == len(seqs):
                continue
            log = KeyLog()
            log.seqs = seqs[start:]
            log.values = old.values[start:]
            runs = old.runs
            log.runs = runs[bisect_left(runs, seqs[-1] + 1) - 1 :]
            logs[key] = log
            stored += len(log.seqs)
        self._logs = logs
        self._stored = stored

    def sum(self, key: str) -> float:
        return self._view().sum(key)

    def max(self, key: str) -> float:
        return self._view().max(key)

    def min(self, key: str) -> float:
        return self._view().min(key)

    def moment(self, key: str, degree: int, center: float) -> float:
        """Σ(x - center)^degree / n over ``key``'s values (see the module docstring)."""
        return self._view().moment(key, degree, center)

    def stddev(self, key: str) -> float:
        return self._view().stddev(key)

    def entropy(self, key: str = "") -> float:
        """Entropy of the keys' shares of the window (``key`` is ignored, as in Jubatus)."""
        return self._view().entropy()

    def clear(self) -> bool:
        self._logs = {}
        self._since = self._pushed
        self._stored = 0
        self._mixed_n_log_n = 0.0
        self._mixed_count = 0
        return True

    # -- save and load ---------------------------------------------------------------------

    def pack(self) -> object:
        """The window (oldest first), the mixed totals and the version, as plain data."""
        return pack_view(self._view(), self.window_size)

    def unpack(self, payload: object) -> None:
        """Replace the model with :meth:`pack`'s output; ``ModelFileError`` leaves it intact.

        A window saved with a larger ``window_size`` keeps its newest entries.
        """
        try:
            fields = read_fields(
                payload, "stat model", ("window_size", "window", "mixed", "version")
            )
            read_int(fields["window_size"], "stat model.window_size", minimum=1)
            entries: list[tuple[str, float]] = []
            for i, entry in enumerate(read_list(fields["window"], "stat model.window")):
                pair = read_list(entry, f"stat model.window[{i}]")
                if len(pair) != 2:
                    raise DiffError(f"stat model.window[{i}]: expected [key, value]")
                entries.append(
                    (
                        read_text(pair[0], f"stat model.window[{i}][0]"),
                        _read_value(pair[1], f"stat model.window[{i}][1]"),
                    )
                )
            n_log_n, count = _read_totals(fields["mixed"], "stat model.mixed")
            version = read_int(fields["version"], "stat model.version")
        except DiffError as error:
            raise ModelFileError(f"stat model does not fit: {error}") from None
        logs: dict[str, KeyLog] = {}
        seq = self._pushed
        for key, value in entries[-self.window_size :]:
            log = logs.get(key)
            if log is None:
                log = logs[key] = KeyLog()
                log.runs.append(seq)
            log.seqs.append(seq)
            log.values.append(value)
            seq += 1
        self._since = self._pushed
        self._logs, self._pushed = logs, seq
        self._stored = seq - self._since
        self._mixed_n_log_n, self._mixed_count = n_log_n, count
        self._version = version

    # -- Mixable ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def get_diff(self) -> object:
        """This server's ``E = Σ n log n`` and ``N = Σ n`` over its keys."""
        return self._view().get_diff()

    def mix(self, lhs: object, rhs: object) -> object:
        """Totals add up (whatever the versions: a diff is a total, not a change)."""
        return mix_totals(lhs, rhs)

    def put_diff(self, mixed: object, sent: object = None) -> bool:
        """Keep the cluster-wide totals for ``entropy``; never refused (``sent`` is not
        needed: a diff is a total)."""
        _, n_log_n, count = _read_diff(mixed, "diff")
        self._mixed_n_log_n, self._mixed_count = n_log_n, count
        self._version += 1
        return True

    def get_model(self) -> object:
        """The mixed totals and version (values stay with the server their key routes to)."""
        return self._view().get_model()

    def set_model(self, model: object) -> None:
        version, n_log_n, count = _read_diff(model, "model")
        self._mixed_n_log_n, self._mixed_count = n_log_n, count
        self._version = version


class StatSnapshot:
    """A published, read-only view of a :class:`StatModel` (see the module docstring)."""

    __slots__ = ("_view", "window_size")

    def __init__(self, view: _View, window_size: int) -> None:
        self._view = view
        self.window_size = window_size

    def sum(self, key: str) -> float:
        return self._view.sum(key)

    def max(self, key: str) -> float:
        return self._view.max(key)

    def min(self, key: str) -> float:
        return self._view.min(key)

    def moment(self, key: str, degree: int, center: float) -> float:
        return self._view.moment(key, degree, center)

    def stddev(self, key: str) -> float:
        return self._view.stddev(key)

    def entropy(self, key: str = "") -> float:
        return self._view.entropy()

    def pack(self) -> object:
        return pack_view(self._view, self.window_size)

    @property
    def version(self) -> int:
        return self._view.version

    def get_diff(self) -> object:
        return self._view.get_diff()

    def mix(self, lhs: object, rhs: object) -> object:
        return mix_totals(lhs, rhs)

    def get_model(self) -> object:
        return self._view.get_model()


def pack_view(view: _View, window_size: int) -> dict[str, object]:
    return {
        "window_size": window_size,
        "window": [[key, value] for key, value in view.entries()],
        "mixed": {"n_log_n": view.mixed_n_log_n, "count": view.mixed_count},
        "version": view.version,
    }


def mix_totals(lhs: object, rhs: object) -> object:
    left_version, left_e, left_n = _read_diff(lhs, "lhs")
    right_version, right_e, right_n = _read_diff(rhs, "rhs")
    return {
        "version": max(left_version, right_version),
        "n_log_n": left_e + right_e,
        "count": left_n + right_n,
    }


def _power(base: float, degree: int) -> float:
    """``base ** degree``, infinite (with the right sign) instead of OverflowError."""
    try:
        return base**degree
    except OverflowError:
        negative = base < 0 and degree % 2 == 1
        return -math.inf if negative else math.inf


def _read_value(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DiffError(f"{path}: expected a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number):
        raise DiffError(f"{path}: NaN is not a value")
    return number


def _read_totals(value: object, path: str) -> tuple[float, int]:
    fields = read_fields(value, path, ("n_log_n", "count"))
    return read_float(fields["n_log_n"], f"{path}.n_log_n"), read_int(
        fields["count"], f"{path}.count"
    )


def _read_diff(value: object, path: str) -> tuple[int, float, int]:
    fields = read_fields(value, path, ("version", "n_log_n", "count"))
    return (
        read_int(fields["version"], f"{path}.version"),
        read_float(fields["n_log_n"], f"{path}.n_log_n"),
        read_int(fields["count"], f"{path}.count"),
    )


__all__ = ["MAX_WINDOW_SIZE", "StatError", "StatModel", "StatSnapshot"]
