"""The recommender engine's model: Jubatus's converter in front of a
:class:`~engines.common.recommender_index.RecommenderIndex` (``inverted_index``,
``inverted_index_euclid``, ``lsh``, ``minhash``, ``euclid_lsh``,
``nearest_neighbor_recommender``; an optional ``unlearner``).

Every call of the IDL: ``update_row`` (a row's listed features are set, the others kept),
``clear_row``, ``clear``, ``complete_row_from_id|datum`` (the mean of the 128 most similar
rows' originals), ``similar_row_from_id|datum`` with ``size``, ``_and_score`` (rows scoring
at least ``score``) and ``_and_rate`` (the best ``ceil(rows x rate)``, ``0 < rate <= 1``),
``decode_row``, ``get_all_rows``, ``calc_similarity`` and ``calc_l2norm``; answers as
Jubatus's core gives them (``tests/engines/recommender``). Unknown ids find nothing.

The mix: the index's changed rows (newest version wins) and the converter's document
counts (added up); diffs of different versions do not combine, the newer wins.
"""

from __future__ import annotations

import math

from engines.common.config import engine_config
from engines.common.converter import DatumLike
from engines.common.fv_converter import (
    FeatureConverter,
    KeywordWeights,
    WeightManager,
    mix_keyword_weights,
    revert,
)
from engines.common.nearest_neighbor import owner_id
from engines.common.recommender_index import RecommenderIndex, Scored, cosine, l2norm
from engines.common.versions import merge_rows, mix_versioned
from runtime.errors import ModelFileError
from runtime.mix.mixable import DiffError, read_fields, read_int, read_map

DatumParts = tuple[list[tuple[str, str]], list[tuple[str, float]]]


class RecommenderModel:
    """Jubatus's recommender engine (see the module docstring)."""

    def __init__(self, config: object) -> None:
        params = engine_config(
            config, ("method", "parameter", "converter"), ("method", "converter")
        )
        self.method = params.text("method")
        self._parameter = params.fields.get("parameter")
        self.converter = FeatureConverter.from_config(params.raw("converter"))
        self.owner = owner_id()
        self.index = RecommenderIndex(self.method, self._parameter, self.owner)
        self.update_row_count = 0
        self.clear_row_count = 0
        self._version = 0

    def _features(
        self, datum: DatumLike, update: bool, checked: bool = False
    ) -> list[tuple[str, float]]:
        try:
            if update:
                return self.converter.convert_and_update(datum, checked=checked)
            return self.converter.convert(datum)
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"datum: {error}") from None

    def _check_storable(self, datum: DatumLike) -> None:
        try:
            self.converter.check_storable(datum)
        except ValueError as error:
            raise ValueError(f"datum: {error}") from None

    # -- the service's calls ---------------------------------------------------------------

    def update_row(self, key: str, datum: DatumLike) -> bool:
        self.converter.check(datum)
        self._check_storable(datum)
        unlearner = self.index.unlearner
        if unlearner is not None and not unlearner.can_touch(key):
            raise ValueError(
                "cannot add new row as number of sticky rows reached the maximum size of "
                f"unlearner: {key}"
            )
        features = self._features(datum, update=True, checked=True)
        self.update_row_count += 1
        self.index.update_row(key, features)
        return True

    def clear_row(self, key: str) -> bool:
        self.clear_row_count += 1
        self.index.clear_row(key)
        return True

    def clear(self) -> bool:
        self.update_row_count = 0
        self.clear_row_count = 0
        self.converter.weights.clear()
        self.index.clear()
        return True

    def complete_row_from_id(self, key: str) -> DatumParts:
        return revert(self.index.complete(self.index.decode(key)))

    def complete_row_from_datum(self, datum: DatumLike) -> DatumParts:
        return revert(self.index.complete(self._features(datum, update=False)))

    def similar_row_from_id(self, key: str, size: int) -> Scored:
        return self.index.similar_to(key, size)

    def similar_row_from_id_and_score(self, key: str, score: float) -> Scored:
        return [r for r in self.index.similar_to(key, self.index.row_count()) if r[1] >= score]

    def similar_row_from_id_and_rate(self, key: str, rate: float) -> Scored:
        return self.index.similar_to(key, self._rate_count(rate))

    def similar_row_from_datum(self, datum: DatumLike, size: int) -> Scored:
        return self.index.similar(self._features(datum, update=False), size)

    def similar_row_from_datum_and_score(self, datum: DatumLike, score: float) -> Scored:
        query = self._features(datum, update=False)
        return [r for r in self.index.similar(query, self.index.row_count()) if r[1] >= score]

    def similar_row_from_datum_and_rate(self, datum: DatumLike, rate: float) -> Scored:
        count = self._rate_count(rate)
        return self.index.similar(self._features(datum, update=False), count)

    def _rate_count(self, rate: float) -> int:
        if not (rate > 0 and rate <= 1):
            raise ValueError(f"invalid parameter (expected: 0 < rate <= 1), got {rate}")
        return math.ceil(self.index.row_count() * rate)

    def decode_row(self, key: str) -> DatumParts:
        return revert(self.index.decode(key))

    def get_all_rows(self) -> list[str]:
        return self.index.all_rows()

    def calc_similarity(self, lhs: DatumLike, rhs: DatumLike) -> float:
        return cosine(self._features(lhs, update=False), self._features(rhs, update=False))

    def calc_l2norm(self, datum: DatumLike) -> float:
        return l2norm(self._features(datum, update=False))

    def get_status(self) -> dict[str, str]:
        return {
            "method": self.method,
            "clear_row_cnt": str(self.clear_row_count),
            "update_row_cnt": str(self.update_row_count),
            "num_rows": str(self.index.row_count()),
            "num_original_rows": str(len(self.index.original.rows)),
            "model_version": str(self._version),
            **self.converter.weights.status(),
            **self.index.status(),
        }

    # -- save and load ---------------------------------------------------------------------

    def pack(self) -> object:
        return {
            "version": self._version,
            "index": self.index.pack(),
            "weights": self.converter.weights.pack(),
        }

    def unpack(self, payload: object) -> None:
        try:
            fields = read_fields(payload, "model", ("version", "index", "weights"))
            version = read_int(fields["version"], "model.version")
            weights = WeightManager.unpack(fields["weights"], "model.weights")
            index = RecommenderIndex.unpack(
                fields["index"], "model.index", self.method, self._parameter, self.owner
            )
        except DiffError as error:
            raise ModelFileError(f"recommender model does not fit: {error}") from None
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
            "rows": self.index.take_rows(),
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
        self.index.apply_rows(read_map(fields.get("rows"), "diff.rows"), "diff.rows")
        self.index.after_mix()
        self.converter.weights.apply_mixed(weights)
        self._version += 1
        return True

    def get_model(self) -> object:
        return {"version": self._version, "model": self.pack()}

    def set_model(self, model: object) -> None:
        """Become a copy of a peer's index; the originals stay with the servers given them."""
        fields = read_fields(model, "model", ("version", "model"))
        version = read_int(fields["version"], "model.version")
        try:
            self.unpack(fields["model"])
        except ModelFileError as error:
            raise DiffError(str(error)) from None
        self.index.original.clear()
        manager = self.converter.weights
        manager.apply_mixed(manager.diff.copy())
        self._version = version
