"""The linear classifier over Jubatus's whole converter (``engines/classifier/full_converter``):
picked only for configs the fast converter refuses; its vectors are the whole converter's
(filters, combinations, hashing, idf and bm25 over the model's counts); the counts mix,
save, load and copy with the model; the server's wire and snapshot paths serve it."""

from __future__ import annotations

import json
import random
from typing import Any

import msgpack
import pytest

from engines.classifier.classifier_serv import ClassifierServ
from engines.classifier.full_converter import FullConverter, pick_converter
from engines.classifier.jubatus_file import linear_from_jubatus, linear_to_jubatus
from engines.classifier.model import ClassifierModel
from engines.common.converter import Converter, weigh
from engines.common.fv_converter import FeatureConverter
from runtime.errors import ConfigError
from runtime.mix.mixable import fold_diffs
from runtime.wire.datum import Datum
from tests.oracle.model_cases import (
    BM25_CONVERTER,
    COMBINATION_CONVERTER,
    FILTER_CONVERTER,
    TEXT_CONVERTER,
    _text_labelled,
)

FULL = {
    "filters": FILTER_CONVERTER,
    "combination": COMBINATION_CONVERTER,
    "bm25": BM25_CONVERTER,
    "bm25_idf_unhashed": {
        "string_rules": [
            {"key": "text", "type": "space", "sample_weight": "tf", "global_weight": "bm25"},
            {"key": "tag", "type": "str", "sample_weight": "bin", "global_weight": "idf"},
        ],
        "num_rules": [{"key": "*", "type": "num"}],
    },
}
DATA = [(label, Datum(row)) for label, row in _text_labelled(41, 100)]


def new_model(converter: dict[str, Any], method: str = "AROW") -> ClassifierModel:
    return ClassifierModel(
        {"method": method, "parameter": {"regularization_weight": 1.0}, "converter": converter}
    )


def roundtrip(value: object) -> object:
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False, strict_map_key=False)


def merged(features: list[tuple[str, float]]) -> dict[str, float]:
    names, values = weigh(([n for n, _ in features], [v for _, v in features], None), len, 0)
    return dict(zip(names, values, strict=True))


def test_the_fast_converter_stays_for_configs_it_takes() -> None:
    assert type(pick_converter(TEXT_CONVERTER)) is Converter
    for converter in FULL.values():
        assert type(pick_converter(converter)) is FullConverter
    # a part only the whole converter has (the regexp string type)
    regexp = {
        "string_types": {"word": {"method": "regexp", "pattern": "[a-z]+"}},
        "string_rules": [
            {"key": "*", "type": "word", "sample_weight": "bin", "global_weight": "bin"}
        ],
    }
    assert type(pick_converter(regexp)) is FullConverter


@pytest.mark.parametrize(
    ("converter", "message"),
    [
        ({"binary_rules": [{"key": "*", "type": "b"}]}, r"binary_rules\[0\].type"),
        ({"num_filter_rules": [{"key": "*", "type": "nope", "suffix": "x"}]}, "unknown type"),
        ({"hash_max_size": 0}, "hash_max_size: must be positive"),
    ],
)
def test_a_config_neither_takes_names_its_key(converter: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        new_model(converter)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(FULL))
def test_vectors_are_the_whole_converters(name: str) -> None:
    """Trained one by one, the model weighs a datum as a FeatureConverter that counted the
    same documents does, to the bit."""
    model = new_model(FULL[name])
    reference = FeatureConverter.from_config(FULL[name])
    for label, datum in DATA[:60]:
        model.train([(label, datum)])
        reference.convert_and_update(datum)
    replica = model._current()
    assert isinstance(model.converter, FullConverter)
    for _, datum in DATA[60:]:
        names, values = replica.vector(model.converter.extract(datum))
        assert dict(zip(names, values, strict=True)) == merged(reference.convert(datum))


@pytest.mark.parametrize("name", ["filters", "bm25"])
def test_mixed_counts_are_those_of_one_converter_that_saw_everything(name: str) -> None:
    models = [new_model(FULL[name]) for _ in range(2)]
    reference = FeatureConverter.from_config(FULL[name])
    for i, (label, datum) in enumerate(DATA[:60]):
        models[i % 2].train([(label, datum)])
        reference.convert_and_update(datum)
    diffs = [roundtrip(m.get_diff()) for m in models]
    mixed = roundtrip(fold_diffs(models[0], diffs))
    assert [m.put_diff(roundtrip(mixed)) for m in models] == [True, True]
    probe = [datum for _, datum in DATA[60:]]
    assert models[0].classify(probe) == models[1].classify(probe)
    for model in models:
        replica = model._current()
        assert replica.groups_diff == {} and replica.documents_diff == 0
        assert isinstance(model.converter, FullConverter)
        for datum in probe:
            names, values = replica.vector(model.converter.extract(datum))
            got = dict(zip(names, values, strict=True))
            expected = merged(reference.convert(datum))
            assert got.keys() == expected.keys()
            assert all(
                abs(got[k] - expected[k]) <= 1e-12 * max(1.0, abs(v)) for k, v in expected.items()
            )


def test_learning_during_a_round_keeps_its_group_counts() -> None:
    model = new_model(BM25_CONVERTER)
    model.train(DATA[:10])
    diff = model.get_diff()
    model.train(DATA[10:12])  # learned while the round runs
    before = dict(model._current().groups_diff)
    assert model.put_diff(fold_diffs(model, [diff]))
    replica = model._current()
    assert replica.documents_diff == 2
    fresh = new_model(BM25_CONVERTER)
    fresh.train(DATA[10:12])
    assert replica.groups_diff.keys() == fresh._current().groups_diff.keys()
    for group, (frequency, length) in fresh._current().groups_diff.items():
        assert replica.groups_diff[group][0] == frequency
        assert abs(replica.groups_diff[group][1] - length) < 1e-9
    assert before != replica.groups_diff


@pytest.mark.parametrize("name", list(FULL))
def test_save_load_and_get_model_keep_every_count(name: str) -> None:
    model = new_model(FULL[name])
    model.train(DATA[:40])
    model.put_diff(fold_diffs(model, [model.get_diff()]))
    model.train(DATA[40:60])  # an unmixed part too
    probe = [datum for _, datum in DATA[60:]]
    expected = model.classify(probe)
    trained_on = new_model(FULL[name])
    trained_on.unpack(roundtrip(model.pack()))
    trained_on.train(DATA[60:70])
    for payload in (
        model.pack(),
        linear_from_jubatus(roundtrip(linear_to_jubatus(model.pack(), True)), True),
    ):
        other = new_model(FULL[name])
        other.unpack(roundtrip(payload))
        assert other.classify(probe) == expected
        mine, theirs = model._current(), other._current()
        assert (theirs.groups_master, theirs.groups_diff) == (mine.groups_master, mine.groups_diff)
        other.train(DATA[60:70])
        assert other.classify(probe) == trained_on.classify(probe)
    joiner = new_model(FULL[name])
    joiner.set_model(roundtrip(model.get_model()))
    assert joiner._current().groups_master == model._current().groups_master
    assert joiner._current().groups_diff == {}


def _wire(datum: Datum) -> list[object]:
    return [
        [[k.encode(), v.encode()] for k, v in datum.string_values],
        [[k.encode(), v] for k, v in datum.num_values],
        [],
    ]


@pytest.mark.parametrize("name", list(FULL))
def test_the_server_serves_it_on_the_wire_and_from_snapshots(name: str) -> None:
    config = {"method": "PA1", "parameter": {"regularization_weight": 1.0}, "converter": FULL[name]}
    serv = ClassifierServ(json.dumps(config))
    holder = serv.snapshot_model()
    assert holder is not None
    reference = new_model(FULL[name], "PA1")
    rng = random.Random(3)
    batches = [DATA[i : i + rng.randint(1, 9)] for i in range(0, 60, 9)]
    for batch in batches:  # (before the writer starts, writes run here and publish)
        wire = [[label.encode(), _wire(datum)] for label, datum in batch]
        assert serv.train_wire(wire) == len(batch)
        reference.train(batch)
    probe = [datum for _, datum in DATA[60:]]
    answered = serv.classify_wire([_wire(datum) for datum in probe])
    assert isinstance(answered, list)
    assert [[tuple(pair) for pair in row] for row in answered] == reference.classify(probe)
