"""Jubatus's nearest-neighbour engines: ``lsh``, ``minhash`` and ``euclid_lsh`` over a row
table, with Jubatus's hashing (:mod:`engines.common.hashing`) and ranking, so the same rows
give the same neighbours and scores.

- ``lsh``: the sign bits of a random projection (``hash_num`` bits); the distance of two
  rows is their Hamming distance / ``hash_num``, the similarity ``1 - distance``.
- ``minhash``: one bit per hash function (the low bit of the winning feature's hash);
  same distance and similarity.
- ``euclid_lsh``: the ``lsh`` bits plus the row's L2 norm; the distance is the law of
  cosines with the angle ``π · Hamming / hash_num`` (``|n1 - n2|`` when the bits agree),
  the similarity ``-distance``.

Rows live in :class:`RowTable`, which keeps Jubatus's ``column_table`` order: a new row goes
last, a deleted row is replaced by the last one. Results are sorted by distance, ties by
position in the table, as Jubatus's ranking heap does. The table also keeps, per row, the
version used by the mix (a clock and an owner), as Jubatus's versioned table does: a row
from a peer replaces the local one when its clock is not older. Thread-safety is the
caller's.
"""

from __future__ import annotations

import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.common import kernels
from engines.common.config import Params
from engines.common.hashing import ProjectionCache, minhash_bits, pack_bits, projection_bits
from runtime.errors import ConfigError
from runtime.mix.mixable import DiffError, read_float, read_int, read_list, read_map, read_text

Features = Sequence[tuple[str, float]]
Scored = list[tuple[str, float]]

#: The methods and the keys of their ``parameter`` block.
METHODS = ("lsh", "minhash", "euclid_lsh")


def owner_id() -> str:
    """A name for this process's rows in versions (Jubatus uses ``ip_port``)."""
    return uuid.uuid4().hex[:12]


class RowTable:
    """Row ids in Jubatus's ``column_table`` order, with per-row versions for the mix.

    Subclasses keep their columns in numpy arrays indexed like :attr:`keys`.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.versions: list[tuple[int, str]] = []
        self.clock = 0
        #: ids changed here since the last diff, with the clock of the change
        self.changed: dict[str, int] = {}
        self._sent: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def _place(self, key: str) -> int:
        """The position of ``key``, appending it when new (its columns are the caller's)."""
        position = self.index.get(key)
        if position is None:
            position = len(self.keys)
            self.keys.append(key)
            self.versions.append((0, ""))
            self.index[key] = position
            self._grow(position + 1)
        return position

    def _touch(self, position: int) -> None:
        self.versions[position] = (self.clock, self.owner)
        self.changed[self.keys[position]] = self.clock
        self.clock += 1

    def delete(self, key: str) -> bool:
        position = self.index.pop(key, None)
        if position is None:
            return False
        last = len(self.keys) - 1
        if position != last:
            moved = self.keys[last]
            self.keys[position] = moved
            self.versions[position] = self.versions[last]
            self.index[moved] = position
            self._move(last, position)
        self.keys.pop()
        self.versions.pop()
        self.changed.pop(key, None)
        self.clock += 1
        return True

    def clear(self) -> None:
        self.keys = []
        self.index = {}
        self.versions = []
        self.changed = {}
        self._sent = {}
        self._reset()

    @abstractmethod
    def _grow(self, size: int) -> None: ...

    @abstractmethod
    def _move(self, source: int, target: int) -> None: ...

    @abstractmethod
    def _reset(self) -> None: ...

    @abstractmethod
    def row_data(self, position: int) -> list[object]: ...

    @abstractmethod
    def set_row_data(self, position: int, data: Sequence[object], path: str) -> None: ...

    # -- mix -------------------------------------------------------------------------------

    def take_diff(self) -> dict[str, list[object]]:
        """The rows changed since the last diff: ``{id: [clock, owner, data]}``."""
        self._sent = dict(self.changed)
        out: dict[str, list[object]] = {}
        for key in self.changed:
            position = self.index.get(key)
            if position is not None:
                clock, owner = self.versions[position]
                out[key] = [clock, owner, self.row_data(position)]
        return out

    def apply_rows(self, rows: dict[str, list[object]], path: str) -> list[str]:
        """Rows from peers (or a mix): a row replaces the local one unless the local one is
        newer. Returns the ids set. Checks every row before changing anything."""
        checked = []
        for key, row in rows.items():
            items = read_list(row, f"{path}[{key!r}]")
            if len(items) != 3:
                raise DiffError(f"{path}[{key!r}]: expected [clock, owner, data]")
            clock = read_int(items[0], f"{path}[{key!r}][0]")
            owner = read_text(items[1], f"{path}[{key!r}][1]")
            data = read_list(items[2], f"{path}[{key!r}][2]")
            self.check_row_data(data, f"{path}[{key!r}][2]")
            checked.append((key, clock, owner, data))
        applied = []
        for key, clock, owner, data in checked:
            position = self.index.get(key)
            if position is not None and self.versions[position] > (clock, owner):
                continue
            position = self._place(key)
            self.set_row_data(position, data, path)
            self.versions[position] = (clock, owner)
            self.clock = max(self.clock, clock + 1)
            applied.append(key)
        return applied

    def forget_sent(self) -> None:
        """After a mix: ids sent and not changed since are no longer a diff."""
        for key, clock in self._sent.items():
            if self.changed.get(key) == clock:
                del self.changed[key]
        self._sent = {}

    def check_row_data(self, data: Sequence[object], path: str) -> None:
        """Raise :class:`DiffError` unless ``data`` fits this table's columns."""

    def all_rows(self) -> dict[str, list[object]]:
        return {
            key: [self.versions[i][0], self.versions[i][1], self.row_data(i)]
            for i, key in enumerate(self.keys)
        }

    def pack(self) -> dict[str, object]:
        return {"clock": self.clock, "rows": [[k, *v] for k, v in self.all_rows().items()]}

    def unpack_into(self, value: object, path: str) -> None:
        """Fill an empty table from :meth:`pack` (checked first; :class:`DiffError`)."""
        fields = read_map(value, path)
        if set(fields) != {"clock", "rows"}:
            raise DiffError(f"{path}: expected clock and rows")
        clock = read_int(fields["clock"], f"{path}.clock")
        rows: dict[str, list[object]] = {}
        for i, row in enumerate(read_list(fields["rows"], f"{path}.rows")):
            items = read_list(row, f"{path}.rows[{i}]")
            if len(items) != 4:
                raise DiffError(f"{path}.rows[{i}]: expected [id, clock, owner, data]")
            rows[read_text(items[0], f"{path}.rows[{i}][0]")] = list(items[1:])
        self.apply_rows(rows, f"{path}.rows")
        self.clock = max(self.clock, clock)
        self.changed = {}


class BitTable(RowTable):
    """Rows of ``bits`` bits (uint64 words), optionally with a norm per row."""

    def __init__(self, owner: str, bits: int, with_norm: bool) -> None:
        self.bits = bits
        self.words = -(-bits // 64)
        self.with_norm = with_norm
        self._reset()
        super().__init__(owner)

    def _reset(self) -> None:
        self.matrix = np.zeros((16, self.words), dtype=np.uint64)
        self.norms = np.zeros(16, dtype=np.float64)

    def _grow(self, size: int) -> None:
        if size > len(self.matrix):
            capacity = max(size, 2 * len(self.matrix))
            matrix = np.zeros((capacity, self.words), dtype=np.uint64)
            matrix[: len(self.matrix)] = self.matrix
            norms = np.zeros(capacity, dtype=np.float64)
            norms[: len(self.norms)] = self.norms
            self.matrix, self.norms = matrix, norms

    def _move(self, source: int, target: int) -> None:
        self.matrix[target] = self.matrix[source]
        self.norms[target] = self.norms[source]

    def put(self, key: str, words: npt.NDArray[np.uint64], norm: float = 0.0) -> None:
        position = self._place(key)
        self.matrix[position] = words
        self.norms[position] = norm
        self._touch(position)

    def row_data(self, position: int) -> list[object]:
        data: list[object] = [int(w) for w in self.matrix[position]]
        if self.with_norm:
            data.append(float(self.norms[position]))
        return data

    def check_row_data(self, data: Sequence[object], path: str) -> None:
        expected = self.words + (1 if self.with_norm else 0)
        if len(data) != expected:
            raise DiffError(f"{path}: expected {expected} values, got {len(data)}")
        for i in range(self.words):
            value = data[i]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
                raise DiffError(f"{path}[{i}]: expected a 64-bit word")
        if self.with_norm:
            read_float(data[-1], f"{path}[{self.words}]")

    def set_row_data(self, position: int, data: Sequence[object], path: str) -> None:
        self.matrix[position] = np.array(data[: self.words], dtype=np.uint64)
        if self.with_norm:
            self.norms[position] = float(data[-1])  # type: ignore[arg-type]

    def hamming(self, words: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        size = len(self.keys)
        if size == 0:
            return np.zeros(0, dtype=np.int64)
        xor = np.bitwise_xor(self.matrix[:size], words[np.newaxis, :])
        counts: npt.NDArray[np.int64] = np.bitwise_count(xor).sum(axis=1, dtype=np.int64)
        return counts


def smallest(scores: npt.NDArray[np.float64] | npt.NDArray[np.int64], count: int) -> list[int]:
    """Positions of the ``count`` smallest scores, ties by position (Jubatus's heap)."""
    size = len(scores)
    if count <= 0 or size == 0:
        return []
    if count < size:
        candidates = np.argpartition(scores, count - 1)[:count]
        threshold = scores[candidates].max()
        candidates = np.flatnonzero(scores <= threshold)
        order = np.lexsort((candidates, scores[candidates]))
        return [int(i) for i in candidates[order][:count]]
    return [int(i) for i in np.lexsort((np.arange(size), scores))]


#: At most this many words' worth of Hamming distances per pass of
#: :meth:`NearestNeighborIndex.neighbor_rows_from_ids` (a pass holds about ten arrays of
#: that many 8-byte values: 2 MiB each, some 20 MiB at most whatever a call asks).
_CHUNK = 1 << 18


def smallest_candidates(
    scores: npt.NDArray[Any], count: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """Per row of ``scores``: the positions of its ``count`` smallest (every position when
    the row is no wider), their scores, and whether the row must be redone one at a time
    (a NaN, or a score equal to the cut's falling on both sides of it). Callers order
    the candidates by their own tie rule."""
    many, size = scores.shape
    redo = np.zeros(many, dtype=bool)
    if scores.dtype == np.float64:
        redo |= np.isnan(scores).any(axis=1)
    if count < size:
        part = np.argpartition(scores, count - 1, axis=1)[:, :count]
        kept = np.take_along_axis(scores, part, 1)
        cut = kept.max(axis=1)
        redo |= np.count_nonzero(scores <= cut[:, np.newaxis], axis=1) != count
    else:
        part = np.broadcast_to(np.arange(size), (many, size))
        kept = scores
    return part, kept, redo


def smallest_rows(
    scores: npt.NDArray[np.float64] | npt.NDArray[np.int64], count: int
) -> tuple[list[list[int]], list[bool]]:
    """:func:`smallest` for each row of ``scores``, and whether the row must be redone by
    :func:`smallest` (a NaN, or a score equal to the cut's falling on both sides of it)."""
    part, kept, redo = smallest_candidates(scores, count)
    order = np.lexsort((part, kept), axis=1)
    picked: list[list[int]] = np.take_along_axis(part, order, 1).tolist()
    again: list[bool] = redo.tolist()
    return picked, again


class NearestNeighborIndex(ABC):
    """One of Jubatus's nearest-neighbour methods over a :class:`BitTable`."""

    name: str

    def __init__(self, params: Params, owner: str) -> None:
        params.only(self.parameter_keys())
        self.hash_num = params.integer("hash_num")
        params.check(self.hash_num >= 1, "hash_num", "must be >= 1")
        if params.has("threads"):
            params.integer("threads")
        if params.has("cache_size"):
            size = params.integer("cache_size")
            params.check(size >= 0, "cache_size", "must be >= 0")
        self.table = BitTable(owner, self.hash_num, with_norm=self.name == "euclid_lsh")

    @classmethod
    def parameter_keys(cls) -> tuple[str, ...]:
        return ("hash_num", "threads", "cache_size")

    @abstractmethod
    def hash(self, features: Features) -> tuple[npt.NDArray[np.uint64], float]: ...

    def set_row(self, key: str, features: Features) -> None:
        words, norm = self.hash(features)
        self.table.put(key, words, norm)

    def distances(self, words: npt.NDArray[np.uint64], norm: float) -> npt.NDArray[np.float64]:
        return self.table.hamming(words).astype(np.float64) / self.hash_num

    def _ranked(self, words: npt.NDArray[np.uint64], norm: float, count: int) -> Scored:
        if count == 0 or len(self.table) == 0:
            return []
        compiled = kernels.compiled
        if compiled is not None:  # the same rows, found by counting in C
            positions, distances = compiled.nearest_by_hamming(
                self.table.matrix, len(self.table), words, count
            )
            keys, hash_num = self.table.keys, self.hash_num
            return [(keys[i], d / hash_num) for i, d in zip(positions, distances, strict=True)]
        hamming = self.table.hamming(words)
        picked = smallest(hamming, count)
        return [(self.table.keys[i], int(hamming[i]) / self.hash_num) for i in picked]

    def neighbor_row_from_features(self, features: Features, count: int) -> Scored:
        words, norm = self.hash(features)
        return self._ranked(words, norm, count)

    def neighbor_row_from_id(self, key: str, count: int) -> Scored:
        position = self.table.index.get(key)
        if position is None:
            return []
        words = self.table.matrix[position].copy()
        return self._ranked(words, float(self.table.norms[position]), count)

    def many_distances(
        self, words: npt.NDArray[np.uint64], norms: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64] | npt.NDArray[np.int64]:
        """What :meth:`_ranked` ranks, for each row of ``words`` at once: Hamming distances
        (``euclid_lsh``: the distances of :meth:`distances`, the same operations)."""
        size = len(self.table)
        xor = np.bitwise_xor(self.table.matrix[np.newaxis, :size], words[:, np.newaxis, :])
        hamming: npt.NDArray[np.int64] = np.bitwise_count(xor).sum(axis=2, dtype=np.int64)
        return hamming

    def neighbor_rows_from_ids(self, keys: Sequence[str], count: int) -> list[Scored]:
        """``neighbor_row_from_id`` for each key, the same answers, the distances to every
        row computed for all the keys in one pass."""
        table = self.table
        index = table.index
        found = [(i, index[key]) for i, key in enumerate(keys) if key in index]
        out: list[Scored] = [[] for _ in keys]
        if count <= 0 or not found or len(table) == 0:
            return out
        keys_of_rows = table.keys
        step = max(1, _CHUNK // max(1, len(table) * table.words))
        for start in range(0, len(found), step):
            chunk = found[start : start + step]
            positions = np.array([position for _, position in chunk], dtype=np.int64)
            scores = self.many_distances(table.matrix[positions], table.norms[positions])
            picked, redo = smallest_rows(scores, count)
            integral = scores.dtype != np.float64
            for row, ((i, _), chosen) in enumerate(zip(chunk, picked, strict=True)):
                if redo[row]:
                    chosen = smallest(scores[row], count)
                values = scores[row][chosen].tolist()
                if integral:
                    values = [value / self.hash_num for value in values]
                out[i] = [(keys_of_rows[p], value) for p, value in zip(chosen, values, strict=True)]
        return out

    def similarity(self, distance: float) -> float:
        return 1.0 - distance

    def similar_row_from_features(self, features: Features, count: int) -> Scored:
        return [
            (k, self.similarity(d)) for k, d in self.neighbor_row_from_features(features, count)
        ]

    def similar_row_from_id(self, key: str, count: int) -> Scored:
        return [(k, self.similarity(d)) for k, d in self.neighbor_row_from_id(key, count)]


class Lsh(NearestNeighborIndex):
    name = "lsh"

    def __init__(self, params: Params, owner: str) -> None:
        super().__init__(params, owner)
        self.cache = ProjectionCache(self.hash_num)

    def hash(self, features: Features) -> tuple[npt.NDArray[np.uint64], float]:
        return projection_bits(features, self.cache), 0.0


class Minhash(NearestNeighborIndex):
    name = "minhash"

    @classmethod
    def parameter_keys(cls) -> tuple[str, ...]:
        return ("hash_num", "threads")

    def hash(self, features: Features) -> tuple[npt.NDArray[np.uint64], float]:
        return pack_bits(minhash_bits(features, self.hash_num, double_value=False)), 0.0


class EuclidLsh(Lsh):
    name = "euclid_lsh"

    def __init__(self, params: Params, owner: str) -> None:
        super().__init__(params, owner)
        #: cos(π h / hash_num) for every Hamming distance h (the C library's cos).
        self._cosines = np.array(
            [math.cos(h * math.pi / self.hash_num) for h in range(self.hash_num + 1)]
        )

    def hash(self, features: Features) -> tuple[npt.NDArray[np.uint64], float]:
        squared = 0.0
        for _, value in features:
            squared += value * value
        return projection_bits(features, self.cache), math.sqrt(squared)

    def _ranked(self, words: npt.NDArray[np.uint64], norm: float, count: int) -> Scored:
        table = self.table
        if count == 0 or len(table) == 0:
            return []
        compiled = kernels.compiled
        if compiled is not None and count > 0:  # the same rows and distances, in C
            found = compiled.nearest_by_euclid_lsh(
                table.matrix, len(table), words, table.norms, norm, self._cosines, count
            )
            if found is not None:
                keys = table.keys
                return [(keys[i], d) for i, d in zip(*found, strict=True)]
        scores = self.distances(words, norm)
        return [(table.keys[i], float(scores[i])) for i in smallest(scores, count)]

    def distances(self, words: npt.NDArray[np.uint64], norm: float) -> npt.NDArray[np.float64]:
        hamming = self.table.hamming(words)
        norms = self.table.norms[: len(self.table)]
        cosines = self._cosines[hamming]
        with np.errstate(invalid="ignore"):
            far = np.sqrt(norm * norm + norms * norms - 2 * norm * norms * cosines)
        return np.where(hamming == 0, np.abs(norm - norms), far)

    def many_distances(
        self, words: npt.NDArray[np.uint64], norms: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64] | npt.NDArray[np.int64]:
        hamming = super().many_distances(words, norms)
        size = len(self.table)
        stored = self.table.norms[:size]
        cosines = self._cosines[hamming]
        norm = norms[:, np.newaxis]
        with np.errstate(invalid="ignore"):
            far = np.sqrt(norm * norm + stored * stored - 2 * norm * stored * cosines)
        result: npt.NDArray[np.float64] = np.where(hamming == 0, np.abs(norm - stored), far)
        return result

    def similarity(self, distance: float) -> float:
        return -distance


def create_nearest_neighbor(
    method: str, parameter: object, owner: str, path: str = "parameter"
) -> NearestNeighborIndex:
    """``lsh``, ``minhash`` or ``euclid_lsh`` with its checked ``parameter`` block."""
    classes: dict[str, type[NearestNeighborIndex]] = {
        "lsh": Lsh,
        "minhash": Minhash,
        "euclid_lsh": EuclidLsh,
    }
    cls = classes.get(method)
    if cls is None:
        raise ConfigError(f"method: unknown method {method!r} (known: {', '.join(METHODS)})")
    if parameter is None:
        raise ConfigError(f"{path}: required for method {method!r}")
    return cls(Params(parameter, path), owner)


def keys_of(scored: Iterable[tuple[str, float]]) -> list[str]:
    return [key for key, _ in scored]
