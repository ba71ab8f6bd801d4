"""Jubatus's recommender methods over a row store, without the converter: what the
recommender engine serves and what anomaly's ``lof`` finds neighbours with.

Every row's features (as ``update_row`` set them; a later ``update_row`` overwrites the
features it lists and keeps the others) are kept in the *original store*, in Jubatus's
column order (a feature's first appearance anywhere), for ``decode``, ``complete`` and the
hashed methods, which hash a row's whole original. The methods:

- ``inverted_index``: cosine similarity over an inverted index;
- ``inverted_index_euclid``: ``-distance`` (``ignore_orthogonal`` only looks at rows that
  share a feature);
- ``lsh``, ``minhash``: the share of equal bits of Jubatus's hashes (ties by id, the larger
  first, as Jubatus's heap);
- ``euclid_lsh``: E2LSH with probing (:mod:`engines.common.lsh_index`);
- ``nearest_neighbor_recommender``: a nearest-neighbour engine (``lsh``, ``minhash``,
  ``euclid_lsh``) and its similarity.

Distances (``neighbor_*``, what LOF uses) are each method's: ``1 - similarity``, or
``-score`` for the Euclidean ones. An ``unlearner`` (``lru``, ``random``) in the parameter
block bounds the rows. As in Jubatus, the original store stays with the server that was
given the row; the index mixes: a diff holds the rows changed and removed here, and a
row's newest version wins everywhere. Thread-safety is the caller's.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from engines.common.config import Params
from engines.common.fv_converter import sort_and_merge
from engines.common.hashing import ProjectionCache, minhash_bits, pack_bits, projection_bits
from engines.common.inverted_index import InvertedIndex
from engines.common.lsh_index import LshIndex
from engines.common.nearest_neighbor import BitTable, NearestNeighborIndex, create_nearest_neighbor
from engines.common.unlearner import Unlearner, create_unlearner
from engines.common.versions import ChangeLog
from runtime.errors import ConfigError
from runtime.mix.mixable import (
    read_fields,
    read_float,
    read_int,
    read_list,
    read_map,
    read_text,
)

Features = Sequence[tuple[str, float]]
Scored = list[tuple[str, float]]

METHODS = (
    "inverted_index",
    "inverted_index_euclid",
    "lsh",
    "minhash",
    "euclid_lsh",
    "nearest_neighbor_recommender",
)
#: Distances one pass of ``neighbor_rows_from_ids`` computes at most (keys times rows: a
#: few arrays of 2 MiB, whatever the call asks).
DISTANCES_CHUNK = 1 << 18
#: How many similar rows ``complete`` averages (Jubatus's ``complete_row_similar_num_``).
COMPLETE_ROW_SIMILAR_NUM = 128


class OriginalRows:
    """Rows as ``update_row`` gave them, features in Jubatus's column order."""

    def __init__(self) -> None:
        self.feature_ids: dict[str, int] = {}
        self.rows: dict[str, dict[str, float]] = {}
        self._ordered: dict[str, list[tuple[str, float]]] = {}

    def update(self, key: str, features: Features) -> bool:
        """Set the listed features of row ``key``; True when the row is new and
        ``features`` (each once, in column order) is already what :meth:`get` gives."""
        row = self.rows.get(key)
        in_order = row is None
        if row is None:
            row = self.rows[key] = {}
        ids = self.feature_ids
        last = -1
        for feature, value in features:
            column = ids.get(feature)
            if column is None:
                column = ids[feature] = len(ids)
            if column <= last:
                in_order = False
            last = column
            row[feature] = value
        if not in_order:
            self._ordered.pop(key, None)
        return in_order

    def get(self, key: str) -> list[tuple[str, float]]:
        ordered = self._ordered.get(key)
        if ordered is not None:
            return ordered
        row = self.rows.get(key)
        if not row:
            return []
        ids = self.feature_ids
        ordered = sorted(row.items(), key=lambda item: ids[item[0]])
        self._ordered[key] = ordered
        return ordered

    def remove(self, key: str) -> None:
        self.rows.pop(key, None)
        self._ordered.pop(key, None)

    def clear(self) -> None:
        self.feature_ids = {}
        self.rows = {}
        self._ordered = {}

    def pack(self) -> dict[str, object]:
        return {
            "features": sorted(self.feature_ids, key=self.feature_ids.__getitem__),
            "rows": {key: dict(row) for key, row in self.rows.items()},
        }

    @classmethod
    def unpack(cls, value: object, path: str) -> OriginalRows:
        fields = read_fields(value, path, ("features", "rows"))
        store = cls()
        for name in read_list(fields["features"], f"{path}.features"):
            store.feature_ids.setdefault(
                read_text(name, f"{path}.features"), len(store.feature_ids)
            )
        for key, row in read_map(fields["rows"], f"{path}.rows").items():
            values = {
                feature: read_float(v, f"{path}.rows[{key!r}]")
                for feature, v in read_map(row, f"{path}.rows[{key!r}]").items()
            }
            for feature in values:
                store.feature_ids.setdefault(feature, len(store.feature_ids))
            store.rows[key] = values
        return store


class _BitIndex:
    """Jubatus's ``bit_index_storage`` for the recommender's ``lsh`` and ``minhash``."""

    def __init__(self, method: str, hash_num: int, owner: str) -> None:
        self.method = method
        self.hash_num = hash_num
        self.table = BitTable(owner, hash_num, with_norm=False)
        self.cache = ProjectionCache(hash_num) if method == "lsh" else None
        self.removed = ChangeLog(owner)

    def bits(self, features: Features) -> np.ndarray:
        if self.cache is not None:
            return projection_bits(features, self.cache)
        return pack_bits(minhash_bits(features, self.hash_num, double_value=True))

    def rank(self, words: np.ndarray, count: int) -> Scored:
        size = len(self.table)
        if size == 0 or count <= 0:
            return []
        same = self.hash_num - self.table.hamming(words)
        keys = self.table.keys
        if size > count:  # only rows at least as good as the count-th can be in the answer
            threshold = np.partition(same, size - count)[size - count]
            picked = np.flatnonzero(same >= threshold)
        else:
            picked = np.arange(size)
        best = heapq.nlargest(count, ((int(same[i]), keys[i]) for i in picked))
        return [(key, matches / self.hash_num) for matches, key in best]


class RecommenderIndex:
    """One of Jubatus's recommender methods (see the module docstring)."""

    def __init__(self, method: str, parameter: object, owner: str, path: str = "parameter") -> None:
        if method not in METHODS:
            raise ConfigError(f"method: unknown method {method!r} (known: {', '.join(METHODS)})")
        self.method = method
        self.parameter = parameter
        self.owner = owner
        self.path = path
        self._build()

    def _build(self) -> None:
        method = self.method
        parameter = self.parameter
        path = self.path
        self.original = OriginalRows()
        self.inverted: InvertedIndex | None = None
        self.bit_index: _BitIndex | None = None
        self.lsh_index: LshIndex | None = None
        self.neighbors: NearestNeighborIndex | None = None
        self.unlearner: Unlearner | None = None
        self.ignore_orthogonal = False
        if method in ("inverted_index", "inverted_index_euclid"):
            keys = ["unlearner", "unlearner_parameter"]
            if method == "inverted_index_euclid":
                keys.append("ignore_orthogonal")
            params = Params({} if parameter is None else parameter, path)
            params.only(keys)
            self.ignore_orthogonal = params.boolean("ignore_orthogonal", False)
            self.unlearner = create_unlearner(params)
            self.inverted = InvertedIndex(self.owner)
        elif method in ("lsh", "minhash"):
            params = Params(parameter, path)
            keys = ["hash_num", "unlearner", "unlearner_parameter"]
            if method == "lsh":
                keys += ["threads", "cache_size"]
            params.only(keys)
            hash_num = params.integer("hash_num", bounds=(-(2**63), 2**63 - 1))
            params.check(hash_num >= 1, "hash_num", "must be >= 1")
            params.check(hash_num <= 1 << 20, "hash_num", "must be at most 1048576")
            if params.has("threads"):
                params.integer("threads")
            if params.has("cache_size"):
                params.integer("cache_size")
            self.unlearner = create_unlearner(params)
            self.bit_index = _BitIndex(method, hash_num, self.owner)
        elif method == "euclid_lsh":
            params = Params(parameter, path)
            params.only(
                [
                    "hash_num",
                    "table_num",
                    "bin_width",
                    "probe_num",
                    "seed",
                    "threads",
                    "cache_size",
                    "unlearner",
                    "unlearner_parameter",
                ]
            )
            hash_num = params.integer("hash_num", 64, bounds=(-(2**63), 2**63 - 1))
            table_num = params.integer("table_num", 4, bounds=(-(2**63), 2**63 - 1))
            bin_width = params.float32("bin_width", 100.0)
            probe_num = params.integer("probe_num", 64)
            seed = params.integer("seed", 1091)
            params.check(hash_num >= 1, "hash_num", "must be >= 1")
            params.check(table_num >= 1, "table_num", "must be >= 1")
            params.check(
                hash_num * table_num <= 1 << 20, "table_num", "hash_num x table_num is too large"
            )
            params.check(bin_width > 0.0, "bin_width", "must be > 0")
            params.check(probe_num >= 0, "probe_num", "must be >= 0")
            params.check(seed >= 0, "seed", "must be >= 0")
            if params.has("threads"):
                params.integer("threads")
            if params.has("cache_size"):
                params.integer("cache_size")
            self.unlearner = create_unlearner(params)
            self.lsh_index = LshIndex(hash_num, table_num, bin_width, probe_num, seed, self.owner)
        else:  # nearest_neighbor_recommender
            params = Params(parameter, path)
            params.only(["method", "parameter", "unlearner", "unlearner_parameter"])
            self.neighbors = create_nearest_neighbor(
                params.text("method"), params.raw("parameter"), self.owner, f"{path}.parameter"
            )
            self.unlearner = create_unlearner(params)
        if self.unlearner is not None:
            self.unlearner.forget = self._remove

    def _remove(self, key: str) -> None:
        self.original.remove(key)
        if self.inverted is not None:
            self.inverted.remove_row(key)
        elif self.bit_index is not None:
            self.bit_index.table.delete(key)
            self.bit_index.removed.touch(key)
        elif self.lsh_index is not None:
            self.lsh_index.remove_row(key)
        elif self.neighbors is not None:
            self.neighbors.table.delete(key)

    # -- queries ---------------------------------------------------------------------------

    def similar(self, query: Features, count: int) -> Scored:
        """Rows most similar to ``query``, best first."""
        if count <= 0:
            return []
        if self.inverted is not None:
            if self.method == "inverted_index":
                return self.inverted.cosine(query, count)
            return self.inverted.euclid(query, count, self.ignore_orthogonal)
        if self.bit_index is not None:
            return self.bit_index.rank(self.bit_index.bits(query), count)
        if self.lsh_index is not None:
            return self.lsh_index.similar_row_from_features(query, count)
        assert self.neighbors is not None
        return self.neighbors.similar_row_from_features(query, count)

    def similar_to(self, key: str, count: int) -> Scored:
        """Rows similar to row ``key`` as Jubatus's method looks them up."""
        if count <= 0:
            return []
        if self.bit_index is not None:
            position = self.bit_index.table.index.get(key)
            if position is None:
                return []
            return self.bit_index.rank(self.bit_index.table.matrix[position].copy(), count)
        if self.lsh_index is not None:
            return self.lsh_index.similar_row_from_id(key, count)
        return self.similar(self.original.get(key), count)

    def neighbor_row_from_features(self, query: Features, count: int) -> Scored:
        """Rows by distance, nearest first."""
        if self.neighbors is not None:
            return self.neighbors.neighbor_row_from_features(query, count)
        return [(key, self._distance(score)) for key, score in self.similar(query, count)]

    def neighbor_row_from_id(self, key: str, count: int) -> Scored:
        if self.neighbors is not None:
            return self.neighbors.neighbor_row_from_features(self.original.get(key), count)
        return [(k, self._distance(score)) for k, score in self.similar_to(key, count)]

    def neighbor_rows_from_ids(self, keys: Sequence[str], count: int) -> list[Scored]:
        """``neighbor_row_from_id`` for each key (the same answers; ``inverted_index_euclid``
        asks them in one pass over the index)."""
        inverted = self.inverted
        if (
            inverted is not None
            and self.method == "inverted_index_euclid"
            and not self.ignore_orthogonal
        ):
            get = self.original.get
            # A pass holds a few (keys x rows) arrays: at most DISTANCES_CHUNK values each.
            step = max(1, DISTANCES_CHUNK // max(1, len(inverted.keys)))
            found: list[Scored] = []
            for start in range(0, len(keys), step):
                chunk = [get(key) for key in keys[start : start + step]]
                found.extend(inverted.euclid_distances(chunk, count))
            return found
        return [self.neighbor_row_from_id(key, count) for key in keys]

    def _distance(self, score: float) -> float:
        if self.method in ("inverted_index_euclid", "euclid_lsh"):
            return -score
        return 1.0 - score

    def decode(self, key: str) -> list[tuple[str, float]]:
        return self.original.get(key)

    def complete(self, query: Features) -> list[tuple[str, float]]:
        """The mean of the original rows of the 128 most similar rows held here."""
        gathered: list[tuple[str, float]] = []
        found = 0
        for key, _ in self.similar(query, COMPLETE_ROW_SIMILAR_NUM):
            row = self.original.get(key)
            if not row:
                continue
            found += 1
            gathered.extend(row)
        if found == 0:
            return []
        return [(name, value / found) for name, value in sort_and_merge(gathered)]

    def all_rows(self) -> list[str]:
        if self.inverted is not None:
            return self.inverted.all_ids()
        if self.bit_index is not None:
            return list(self.bit_index.table.keys)
        if self.lsh_index is not None:
            return self.lsh_index.all_ids()
        assert self.neighbors is not None
        return list(self.neighbors.table.keys)

    def row_count(self) -> int:
        if self.inverted is not None:
            return len(self.inverted.all_ids())
        if self.bit_index is not None:
            return len(self.bit_index.table)
        if self.lsh_index is not None:
            return len(self.lsh_index.entries)
        assert self.neighbors is not None
        return len(self.neighbors.table)

    # -- changes ---------------------------------------------------------------------------

    def update_row(self, key: str, features: Features) -> None:
        """Set the listed features of row ``key``; ``ValueError`` when the unlearner is full."""
        unlearner = self.unlearner
        if unlearner is not None:
            full = not unlearner.can_touch(key)
            if self.neighbors is not None and not full:
                full = not unlearner.touch(key)
            if full:
                raise ValueError(
                    "cannot add new row as number of sticky rows reached the maximum size "
                    f"of unlearner: {key}"
                )
        in_order = self.original.update(key, features)
        if self.inverted is not None:
            self.inverted.update_row(key, features)
        else:
            # The row in column order: as given when it is new and came so (no sort).
            row = features if in_order else self.original.get(key)
            if self.bit_index is not None:
                self.bit_index.table.put(key, self.bit_index.bits(row))
                self.bit_index.removed.forget(key)
            elif self.lsh_index is not None:
                self.lsh_index.set_row(key, row)
            else:
                assert self.neighbors is not None
                self.neighbors.set_row(key, row)
        if unlearner is not None and self.neighbors is None:
            unlearner.touch(key)

    def clear_row(self, key: str) -> None:
        self._remove(key)
        if self.unlearner is not None:
            self.unlearner.remove(key)

    def clear(self) -> None:
        self._build()

    def status(self) -> dict[str, str]:
        return self.unlearner.status() if self.unlearner is not None else {}

    # -- save, load and mix ----------------------------------------------------------------

    def pack(self) -> dict[str, object]:
        if self.inverted is not None:
            index: object = self.inverted.pack()
        elif self.bit_index is not None:
            index = self.bit_index.table.pack()
        elif self.lsh_index is not None:
            index = self.lsh_index.pack()
        else:
            assert self.neighbors is not None
            index = self.neighbors.table.pack()
        return {
            "original": self.original.pack(),
            "index": index,
            "unlearner": self.unlearner.pack() if self.unlearner is not None else None,
        }

    @classmethod
    def unpack(
        cls, value: object, path: str, method: str, parameter: object, owner: str
    ) -> RecommenderIndex:
        """A new index from :meth:`pack`; raises :class:`DiffError` when it does not fit."""
        fields = read_fields(value, path, ("original", "index", "unlearner"))
        fresh = cls(method, parameter, owner)
        original = OriginalRows.unpack(fields["original"], f"{path}.original")
        index = fields["index"]
        where = f"{path}.index"
        if fresh.inverted is not None:
            fresh.inverted.unpack_into(index, where)
        elif fresh.bit_index is not None:
            fresh.bit_index.table.unpack_into(index, where)
        elif fresh.lsh_index is not None:
            fresh.lsh_index.unpack_into(index, where)
        elif fresh.neighbors is not None:
            fresh.neighbors.table.unpack_into(index, where)
        if fresh.unlearner is not None and fields["unlearner"] is not None:
            fresh.unlearner.unpack(fields["unlearner"], f"{path}.unlearner")
        fresh.original = original
        return fresh

    def take_rows(self) -> dict[str, object]:
        """The rows changed or removed here since the last diff."""
        if self.inverted is not None:
            return dict(self.inverted.take_diff())
        if self.bit_index is not None:
            rows: dict[str, object] = dict(self.bit_index.table.take_diff())
            for key in self.bit_index.removed.take():
                clock, owner = self.bit_index.removed.versions[key]
                rows[key] = [clock, owner, None]
            return rows
        if self.lsh_index is not None:
            return dict(self.lsh_index.take_diff())
        assert self.neighbors is not None
        return dict(self.neighbors.table.take_diff())

    def apply_rows(self, rows: dict[str, object], path: str) -> list[str]:
        """Peers' rows (a row's newest version wins); returns the ids changed here."""
        if self.inverted is not None:
            applied = [key for key, _ in self.inverted.apply_rows(rows, path)]
        elif self.lsh_index is not None:
            applied = self.lsh_index.apply_rows(rows, path)
        else:
            table = self.bit_index.table if self.bit_index is not None else self.neighbors.table  # type: ignore[union-attr]
            present = {k: v for k, v in rows.items() if isinstance(v, list) and v[2] is not None}
            removed = [k for k in rows if k not in present]
            applied = table.apply_rows(present, path)
            for key in removed:
                row = read_list(rows[key], f"{path}[{key!r}]")
                version = (read_int(row[0], path), read_text(row[1], path))
                position = table.index.get(key)
                if position is not None and table.versions[position] > version:
                    continue
                table.delete(key)
                applied.append(key)
        unlearner = self.unlearner
        if unlearner is not None:
            present_rows = set(self.all_rows())
            for key in applied:
                if key in present_rows:
                    if unlearner.can_touch(key):
                        unlearner.touch(key)
                else:
                    unlearner.remove(key)
        return applied

    def after_mix(self) -> None:
        if self.inverted is not None:
            self.inverted.log.after_mix()
        elif self.lsh_index is not None:
            self.lsh_index.log.after_mix()
        elif self.bit_index is not None:
            self.bit_index.table.forget_sent()
            self.bit_index.removed.after_mix()
        elif self.neighbors is not None:
            self.neighbors.table.forget_sent()


def l2norm(features: Features) -> float:
    total = 0.0
    for _, value in features:
        total += value * value
    return math.sqrt(total)


def cosine(left: Features, right: Features) -> float:
    """Jubatus's ``calc_similarity``: norms first, then the dot product of the sorted lists."""
    left_norm = l2norm(left)
    right_norm = l2norm(right)
    if left_norm == 0.0 or right_norm == 0.0:
        return 0.0
    lhs = sorted(left)
    rhs = sorted(right)
    i = j = 0
    dot = 0.0
    while i < len(lhs) and j < len(rhs):
        if lhs[i][0] < rhs[j][0]:
            i += 1
        elif lhs[i][0] > rhs[j][0]:
            j += 1
        else:
            dot += lhs[i][1] * rhs[j][1]
            i += 1
            j += 1
    return dot / left_norm / right_norm
