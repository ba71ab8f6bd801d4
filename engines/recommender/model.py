"""The recommender engine's model: Jubatus's recommender methods over a row store.

Every row's features (as ``update_row`` set them; a later ``update_row`` overwrites the
features it lists and keeps the others) are kept in the *original store*, in Jubatus's
column order (a feature's first appearance anywhere), for ``decode_row``,
``complete_row_*`` and the hashed methods, which hash a row's whole original. The methods:

- ``inverted_index``: cosine similarity over an inverted index;
- ``inverted_index_euclid``: ``-distance`` (``ignore_orthogonal`` only looks at rows that
  share a feature);
- ``lsh``, ``minhash``: the share of equal bits of Jubatus's hashes (ties by id, the larger
  first, as Jubatus's heap);
- ``euclid_lsh``: E2LSH with probing (:mod:`engines.common.lsh_index`);
- ``nearest_neighbor_recommender``: a nearest-neighbour engine (``lsh``, ``minhash``,
  ``euclid_lsh``) and its similarity.

``complete_row_*`` averages the original rows of the 128 most similar rows (those this
server holds); ``similar_row_*_and_score`` keeps the rows scoring at least ``score``,
``*_and_rate`` the best ``ceil(rows x rate)``. An ``unlearner`` (``lru``, ``random``) bounds
the rows. As in Jubatus, the original store stays on the server that was given the row
(queries by id are routed there by ``cht``); the index mixes: each server's diff holds its
changed and removed rows, and a row's newest version wins everywhere.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from engines.common.config import Params, engine_config
from engines.common.converter import DatumLike
from engines.common.fv_converter import (
    FeatureConverter,
    KeywordWeights,
    WeightManager,
    mix_keyword_weights,
    revert,
    sort_and_merge,
)
from engines.common.hashing import ProjectionCache, minhash_bits, pack_bits, random_projection
from engines.common.inverted_index import InvertedIndex
from engines.common.lsh_index import LshIndex
from engines.common.nearest_neighbor import (
    BitTable,
    NearestNeighborIndex,
    create_nearest_neighbor,
    owner_id,
)
from engines.common.unlearner import Unlearner, create_unlearner
from engines.common.versions import ChangeLog, merge_rows, mix_versioned
from runtime.errors import ConfigError, ModelFileError
from runtime.mix.mixable import (
    DiffError,
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
#: How many similar rows ``complete_row`` averages (Jubatus's ``complete_row_similar_num_``).
COMPLETE_ROW_SIMILAR_NUM = 128


class OriginalRows:
    """Rows as ``update_row`` gave them, features in Jubatus's column order."""

    def __init__(self) -> None:
        self.feature_ids: dict[str, int] = {}
        self.rows: dict[str, dict[str, float]] = {}

    def update(self, key: str, features: Features) -> None:
        row = self.rows.setdefault(key, {})
        ids = self.feature_ids
        for feature, value in features:
            if feature not in ids:
                ids[feature] = len(ids)
            row[feature] = value

    def get(self, key: str) -> list[tuple[str, float]]:
        row = self.rows.get(key)
        if not row:
            return []
        ids = self.feature_ids
        return sorted(row.items(), key=lambda item: ids[item[0]])

    def remove(self, key: str) -> None:
        self.rows.pop(key, None)

    def clear(self) -> None:
        self.feature_ids = {}
        self.rows = {}

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
            return pack_bits(random_projection(features, self.cache) > 0)
        return pack_bits(minhash_bits(features, self.hash_num, double_value=True))

    def rank(self, words: np.ndarray, count: int) -> Scored:
        size = len(self.table)
        if size == 0 or count <= 0:
            return []
        same = self.hash_num - self.table.hamming(words)
        keys = self.table.keys
        best = heapq.nlargest(count, ((int(same[i]), keys[i]) for i in range(size)))
        return [(key, matches / self.hash_num) for matches, key in best]


class RecommenderModel:
    """Jubatus's recommender engine (see the module docstring)."""

    def __init__(self, config: object) -> None:
        params = engine_config(
            config, ("method", "parameter", "converter"), ("method", "converter")
        )
        self.method = params.text("method")
        if self.method not in METHODS:
            raise ConfigError(
                f"method: unknown method {self.method!r} (known: {', '.join(METHODS)})"
            )
        self.converter = FeatureConverter.from_config(params.raw("converter"))
        self._parameter = params.fields.get("parameter")
        self.owner = owner_id()
        self._build()
        self.update_row_count = 0
        self.clear_row_count = 0
        self._version = 0

    def _build(self) -> None:
        """The method's index from the ``parameter`` block (checked as Jubatus does)."""
        method = self.method
        parameter = self._parameter
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
            params = Params({} if parameter is None else parameter, "parameter")
            params.only(keys)
            self.ignore_orthogonal = params.boolean("ignore_orthogonal", False)
            self.unlearner = create_unlearner(params)
            self.inverted = InvertedIndex(self.owner)
        elif method in ("lsh", "minhash"):
            params = Params(parameter, "parameter")
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
            params = Params(parameter, "parameter")
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
            params = Params(parameter, "parameter")
            params.only(["method", "parameter", "unlearner", "unlearner_parameter"])
            self.neighbors = create_nearest_neighbor(
                params.text("method"), params.raw("parameter"), self.owner, "parameter.parameter"
            )
            self.unlearner = create_unlearner(params)
        if self.unlearner is not None:
            self.unlearner.forget = self._forget

    def _forget(self, key: str) -> None:
        """The unlearner dropped ``key``."""
        self._remove(key)

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

    def _features(self, datum: DatumLike, update: bool) -> list[tuple[str, float]]:
        try:
            if update:
                return self.converter.convert_and_update(datum)
            return self.converter.convert(datum)
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"datum: {error}") from None

    # -- the index -------------------------------------------------------------------------

    def _similar(self, query: Features, count: int) -> Scored:
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

    def _similar_to(self, key: str, count: int) -> Scored:
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
        return self._similar(self.original.get(key), count)

    def neighbor_row_from_features(self, query: Features, count: int) -> Scored:
        """Rows by distance (for anomaly's LOF): each method's similarity turned back."""
        if self.neighbors is not None:
            return self.neighbors.neighbor_row_from_features(query, count)
        return [(key, self._distance(score)) for key, score in self._similar(query, count)]

    def neighbor_row_from_id(self, key: str, count: int) -> Scored:
        if self.neighbors is not None:
            return self.neighbors.neighbor_row_from_features(self.original.get(key), count)
        return [(k, self._distance(score)) for k, score in self._similar_to(key, count)]

    def _distance(self, score: float) -> float:
        if self.method in ("inverted_index_euclid", "euclid_lsh"):
            return -score
        return 1.0 - score

    def _row_count(self) -> int:
        return len(self.get_all_rows())

    # -- the service's calls ---------------------------------------------------------------

    def update_row(self, key: str, datum: DatumLike) -> bool:
        self.converter.check(datum)
        unlearner = self.unlearner
        if unlearner is not None and not unlearner.can_touch(key):
            raise ValueError(
                "cannot add new row as number of sticky rows reached the maximum size of "
                f"unlearner: {key}"
            )
        features = self._features(datum, update=True)
        self.update_row_count += 1
        if self.neighbors is not None and unlearner is not None and not unlearner.touch(key):
            raise ValueError(
                "cannot add new ID as number of sticky IDs reached the maximum size of "
                f"unlearner: {key}"
            )
        self.original.update(key, features)
        if self.inverted is not None:
            self.inverted.update_row(key, features)
        elif self.bit_index is not None:
            self.bit_index.table.put(key, self.bit_index.bits(self.original.get(key)))
            self.bit_index.removed.forget(key)
        elif self.lsh_index is not None:
            self.lsh_index.set_row(key, self.original.get(key))
        else:
            assert self.neighbors is not None
            self.neighbors.set_row(key, self.original.get(key))
        if unlearner is not None and self.neighbors is None:
            unlearner.touch(key)
        return True

    def clear_row(self, key: str) -> bool:
        self.clear_row_count += 1
        self._remove(key)
        if self.unlearner is not None:
            self.unlearner.remove(key)
        return True

    def clear(self) -> bool:
        self.update_row_count = 0
        self.clear_row_count = 0
        self.converter.weights.clear()
        self._build()
        return True

    def complete_row_from_id(
        self, key: str
    ) -> tuple[list[tuple[str, str]], list[tuple[str, float]]]:
        return self._complete(self.original.get(key))

    def complete_row_from_datum(
        self, datum: DatumLike
    ) -> tuple[list[tuple[str, str]], list[tuple[str, float]]]:
        return self._complete(self._features(datum, update=False))

    def _complete(self, query: Features) -> tuple[list[tuple[str, str]], list[tuple[str, float]]]:
        similar = self._similar(query, COMPLETE_ROW_SIMILAR_NUM)
        gathered: list[tuple[str, float]] = []
        found = 0
        for key, _ in similar:
            row = self.original.get(key)
            if not row:
                continue
            found += 1
            gathered.extend(row)
        if found == 0:
            return [], []
        return revert([(name, value / found) for name, value in sort_and_merge(gathered)])

    def similar_row_from_id(self, key: str, size: int) -> Scored:
        return self._similar_to(key, size)

    def similar_row_from_id_and_score(self, key: str, score: float) -> Scored:
        return [r for r in self._similar_to(key, self._row_count()) if r[1] >= score]

    def similar_row_from_id_and_rate(self, key: str, rate: float) -> Scored:
        return self._similar_to(key, self._rate_count(rate))

    def similar_row_from_datum(self, datum: DatumLike, size: int) -> Scored:
        return self._similar(self._features(datum, update=False), size)

    def similar_row_from_datum_and_score(self, datum: DatumLike, score: float) -> Scored:
        query = self._features(datum, update=False)
        return [r for r in self._similar(query, self._row_count()) if r[1] >= score]

    def similar_row_from_datum_and_rate(self, datum: DatumLike, rate: float) -> Scored:
        count = self._rate_count(rate)
        return self._similar(self._features(datum, update=False), count)

    def _rate_count(self, rate: float) -> int:
        if not (rate > 0 and rate <= 1):
            raise ValueError(f"invalid parameter (expected: 0 < rate <= 1), got {rate}")
        return math.ceil(self._row_count() * rate)

    def decode_row(self, key: str) -> tuple[list[tuple[str, str]], list[tuple[str, float]]]:
        return revert(self.original.get(key))

    def get_all_rows(self) -> list[str]:
        if self.inverted is not None:
            return self.inverted.all_ids()
        if self.bit_index is not None:
            return list(self.bit_index.table.keys)
        if self.lsh_index is not None:
            return self.lsh_index.all_ids()
        assert self.neighbors is not None
        return list(self.neighbors.table.keys)

    def calc_similarity(self, lhs: DatumLike, rhs: DatumLike) -> float:
        left = self._features(lhs, update=False)
        right = self._features(rhs, update=False)
        left_norm = l2norm(left)
        right_norm = l2norm(right)
        if left_norm == 0.0 or right_norm == 0.0:
            return 0.0
        left = sorted(left)
        right = sorted(right)
        i = j = 0
        dot = 0.0
        while i < len(left) and j < len(right):
            if left[i][0] < right[j][0]:
                i += 1
            elif left[i][0] > right[j][0]:
                j += 1
            else:
                dot += left[i][1] * right[j][1]
                i += 1
                j += 1
        return dot / left_norm / right_norm

    def calc_l2norm(self, datum: DatumLike) -> float:
        return l2norm(self._features(datum, update=False))

    def get_status(self) -> dict[str, str]:
        status = {
            "method": self.method,
            "clear_row_cnt": str(self.clear_row_count),
            "update_row_cnt": str(self.update_row_count),
            "num_rows": str(self._row_count()),
            "num_original_rows": str(len(self.original.rows)),
            "model_version": str(self._version),
            **self.converter.weights.status(),
        }
        if self.unlearner is not None:
            status.update(self.unlearner.status())
        return status

    # -- save and load ---------------------------------------------------------------------

    def _index_pack(self) -> object:
        if self.inverted is not None:
            return self.inverted.pack()
        if self.bit_index is not None:
            return self.bit_index.table.pack()
        if self.lsh_index is not None:
            return self.lsh_index.pack()
        assert self.neighbors is not None
        return self.neighbors.table.pack()

    def pack(self) -> object:
        return {
            "version": self._version,
            "original": self.original.pack(),
            "index": self._index_pack(),
            "unlearner": self.unlearner.pack() if self.unlearner is not None else None,
            "weights": self.converter.weights.pack(),
        }

    def unpack(self, payload: object) -> None:
        saved = self.__dict__.copy()
        try:
            fields = read_fields(
                payload, "model", ("version", "original", "index", "unlearner", "weights")
            )
            version = read_int(fields["version"], "model.version")
            weights = WeightManager.unpack(fields["weights"], "model.weights")
            original = OriginalRows.unpack(fields["original"], "model.original")
            self._build()
            index = fields["index"]
            if self.inverted is not None:
                self.inverted.unpack_into(index, "model.index")
            elif self.bit_index is not None:
                self.bit_index.table.unpack_into(index, "model.index")
            elif self.lsh_index is not None:
                self.lsh_index.unpack_into(index, "model.index")
            elif self.neighbors is not None:
                self.neighbors.table.unpack_into(index, "model.index")
            if self.unlearner is not None and fields["unlearner"] is not None:
                self.unlearner.unpack(fields["unlearner"], "model.unlearner")
        except DiffError as error:
            self.__dict__.update(saved)
            raise ModelFileError(f"recommender model does not fit: {error}") from None
        self.original = original
        self.converter.weights = weights
        self._version = version

    # -- Mixable ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def _take_rows(self) -> dict[str, object]:
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

    def get_diff(self) -> object:
        return {
            "version": self._version,
            "rows": self._take_rows(),
            "weights": self.converter.weights.take_diff(),
        }

    def mix(self, lhs: object, rhs: object) -> object:
        return mix_versioned(
            lhs,
            rhs,
            lambda left, right: {
                "rows": merge_rows(left.get("rows"), right.get("rows"), "rows"),
                "weights": mix_keyword_weights(
                    left.get("weights"), right.get("weights"), "weights"
                ),
            },
        )

    def _apply_rows(self, rows: dict[str, object], path: str) -> list[str]:
        if self.inverted is not None:
            return [key for key, _ in self.inverted.apply_rows(rows, path)]
        if self.lsh_index is not None:
            return self.lsh_index.apply_rows(rows, path)
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
        table.forget_sent()
        if self.bit_index is not None:
            self.bit_index.removed.after_mix()
        return applied

    def put_diff(self, mixed: object) -> bool:
        fields = read_map(mixed, "diff")
        if read_int(fields.get("version"), "diff.version") != self._version:
            return False
        weights = KeywordWeights.from_plain(fields.get("weights"), "diff.weights")
        applied = self._apply_rows(read_map(fields.get("rows"), "diff.rows"), "diff.rows")
        if self.inverted is not None:
            self.inverted.log.after_mix()
        if self.lsh_index is not None:
            self.lsh_index.log.after_mix()
        unlearner = self.unlearner
        if unlearner is not None:
            for key in applied:
                if key in self.get_all_rows() and unlearner.can_touch(key):
                    unlearner.touch(key)
        self.converter.weights.apply_mixed(weights)
        self._version += 1
        return True

    def get_model(self) -> object:
        return {"version": self._version, "model": self.pack()}

    def set_model(self, model: object) -> None:
        fields = read_fields(model, "model", ("version", "model"))
        version = read_int(fields["version"], "model.version")
        try:
            self.unpack(fields["model"])
        except ModelFileError as error:
            raise DiffError(str(error)) from None
        self.original = OriginalRows()  # the original rows stay with the server given them
        manager = self.converter.weights
        manager.apply_mixed(manager.diff.copy())
        self._version = version


def l2norm(features: Features) -> float:
    total = 0.0
    for _, value in features:
        total += value * value
    return math.sqrt(total)
