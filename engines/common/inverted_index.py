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

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engines.common import kernels
from engines.common.nearest_neighbor import smallest_candidates
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


class _Posting:
    """One feature's values by row number, as numpy arrays (a removed row keeps a 0).

    While every row so far has the feature and came in number order (``dense``), row ``i``
    sits at position ``i``: ``numbers`` and ``where`` are not kept then (a slice of
    ``values`` is the posting); the first row out of order fills them in."""

    __slots__ = ("dense", "numbers", "size", "values", "where")

    def __init__(self) -> None:
        self.numbers = np.zeros(8, dtype=np.int64)
        self.values = np.zeros(8, dtype=np.float64)
        self.size = 0
        #: Position by row number (empty while ``dense``).
        self.where: dict[int, int] = {}
        self.dense = True

    def position(self, number: int) -> int | None:
        """Where row ``number``'s value is, if the posting has one."""
        if self.dense:
            return number if number < self.size else None
        return self.where.get(number)

    def set(self, number: int, value: float) -> None:
        position = self.position(number)
        if position is None:
            position = self._append(number)
        self.values[position] = value

    def _append(self, number: int) -> int:
        """A position for a row the posting does not have yet."""
        position = self.size
        if position == len(self.values):
            self.numbers = np.concatenate([self.numbers, np.zeros_like(self.numbers)])
            self.values = np.concatenate([self.values, np.zeros_like(self.values)])
        if self.dense and number != position:
            self.dense = False
            self.numbers[:position] = np.arange(position, dtype=np.int64)
            self.where = dict(zip(range(position), range(position), strict=True))
        if not self.dense:
            self.numbers[position] = number
            self.where[number] = position
        self.size = position + 1
        return position


#: A query's products are summed as one matrix (:class:`_DenseCopy`) from this many rows on
#: (numpy adds down the first axis in order then; with one row it sums pairwise).
DENSE_MIN_ROWS = 32
#: ... and up to this many values in the copy (8 bytes each: 32 MiB).
DENSE_MAX_VALUES = 1 << 22
#: Queries at one generation before the copy is made (a query between writes makes none).
DENSE_AFTER_QUERIES = 4


#: The queries of the compiled kernels (``dense_query``, ``postings_query``).
_EUCLID, _COSINE = 0, 1


@dataclass(frozen=True, slots=True)
class _DenseCopy:
    """Every posting's values as one matrix (a row per feature), made when every row has every
    feature; valid while the index's ``generation`` is the one it was made at."""

    generation: int
    matrix: npt.NDArray[np.float64]
    position: dict[str, int]

    def rows_of(self, query: Features) -> tuple[list[int], list[float]]:
        """The matrix rows of the query's features it holds, with their values."""
        position = self.position
        at: list[int] = []
        values: list[float] = []
        for feature, value in query:
            row = position.get(feature)
            if row is not None:
                at.append(row)
                values.append(value)
        return at, values


class InvertedIndex:
    """Rows by feature, with Jubatus's scores (see the module docstring)."""

    def __init__(self, owner: str) -> None:
        self.ids: dict[str, int] = {}
        self.keys: list[str] = []
        #: feature -> row numbers and values
        self.postings: dict[str, _Posting] = {}
        #: row number -> feature -> value
        self.columns: dict[int, dict[str, float]] = {}
        #: row number -> squared norm (as Jubatus accumulates it), and the same as an array
        self.norms: dict[int, float] = {}
        self._norm_array = np.zeros(16, dtype=np.float64)
        self.log = ChangeLog(owner)
        #: Counts every value set and row removed (callers that keep answers check it).
        self.generation = 0
        #: Whether a row was removed or rows applied since ``clear``: a posting may then
        #: hold a 0 for a row that no longer has the feature.
        self.irregular = False
        #: The dense copy of the postings, if one was made (see :meth:`_dense_copy`), and
        #: ``(generation, queries)`` counting queries since the last write.
        self._dense: _DenseCopy | None = None
        self._asked = (0, 0)

    # -- writing ---------------------------------------------------------------------------

    def _number(self, key: str) -> tuple[int, bool]:
        number = self.ids.get(key)
        if number is None:
            number = len(self.keys)
            self.ids[key] = number
            self.keys.append(key)
            if number >= len(self._norm_array):
                grown = np.zeros(2 * len(self._norm_array), dtype=np.float64)
                grown[: len(self._norm_array)] = self._norm_array
                self._norm_array = grown
            return number, True
        return number, False

    def set_value(self, key: str, feature: str, value: float) -> None:
        self.generation += 1
        number, new = self._number(key)
        column = self.columns.setdefault(number, {})
        norms = self.norms
        if not new:
            current = column.get(feature, 0.0)
            norms[number] = norms.get(number, 0.0) - current * current
        norm = norms[number] = norms.get(number, 0.0) + value * value
        if norm == 0:
            del norms[number]
        self._norm_array[number] = norm
        column[feature] = value
        posting = self.postings.get(feature)
        if posting is None:
            posting = self.postings[feature] = _Posting()
        posting.set(number, value)

    def update_row(self, key: str, features: Features) -> None:
        """Set the listed values of row ``key`` (others it has stay), as ``update_row``.

        The same as :meth:`set_value` feature by feature (the norm takes the same steps in
        the same order, so it has the same bits), with the row looked up once."""
        if not features:  # no number for the row, as set_value gives none
            self.log.touch(key)
            return
        number, _ = self._number(key)
        column = self.columns.setdefault(number, {})
        norms = self.norms
        norm = norms.get(number, 0.0)
        postings = self.postings
        for feature, value in features:
            current = column.get(feature, 0.0)
            norm = norm - current * current + value * value
            if norm == 0:
                norm = 0.0  # set_value drops the entry: the next step starts from 0.0
            column[feature] = value
            posting = postings.get(feature)
            if posting is None:
                posting = postings[feature] = _Posting()
            if posting.dense:
                position: int | None = number if number < posting.size else None
            else:
                position = posting.where.get(number)
            if position is None:
                position = posting._append(number)
            posting.values[position] = value
        self.generation += len(features)
        if norm == 0:
            norms.pop(number, None)
        else:
            norms[number] = norm
        self._norm_array[number] = norm
        self.log.touch(key)

    def remove_row(self, key: str) -> bool:
        """Forget row ``key``; whether it existed."""
        number = self.ids.get(key)
        if number is None:
            return False
        self.generation += 1
        self.irregular = True
        column = self.columns.pop(number, None)
        existed = column is not None or number in self.norms
        if column is not None:
            for feature in column:
                posting = self.postings.get(feature)
                if posting is not None:
                    posting.set(number, 0.0)
        self.norms.pop(number, None)
        self._norm_array[number] = 0.0
        self.log.touch(key)
        return existed

    def clear(self) -> None:
        self.ids = {}
        self.keys = []
        self.postings = {}
        self.columns = {}
        self.norms = {}
        self._norm_array = np.zeros(16, dtype=np.float64)
        self.log.clear()
        self.generation += 1
        self.irregular = False
        self._dense = None

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

    def _dots(
        self, query: Features, touched: bool = False, dense_checked: bool = False
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64] | None]:
        """Every row's dot product with ``query`` (added feature by feature in query order,
        as Jubatus sums them) and, when asked, the rows sharing a nonzero value with it
        (``dense_checked``: the caller found no dense copy; it is not asked again)."""
        if not touched and not dense_checked:
            dense = self._dense_copy()
            if dense is not None:
                return self._dense_dots(dense, query), None
        dots = np.zeros(len(self.keys), dtype=np.float64)
        shared: list[npt.NDArray[np.int64]] = []
        for feature, value in query:
            posting = self.postings.get(feature)
            if posting is None or posting.size == 0:
                continue
            size = posting.size
            stored = posting.values[:size]
            if posting.dense:  # rows 0 .. size - 1: a slice, not a scatter (same sums)
                dots[:size] += stored * value
                if touched:
                    shared.append(np.flatnonzero(stored != 0.0))
                continue
            numbers = posting.numbers[:size]
            dots[numbers] += stored * value  # a row appears once in a posting
            if touched:
                shared.append(numbers[stored != 0.0])
        if not touched:
            return dots, None
        return dots, (np.concatenate(shared) if shared else None)

    def _dense_copy(self) -> _DenseCopy | None:
        """The dense copy for this generation: made at the ``DENSE_AFTER_QUERIES``-th query
        since the last write, when every posting holds every row in number order and the
        copy has ``DENSE_MIN_ROWS`` rows and at most ``DENSE_MAX_VALUES`` values; else None.
        Readers may race to make it: each makes the same copy, one is kept."""
        generation = self.generation
        dense = self._dense
        if dense is not None:
            if dense.generation == generation:
                return dense
            self._dense = None  # stale: not kept in memory until the next one
        asked, count = self._asked
        count = count + 1 if asked == generation else 1
        self._asked = (generation, count)
        if count < DENSE_AFTER_QUERIES:
            return None
        rows = len(self.keys)
        postings = [(f, p) for f, p in self.postings.items() if p.size]
        if (
            rows < DENSE_MIN_ROWS
            or not postings
            or len(postings) * rows > DENSE_MAX_VALUES
            or self.irregular
            or len(self.columns) != rows
            or any(p.size != rows or not p.dense for _, p in postings)
        ):
            self._asked = (generation, -(1 << 62))  # not at this generation
            return None
        matrix = np.stack([p.values[:rows] for _, p in postings])
        dense = _DenseCopy(generation, matrix, {f: i for i, (f, _) in enumerate(postings)})
        if self.generation != generation:  # a write came meanwhile (callers serialize them)
            return None
        self._dense = dense
        return dense

    @staticmethod
    def _dense_dots(dense: _DenseCopy, query: Features) -> npt.NDArray[np.float64]:
        """:meth:`_dots` over the dense copy: the query's rows of the matrix times its values,
        added down the first axis from 0.0 in query order (the loop's sums, to the bit)."""
        at, values = dense.rows_of(query)
        if not at:
            return np.zeros(dense.matrix.shape[1], dtype=np.float64)
        first = at[0]
        if at[-1] - first == len(at) - 1 and at == list(range(first, first + len(at))):
            # The query's features are a run of the matrix's rows (typical: rows of the
            # same keys in the same order): multiply a view, no gathered copy.
            products = dense.matrix[first : first + len(at)] * np.array(values)[:, np.newaxis]
        else:
            products = dense.matrix[at]
            products *= np.array(values, dtype=np.float64)[:, np.newaxis]
        dots: npt.NDArray[np.float64] = np.add.reduce(products, axis=0, initial=0.0)
        return dots

    @staticmethod
    def _best(
        scores: npt.NDArray[np.float64], numbers: npt.NDArray[np.int64] | None, count: int
    ) -> list[tuple[float, int]]:
        """The ``count`` largest ``(score, number)`` pairs, largest first (``numbers``
        None: score ``i`` is row ``i``'s)."""
        if len(scores) > count:
            part = np.argpartition(-scores, count - 1)[:count]
            threshold = scores[part].min()
            keep = np.flatnonzero(scores >= threshold)
            scores, numbers = scores[keep], keep if numbers is None else numbers[keep]
        elif numbers is None:
            numbers = np.arange(len(scores), dtype=np.int64)
        order = np.lexsort((numbers, scores))[::-1][:count]
        return list(zip(scores[order].tolist(), numbers[order].tolist(), strict=True))

    def _compiled_best(
        self, mode: int, query: Features, query_norm: float, count: int, dense: _DenseCopy | None
    ) -> tuple[list[float], list[int]] | None:
        """The ``count`` best ``(scores, row numbers)`` of :meth:`euclid` (``_EUCLID``,
        not ``ignore_orthogonal``) or :meth:`cosine` (``_COSINE``) by the compiled kernels,
        over the dense copy or the postings: the same bits and order as the numpy below;
        None without the kernels or for a score that is not a number."""
        compiled = kernels.compiled
        if compiled is None:
            return None
        best: tuple[list[float], list[int]] | None
        if dense is not None:
            at, values = dense.rows_of(query)
            best = compiled.dense_query(
                mode, dense.matrix, at, values, self._norm_array, query_norm, count
            )
            return best
        parts = []
        values = []
        postings = self.postings
        for feature, value in query:
            posting = postings.get(feature)
            if posting is not None and posting.size:
                rows = None if posting.dense else posting.numbers
                parts.append((rows, posting.values, posting.size))
                values.append(value)
        best = compiled.postings_query(
            mode, parts, values, self._norm_array, len(self.keys), query_norm, count
        )
        return best

    def cosine(self, query: Features, count: int) -> Scored:
        """Rows by cosine similarity to ``query``, the ``count`` best."""
        if count <= 0:
            return []
        query_norm = 0.0
        for _, value in query:
            query_norm += value * value
        if query_norm == 0.0:
            return []
        dense = self._dense_copy()
        best = self._compiled_best(_COSINE, query, query_norm, count, dense)
        if best is not None:  # clamped to [-1, 1] there
            keys = self.keys
            return [(keys[n], s) for s, n in zip(*best, strict=True)]
        if dense is not None:
            dots = self._dense_dots(dense, query)
        else:
            dots, _ = self._dots(query, dense_checked=True)
        norms = self._norm_array[: len(dots)]
        numbers = np.flatnonzero((dots != 0.0) & (norms != 0.0))
        if len(numbers) == 0:
            return []
        dot = dots[numbers]
        norm = norms[numbers]
        with np.errstate(invalid="ignore"):
            similarity = dot / np.sqrt(norm) / math.sqrt(query_norm)
        similarity = np.where((norm == query_norm) & (norm == dot), 1.0, similarity)
        ranked = self._best(similarity, numbers, count)
        return [(self.keys[n], min(max(-1.0, s), 1.0)) for s, n in ranked]

    def euclid(self, query: Features, count: int, ignore_orthogonal: bool = False) -> Scored:
        """Rows by ``-distance`` to ``query``, the ``count`` best."""
        if count <= 0:
            return []
        query_norm = 0.0
        for _, value in query:
            query_norm += value * value
        dots: npt.NDArray[np.float64]
        touched: npt.NDArray[np.int64] | None
        dense = None if ignore_orthogonal else self._dense_copy()
        if not ignore_orthogonal:
            best = self._compiled_best(_EUCLID, query, query_norm, count, dense)
            if best is not None:
                keys = self.keys
                return [(keys[n], s) for s, n in zip(*best, strict=True)]
        if dense is not None:
            dots = self._dense_dots(dense, query)
            touched = None
        else:
            dots, touched = self._dots(query, ignore_orthogonal, dense_checked=True)
        norms = self._norm_array[: len(dots)]
        numbers: npt.NDArray[np.int64] | None
        if ignore_orthogonal:
            if touched is None:
                return []
            numbers = np.unique(touched)
            numbers = numbers[norms[numbers] != 0.0]
        elif norms.all():  # every row has a norm (the usual case): no gathers
            numbers = None
        else:
            numbers = np.flatnonzero(norms != 0.0)
        if numbers is None:
            if len(norms) == 0:
                return []
            squared = norms + query_norm  # (a + b is b + a, to the bit)
            dots *= 2.0  # ours: made for this query
            squared -= dots
        else:
            if len(numbers) == 0:
                return []
            squared = query_norm + norms[numbers] - 2 * dots[numbers]
        scores = np.maximum(0.0, squared, out=squared)
        np.sqrt(scores, out=scores)
        np.negative(scores, out=scores)
        keys = self.keys
        return [(keys[n], s) for s, n in self._best(scores, numbers, count)]

    def _add_products(
        self, queries: Sequence[Features], dots: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Add each query's products to its row of ``dots``, position by position, features
        that differ between the queries one by one; returns the queries' squared norms."""
        many = len(queries)
        query_norms = np.zeros(many, dtype=np.float64)
        for i, query in enumerate(queries):
            norm = 0.0
            for _, value in query:
                norm += value * value
            query_norms[i] = norm
        longest = max(len(query) for query in queries)
        postings = self.postings
        for step in range(longest):
            groups: dict[str, list[int]] = {}
            for i, query in enumerate(queries):
                if step < len(query):
                    groups.setdefault(query[step][0], []).append(i)
            for feature, members in groups.items():
                posting = postings.get(feature)
                if posting is None or posting.size == 0:
                    continue
                width = posting.size
                values = np.array([queries[i][step][1] for i in members], dtype=np.float64)
                products = values[:, np.newaxis] * posting.values[np.newaxis, :width]
                rows = np.array(members, dtype=np.int64)
                if posting.dense:
                    dots[rows, :width] += products
                else:
                    dots[np.ix_(rows, posting.numbers[:width])] += products
        return query_norms

    def euclid_distances(self, queries: Sequence[Features], count: int) -> list[Scored]:
        return self.euclid_distances_with(queries, count)[0]

    def euclid_distances_with(
        self, queries: Sequence[Features], count: int
    ) -> tuple[list[Scored], list[float], list[bool]]:
        """``euclid(query, count)`` for each query (not ``ignore_orthogonal``), as
        ``(row, distance)`` best first: the same numbers, one numpy pass per query
        *position* over all the queries at once instead of one per query feature.

        Step ``j`` adds every query's ``j``-th product to its dot products, so each query's
        sum is still taken in its own order (bit for bit :meth:`euclid`'s); queries whose
        ``j``-th features differ are added feature by feature.

        Also returns each query's squared norm and whether every distance it has is a
        number (not NaN)."""
        if count <= 0 or not queries:
            return [[] for _ in queries], [], []
        size = len(self.keys)
        many = len(queries)
        dots = np.zeros((many, size), dtype=np.float64)
        postings = self.postings
        split = [tuple(zip(*query, strict=True)) for query in queries]
        names = split[0][0] if split[0] else ()
        if names and all(part and part[0] == names for part in split):
            # every query has the same features in the same order (the usual case)
            matrix = np.array([part[1] for part in split], dtype=np.float64)
            query_norms = np.zeros(many, dtype=np.float64)
            for step, feature in enumerate(names):
                column = matrix[:, step]
                query_norms += column * column
                posting = postings.get(feature)
                if posting is None or posting.size == 0:
                    continue
                width = posting.size
                products = column[:, np.newaxis] * posting.values[np.newaxis, :width]
                if posting.dense:
                    dots[:, :width] += products
                else:
                    dots[:, posting.numbers[:width]] += products
        else:
            query_norms = self._add_products(queries, dots)
        norms = self._norm_array[:size]
        numbers = np.flatnonzero(norms != 0.0)
        if len(numbers) == 0:
            return [[] for _ in queries], query_norms.tolist(), [True] * many
        squared = query_norms[:, np.newaxis] + norms[numbers] - 2 * dots[:, numbers]
        # -(-√x) is √x bit for bit: these are the distances recommender's euclid gives
        distances = np.sqrt(np.maximum(0.0, squared))
        keys = self.keys
        chosen, values, redo = nearest_rows(distances, numbers, count)
        numeric: list[bool] = np.asarray(~np.isnan(distances).any(axis=1)).tolist()
        out: list[Scored] = []
        for i, (row_numbers, row_values) in enumerate(zip(chosen, values, strict=True)):
            if redo[i]:  # ties across the cut, or NaN: the one-query path decides
                best = self._best(-distances[i], numbers, count)
                out.append([(keys[n], -s) for s, n in best])
            else:
                out.append([(keys[n], d) for n, d in zip(row_numbers, row_values, strict=True)])
        return out, query_norms.tolist(), numeric

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
        self.generation += 1
        self.irregular = True
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


def nearest_rows(
    distances: npt.NDArray[np.float64], numbers: npt.NDArray[np.int64], count: int
) -> tuple[list[list[int]], list[list[float]], list[bool]]:
    """Per row of ``distances`` (columns are rows ``numbers``), the ``count`` smallest, by
    distance then the *later* number first (:meth:`InvertedIndex._best` on ``-distance``):
    their numbers and distances, and whether the row must be redone one at a time (a NaN,
    or a distance equal to the cut's falling on both sides of it)."""
    part, kept, redo = smallest_candidates(distances, count)
    order = np.lexsort((-numbers[part], kept), axis=1)
    chosen = np.take_along_axis(part, order, 1)
    picked: list[list[int]] = numbers[chosen].tolist()
    distance: list[list[float]] = np.take_along_axis(kept, order, 1).tolist()
    again: list[bool] = redo.tolist()
    return picked, distance, again


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
