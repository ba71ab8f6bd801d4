"""``classify_frames`` (the kernel's ``classifier_frames`` without trains): the whole
``classify`` requests a read starts with, answered from their bytes, give the bytes the
usual path gives (``classify_wire``'s answer, packed by the connection's packer), in every
encoding MessagePack allows for a request; the first request they do not take, and all
after it, are left to the usual path (None when that is the first).
"""

from __future__ import annotations

import math
import random
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engines.classifier.model import ClassifierModel, ClassifierSnapshot
from engines.common import kernels
from runtime import MSGID_LIMIT
from tests.engines.classifier.test_kernels import trained, wire_datum
from tests.engines.kernel_modes import python_only, with_and_without

CLUSTER = b"cluster"
MAX_COUNT = 256
MAX_REPLY = 64 * 1024


class Wide:
    """A value packed in an encoding wider than the shortest (the value as such, with the
    width named: ``int8`` ... ``uint64``, ``str8`` ... ``bin32``, ``array16``/``array32``,
    ``float32``)."""

    def __init__(self, value: Any, kind: str) -> None:
        self.value = value
        self.kind = kind


def pack_any(value: Any) -> bytes:
    """``value`` packed, :class:`Wide` values in the encoding they name."""
    if isinstance(value, Wide):
        return _pack_wide(value)
    if isinstance(value, list):
        head: bytes = msgpack.packb([None] * len(value))
        return head[: len(head) - len(value)] + b"".join(pack_any(item) for item in value)
    packed: bytes = msgpack.packb(value, use_bin_type=False)
    return packed


_INTS = {
    "uint8": (0xCC, ">B"), "uint16": (0xCD, ">H"), "uint32": (0xCE, ">I"),
    "uint64": (0xCF, ">Q"), "int8": (0xD0, ">b"), "int16": (0xD1, ">h"),
    "int32": (0xD2, ">i"), "int64": (0xD3, ">q"),
}  # fmt: skip
_RAWS = {
    "str8": (0xD9, ">B"), "str16": (0xDA, ">H"), "str32": (0xDB, ">I"),
    "bin8": (0xC4, ">B"), "bin16": (0xC5, ">H"), "bin32": (0xC6, ">I"),
}  # fmt: skip


def _pack_wide(wide: Wide) -> bytes:
    value, kind = wide.value, wide.kind
    if kind in _INTS:
        head, layout = _INTS[kind]
        return bytes([head]) + struct.pack(layout, value)
    if kind in _RAWS:
        head, layout = _RAWS[kind]
        raw: bytes = value
        return bytes([head]) + struct.pack(layout, len(raw)) + raw
    if kind == "float32":
        return b"\xca" + struct.pack(">f", value)
    if kind in ("array16", "array32"):
        head, layout = (0xDC, ">H") if kind == "array16" else (0xDD, ">I")
        return bytes([head]) + struct.pack(layout, len(value)) + b"".join(map(pack_any, value))
    raise AssertionError(kind)


def _int_kinds(value: int) -> list[str]:
    kinds = []
    for kind, (_, layout) in _INTS.items():
        try:
            struct.pack(layout, value)
        except struct.error:
            continue
        kinds.append(kind)
    return kinds


def widen(value: Any, rng: random.Random) -> Any:
    """``value`` with some of its parts given wider encodings, at random."""
    if isinstance(value, list):
        items = [widen(item, rng) for item in value]
        return Wide(items, rng.choice(["array16", "array32"])) if rng.random() < 0.2 else items
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        kinds = _int_kinds(value)
        return Wide(value, rng.choice(kinds)) if kinds and rng.random() < 0.4 else value
    if isinstance(value, bytes):
        return Wide(value, rng.choice(list(_RAWS))) if rng.random() < 0.4 else value
    if isinstance(value, float):
        single = struct.unpack(">f", struct.pack(">f", value))[0] if math.isfinite(value) else 0
        return Wide(value, "float32") if single == value and rng.random() < 0.5 else value
    return value


def request(msgid: int, data: list[Any], method: bytes = b"classify") -> list[Any]:
    return [0, msgid, method, [CLUSTER, data]]


def usual(snapshot: ClassifierSnapshot, frame: bytes) -> bytes:
    """What the usual path answers for every request in ``frame``: classify_wire's answer
    (with the kernels and without: the same), packed as the connection packs it."""
    packer = msgpack.Packer(use_bin_type=False)
    replies = []
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    unpacker.feed(frame)
    for _, msgid, _, params in unpacker:

        def classify(params: list[Any] = params) -> object:
            return snapshot.classify_wire(params[1])

        result, python = with_and_without(classify)
        assert packer.pack(result) == packer.pack(python)
        replies.append(packer.pack([1, msgid, None, result]))
    return b"".join(replies)


def frames(snapshot: ClassifierSnapshot, frame: bytes, **limits: int) -> Any:
    """``(replies, count, consumed)``, or None (a classify never fails part way)."""
    answered = snapshot.classify_frames(
        frame, CLUSTER, limits.get("max_count", MAX_COUNT), limits.get("max_reply", MAX_REPLY)
    )
    if answered is None:
        return None
    assert answered[3] is None
    return answered[:3]


@pytest.fixture(scope="module")
def arow() -> tuple[ClassifierModel, ClassifierSnapshot, random.Random]:
    new, _, rng = trained("AROW")
    new.set_label("d")  # known, without weights
    return new, new.snapshot(), rng


def test_the_kernel_is_there() -> None:
    assert kernels.compiled is not None
    assert hasattr(kernels.compiled, "classifier_frames")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), count=st.integers(1, 5))
def test_replies_are_the_usual_paths_in_any_encoding(
    arow: tuple[ClassifierModel, ClassifierSnapshot, random.Random], seed: int, count: int
) -> None:
    _, snapshot, _ = arow
    rng = random.Random(seed)
    messages = []
    for _ in range(count):
        msgid = rng.choice([0, 1, 127, 128, 255, 256, 65535, 65536, MSGID_LIMIT - 1])
        data = [wire_datum(rng) for _ in range(rng.choice([0, 1, 1, 2, 17]))]
        snapshot.classify_wire(msgpack.unpackb(msgpack.packb(data), raw=True))  # (caches)
        messages.append(pack_any(widen(request(msgid, data), rng)))
    frame = b"".join(messages)
    answered = frames(snapshot, frame)
    assert answered is not None
    replies, taken, consumed = answered
    assert (taken, consumed) == (count, len(frame))
    assert replies == usual(snapshot, frame)


@pytest.mark.parametrize("method", ["perceptron", "PA1", "CW", "NHERD"])
def test_other_methods_and_a_batch(method: str) -> None:
    new, _, rng = trained(method)
    snapshot = new.snapshot()
    data = [wire_datum(rng) for _ in range(100)]
    snapshot.classify_wire(msgpack.unpackb(msgpack.packb(data), raw=True))
    frame = pack_any(request(7, data))
    answered = frames(snapshot, frame)
    assert answered is not None and answered == (usual(snapshot, frame), 1, len(frame))


def test_labels_long_and_many_are_packed_as_the_packer_packs() -> None:
    new, _, rng = trained("PA")
    labels = ["x" * 31, "y" * 32, "z" * 300, "ラベル", "é" * 20] + [f"l{i}" for i in range(14)]
    for label in labels:
        new.set_label(label)
    snapshot = new.snapshot()
    data = [wire_datum(rng) for _ in range(3)]
    snapshot.classify_wire(msgpack.unpackb(msgpack.packb(data), raw=True))
    frame = pack_any(request(70000, data))
    answered = frames(snapshot, frame)
    assert answered is not None
    assert answered[0] == usual(snapshot, frame)
    reply = msgpack.unpackb(answered[0], raw=False)
    assert len(reply[3][0]) == 3 + len(labels)  # a, b, c and the labels set


def _two(snapshot: ClassifierSnapshot, rng: random.Random) -> tuple[bytes, list[Any]]:
    data = [wire_datum(rng)]
    snapshot.classify_wire(msgpack.unpackb(msgpack.packb(data), raw=True))
    return pack_any(request(1, data)) + pack_any(request(2, data)), data


def test_part_of_a_request_is_left_to_the_usual_path(
    arow: tuple[ClassifierModel, ClassifierSnapshot, random.Random],
) -> None:
    _, snapshot, rng = arow
    frame, _ = _two(snapshot, rng)
    first = len(frame) // 2  # the two requests are alike but for their msgid
    whole = frames(snapshot, frame)
    assert whole is not None and whole[1:] == (2, len(frame))
    one = frames(snapshot, frame[:first])
    assert one is not None and one[1:] == (1, first)
    for end in range(len(frame)):
        answered = frames(snapshot, frame[:end])
        if end < first:
            assert answered is None, end
        else:
            assert answered == one, end
    assert frames(snapshot, frame + b"\x90") == whole


def _call(data: Any) -> list[Any]:
    return [0, 1, b"classify", [CLUSTER, data]]


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("another method", [0, 1, b"classify2", [CLUSTER, []]]),
        ("another cluster", [0, 1, b"classify", [b"other", []]]),
        ("a notification", [2, b"classify", [CLUSTER, []]]),
        ("a response", [1, 1, None, []]),
        ("a msgid past the limit", [0, MSGID_LIMIT, b"classify", [CLUSTER, []]]),
        ("a negative msgid", [0, -1, b"classify", [CLUSTER, []]]),
        ("a float msgid", [0, 1.0, b"classify", [CLUSTER, []]]),
        ("three params", [0, 1, b"classify", [CLUSTER, [], []]]),
        ("a map for the data", _call({})),
        ("a datum of two parts", _call([[[], []]])),
        ("a string value that is a number", _call([[[[b"t", 1]], [], []]])),
        ("a number that is nil", _call([[[], [[b"n1", None]], []]])),
        ("a number that is not finite", _call([[[], [[b"n1", math.inf]], []]])),
        ("a NaN", _call([[[], [[b"n1", math.nan]], []]])),
        ("a key never seen", _call([[[[b"unseen", b"x"]], [], []]])),
        ("a binary pair of one", _call([[[], [], [[b"b"]]]])),
        ("a pair of three", _call([[[[b"t", b"a", b"b"]], [], []]])),
        ("a boolean", _call([[[], [[b"n1", True]], []]])),
    ],
)
def test_what_it_does_not_take_is_left_to_the_usual_path(
    arow: tuple[ClassifierModel, ClassifierSnapshot, random.Random], what: str, message: Any
) -> None:
    _, snapshot, rng = arow
    good, _ = _two(snapshot, rng)
    bad = msgpack.packb(message, use_bin_type=False)
    assert frames(snapshot, bad) is None, what
    before = frames(snapshot, good)
    assert before is not None
    assert frames(snapshot, good + bad + good) == before, what


def test_binary_pairs_are_read_past_and_nothing_more(
    arow: tuple[ClassifierModel, ClassifierSnapshot, random.Random],
) -> None:
    _, snapshot, rng = arow
    datum = wire_datum(rng)
    datum[2] = [[b"image", b"\x00\xff" * 40]]
    snapshot.classify_wire([datum])
    frame = pack_any(request(3, [datum]))
    answered = frames(snapshot, frame)
    assert answered is not None and answered[0] == usual(snapshot, frame)


def test_more_requests_or_longer_replies_than_allowed_are_left_to_the_usual_path(
    arow: tuple[ClassifierModel, ClassifierSnapshot, random.Random],
) -> None:
    _, snapshot, rng = arow
    frame, _ = _two(snapshot, rng)
    first = len(frame) // 2
    assert frames(snapshot, frame, max_count=2)[1:] == (2, len(frame))
    assert frames(snapshot, frame, max_count=1)[1:] == (1, first)
    assert frames(snapshot, frame, max_count=0) is None
    replies, _, _ = frames(snapshot, frame)
    assert frames(snapshot, frame, max_reply=len(replies))[1:] == (2, len(frame))
    assert frames(snapshot, frame, max_reply=len(replies) - 1)[1:] == (1, first)
    assert frames(snapshot, frame, max_reply=len(replies) // 2 - 1) is None
    assert frames(snapshot, b"") is None
    empty = pack_any(request(1, []))  # its reply, [1, 1, nil, []], is 5 bytes
    assert frames(snapshot, empty, max_reply=5) == (b"\x94\x01\x01\xc0\x90", 1, len(empty))
    for room in range(5):
        assert frames(snapshot, empty, max_reply=room) is None, room


def test_a_retired_copy_is_left_to_the_usual_path() -> None:
    new, _, rng = trained("AROW")
    snapshot = new.snapshot()
    frame, _ = _two(snapshot, rng)
    assert frames(snapshot, frame) is not None
    snapshot._replica.retired = True
    try:
        assert frames(snapshot, frame) is None
    finally:
        snapshot._replica.retired = False


def test_without_the_kernels_nothing_is_answered_this_way(
    arow: tuple[ClassifierModel, ClassifierSnapshot, random.Random],
) -> None:
    _, snapshot, rng = arow
    frame, _ = _two(snapshot, rng)
    with python_only():
        assert frames(snapshot, frame) is None


def test_the_kernel_checks_its_arguments() -> None:
    assert kernels.compiled is not None
    with pytest.raises(TypeError):
        kernels.compiled.classifier_frames(b"")
    args: tuple[Any, ...] = (b"", CLUSTER, MSGID_LIMIT, 1, 1, {}, {}, None, None)
    assert kernels.compiled.classifier_frames("text", *args[1:]) is None
    assert kernels.compiled.classifier_frames(*args[:5], [], {}, None, None) is None
    assert kernels.compiled.classifier_frames(*args[:8], (1, 2)) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), flips=st.integers(1, 6))
def test_damaged_reads_are_answered_only_as_far_as_they_are_whole_and_plain(
    arow: tuple[ClassifierModel, ClassifierSnapshot, random.Random], seed: int, flips: int
) -> None:
    """Bytes changed, cut or added at random in a read of good requests: the kernel never
    fails, and what it answers is the usual path's answer to the requests it took."""
    _, snapshot, _ = arow
    rng = random.Random(seed)
    data = [wire_datum(rng) for _ in range(rng.choice([1, 2, 3]))]
    snapshot.classify_wire(msgpack.unpackb(msgpack.packb(data), raw=True))  # (caches)
    frame = bytearray(b"".join(pack_any(widen(request(i, data), rng)) for i in range(3)))
    for _ in range(flips):
        at = rng.randrange(len(frame))
        action = rng.random()
        if action < 0.6:
            frame[at] = rng.randrange(256)
        elif action < 0.8:
            del frame[at:]
        else:
            frame[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        if not frame:
            frame = bytearray(b"\x90")
    answered = frames(snapshot, bytes(frame))
    if answered is None:
        return
    replies, count, consumed = answered
    assert 0 < consumed <= len(frame) and count >= 1
    taken = bytes(frame[:consumed])
    unpacker = msgpack.Unpacker(raw=True)
    unpacker.feed(taken)
    assert len(list(unpacker)) == count and unpacker.tell() == consumed
    assert replies == usual(snapshot, taken)
