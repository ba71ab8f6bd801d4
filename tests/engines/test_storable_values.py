"""What goes into a model can come out of its file: update calls refuse numbers a model file
or a mix could not carry, and the infinities the engines make themselves (LOF's lrd of a
row whose neighbours all sit on it) save and load."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from engines.anomaly.anomaly_serv import AnomalyServ
from engines.classifier.classifier_serv import ClassifierServ
from engines.nearest_neighbor.nearest_neighbor_serv import NearestNeighborServ
from engines.recommender.recommender_serv import RecommenderServ
from engines.regression.regression_serv import RegressionServ
from runtime import Datum, ServerBase
from runtime.server.persistence import decode_model_file, encode_model_file

NUM = {"num_rules": [{"key": "*", "type": "num"}]}


def _lof(method: str, backend: str, parameter: dict[str, Any]) -> dict[str, Any]:
    inner = {"method": backend, "parameter": parameter}
    return {
        "method": method,
        "parameter": {"nearest_neighbor_num": 2, "reverse_nearest_neighbor_num": 4, **inner},
        "converter": NUM,
    }


NN = {"method": "euclid_lsh", "parameter": {"hash_num": 64}, "converter": NUM}
#: Each engine, its config, and one update call of a datum.
UPDATES: dict[str, tuple[type[ServerBase], dict[str, Any], Callable[[Any, Datum, int], object]]] = {
    "nearest_neighbor": (NearestNeighborServ, NN, lambda s, d, i: s.model.set_row(f"r{i}", d)),
    "recommender": (
        RecommenderServ,
        {"method": "inverted_index", "parameter": {}, "converter": NUM},
        lambda s, d, i: s.model.update_row(f"r{i}", d),
    ),
    "recommender_lsh": (
        RecommenderServ,
        {"method": "lsh", "parameter": {"hash_num": 64}, "converter": NUM},
        lambda s, d, i: s.model.update_row(f"r{i}", d),
    ),
    "lof": (
        AnomalyServ,
        _lof("lof", "inverted_index_euclid", {}),
        lambda s, d, i: s.model.add(d),
    ),
    "light_lof": (
        AnomalyServ,
        _lof("light_lof", "euclid_lsh", {"hash_num": 64}),
        lambda s, d, i: s.model.add(d),
    ),
    "regression": (
        RegressionServ,
        {
            "method": "AROW",
            "parameter": {"regularization_weight": 1.0, "sensitivity": 0.1},
            "converter": NUM,
        },
        lambda s, d, i: s.model.train([(1.0, d)]),
    ),
    "classifier_nn": (
        ClassifierServ,
        {
            "method": "NN",
            "parameter": {
                "method": "euclid_lsh",
                "parameter": {"hash_num": 64},
                "nearest_neighbor_num": 2,
                "local_sensitivity": 1.0,
            },
            "converter": NUM,
        },
        lambda s, d, i: s.model.train([("a", d)]),
    ),
}


def _file(serv: ServerBase) -> bytes:
    return encode_model_file(
        service_type="test",
        model_id="m",
        config_json="{}",
        user_data_version=1,
        payload=serv.pack(),
        timestamp=0,
    )


def _reloaded(serv: ServerBase) -> ServerBase:
    """A new server of the same config, loaded from a model file of ``serv``."""
    copy = type(serv)(json.dumps(serv.config))
    copy.unpack(decode_model_file(_file(serv), service_type="test", user_data_version=1).payload)
    return copy


@pytest.mark.parametrize("engine", sorted(UPDATES))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e200])
def test_an_update_refuses_numbers_a_model_file_cannot_hold(engine: str, bad: float) -> None:
    serv_type, config, update = UPDATES[engine]
    serv = serv_type(json.dumps(config))
    for i in range(3):
        update(serv, Datum({"x": float(i), "y": 1.0}), i)
    before = _file(serv)
    with pytest.raises(ValueError, match="too large or not finite"):
        update(serv, Datum({"x": 1.0, "y": bad}), 9)
    assert _file(serv) == before  # nothing changed
    _reloaded(serv)  # and what it holds loads


def test_a_regression_target_must_be_finite() -> None:
    serv = RegressionServ(json.dumps(UPDATES["regression"][1]))
    for target in (math.nan, math.inf, 2**1100):
        with pytest.raises(ValueError, match="the score must be finite"):
            serv.model.train([(1.0, Datum({"x": 1.0})), (target, Datum({"x": 2.0}))])
    assert serv.model.estimate([Datum({"x": 1.0})]) == [0.0]  # the first was not learned


@pytest.mark.parametrize("engine", ["lof", "light_lof"])
def test_lof_infinities_save_and_load(engine: str) -> None:
    """Rows on top of each other give an lrd of +inf, as in Jubatus: it must round-trip."""
    serv_type, config, update = UPDATES[engine]
    serv = serv_type(json.dumps(config))
    for i in range(4):
        update(serv, Datum({"x": 1.0, "y": 1.0}), i)
    copy = _reloaded(serv)
    query = Datum({"x": 2.0, "y": 1.0})
    assert isinstance(serv, AnomalyServ) and isinstance(copy, AnomalyServ)
    mine, theirs = serv.model.calc_score(query), copy.model.calc_score(query)
    assert mine == theirs or (math.isnan(mine) and math.isnan(theirs))
