"""The nearest_neighbor engine's model: rows hashed by Jubatus's ``lsh``, ``minhash`` or
``euclid_lsh`` (:mod:`engines.common.nearest_neighbor`), found by distance or similarity.

``set_row(id, datum)`` converts the datum (counting it as a document for idf) and stores
its hash; ``neighbor_row_*`` list the nearest rows by distance, ``similar_row_*`` by
similarity (``1 - distance``, ``-distance`` for ``euclid_lsh``), both as Jubatus ranks them.
A query for an unknown id finds nothing, as in Jubatus.

The mix spreads rows: each server's diff holds the rows set there since the last mix, and
every server takes every row (a row set on two servers keeps its newest version), so a
query on any server sees the whole cluster's rows, which is why Jubatus's proxy sends
queries to one random server. Document counts add up.
"""

from __future__ import annotations

from engines.common.config import engine_config
from engines.common.converter import DatumLike
from engines.common.fv_converter import (
    FeatureConverter,
    KeywordWeights,
    WeightManager,
    mix_keyword_weights,
)
from engines.common.nearest_neighbor import (
    METHODS,
    NearestNeighborIndex,
    Scored,
    create_nearest_neighbor,
    owner_id,
)
from engines.common.versions import merge_rows, mix_versioned
from runtime.errors import ConfigError, ModelFileError
from runtime.mix.mixable import DiffError, read_fields, read_int, read_map


class NearestNeighborModel:
    """Jubatus's nearest_neighbor engine (see the module docstring)."""

    def __init__(self, config: object) -> None:
        params = engine_config(
            config, ("method", "parameter", "converter"), ("method", "converter")
        )
        method = params.text("method")
        if method not in METHODS:
            raise ConfigError(f"method: unknown method {method!r} (known: {', '.join(METHODS)})")
        self.method = method
        self._parameter = params.fields.get("parameter")
        self.converter = FeatureConverter.from_config(params.raw("converter"))
        self.owner = owner_id()
        self.index: NearestNeighborIndex = create_nearest_neighbor(
            method, self._parameter, self.owner
        )
        self.update_row_count = 0
        self._version = 0

    def _features(self, datum: DatumLike, update: bool) -> list[tuple[str, float]]:
        try:
            if update:  # (set_row checked it)
                return self.converter.convert_and_update(datum, checked=True)
            return self.converter.convert(datum)
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"datum: {error}") from None

    # -- the service's calls ---------------------------------------------------------------

    def set_row(self, key: str, datum: DatumLike) -> bool:
        self.converter.check(datum)
        try:
            self.converter.check_storable(datum)
        except ValueError as error:
            raise ValueError(f"datum: {error}") from None
        self.update_row_count += 1
        self.index.set_row(key, self._features(datum, update=True))
        return True

    def neighbor_row_from_id(self, key: str, size: int) -> Scored:
        return self.index.neighbor_row_from_id(key, size)

    def neighbor_row_from_datum(self, datum: DatumLike, size: int) -> Scored:
        return self.index.neighbor_row_from_features(self._features(datum, update=False), size)

    def similar_row_from_id(self, key: str, size: int) -> Scored:
        return self.index.similar_row_from_id(key, size)

    def similar_row_from_datum(self, datum: DatumLike, size: int) -> Scored:
        return self.index.similar_row_from_features(self._features(datum, update=False), size)

    def get_all_rows(self) -> list[str]:
        return list(self.index.table.keys)

    def clear(self) -> bool:
        self.update_row_count = 0
        self.converter.weights.clear()
        self.index.table.clear()
        return True

    def get_status(self) -> dict[str, str]:
        table = self.index.table
        return {
            "method": self.method,
            "update_row_cnt": str(self.update_row_count),
            "num_rows": str(len(table)),
            "data": str(len(table)),  # Jubatus's: its table's dump_json, the row count
            "model_version": str(self._version),
            **self.converter.weights.status(),
        }

    # -- save and load ---------------------------------------------------------------------

    def pack(self) -> object:
        return {
            "version": self._version,
            "table": self.index.table.pack(),
            "weights": self.converter.weights.pack(),
        }

    def unpack(self, payload: object) -> None:
        try:
            fields = read_fields(payload, "model", ("version", "table", "weights"))
            version = read_int(fields["version"], "model.version")
            weights = WeightManager.unpack(fields["weights"], "model.weights")
            index = create_nearest_neighbor(self.method, self._parameter, self.owner)
            index.table.unpack_into(fields["table"], "model.table")
        except DiffError as error:
            raise ModelFileError(f"nearest_neighbor model does not fit: {error}") from None
        self.index = index
        self.converter.weights = weights
        self._version = version

    # -- Mixable ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def get_diff(self) -> object:
        return {
            "version": self._version,
            "rows": self.index.table.take_diff(),
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

    def put_diff(self, mixed: object) -> bool:
        fields = read_map(mixed, "diff")
        if read_int(fields.get("version"), "diff.version") != self._version:
            return False
        weights = KeywordWeights.from_plain(fields.get("weights"), "diff.weights")
        rows = read_map(fields.get("rows"), "diff.rows")
        self.index.table.apply_rows(rows, "diff.rows")  # type: ignore[arg-type]
        self.index.table.forget_sent()
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
        manager = self.converter.weights
        manager.apply_mixed(manager.diff.copy())
        self._version = version
