"""Per-label weight storage with Jubatus's master + diff split, and its mix.

:class:`WeightTable` keeps, for every label, a weight per feature (and a variance, for the
methods that keep one) as *master* (agreed at the last mix) plus *diff* (changed here
since), as Jubatus's mixable storage does; :func:`mix_weight_diffs` and
:meth:`WeightTable.apply_mixed` are the weight part of a linear model's mix. Values are
rounded to 32-bit floats where Jubatus rounds them (:func:`as_float32`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

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
