"""The linear methods: single updates worked out by hand from Jubatus's formulas, and each
method learning a separable three-class problem."""

from __future__ import annotations

import math
import random

import pytest

from engines.common.linear import (
    METHODS,
    Arow,
    ConfidenceWeighted,
    LinearMethod,
    NormalHerd,
    PassiveAggressive,
    PassiveAggressive1,
    PassiveAggressive2,
    Perceptron,
    create_method,
)
from engines.common.storage import NAN, FeatureIndex, WeightArrays, as_float32
from runtime.errors import ConfigError

X = {"f1": 1.0, "f2": 2.0}  # |x|² = 5


class Table:
    """Labels and feature names over :class:`WeightArrays`, as the rules' callers hold them."""

    def __init__(self) -> None:
        self.arrays = WeightArrays()
        self.index = FeatureIndex()
        self.slots: dict[str, int] = {}

    def fid(self, feature: str) -> int:
        fid = self.index.intern(feature)
        self.arrays.ensure_rows(fid + 1)
        return fid

    def slot(self, label: str) -> int:
        if label not in self.slots:
            self.slots[label] = len(self.slots)
            self.arrays.ensure_slots(len(self.slots))
        return self.slots[label]

    def at(self, label: str, feature: str) -> int:
        slot = self.slot(label)  # first: a new slot may lay the rows out again
        return self.fid(feature) * self.arrays.stride + slot

    def weight(self, label: str, feature: str) -> float:
        return self.arrays.W[self.at(label, feature)]

    def variance(self, label: str, feature: str) -> float:
        return self.arrays.V[self.at(label, feature)]

    def add_weight(self, label: str, feature: str, delta: float) -> None:
        self.arrays.add_weight(self.at(label, feature), delta)

    def score(self, label: str, x: dict[str, float]) -> float:
        total = 0.0
        for feature, value in x.items():
            total += self.weight(label, feature) * value
        return total

    def diff(self, table: str) -> dict[str, dict[str, float]]:
        """The diff part as the dict engine held it: only the values there are."""
        values = self.arrays.table(table)
        out: dict[str, dict[str, float]] = {}
        for label, slot in self.slots.items():
            for feature, fid in self.index.ids.items():
                value = values[fid * self.arrays.stride + slot]
                if value == value:
                    out.setdefault(label, {})[feature] = value
        return out


def run(
    method: LinearMethod, table: Table, x: dict[str, float], label: str, labels: list[str]
) -> bool:
    """One example through ``method``: labels known before it, in order."""
    known = [table.slot(other) for other in labels]
    slot = table.slot(label)
    fids = [table.fid(feature) for feature in x]
    bases = [fid * table.arrays.stride for fid in fids]
    return method.train(table.arrays, bases, list(x.values()), slot, known, [])


def exactly(value: float) -> object:
    return pytest.approx(value, rel=1e-15, abs=0.0)


def weights(table: Table, label: str) -> dict[str, float]:
    return {f: table.weight(label, f) for f in X}


def variances(table: Table, label: str) -> dict[str, float]:
    return {f: table.variance(label, f) for f in X}


# -- perceptron ----------------------------------------------------------------------------


def test_perceptron_moves_both_labels_on_a_mistake() -> None:
    table = Table()
    run(Perceptron(), table, X, "b", ["a", "b"])  # all scores 0: "a" (first) is predicted
    assert weights(table, "b") == {"f1": 1.0, "f2": 2.0}
    assert weights(table, "a") == {"f1": -1.0, "f2": -2.0}


def test_perceptron_leaves_a_correct_prediction_alone() -> None:
    table = Table()
    run(Perceptron(), table, X, "a", ["a", "b"])
    assert table.diff("WD") == {}


def test_perceptron_first_label_moves_alone() -> None:
    table = Table()
    run(Perceptron(), table, X, "a", [])
    assert weights(table, "a") == {"f1": 1.0, "f2": 2.0}
    assert list(table.diff("WD")) == ["a"]


def test_perceptron_new_label_is_not_a_candidate_prediction() -> None:
    table = Table()
    table.add_weight("a", "f1", -1.0)  # score(a) = -1 < 0 = score of the new label
    run(Perceptron(), table, X, "b", ["a"])
    assert weights(table, "b") == {"f1": 1.0, "f2": 2.0}
    assert weights(table, "a") == {"f1": -2.0, "f2": -2.0}


# -- passive aggressive --------------------------------------------------------------------


def test_pa_step_is_loss_over_twice_the_squared_norm() -> None:
    table = Table()
    run(PassiveAggressive(), table, X, "a", ["a", "b"])  # loss 1, step 1 / (2 * 5)
    assert weights(table, "a") == {"f1": 0.1, "f2": 0.2}
    assert weights(table, "b") == {"f1": -0.1, "f2": -0.2}
    # Now m = 0.5 - (-0.5) = 1, loss 0: a zero step.
    run(PassiveAggressive(), table, X, "a", ["a", "b"])
    assert weights(table, "a") == {"f1": 0.1, "f2": 0.2}


def test_pa_does_nothing_past_the_margin_or_on_an_empty_vector() -> None:
    table = Table()
    table.add_weight("a", "f1", 3.0)
    run(PassiveAggressive(), table, X, "a", ["a", "b"])  # loss 1 - 3 < 0
    assert table.diff("WD") == {"a": {"f1": 3.0}}
    run(PassiveAggressive(), table, {}, "b", ["a", "b"])
    assert table.diff("WD") == {"a": {"f1": 3.0}}


def test_pa_with_the_only_label_moves_it_alone() -> None:
    table = Table()
    run(PassiveAggressive(), table, X, "a", [])
    assert weights(table, "a") == {"f1": 0.1, "f2": 0.2}
    assert list(table.diff("WD")) == ["a"]


def test_pa1_caps_the_step_at_c() -> None:
    table = Table()
    run(PassiveAggressive1(0.0625), table, X, "a", ["a", "b"])  # min(0.0625, 0.1)
    assert weights(table, "a") == {"f1": 0.0625, "f2": 0.125}
    table = Table()
    run(PassiveAggressive1(4.0), table, X, "a", ["a", "b"])  # min(4, 0.1)
    assert weights(table, "a") == {"f1": 0.1, "f2": 0.2}


def test_pa1_uses_c_as_a_32_bit_float() -> None:
    table = Table()
    run(PassiveAggressive1(0.05), table, X, "a", ["a", "b"])
    assert table.weight("a", "f1") == as_float32(0.05) != 0.05


def test_pa2_adds_one_over_2c_to_the_denominator() -> None:
    table = Table()
    run(PassiveAggressive2(0.5), table, X, "a", ["a", "b"])  # 1 / (10 + 1)
    assert weights(table, "a") == {"f1": exactly(1 / 11), "f2": exactly(2 / 11)}
    assert weights(table, "b") == {"f1": exactly(-1 / 11), "f2": exactly(-2 / 11)}


# -- confidence weighted, AROW, NHERD ------------------------------------------------------


def test_cw_single_step() -> None:
    # m = 0, V = (1 + 1) * 5 = 10, b = 1, gamma = (-1 + sqrt(1 + 80)) / 40 = 0.2
    table = Table()
    run(ConfidenceWeighted(1.0), table, X, "a", ["a", "b"])
    assert weights(table, "a") == {"f1": exactly(0.2), "f2": exactly(0.4)}
    assert weights(table, "b") == {"f1": exactly(-0.2), "f2": exactly(-0.4)}
    # var <- 1 / (1 + 2 * 0.2 * x²)
    assert variances(table, "a") == {"f1": exactly(1 / 1.4), "f2": exactly(1 / 2.6)}
    assert variances(table, "b") == {"f1": exactly(1 / 1.4), "f2": exactly(1 / 2.6)}


def test_cw_without_another_label_counts_its_variance_as_one() -> None:
    # V = (1 + 1) * 5 even though only "a" exists: Jubatus's default for the missing label.
    table = Table()
    run(ConfidenceWeighted(1.0), table, X, "a", [])
    assert weights(table, "a") == {"f1": exactly(0.2), "f2": exactly(0.4)}
    assert list(table.diff("WD")) == ["a"]


def test_cw_second_step_uses_the_variances() -> None:
    c = 0.5
    table = Table()
    method = ConfidenceWeighted(c)
    run(method, table, {"f": 1.0}, "a", ["a", "b"])
    # first step: m = 0, V = 2, b = 1, gamma = (-1 + sqrt(1 + 8 * 0.5 * 0.5 * 2)) / (4 * 0.5 * 2)
    g1 = (-1 + math.sqrt(1 + 4.0)) / 4.0
    s1 = 1 / (1 + 2 * g1 * c)
    assert table.weight("a", "f") == exactly(g1)
    assert table.variance("a", "f") == exactly(s1)
    run(method, table, {"f": 1.0}, "b", ["a", "b"])
    m = -g1 - g1  # score(b) - score(a)
    v = 2 * s1
    b = 1 + 2 * c * m
    g2 = (-b + math.sqrt(b * b - 8 * c * (m - c * v))) / (4 * c * v)
    assert table.weight("b", "f") == exactly(-g1 + g2 * s1)
    assert table.weight("a", "f") == exactly(g1 - g2 * s1)
    assert table.variance("b", "f") == exactly(1 / (1 / s1 + 2 * g2 * c))


def test_arow_single_step() -> None:
    # m = 0, V = 10, beta = 1 / (10 + 1), alpha = (1 - 0) * beta
    table = Table()
    run(Arow(1.0), table, X, "a", ["a", "b"])
    assert weights(table, "a") == {"f1": exactly(1 / 11), "f2": exactly(2 / 11)}
    assert weights(table, "b") == {"f1": exactly(-1 / 11), "f2": exactly(-2 / 11)}
    # var <- var - beta var² x²
    assert variances(table, "a") == {"f1": exactly(10 / 11), "f2": exactly(7 / 11)}


def test_arow_and_nherd_stop_at_margin_one() -> None:
    for method in (Arow(1.0), NormalHerd(1.0)):
        table = Table()
        table.add_weight("a", "f1", 1.0)  # m = 1
        run(method, table, X, "a", ["a", "b"])
        assert table.diff("WD") == {"a": {"f1": 1.0}}
        assert table.diff("VD") == {}


def test_nherd_single_step() -> None:
    # m = 0, V = 10: w += (1 - 0) x var / (10 + 1); var <- 1 / (1 + (2 + 10) x²)
    table = Table()
    run(NormalHerd(1.0), table, X, "a", ["a", "b"])
    assert weights(table, "a") == {"f1": exactly(1 / 11), "f2": exactly(2 / 11)}
    assert weights(table, "b") == {"f1": exactly(-1 / 11), "f2": exactly(-2 / 11)}
    assert variances(table, "a") == {"f1": exactly(1 / 13), "f2": exactly(1 / 49)}


def test_largest_incorrect_label_is_the_one_moved() -> None:
    table = Table()
    table.add_weight("b", "f1", 0.5)
    table.add_weight("c", "f1", 2.0)
    run(PassiveAggressive(), table, X, "a", ["a", "b", "c"])
    # z = c (score 2), loss = 1 + 2 - 0 = 3, step = 3 / 10
    assert table.weight("a", "f1") == exactly(0.3)
    assert table.weight("c", "f1") == exactly(2.0 - 0.3)
    assert table.weight("b", "f1") == 0.5


# -- learning ------------------------------------------------------------------------------


def separable_problem(seed: int, n: int) -> list[tuple[str, dict[str, float]]]:
    """Points labelled by the best of three fixed linear scores, kept only with margin."""
    rng = random.Random(seed)
    truth = {"red": (2.0, 0.0, 0.0), "green": (-1.0, 1.7, 0.0), "blue": (-1.0, -1.7, 0.3)}
    examples: list[tuple[str, dict[str, float]]] = []
    while len(examples) < n:
        x = {"x": rng.uniform(-1, 1), "y": rng.uniform(-1, 1), "bias": 1.0}
        scores = sorted(
            ((wx * x["x"] + wy * x["y"] + wb, label) for label, (wx, wy, wb) in truth.items()),
            reverse=True,
        )
        if scores[0][0] - scores[1][0] > 0.25:
            examples.append((scores[0][1], x))
    return examples


def accuracy(table: Table, labels: list[str], data: list[tuple[str, dict[str, float]]]) -> float:
    right = sum(max(labels, key=lambda label: table.score(label, x)) == truth for truth, x in data)
    return right / len(data)


METHOD_OBJECTS: list[LinearMethod] = [
    Perceptron(),
    PassiveAggressive(),
    PassiveAggressive1(1.0),
    PassiveAggressive2(1.0),
    ConfidenceWeighted(1.0),
    Arow(1.0),
    NormalHerd(0.1),
]


@pytest.mark.parametrize("method", METHOD_OBJECTS, ids=lambda m: m.name)
def test_each_method_learns_a_separable_three_class_problem(method: LinearMethod) -> None:
    train = separable_problem(seed=7, n=900)
    test = separable_problem(seed=8, n=400)
    table = Table()
    labels: list[str] = []
    for label, x in train:  # one online pass
        run(method, table, x, label, list(labels))
        if label not in labels:
            labels.append(label)
    assert sorted(labels) == ["blue", "green", "red"]
    assert accuracy(table, labels, test) >= 0.95


# -- the arrays -----------------------------------------------------------------------------


def test_a_value_is_master_plus_diff_and_a_missing_variance_is_one() -> None:
    table = Table()
    i = table.at("a", "f")
    arrays = table.arrays
    assert arrays.V[i] == 1.0 and arrays.W[i] == 0.0
    arrays.WM[i] = 1.5
    arrays.refresh(slice(None))
    arrays.add_weight(i, 0.25)
    assert arrays.W[i] == 1.75
    arrays.set_weight(i, 3.0)
    assert arrays.WD[i] == 1.5 and arrays.W[i] == 3.0
    arrays.VM[i] = 0.5
    arrays.set_variance(i, 0.25)
    assert arrays.V[i] == 0.25
    assert arrays.VD[i] == -0.25


def test_refresh_computes_what_single_writes_compute() -> None:
    rng = random.Random(3)
    table = Table()
    positions = [table.at(label, f"f{k}") for label in "abc" for k in range(20)]
    arrays = table.arrays
    for i in positions:
        for name in ("WM", "WD", "VM", "VD"):
            roll = rng.random()
            value = (
                NAN
                if roll < 0.3
                else 0.0
                if roll < 0.4
                else -0.0
                if roll < 0.45
                else rng.gauss(0, 1)
            )
            arrays.table(name)[i] = value
    singles: dict[int, tuple[float, float]] = {}
    for i in positions:  # what set_weight / set_variance leave, value by value
        m, d = arrays.WM[i], arrays.WD[i]
        weight = (0.0 if m != m else m) + (0.0 if d != d else d)
        vm, vd = arrays.VM[i], arrays.VD[i]
        if vm != vm and vd != vd:
            variance = 1.0
        else:
            variance = (0.0 if vm != vm else vm or 0.0) + (0.0 if vd != vd else vd or 0.0)
        singles[i] = (weight, variance)
    arrays.refresh(slice(None))
    for i in positions:
        assert (repr(arrays.W[i]), repr(arrays.V[i])) == tuple(map(repr, singles[i]))


def test_arrays_grow_in_rows_and_label_slots_keeping_their_values() -> None:
    table = Table()
    table.add_weight("a", "f", 2.0)
    for k in range(200):  # rows double
        table.add_weight("a", f"g{k}", 1.0)
    for label in "bcdefg":  # slots double: the rows are laid out again
        table.add_weight(label, "f", 0.5)
    assert table.weight("a", "f") == 2.0 and table.weight("g", "f") == 0.5
    assert table.variance("c", "g7") == 1.0
    assert table.diff("WD")["a"]["g199"] == 1.0


# -- configuration -------------------------------------------------------------------------


def test_create_method_knows_jubatus_names() -> None:
    assert isinstance(create_method("perceptron", None), Perceptron)
    assert isinstance(create_method("passive_aggressive", {}), PassiveAggressive)
    assert isinstance(create_method("PA1", {"regularization_weight": 2}), PassiveAggressive1)
    nherd = create_method("normal_herd", {"regularization_weight": 0.5})
    assert isinstance(nherd, NormalHerd) and nherd.c == 0.5
    assert set(METHODS) >= {"PA", "PA2", "CW", "AROW", "NHERD", "arow", "confidence_weighted"}


@pytest.mark.parametrize(
    ("method", "parameter", "message"),
    [
        ("SVM", None, "method: unknown method 'SVM'"),
        ("NN", {}, "method: 'NN' is not supported"),
        (3, None, "method: expected a string"),
        ("AROW", None, "parameter: required for method 'AROW'"),
        ("CW", {}, "parameter.regularization_weight: required"),
        ("PA1", {"regularization_weight": 0}, "must be > 0"),
        ("PA2", {"regularization_weight": -1.0}, "must be > 0"),
        ("NHERD", {"regularization_weight": 1e39}, "fit a 32-bit float"),
        ("CW", {"regularization_weight": "1"}, "expected a number, got str"),
        ("CW", {"regularization_weight": True}, "expected a number, got bool"),
        ("AROW", {"regularization_weight": 1, "x": 2}, "parameter.x: unknown key"),
        ("PA", {"regularization_weight": 1.0}, "parameter.regularization_weight: unknown key"),
        ("PA", [], "parameter: expected an object"),
        ("perceptron", {"unlearner": "lru"}, "parameter.unlearner: label unlearning"),
    ],
)
def test_bad_method_configs(method: object, parameter: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_method(method, parameter)
