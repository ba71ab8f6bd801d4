"""Online linear multiclass classifiers with Jubatus's update rules.

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

The weights live in a :class:`~engines.common.storage.WeightTable`. This module knows
nothing of data, labels' counts or versions, and never raises on a vector it is given (the
caller checks values are finite).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import ClassVar

from runtime.errors import ConfigError
from tests.engines.classifier.reference.storage import Vector, WeightTable, as_float32


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
            raise ConfigError.unknown_key(
                f"parameter.{name}", allowed, f"unknown key for method {method!r}"
            )


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
    "create_method",
]
