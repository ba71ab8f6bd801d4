"""NearestNeighborModel: config errors, unknown ids, huge sizes, save/load, mix."""

from __future__ import annotations

from typing import Any

import pytest

from engines.nearest_neighbor.model import NearestNeighborModel
from runtime import Datum
from runtime.errors import ConfigError, ModelFileError
from tests.oracle.roundtrip import mix_round, saved

NUM = {"num_rules": [{"key": "*", "type": "num"}]}


def _config(method: str = "euclid_lsh", **parameter: Any) -> dict[str, Any]:
    return {"method": method, "parameter": {"hash_num": 64, **parameter}, "converter": NUM}


def _point(i: int) -> Datum:
    return Datum({"x": float(i % 7), "y": float(i // 7), "z": 1.0})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"method": "lsh", "converter": NUM}, r"^parameter: required"),
        ({"method": "lsh", "parameter": {}, "converter": NUM}, r"parameter\.hash_num: required"),
        (
            {"method": "lsh", "parameter": {"hash_num": 0}, "converter": NUM},
            r"hash_num: must be >= 1",
        ),
        (
            {"method": "lsh", "parameter": {"hash_num": "64"}, "converter": NUM},
            r"hash_num: expected an integer",
        ),
        (
            {"method": "minhash", "parameter": {"hash_num": 8, "cache_size": 3}, "converter": NUM},
            r"parameter\.cache_size: unknown key",
        ),
        (
            {"method": "knn", "parameter": {"hash_num": 8}, "converter": NUM},
            r"method: unknown method 'knn'",
        ),
        ({"method": "lsh", "parameter": {"hash_num": 8}}, r"^converter: required"),
    ],
)
def test_config_errors_name_their_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NearestNeighborModel(config)


@pytest.mark.parametrize("method", ["lsh", "minhash", "euclid_lsh"])
def test_empty_models_unknown_ids_and_huge_sizes(method: str) -> None:
    model = NearestNeighborModel(_config(method))
    assert model.neighbor_row_from_datum(_point(1), 10) == []
    assert model.neighbor_row_from_id("nothing", 10) == []
    for i in range(12):
        assert model.set_row(f"p{i}", _point(i)) is True
    assert model.neighbor_row_from_id("nothing", 10) == []
    found = model.similar_row_from_id("p3", 2**32 - 1)
    assert len(found) == 12
    assert ("p3", found[0][1]) in found  # p3 is among the most similar to itself
    assert model.neighbor_row_from_datum(Datum(), 0) == []
    assert len(model.neighbor_row_from_datum(Datum(), 5)) == 5  # an empty datum hashes too
    assert model.get_all_rows() == [f"p{i}" for i in range(12)]
    assert model.clear() is True and model.get_all_rows() == []


def test_setting_a_row_again_replaces_it_in_place() -> None:
    model = NearestNeighborModel(_config())
    for i in range(5):
        model.set_row(f"p{i}", _point(i))
    model.set_row("p1", _point(30))
    assert model.get_all_rows() == ["p0", "p1", "p2", "p3", "p4"]
    assert model.neighbor_row_from_datum(_point(30), 1)[0] == ("p1", 0.0)


def test_save_and_load_keep_the_rows_and_their_order() -> None:
    model = NearestNeighborModel(_config("lsh"))
    for i in range(20):
        model.set_row(f"p{i}", _point(i))
    other = NearestNeighborModel(_config("lsh"))
    other.unpack(saved(model.pack()))
    assert other.get_all_rows() == model.get_all_rows()
    assert other.neighbor_row_from_id("p4", 6) == model.neighbor_row_from_id("p4", 6)
    with pytest.raises(ModelFileError):
        other.unpack(
            {"version": 1, "table": {"clock": 1, "rows": [["a", 0, "", [1]]]}, "weights": {}}
        )
    assert other.get_all_rows() == model.get_all_rows()


def test_mix_spreads_every_row_to_every_server() -> None:
    models = [NearestNeighborModel(_config()) for _ in range(3)]
    for i in range(15):
        models[i % 3].set_row(f"p{i}", _point(i))
    mix_round(models)
    rows = [sorted(m.get_all_rows()) for m in models]
    assert rows[0] == rows[1] == rows[2] == sorted(f"p{i}" for i in range(15))
    answers = [m.neighbor_row_from_datum(_point(4), 3) for m in models]
    assert answers[0][0] == ("p4", 0.0)
    assert {tuple(a) for a in answers} == {tuple(answers[0])}
    # the same row set on two servers: the newer one wins everywhere
    models[0].set_row("p4", _point(40))
    models[1].set_row("p4", _point(41))
    mix_round(models)
    assert {m.neighbor_row_from_id("p4", 1)[0][0] for m in models} == {"p4"}
    assert len({tuple(m.index.table.row_data(m.index.table.index["p4"])) for m in models}) == 1
