"""Per-row versions for mixing row stores, and the version rule every engine's mix uses.

A row store that mixes keeps, for each row, the version of its last change: a clock
(this store's counter, advanced past every clock it has seen) and the owner (the process
that made the change). A row from a peer replaces the local one unless the local one is
newer (compared as ``(clock, owner)``), so every server ends with the same row whatever
order the diffs came in. What changed since the last diff is remembered with the clock of
the change, so a change made while a mix round runs stays in the next diff.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.mix.mixable import DiffError, read_counter, read_map

Version = tuple[int, str]


class ChangeLog:
    """Versions of rows and which rows changed since the last diff."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.clock = 0
        self.versions: dict[str, Version] = {}
        self.changed: dict[str, int] = {}
        self._sent: dict[str, int] = {}

    def touch(self, key: str) -> Version:
        version = (self.clock, self.owner)
        self.versions[key] = version
        self.changed[key] = self.clock
        self.clock += 1
        return version

    def newer_here(self, key: str, version: Version) -> bool:
        """Whether the local version of ``key`` is newer than ``version``."""
        local = self.versions.get(key)
        return local is not None and local > version

    def accept(self, key: str, version: Version) -> None:
        """``key`` now holds a peer's row of ``version``."""
        self.versions[key] = version
        self.clock = max(self.clock, version[0] + 1)

    def forget(self, key: str) -> None:
        self.versions.pop(key, None)
        self.changed.pop(key, None)

    def take(self) -> list[str]:
        """The keys changed since the last diff (remembered as sent)."""
        self._sent = dict(self.changed)
        return list(self.changed)

    def after_mix(self) -> None:
        for key, clock in self._sent.items():
            if self.changed.get(key) == clock:
                del self.changed[key]
        self._sent = {}

    def clear(self) -> None:
        self.versions = {}
        self.changed = {}
        self._sent = {}


def newer_row(left: list[object], right: list[object]) -> list[object]:
    """Of two ``[clock, owner, data]`` rows, the newer (by clock, then owner)."""
    left_version = (read_counter(left[0], "clock"), str(left[1]))
    right_version = (read_counter(right[0], "clock"), str(right[1]))
    return right if right_version >= left_version else left


def merge_rows(lhs: object, rhs: object, path: str) -> dict[str, object]:
    """Two ``{key: [clock, owner, data]}`` maps merged, the newer row of a key winning."""
    merged: dict[str, object] = dict(read_map(lhs, f"{path}.lhs"))
    for key, row in read_map(rhs, f"{path}.rhs").items():
        mine = merged.get(key)
        if mine is None:
            merged[key] = row
        elif isinstance(mine, list) and isinstance(row, list) and len(mine) == len(row) == 3:
            merged[key] = newer_row(mine, row)
        else:
            raise DiffError(f"{path}[{key!r}]: expected [clock, owner, data]")
    return merged


def mix_versioned(
    lhs: object,
    rhs: object,
    combine: Callable[[dict[str, object], dict[str, object]], dict[str, object]],
) -> dict[str, object]:
    """Jubatus's rule for two diffs: the same base version combines (``combine``), else
    the one based on the newer version wins whole."""
    left = read_map(lhs, "lhs")
    right = read_map(rhs, "rhs")
    left_version = read_counter(left.get("version"), "lhs.version")
    right_version = read_counter(right.get("version"), "rhs.version")
    if left_version != right_version:
        return left if left_version > right_version else right
    combined = combine(left, right)
    combined["version"] = left_version
    return combined
