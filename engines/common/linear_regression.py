"""Jubatus's online linear regression: the update rules and the weight vector they move.

One weight (and, for CW, AROW and NHERD, one variance that starts at 1) per feature;
``estimate(x) = Σ w_f x_f`` over the feature list as given (a feature listed twice counts
twice, as in Jubatus, which does not merge a training vector). With ``y`` the target,
``e = y - estimate(x)``, ``s`` the sign of ``e`` (-1 when ``e`` is 0), ``eps`` the
``sensitivity`` and ``C`` the ``regularization_weight`` (both 32-bit floats, as Jubatus
keeps them), the methods are Jubatus's:

- ``perceptron``: ``w += learning_rate · e · x``;
- ``PA``, ``PA1``, ``PA2``: ``loss = |e| - eps·sd`` with ``sd`` the standard deviation of the
  targets trained so far; if ``loss > 0``, ``w += s · t · x`` with ``t = loss / |x|²``
  (``PA1``: ``min(C, loss / |x|²)``; ``PA2``: Jubatus computes ``loss / (|x|² + 1 / 2 * C)``
  where ``1 / 2`` is integer division, so it equals ``PA``);
- ``CW``: ``loss = |e| - eps``; if ``loss > 0``, with ``V = Σ var_f x_f²``,
  ``b = 1 - 2C|e|``, ``g = (-b + √(b² + 8C(|e| + CV))) / (4CV)``; per feature
  ``w += s g var x`` and ``var ← 1 / (1/var + 2g x² C)``;
- ``AROW``: if ``loss > 0``: ``b = 1 / (V + 1/C)``, ``a = s · loss · b``; per feature
  ``w += a var x``, ``var ← var - b var² x²``;
- ``NHERD``: if ``loss > 0``: per feature ``w += s · loss · var x / (V + 1/C)``,
  ``var ← 1 / (1/var + (2C + C²V) x²)``.

The arithmetic follows Jubatus's order of operations (``C`` enters as a 32-bit float where
Jubatus declares it ``float``), so estimates agree with the C++ core to the last bit on the
same inputs.

The weights are kept as *master* (agreed at the last mix) plus *diff* (learned here since),
as Jubatus's ``local_storage_mixture``. The mix is Jubatus's ``linear_function_mixer``: diffs
of the same version are averaged, each server's diff counting once, a weight missing on
one side counting as 0 and a variance missing counting as 1, variances taking the minimum;
the mixed diff is added to every master. Thread-safety is the caller's.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from engines.common.config import Params, float32
from runtime.errors import ConfigError
from runtime.mix.mixable import DiffError, read_float, read_list, read_map

#: feature -> [weight, variance]
Table = dict[str, list[float]]
Features = Sequence[tuple[str, float]]


class RegressionWeights:
    """Weights and variances per feature, as master plus diff (and their sum, read by
    every call: one lookup per feature)."""

    def __init__(self) -> None:
        self.master: Table = {}
        self.diff: Table = {}
        #: master + diff per feature
        self.values: Table = {}
        self._sent: Table | None = None

    def get(self, feature: str) -> list[float] | None:
        """``[weight, variance]`` (do not change it) or None when never set."""
        return self.values.get(feature)

    def weight(self, feature: str) -> float:
        found = self.values.get(feature)
        return 0.0 if found is None else found[0]

    def estimate(self, features: Features) -> float:
        total = 0.0
        values = self.values
        for feature, value in features:
            row = values.get(feature)
            if row is not None:
                total += row[0] * value
        return total

    def add(self, features: Features, step: float) -> None:
        """``w_f += value_f · step`` for each listed feature (Jubatus's ``bulk_update``)."""
        diff = self.diff
        values = self.values
        for feature, value in features:
            delta = value * step
            row = diff.get(feature)
            if row is None:
                diff[feature] = [delta, 0.0]
            else:
                row[0] += delta
            current = values.get(feature)
            if current is None:
                values[feature] = [delta, 0.0]
            else:
                current[0] += delta

    def set(self, feature: str, weight: float, variance: float) -> None:
        base = self.master.get(feature)
        if base is None:
            self.diff[feature] = [weight, variance]
        else:
            self.diff[feature] = [weight - base[0], variance - base[1]]
        self.values[feature] = [weight, variance]

    def clear(self) -> None:
        self.master = {}
        self.diff = {}
        self.values = {}
        self._sent = None

    def _recompute(self, features: Iterable[str]) -> None:
        for feature in features:
            master = self.master.get(feature)
            diff = self.diff.get(feature)
            if master is None and diff is None:
                self.values.pop(feature, None)
            elif master is None:
                assert diff is not None
                self.values[feature] = list(diff)
            elif diff is None:
                self.values[feature] = list(master)
            else:
                self.values[feature] = [master[0] + diff[0], master[1] + diff[1]]

    # -- mix -------------------------------------------------------------------------------

    def take_diff(self) -> Table:
        self._sent = {feature: list(row) for feature, row in self.diff.items()}
        return {feature: list(row) for feature, row in self.diff.items()}

    def apply_mixed(self, mixed: Mapping[str, Sequence[float]]) -> None:
        """Add the averaged diff to the master and take what was sent out of the diff."""
        for feature, (weight, variance) in mixed.items():
            row = self.master.setdefault(feature, [0.0, 0.0])
            row[0] += weight
            row[1] += variance
        sent = self._sent or {}
        for feature, (weight, variance) in sent.items():
            current = self.diff.get(feature)
            if current is None:
                continue
            current[0] -= weight
            current[1] -= variance
            if current[0] == 0.0 and current[1] == 0.0:
                del self.diff[feature]
        touched = set(mixed) | set(sent)
        if self._sent is None:
            touched |= set(self.diff)
            self.diff = {}
        self._sent = None
        self._recompute(touched)

    def replace(self, master: Table, diff: Table) -> None:
        self.master = master
        self.diff = diff
        self.values = {}
        self._recompute(set(master) | set(diff))
        self._sent = None


def mix_tables(lhs: Table, lhs_count: int, rhs: Table, rhs_count: int) -> Table:
    """Jubatus's ``mix_val3`` over two diffs: weights averaged by count (missing = 0),
    variances by minimum (missing = 1)."""
    total = lhs_count + rhs_count
    mixed: Table = {}
    for feature in dict.fromkeys([*lhs, *rhs]):
        left = lhs.get(feature, (0.0, 1.0))
        right = rhs.get(feature, (0.0, 1.0))
        weight = (lhs_count * left[0] + rhs_count * right[0]) / total if total else 0.0
        mixed[feature] = [weight, min(left[1], right[1])]
    return mixed


def read_table(value: object, path: str) -> Table:
    table: Table = {}
    for feature, row in read_map(value, path).items():
        items = read_list(row, f"{path}[{feature!r}]")
        if len(items) != 2:
            raise DiffError(f"{path}[{feature!r}]: expected [weight, variance]")
        table[feature] = [
            read_float(items[0], f"{path}[{feature!r}][0]"),
            read_float(items[1], f"{path}[{feature!r}][1]"),
        ]
    return table


# -- the methods ---------------------------------------------------------------------------


def _squared_norm(features: Features) -> float:
    norm = 0.0
    for _, value in features:
        norm += value * value
    return norm


class LinearRegressionMethod(ABC):
    """One update rule; :meth:`train` moves ``weights`` towards one example."""

    name: ClassVar[str]

    def __init__(self, params: Params) -> None:
        self.params = params

    @abstractmethod
    def train(self, weights: RegressionWeights, features: Features, value: float) -> None: ...

    def clear(self) -> None:  # noqa: B027 (most methods keep nothing else)
        """Forget what the method keeps beside the weights."""

    def state(self) -> list[float]:
        return []

    def set_state(self, state: Sequence[float]) -> None:
        del state


class Perceptron(LinearRegressionMethod):
    name = "perceptron"

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        params.only(["learning_rate"])
        self.learning_rate = params.float32("learning_rate")
        params.check(self.learning_rate > 0.0, "learning_rate", "must be > 0")

    def train(self, weights: RegressionWeights, features: Features, value: float) -> None:
        error = value - weights.estimate(features)
        weights.add(features, error * self.learning_rate)


class PassiveAggressive(LinearRegressionMethod):
    name = "PA"
    keys: ClassVar[tuple[str, ...]] = ("sensitivity",)

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        params.only(self.keys)
        self.sensitivity = params.float32("sensitivity")
        params.check(self.sensitivity >= 0.0, "sensitivity", "must be >= 0")
        if "regularization_weight" in self.keys:
            self.c = params.float32("regularization_weight")
            params.check(self.c > 0.0, "regularization_weight", "must be > 0")
        self.sum = 0.0
        self.squared_sum = 0.0
        self.count = 0.0

    def step(self, loss: float, norm: float) -> float:
        return loss / norm

    def train(self, weights: RegressionWeights, features: Features, value: float) -> None:
        self.sum += value
        self.squared_sum += value * value
        self.count += 1
        average = self.sum / self.count
        variance = self.squared_sum / self.count - average * average
        deviation = math.sqrt(variance) if variance >= 0.0 else math.nan
        error = value - weights.estimate(features)
        sign = 1.0 if error > 0.0 else -1.0
        loss = sign * error - self.sensitivity * deviation
        if loss > 0.0:
            norm = _squared_norm(features)
            try:
                coefficient = sign * self.step(loss, norm)
            except ZeroDivisionError:
                return  # an empty vector: Jubatus's coefficient is infinite and skipped
            if not math.isinf(coefficient):
                weights.add(features, coefficient)

    def clear(self) -> None:
        self.sum = self.squared_sum = self.count = 0.0

    def state(self) -> list[float]:
        return [self.sum, self.squared_sum, self.count]

    def set_state(self, state: Sequence[float]) -> None:
        self.sum, self.squared_sum, self.count = (float(v) for v in state)


class PassiveAggressive1(PassiveAggressive):
    name = "PA1"
    keys = ("regularization_weight", "sensitivity")

    def step(self, loss: float, norm: float) -> float:
        return min(self.c, loss / norm)


class PassiveAggressive2(PassiveAggressive):
    name = "PA2"
    keys = ("regularization_weight", "sensitivity")
    # ``loss / (norm + 1 / 2 * C)`` in Jubatus: ``1 / 2`` is 0 in C++, so the step is PA's.


class _Confidence(LinearRegressionMethod):
    def __init__(self, params: Params) -> None:
        super().__init__(params)
        params.only(["regularization_weight", "sensitivity"])
        self.c = params.float32("regularization_weight")
        params.check(self.c > 0.0, "regularization_weight", "must be > 0")
        self.sensitivity = params.float32("sensitivity")
        params.check(self.sensitivity >= 0.0, "sensitivity", "must be >= 0")

    @staticmethod
    def variance(weights: RegressionWeights, features: Features) -> float:
        total = 0.0
        for feature, value in features:
            found = weights.get(feature)
            covariance = 1.0 if found is None else found[1]
            total += covariance * value * value
        return total


class ConfidenceWeighted(_Confidence):
    name = "CW"

    def train(self, weights: RegressionWeights, features: Features, value: float) -> None:
        error = value - weights.estimate(features)
        sign = 1.0 if error > 0.0 else -1.0
        loss = sign * error - self.sensitivity
        variance = self.variance(weights, features)
        absolute = abs(error)
        if loss <= 0.0:
            return
        c = self.c
        b = 1.0 - 2 * c * absolute
        gamma = -b + math.sqrt(b * b + 8 * c * (absolute + c * variance))
        try:
            gamma /= 4 * c * variance
        except ZeroDivisionError:
            return  # an empty vector: nothing to move
        for feature, x in features:
            found = weights.get(feature)
            weight, sigma = (0.0, 1.0) if found is None else (found[0], found[1])
            step = 2 * gamma * x * x * c
            weights.set(feature, weight + sign * gamma * sigma * x, 1.0 / (1.0 / sigma + step))


class Arow(_Confidence):
    name = "AROW"

    def train(self, weights: RegressionWeights, features: Features, value: float) -> None:
        error = value - weights.estimate(features)
        sign = 1.0 if error > 0.0 else -1.0
        loss = sign * error - self.sensitivity
        if loss <= 0.0:
            return
        variance = self.variance(weights, features)
        beta = 1.0 / (variance + 1.0 / self.c)
        alpha = sign * loss * beta
        for feature, x in features:
            found = weights.get(feature)
            weight, sigma = (0.0, 1.0) if found is None else (found[0], found[1])
            weights.set(feature, weight + alpha * sigma * x, sigma - beta * sigma * sigma * x * x)


class NormalHerd(_Confidence):
    name = "NHERD"

    def train(self, weights: RegressionWeights, features: Features, value: float) -> None:
        error = value - weights.estimate(features)
        sign = 1.0 if error > 0.0 else -1.0
        loss = sign * error - self.sensitivity
        if loss <= 0.0:
            return
        variance = self.variance(weights, features)
        c = self.c
        c_squared = float32(c * c)  # a product of two floats in Jubatus
        for feature, x in features:
            found = weights.get(feature)
            weight, sigma = (0.0, 1.0) if found is None else (found[0], found[1])
            covariance = x * sigma
            weights.set(
                feature,
                weight + sign * loss * covariance / (variance + 1.0 / c),
                1.0 / ((1.0 / sigma) + (2 * c + c_squared * variance) * x * x),
            )


#: Every accepted linear ``method`` name (Jubatus's short and long names) and its class.
LINEAR_METHODS: dict[str, type[LinearRegressionMethod]] = {
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
    "NHERD": NormalHerd,
    "normal_herd": NormalHerd,
}


def create_linear_method(method: str, parameter: object) -> LinearRegressionMethod:
    """The linear method ``method`` with its ``parameter`` block; ``ConfigError`` if bad."""
    cls = LINEAR_METHODS.get(method)
    if cls is None:
        raise ConfigError(f"method: unknown method {method!r}")
    if parameter is None:
        raise ConfigError("parameter: required")
    return cls(Params(parameter, "parameter"))
