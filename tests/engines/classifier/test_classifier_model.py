"""The classifier model: config checks, training, labels, save/load, and mixing three
models trained on shares of one data set."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import msgpack
import pytest

from engines.classifier.model import ClassifierModel, describe_diff
from runtime.errors import ConfigError, ModelFileError
from runtime.mix.mixable import DiffError, Mixable, fold_diffs


@dataclass
class Datum:
    string_values: list[tuple[str, str]] = field(default_factory=list)
    num_values: list[tuple[str, float]] = field(default_factory=list)
    binary_values: list[tuple[str, bytes]] = field(default_factory=list)


CONVERTER = {
    "string_rules": [
        {"key": "tag", "type": "space", "sample_weight": "tf", "global_weight": "idf"}
    ],
    "num_rules": [{"key": "*", "type": "num"}],
}
PARAMETERS: dict[str, dict[str, float] | None] = {
    "perceptron": None,
    "PA": None,
    "PA1": {"regularization_weight": 1.0},
    "PA2": {"regularization_weight": 1.0},
    "CW": {"regularization_weight": 1.0},
    "AROW": {"regularization_weight": 1.0},
    "NHERD": {"regularization_weight": 0.1},
}


def new_model(method: str = "AROW") -> ClassifierModel:
    return ClassifierModel(
        {"method": method, "parameter": PARAMETERS[method], "converter": CONVERTER}
    )


def roundtrip(value: object) -> object:
    """Through msgpack as the mixer sends values between servers."""
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False)


def point(x: float, y: float, tag: str = "") -> Datum:
    return Datum(string_values=[("tag", tag)] if tag else [], num_values=[("x", x), ("y", y)])


CENTERS = {"north": (0.0, 2.0), "south_east": (1.7, -1.0), "south_west": (-1.7, -1.0)}
WORDS = {"north": "cold", "south_east": "sunny", "south_west": "windy"}


def noisy_data(seed: int, n: int) -> list[tuple[str, Datum]]:
    """Three overlapping clouds; a tag word agrees with the label 60% of the time."""
    rng = random.Random(seed)
    data = []
    for _ in range(n):
        label = rng.choice(list(CENTERS))
        cx, cy = CENTERS[label]
        word = WORDS[label] if rng.random() < 0.6 else rng.choice(list(WORDS.values()))
        data.append((label, point(cx + rng.gauss(0, 1.0), cy + rng.gauss(0, 1.0), word)))
    return data


def predictions(model: ClassifierModel, data: list[tuple[str, Datum]]) -> list[str]:
    results = model.classify([d for _, d in data])
    return [max(scores, key=lambda s: s[1])[0] for scores in results]


def accuracy(model: ClassifierModel, data: list[tuple[str, Datum]]) -> float:
    right = sum(p == label for p, (label, _) in zip(predictions(model, data), data, strict=True))
    return right / len(data)


# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "config: expected an object"),
        ({"converter": CONVERTER}, "method: required"),
        ({"method": "PA"}, "converter: required"),
        ({"method": "PA", "converter": CONVERTER, "mixer": 1}, "mixer: unknown key"),
        ({"method": "LR", "converter": CONVERTER}, "method: unknown method 'LR'"),
        ({"method": "AROW", "converter": CONVERTER}, "parameter: required for method 'AROW'"),
        (
            {"method": "CW", "parameter": {"regularization_weight": 0}, "converter": CONVERTER},
            "parameter.regularization_weight: must be > 0",
        ),
        (
            {"method": "PA", "converter": {"string_rules": [{"key": "*", "type": "x"}]}},
            r"converter.string_rules\[0\]",
        ),
    ],
)
def test_bad_configs(config: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClassifierModel(config)


# -- the service's calls -------------------------------------------------------------------


def test_train_counts_and_labels() -> None:
    model = new_model()
    data = noisy_data(seed=1, n=30)
    assert model.train(data) == 30
    counts: dict[str, int] = {}
    for label, _ in data:
        counts[label] = counts.get(label, 0) + 1
    assert model.get_labels() == counts
    assert model.train([]) == 0


def test_classify_scores_every_label_sorted_by_name() -> None:
    model = new_model("PA")
    model.train([("b", point(1, 0)), ("c", point(-1, -1)), ("a", point(0, 1))])
    [scores] = model.classify([point(1, 0)])
    assert [label for label, _ in scores] == ["a", "b", "c"]
    assert dict(scores)["b"] > dict(scores)["a"]
    assert model.classify([]) == []


def test_classify_before_training_has_no_labels() -> None:
    assert new_model().classify([point(1, 1), point(0, 0)]) == [[], []]


def test_set_label_and_delete_label() -> None:
    model = new_model()
    assert model.set_label("cat") is True
    assert model.set_label("cat") is False
    assert model.get_labels() == {"cat": 0}
    assert model.classify([point(1, 1)]) == [[("cat", 0.0)]]
    model.train([("dog", point(1, 1)), ("cat", point(-1, -1))])
    assert model.get_labels() == {"cat": 1, "dog": 1}
    assert model.delete_label("dog") is True
    assert model.delete_label("dog") is False
    assert model.get_labels() == {"cat": 1}
    [scores] = model.classify([point(1, 1)])
    assert [label for label, _ in scores] == ["cat"]
    assert "dog" not in model.pack()["weights"]["diff"]  # type: ignore[index]
    with pytest.raises(ValueError):
        model.set_label("")


def test_clear_forgets_everything_but_the_version() -> None:
    model = new_model()
    model.train(noisy_data(seed=2, n=20))
    model.put_diff(fold_diffs(model, [model.get_diff()]))
    model.train(noisy_data(seed=3, n=5))
    assert model.clear() is True
    assert model.get_labels() == {}
    assert model.classify([point(1, 1)]) == [[]]
    documents = model.pack()["documents"]  # type: ignore[index]
    assert documents["master"]["documents"] == documents["diff"]["documents"] == 0
    assert model.version == 1
    assert model.get_status()["num_features"] == "0"


@pytest.mark.parametrize(
    "pairs",
    [
        [("a", point(1, 1)), ("", point(1, 1))],
        [("a", point(1, 1)), (3, point(1, 1))],
        [("a", point(1, 1)), ("b", "not a datum")],
        [("a", point(1, 1)), ("b", Datum(num_values=[("x", float("nan"))]))],
        [("a", point(1, 1)), ("b", Datum(num_values=[("x", 1e300)]))],
        [("a", point(1, 1)), ("b", Datum(num_values=[("x$", 1.0)]))],
        [("a", point(1, 1)), ("only a label",)],
    ],
)
def test_a_bad_pair_trains_nothing(pairs: list[object]) -> None:
    model = new_model()
    model.train([("z", point(0, 1, "w"))])
    before = copy.deepcopy(model.pack())
    with pytest.raises(ValueError, match=r"train\[1\]"):
        model.train(pairs)  # type: ignore[arg-type]
    assert model.pack() == before


def test_classify_names_the_bad_datum() -> None:
    with pytest.raises(ValueError, match=r"classify\[1\]"):
        new_model().classify([point(1, 1), Datum(num_values=[("x", "1")])])  # type: ignore[list-item]


def test_status_keys() -> None:
    model = new_model("CW")
    model.train([("a", point(1, 2)), ("b", point(2, 1))])
    status = model.get_status()
    assert status["method"] == "CW"
    assert status["num_classes"] == "2"
    assert status["num_features_diff"] == "2"
    assert status["model_version"] == "0"


# -- save and load -------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(PARAMETERS))
def test_pack_unpack_round_trip(method: str) -> None:
    model = new_model(method)
    model.train(noisy_data(seed=4, n=40))
    model.put_diff(model.get_diff())
    model.train(noisy_data(seed=5, n=10))
    model.set_label("spare")
    probe = [d for _, d in noisy_data(seed=6, n=10)]
    for packed in (
        msgpack.unpackb(msgpack.packb(model.pack(), use_bin_type=True), raw=False),
        # the model file's old format: every string comes back as bytes
        msgpack.unpackb(msgpack.packb(model.pack(), use_bin_type=False), raw=True),
    ):
        other = new_model(method)
        other.unpack(packed)
        assert other.classify(probe) == model.classify(probe)
        assert other.get_labels() == model.get_labels()
        assert other.version == model.version == 1
        assert other.pack() == model.pack()


GARBAGE: list[object] = [
    None,
    [],
    b"\x00",
    {},
    {"version": 0},
    {
        "version": -1,
        "count": 0,
        "weights": {"master": {}, "diff": {}},
        "variances": {"master": {}, "diff": {}},
        "labels": {"counts": {}, "diff": {}},
        "documents": {
            "master": {"documents": 0, "frequencies": {}},
            "diff": {"documents": 0, "frequencies": {}},
        },
    },
]


def _valid_pack_with(path: list[str], value: object) -> object:
    packed = copy.deepcopy(new_model().pack())
    node = packed
    for key in path[:-1]:
        node = node[key]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    return packed


GARBAGE += [
    _valid_pack_with(["weights", "master"], {"a": {"f": "x"}}),
    _valid_pack_with(["weights", "diff"], {"a": {"f": float("inf")}}),
    _valid_pack_with(["labels", "counts"], {"a": -1}),
    _valid_pack_with(["documents", "diff"], {"documents": 1}),
    _valid_pack_with(["weights", "master"], {b"\xff": {}}),
    _valid_pack_with(["count"], True),
]


@pytest.mark.parametrize("payload", GARBAGE)
def test_unpack_of_garbage_leaves_the_model_intact(payload: object) -> None:
    model = new_model()
    model.train(noisy_data(seed=7, n=20))
    before = copy.deepcopy(model.pack())
    probe = [d for _, d in noisy_data(seed=8, n=5)]
    scores = model.classify(probe)
    with pytest.raises(ModelFileError):
        model.unpack(payload)
    assert model.pack() == before
    assert model.classify(probe) == scores


# -- mix -----------------------------------------------------------------------------------


def mix_round(models: list[ClassifierModel]) -> list[bool]:
    diffs = [roundtrip(m.get_diff()) for m in models]
    mixed = roundtrip(fold_diffs(models[0], diffs))
    return [m.put_diff(roundtrip(mixed)) for m in models]


@pytest.mark.parametrize("method", list(PARAMETERS))
def test_three_models_mixed_agree_and_keep_their_accuracy(method: str) -> None:
    train = noisy_data(seed=10, n=1200)
    held_out = noisy_data(seed=11, n=600)
    single = new_model(method)
    single.train(train)

    models = [new_model(method) for _ in range(3)]
    shares = [train[i::3] for i in range(3)]
    rounds = 4
    for r in range(rounds):
        for model, share in zip(models, shares, strict=True):
            chunk = len(share) // rounds
            model.train(share[r * chunk : (r + 1) * chunk])
        assert mix_round(models) == [True, True, True]

    assert [m.version for m in models] == [rounds] * 3
    first = models[0].classify([d for _, d in held_out])
    assert all(m.classify([d for _, d in held_out]) == first for m in models[1:])
    assert all(m.get_labels() == single.get_labels() for m in models)
    for m in models:
        packed = m.pack()
        assert isinstance(packed, dict)
        assert packed["documents"]["master"]["documents"] == 1200
        assert packed["documents"]["diff"]["documents"] == 0
        assert packed["weights"]["diff"] == {} and packed["labels"]["diff"] == {}
    # Margin: the mixed model may lose at most 5 points of accuracy to one model that
    # saw every example.
    mixed_accuracy = accuracy(models[0], held_out)
    assert mixed_accuracy >= accuracy(single, held_out) - 0.05
    assert mixed_accuracy > 0.8


def test_a_stale_diff_is_refused_and_changes_nothing() -> None:
    models = [new_model() for _ in range(2)]
    for model, seed in zip(models, (20, 21), strict=True):
        model.train(noisy_data(seed=seed, n=20))
    stale = roundtrip(models[0].get_diff())
    assert mix_round(models) == [True, True]
    models[1].train(noisy_data(seed=22, n=5))
    before = copy.deepcopy(models[1].pack())
    assert models[1].put_diff(stale) is False
    assert models[1].pack() == before
    assert models[1].version == 1


def test_diffs_of_different_versions_newer_wins() -> None:
    old, new = new_model(), new_model()
    old.train(noisy_data(seed=30, n=10))
    new.train(noisy_data(seed=31, n=10))
    new.put_diff(new.get_diff())
    new.train(noisy_data(seed=32, n=3))
    newer = new.get_diff()
    assert new.mix(old.get_diff(), newer) == newer
    assert new.mix(newer, old.get_diff()) == newer


def test_mix_sums_counts_and_averages_weights_by_count() -> None:
    a, b = new_model("PA"), new_model("PA")
    a.train([("x", point(1, 0))])
    b.train([("x", point(0, 1)), ("y", point(0, 1)), ("y", point(0, 2))])
    left, right = a.get_diff(), b.get_diff()
    mixed = describe_diff(a.mix(left, right))
    assert mixed["count"] == 4
    assert mixed["labels"] == {"x": 2, "y": 2}
    lhs, rhs = describe_diff(left), describe_diff(right)
    weights = mixed["weights"]
    assert isinstance(weights, dict)
    for label in ("x", "y"):
        for feature in ("x@num", "y@num"):
            expected = (
                1 * lhs["weights"].get(label, {}).get(feature, 0.0)  # type: ignore[attr-defined]
                + 3 * rhs["weights"].get(label, {}).get(feature, 0.0)  # type: ignore[attr-defined]
            ) / 4
            assert weights.get(label, {}).get(feature, 0.0) == pytest.approx(expected)
    assert left == a.get_diff()  # mix changed neither argument


def test_learning_during_a_mix_round_is_kept_for_the_next() -> None:
    models = [new_model("PA") for _ in range(2)]
    models[0].train(noisy_data(seed=40, n=10))
    models[1].train(noisy_data(seed=41, n=10))
    diffs = [m.get_diff() for m in models]
    late = noisy_data(seed=42, n=4)
    models[0].train(late)  # arrives between get_diff and put_diff
    mixed = fold_diffs(models[0], diffs)
    assert [m.put_diff(mixed) for m in models] == [True, True]
    leftover = describe_diff(models[0].get_diff())
    assert leftover["count"] == 4
    assert sum(leftover["labels"].values()) == 4  # type: ignore[attr-defined]
    assert describe_diff(models[1].get_diff())["count"] == 0
    # The next round brings both servers to the same model again.
    assert mix_round(models) == [True, True]
    probe = [d for _, d in noisy_data(seed=43, n=20)]
    assert models[0].classify(probe) == models[1].classify(probe)
    assert sum(models[1].get_labels().values()) == 24


def test_set_label_and_idle_servers_mix() -> None:
    busy, idle = new_model(), new_model()
    busy.train([("a", point(1, 0))])
    idle.set_label("b")
    assert mix_round([busy, idle]) == [True, True]
    assert busy.get_labels() == idle.get_labels() == {"a": 1, "b": 0}
    # The idle server trained nothing: its empty diff does not dilute the busy one's.
    idle_weights = idle.pack()["weights"]["master"]  # type: ignore[index]
    busy_weights = busy.pack()["weights"]["master"]  # type: ignore[index]
    assert idle_weights["a"]["x@num"] == busy_weights["a"]["x@num"] > 0


def test_a_joining_server_catches_up_with_get_model() -> None:
    models = [new_model("CW") for _ in range(2)]
    for model, seed in zip(models, (50, 51), strict=True):
        model.train(noisy_data(seed=seed, n=30))
    mix_round(models)
    joiner = new_model("CW")
    joiner.train(noisy_data(seed=52, n=3))  # learned alone before joining: dropped
    joiner.set_model(roundtrip(models[0].get_model()))
    probe = [d for _, d in noisy_data(seed=53, n=20)]
    assert joiner.version == 1
    assert joiner.classify(probe) == models[0].classify(probe)
    assert joiner.get_labels() == models[0].get_labels()
    models[1].train(noisy_data(seed=54, n=5))
    assert mix_round([*models, joiner]) == [True, True, True]
    assert joiner.classify(probe) == models[0].classify(probe) == models[1].classify(probe)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"version": 0},
        {
            "version": 0,
            "count": 1,
            "weights": {"a": {"f": "1"}},
            "variances": {},
            "labels": {},
            "documents": {"documents": 0, "frequencies": {}},
        },
        {
            "version": 0,
            "count": 1,
            "weights": {},
            "variances": {},
            "labels": {"a": 1.5},
            "documents": {"documents": 0, "frequencies": {}},
        },
    ],
)
def test_malformed_diffs_are_refused_whole(bad: object) -> None:
    model = new_model()
    model.train(noisy_data(seed=60, n=5))
    good = model.get_diff()
    before = copy.deepcopy(model.pack())
    with pytest.raises(DiffError):
        model.put_diff(bad)
    with pytest.raises(DiffError):
        model.mix(good, bad)
    with pytest.raises(DiffError):
        model.set_model(bad)
    assert model.pack() == before


def test_the_model_is_mixable() -> None:
    assert isinstance(new_model(), Mixable)


def _diff_with(field: str, value: object) -> object:
    model = new_model()
    model.train(noisy_data(seed=61, n=5))
    diff = roundtrip(model.get_diff())
    assert isinstance(diff, dict)
    diff[field] = value
    return diff


MALFORMED = [
    _diff_with("weights", b"\x00" * 8),  # not one number per feature and label
    _diff_with("weights", b"\x00\x00\x00\x00\x00\x00\xf0\x7f" * 1000),  # inf
    _diff_with("features", [b"not msgpack \xc1"]),
    _diff_with("features", ["names, not packed"]),
    _diff_with("labels", ["a", "a"]),
    _diff_with("frequencies", b""),
    _diff_with("label_counts", {"": 1}),
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_arrays_are_refused(bad: object) -> None:
    model = new_model()
    model.train(noisy_data(seed=62, n=5))
    before = copy.deepcopy(model.pack())
    with pytest.raises(DiffError):
        model.put_diff(bad)
    with pytest.raises(DiffError):
        model.mix(model.get_diff(), bad)
    assert model.pack() == before


def test_a_snapshots_status_is_its_own_and_the_next_one_moves_on() -> None:
    """A snapshot makes its status keys once; the next snapshot shows what came since, and
    a standalone server's keys stay apart from a member's."""
    model = new_model("AROW")
    model.train([("a", point(1, 2))])
    first = model.snapshot()
    status = first.get_status()
    status["num_classes"] = "changed by the caller"  # a copy: the snapshot keeps its own
    assert first.get_status()["num_classes"] == "1"
    assert first.get_status(standalone=True)["storage"] == "local_storage"
    assert first.get_status()["storage"] == "local_storage_mixture"
    model.train([("b", point(2, 1, "z"))])
    second = model.snapshot()
    assert second.get_status()["num_classes"] == "2"
    assert int(second.get_status(standalone=True)["num_features"]) > int(
        first.get_status(standalone=True)["num_features"]
    )
    assert first.get_status()["num_classes"] == "1"
