"""``ClassifierModel.train_at_once``: one wire example learnt straight into the published
copy, by the compiled kernel, when no reader is on any copy.

Every method, examples trained at once mixed with the writer's ordinary way (train, then
publish), unpublished changes and a mix round: the snapshot answers, its status and both
copies end equal to a model trained the ordinary way only. What the kernel does not take
(a new label or word, two examples, a reader on a copy, unpublished changes, no kernel)
is declined having changed nothing; the garbage collector is left as it was; and a
thread reading all along sees no error and changes nothing of the outcome.
"""

from __future__ import annotations

import gc
import random
import threading
from typing import Any

import pytest

from engines.classifier.model import ClassifierModel
from engines.common import kernels
from tests.engines.classifier.test_equivalence import same
from tests.engines.classifier.test_kernels import METHODS, ONE_RULE, wire, wire_datum
from tests.engines.kernel_modes import python_only

pytestmark = pytest.mark.skipif(kernels.compiled is None, reason="the kernel is not built")


def config_of(method: str) -> dict[str, Any]:
    parameter = None if method in ("perceptron", "PA") else {"regularization_weight": 0.7}
    return {"method": method, "parameter": parameter, "converter": ONE_RULE}


def ordinary(model: ClassifierModel, example: object) -> None:
    """How the writer trains: the general path, then a publish."""
    model.train_wire(example)
    model.snapshot()


def mix_alone(model: ClassifierModel) -> None:
    """A mix round of one server: its own diff put back."""
    snapshot = model.snapshot()
    diff = snapshot.get_diff()
    assert model.put_diff(diff, snapshot)
    model.snapshot()


def warmed(method: str, rng: random.Random) -> tuple[ClassifierModel, ClassifierModel]:
    """Two models trained alike on every label and word, published."""
    models = ClassifierModel(config_of(method)), ClassifierModel(config_of(method))
    warm = [(rng.choice("abc"), wire_datum(rng)) for _ in range(80)]
    for model in models:
        for label, datum in warm:
            ordinary(model, wire([[label, datum]]))
    return models


@pytest.mark.parametrize("method", METHODS)
def test_at_once_and_the_ordinary_way_end_the_same(method: str) -> None:
    rng = random.Random(f"at once {method}")
    model, reference = warmed(method, rng)
    queries = wire([wire_datum(rng) for _ in range(12)])
    taken = 0
    for step in range(150):
        example = wire([[rng.choice("abc"), wire_datum(rng)]])
        way = rng.random()
        if way < 0.1:  # a change the writer has not published yet: at once declines
            model.train_wire(example)
            assert model.train_at_once(wire([["a", [[], [], []]]])) is None
            model.snapshot()
        elif way < 0.25:
            ordinary(model, example)
        else:
            learnt = model.train_at_once(example)
            if learnt is None:
                ordinary(model, example)
            else:
                assert learnt == 1
                taken += 1
        ordinary(reference, example)
        if step % 50 == 49:
            mix_alone(model)
            mix_alone(reference)
        published, expected = model.snapshot(), reference.snapshot()
        assert same(published.get_status(), expected.get_status())  # never a stale one
        if step % 10 == 0:
            assert same(published.classify_wire(queries), expected.classify_wire(queries))
    assert taken > 40
    assert same(
        model.snapshot().classify_wire(queries), reference.snapshot().classify_wire(queries)
    )
    assert same(model.pack(), reference.pack())  # the writer's copy, caught up
    last = wire([["b", wire_datum(rng)]])
    ordinary(model, last)  # and the other copy, caught up in turn
    ordinary(reference, last)
    assert same(model.pack(), reference.pack())
    assert same(model.get_labels(), reference.get_labels())


def test_what_the_kernel_does_not_take_is_declined_having_changed_nothing() -> None:
    rng = random.Random("declined")
    model, _ = warmed("AROW", rng)
    known: tuple[list[Any], ...] = [[b"text", b"apple"]], [[b"n1", 1.5]], []
    ordinary(model, wire([["a", list(known)]]))  # its words known, and in the caches
    assert model.train_at_once(wire([["a", list(known)]])) == 1
    before = model.pack(), model.snapshot().get_status()

    def unchanged() -> bool:
        return same((model.pack(), model.snapshot().get_status()), before)

    assert model.train_at_once(wire([["new label", list(known)]])) is None
    assert model.train_at_once(wire([["a", [[[b"text", b"unheard"]], [], []]]])) is None
    assert model.train_at_once(wire([["a", list(known)], ["b", list(known)]])) is None
    assert model.train_at_once(wire([["a", "not a datum"]])) is None
    assert model.train_at_once(wire([[b"\xff", list(known)]])) is None
    assert model.train_at_once(wire(["a"])) is None
    assert unchanged()
    readers = model.snapshot()._readers
    readers.slots[threading.get_ident()] = readers.current  # a reader on the copy
    assert model.train_at_once(wire([["a", list(known)]])) is None
    assert unchanged()
    readers.slots.clear()
    with python_only():
        assert model.train_at_once(wire([["a", list(known)]])) is None
    assert unchanged()
    assert model.train_at_once(wire([["a", list(known)]])) == 1
    assert not unchanged()
    fresh = ClassifierModel(config_of("AROW"))  # nothing published yet
    assert fresh.train_at_once(wire([["a", list(known)]])) is None


def test_the_garbage_collector_is_left_as_it_was() -> None:
    rng = random.Random("gc")
    model, _ = warmed("PA1", rng)
    known = wire([["a", [[[b"text", b"apple"]], [], []]]])
    assert gc.isenabled()
    assert model.train_at_once(known) == 1
    assert gc.isenabled()
    gc.disable()
    try:
        assert model.train_at_once(known) == 1
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_thread_reading_all_along_changes_nothing_of_the_outcome() -> None:
    """A reader thread registers on the copy it reads: while it is there the kernel
    declines, and the example goes the ordinary way; either way the end is the same."""
    rng = random.Random("reader thread")
    model, reference = warmed("CW", rng)
    examples = [wire([[rng.choice("abc"), wire_datum(rng)]]) for _ in range(600)]
    query = wire([wire_datum(rng) for _ in range(3)])
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = [0]

    def whole(replica: Any) -> tuple[int, int]:
        return replica.trained, sum(replica.counts.values())

    def read() -> None:
        try:
            while not stop.is_set():
                snapshot = published[0]
                scores = snapshot.classify_wire(query)
                assert isinstance(scores, list) and len(scores) == len(query)
                snapshot.get_status()
                trained, counted = snapshot._read(whole)  # one example whole, or none of it
                assert trained == counted, (trained, counted)
                reads[0] += 1
        except BaseException as error:  # reported below
            errors.append(error)

    published = [model.snapshot()]
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for example in examples:
            if model.train_at_once(example) is None:
                ordinary(model, example)
                published[0] = model.snapshot()
            ordinary(reference, example)
    finally:
        stop.set()
        reader.join(10)
    assert not errors
    assert reads[0] > 0
    assert same(model.snapshot().classify_wire(query), reference.snapshot().classify_wire(query))
    assert same(model.pack(), reference.pack())


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("method", METHODS)
def test_at_once_between_every_other_writers_call_ends_the_same(method: str, seed: int) -> None:
    """At-once trains interleaved with the writer's other calls: ordinary trains, a mix
    round whose ``get_diff`` comes before at-once trains and ``put_diff`` after them,
    ``set_label``, ``delete_label``, ``unpack`` and ``clear``. After every step the
    snapshot's status and labels, and now and then both copies, equal a model that took
    every call the ordinary way; errors are the same."""
    rng = random.Random(f"{method} {seed}")
    model, reference = warmed(method, rng)
    pending: tuple[Any, Any, Any, Any] | None = None
    taken = 0

    def outcome(call: Any, *args: Any) -> object:
        try:
            return call(*args)
        except Exception as error:  # compared below
            return repr(error)

    def at_once_or_ordinary(example: object) -> object:
        learnt = model.train_at_once(example)
        return model.train_wire(example) if learnt is None else ("at once", learnt)

    for step in range(300):
        roll = rng.random()
        if roll < 0.6:
            example = wire([[rng.choice("abc"), wire_datum(rng)]])
            ours = outcome(at_once_or_ordinary, example)
            if isinstance(ours, tuple):
                ours = ours[1]
                taken += 1
            assert ours == outcome(reference.train_wire, example)
        elif roll < 0.7:
            example = wire([[rng.choice("abcd"), wire_datum(rng)]])
            assert outcome(model.train_wire, example) == outcome(reference.train_wire, example)
        elif roll < 0.76 and pending is None:
            ours, theirs = model.snapshot(), reference.snapshot()
            pending = (ours, ours.get_diff(), theirs, theirs.get_diff())
            assert same(pending[1], pending[3])
        elif roll < 0.82 and pending is not None:
            ours, diff, theirs, their_diff = pending
            pending = None
            assert model.put_diff(diff, ours) == reference.put_diff(their_diff, theirs)
        elif roll < 0.86:
            label = rng.choice("abcd")
            assert model.set_label(label) == reference.set_label(label)
        elif roll < 0.89:
            label = rng.choice("abcd")
            assert model.delete_label(label) == reference.delete_label(label)
        elif roll < 0.9:
            payload = reference.pack()
            model.unpack(payload)
            reference.unpack(payload)
        elif roll < 0.905:
            model.clear()
            reference.clear()
        ours, theirs = model.snapshot(), reference.snapshot()
        assert same(ours.get_status(), theirs.get_status()), step
        assert same(ours.get_status(True), theirs.get_status(True)), step
        assert same(ours.get_labels(), theirs.get_labels()), step
        if step % 25 == 0:
            assert same(model.pack(), reference.pack()), step
            assert same(ours.pack(), theirs.pack()), step
    assert taken > 30
    assert same(model.pack(), reference.pack())
    assert same(model.snapshot().pack(), reference.snapshot().pack())
