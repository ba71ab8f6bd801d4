"""``ClassifierModel.train_frames``: the ``train`` calls (one example each) and ``classify``
calls a read starts with, answered from their bytes, trains learnt at once. A model that
reads its requests this way, the usual path reading what it leaves, answers and ends as a
model that reads every request the usual way (``train_at_once``, else the writer's way;
``classify_wire``), for every method, in any encoding, with calls it declines among them
(a new label, two examples, a reader on a copy, unpublished changes).
"""

from __future__ import annotations

import random
import threading
from typing import Any

import msgpack
import pytest

from engines.classifier.model import ClassifierModel
from engines.common import kernels
from tests.engines.classifier.test_classify_frames import CLUSTER, pack_any, widen
from tests.engines.classifier.test_equivalence import same
from tests.engines.classifier.test_kernels import METHODS, wire, wire_datum
from tests.engines.classifier.test_train_at_once import config_of, ordinary, warmed
from tests.engines.kernel_modes import python_only

pytestmark = pytest.mark.skipif(kernels.compiled is None, reason="the kernel is not built")

PACKER = msgpack.Packer(use_bin_type=False)


def usual(model: ClassifierModel, message: list[Any]) -> bytes:
    """The reply the usual path makes to one request, applied to ``model`` as it would."""
    _, msgid, method, params = message
    data = params[1]
    result: object
    if method == b"train":
        result = model.train_at_once(data)
        if result is None:
            result = model.train_wire(data)
            model.snapshot()
    else:
        result = model.snapshot().classify_wire(data)
    reply: bytes = PACKER.pack([1, msgid, None, result])
    return reply


def through_frames(model: ClassifierModel, frame: bytes) -> tuple[bytes, int]:
    """What a server answers ``frame`` with: the requests ``train_frames`` takes, then the
    rest the usual way; and how many it took."""
    outcome = model.train_frames(frame, CLUSTER, model.snapshot(), 256, 64 * 1024)
    replies, count, consumed = b"", 0, 0
    if outcome is not None:
        replies, count, consumed, failed = outcome[0]
        assert failed is None and outcome[2] is None
    unpacker = msgpack.Unpacker(raw=True)
    unpacker.feed(frame[consumed:])
    return replies + b"".join(usual(model, message) for message in unpacker), count


def request(rng: random.Random, msgid: int, pool: list[Any]) -> list[Any]:
    if rng.random() < 0.6:
        label = rng.choice([b"a", b"b", b"c", b"c", b"new label"] if rng.random() < 0.1 else "abc")
        examples = [[label, rng.choice(pool)]]
        if rng.random() < 0.05:
            examples.append([b"a", rng.choice(pool)])
        return [0, msgid, b"train", [CLUSTER, wire(examples)]]
    return [0, msgid, b"classify", [CLUSTER, wire(rng.sample(pool, rng.choice([1, 1, 3])))]]


@pytest.mark.parametrize("method", METHODS)
def test_reads_answered_from_their_bytes_end_as_the_usual_path(method: str) -> None:
    rng = random.Random(f"frames {method}")
    model, reference = warmed(method, rng)
    pool = [wire_datum(rng) for _ in range(16)]
    taken = 0
    msgid = 0
    for step in range(120):
        messages = []
        for _ in range(rng.choice([1, 1, 2, 5])):
            messages.append(request(rng, msgid, pool))
            msgid += 1
        frame = b"".join(pack_any(widen(message, rng)) for message in messages)
        if step % 17 == 16:  # a change the writer has not published yet: nothing taken
            example = wire([["a", rng.choice(pool)]])
            model.train_wire(example)
            reference.train_wire(example)
            assert model.train_frames(frame, CLUSTER, None, 256, 65536) is None
            model.snapshot()
            reference.snapshot()
        replies, count = through_frames(model, frame)
        taken += count
        expected = b"".join(usual(reference, message) for message in messages)
        assert replies == expected, step
    assert taken > 150
    queries = wire(pool)
    assert same(
        model.snapshot().classify_wire(queries), reference.snapshot().classify_wire(queries)
    )
    assert same(model.snapshot().get_status(), reference.snapshot().get_status())
    assert same(model.pack(), reference.pack())
    last = wire([["b", pool[0]]])
    ordinary(model, last)  # the other copy, caught up in turn
    ordinary(reference, last)
    assert same(model.pack(), reference.pack())
    assert same(model.get_labels(), reference.get_labels())


def _one_train(pool: list[Any], label: bytes = b"a", msgid: int = 1) -> bytes:
    packed: bytes = msgpack.packb(
        [0, msgid, b"train", [CLUSTER, wire([[label, pool[0]]])]], use_bin_type=False
    )
    return packed


def test_what_it_does_not_take_changes_nothing() -> None:
    rng = random.Random("frames declined")
    model, _ = warmed("AROW", rng)
    pool = [wire_datum(rng)]
    through_frames(model, _one_train(pool))  # (the caches)
    before = model.pack(), model.snapshot().get_status()

    def unchanged() -> bool:
        return same((model.pack(), model.snapshot().get_status()), before)

    for frame in (
        _one_train(pool, b"new label"),
        _one_train(pool, b""),
        _one_train(pool, b"\xff"),
        _one_train(pool)[:-1],
        msgpack.packb([0, 1, b"train", [CLUSTER, wire([["a", pool[0]], ["b", pool[0]]])]]),
        msgpack.packb([0, 1, b"train", [b"other", wire([["a", pool[0]]])]]),
    ):
        assert model.train_frames(frame, CLUSTER, model.snapshot(), 256, 65536) is None
        assert unchanged()
    readers = model.snapshot()._readers
    readers.slots[threading.get_ident()] = readers.current  # a reader on the copy
    assert model.train_frames(_one_train(pool), CLUSTER, None, 256, 65536) is None
    assert unchanged()
    readers.slots.clear()
    assert model.train_frames(_one_train(pool), CLUSTER, None, 256, 12) is None  # no room
    assert model.train_frames(_one_train(pool), CLUSTER, None, 0, 65536) is None
    with python_only():
        assert model.train_frames(_one_train(pool), CLUSTER, None, 256, 65536) is None
    assert unchanged()
    outcome = model.train_frames(_one_train(pool), CLUSTER, None, 256, 65536)
    assert outcome is not None
    assert outcome == ((PACKER.pack([1, 1, None, 1]), 1, len(_one_train(pool)), None), 1, None)
    assert not unchanged()
    fresh = ClassifierModel(config_of("AROW"))  # nothing published yet
    assert fresh.train_frames(_one_train(pool), CLUSTER, None, 256, 65536) is None


def test_a_train_it_stops_at_leaves_the_rest_to_the_usual_path() -> None:
    rng = random.Random("frames stop")
    model, _ = warmed("PA1", rng)
    pool = [wire_datum(rng)]
    through_frames(model, _one_train(pool))  # (the caches)
    frame = _one_train(pool, b"a", 1) + _one_train(pool, b"new label", 2) + _one_train(pool)
    outcome = model.train_frames(frame, CLUSTER, None, 256, 65536)
    assert outcome is not None
    replies, count, consumed, _ = outcome[0]
    assert (count, consumed, outcome[1]) == (1, len(_one_train(pool)), 1)
    assert replies == PACKER.pack([1, 1, None, 1])


def test_before_a_name_is_accepted_a_train_from_any_name_in_utf8_is_taken() -> None:
    rng = random.Random("frames names")
    model, _ = warmed("CW", rng)
    pool = [wire_datum(rng)]
    through_frames(model, _one_train(pool))  # (the caches)

    def named(name: bytes) -> bytes:
        packed: bytes = msgpack.packb(
            [0, 4, b"train", [name, wire([["a", pool[0]]])]], use_bin_type=False
        )
        return packed

    outcome = model.train_frames(named("ラベル".encode()), None, None, 256, 65536)
    assert outcome is not None and outcome[1] == 1
    assert model.train_frames(named(b"\xff\xfe"), None, None, 256, 65536) is None
    classify = msgpack.packb([0, 5, b"classify", [CLUSTER, wire(pool)]], use_bin_type=False)
    assert model.train_frames(classify, None, None, 256, 65536) is None  # no classify then


def test_damaged_reads_learn_only_the_whole_plain_trains_they_start_with() -> None:
    """Bytes changed, cut or added at random in reads of good trains: what the kernel takes
    is learnt and answered as the usual path learns and answers those requests."""
    rng = random.Random("frames damaged")
    model, reference = warmed("AROW", rng)
    pool = [wire_datum(rng) for _ in range(4)]
    for datum in pool:  # (the caches, on both)
        for m in (model, reference):
            ordinary(m, wire([["a", datum]]))
    answered = 0
    for step in range(400):
        messages = [
            [0, step * 4 + i, b"train", [CLUSTER, wire([[rng.choice("abc"), rng.choice(pool)]])]]
            for i in range(3)
        ]
        frame = bytearray(b"".join(pack_any(widen(message, rng)) for message in messages))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(frame))
            if rng.random() < 0.7:
                frame[at] = rng.randrange(256)
            else:
                del frame[at:]
            if not frame:
                frame = bytearray(b"\x90")
        outcome = model.train_frames(bytes(frame), CLUSTER, None, 256, 65536)
        if outcome is None:
            continue
        replies, count, consumed, _ = outcome[0]
        unpacker = msgpack.Unpacker(raw=True)
        unpacker.feed(bytes(frame[:consumed]))
        taken = list(unpacker)
        assert len(taken) == count == outcome[1]
        assert replies == b"".join(usual(reference, message) for message in taken)
        answered += count
    assert answered > 100
    assert same(model.pack(), reference.pack())
    assert same(model.snapshot().get_status(), reference.snapshot().get_status())


def test_a_train_that_fails_part_way_is_taken_and_not_run_again() -> None:
    """CW raises once it has begun (a square root of a negative number, here forced by
    negative variances): the example stays partly learnt as the usual path leaves it, and
    the request is taken and named as failed, not left to be run a second time."""
    rng = random.Random("frames broken")
    model, reference = warmed("CW", rng)
    datum = wire_datum(rng)
    for m in (model, reference):
        ordinary(m, wire([["a", datum]]))
        assert m._other is not None
        variances = m._other.arrays.V
        for i in range(len(variances)):
            variances[i] = -1e6
    example = wire([["a", datum]])
    frame = _one_train([datum], b"a", 7) + _one_train([datum], b"a", 8)
    outcome = model.train_frames(frame, CLUSTER, None, 256, 65536)
    assert outcome is not None
    (replies, count, consumed, failed), trained, error = outcome
    assert (replies, count, consumed, trained) == (b"", 0, len(_one_train([datum])), 0)
    assert failed is not None and failed[:2] == (7, "train") and failed[2] is error
    with pytest.raises(ValueError) as usual_error:
        reference.train_at_once(example)
    assert type(error) is ValueError and str(error) == str(usual_error.value)
    assert model._other is not None and reference._other is not None
    assert same(model._other.counts, reference._other.counts)  # learnt in part once, alike
