"""Jubatus's inverted index (``inverted_index_storage``): rows by feature, and the cosine
and Euclidean scores of a query against every row, computed as Jubatus computes them.

Each row has a number given the first time the row is seen (Jubatus's ``key_manager``;
numbers are not reused until ``clear``). A row's squared norm is kept the way Jubatus keeps
it: setting a value subtracts the square of the old one and adds the square of the new one.

- :meth:`InvertedIndex.cosine`: for every row sharing a feature with the query,
  ``dot / √norm_row / √norm_query`` (exactly 1 when the row equals the query), clamped to
  [-1, 1]; rows with a zero dot product are left out.
- :meth:`InvertedIndex.euclid`: ``-√max(0, |q|² + |r|² - 2 dot)`` for *every* row (or only
  the rows sharing a feature, ``ignore_orthogonal``).

Both keep the ``count`` best by ``(score, row number)`` and list them best first, so equal
scores come with the later row first, as Jubatus's heap gives them. The dot products are
summed in query order, so the scores agree with Jubatus's to the last bit.

Mixing: every row carries a version (:class:`~engines.common.versions.ChangeLog`); a diff
holds the rows changed here (their values, or ``None`` for a removed row), and a peer's
row replaces the local one unless the local one is newer. Thread-safety is the caller's.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence

from engines.common.versions import ChangeLog
from runtime.mix.mixable import (
    DiffError,
    read_float,
    read_int,
    read_list,
    read_map,
    read_text,
)

Features = Sequence[tuple[str, float]]
Scored = list[tuple[str, float]]


class InvertedIndex:
    """Rows by feature, with Jubatus's scores (see the module docstring)."""

    def __init__(self, owner: str) -> None:
        self.ids: dict[str, int] = {}
        self.keys: list[str] = []
        #: feature -> row number -> value
        self.postings: dict[str, dict[int, float]] = {}
        #: row number -> feature -> value
        self.columns: dict[int, dict[str, float]] = {}
        #: row number -> squared norm (as Jubatus accumulates it)
        self.norms: dict[int, float] = {}
        self.log = ChangeLog(owner)

    # -- writing ---------------------------------------------------------------------------

    def _number(self, key: str) -> tuple[int, bool]:
        number = self.ids.get(key)
        if number is None:
            number = len(self.keys)
            self.ids[key] = number
            self.keys.append(key)
            return number, True
        return number, False

    def set_value(self, key: str, feature: str, value: float) -> None:
        number, new = self._number(key)
        column = self.columns.setdefault(number, {})
        norms = self.norms
        if not new:
            current = column.get(feature, 0.0)
            norms[number] = norms.get(number, 0.0) - current * current
        norms[number] = norms.get(number, 0.0) + value * value
        if norms[number] == 0:
            del norms[number]
        column[feature] = value
        self.postings.setdefault(feature, {})[number] = value

    def update_row(self, key: str, features: Features) -> None:
        """Set the listed values of row ``key`` (others it has stay), as ``update_row``."""
        for feature, value in features:
            self.set_value(key, feature, value)
        self.log.touch(key)

    def remove_row(self, key: str) -> bool:
        """Forget row ``key``; whether it existed."""
        number = self.ids.get(key)
        if number is None:
            return False
        column = self.columns.pop(number, None)
        existed = column is not None or number in self.norms
        if column is not None:
            for feature in column:
                posting = self.postings.get(feature)
                if posting is not None:
                    posting.pop(number, None)
                    if not posting:
                        del self.postings[feature]
        self.norms.pop(number, None)
        self.log.touch(key)
        return existed

    def clear(self) -> None:
        self.ids = {}
        self.keys = []
        self.postings = {}
        self.columns = {}
        self.norms = {}
        self.log.clear()

    # -- reading ---------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        number = self.ids.get(key)
        return number is not None and number in self.columns

    def row(self, key: str) -> dict[str, float]:
        number = self.ids.get(key)
        if number is None:
            return {}
        return dict(self.columns.get(number, {}))

    def all_ids(self) -> list[str]:
        """Rows with a positive norm, by row number (Jubatus's order is its hash table's)."""
        return [self.keys[n] for n in sorted(self.norms) if self.norms[n] > 0.0]

    def size(self) -> int:
        return len(self.columns)

    def _dots(self, query: Features) -> dict[int, float]:
        scores: dict[int, float] = {}
        postings = self.postings
        for feature, value in query:
            posting = postings.get(feature)
            if posting is None:
                continue
            for number, stored in posting.items():
                scores[number] = scores.get(number, 0.0) + stored * value
        return scores

    def cosine(self, query: Features, count: int) -> Scored:
        """Rows by cosine similarity to ``query``, the ``count`` best."""
        if count <= 0:
            return []
        query_norm = 0.0
        for _, value in query:
            query_norm += value * value
        if query_norm == 0.0:
            return []
        candidates: list[tuple[float, int]] = []
        norms = self.norms
        for number, dot in self._dots(query).items():
            if dot == 0.0:
                continue
            norm = norms.get(number, 0.0)
            if norm == 0.0:
                continue
            similarity = 1.0
            if norm != query_norm or norm != dot:
                similarity = dot / math.sqrt(norm) / math.sqrt(query_norm)
            candidates.append((similarity, number))
        best = heapq.nlargest(count, candidates)
        return [(self.keys[n], min(max(-1.0, s), 1.0)) for s, n in best]

    def euclid(self, query: Features, count: int, ignore_orthogonal: bool = False) -> Scored:
        """Rows by ``-distance`` to ``query``, the ``count`` best."""
        if count <= 0:
            return []
        dots = self._dots(query)
        query_norm = 0.0
        for _, value in query:
            query_norm += value * value
        candidates: list[tuple[float, int]] = []
        numbers: Iterable[int] = dots if ignore_orthogonal else self.norms
        for number in numbers:
            norm = self.norms.get(number, 0.0)
            if norm == 0.0:
                continue
            squared = query_norm + norm - 2 * dots.get(number, 0.0)
            candidates.append((-math.sqrt(max(0.0, squared)), number))
        best = heapq.nlargest(count, candidates)
        return [(self.keys[n], s) for s, n in best]

    # -- mix and save ----------------------------------------------------------------------

    def take_diff(self) -> dict[str, list[object]]:
        """Rows changed here since the last diff: ``{id: [clock, owner, values or None]}``."""
        out: dict[str, list[object]] = {}
        for key in self.log.take():
            clock, owner = self.log.versions[key]
            out[key] = [clock, owner, self.row(key) if self.has(key) else None]
        return out

    def apply_rows(
        self, rows: dict[str, object], path: str
    ) -> list[tuple[str, dict[str, float] | None]]:
        """Peers' rows, checked first; returns the rows that replaced local ones."""
        checked = read_rows(rows, path)
        applied = []
        for key, version, values in checked:
            if self.log.newer_here(key, version):
                continue
            if self.has(key):
                self.remove_row(key)
            if values is not None:
                for feature, value in values.items():
                    self.set_value(key, feature, value)
            self.log.accept(key, version)
            self.log.changed.pop(key, None)
            applied.append((key, values))
        return applied

    def pack(self) -> dict[str, object]:
        rows = {
            key: [*self.log.versions.get(key, (0, "")), self.row(key)]
            for key in self.keys
            if self.has(key)
        }
        return {"clock": self.log.clock, "rows": rows}

    def unpack_into(self, value: object, path: str) -> None:
        fields = read_map(value, path)
        if set(fields) != {"clock", "rows"}:
            raise DiffError(f"{path}: expected clock and rows")
        clock = read_int(fields["clock"], f"{path}.clock")
        self.apply_rows(read_map(fields["rows"], f"{path}.rows"), f"{path}.rows")
        self.log.clock = max(self.log.clock, clock)
        self.log.changed = {}


def read_rows(
    rows: dict[str, object], path: str
) -> list[tuple[str, tuple[int, str], dict[str, float] | None]]:
    """``{id: [clock, owner, {feature: value} or None]}`` checked."""
    checked = []
    for key, row in read_map(rows, path).items():
        items = read_list(row, f"{path}[{key!r}]")
        if len(items) != 3:
            raise DiffError(f"{path}[{key!r}]: expected [clock, owner, values]")
        clock = read_int(items[0], f"{path}[{key!r}][0]")
        owner = read_text(items[1], f"{path}[{key!r}][1]")
        values: dict[str, float] | None = None
        if items[2] is not None:
            values = {
                feature: read_float(v, f"{path}[{key!r}][{feature!r}]")
                for feature, v in read_map(items[2], f"{path}[{key!r}][2]").items()
            }
        checked.append((key, (clock, owner), values))
    return checked
