"""AnomalyModel: config errors, ids, refusals of light_lof, save/load, mix."""

from __future__ import annotations

import math
from typing import Any

import pytest

from engines.anomaly.model import AnomalyModel
from engines.common.lof import _Lof
from runtime import Datum
from runtime.errors import ConfigError, ModelFileError
from tests.oracle.roundtrip import mix_round, saved

NUM = {"num_rules": [{"key": "*", "type": "num"}]}
LOF = {
    "method": "lof",
    "parameter": {
        "nearest_neighbor_num": 3,
        "reverse_nearest_neighbor_num": 6,
        "method": "inverted_index_euclid",
        "parameter": {},
    },
    "converter": NUM,
}
LIGHT_LOF = {
    "method": "light_lof",
    "parameter": {
        "nearest_neighbor_num": 3,
        "reverse_nearest_neighbor_num": 6,
        "method": "euclid_lsh",
        "parameter": {"hash_num": 64},
    },
    "converter": NUM,
}


def _point(i: int) -> Datum:
    return Datum({"x": float(i % 6) + 1.0, "y": float(i % 4) + 1.0})


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        (
            {"nearest_neighbor_num": 1, "method": "lsh", "parameter": {"hash_num": 8}},
            r"nearest_neighbor_num: must be >= 2",
        ),
        (
            {
                "nearest_neighbor_num": 10,
                "reverse_nearest_neighbor_num": 5,
                "method": "lsh",
                "parameter": {"hash_num": 8},
            },
            r"reverse_nearest_neighbor_num: must be >= nearest_neighbor_num",
        ),
        ({"parameter": {}}, r"parameter\.method: required"),
        (
            {"method": "lsh", "parameter": {"hash_num": 8}, "unlearner": "lru"},
            r"parameter\.unlearner_parameter: required",
        ),
        ({"method": "inverted_index", "parameter": {}, "k": 3}, r"parameter\.k: unknown key"),
    ],
)
def test_config_errors_name_their_key(parameter: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AnomalyModel({"method": "lof", "parameter": parameter, "converter": NUM})


def test_ids_count_from_zero_and_continue_after_a_load() -> None:
    model = AnomalyModel(LOF)
    assert [model.add(_point(i))[0] for i in range(3)] == ["0", "1", "2"]
    assert model.add_bulk([_point(3), _point(4)]) == ["3", "4"]
    copy = AnomalyModel(LOF)
    copy.unpack(saved(model.pack()))
    assert copy.add(_point(5))[0] == "5"
    assert copy.get_status()["max_id"] == "5"
    model.overwrite("40", _point(1))  # an id given from outside (the proxy's)
    assert model.add(_point(2))[0] == "41"


def test_scores_of_an_empty_model_and_of_an_empty_datum() -> None:
    model = AnomalyModel(LOF)
    assert model.calc_score(_point(1)) == math.inf
    key, score = model.add(Datum())
    assert key == "0" and score == math.inf
    assert model.clear_row("0") is True and model.get_all_rows() == []


def test_light_lof_refuses_update_and_clear_row_as_jubatus() -> None:
    model = AnomalyModel(LIGHT_LOF)
    model.add(_point(1))
    with pytest.raises(ValueError, match="light_lof cannot update"):
        model.update("0", _point(2))
    with pytest.raises(ValueError, match="light_lof cannot clear"):
        model.clear_row("0")


@pytest.mark.parametrize("config", [LOF, LIGHT_LOF], ids=["lof", "light_lof"])
def test_outliers_score_high_and_survive_save_load_and_mix(config: dict[str, Any]) -> None:
    models = [AnomalyModel(config) for _ in range(2)]
    for i in range(24):
        models[i % 2].overwrite(str(i), _point(i))
    mix_round(models)
    assert sorted(models[0].get_all_rows(), key=int) == [str(i) for i in range(24)]
    far = Datum({"x": 40.0, "y": -30.0})
    scores = [m.calc_score(far) for m in models]
    assert scores[0] == scores[1] and scores[0] > 2.0
    assert models[0].calc_score(_point(3)) < scores[0]
    copy = AnomalyModel(config)
    copy.unpack(saved(models[0].pack()))
    assert copy.calc_score(far) == scores[0]
    with pytest.raises(ModelFileError):
        copy.unpack({"version": 0})


def test_light_lof_looks_neighbours_up_at_once_with_the_same_answer() -> None:
    """light_lof's one-step lookup of its neighbours' k-distances and lrds gives the
    base class's row-by-row answer to the bit, and the same error for a missing row."""
    model = AnomalyModel(LIGHT_LOF)
    for i in range(40):
        model.add(_point(i))
    lof = model.lof
    for i in range(12):
        features = model._features(Datum({"x": i / 3.0, "y": 2.5 - i / 7.0}), update=False)
        neighbours = lof.neighbours(features, lof.k)
        assert neighbours
        mine, theirs = lof._lrd_of(neighbours), _Lof._lrd_of(lof, neighbours)
        assert math.copysign(1.0, mine[0]) == math.copysign(1.0, theirs[0])
        assert mine == theirs
    ghost = [*neighbours[:1], ("no such row", 0.5)]
    for lookup in (lof._lrd_of, lambda found: _Lof._lrd_of(lof, found)):
        with pytest.raises(ValueError, match='row "no such row" not found in light_lof table'):
            lookup(ghost)
