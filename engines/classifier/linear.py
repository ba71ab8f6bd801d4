"""Online linear multiclass classifiers with Jubatus's update rules, and their weight table.

A feature vector is a map from feature name to value. Every label has a weight per
feature (and, for CW, AROW and NHERD, a variance per feature that starts at 1); a label's
score is the dot product of its weights with the vector. Training one example with label
``y`` finds the *largest incorrect label* ``z`` (the highest-scoring other label, first in
label order on a tie; none when ``y`` is the only label) and the margin
``m = score(y) - score(z)`` (``score(z)`` is 0 without ``z``), then moves ``y`` towards the
vector and ``z`` away from it. With ``|x|² = Σ x_f²``, ``C`` the regularization weight,
``var_l,f`` the variance of label ``l`` at feature ``f`` and
``V = Σ (var_y,f + var_z,f) x_f²`` (``var_z,f`` is 1 without ``z``), the methods are
Jubatus's:

- ``perceptron``: predict ``p`` = argmax score over the known labels; if ``p != y``,
  ``w_y += x`` and ``w_p -= x``.
- ``PA``: ``loss = 1 - m``; if ``loss >= 0`` and ``|x|² > 0``: step
  ``tau = loss / (2|x|²)``, ``w_y += tau x``, ``w_z -= tau x`` (the 2 is there because two
  labels move).
- ``PA1``: as PA with ``tau = min(C, loss / (2|x|²))``.
- ``PA2``: as PA with ``tau = loss / (2|x|² + 1/(2C))``.
- ``CW``: ``b = 1 + 2Cm``, ``gamma = (-b + √(b² - 8C(m - CV))) / (4CV)``; if
  ``gamma > 0``, per feature ``w_y += gamma var_y x``, ``w_z -= gamma var_z x`` and
  ``var <- 1 / (1/var + 2 gamma x² C)`` for both labels.
- ``AROW``: if ``m < 1``: ``beta = 1 / (V + 1/C)``, ``alpha = (1 - m) beta``; per feature
  ``w_y += alpha var_y x``, ``w_z -= alpha var_z x``, ``var <- var - beta var² x²`` for both.
- ``NHERD``: if ``m < 1``: per feature ``w_y += (1 - m) var_y x / (V + 1/C)``,
  ``w_z -= (1 - m) var_z x / (V + 1/C)``, ``var <- 1 / (1/var + (2C + C²V) x²)`` for both.

``C`` is rounded to a 32-bit float first, as Jubatus stores it, and the arithmetic follows
Jubatus's order of operations, so the numbers match its to the last bit where the inputs do.

:class:`WeightTable` keeps every value as *master* (agreed at the last mix) plus *diff*
(changed here since), as Jubatus's mixable storage does; :func:`mix_weight_diffs` and
:meth:`WeightTable.apply_mixed` are the weight part of the classifier's mix. This module
knows nothing of data, labels' counts or versions, and never raises on a vector it is given
(the caller checks values are finite).
"""

from __future__ import annotations

import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from runtime.errors import ConfigError
from runtime.mix.mixable import read_float, read_map

#: label -> feature -> value
Table = dict[str, dict[str, float]]
Vector = Mapping[str, float]


def as_float32(value: float) -> float:
    """``value`` rounded to the nearest 32-bit float (how Jubatus keeps its parameters)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _copy(table: Table) -> Table:
    return {label: dict(row) for label, row in table.items() if row}


@dataclass
class WeightDiff:
    """Weight and variance changes per label and feature (or their mix)."""

    weights: Table = field(default_factory=dict)
    variances: Table = field(default_factory=dict)

    def to_plain(self) -> dict[str, object]:
        return {"weights": _copy(self.weights), "variances": _copy(self.variances)}

    @classmethod
    def from_plain(cls, weights: object, variances: object, path: str) -> WeightDiff:
        return cls(
            read_table(weights, f"{path}.weights"), read_table(variances, f"{path}.variances")
        )


def read_table(value: object, path: str) -> Table:
    """A ``label -> feature -> number`` map, checked; raises :class:`DiffError`."""
    table: Table = {}
    for label, row in read_map(value, path).items():
        fast = _plain_row(row)
        if fast is not None:
            table[label] = fast
            continue
        where = f"{path}[{label!r}]"
        table[label] = {
            feature: read_float(number, f"{where}[{feature!r}]")
            for feature, number in read_map(row, where).items()
        }
    return table


def _plain_row(row: object) -> dict[str, float] | None:
    """A copy of ``row`` when it is already ``str -> finite float`` (the common case, checked
    without building a path per value); ``None`` sends it down the slow, explaining path."""
    if type(row) is not dict:
        return None
    if not all(type(key) is str for key in row):
        return None
    if not all(type(number) is float and number - number == 0.0 for number in row.values()):
        return None
    return dict(row)


def mix_weight_diffs(
    lhs: WeightDiff, lhs_count: int, rhs: WeightDiff, rhs_count: int
) -> WeightDiff:
    """Combine two diffs: weights averaged by count, variances by minimum.

    A weight missing on one side counts as 0 there; a variance missing on one side counts as
    1 (Jubatus's defaults). With both counts 0 there is nothing to average and the weights
    are empty. The result is new; neither argument changes.
    """
    total = lhs_count + rhs_count
    weights: Table = {}
    if total > 0:
        for label in dict.fromkeys([*lhs.weights, *rhs.weights]):
            left = lhs.weights.get(label, {})
            right = rhs.weights.get(label, {})
            row = {
                feature: (lhs_count * left.get(feature, 0.0) + rhs_count * right.get(feature, 0.0))
                / total
                for feature in dict.fromkeys([*left, *right])
            }
            if row:
                weights[label] = row
    variances: Table = {}
    for label in dict.fromkeys([*lhs.variances, *rhs.variances]):
        left = lhs.variances.get(label, {})
        right = rhs.variances.get(label, {})
        row = {
            feature: min(left.get(feature, 1.0), right.get(feature, 1.0))
            for feature in dict.fromkeys([*left, *right])
        }
        if row:
            variances[label] = row
    return WeightDiff(weights, variances)


class WeightTable:
    """Weights and variances per label and feature, as master plus local diff.

    A value is ``master + diff`` (a variance with neither part is 1). Training writes only
    the diff; :meth:`apply_mixed` adds a mixed diff to the master and takes out of the diff
    what :meth:`take_diff` sent, so updates made while a mix was under way are kept.
    """

    def __init__(self) -> None:
        self.master = WeightDiff()
        self.diff = WeightDiff()
        self._sent: WeightDiff | None = None

    # -- reading ---------------------------------------------------------------------------

    def weight(self, label: str, feature: str) -> float:
        return self.master.weights.get(label, {}).get(feature, 0.0) + self.diff.weights.get(
            label, {}
        ).get(feature, 0.0)

    def variance(self, label: str, feature: str) -> float:
        master = self.master.variances.get(label, {}).get(feature)
        diff = self.diff.variances.get(label, {}).get(feature)
        if master is None and diff is None:
            return 1.0
        return (master or 0.0) + (diff or 0.0)

    def score(self, label: str, vector: Vector) -> float:
        """The dot product of ``label``'s weights with ``vector`` (0 for an unknown label)."""
        master = self.master.weights.get(label)
        diff = self.diff.weights.get(label)
        total = 0.0
        if diff is None:
            if master is None:
                return 0.0
            for feature, value in vector.items():
                total += master.get(feature, 0.0) * value
            return total
        master = master or {}
        for feature, value in vector.items():
            total += (master.get(feature, 0.0) + diff.get(feature, 0.0)) * value
        return total

    # -- writing ---------------------------------------------------------------------------

    def add_weight(self, label: str, feature: str, delta: float) -> None:
        row = self.diff.weights.setdefault(label, {})
        row[feature] = row.get(feature, 0.0) + delta

    def set_weight(self, label: str, feature: str, value: float) -> None:
        master = self.master.weights.get(label, {}).get(feature, 0.0)
        self.diff.weights.setdefault(label, {})[feature] = value - master

    def set_variance(self, label: str, feature: str, value: float) -> None:
        master = self.master.variances.get(label, {}).get(feature, 0.0)
        self.diff.variances.setdefault(label, {})[feature] = value - master

    def delete_label(self, label: str) -> bool:
        """Drop every value of ``label``; whether it had any."""
        found = False
        for part in (self.master, self.diff, self._sent):
            if part is None:
                continue
            found = part.weights.pop(label, None) is not None or found
            found = part.variances.pop(label, None) is not None or found
        return found

    def clear(self) -> None:
        self.master = WeightDiff()
        self.diff = WeightDiff()
        self._sent = None

    # -- mixing ----------------------------------------------------------------------------

    def take_diff(self) -> WeightDiff:
        """A copy of the local diff, remembered as what the current mix round was sent."""
        sent = WeightDiff(_copy(self.diff.weights), _copy(self.diff.variances))
        self._sent = WeightDiff(_copy(sent.weights), _copy(sent.variances))
        return sent

    def apply_mixed(self, mixed: WeightDiff) -> None:
        """Add ``mixed`` to the master and subtract what was sent from the diff."""
        _add_into(self.master.weights, mixed.weights)
        _add_into(self.master.variances, mixed.variances)
        if self._sent is not None:
            _subtract_from(self.diff.weights, self._sent.weights)
            _subtract_from(self.diff.variances, self._sent.variances)
        self._sent = None

    def replace(self, master: WeightDiff, diff: WeightDiff) -> None:
        """Swap in already-checked parts (for unpack and catch-up)."""
        self.master = master
        self.diff = diff
        self._sent = None


def _add_into(target: Table, delta: Table) -> None:
    for label, row in delta.items():
        into = target.setdefault(label, {})
        for feature, value in row.items():
            into[feature] = into.get(feature, 0.0) + value


def _subtract_from(target: Table, sent: Table) -> None:
    for label, row in sent.items():
        into = target.get(label)
        if into is None:
            continue
        for feature, value in row.items():
            if feature not in into:
                continue
            rest = into[feature] - value
            if rest == 0.0:
                del into[feature]
            else:
                into[feature] = rest
        if not into:
            del target[label]


# -- the methods -------------------------------------------------------------------------


def squared_norm(vector: Vector) -> float:
    total = 0.0
    for value in vector.values():
        total += value * value
    return total


def largest_incorrect(
    table: WeightTable, vector: Vector, label: str, labels: Iterable[str]
) -> tuple[str | None, float, float]:
    """``(z, score(z), score(label))``: the best other label (first on ties), or None."""
    best: str | None = None
    best_score = 0.0
    for other in labels:
        if other == label:
            continue
        score = table.score(other, vector)
        if best is None or score > best_score:
            best, best_score = other, score
    return best, best_score, table.score(label, vector)


def margin_and_variance(
    table: WeightTable, vector: Vector, label: str, labels: Iterable[str]
) -> tuple[str | None, float, float]:
    """``(z, m, V)`` with ``m = score(label) - score(z)`` and ``V`` as in the module doc."""
    incorrect, incorrect_score, correct_score = largest_incorrect(table, vector, label, labels)
    variance = 0.0
    for feature, value in vector.items():
        label_variance = table.variance(label, feature)
        other_variance = 1.0 if incorrect is None else table.variance(incorrect, feature)
        variance += (label_variance + other_variance) * value * value
    return incorrect, -(incorrect_score - correct_score), variance


def _bulk_update(
    table: WeightTable, vector: Vector, step: float, label: str, incorrect: str | None
) -> None:
    for feature, value in vector.items():
        delta = value * step
        table.add_weight(label, feature, delta)
        if incorrect is not None:
            table.add_weight(incorrect, feature, -delta)


class LinearMethod(ABC):
    """One update rule; :meth:`train` changes ``table`` for one labelled vector."""

    #: The canonical method name (as ``get_status`` and errors show it).
    name: ClassVar[str]
    #: Whether the method keeps per-feature variances.
    uses_variance: ClassVar[bool] = False

    def __init__(self, regularization_weight: float = 1.0) -> None:
        self.c = as_float32(regularization_weight)

    @abstractmethod
    def train(self, table: WeightTable, vector: Vector, label: str, labels: Sequence[str]) -> None:
        """Learn ``vector`` as ``label``; ``labels`` are the labels known before this example."""


class Perceptron(LinearMethod):
    name = "perceptron"

    def train(self, table: WeightTable, vector: Vector, label: str, labels: Sequence[str]) -> None:
        predicted: str | None = None
        best = 0.0
        for candidate in labels:
            score = table.score(candidate, vector)
            if predicted is None or score > best:
                predicted, best = candidate, score
        if predicted == label:
            return
        _bulk_update(table, vector, 1.0, label, predicted)


class PassiveAggressive(LinearMethod):
    name = "PA"

    def step(self, loss: float, norm: float) -> float:
        return loss / (2 * norm)

    def train(self, table: WeightTable, vector: Vector, label: str, labels: Sequence[str]) -> None:
        incorrect, incorrect_score, correct_score = largest_incorrect(table, vector, label, labels)
        loss = 1.0 + (incorrect_score - correct_score)
        if loss < 0.0:
            return
        norm = squared_norm(vector)
        if norm == 0.0:
            return
        _bulk_update(table, vector, self.step(loss, norm), label, incorrect)


class PassiveAggressive1(PassiveAggressive):
    name = "PA1"

    def step(self, loss: float, norm: float) -> float:
        return min(self.c, loss / (2 * norm))


class PassiveAggressive2(PassiveAggressive):
    name = "PA2"

    def step(self, loss: float, norm: float) -> float:
        # Jubatus divides in 32-bit floats here: 1 / (2 * C) with C a float.
        return loss / (2 * norm + as_float32(1 / (2 * self.c)))


class ConfidenceWeighted(LinearMethod):
    name = "CW"
    uses_variance = True

    def train(self, table: WeightTable, vector: Vector, label: str, labels: Sequence[str]) -> None:
        c = self.c
        incorrect, margin, variance = margin_and_variance(table, vector, label, labels)
        if variance == 0.0:
            return  # an empty vector: nothing to move
        b = 1.0 + 2 * c * margin
        gamma = -b + math.sqrt(b * b - 8 * c * (margin - c * variance))
        if gamma <= 0.0:
            return
        gamma /= 4 * c * variance
        for feature, value in vector.items():
            covariance_step = 2.0 * gamma * value * value * c
            for target, sign in _targets(label, incorrect):
                weight = table.weight(target, feature)
                sigma = table.variance(target, feature)
                table.set_weight(target, feature, weight + sign * gamma * sigma * value)
                table.set_variance(target, feature, 1.0 / (1.0 / sigma + covariance_step))


class Arow(LinearMethod):
    name = "AROW"
    uses_variance = True

    def train(self, table: WeightTable, vector: Vector, label: str, labels: Sequence[str]) -> None:
        incorrect, margin, variance = margin_and_variance(table, vector, label, labels)
        if margin >= 1.0:
            return
        beta = 1.0 / (variance + 1.0 / self.c)
        alpha = (1.0 - margin) * beta
        for feature, value in vector.items():
            for target, sign in _targets(label, incorrect):
                weight = table.weight(target, feature)
                sigma = table.variance(target, feature)
                table.set_weight(target, feature, weight + sign * alpha * sigma * value)
                table.set_variance(target, feature, sigma - beta * sigma * sigma * value * value)


class NormalHerd(LinearMethod):
    name = "NHERD"
    uses_variance = True

    def train(self, table: WeightTable, vector: Vector, label: str, labels: Sequence[str]) -> None:
        c = self.c
        c_squared = as_float32(c * c)  # a product of two 32-bit floats in Jubatus
        incorrect, margin, variance = margin_and_variance(table, vector, label, labels)
        if margin >= 1.0:
            return
        for feature, value in vector.items():
            for target, sign in _targets(label, incorrect):
                weight = table.weight(target, feature)
                sigma = table.variance(target, feature)
                moved = (1.0 - margin) * (value * sigma) / (variance + 1.0 / c)
                table.set_weight(target, feature, weight + sign * moved)
                table.set_variance(
                    target,
                    feature,
                    1.0 / ((1.0 / sigma) + (2 * c + c_squared * variance) * value * value),
                )


def _targets(label: str, incorrect: str | None) -> list[tuple[str, float]]:
    if incorrect is None:
        return [(label, 1.0)]
    return [(label, 1.0), (incorrect, -1.0)]


#: Every accepted ``method`` name (Jubatus's short and long names) and its class.
METHODS: dict[str, type[LinearMethod]] = {
    "perceptron": Perceptron,
    "PA": PassiveAggressive,
    "passive_aggressive": PassiveAggressive,
    "PA1": PassiveAggressive1,
    "passive_aggressive_1": PassiveAggressive1,
    "PA2": PassiveAggressive2,
    "passive_aggressive_2": PassiveAggressive2,
    "CW": ConfidenceWeighted,
    "confidence_weighted": ConfidenceWeighted,
    "AROW": Arow,
    "arow": Arow,
    "NHERD": NormalHerd,
    "normal_herd": NormalHerd,
}

_UNSUPPORTED = {"NN", "nearest_neighbor", "cosine", "euclidean"}


def create_method(method: object, parameter: object) -> LinearMethod:
    """The method named ``method`` with its ``parameter`` block, checked as Jubatus does.

    ``perceptron`` and ``PA`` take no parameter (``null``, absent or ``{}``); the others need
    ``{"regularization_weight": C}`` with ``C > 0``. Raises
    :class:`~runtime.errors.ConfigError` naming the config path.
    """
    if not isinstance(method, str):
        raise ConfigError(f"method: expected a string, got {type(method).__name__}")
    cls = METHODS.get(method)
    if cls is None:
        if method in _UNSUPPORTED:
            raise ConfigError(f"method: {method!r} is not supported (linear methods only)")
        known = ", ".join(sorted({c.name for c in METHODS.values()}))
        raise ConfigError(f"method: unknown method {method!r} (known: {known})")
    if cls in (Perceptron, PassiveAggressive):
        fields = _parameter_fields(parameter, required=False)
        _refuse_unknown(fields, set(), method)
        return cls()
    if parameter is None:
        raise ConfigError(f"parameter: required for method {method!r}")
    fields = _parameter_fields(parameter, required=True)
    _refuse_unknown(fields, {"regularization_weight"}, method)
    if "regularization_weight" not in fields:
        raise ConfigError("parameter.regularization_weight: required")
    value = fields["regularization_weight"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"parameter.regularization_weight: expected a number, got {type(value).__name__}"
        )
    weight = float(value)
    if not (weight > 0.0 and math.isfinite(as_float32(weight))):
        raise ConfigError(
            f"parameter.regularization_weight: must be > 0 and fit a 32-bit float, got {value}"
        )
    return cls(weight)


def _parameter_fields(parameter: object, required: bool) -> dict[str, object]:
    if parameter is None and not required:
        return {}
    if not isinstance(parameter, dict):
        raise ConfigError(f"parameter: expected an object, got {type(parameter).__name__}")
    return {str(k): v for k, v in parameter.items()}


def _refuse_unknown(fields: dict[str, object], allowed: set[str], method: str) -> None:
    for name in fields:
        if name in {"unlearner", "unlearner_parameter"}:
            raise ConfigError(f"parameter.{name}: label unlearning is not supported")
        if name not in allowed:
            raise ConfigError(f"parameter.{name}: unknown key for method {method!r}")


__all__ = [
    "METHODS",
    "Arow",
    "ConfidenceWeighted",
    "LinearMethod",
    "NormalHerd",
    "PassiveAggressive",
    "PassiveAggressive1",
    "PassiveAggressive2",
    "Perceptron",
    "Table",
    "WeightDiff",
    "WeightTable",
    "as_float32",
    "create_method",
    "mix_weight_diffs",
    "read_table",
]
