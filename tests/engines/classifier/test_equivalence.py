"""The classifier on arrays answers exactly as the dict-based engine it replaced.

``tests/engines/classifier/reference`` is that engine, verbatim. Every test here drives both
with the same calls and compares the answers bit for bit (``==`` on floats, and their
``repr``): scores and labels of ``classify`` (one datum at a time and in batches, through
the Python loop and the numpy product), ``train`` results, ``get_labels``, the status
counts, saved models, and whole mix rounds of several servers, for every linear method,
on seeded data sets and on the golden data sets of the oracle tests.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from engines.classifier.model import BATCH_FROM, ClassifierModel
from runtime import Datum
from runtime.mix.mixable import fold_diffs
from tests.engines.classifier.reference.model import ClassifierModel as ReferenceModel
from tests.oracle.goldens import datum as golden_datum, golden

METHODS = ["perceptron", "PA", "PA1", "PA2", "CW", "AROW", "NHERD"]
NUM = {"num_rules": [{"key": "*", "type": "num"}]}
MIXED = {
    "string_types": {"bigram": {"method": "ngram", "char_num": "2"}},
    "string_rules": [
        {"key": "text", "type": "space", "sample_weight": "tf", "global_weight": "idf"},
        {"key": "*", "type": "bigram", "sample_weight": "log_tf", "global_weight": "bin"},
        {"key": "tag", "type": "str", "sample_weight": "bin", "global_weight": "idf1"},
    ],
    "num_rules": [
        {"key": "n*", "type": "num"},
        {"key": "n1", "type": "log"},
        {"key": "n2", "type": "str"},
    ],
}
WORDS = ("apple", "banana", "cherry", "durian", "elder", "fig", "grape")


def config(method: str, converter: dict[str, Any] | None = None) -> dict[str, Any]:
    parameter = None if method in ("perceptron", "PA") else {"regularization_weight": 0.7}
    return {"method": method, "parameter": parameter, "converter": converter or MIXED}


def rows(seed: int, count: int) -> list[tuple[str, Datum]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        label = rng.choice(["red", "green", "blue", "black"])
        values: dict[str, Any] = {}
        for key in rng.sample(["n0", "n1", "n2", "n3"], rng.randint(0, 3)):
            values[key] = round(rng.gauss(1.0 if label == "red" else -0.5, 2.0), 3)
        if rng.random() < 0.8:
            values["text"] = " ".join(rng.choices(WORDS, k=rng.randint(1, 4)))
        if rng.random() < 0.5:
            values["tag"] = rng.choice(["x", "y", label])
        out.append((label, Datum(values)))
    return out


def same(a: object, b: object) -> bool:
    """Equal to the bit: floats by their repr (so 0.0 and -0.0, or two NaNs, compare)."""
    return _bits(a) == _bits(b)


def _bits(value: object) -> object:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return [_bits(v) for v in value]
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    return value


def outcome(model: Any, pairs: list[tuple[str, Datum]]) -> object:
    """What ``model.train(pairs)`` answers, or the error it raises (both engines must do
    the same)."""
    try:
        return model.train(pairs)
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def same_status(new: ClassifierModel, old: ReferenceModel) -> bool:
    """The reference's storage keys agree, in a cluster's form and a standalone one's (all
    features, master or diff, counted once)."""
    expected = old.get_status()
    status = new.get_status()
    master = {f for row in old.table.master.weights.values() for f in row}
    diff = {f for row in old.table.diff.weights.values() for f in row}
    alone = new.get_status(standalone=True)
    return (
        {key: status[key] for key in expected} == expected
        and alone["num_features"] == str(len(master | diff))
        and alone["num_classes"] == expected["num_classes"]
    )


def classify_both(new: ClassifierModel, old: ReferenceModel, data: list[Datum]) -> None:
    expected = old.classify(data)
    assert same(new.classify(data), expected)
    for one in data[:3]:  # one at a time: the Python loop
        assert same(new.classify([one]), old.classify([one]))


@pytest.mark.parametrize("method", METHODS)
def test_training_and_scores_are_the_same_to_the_bit(method: str) -> None:
    new, old = ClassifierModel(config(method)), ReferenceModel(config(method))
    data = rows(1, 400)
    for start in range(0, 300, 7):
        batch = data[start : start + 7]
        assert new.train(batch) == old.train(batch)
    assert new.get_labels() == old.get_labels()
    held_out = [d for _, d in data[300:]]
    assert len(held_out) >= BATCH_FROM
    classify_both(new, old, held_out)
    assert same_status(new, old)
    assert same(new.pack(), old.pack())


@pytest.mark.parametrize("method", METHODS)
def test_a_snapshot_answers_as_the_model_did_when_it_was_taken(method: str) -> None:
    new, old = ClassifierModel(config(method)), ReferenceModel(config(method))
    data = rows(2, 240)
    snapshots = []
    for start in range(0, 200, 20):
        new.train(data[start : start + 20])
        old.train(data[start : start + 20])
        snapshots.append((new.snapshot(), old.classify([d for _, d in data[200:]])))
    for snapshot, expected in snapshots[-1:]:
        assert same(snapshot.classify([d for _, d in data[200:]]), expected)
    assert same(new.classify([d for _, d in data[200:]]), snapshots[-1][1])
    assert snapshots[-1][0].get_labels() == old.get_labels()


def test_the_wire_path_gives_the_typed_paths_answers() -> None:
    new = ClassifierModel(config("AROW"))
    data = rows(3, 120)
    wire = msgpack.unpackb(
        msgpack.packb([[label, d.to_msgpack()] for label, d in data], use_bin_type=False),
        raw=True,
    )
    typed = ClassifierModel(config("AROW"))
    assert new.train_wire(wire[:100]) == typed.train(data[:100]) == 100
    queries = wire[100:]
    snapshot = new.snapshot()
    expected = typed.classify([d for _, d in data[100:]])
    got = snapshot.classify_wire([w[1] for w in queries])
    assert isinstance(got, list)
    assert same(got, expected)


NO_IDF = {
    "string_rules": [
        {"key": "*", "type": "space", "sample_weight": "bin", "global_weight": "bin"},
        {"key": "t*", "type": "str", "sample_weight": "tf", "global_weight": "bin"},
    ],
    "num_rules": [
        {"key": "*", "type": "num"},
        {"key": "n1", "type": "log"},
        {"key": "n2", "type": "str"},
    ],
}


def _wire_datum(rng: random.Random) -> list[Any]:
    """A wire datum whose numbers are often 0 (weigh leaves those out)."""
    strings = [[b"text", " ".join(rng.choices(WORDS, k=rng.randint(0, 3))).encode()]]
    keys = rng.sample([b"n0", b"n1", b"n2", b"n3"], rng.randint(0, 4))
    numbers = [[key, rng.choice([0.0, -0.0, 0, 2, rng.uniform(-3.0, 3.0)])] for key in keys]
    return [strings, numbers, []]


def _typed(datum: list[Any]) -> Datum:
    typed = Datum()
    typed.string_values = [(k.decode(), v.decode()) for k, v in datum[0]]
    typed.num_values = [(k.decode(), float(v)) for k, v in datum[1]]
    return typed


@pytest.mark.parametrize("method", ["PA1", "AROW", "NHERD"])
def test_batches_without_idf_score_as_the_reference(method: str) -> None:
    """A batch of wire datums with no idf rule is scored as one numpy product of its
    features laid end to end, 0 values included: the same bits as the reference; and the
    same again through the usual path when a datum has a feature twice (weigh sums its
    values first) or a value that is not finite."""
    new, old = ClassifierModel(config(method, NO_IDF)), ReferenceModel(config(method, NO_IDF))
    rng = random.Random(11)
    for _ in range(150):
        pair = [(rng.choice(["a", "b", "c"]), _typed(_wire_datum(rng)))]
        assert new.train(pair) == old.train(pair)
    new.set_label("d")  # known, without weights
    old.set_label("d")
    snapshot = new.snapshot()
    odd: list[tuple[str, int, list[Any]]] = [  # (what, strings 0 or numbers 1, pairs)
        ("plain", 0, [[b"text", b"fig"]]),
        ("unknown feature", 1, [[b"unknown", 1.5]]),
        ("a number twice", 1, [[b"n0", 0.1], [b"n0", 0.7], [b"n0", -0.1]]),
        ("a word twice", 0, [[b"text", b"apple banana"], [b"text", b"banana"]]),
        ("infinite", 1, [[b"n3", math.inf]]),
        ("not a number", 1, [[b"n0", math.nan]]),
    ]
    for what, part, extra in odd:
        for size in (BATCH_FROM, 40):
            data = [_wire_datum(rng) for _ in range(size)]
            data[size // 2][part].extend(extra)
            got = snapshot.classify_wire(data)
            assert same(got, old.classify([_typed(d) for d in data])), what
    names, values, lengths = new.converter.extract_wire_many(
        [_wire_datum(rng) for _ in range(BATCH_FROM)]
    )
    assert snapshot.frozen().score_flat(names, values, lengths) is not None


@pytest.mark.parametrize("method", METHODS)
def test_mix_rounds_leave_the_same_models(method: str) -> None:
    """Three servers, mixed three times with training in between and while rounds run."""
    news = [ClassifierModel(config(method)) for _ in range(3)]
    olds = [ReferenceModel(config(method)) for _ in range(3)]
    data = rows(4, 600)
    for round_number in range(3):
        for i, (new, old) in enumerate(zip(news, olds, strict=True)):
            share = data[round_number * 200 + i :: 9][:20]
            # (CW's mixed variances can go negative: both then fail alike, mid-batch)
            assert outcome(new, share) == outcome(old, share)
        new_diffs = [m.get_diff() for m in news]
        old_diffs = [m.get_diff() for m in olds]
        # training between get_diff and put_diff survives the round
        assert outcome(news[0], data[590:595]) == outcome(olds[0], data[590:595])
        new_mixed = fold_diffs(news[0], new_diffs)
        old_mixed = fold_diffs(olds[0], old_diffs)
        for new, old in zip(news, olds, strict=True):
            assert new.put_diff(new_mixed) == old.put_diff(old_mixed)
    for new, old in zip(news, olds, strict=True):
        assert new.version == old.version
        assert new.get_labels() == old.get_labels()
        assert same_status(new, old)
        assert same(new.pack(), old.pack())
        queries = [d for _, d in data[:40]]
        classify_both(new, old, queries)


def test_a_joining_server_copies_the_model_as_before() -> None:
    news = [ClassifierModel(config("CW")) for _ in range(2)]
    olds = [ReferenceModel(config("CW")) for _ in range(2)]
    for new, old, seed in zip(news, olds, (5, 6), strict=True):
        new.train(rows(seed, 50))
        old.train(rows(seed, 50))
    new_mixed = fold_diffs(news[0], [m.get_diff() for m in news])
    old_mixed = fold_diffs(olds[0], [m.get_diff() for m in olds])
    for new, old in zip(news, olds, strict=True):
        new.put_diff(new_mixed)
        old.put_diff(old_mixed)
    joiner, reference_joiner = ClassifierModel(config("CW")), ReferenceModel(config("CW"))
    joiner.set_model(news[1].get_model())
    reference_joiner.set_model(olds[1].get_model())
    assert same(joiner.pack(), reference_joiner.pack())
    classify_both(joiner, reference_joiner, [d for _, d in rows(7, 20)])


def test_labels_set_deleted_and_cleared_as_before() -> None:
    new, old = ClassifierModel(config("AROW")), ReferenceModel(config("AROW"))
    data = rows(8, 100)
    for model in (new, old):
        model.train(data[:50])
    calls: list[Callable[[Any], object]] = [
        lambda m: m.set_label("purple"),
        lambda m: m.set_label("red"),
        lambda m: m.delete_label("green"),
        lambda m: m.delete_label("nothing"),
        lambda m: m.train(data[50:80]),
        lambda m: m.delete_label("purple"),
    ]
    for call in calls:
        assert call(new) == call(old)
        assert new.get_labels() == old.get_labels()
        assert same_status(new, old)
        classify_both(new, old, [d for _, d in data[80:]])
    assert same(new.pack(), old.pack())
    assert new.clear() == old.clear()
    assert new.get_labels() == old.get_labels() == {}
    assert new.train(data[:30]) == old.train(data[:30])
    classify_both(new, old, [d for _, d in data[80:]])


def test_a_saved_model_loads_into_either_engine() -> None:
    new, old = ClassifierModel(config("NHERD")), ReferenceModel(config("NHERD"))
    data = rows(9, 80)
    new.train(data)
    old.train(data)
    for saved in (new.pack(), old.pack()):
        # through the old msgpack format of model files: strings come back as bytes
        payload = msgpack.unpackb(msgpack.packb(saved, use_bin_type=False), raw=True)
        loaded, reference_loaded = ClassifierModel(config("NHERD")), ReferenceModel(config("NHERD"))
        loaded.unpack(payload)
        reference_loaded.unpack(payload)
        assert same(loaded.pack(), reference_loaded.pack())
        classify_both(loaded, reference_loaded, [d for _, d in rows(10, 20)])


def test_non_finite_values_classify_as_before() -> None:
    new, old = ClassifierModel(config("PA", NUM)), ReferenceModel(config("PA", NUM))
    for model in (new, old):
        model.train([("a", Datum({"x": 1.0})), ("b", Datum({"y": 1.0}))])
        model.set_label("c")  # known, without weights
    odd = [Datum({"x": math.inf}), Datum({"y": math.nan, "x": 2.0}), Datum({"z": -math.inf})]
    classify_both(new, old, odd * 4)


LINEAR_CASES = [c for c in golden("classifier")["cases"] if c["config"]["method"] in METHODS]


def trained_on_golden(
    spec: dict[str, Any],
) -> tuple[ClassifierModel, ReferenceModel, list[Datum]]:
    """Both engines trained on a golden case's training rows, one at a time (their
    answers checked equal), and 100 of its held-out rows."""
    data = golden("classifier")["datasets"][spec["data"]]
    new, old = ClassifierModel(spec["config"]), ReferenceModel(spec["config"])
    split = data["split"]
    for row, label in zip(data["rows"][:split], data["labels"][:split], strict=True):
        pair = [(label, golden_datum(row))]
        assert new.train(pair) == old.train(pair)
    return new, old, [golden_datum(row) for row in data["rows"][split : split + 100]]


@pytest.mark.parametrize("spec", LINEAR_CASES, ids=lambda c: f"{c['config']['method']}-{c['data']}")
def test_golden_data_sets_as_before(spec: dict[str, Any]) -> None:
    new, old, queries = trained_on_golden(spec)
    assert new.get_labels() == old.get_labels()
    classify_both(new, old, queries)
