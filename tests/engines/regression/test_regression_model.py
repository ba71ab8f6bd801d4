"""RegressionModel beyond the goldens: config errors, bad input, save/load, mix."""

from __future__ import annotations

import math
from typing import Any

import pytest

from engines.regression.model import RegressionModel
from runtime import Datum
from runtime.errors import ConfigError, ModelFileError
from tests.oracle.roundtrip import mix_round, saved, wire

NUM = {"num_rules": [{"key": "*", "type": "num"}]}
AROW = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0, "sensitivity": 0.1},
    "converter": NUM,
}


def _examples(count: int, offset: int = 0) -> list[tuple[float, Datum]]:
    return [
        (2.0 * x - 1.0, Datum({"x": float(x), "y": float((x * 7) % 5)}))
        for x in range(offset, offset + count)
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"method": "PA", "converter": NUM}, r"^parameter: required"),
        ({"method": "PA", "parameter": {}, "converter": NUM}, r"parameter\.sensitivity: required"),
        (
            {"method": "PA1", "parameter": {"sensitivity": 0.1}, "converter": NUM},
            r"parameter\.regularization_weight: required",
        ),
        (
            {"method": "PA", "parameter": {"sensitivity": -1}, "converter": NUM},
            r"parameter\.sensitivity: must be >= 0",
        ),
        (
            {"method": "PA", "parameter": {"sensitivity": 0.1, "foo": 1}, "converter": NUM},
            r"parameter\.foo: unknown key",
        ),
        (
            {"method": "perceptron", "parameter": {"learning_rate": "x"}, "converter": NUM},
            r"parameter\.learning_rate: expected a number",
        ),
        ({"method": "PAX", "parameter": {}, "converter": NUM}, r"method: unknown method 'PAX'"),
        ({"method": "NN", "converter": NUM}, r"parameter: required"),
        (
            {
                "method": "NN",
                "parameter": {"method": "lsh", "parameter": {}, "nearest_neighbor_num": 3},
                "converter": NUM,
            },
            r"parameter\.parameter\.hash_num: required",
        ),
        (
            {"method": "cosine", "parameter": {"weight": "far"}, "converter": NUM},
            r"parameter\.weight: must be 'distance' or 'uniform'",
        ),
        ({"method": "PA", "parameter": {"sensitivity": 0.1}}, r"^converter: required"),
        (
            {
                "method": "PA",
                "parameter": {"sensitivity": 0.1},
                "converter": {"num_rules": [{"key": "*", "type": "nums"}]},
            },
            r"converter\.num_rules\[0\]\.type: unknown type 'nums'",
        ),
        (
            {"method": "PA", "parameter": {"sensitivity": 0.1}, "converter": NUM, "extra": 1},
            r"^extra: unknown key",
        ),
    ],
)
def test_config_errors_name_their_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RegressionModel(config)


def test_an_untrained_model_estimates_zero_and_a_datum_without_features_too() -> None:
    for config in (AROW, {"method": "cosine", "parameter": {}, "converter": NUM}):
        model = RegressionModel(config)
        assert model.estimate([Datum({"x": 1.0}), Datum()]) == [0.0, 0.0]
        assert model.train([(3.0, Datum())]) == 1  # converts to nothing: nothing to learn from
        assert model.estimate([Datum({"unknown": "text"})]) == [0.0]


def test_a_bad_datum_is_refused_before_anything_is_learned() -> None:
    model = RegressionModel(AROW)
    with pytest.raises(ValueError, match=r"train\[1\]: .*cannot contain '\$'"):
        model.train([(1.0, Datum({"x": 1.0})), (2.0, Datum({"a$b": 1.0}))])
    assert model.get_status()["num_features"] == "0"
    with pytest.raises(ValueError, match=r"estimate\[0\]"):
        model.estimate([Datum({"a$b": 1.0})])


@pytest.mark.parametrize(
    "config",
    [
        AROW,
        {"method": "PA", "parameter": {"sensitivity": 0.1}, "converter": NUM},
        {
            "method": "NN",
            "parameter": {
                "method": "euclid_lsh",
                "parameter": {"hash_num": 32},
                "nearest_neighbor_num": 3,
            },
            "converter": NUM,
        },
        {"method": "euclidean", "parameter": {"nearest_neighbor_num": 2}, "converter": NUM},
    ],
    ids=["AROW", "PA", "NN", "euclidean"],
)
def test_save_and_load_give_the_same_estimates(config: dict[str, Any]) -> None:
    model = RegressionModel(config)
    model.train(_examples(30))
    queries = [datum for _, datum in _examples(10, 40)]
    before = model.estimate(queries)
    other = RegressionModel(config)
    other.unpack(saved(model.pack()))
    assert other.estimate(queries) == before
    with pytest.raises(ModelFileError, match="regression model does not fit"):
        other.unpack({"version": 0})
    assert other.estimate(queries) == before


def test_mixed_linear_models_hold_the_mean_of_what_each_learned() -> None:
    a, b = RegressionModel(AROW), RegressionModel(AROW)
    a.train(_examples(20))
    b.train(_examples(20, 100))
    query = [Datum({"x": 3.0, "y": 1.0})]
    single_a, single_b = a.estimate(query)[0], b.estimate(query)[0]
    mix_round([a, b])
    assert a.version == b.version == 1
    assert a.estimate(query) == b.estimate(query)
    # weights are the mean of both diffs (each server counting once, as Jubatus)
    assert math.isclose(a.estimate(query)[0], (single_a + single_b) / 2, rel_tol=1e-9)
    assert a.get_status()["num_features_diff"] == "0"
    # a diff based on another version is refused
    assert a.put_diff(wire({"version": 0, "weights": {}, "linear": {}, "count": 1})) is False


def test_mixed_neighbour_models_share_every_example() -> None:
    config = {"method": "euclidean", "parameter": {"nearest_neighbor_num": 1}, "converter": NUM}
    models = [RegressionModel(config) for _ in range(3)]
    for i, model in enumerate(models):
        model.train(_examples(5, 10 * i))
    mix_round(models)
    query = [Datum({"x": 21.0, "y": 2.0})]  # the third model's example 21
    assert [m.estimate(query) for m in models] == [[41.0]] * 3
    assert {m.get_status()["num_rows"] for m in models} == {"15"}


def test_learning_during_a_round_is_kept_for_the_next() -> None:
    a, b = RegressionModel(AROW), RegressionModel(AROW)
    a.train(_examples(5))
    diffs = [wire(a.get_diff()), wire(b.get_diff())]
    a.train(_examples(5, 50))  # arrives while the round runs
    folded = wire(a.mix(diffs[0], diffs[1]))
    assert a.put_diff(folded) and b.put_diff(folded)
    assert a.get_status()["num_features_diff"] == "2"
    mix_round([a, b])
    assert a.estimate([Datum({"x": 52.0})]) == b.estimate([Datum({"x": 52.0})])
