"""The classifier engine's model: a Jubatus classifier config turned into a trainable,
mixable linear classifier.

``ClassifierModel(config)`` takes Jubatus's config (``method``, ``parameter``,
``converter``) and offers the classifier service's calls (``train``, ``classify``,
``get_labels``, ``set_label``, ``delete_label``, ``clear``), ``pack``/``unpack`` for save
and load, and the :class:`~runtime.mix.mixable.Mixable` methods.

The mix (one linear-mixer round). Each server's diff holds what it learned since the last
mix: weight and variance changes, label counts, idf document counts, the number of examples
trained (``count``) and the model version it is based on. Two diffs with the same version
combine as follows: weights are averaged, each diff weighted by its ``count``, a weight a
diff lacks counting as 0 there; variances take the minimum, a missing one counting as 1;
label and document counts add up; counts add up. Jubatus uses the same averaging with every
count fixed at 1 (so its mix is the plain mean over servers); weighting by examples gives
the same result when servers train equally, and keeps a server that trained nothing from
halving what the others learned. Diffs with different versions do not combine: the one
with the higher version wins, as in Jubatus. ``put_diff`` refuses a diff whose version is
not this model's; otherwise it adds the mixed diff to the master part of the model, takes
out of the local diff exactly what ``get_diff`` sent (updates made while the round ran are
kept for the next one), and increments the version. Servers that trained nothing during
the round hold identical models afterwards.

Labels are known from training, ``set_label`` or a mix. ``classify`` scores every known
label, sorted by name, and training breaks ties between equal scores in the same order, so
servers holding the same model answer alike whatever order they learned their labels in
(Jubatus's order is its hash table's). Thread-safety is the caller's: the server
holds its read/write lock around every call. Nothing here does I/O.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

from runtime.errors import ConfigError, ModelFileError
from runtime.mix.mixable import DiffError, read_fields, read_int, read_map
from tests.engines.classifier.reference.converter import (
    Converter,
    DatumLike,
    DocumentFrequencies,
    read_counts,
)
from tests.engines.classifier.reference.linear import LinearMethod, create_method, squared_norm
from tests.engines.classifier.reference.storage import (
    Table,
    WeightDiff,
    WeightTable,
    mix_weight_diffs,
    read_table,
)

logger = logging.getLogger(__name__)

_CONFIG_KEYS = ("method", "parameter", "converter")
_DIFF_FIELDS = ("version", "count", "weights", "variances", "labels", "documents")
_MODEL_FIELDS = ("version", "weights", "variances", "labels", "documents")
_PACK_FIELDS = ("version", "count", "weights", "variances", "labels", "documents")


class LabelCounts:
    """Training counts per label: ``counts`` (what ``get_labels`` shows) and the part of them
    learned here since the last mix (``diff``; a label set but not trained counts 0)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.diff: dict[str, int] = {}
        self._sent: dict[str, int] | None = None

    def add(self, label: str) -> bool:
        if label in self.counts:
            return False
        self.counts[label] = 0
        self.diff[label] = 0
        return True

    def increment(self, label: str) -> None:
        self.counts[label] = self.counts.get(label, 0) + 1
        self.diff[label] = self.diff.get(label, 0) + 1

    def erase(self, label: str) -> bool:
        if self._sent is not None:
            self._sent.pop(label, None)
        self.diff.pop(label, None)
        return self.counts.pop(label, None) is not None

    def take_diff(self) -> dict[str, int]:
        self._sent = dict(self.diff)
        return dict(self.diff)

    def apply_mixed(self, mixed: Mapping[str, int]) -> None:
        """counts += mixed - sent; diff -= sent (exact: these are integers)."""
        sent = self._sent or {}
        for label, n in mixed.items():
            self.counts[label] = max(self.counts.get(label, 0) + n - sent.get(label, 0), 0)
        for label, n in sent.items():
            if label not in mixed and label in self.counts:
                self.counts[label] = max(self.counts[label] - n, 0)
            if label in self.diff:
                rest = self.diff[label] - n
                if rest > 0:
                    self.diff[label] = rest
                else:
                    del self.diff[label]
        self._sent = None

    def master(self) -> dict[str, int]:
        return {label: n - self.diff.get(label, 0) for label, n in self.counts.items()}


class ClassifierModel:
    """A Jubatus-compatible linear classifier (see the module docstring)."""

    def __init__(self, config: object) -> None:
        if not isinstance(config, dict):
            raise ConfigError("config: expected an object with method, parameter and converter")
        for key in config:
            if key not in _CONFIG_KEYS:
                raise ConfigError.unknown_key(str(key), _CONFIG_KEYS)
        if "method" not in config:
            raise ConfigError("method: required")
        if "converter" not in config:
            raise ConfigError("converter: required")
        self.method: LinearMethod = create_method(config["method"], config.get("parameter"))
        self.converter = Converter.from_config(config["converter"])
        self.table = WeightTable()
        self.labels = LabelCounts()
        self._version = 0
        self._trained = 0
        self._sent_trained: int | None = None

    # -- the service's calls ---------------------------------------------------------------

    def train(self, pairs: Sequence[tuple[str, DatumLike]]) -> int:
        """Learn each ``(label, datum)`` in order; returns how many were trained.

        Every pair is checked before anything is learned: a bad label or datum raises
        ``ValueError`` and leaves the model unchanged.
        """
        checked: list[tuple[str, DatumLike, dict[str, float]]] = []
        unchecked: Sequence[object] = pairs
        for i, pair in enumerate(unchecked):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValueError(f"train[{i}]: expected a (label, datum) pair")
            label, datum = pair
            if not isinstance(label, str) or not label:
                raise ValueError(f"train[{i}]: the label must be a non-empty string")
            try:
                vector = self.converter.convert(datum)
            except (ValueError, AttributeError, TypeError) as error:
                raise ValueError(f"train[{i}]: {error}") from None
            if not all(math.isfinite(v) for v in vector.values()) or not math.isfinite(
                squared_norm(vector)
            ):
                raise ValueError(f"train[{i}]: the datum gives a feature too large or not finite")
            checked.append((label, datum, vector))
        for label, datum, vector in checked:
            if self.converter.counts_documents:
                vector = self.converter.convert_and_count(datum)
            known = sorted(self.labels.counts)
            self.labels.increment(label)
            # Jubatus sorts (and merges) a training vector by feature name.
            self.method.train(self.table, dict(sorted(vector.items())), label, known)
            self._trained += 1
        return len(checked)

    def classify(self, data: Sequence[DatumLike]) -> list[list[tuple[str, float]]]:
        """Every known label (sorted) with its score, per datum; ``ValueError`` on a bad datum."""
        vectors = []
        for i, datum in enumerate(data):
            try:
                vectors.append(self.converter.convert(datum))
            except (ValueError, AttributeError, TypeError) as error:
                raise ValueError(f"classify[{i}]: {error}") from None
        labels = sorted(self.labels.counts)
        score = self.table.score
        return [[(label, score(label, vector)) for label in labels] for vector in vectors]

    def get_labels(self) -> dict[str, int]:
        """Training count per known label."""
        return dict(self.labels.counts)

    def set_label(self, label: str) -> bool:
        """Make ``label`` known (count 0); False if it already was."""
        name: object = label
        if not isinstance(name, str) or not name:
            raise ValueError("the label must be a non-empty string")
        return self.labels.add(label)

    def delete_label(self, label: str) -> bool:
        """Forget ``label`` and its weights; False if it was not known."""
        known = self.labels.erase(label)
        had_weights = self.table.delete_label(label)
        return known or had_weights

    def clear(self) -> bool:
        """Forget everything learned (the version stays, as in Jubatus)."""
        self.table.clear()
        self.labels = LabelCounts()
        self.converter.frequencies.clear()
        self._trained = 0
        self._sent_trained = None
        return True

    def get_status(self) -> dict[str, str]:
        """Jubatus's status keys for a linear classifier."""
        master = {f for row in self.table.master.weights.values() for f in row}
        diff = {f for row in self.table.diff.weights.values() for f in row}
        return {
            "method": self.method.name,
            "num_classes": str(len(self.labels.counts)),
            "num_features": str(len(master)),
            "num_features_diff": str(len(diff)),
            "model_version": str(self._version),
        }

    # -- save and load ---------------------------------------------------------------------

    def pack(self) -> object:
        """The whole model (master and unmixed parts) as plain msgpack-able data.

        The value shares the model's dicts: serialize it before the model changes again.
        """
        return {
            "version": self._version,
            "count": self._trained,
            "weights": {"master": self.table.master.weights, "diff": self.table.diff.weights},
            "variances": {
                "master": self.table.master.variances,
                "diff": self.table.diff.variances,
            },
            "labels": {"counts": self.labels.counts, "diff": self.labels.diff},
            "documents": self.converter.frequencies.pack(),
        }

    def unpack(self, payload: object) -> None:
        """Replace the model with :meth:`pack`'s output; ``ModelFileError`` leaves it as it was."""
        try:
            fields = read_fields(payload, "model", _PACK_FIELDS)
            version = read_int(fields["version"], "model.version")
            trained = read_int(fields["count"], "model.count")
            weights = read_fields(fields["weights"], "model.weights", ("master", "diff"))
            variances = read_fields(fields["variances"], "model.variances", ("master", "diff"))
            master = WeightDiff(
                read_table(weights["master"], "model.weights.master"),
                read_table(variances["master"], "model.variances.master"),
            )
            diff = WeightDiff(
                read_table(weights["diff"], "model.weights.diff"),
                read_table(variances["diff"], "model.variances.diff"),
            )
            label_fields = read_fields(fields["labels"], "model.labels", ("counts", "diff"))
            labels = LabelCounts()
            labels.counts = _read_label_counts(label_fields["counts"], "model.labels.counts")
            labels.diff = _read_label_counts(label_fields["diff"], "model.labels.diff")
            documents = DocumentFrequencies.unpack(fields["documents"], "model.documents")
        except DiffError as error:
            raise ModelFileError(f"classifier model does not fit: {error}") from None
        self.table.replace(master, diff)
        self.labels = labels
        self.converter.frequencies = documents
        self._version = version
        self._trained = trained
        self._sent_trained = None

    # -- Mixable ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def get_diff(self) -> object:
        """What was learned since the last mix (see the module docstring)."""
        weights = self.table.take_diff()
        self._sent_trained = self._trained
        return {
            "version": self._version,
            "count": self._trained,
            "weights": weights.weights,
            "variances": weights.variances,
            "labels": self.labels.take_diff(),
            "documents": self.converter.frequencies.take_diff(),
        }

    def mix(self, lhs: object, rhs: object) -> object:
        """Two diffs combined (same version: averaged/summed; else the newer one)."""
        left = _Diff.read(lhs, "lhs")
        right = _Diff.read(rhs, "rhs")
        if left.version != right.version:
            return (left if left.version > right.version else right).plain()
        weights = mix_weight_diffs(left.weights, left.count, right.weights, right.count)
        labels = dict(left.labels)
        for label, n in right.labels.items():
            labels[label] = labels.get(label, 0) + n
        frequencies = dict(left.frequencies)
        for feature, n in right.frequencies.items():
            frequencies[feature] = frequencies.get(feature, 0) + n
        return _Diff(
            left.version,
            left.count + right.count,
            weights,
            labels,
            left.documents + right.documents,
            frequencies,
        ).plain()

    def put_diff(self, mixed: object) -> bool:
        """Apply a folded diff; False (no change) when it is based on another version."""
        diff = _Diff.read(mixed, "diff")
        if diff.version != self._version:
            logger.info(
                "mixed diff refused: based on version %d, this model is at %d",
                diff.version,
                self._version,
            )
            return False
        self.table.apply_mixed(diff.weights)
        self.labels.apply_mixed(diff.labels)
        for label in [*diff.weights.weights, *diff.weights.variances]:
            self.labels.counts.setdefault(label, 0)
        self.converter.frequencies.apply_mixed(diff.documents, diff.frequencies)
        if self._sent_trained is not None:
            self._trained = max(self._trained - self._sent_trained, 0)
        self._sent_trained = None
        self._version += 1
        return True

    def get_model(self) -> object:
        """The mixed state (no local diff) and its version, for a joining server."""
        frequencies = self.converter.frequencies
        return {
            "version": self._version,
            "weights": _copy(self.table.master.weights),
            "variances": _copy(self.table.master.variances),
            "labels": self.labels.master(),
            "documents": {
                "documents": frequencies.master_documents,
                "frequencies": dict(frequencies.master_frequencies),
            },
        }

    def set_model(self, model: object) -> None:
        """Become a copy of a peer's :meth:`get_model`; local unmixed learning is dropped."""
        fields = read_fields(model, "model", _MODEL_FIELDS)
        version = read_int(fields["version"], "model.version")
        master = WeightDiff(
            read_table(fields["weights"], "model.weights"),
            read_table(fields["variances"], "model.variances"),
        )
        counts = _read_label_counts(fields["labels"], "model.labels")
        documents, frequencies = read_counts(fields["documents"], "model.documents")
        self.table.replace(master, WeightDiff())
        self.labels = LabelCounts()
        self.labels.counts = counts
        self.converter.frequencies = DocumentFrequencies(documents, frequencies)
        self._version = version
        self._trained = 0
        self._sent_trained = None


class _Diff:
    """A checked diff (the plain form is described in the module docstring)."""

    def __init__(
        self,
        version: int,
        count: int,
        weights: WeightDiff,
        labels: dict[str, int],
        documents: int,
        frequencies: dict[str, int],
    ) -> None:
        self.version = version
        self.count = count
        self.weights = weights
        self.labels = labels
        self.documents = documents
        self.frequencies = frequencies

    @classmethod
    def read(cls, value: object, path: str) -> _Diff:
        fields = read_fields(value, path, _DIFF_FIELDS)
        documents, frequencies = read_counts(fields["documents"], f"{path}.documents")
        return cls(
            read_int(fields["version"], f"{path}.version"),
            read_int(fields["count"], f"{path}.count"),
            WeightDiff.from_plain(fields["weights"], fields["variances"], path),
            _read_label_counts(fields["labels"], f"{path}.labels"),
            documents,
            frequencies,
        )

    def plain(self) -> dict[str, object]:
        return {
            "version": self.version,
            "count": self.count,
            "weights": _copy(self.weights.weights),
            "variances": _copy(self.weights.variances),
            "labels": dict(self.labels),
            "documents": {"documents": self.documents, "frequencies": dict(self.frequencies)},
        }


def _read_label_counts(value: object, path: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for label, n in read_map(value, path).items():
        if not label:
            raise DiffError(f"{path}: empty label")
        counts[label] = read_int(n, f"{path}[{label!r}]")
    return counts


def _copy(table: Table) -> Table:
    return {label: dict(row) for label, row in table.items()}
