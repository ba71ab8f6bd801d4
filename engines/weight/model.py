"""The weight engine's model: Jubatus's converter and its document counts.

``update(datum)`` counts the datum as a document (for ``idf`` and ``bm25``) and returns its
features; ``calc_weight(datum)`` returns them without counting. Both return what Jubatus's
weight engine returns: the converter's features (names, weights, filters and combinations
as Jubatus makes them, :mod:`engines.common.fv_converter`) sorted by name, equal names
summed. ``clear`` forgets the counts. The counts mix by adding up across servers.
"""

from __future__ import annotations

from engines.common.config import engine_config
from engines.common.converter import DatumLike
from engines.common.fv_converter import (
    FeatureConverter,
    KeywordWeights,
    WeightManager,
    mix_keyword_weights,
    sort_and_merge,
)
from engines.common.versions import mix_versioned
from runtime.errors import ModelFileError
from runtime.mix.mixable import DiffError, read_fields, read_int, read_map


class WeightModel:
    """Jubatus's weight engine (see the module docstring)."""

    def __init__(self, config: object) -> None:
        # ``method`` and ``parameter`` are accepted and ignored, as Jubatus does.
        params = engine_config(config, ("method", "parameter", "converter"), ("converter",))
        self.converter = FeatureConverter.from_config(params.raw("converter"))
        self._version = 0

    def update(self, datum: DatumLike) -> list[tuple[str, float]]:
        return sort_and_merge(self.converter.convert_and_update(datum))

    def calc_weight(self, datum: DatumLike) -> list[tuple[str, float]]:
        return sort_and_merge(self.converter.convert(datum))

    def clear(self) -> bool:
        self.converter.weights.clear()
        return True

    def get_status(self) -> dict[str, str]:
        return {
            **self.converter.weights.status(),
            "weight_manager_version": str(self._version),
        }

    def pack(self) -> object:
        return {"version": self._version, "weights": self.converter.weights.pack()}

    def unpack(self, payload: object) -> None:
        try:
            fields = read_fields(payload, "model", ("version", "weights"))
            version = read_int(fields["version"], "model.version")
            weights = WeightManager.unpack(fields["weights"], "model.weights")
        except DiffError as error:
            raise ModelFileError(f"weight model does not fit: {error}") from None
        self.converter.weights = weights
        self._version = version

    # -- Mixable ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def get_diff(self) -> object:
        return {"version": self._version, "weights": self.converter.weights.take_diff()}

    def mix(self, lhs: object, rhs: object) -> object:
        return mix_versioned(
            lhs,
            rhs,
            lambda left, right: {
                "weights": mix_keyword_weights(left.get("weights"), right.get("weights"), "weights")
            },
        )

    def put_diff(self, mixed: object) -> bool:
        fields = read_map(mixed, "diff")
        if read_int(fields.get("version"), "diff.version") != self._version:
            return False
        self.converter.weights.apply_mixed(
            KeywordWeights.from_plain(fields.get("weights"), "diff.weights")
        )
        self._version += 1
        return True

    def get_model(self) -> object:
        return {"version": self._version, "weights": self.converter.weights.model()}

    def set_model(self, model: object) -> None:
        fields = read_fields(model, "model", ("version", "weights"))
        version = read_int(fields["version"], "model.version")
        weights = WeightManager()
        weights.master = KeywordWeights.from_plain(fields["weights"], "model.weights")
        self.converter.weights = weights
        self._version = version
