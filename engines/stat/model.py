"""Statistics over a sliding window of values per key, with Jubatus's stat definitions.

``push(key, value)`` appends to the window of ``key``; once it holds ``window_size``
values the oldest one drops out. Jubatus keeps one window for all keys together; Jubako
keeps one per key (as the service is specified here), so the two give the same numbers
whenever no key's values were evicted by another key's.

Definitions (n values x of a key): ``sum`` = Σx; ``moment(k, c)`` = Σ(x-c)^k / n, with
``moment(0, c)`` = 1 and a negative degree giving -1; ``stddev`` = √moment(2, mean) (the
population deviation); ``max``/``min`` over the window; ``entropy`` = -Σ p log p over the
keys, p = (values of the key) / (values of all keys), natural log. An unknown key is a
:class:`StatError` ("sum: key K not found"). Thread-safety is the caller's.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any


class StatError(KeyError):
    """A key with no values, or a bad argument."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "stat error"


class StatModel:
    """Per-key sliding windows and their statistics."""

    def __init__(self, config: Any) -> None:
        if not isinstance(config, dict):
            raise ValueError("stat config must be a JSON object with window_size")
        size = config.get("window_size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"window_size: must be an integer >= 1, not {size!r}")
        unknown = sorted(set(config) - {"window_size"})
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        self.window_size = size
        self._windows: dict[str, deque[float]] = {}

    def push(self, key: str, value: float) -> bool:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = deque(maxlen=self.window_size)
        window.append(float(value))
        return True

    def _values(self, what: str, key: str) -> deque[float]:
        window = self._windows.get(key)
        if not window:
            raise StatError(f"{what}: key {key} not found")
        return window

    def sum(self, key: str) -> float:
        return math.fsum(self._values("sum", key))

    def max(self, key: str) -> float:
        return max(self._values("max", key))

    def min(self, key: str) -> float:
        return min(self._values("min", key))

    def moment(self, key: str, degree: int, center: float) -> float:
        if degree < 0:
            return -1.0
        values = self._values("moment", key)
        if degree == 0:
            return 1.0
        return math.fsum((x - center) ** degree for x in values) / len(values)

    def stddev(self, key: str) -> float:
        values = self._values("stddev", key)
        mean = math.fsum(values) / len(values)
        return math.sqrt(max(self.moment(key, 2, mean), 0.0))

    def entropy(self, key: str) -> float:
        """Entropy of the value counts over all keys (``key`` only routes the call)."""
        counts = [len(w) for w in self._windows.values() if w]
        total = sum(counts)
        if total == 0:
            raise StatError(f"entropy: key {key} not found")
        return -math.fsum((c / total) * math.log(c / total) for c in counts)

    def clear(self) -> bool:
        self._windows = {}
        return True

    def pack(self) -> object:
        return {
            "window_size": self.window_size,
            "windows": {k: list(w) for k, w in self._windows.items()},
        }

    def unpack(self, payload: object) -> None:
        """Replace the windows; a payload that does not fit leaves the model as it was."""
        if not isinstance(payload, dict):
            raise ValueError("stat model must be a map")
        fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in payload.items()}
        windows: dict[str, deque[float]] = {}
        raw = fields.get("windows")
        if not isinstance(raw, dict):
            raise ValueError("stat model has no windows")
        for key, values in raw.items():
            name = key.decode() if isinstance(key, bytes) else key
            if not isinstance(name, str) or not isinstance(values, list):
                raise ValueError("stat model windows must map strings to lists")
            numbers = [
                float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)
            ]
            if len(numbers) != len(values):
                raise ValueError(f"stat model window {name!r} holds a value that is not a number")
            windows[name] = deque(numbers[-self.window_size :], maxlen=self.window_size)
        self._windows = windows
