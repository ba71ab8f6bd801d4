"""The ``wire_text_bytes`` kernel counts the text of a wire value as the Python does
(``runtime.server.snapshot.wire_text_bytes``), and a fire-and-forget ``train`` weighs the
same both ways."""

from __future__ import annotations

import random
from typing import Any

from engines.classifier.classifier_serv import _queued_weight
from engines.common import kernels
from runtime.server.snapshot import TEXT_UNIT, wire_text_bytes
from tests.engines.kernel_modes import with_and_without


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(9 if depth < 6 else 5)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
    if kind == 1:
        return "".join(rng.choice("aé€😀") for _ in range(rng.randrange(6)))
    if kind == 2:
        return rng.choice([3, -1.5, True, None, 2**70])
    if kind == 3:
        return bytearray(b"not counted")  # (only exact bytes and str count)
    if kind == 4:
        return b""
    if kind in (5, 6):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    if kind == 7:
        return {_key(rng): _value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return ([_value(rng, depth + 1)],)  # a tuple: not walked


def _key(rng: random.Random) -> Any:
    return rng.choice([b"k%d" % rng.randrange(9), f"ключ{rng.randrange(9)}", rng.randrange(9)])


def test_the_kernel_counts_as_the_python_does() -> None:
    """500 random nested values: bytes, str of 1- to 4-byte characters, numbers, dicts
    (keys counted too), tuples and bytearrays (not counted), nesting 8 deep."""
    assert kernels.compiled is not None
    rng = random.Random("text")
    values = [_value(rng, 0) for _ in range(500)]
    values += [b"abc", "日本", {b"k": b"v"}, [[[[[[[[[[b"deep"]]]]]]]]]], []]
    for value in values:
        assert kernels.compiled.wire_text_bytes(value) == wire_text_bytes(value), value


def test_a_queued_train_weighs_the_same_both_ways() -> None:
    """Its examples, or a unit per KiB of text when that is more."""
    small = [[b"label", [[[b"text", b"a few words"]], [[b"n", 1.0]], []]]] * 3
    large = [[b"label", [[[b"text", b"x" * (5 * TEXT_UNIT)]], [], []]]]
    assert with_and_without(lambda: _queued_weight(small)) == (3, 3)
    assert with_and_without(lambda: _queued_weight(large)) == (5, 5)
    assert with_and_without(lambda: _queued_weight("not a list")) == (1, 1)
