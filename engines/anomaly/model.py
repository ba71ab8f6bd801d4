"""The anomaly engine's model: Jubatus's converter in front of ``lof`` or ``light_lof``
(:mod:`engines.common.lof`).

- ``add(datum)``: the datum is stored under a new id (the next of this model's counter,
  ``"0"`` first, as a standalone Jubatus server numbers them; through ``jubaanomaly_proxy``
  the proxy makes the id cluster-wide and calls ``update``/``overwrite`` with it) and its
  score returned; ``add_bulk`` stores many and returns their ids.
- ``update(id, datum)``: ``lof`` merges the datum's features into the row (light_lof
  refuses, as Jubatus); ``overwrite(id, datum)`` replaces the row. Both return its score.
- ``calc_score(datum)``: the score of a point that is not stored.
- ``clear_row``, ``clear``, ``get_all_rows``.

The mix: rows, scores and the converter's document counts, as the methods describe them.
"""

from __future__ import annotations

from collections.abc import Sequence

from engines.common.config import engine_config
from engines.common.converter import DatumLike
from engines.common.fv_converter import (
    FeatureConverter,
    KeywordWeights,
    WeightManager,
    mix_keyword_weights,
)
from engines.common.lof import LightLof, Lof, create_lof
from engines.common.nearest_neighbor import owner_id
from engines.common.versions import mix_versioned
from runtime.errors import ModelFileError
from runtime.mix.mixable import DiffError, read_fields, read_int, read_map


class AnomalyModel:
    """Jubatus's anomaly engine (see the module docstring)."""

    def __init__(self, config: object) -> None:
        params = engine_config(
            config, ("method", "parameter", "converter"), ("method", "converter")
        )
        self.method = params.text("method")
        self._parameter = params.fields.get("parameter")
        self.converter = FeatureConverter.from_config(params.raw("converter"))
        self.owner = owner_id()
        self.lof: Lof | LightLof = create_lof(self.method, self._parameter, self.owner)
        self.next_id = 0
        self._version = 0

    def _features(self, datum: DatumLike, update: bool) -> list[tuple[str, float]]:
        try:
            if update:
                self.converter.check(datum)
                self.converter.check_storable(datum)
                return self.converter.convert_and_update(datum, checked=True)
            return self.converter.convert(datum)  # (which checks it)
        except (ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"datum: {error}") from None

    def _check(self, datum: DatumLike) -> None:
        """What an update checks before it changes anything."""
        self.converter.check(datum)
        try:
            self.converter.check_storable(datum)
        except ValueError as error:
            raise ValueError(f"datum: {error}") from None

    # -- the service's calls ---------------------------------------------------------------

    def new_id(self) -> str:
        key = str(self.next_id)
        self.next_id += 1
        return key

    def add(self, datum: DatumLike) -> tuple[str, float]:
        self._check(datum)
        key = self.new_id()
        if self.lof.updatable:
            return key, self.update(key, datum)
        return key, self.overwrite(key, datum)

    def add_bulk(self, data: Sequence[DatumLike]) -> list[str]:
        for datum in data:
            self._check(datum)
        rows = [(self.new_id(), self._features(datum, update=True)) for datum in data]
        if isinstance(self.lof, Lof):
            return self.lof.update_bulk(rows)
        return self.lof.set_bulk(rows)

    def _saw(self, key: str) -> None:
        """Ids given from outside (the proxy's) move the counter past them."""
        if key.isdigit() and key.isascii() and int(key) >= self.next_id:
            self.next_id = int(key) + 1

    def update(self, key: str, datum: DatumLike) -> float:
        self._saw(key)
        lof = self.lof
        if not isinstance(lof, Lof):
            raise ValueError("unsupported method (update_row): light_lof cannot update a row")
        features = self._features(datum, update=True)
        if lof.update_row(key, features):
            return lof.score_of(key)
        return lof.score_with(key, features)

    def overwrite(self, key: str, datum: DatumLike) -> float:
        self._saw(key)
        features = self._features(datum, update=True)
        if self.lof.set_row(key, features):
            return self.lof.score_of(key)
        return self.lof.score(features)

    def calc_score(self, datum: DatumLike) -> float:
        return self.lof.score(self._features(datum, update=False))

    def clear_row(self, key: str) -> bool:
        lof = self.lof
        if not isinstance(lof, Lof):
            raise ValueError("unsupported method (clear_row): light_lof cannot clear a row")
        lof.clear_row(key)
        return True

    def clear(self) -> bool:
        self.lof.clear()
        self.converter.weights.clear()
        return True

    def get_all_rows(self) -> list[str]:
        return self.lof.all_rows()

    def max_int_id(self) -> int:
        """The largest row id that is a decimal number (0 when none)."""
        largest = 0
        for key in self.get_all_rows():
            if key.isdigit() and key.isascii():
                largest = max(largest, int(key))
        return largest

    def get_status(self) -> dict[str, str]:
        return {
            "storage": self.method,
            "max_id": str(self.max_int_id()),
            "model_version": str(self._version),
            **self.lof.status(),
            **self.converter.weights.status(),
        }

    # -- save and load ---------------------------------------------------------------------

    def pack(self) -> object:
        return {
            "version": self._version,
            "lof": self.lof.pack(),
            "weights": self.converter.weights.pack(),
        }

    def unpack(self, payload: object) -> None:
        try:
            fields = read_fields(payload, "model", ("version", "lof", "weights"))
            version = read_int(fields["version"], "model.version")
            weights = WeightManager.unpack(fields["weights"], "model.weights")
            lof = create_lof(self.method, self._parameter, self.owner)
            lof.unpack_into(fields["lof"], "model.lof")
        except DiffError as error:
            raise ModelFileError(f"anomaly model does not fit: {error}") from None
        self.lof = lof
        self.converter.weights = weights
        self._version = version
        # As Jubatus after a load: new ids continue after the largest numeric one.
        self.next_id = self.max_int_id() + 1

    # -- Mixable ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def get_diff(self) -> object:
        return {
            "version": self._version,
            "lof": self.lof.take_diff(),
            "weights": self.converter.weights.take_diff(),
        }

    def mix(self, lhs: object, rhs: object) -> object:
        return mix_versioned(
            lhs,
            rhs,
            lambda left, right: {
                "lof": self.lof.mix(left.get("lof"), right.get("lof")),
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
        self.lof.apply(fields.get("lof"), "diff.lof")
        self.lof.after_mix()
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
