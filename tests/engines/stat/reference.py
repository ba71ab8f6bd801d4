"""(Kept as the oracle of the stat engine before it moved onto a snapshot model: the
equivalence tests compare the engine with it.)

The stat engine's model: statistics over a sliding window of values, as Jubatus's stat.

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

Thread-safety is the caller's. Nothing here does I/O.
"""

from __future__ import annotations

import math
from collections import deque

from runtime.errors import ConfigError, ModelFileError
from runtime.mix.mixable import DiffError, read_fields, read_float, read_int, read_list, read_text

#: The largest window Jubatus accepts (its config field is a 32-bit int).
MAX_WINDOW_SIZE = 2**31 - 1


class StatError(KeyError):
    """A key with no values in the window."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "stat error"


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
        self._window: deque[tuple[str, float]] = deque()
        self._values: dict[str, deque[float]] = {}
        self._mixed_n_log_n = 0.0
        self._mixed_count = 0
        self._version = 0

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
        self._window.append((key, number))
        self._values.setdefault(key, deque()).append(number)
        while len(self._window) > self.window_size:
            old_key, _ = self._window.popleft()
            values = self._values[old_key]
            values.popleft()
            if not values:
                del self._values[old_key]
        return True

    def _of(self, what: str, key: str) -> deque[float]:
        values = self._values.get(key)
        if not values:
            raise StatError(f"{what}: key {key} not found")
        return values

    def sum(self, key: str) -> float:
        return math.fsum(self._of("sum", key))

    def max(self, key: str) -> float:
        return max(self._of("max", key))

    def min(self, key: str) -> float:
        return min(self._of("min", key))

    def moment(self, key: str, degree: int, center: float) -> float:
        """Σ(x - center)^degree / n over ``key``'s values (see the module docstring)."""
        if isinstance(degree, bool) or not isinstance(degree, int):
            raise ValueError("moment: the degree must be an integer")
        if degree < 0:
            return -1.0
        return self._moment(self._of("moment", key), degree, float(center))

    @staticmethod
    def _moment(values: deque[float], degree: int, center: float) -> float:
        if degree == 0:
            return 1.0
        return math.fsum(_power(x - center, degree) for x in values) / len(values)

    def stddev(self, key: str) -> float:
        values = self._of("stddev", key)
        mean = math.fsum(values) / len(values)
        return math.sqrt(self._moment(values, 2, mean))

    def entropy(self, key: str = "") -> float:
        """Entropy of the keys' shares of the window (``key`` is ignored, as in Jubatus)."""
        if self._mixed_count:
            n = float(self._mixed_count)
            return math.log(n) - self._mixed_n_log_n / n
        total = len(self._window)
        result = 0.0
        for values in self._values.values():
            p = len(values) / total
            result += p * math.log(p)
        return -result if result else 0.0

    def clear(self) -> bool:
        self._window = deque()
        self._values = {}
        self._mixed_n_log_n = 0.0
        self._mixed_count = 0
        return True

    # -- save and load ---------------------------------------------------------------------

    def pack(self) -> object:
        """The window (oldest first), the mixed totals and the version, as plain data."""
        return {
            "window_size": self.window_size,
            "window": [[key, value] for key, value in self._window],
            "mixed": {"n_log_n": self._mixed_n_log_n, "count": self._mixed_count},
            "version": self._version,
        }

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
        window = deque(entries[-self.window_size :])
        values: dict[str, deque[float]] = {}
        for key, value in window:
            values.setdefault(key, deque()).append(value)
        self._window, self._values = window, values
        self._mixed_n_log_n, self._mixed_count = n_log_n, count
        self._version = version

    # -- Mixable ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def get_diff(self) -> object:
        """This server's ``E = Σ n log n`` and ``N = Σ n`` over its keys."""
        n_log_n = math.fsum(len(v) * math.log(len(v)) for v in self._values.values())
        return {"version": self._version, "n_log_n": n_log_n, "count": len(self._window)}

    def mix(self, lhs: object, rhs: object) -> object:
        """Totals add up (whatever the versions: a diff is a total, not a change)."""
        left_version, left_e, left_n = _read_diff(lhs, "lhs")
        right_version, right_e, right_n = _read_diff(rhs, "rhs")
        return {
            "version": max(left_version, right_version),
            "n_log_n": left_e + right_e,
            "count": left_n + right_n,
        }

    def put_diff(self, mixed: object) -> bool:
        """Keep the cluster-wide totals for ``entropy``; never refused."""
        _, n_log_n, count = _read_diff(mixed, "diff")
        self._mixed_n_log_n, self._mixed_count = n_log_n, count
        self._version += 1
        return True

    def get_model(self) -> object:
        """The mixed totals and version (values stay with the server their key routes to)."""
        return {
            "version": self._version,
            "n_log_n": self._mixed_n_log_n,
            "count": self._mixed_count,
        }

    def set_model(self, model: object) -> None:
        version, n_log_n, count = _read_diff(model, "model")
        self._mixed_n_log_n, self._mixed_count = n_log_n, count
        self._version = version


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
