"""WeightModel: config errors naming their keys, counts that mix by adding up, save/load."""

from __future__ import annotations

import math
from typing import Any

import pytest

from engines.weight.model import WeightModel
from runtime import Datum
from runtime.errors import ConfigError, ModelFileError
from tests.oracle.roundtrip import mix_round, saved

IDF = {
    "converter": {
        "string_rules": [
            {"key": "*", "type": "space", "sample_weight": "tf", "global_weight": "idf"}
        ],
        "num_rules": [{"key": "*", "type": "num"}],
    }
}


@pytest.mark.parametrize(
    ("converter", "message"),
    [
        (
            {"string_rules": [{"key": "*", "type": "space", "sample_weight": "tf"}]},
            r"string_rules\[0\]\.global_weight: required",
        ),
        (
            {"string_types": {"x": {"method": "mecab"}}},
            r"string_types\.x\.method: unknown method 'mecab'",
        ),
        (
            {"string_types": {"x": {"method": "dynamic", "path": "a.so"}}},
            r"string_types\.x\.method: plugins",
        ),
        (
            {"num_filter_types": {"f": {"method": "linear_normalization", "min": "1", "max": "0"}}},
            r"num_filter_types\.f\.max: must be bigger",
        ),
        (
            {"num_filter_rules": [{"key": "*", "type": "nope", "suffix": "_"}]},
            r"num_filter_rules\[0\]\.type: unknown type 'nope'",
        ),
        (
            {"string_filter_types": {"r": {"method": "regexp", "pattern": "(", "replace": ""}}},
            r"string_filter_types\.r\.pattern: bad regular expression",
        ),
        (
            {"string_filter_types": {"r": {"method": "regexp", "pattern": "a", "replace": "\\3"}}},
            r"string_filter_types\.r\.replace: no capture group 3",
        ),
        (
            {"combination_rules": [{"key_left": "*", "key_right": "*", "type": "pow"}]},
            r"combination_rules\[0\]\.type: unknown type 'pow'",
        ),
        (
            {"binary_types": {"b": {"method": "dynamic"}}},
            r"binary_types\.b: binary features need plugins",
        ),
        ({"hash_max_size": 0}, r"hash_max_size: must be positive"),
        ({"num_rulez": []}, r"converter\.num_rulez: unknown key; did you mean 'num_rules'\?"),
    ],
)
def test_config_errors_name_their_key(converter: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WeightModel({"converter": converter})


def test_method_and_parameter_are_accepted_and_ignored_as_in_jubatus() -> None:
    model = WeightModel({"method": "anything", "parameter": {"x": 1}, **IDF})
    assert model.calc_weight(Datum({"n": 2.0})) == [("n@num", 2.0)]


def test_update_counts_documents_and_calc_weight_does_not() -> None:
    model = WeightModel(IDF)
    assert model.update(Datum({"t": "a b"})) == []  # in the only document: idf 0, dropped
    assert model.calc_weight(Datum({"t": "a c"})) == [("t$c@space#tf/idf", 0.6931471805599453)]
    assert model.get_status()["diff_document_count"] == "1"
    assert model.clear() is True
    assert model.get_status()["diff_document_count"] == "0"


def test_counts_mix_by_adding_up_and_survive_save_and_load() -> None:
    models = [WeightModel(IDF) for _ in range(3)]
    for i, model in enumerate(models):
        model.update(Datum({"t": f"common w{i}"}))
    mix_round(models)
    weights = [m.calc_weight(Datum({"t": "common w0"})) for m in models]
    assert weights[0] == weights[1] == weights[2]
    # "common" is in every document (idf 0, dropped); "w0" in one of three
    assert weights[0] == [("t$w0@space#tf/idf", math.log(4 / 2))]
    assert models[0].get_status()["master_document_count"] == "3"
    copy = WeightModel(IDF)
    copy.unpack(saved(models[1].pack()))
    assert copy.calc_weight(Datum({"t": "common w0"})) == weights[0]
    with pytest.raises(ModelFileError):
        copy.unpack({"version": "x"})


def test_a_datum_with_a_dollar_key_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot contain"):
        WeightModel(IDF).update(Datum({"a$": "x"}))
