"""Online linear multiclass classifiers with Jubatus's update rules.

A feature vector is a list of feature ids with their values. Every label has a weight per
feature (and, for CW, AROW and NHERD, a variance per feature that starts at 1); a label's
score is the dot product of its weights with the vector, summed in the vector's order.
Training one example with label ``y`` finds the *largest incorrect label* ``z`` (the
highest-scoring other label, first in label order on a tie; none when ``y`` is the only
label) and the margin ``m = score(y) - score(z)`` (``score(z)`` is 0 without ``z``), then
moves ``y`` towards the vector and ``z`` away from it. With ``|x|² = Σ x_f²``, ``C`` the
regularization weight, ``var_l,f`` the variance of label ``l`` at feature ``f`` and
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

The numbers live in a :class:`~engines.common.storage.WeightArrays`; a rule reads and
writes single entries (``row * stride + slot``) with plain Python floats, which for the
short vectors of one example is faster than any numpy call. Labels are slots (columns);
``known`` lists the slots of the labels known before this example, in label-name order.
This module knows nothing of data, labels' names, counts or versions, and never raises on
a vector it is given (the caller checks values are finite).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from engines.common import kernels
from engines.common.storage import WeightArrays, as_float32
from runtime.errors import ConfigError

#: What a rule reports: the flat positions whose diff weight went from missing to present.
Fresh = list[int]


def squared_norm(values: Sequence[float]) -> float:
    total = 0.0
    for value in values:
        total += value * value
    return total


def score(
    weights: Sequence[float], bases: Sequence[int], values: Sequence[float], slot: int
) -> float:
    """The dot product of column ``slot`` with the vector (``bases``: row times stride)."""
    total = 0.0
    for base, value in zip(bases, values, strict=True):
        total += weights[base + slot] * value
    return total


def largest_incorrect(
    arrays: WeightArrays,
    bases: Sequence[int],
    values: Sequence[float],
    label: int,
    known: Sequence[int],
) -> tuple[int, float, float]:
    """``(z, score(z), score(label))``: the best other label (first on ties), or -1."""
    weights = arrays.W
    best = -1
    best_score = 0.0
    for other in known:
        if other == label:
            continue
        total = 0.0
        for base, value in zip(bases, values, strict=True):
            total += weights[base + other] * value
        if best < 0 or total > best_score:
            best, best_score = other, total
    return best, best_score, score(weights, bases, values, label)


def margin_and_variance(
    arrays: WeightArrays,
    bases: Sequence[int],
    values: Sequence[float],
    label: int,
    known: Sequence[int],
) -> tuple[int, float, float]:
    """``(z, m, V)`` with ``m = score(label) - score(z)`` and ``V`` as in the module doc."""
    incorrect, incorrect_score, correct_score = largest_incorrect(
        arrays, bases, values, label, known
    )
    variances = arrays.V
    variance = 0.0
    for base, value in zip(bases, values, strict=True):
        label_variance = variances[base + label]
        other_variance = 1.0 if incorrect < 0 else variances[base + incorrect]
        variance += (label_variance + other_variance) * value * value
    return incorrect, -(incorrect_score - correct_score), variance


def _bulk_update(
    arrays: WeightArrays,
    bases: Sequence[int],
    values: Sequence[float],
    step: float,
    label: int,
    incorrect: int,
    fresh: Fresh,
) -> None:
    """``w_label += step x`` and ``w_incorrect -= step x`` (diff parts)."""
    weights, master, diff = arrays.W, arrays.WM, arrays.WD
    targets = (label,) if incorrect < 0 else (label, incorrect)
    for base, value in zip(bases, values, strict=True):
        delta = value * step
        for target in targets:
            i = base + target
            d = diff[i]
            if d != d:
                fresh.append(i)
                d = 0.0
            d = d + (delta if target == label else -delta)
            diff[i] = d
            m = master[i]
            weights[i] = (0.0 if m != m else m) + d


class LinearMethod(ABC):
    """One update rule; :meth:`train` changes ``arrays`` for one labelled vector."""

    #: The canonical method name (as ``get_status`` and errors show it).
    name: ClassVar[str]
    #: Whether the method keeps per-feature variances.
    uses_variance: ClassVar[bool] = False

    #: The method's number in the compiled kernel (``kernels_c/linear.c``: PERCEPTRON, ...).
    kernel_code: ClassVar[int]

    def __init__(self, regularization_weight: float = 1.0) -> None:
        self.c = as_float32(regularization_weight)
        #: The constant the kernel needs beside ``c`` (PA2's and NHERD's 32-bit products).
        self.kernel_extra = 0.0

    def learn(
        self,
        arrays: WeightArrays,
        bases: Sequence[int],
        values: Sequence[float],
        label: int,
        known: Sequence[int],
        fresh: Fresh,
    ) -> bool:
        """:meth:`train`, by the compiled kernel when it is built (the same bits)."""
        compiled = kernels.compiled
        if compiled is None:
            return self.train(arrays, bases, values, label, known, fresh)
        changed: bool = compiled.train_linear(
            self.kernel_code, self.c, self.kernel_extra, arrays, bases, values, label, known, fresh
        )
        return changed

    @abstractmethod
    def train(
        self,
        arrays: WeightArrays,
        bases: Sequence[int],
        values: Sequence[float],
        label: int,
        known: Sequence[int],
        fresh: Fresh,
    ) -> bool:
        """Learn the vector as ``label``; ``known`` are the label slots known before this
        example, in label order. True when something changed; flat positions whose diff
        weight appeared are appended to ``fresh``."""


class Perceptron(LinearMethod):
    name = "perceptron"
    kernel_code = 0

    def train(
        self,
        arrays: WeightArrays,
        bases: Sequence[int],
        values: Sequence[float],
        label: int,
        known: Sequence[int],
        fresh: Fresh,
    ) -> bool:
        weights = arrays.W
        predicted = -1
        best = 0.0
        for candidate in known:
            total = 0.0
            for base, value in zip(bases, values, strict=True):
                total += weights[base + candidate] * value
            if predicted < 0 or total > best:
                predicted, best = candidate, total
        if predicted == label:
            return False
        _bulk_update(arrays, bases, values, 1.0, label, predicted, fresh)
        return True


class PassiveAggressive(LinearMethod):
    name = "PA"
    kernel_code = 1

    def step(self, loss: float, norm: float) -> float:
        return loss / (2 * norm)

    def train(
        self,
        arrays: WeightArrays,
        bases: Sequence[int],
        values: Sequence[float],
        label: int,
        known: Sequence[int],
        fresh: Fresh,
    ) -> bool:
        incorrect, incorrect_score, correct_score = largest_incorrect(
            arrays, bases, values, label, known
        )
        loss = 1.0 + (incorrect_score - correct_score)
        if loss < 0.0:
            return False
        norm = squared_norm(values)
        if norm == 0.0:
            return False
        _bulk_update(arrays, bases, values, self.step(loss, norm), label, incorrect, fresh)
        return True


class PassiveAggressive1(PassiveAggressive):
    name = "PA1"
    kernel_code = 2

    def step(self, loss: float, norm: float) -> float:
        return min(self.c, loss / (2 * norm))


class PassiveAggressive2(PassiveAggressive):
    name = "PA2"
    kernel_code = 3

    def __init__(self, regularization_weight: float = 1.0) -> None:
        super().__init__(regularization_weight)
        self.kernel_extra = as_float32(1 / (2 * self.c))

    def step(self, loss: float, norm: float) -> float:
        # Jubatus divides in 32-bit floats here: 1 / (2 * C) with C a float (kernel_extra).
        return loss / (2 * norm + self.kernel_extra)


class ConfidenceWeighted(LinearMethod):
    name = "CW"
    kernel_code = 4
    uses_variance = True

    def train(
        self,
        arrays: WeightArrays,
        bases: Sequence[int],
        values: Sequence[float],
        label: int,
        known: Sequence[int],
        fresh: Fresh,
    ) -> bool:
        c = self.c
        incorrect, margin, variance = margin_and_variance(arrays, bases, values, label, known)
        if variance == 0.0:
            return False  # an empty vector: nothing to move
        b = 1.0 + 2 * c * margin
        gamma = -b + math.sqrt(b * b - 8 * c * (margin - c * variance))
        if gamma <= 0.0:
            return False
        gamma /= 4 * c * variance
        W, V, WM, WD, VM, VD = arrays.W, arrays.V, arrays.WM, arrays.WD, arrays.VM, arrays.VD
        targets = _targets(label, incorrect)
        for base, value in zip(bases, values, strict=True):
            covariance_step = 2.0 * gamma * value * value * c
            for target, sign in targets:
                i = base + target
                weight = W[i]
                sigma = V[i]
                m = WM[i]
                if m != m:
                    m = 0.0
                if WD[i] != WD[i]:
                    fresh.append(i)
                d = weight + sign * gamma * sigma * value - m
                WD[i] = d
                W[i] = m + d
                m = VM[i]
                if m != m:
                    m = 0.0
                d = 1.0 / (1.0 / sigma + covariance_step) - m
                VD[i] = d
                V[i] = (m or 0.0) + (d or 0.0)
        return True


class Arow(LinearMethod):
    name = "AROW"
    kernel_code = 5
    uses_variance = True

    def train(
        self,
        arrays: WeightArrays,
        bases: Sequence[int],
        values: Sequence[float],
        label: int,
        known: Sequence[int],
        fresh: Fresh,
    ) -> bool:
        incorrect, margin, variance = margin_and_variance(arrays, bases, values, label, known)
        if margin >= 1.0:
            return False
        beta = 1.0 / (variance + 1.0 / self.c)
        alpha = (1.0 - margin) * beta
        W, V, WM, WD, VM, VD = arrays.W, arrays.V, arrays.WM, arrays.WD, arrays.VM, arrays.VD
        targets = _targets(label, incorrect)
        for base, value in zip(bases, values, strict=True):
            for target, sign in targets:
                i = base + target
                weight = W[i]
                sigma = V[i]
                m = WM[i]
                if m != m:
                    m = 0.0
                if WD[i] != WD[i]:
                    fresh.append(i)
                d = weight + sign * alpha * sigma * value - m
                WD[i] = d
                W[i] = m + d
                m = VM[i]
                if m != m:
                    m = 0.0
                d = sigma - beta * sigma * sigma * value * value - m
                VD[i] = d
                V[i] = (m or 0.0) + (d or 0.0)
        return True


class NormalHerd(LinearMethod):
    name = "NHERD"
    kernel_code = 6
    uses_variance = True

    def __init__(self, regularization_weight: float = 1.0) -> None:
        super().__init__(regularization_weight)
        self.kernel_extra = as_float32(self.c * self.c)

    def train(
        self,
        arrays: WeightArrays,
        bases: Sequence[int],
        values: Sequence[float],
        label: int,
        known: Sequence[int],
        fresh: Fresh,
    ) -> bool:
        c = self.c
        c_squared = self.kernel_extra  # a product of two 32-bit floats in Jubatus
        incorrect, margin, variance = margin_and_variance(arrays, bases, values, label, known)
        if margin >= 1.0:
            return False
        W, V, WM, WD, VM, VD = arrays.W, arrays.V, arrays.WM, arrays.WD, arrays.VM, arrays.VD
        targets = _targets(label, incorrect)
        for base, value in zip(bases, values, strict=True):
            for target, sign in targets:
                i = base + target
                weight = W[i]
                sigma = V[i]
                moved = (1.0 - margin) * (value * sigma) / (variance + 1.0 / c)
                m = WM[i]
                if m != m:
                    m = 0.0
                if WD[i] != WD[i]:
                    fresh.append(i)
                d = weight + sign * moved - m
                WD[i] = d
                W[i] = m + d
                m = VM[i]
                if m != m:
                    m = 0.0
                d = 1.0 / ((1.0 / sigma) + (2 * c + c_squared * variance) * value * value) - m
                VD[i] = d
                V[i] = (m or 0.0) + (d or 0.0)
        return True


def _targets(label: int, incorrect: int) -> tuple[tuple[int, float], ...]:
    if incorrect < 0:
        return ((label, 1.0),)
    return ((label, 1.0), (incorrect, -1.0))


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
    "largest_incorrect",
    "margin_and_variance",
    "score",
    "squared_norm",
]
