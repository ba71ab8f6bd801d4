"""The classifier's neighbour methods, as Jubatus's core has them: ``NN``
(``nearest_neighbor``) over a nearest-neighbour engine, and ``cosine`` and ``euclidean``
over an inverted index.

Every training example becomes a row named ``<label>_<8 random characters>``. A datum's
score for a label is ``Σ exp(-local_sensitivity x d)`` over its ``nearest_neighbor_num``
nearest rows of that label, ``d`` being the engine's distance (``NN``), ``1 - cosine``
(``cosine``) or the Euclidean distance (``euclidean``); every known label is listed, in
name order, with 0 when no neighbour has it. Labels are known from training and
``set_label``; ``delete_label`` forgets a label and (``NN``) its rows (``cosine`` and
``euclidean`` cannot delete, as in Jubatus). ``NN`` may have an ``unlearner``.

:class:`NeighborClassifier` is the model part of a classifier: the caller converts datums
(training vectors sorted and merged by name, as Jubatus's classifier driver does) and
keeps the converter's document counts. Rows and label counts mix (newest row wins; label
counts of ``NN`` are recounted from the rows after a mix, as Jubatus does).
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Sequence

from engines.common.config import Params, engine_config
from engines.common.converter import DatumLike
from engines.common.fv_converter import (
    FeatureConverter,
    KeywordWeights,
    WeightManager,
    mix_keyword_weights,
    sort_and_merge,
)
from engines.common.inverted_index import InvertedIndex
from engines.common.nearest_neighbor import NearestNeighborIndex, create_nearest_neighbor, owner_id
from engines.common.unlearner import Unlearner, create_unlearner
from engines.common.versions import merge_rows, mix_versioned
from runtime.errors import ConfigError, ModelFileError
from runtime.mix.mixable import DiffError, read_fields, read_int, read_map, read_text

Features = Sequence[tuple[str, float]]
_ID_CHARS = string.ascii_lowercase + string.ascii_uppercase + string.digits
_ID_COUNT = len(_ID_CHARS)
_ID_BITS = _ID_COUNT.bit_length()

#: The classifier ``method`` names this module serves.
NEIGHBOR_METHODS = ("NN", "nearest_neighbor", "cosine", "euclidean")


def label_of(row_id: str) -> str:
    """The label part of a row id (everything before the last ``_``)."""
    position = row_id.rfind("_")
    return row_id[:position] if position >= 0 else row_id


class NeighborClassifier:
    """``NN``, ``cosine`` or ``euclidean`` (see the module docstring)."""

    def __init__(self, method: str, parameter: object, owner: str) -> None:
        if method not in NEIGHBOR_METHODS:
            raise ConfigError(f"method: {method!r} is not a neighbour method")
        if parameter is None:
            raise ConfigError("parameter: required (the parameter block is not specified)")
        params = Params(parameter, "parameter")
        self.method = "NN" if method == "nearest_neighbor" else method
        self.index: NearestNeighborIndex | None = None
        self.inverted: InvertedIndex | None = None
        self.unlearner: Unlearner | None = None
        if self.method == "NN":
            params.only(
                [
                    "method",
                    "parameter",
                    "nearest_neighbor_num",
                    "local_sensitivity",
                    "unlearner",
                    "unlearner_parameter",
                ]
            )
            self.index = create_nearest_neighbor(
                params.text("method"), params.raw("parameter"), owner, "parameter.parameter"
            )
            self.unlearner = create_unlearner(params)
            if self.unlearner is not None:
                self.unlearner.forget = self._unlearn
        else:
            params.only(["nearest_neighbor_num", "local_sensitivity"])
            self.inverted = InvertedIndex(owner)
        self.k = params.integer("nearest_neighbor_num")
        params.check(self.k >= 1, "nearest_neighbor_num", "must be >= 1")
        self.alpha = params.float32("local_sensitivity")
        params.check(self.alpha >= 0.0, "local_sensitivity", "must be >= 0")
        self.labels: dict[str, int] = {}
        self.label_diff: dict[str, int] = {}
        self._random = random.Random()

    # -- rows ------------------------------------------------------------------------------

    def _new_id(self, label: str) -> str:
        # random.choice eight times, its draws inlined (the same ids from the same seed)
        bits = self._random.getrandbits
        chars = []
        for _ in range(8):
            drawn = bits(_ID_BITS)
            while drawn >= _ID_COUNT:
                drawn = bits(_ID_BITS)
            chars.append(_ID_CHARS[drawn])
        return label + "_" + "".join(chars)

    def _unlearn(self, row_id: str) -> None:
        if self.index is not None:
            self.index.table.delete(row_id)
        label = label_of(row_id)
        if label in self.labels:
            self.labels[label] = max(self.labels[label] - 1, 0)

    def train(self, features: Features, label: str) -> None:
        """Learn one example (``features`` sorted and merged by name)."""
        row_id = self._new_id(label)
        if self.unlearner is not None and not self.unlearner.touch(row_id):
            raise ValueError(
                "cannot add new ID as number of sticky IDs reached the maximum size of "
                f"unlearner: {row_id}"
            )
        if self.index is not None:
            self.index.set_row(row_id, features)
        else:
            assert self.inverted is not None
            self.inverted.update_row(row_id, features)
        self.labels[label] = self.labels.get(label, 0) + 1
        self.label_diff[label] = self.label_diff.get(label, 0) + 1

    def classify(self, features: Features) -> list[tuple[str, float]]:
        """Every known label (by name) with its score."""
        if self.index is not None:
            found = self.index.neighbor_row_from_features(features, self.k)
            terms = [(row_id, -self.alpha * distance) for row_id, distance in found]
        elif self.method == "cosine":
            assert self.inverted is not None
            found = self.inverted.cosine(features, self.k)
            terms = [(row_id, -self.alpha * (1 - similarity)) for row_id, similarity in found]
        else:
            assert self.inverted is not None
            found = self.inverted.euclid(features, self.k)
            terms = [(row_id, self.alpha * score) for row_id, score in found]
        scores = dict.fromkeys(sorted(self.labels), 0.0)
        for row_id, exponent in terms:
            label = label_of(row_id)
            scores[label] = scores.get(label, 0.0) + math.exp(exponent)
        return sorted(scores.items())

    def get_labels(self) -> dict[str, int]:
        return dict(self.labels)

    def set_label(self, label: str) -> bool:
        if label in self.labels:
            return False
        self.labels[label] = 0
        self.label_diff.setdefault(label, 0)
        return True

    def delete_label(self, label: str) -> bool:
        if self.index is None:
            return False  # Jubatus's cosine and euclidean classifiers cannot delete labels
        if self.labels.pop(label, None) is None:
            return False
        self.label_diff.pop(label, None)
        table = self.index.table
        for row_id in [k for k in table.keys if label_of(k) == label]:
            table.delete(row_id)
            if self.unlearner is not None:
                self.unlearner.remove(row_id)
        return True

    def clear(self) -> None:
        if self.index is not None:
            self.index.table.clear()
        if self.inverted is not None:
            self.inverted.clear()
        if self.unlearner is not None:
            self.unlearner.clear()
        self.labels = {}
        self.label_diff = {}

    def status(self) -> dict[str, str]:
        rows = len(self.index.table) if self.index is not None else 0
        if self.inverted is not None:
            rows = self.inverted.size()
        status = {"num_rows": str(rows), "num_classes": str(len(self.labels))}
        if self.unlearner is not None:
            status.update(self.unlearner.status())
        return status

    # -- mix and save ----------------------------------------------------------------------

    def take_diff(self) -> dict[str, object]:
        rows = (
            self.index.table.take_diff() if self.index is not None else self.inverted.take_diff()  # type: ignore[union-attr]
        )
        diff = dict(self.label_diff)
        self.label_diff = {}
        return {"rows": rows, "labels": diff}

    @staticmethod
    def mix(lhs: object, rhs: object) -> dict[str, object]:
        left = read_map(lhs, "lhs")
        right = read_map(rhs, "rhs")
        labels = {
            k: read_int(v, "lhs.labels")
            for k, v in read_map(left.get("labels"), "lhs.labels").items()
        }
        for key, value in read_map(right.get("labels"), "rhs.labels").items():
            labels[key] = labels.get(key, 0) + read_int(value, "rhs.labels")
        return {"rows": merge_rows(left.get("rows"), right.get("rows"), "rows"), "labels": labels}

    def apply(self, diff: object, own: dict[str, int], path: str) -> None:
        """A mixed diff; ``own`` is what this server's :meth:`take_diff` sent of the labels."""
        fields = read_map(diff, path)
        rows = read_map(fields.get("rows"), f"{path}.rows")
        labels = {
            k: read_int(v, f"{path}.labels")
            for k, v in read_map(fields.get("labels"), f"{path}.labels").items()
        }
        if self.index is not None:
            applied = self.index.table.apply_rows(rows, f"{path}.rows")  # type: ignore[arg-type]
            self.index.table.forget_sent()
            if self.unlearner is not None:
                for row_id in applied:
                    if self.unlearner.can_touch(row_id):
                        self.unlearner.touch(row_id)
            # Jubatus recounts its labels from the rows after a mix.
            counts = dict.fromkeys(self.labels, 0)
            for key in labels:
                counts.setdefault(key, 0)
            for row_id in self.index.table.keys:
                label = label_of(row_id)
                counts[label] = counts.get(label, 0) + 1
            self.labels = counts
        else:
            assert self.inverted is not None
            self.inverted.apply_rows(rows, f"{path}.rows")
            self.inverted.log.after_mix()
            for key, value in labels.items():
                self.labels[key] = self.labels.get(key, 0) + value - own.get(key, 0)

    def pack(self) -> dict[str, object]:
        table = self.index.table.pack() if self.index is not None else self.inverted.pack()  # type: ignore[union-attr]
        return {
            "rows": table,
            "labels": dict(self.labels),
            "unlearner": self.unlearner.pack() if self.unlearner is not None else None,
        }

    def unpack_into(self, value: object, path: str) -> None:
        """Fill a fresh classifier from :meth:`pack`; raises :class:`DiffError`."""
        fields = read_map(value, path)
        if self.index is not None:
            self.index.table.unpack_into(fields.get("rows"), f"{path}.rows")
        else:
            assert self.inverted is not None
            self.inverted.unpack_into(fields.get("rows"), f"{path}.rows")
        labels = {}
        for key, count in read_map(fields.get("labels"), f"{path}.labels").items():
            labels[read_text(key, f"{path}.labels")] = read_int(count, f"{path}.labels[{key!r}]")
        self.labels = labels
        self.label_diff = {}
        if self.unlearner is not None and fields.get("unlearner") is not None:
            self.unlearner.unpack(fields["unlearner"], f"{path}.unlearner")


class NeighborClassifierModel:
    """A whole classifier engine model for the neighbour methods: Jubatus's converter, a
    :class:`NeighborClassifier`, ``pack``/``unpack`` and the Mixable methods, with the calls
    of ``ClassifierModel`` (``train``, ``classify``, ``get_labels``, ``set_label``,
    ``delete_label``, ``clear``, ``get_status``). The classifier service picks it when the
    config's ``method`` is one of :data:`NEIGHBOR_METHODS`."""

    def __init__(self, config: object) -> None:
        params = engine_config(
            config, ("method", "parameter", "converter"), ("method", "converter")
        )
        self.method = params.text("method")
        self._parameter = params.fields.get("parameter")
        self.converter = FeatureConverter.from_config(params.raw("converter"))
        self.owner = owner_id()
        self.core = NeighborClassifier(self.method, self._parameter, self.owner)
        self._version = 0
        self._sent_labels: dict[str, int] = {}

    def train(self, pairs: Sequence[tuple[str, DatumLike]]) -> int:
        checked = []
        unchecked: Sequence[object] = pairs
        for i, pair in enumerate(unchecked):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValueError(f"train[{i}]: expected a (label, datum) pair")
            label, datum = pair
            if not isinstance(label, str) or not label:
                raise ValueError(f"train[{i}]: the label must be a non-empty string")
            try:
                self.converter.check(datum)
                self.converter.check_storable(datum)
            except (ValueError, TypeError, AttributeError) as error:
                raise ValueError(f"train[{i}]: {error}") from None
            checked.append((label, datum))
        for i, (label, datum) in enumerate(checked):
            try:
                features = sort_and_merge(self.converter.convert_and_update(datum, checked=True))
            except ValueError as error:
                raise ValueError(f"train[{i}]: {error}") from None
            self.core.train(features, label)
        return len(checked)

    def classify(self, data: Sequence[DatumLike]) -> list[list[tuple[str, float]]]:
        results = []
        for i, datum in enumerate(data):
            try:
                features = self.converter.convert(datum)
            except (ValueError, TypeError, AttributeError) as error:
                raise ValueError(f"classify[{i}]: {error}") from None
            results.append(self.core.classify(features))
        return results

    def get_labels(self) -> dict[str, int]:
        return self.core.get_labels()

    def set_label(self, label: str) -> bool:
        name: object = label
        if not isinstance(name, str) or not name:
            raise ValueError("the label must be a non-empty string")
        return self.core.set_label(label)

    def delete_label(self, label: str) -> bool:
        return self.core.delete_label(label)

    def clear(self) -> bool:
        self.core.clear()
        self.converter.weights.clear()
        return True

    def get_status(self) -> dict[str, str]:
        return {
            "method": self.method,
            "model_version": str(self._version),
            **self.core.status(),
            **self.converter.weights.status(),
            "weight_manager_version": str(self._version),
        }

    def pack(self) -> object:
        return {
            "version": self._version,
            "core": self.core.pack(),
            "weights": self.converter.weights.pack(),
        }

    def unpack(self, payload: object) -> None:
        try:
            fields = read_fields(payload, "model", ("version", "core", "weights"))
            version = read_int(fields["version"], "model.version")
            weights = WeightManager.unpack(fields["weights"], "model.weights")
            core = NeighborClassifier(self.method, self._parameter, self.owner)
            core.unpack_into(fields["core"], "model.core")
        except DiffError as error:
            raise ModelFileError(f"classifier model does not fit: {error}") from None
        self.core = core
        self.converter.weights = weights
        self._version = version

    @property
    def version(self) -> int:
        return self._version

    def get_diff(self) -> object:
        diff = self.core.take_diff()
        labels = diff["labels"]
        self._sent_labels = dict(labels) if isinstance(labels, dict) else {}
        return {
            "version": self._version,
            "core": diff,
            "weights": self.converter.weights.take_diff(),
        }

    def mix(self, lhs: object, rhs: object) -> object:
        return mix_versioned(
            lhs,
            rhs,
            lambda left, right: {
                "core": NeighborClassifier.mix(left.get("core"), right.get("core")),
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
        self.core.apply(fields.get("core"), self._sent_labels, "diff.core")
        self._sent_labels = {}
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
