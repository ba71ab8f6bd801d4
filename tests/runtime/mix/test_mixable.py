"""The Mixable contract: the readers, the fold, and both engines' models keeping it."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
import pytest

from engines.classifier.model import ClassifierModel, describe_diff
from engines.stat.model import StatModel
from runtime.mix.mixable import (
    DiffError,
    Mixable,
    fold_diffs,
    read_fields,
    read_float,
    read_int,
    read_list,
    read_map,
    read_text,
)

# -- readers -------------------------------------------------------------------------------


def test_read_text() -> None:
    assert read_text("é", "p") == "é"
    assert read_text("é".encode(), "p") == "é"
    with pytest.raises(DiffError, match="p: not valid UTF-8"):
        read_text(b"\xff", "p")
    with pytest.raises(DiffError, match="p: expected a string, got int"):
        read_text(1, "p")


def test_read_numbers() -> None:
    assert read_int(3, "n") == 3
    assert read_float(3, "x") == 3.0 and isinstance(read_float(3, "x"), float)
    for bad in (True, 1.0, "1"):
        with pytest.raises(DiffError, match="n: expected an integer"):
            read_int(bad, "n")
    with pytest.raises(DiffError, match="n: must be >= 0, got -1"):
        read_int(-1, "n")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(DiffError, match="x: must be finite"):
            read_float(bad, "x")
    with pytest.raises(DiffError, match="x: expected a number, got bool"):
        read_float(False, "x")


def test_read_maps_fields_and_lists() -> None:
    assert read_map({b"a": 1, "b": 2}, "m") == {"a": 1, "b": 2}
    with pytest.raises(DiffError, match="m: key 'a' appears twice"):
        read_map({b"a": 1, "a": 2}, "m")
    with pytest.raises(DiffError, match="m: expected a map, got list"):
        read_map([], "m")
    assert read_fields({"x": 1, "y": 2}, "f", ["x", "y"]) == {"x": 1, "y": 2}
    with pytest.raises(DiffError, match="f: missing field 'y'"):
        read_fields({"x": 1}, "f", ["x", "y"])
    with pytest.raises(DiffError, match="f: unknown field 'z'"):
        read_fields({"x": 1, "z": 2}, "f", ["x"])
    assert read_list((1, 2), "l") == [1, 2]
    with pytest.raises(DiffError, match="l: expected a list"):
        read_list({}, "l")


# -- fold ----------------------------------------------------------------------------------


class Concatenation:
    """A toy mixable whose diffs are lists: mix concatenates (associative, not commutative)."""

    version = 0

    def get_diff(self) -> object:
        return []

    def mix(self, lhs: object, rhs: object) -> object:
        assert isinstance(lhs, list) and isinstance(rhs, list)
        return lhs + rhs

    def put_diff(self, mixed: object) -> bool:
        return True

    def get_model(self) -> object:
        return {}

    def set_model(self, model: object) -> None:
        pass


def test_fold_diffs_goes_left_to_right() -> None:
    toy = Concatenation()
    assert isinstance(toy, Mixable)
    assert fold_diffs(toy, [[1], [2], [3]]) == [1, 2, 3]
    assert fold_diffs(toy, iter([[7]])) == [7]
    with pytest.raises(DiffError, match="no diffs"):
        fold_diffs(toy, [])


# -- both engines keep the contract --------------------------------------------------------


@dataclass
class Datum:
    string_values: list[tuple[str, str]] = field(default_factory=list)
    num_values: list[tuple[str, float]] = field(default_factory=list)
    binary_values: list[tuple[str, bytes]] = field(default_factory=list)


def trained_classifier(seed: int) -> Mixable:
    model = ClassifierModel(
        {
            "method": "AROW",
            "parameter": {"regularization_weight": 1.0},
            "converter": {
                "string_rules": [
                    {"key": "*", "type": "space", "sample_weight": "bin", "global_weight": "idf"}
                ],
                "num_rules": [{"key": "*", "type": "num"}],
            },
        }
    )
    rng = random.Random(seed)
    data = []
    for _ in range(30):
        label = rng.choice("abc")
        words = " ".join(rng.choice(["red", "green", "blue", label]) for _ in range(3))
        values = [("x", rng.gauss(ord(label) - 98, 1.0))]
        data.append((label, Datum(string_values=[("text", words)], num_values=values)))
    model.train(data)
    return model


def pushed_stat(seed: int) -> Mixable:
    model = StatModel({"window_size": 50})
    rng = random.Random(seed)
    for _ in range(40):
        model.push(rng.choice("pqrs"), rng.random())
    return model


FACTORIES: list[Callable[[int], Mixable]] = [trained_classifier, pushed_stat]


def roundtrip(value: object) -> object:
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False)


def close(a: object, b: object) -> bool:
    """Equal structures, floats equal up to rounding."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and a == pytest.approx(b, rel=1e-12, abs=1e-12)
    return a == b


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_values_survive_msgpack(factory: Callable[[int], Mixable]) -> None:
    model = factory(1)
    assert isinstance(model, Mixable)
    for value in (model.get_diff(), model.get_model()):
        assert roundtrip(value) == value


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_mix_is_associative_and_leaves_its_arguments(factory: Callable[[int], Mixable]) -> None:
    models = [factory(seed) for seed in (1, 2, 3)]
    a, b, c = (roundtrip(m.get_diff()) for m in models)
    kept = copy.deepcopy((a, b, c))
    mixer = models[0]
    left = mixer.mix(mixer.mix(a, b), c)
    right = mixer.mix(a, mixer.mix(b, c))
    # (the classifier's diffs carry arrays of numbers: compared value by value)
    readable = describe_diff if factory is trained_classifier else (lambda diff: diff)
    assert close(readable(left), readable(right))
    assert (a, b, c) == kept


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_put_diff_advances_the_version_and_refuses_malformed_values(
    factory: Callable[[int], Mixable],
) -> None:
    models = [factory(seed) for seed in (4, 5)]
    mixed = fold_diffs(models[0], [roundtrip(m.get_diff()) for m in models])
    assert [m.put_diff(roundtrip(mixed)) for m in models] == [True, True]
    assert [m.version for m in models] == [1, 1]
    with pytest.raises(DiffError):
        models[0].put_diff({"version": 1})
    assert models[0].version == 1


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_get_model_and_set_model_carry_the_version(factory: Callable[[int], Mixable]) -> None:
    source, joiner = factory(6), factory(7)
    source.put_diff(source.get_diff())
    joiner.set_model(roundtrip(source.get_model()))
    assert joiner.version == source.version == 1
    assert joiner.get_model() == source.get_model()
