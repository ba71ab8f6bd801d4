"""RecommenderModel: config errors, unknown ids, rates, unlearners, save/load, mix."""

from __future__ import annotations

from typing import Any

import pytest

from engines.recommender.model import RecommenderModel
from runtime import Datum
from runtime.errors import ConfigError, ModelFileError
from tests.oracle.roundtrip import mix_round, saved

CONVERTER = {
    "string_rules": [{"key": "*", "type": "str", "sample_weight": "bin", "global_weight": "bin"}],
    "num_rules": [{"key": "*", "type": "num"}],
}
PARAMETERS: dict[str, Any] = {
    "inverted_index": {},
    "inverted_index_euclid": {},
    "lsh": {"hash_num": 64},
    "minhash": {"hash_num": 64},
    "euclid_lsh": {"hash_num": 16, "table_num": 4, "bin_width": 4.0},
    "nearest_neighbor_recommender": {"method": "lsh", "parameter": {"hash_num": 64}},
}


def _model(method: str, **extra: Any) -> RecommenderModel:
    parameter = {**PARAMETERS[method], **extra}
    return RecommenderModel({"method": method, "parameter": parameter, "converter": CONVERTER})


def _row(i: int) -> Datum:
    return Datum({"a": float(i % 5), "b": float(i % 3), "tag": f"t{i % 4}"})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"method": "lsh", "parameter": {}, "converter": CONVERTER},
            r"parameter\.hash_num: required",
        ),
        (
            {"method": "inverted_index", "parameter": {"unlearner": "lru"}, "converter": CONVERTER},
            r"parameter\.unlearner_parameter: required",
        ),
        (
            {
                "method": "inverted_index",
                "parameter": {"unlearner_parameter": {}},
                "converter": CONVERTER,
            },
            r"parameter\.unlearner_parameter: is set but unlearner is not",
        ),
        (
            {
                "method": "inverted_index",
                "parameter": {"unlearner": "fifo", "unlearner_parameter": {}},
                "converter": CONVERTER,
            },
            r"parameter\.unlearner: unknown unlearner 'fifo'",
        ),
        (
            {
                "method": "inverted_index",
                "parameter": {"unlearner": "lru", "unlearner_parameter": {"max_size": 0}},
                "converter": CONVERTER,
            },
            r"unlearner_parameter\.max_size: must be a positive integer",
        ),
        (
            {"method": "euclid_lsh", "parameter": {"bin_width": 0}, "converter": CONVERTER},
            r"parameter\.bin_width: must be > 0",
        ),
        (
            {
                "method": "inverted_index_euclid",
                "parameter": {"ignore_orthogonal": 1},
                "converter": CONVERTER,
            },
            r"ignore_orthogonal: expected true or false",
        ),
        (
            {
                "method": "nearest_neighbor_recommender",
                "parameter": {"method": "lsh", "parameter": {}},
                "converter": CONVERTER,
            },
            r"parameter\.parameter\.hash_num: required",
        ),
        (
            {"method": "svd", "parameter": {}, "converter": CONVERTER},
            r"method: unknown method 'svd'",
        ),
    ],
)
def test_config_errors_name_their_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RecommenderModel(config)


@pytest.mark.parametrize("method", sorted(PARAMETERS))
def test_empty_model_unknown_ids_and_bad_rates(method: str) -> None:
    model = _model(method)
    assert model.similar_row_from_id("none", 5) == []
    assert model.similar_row_from_datum(_row(1), 5) == []
    assert model.complete_row_from_id("none") == ([], [])
    assert model.decode_row("none") == ([], [])
    for i in range(20):
        assert model.update_row(f"r{i}", _row(i)) is True
    if method not in ("inverted_index_euclid", "nearest_neighbor_recommender"):
        # (those two rank every row against the empty row of an unknown id, as Jubatus)
        assert model.similar_row_from_id("none", 5) == []
    assert model.decode_row("r7") == ([("tag", "t3")], [("a", 2.0), ("b", 1.0)])
    found = model.similar_row_from_id("r7", 2**32 - 1)
    # every row, or (inverted_index) those sharing a feature, or (euclid_lsh) those in r7's
    # buckets: in each case r7 among the best
    assert 1 <= len(found) <= 20 and ("r7", found[0][1]) in found
    # ceil(20 x 0.25) = 5 rows (euclid_lsh: at most 5, from the buckets it probes)
    rated = model.similar_row_from_datum_and_rate(_row(7), 0.25)
    assert len(rated) == 5 or (method == "euclid_lsh" and 1 <= len(rated) <= 5)
    for rate in (0.0, 1.5):
        with pytest.raises(ValueError, match="0 < rate <= 1"):
            model.similar_row_from_id_and_rate("r7", rate)
    assert model.clear_row("r7") is True and "r7" not in model.get_all_rows()
    assert model.clear() is True and model.get_all_rows() == []


def test_update_row_merges_features_and_complete_row_averages_neighbours() -> None:
    model = _model("inverted_index")
    model.update_row("a", Datum({"x": 1.0}))
    model.update_row("a", Datum({"y": 2.0}))
    model.update_row("b", Datum({"x": 1.0, "y": 4.0}))
    assert model.decode_row("a") == ([], [("x", 1.0), ("y", 2.0)])
    assert model.complete_row_from_datum(Datum({"x": 1.0})) == ([], [("x", 1.0), ("y", 3.0)])


def test_an_lru_unlearner_keeps_the_most_recent_rows() -> None:
    model = _model("inverted_index", unlearner="lru", unlearner_parameter={"max_size": 3})
    for i in range(5):
        model.update_row(f"r{i}", _row(i))
    model.update_row("r2", _row(9))  # touched again: the oldest is now r3
    model.update_row("r5", _row(5))
    assert sorted(model.get_all_rows()) == ["r2", "r4", "r5"]
    assert model.get_status()["num_unlearner_unlearned_ids"] == "3"


@pytest.mark.parametrize("method", sorted(PARAMETERS))
def test_save_load_and_mix(method: str) -> None:
    models = [_model(method) for _ in range(3)]
    for i in range(30):
        models[i % 3].update_row(f"r{i}", _row(i))
    models[0].clear_row("r0")
    mix_round(models)
    rows = [sorted(m.get_all_rows()) for m in models]
    assert rows[0] == rows[1] == rows[2] == sorted(f"r{i}" for i in range(1, 30))
    # similar_row_from_datum agrees on every server: the index is mixed (equal scores may
    # come in another order: a row's number is given in the order rows reach a server)
    answers = {tuple(sorted(s for _, s in m.similar_row_from_datum(_row(4), 4))) for m in models}
    assert len(answers) == 1
    copy = _model(method)
    copy.unpack(saved(models[1].pack()))
    assert sorted(copy.get_all_rows()) == rows[1]
    assert copy.decode_row("r1") == models[1].decode_row("r1")
    with pytest.raises(ModelFileError):
        copy.unpack({"version": 0, "index": {}, "weights": {}})
