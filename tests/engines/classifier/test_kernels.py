"""The compiled kernels (engines/common/kernels_c/) answer as the Python they stand in
for, to the bit, and leave every case they do not take to that Python.

Each case runs twice: with the kernels, and with ``kernels.compiled`` set to None (the
fallback, as on a machine with no C compiler): the snapshot's ``classify_wire``, and the
linear methods' training. The reference engine (``tests/engines/classifier/reference``)
checks both.
"""

from __future__ import annotations

import math
import random
from typing import Any

import msgpack
import pytest

from engines.classifier.model import ClassifierModel, ClassifierSnapshot
from engines.common import kernels
from runtime import Datum
from tests.engines.classifier.reference.model import ClassifierModel as ReferenceModel
from tests.engines.classifier.test_equivalence import LINEAR_CASES, same, trained_on_golden
from tests.engines.kernel_modes import python_only, with_and_without

ONE_RULE = {
    "string_rules": [
        {"key": "*", "type": "space", "sample_weight": "bin", "global_weight": "bin"},
    ],
    "num_rules": [{"key": "*", "type": "num"}],
}
WORDS = ("apple", "banana", "cherry", "durian", "elder", "fig", "grape")
METHODS = ["perceptron", "PA", "PA1", "PA2", "CW", "AROW", "NHERD"]


def both(snapshot: ClassifierSnapshot, data: object) -> object:
    """The snapshot's answer with the kernel and without; they must be the same."""
    with_kernel, python = with_and_without(lambda: _outcome(snapshot, data))
    assert same(with_kernel, python)
    return with_kernel


def _outcome(snapshot: ClassifierSnapshot, data: object) -> object:
    try:
        return snapshot.classify_wire(data)
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def wire(data: object) -> Any:
    """``data`` as a server reads it off the wire (strings as bytes)."""
    return msgpack.unpackb(msgpack.packb(data, use_bin_type=False), raw=True)


def typed(datum: list[Any]) -> Datum:
    out = Datum()
    out.string_values = [(k.decode(), v.decode()) for k, v in datum[0]]
    out.num_values = [(k.decode(), float(v)) for k, v in datum[1]]
    return out


def wire_datum(rng: random.Random, numbers: int = 4) -> list[Any]:
    """A datum with repeated words, 0 and -0.0 values, ints and unknown keys."""
    strings = [[b"text", " ".join(rng.choices(WORDS, k=rng.randint(0, 4))).encode()]]
    if rng.random() < 0.3:
        strings.append([b"title", rng.choice(WORDS).encode()])
    keys = [f"n{rng.randint(0, numbers)}".encode() for _ in range(rng.randint(0, numbers))]
    values = [0.0, -0.0, 0, 3, rng.uniform(-3.0, 3.0), rng.uniform(-3.0, 3.0)]
    return [strings, [[key, rng.choice(values)] for key in keys], []]


def trained(method: str, converter: dict[str, Any] = ONE_RULE) -> tuple[Any, Any, random.Random]:
    config = {
        "method": method,
        "parameter": None if method in ("perceptron", "PA") else {"regularization_weight": 0.7},
        "converter": converter,
    }
    new, old = ClassifierModel(config), ReferenceModel(config)
    rng = random.Random(method)
    for _ in range(200):
        pair = [(rng.choice(["a", "b", "c"]), typed(wire_datum(rng)))]
        assert new.train(pair) == old.train(pair)
    return new, old, rng


def test_the_kernel_is_built() -> None:
    """``make test`` builds it (a machine with no compiler runs the fallback alone)."""
    assert kernels.compiled is not None


@pytest.mark.parametrize("method", METHODS)
def test_scores_are_the_references_to_the_bit(method: str) -> None:
    new, old, rng = trained(method)
    new.set_label("d")  # known, without weights
    old.set_label("d")
    snapshot = new.snapshot()
    for size in (1, 2, 7, 8, 40):
        data = [wire_datum(rng) for _ in range(size)]
        snapshot.classify_wire(data)  # the first sight fills the converter's caches
        assert kernels.compiled is not None
        caches = new.converter.wire_caches()
        taken = kernels.compiled.classify_wire(data, *caches, snapshot._replica)
        assert taken is not None  # the plain case: the kernel answered
        assert same(both(snapshot, data), old.classify([typed(d) for d in data]))


def test_many_features_in_one_datum() -> None:
    """Past 48 features a repeated name is found by a dict, not pairwise."""
    new, old, rng = trained("AROW")
    snapshot = new.snapshot()
    for _ in range(5):
        datum = wire_datum(rng, numbers=200)
        datum[1].extend([[f"n{i}".encode(), rng.choice([0.0, 1.5, -2.0])] for i in range(120)])
        datum[0].append([b"text", b"apple apple fig apple"])
        snapshot.classify_wire([datum])
        assert same(both(snapshot, [datum]), old.classify([typed(datum)]))


@pytest.mark.parametrize(
    ("what", "data"),
    [
        ("not a list", {"x": 1}),
        ("a datum not a list", [7]),
        ("a datum of two parts", [[[], []]]),
        ("a string pair of three", [[[[b"text", b"fig", b"x"]], [], []]]),
        ("a string value not bytes", [[[[b"text", 3]], [], []]]),
        ("a number not a number", [[[], [[b"n0", b"1"]], []]]),
        ("a number a bool", [[[], [[b"n0", True]], []]]),
        ("a number too large", [[[], [[b"n0", 1 << 2000]], []]]),
        ("a number key not bytes", [[[], [[7, 1.0]], []]]),
        ("a binary pair of one", [[[], [], [[b"x"]]]]),
        ("infinite", [[[], [[b"n1", math.inf]], []]]),
        ("not a number", [[[], [[b"n1", math.nan], [b"n2", 1.0]], []]]),
        ("a key with $", [[[[b"te$t", b"fig"]], [], []]]),
        ("invalid UTF-8", [[[[b"text", b"\xff"]], [], []]]),
        ("empty", []),
        ("an empty datum", [[[], [], []]]),
    ],
)
def test_what_the_kernel_does_not_take_answers_as_before(what: str, data: object) -> None:
    new, _, _ = trained("PA1")
    new.set_label("d")
    snapshot = new.snapshot()
    first = both(snapshot, data)
    assert same(both(snapshot, data), first), what  # again, with whatever was cached


def test_a_label_set_after_the_copy_and_features_named_since() -> None:
    """Features this copy has never seen score 0; so does a known label with no weights."""
    new, old, _ = trained("CW")
    snapshot = new.snapshot()
    data = [[[[b"text", b"zebra yak apple"]], [[b"brand-new", 2.0]], []]]
    snapshot.classify_wire(data)
    assert same(both(snapshot, data), old.classify([typed(d) for d in data]))
    empty = ClassifierModel(
        {"method": "PA", "converter": ONE_RULE}
    ).snapshot()  # no label yet: one empty list per datum
    assert both(empty, data) == [[]]


def test_a_retired_copy_is_left_to_the_python_path() -> None:
    """The writer changes a copy only once retired: the kernel never reads one."""
    new, _, rng = trained("AROW")
    data = [wire_datum(rng)]
    snapshot = new.snapshot()
    snapshot.classify_wire(data)
    replica = snapshot._replica
    assert kernels.compiled is not None
    caches = new.converter.wire_caches()
    assert kernels.compiled.classify_wire(data, *caches, replica) is not None
    replica.retired = True
    try:
        assert kernels.compiled.classify_wire(data, *caches, replica) is None
    finally:
        replica.retired = False


def test_idf_rules_are_left_to_the_python_path() -> None:
    converter = {
        "string_rules": [
            {"key": "*", "type": "space", "sample_weight": "tf", "global_weight": "idf"},
        ],
        "num_rules": [{"key": "*", "type": "num"}],
    }
    new, old, rng = trained("PA2", converter)
    assert new.converter.wire_caches() is None
    data = [wire_datum(rng) for _ in range(10)]
    assert same(both(new.snapshot(), data), old.classify([typed(d) for d in data]))


@pytest.mark.parametrize("spec", LINEAR_CASES, ids=lambda c: f"{c['config']['method']}-{c['data']}")
def test_golden_data_sets_on_the_wire(spec: dict[str, Any]) -> None:
    """The oracle's data sets (Jubatus's core agrees with the reference on them), queried
    as a server reads them, with the kernel and without."""
    new, old, queries = trained_on_golden(spec)
    snapshot = new.snapshot()
    on_wire = wire([d.to_msgpack() for d in queries])
    snapshot.classify_wire(on_wire)
    expected = old.classify(queries)
    assert same(both(snapshot, on_wire), expected)
    for one in on_wire[:5]:
        assert same(both(snapshot, [one]), old.classify([typed(one)]))


def test_the_fallback_alone() -> None:
    """With no kernel (``kernels.compiled`` None) the Python answers by itself."""
    new, old, rng = trained("NHERD")
    data = [wire_datum(rng) for _ in range(12)]
    with python_only():
        assert same(new.snapshot().classify_wire(data), old.classify([typed(d) for d in data]))


@pytest.mark.parametrize("method", METHODS)
def test_training_is_the_same_with_the_kernel_and_without(method: str) -> None:
    """Every method learns the same numbers both ways, and as the reference: three labels,
    a fourth coming late, repeated and unknown features, ints, one example at a time."""
    config = {
        "method": method,
        "parameter": None if method in ("perceptron", "PA") else {"regularization_weight": 0.3},
        "converter": ONE_RULE,
    }
    rng = random.Random(f"train-{method}")
    examples = [
        (rng.choice(["a", "b", "c"] if i < 150 else ["a", "b", "c", "late"]), wire_datum(rng))
        for i in range(300)
    ]

    def train() -> tuple[ClassifierModel, list[int]]:
        model = ClassifierModel(config)
        return model, [model.train_wire(wire([[label, d]])) for label, d in examples]

    (compiled, compiled_answers), (python, python_answers) = with_and_without(train)
    reference = ReferenceModel(config)
    expected = [reference.train([(label, typed(d))]) for label, d in examples]
    assert compiled_answers == python_answers == expected
    assert same(compiled.pack(), python.pack())
    assert same(compiled.pack(), reference.pack())
    # The counts the kernel keeps (get_status's, the labels') are the Python's too.
    assert compiled.get_status() == python.get_status()
    assert compiled.get_labels() == python.get_labels() == reference.get_labels()


TRAIN_INPUTS = [
    ("a sum too large", [["a", [[], [[b"n1", 1e308], [b"n1", 1e308]], []]]]),
    ("a norm too large", [["a", [[], [[b"n1", 1e200]], []]]]),
    ("infinite", [["a", [[], [[b"n1", math.inf]], []]]]),
    ("not a number", [["a", [[], [[b"n2", 1.0], [b"n1", math.nan]], []]]]),
    ("a number a bool", [["a", [[], [[b"n0", True]], []]]]),
    ("a number too large", [["a", [[], [[b"n0", 1 << 2000]], []]]]),
    ("a string value not bytes", [["a", [[[b"text", 3]], [], []]]]),
    ("a key with $", [["a", [[[b"te$t", b"fig"]], [], []]]]),
    ("invalid UTF-8", [["a", [[[b"text", b"\xff"]], [], []]]]),
    ("a datum of two parts", [["a", [[], []]]]),
    ("zeros only", [["b", [[], [[b"n1", 0.0], [b"n2", -0.0]], []]]]),
    ("an empty datum", [["c", [[], [], []]]]),
    (
        "a good one, then a bad one",
        [["a", [[], [[b"n1", 1.0]], []]], ["b", [[], [[b"n1", math.inf]], []]]],
    ),
    (
        "two good ones",
        [["a", [[[b"text", b"fig fig apple"]], [[b"n3", 2]], []]], ["b", [[], [[b"n1", 1.0]], []]]],
    ),
]


@pytest.mark.parametrize(("what", "data"), TRAIN_INPUTS, ids=[what for what, _ in TRAIN_INPUTS])
def test_training_on_what_the_vector_kernel_does_not_take(what: str, data: object) -> None:
    """The same answer or error both ways, and the same model after it (a bad example in a
    call leaves the model as it was): twice, the second time with the caches filled."""

    def train() -> tuple[list[object], object]:
        model, _, _ = trained("AROW")
        outcomes: list[object] = []
        for _ in range(2):
            try:
                outcomes.append(model.train_wire(wire(data)))
            except Exception as error:
                outcomes.append(f"{type(error).__name__}: {error}")
        return outcomes, model.pack()

    compiled, python = with_and_without(train)
    assert same(compiled, python), what


def test_the_vector_of_a_wide_datum_is_sorted_and_merged() -> None:
    """Past 48 features (a dict finds repeated names), in an order far from sorted: the
    model learns the same both ways, and as the reference."""
    rng = random.Random("wide")
    config = {"method": "PA1", "parameter": {"regularization_weight": 0.5}, "converter": ONE_RULE}
    examples = []
    for _ in range(40):
        numbers = [[f"k{rng.randint(0, 150)}".encode(), rng.uniform(-2.0, 2.0)] for _ in range(90)]
        text = " ".join(rng.choices(WORDS, k=12)).encode()
        examples.append((rng.choice("xyz"), [[[b"text", text]], numbers, []]))

    def train() -> object:
        model = ClassifierModel(config)
        for label, datum in examples:
            model.train_wire(wire([[label, datum]]))
        return model.pack()

    compiled, python = with_and_without(train)
    reference = ReferenceModel(config)
    for label, datum in examples:
        reference.train([(label, typed(datum))])
    assert same(compiled, python)
    assert same(compiled, reference.pack())


def test_the_vector_kernel_is_what_the_python_makes() -> None:
    """train_vector: the names sorted, repeated ones summed at their first place, zeros
    left out; None for a pair the caches do not hold yet."""
    assert kernels.compiled is not None
    model = ClassifierModel({"method": "perceptron", "converter": ONE_RULE})
    caches = model.wire_caches
    assert caches is not None
    datum = wire(
        [[[b"text", b"fig apple fig"]], [[b"b", 2.0], [b"a", 0.0], [b"b", 1], [b"c", -1.5]], []]
    )
    assert kernels.compiled.train_vector(datum, *caches) is None  # nothing cached yet
    model.train_wire([[b"l", datum]])
    names, values = kernels.compiled.train_vector(datum, *caches)
    assert (
        names
        == sorted(names)
        == ["b@num", "c@num", "text$apple@space#bin/bin", "text$fig@space#bin/bin"]
    )
    assert values == [3.0, -1.5, 1.0, 1.0]  # (bin: a word counts once)


def test_training_refuses_what_the_python_refuses() -> None:
    """Positions outside the tables raise IndexError, as indexing the arrays does."""
    model = ClassifierModel(
        {"method": "AROW", "parameter": {"regularization_weight": 1.0}, "converter": ONE_RULE}
    )
    model.train_wire(wire([["a", [[], [[b"n0", 1.0]], []]]]))
    arrays = model._current().arrays
    assert kernels.compiled is not None
    with pytest.raises(IndexError):
        model.method.learn(arrays, [len(arrays.W) + 10], [1.0], 0, [0, 1], [])
    with python_only(), pytest.raises(IndexError):
        model.method.learn(arrays, [len(arrays.W) + 10], [1.0], 0, [0, 1], [])


def test_publishing_after_every_example_keeps_both_copies_equal() -> None:
    """A snapshot after each example: the next change first brings the other copy up to
    date (copy_rows), and both copies end equal to the reference, with the kernel and
    without."""
    config = {"method": "AROW", "parameter": {"regularization_weight": 0.5}, "converter": ONE_RULE}
    rng = random.Random("publish")
    examples = [(rng.choice(["a", "b", "c"]), wire_datum(rng)) for _ in range(120)]
    queries = [wire_datum(rng) for _ in range(20)]

    def publish_and_classify() -> list[tuple[object, object]]:
        model = ClassifierModel(config)
        for label, datum in examples:
            model.train_wire(wire([[label, datum]]))
            snapshot = model.snapshot()
        first = (snapshot.classify_wire(wire(queries)), model.pack())
        model.train_wire(wire([["a", queries[0]]]))  # the other copy caught up once more
        return [first, (model.snapshot().classify_wire(wire(queries)), model.pack())]

    compiled, python = with_and_without(publish_and_classify)
    reference = ReferenceModel(config)
    for label, datum in examples:
        reference.train([(label, typed(datum))])
    assert same(compiled, python)
    assert same(compiled[0][0], reference.classify([typed(q) for q in queries]))


def test_learn_known_leaves_what_the_copy_does_not_know_to_the_python() -> None:
    """learn_known answers None and changes nothing for a new label or a new feature name;
    for a known one it counts the label, marks the rows changed and counts the example."""
    assert kernels.compiled is not None
    model = ClassifierModel(
        {"method": "AROW", "parameter": {"regularization_weight": 1.0}, "converter": ONE_RULE}
    )
    model.train_wire(wire([["a", [[], [[b"n0", 1.0]], []]], ["b", [[], [[b"n1", 1.0]], []]]]))
    work = model._current()
    method = model.method
    before = model.pack(), dict(work.counts), work.trained
    dirty: set[int] = set()

    def learn(label: str, names: list[str]) -> object:
        return kernels.compiled.learn_known(  # type: ignore[union-attr]
            method.kernel_code, method.c, method.kernel_extra, work, label, names,
            [1.0] * len(names), dirty,
        )  # fmt: skip

    assert learn("new label", ["n0@num"]) is None
    assert learn("a", ["n0@num", "new@num"]) is None
    assert (model.pack(), dict(work.counts), work.trained) == before
    assert not dirty
    assert learn("a", ["n1@num"]) is True
    assert work.counts["a"] == before[1]["a"] + 1 and work.trained == before[2] + 1
    assert dirty == {work.index.ids["n1@num"]}


def test_train_known_learns_what_train_vector_and_learn_known_learn() -> None:
    """train_known: the datum's vector learnt in one call, the same model as the two
    kernels give one after the other; None, nothing changed, for a datum the caches do
    not hold yet or a new label."""
    assert kernels.compiled is not None
    compiled = kernels.compiled
    config = {"method": "PA1", "parameter": {"regularization_weight": 0.5}, "converter": ONE_RULE}
    rng = random.Random("known")
    warm = [(rng.choice("ab"), wire_datum(rng)) for _ in range(60)]
    steps = [(rng.choice("ab"), wire(wire_datum(rng))) for _ in range(60)]

    def trained_by(one_call: bool) -> object:
        model = ClassifierModel(config)
        for label, datum in warm:
            model.train_wire(wire([[label, datum]]))
        method, caches = model.method, model.wire_caches
        assert caches is not None
        for label, datum in steps:
            work = model._current()
            model._changed = True
            code = (method.kernel_code, method.c, method.kernel_extra)
            if one_call:
                learnt = compiled.train_known(
                    datum, *caches, *code, work, label, model._dirty, None
                )
            else:
                vector = compiled.train_vector(datum, *caches)
                learnt = None
                if vector is not None:
                    learnt = compiled.learn_known(*code, work, label, *vector, model._dirty)
            if learnt is None:  # (a word not seen in the warm-up)
                model.train_wire(wire([[label, datum]]))
            else:
                taken.append(one_call)
            model.snapshot()
        return model.pack(), model.get_status()

    taken: list[bool] = []

    assert same(trained_by(True), trained_by(False))
    assert taken.count(True) == taken.count(False) > 20  # many by the kernels
    model = ClassifierModel(config)
    model.train_wire(wire([["a", [[], [[b"n0", 1.0]], []]]]))
    method, caches, work = model.method, model.wire_caches, model._current()
    assert caches is not None
    code = (method.kernel_code, method.c, method.kernel_extra)
    before = model.pack(), dict(work.counts), work.trained
    known, unseen = wire([[], [[b"n0", 2.0]], []]), wire([[[b"text", b"new words"]], [], []])
    assert compiled.train_known(unseen, *caches, *code, work, "a", None, None) is None
    assert compiled.train_known(known, *caches, *code, work, "new label", None, None) is None
    assert (model.pack(), dict(work.counts), work.trained) == before
    for label in (b"", b"\xff", b"new label"):  # wire bytes: empty, not UTF-8, new
        assert compiled.train_known(known, *caches, *code, work, label, None, None) is None
    assert (model.pack(), dict(work.counts), work.trained) == before
    assert compiled.train_known(known, *caches, *code, work, "a", None, None) in (True, False)
    assert work.trained == before[2] + 1
    assert compiled.train_known(known, *caches, *code, work, b"a", None, None) in (True, False)
    assert work.trained == before[2] + 2 and work.counts["a"] == before[1]["a"] + 2


def test_copy_rows_checks_what_it_copies() -> None:
    from array import array

    assert kernels.compiled is not None
    copy_rows = kernels.compiled.copy_rows
    mine, theirs = array("d", [0.0] * 6), array("d", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    copy_rows([(mine, theirs, 2)], [2, 0])
    assert list(mine) == [1.0, 2.0, 0.0, 0.0, 5.0, 6.0]
    with pytest.raises(IndexError):
        copy_rows([(mine, theirs, 2)], [3])
    with pytest.raises(IndexError):
        copy_rows([(mine, theirs, 2)], [-1])
    with pytest.raises(TypeError):
        copy_rows([(mine, array("q", [0] * 6), 2)], [0])
    with pytest.raises(BufferError):
        copy_rows([(bytes(48), theirs, 2)], [0])  # not writable


@pytest.mark.parametrize("converter", ["one rule", "idf"])
def test_classify_in_process_is_the_same_with_the_kernel_and_without(converter: str) -> None:
    """``classify`` of Datum objects (score_vectors), non-finite values and an unknown
    label included, both ways and as the reference."""
    rules: dict[str, Any] = ONE_RULE
    if converter == "idf":
        rules = {
            "string_rules": [
                {"key": "*", "type": "space", "sample_weight": "tf", "global_weight": "idf"},
            ],
            "num_rules": [{"key": "*", "type": "num"}],
        }
    new, old, rng = trained("NHERD", rules)
    new.set_label("d")
    old.set_label("d")
    data = [typed(wire_datum(rng)) for _ in range(30)]
    data[3].num_values.append(("n1", math.inf))
    data[7].num_values.append(("n2", math.nan))
    expected = old.classify(data)
    with_kernel, python = with_and_without(lambda: new.classify(data))
    assert same(with_kernel, python)
    assert same(with_kernel, expected)
    for one in data[:10]:
        assert same(new.classify([one]), old.classify([one]))
