"""Wire descriptors: both directions, range checks, paths in errors, random round trips."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from runtime.errors import TypeMismatch, WireTypeError
from runtime.wire import types as t
from runtime.wire.datum import Datum


class Color(enum.IntEnum):
    RED = 0
    BLUE = 5


@dataclass
class Point:
    label: str
    x: float
    tags: list[str]


POINT = t.MessageType(
    Point, [("label", t.String()), ("x", t.Float()), ("tags", t.List(t.String()))]
)


def wire(value: object) -> object:
    """What a server sees after a Jubatus client packed ``value`` (old spec, raw strings)."""
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=False), raw=True, strict_map_key=False)


def test_strings_arrive_as_raw_and_decode_by_declared_type() -> None:
    assert t.String().decode(wire("h\u00e9llo")) == "h\u00e9llo"
    assert t.Raw().decode(wire(b"\x00\xff")) == b"\x00\xff"
    with pytest.raises(WireTypeError, match="UTF-8"):
        t.String().decode(b"\xff\xfe")
    assert isinstance(WireTypeError("x"), TypeMismatch)


@pytest.mark.parametrize(
    ("signed", "size", "good", "bad"),
    [
        (True, 1, [-128, 127], [-129, 128]),
        (False, 1, [0, 255], [-1, 256]),
        (True, 4, [-(2**31), 2**31 - 1], [2**31]),
        (False, 8, [0, 2**64 - 1], [-1, 2**64]),
    ],
)
def test_int_ranges(signed: bool, size: int, good: list[int], bad: list[int]) -> None:
    descriptor = t.Int(signed, size)
    for value in good:
        assert descriptor.decode(value) == value
    for value in bad:
        with pytest.raises(WireTypeError, match="out of range"):
            descriptor.decode(value)
    with pytest.raises(WireTypeError):
        descriptor.decode(True)
    with pytest.raises(WireTypeError):
        descriptor.decode(1.0)


def test_float_accepts_ints_and_always_encodes_floats() -> None:
    assert t.Float().decode(3) == 3.0
    encoded = t.Float().encode(2)
    assert type(encoded) is float
    assert msgpack.packb(encoded)[:1] == b"\xcb"
    with pytest.raises(WireTypeError):
        t.Float().decode(b"1.0")


def test_bool_is_strict() -> None:
    assert t.Bool().decode(True) is True
    with pytest.raises(WireTypeError):
        t.Bool().decode(1)


def test_errors_name_the_path() -> None:
    descriptor = t.List(POINT)
    with pytest.raises(WireTypeError, match=r"\[1\]\.tags\[0\]: expected string, got int"):
        descriptor.decode([[b"a", 1.0, []], [b"b", 2.0, [7]]])
    with pytest.raises(WireTypeError, match="Point has 3 fields, got an array of 2"):
        POINT.decode([b"a", 1.0])


def test_message_encodes_instances_and_lists() -> None:
    point = Point("p", 1.5, ["a"])
    assert POINT.encode(point) == ["p", 1.5, ["a"]]
    assert POINT.encode(["p", 1.5, ["a"]]) == ["p", 1.5, ["a"]]  # type: ignore[arg-type]
    assert POINT.decode(wire(POINT.encode(point))) == point


def test_enum_nullable_tuple_map() -> None:
    assert t.EnumType(Color).decode(5) is Color.BLUE
    with pytest.raises(WireTypeError, match="not a value of Color"):
        t.EnumType(Color).decode(3)
    assert t.EnumType(Color).encode(Color.BLUE) == 5
    assert t.Nullable(t.String()).decode(None) is None
    assert t.Tuple(t.Int(), t.String()).decode([1, b"x"]) == (1, "x")
    with pytest.raises(WireTypeError, match="expected 2 elements"):
        t.Tuple(t.Int(), t.String()).decode([1])
    assert t.Map(t.Int(), t.String()).decode(wire({1: "a"})) == {1: "a"}


def test_datum_keeps_binary_values_as_bytes() -> None:
    datum = Datum({"text": "hello", "len": 5, "ratio": 0.5}).add_binary("img", b"\x00\x01\xff")
    encoded = t.DatumType().encode(datum)
    assert encoded == [
        [["text", "hello"]],
        [["len", 5.0], ["ratio", 0.5]],
        [["img", b"\x00\x01\xff"]],
    ]
    decoded = t.DatumType().decode(wire(encoded))
    assert decoded == datum
    assert decoded.binary_values == [("img", b"\x00\x01\xff")]
    with pytest.raises(WireTypeError, match="datum"):
        t.DatumType().decode([[], []])


scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
)


@st.composite
def typed_values(draw: st.DrawFn, depth: int = 0) -> tuple[t.Descriptor[Any], Any]:
    kinds = ["bool", "int", "float", "string", "raw", "datum"]
    if depth < 2:
        kinds += ["list", "map", "tuple", "nullable", "message"]
    kind = draw(st.sampled_from(kinds))
    if kind == "bool":
        return t.Bool(), draw(st.booleans())
    if kind == "int":
        return t.Int(True, 8), draw(st.integers(-(2**63), 2**63 - 1))
    if kind == "float":
        return t.Float(), draw(st.floats(allow_nan=False))
    if kind == "string":
        return t.String(), draw(st.text())
    if kind == "raw":
        return t.Raw(), draw(st.binary())
    if kind == "datum":
        datum = Datum()
        for key, value in draw(st.lists(st.tuples(st.text(), st.text()), max_size=3)):
            datum.add_string(key, value)
        for key, number in draw(
            st.lists(st.tuples(st.text(), st.floats(allow_nan=False)), max_size=3)
        ):
            datum.add_number(key, number)
        for key, blob in draw(st.lists(st.tuples(st.text(), st.binary()), max_size=3)):
            datum.add_binary(key, blob)
        return t.DatumType(), datum
    inner, value = draw(typed_values(depth + 1))
    if kind == "list":
        return t.List(inner), [value, value]
    if kind == "map":
        return t.Map(t.String(), inner), {draw(st.text()): value}
    if kind == "tuple":
        return t.Tuple(inner, t.String()), (value, "x")
    if kind == "nullable":
        return t.Nullable(inner), draw(st.sampled_from([None, value]))
    message = t.MessageType(
        Point, [("label", t.String()), ("x", inner), ("tags", t.List(t.String()))]
    )
    return message, Point("m", value, ["a"])


@settings(max_examples=200, deadline=None)
@given(typed_values())
def test_random_values_round_trip_through_the_old_spec(
    pair: tuple[t.Descriptor[object], object],
) -> None:
    descriptor, value = pair
    assert descriptor.decode(wire(descriptor.encode(value))) == value


_wire_scalar = st.one_of(
    st.text(max_size=4),
    st.binary(max_size=4),
    st.sampled_from([b"\xff\xfe", True, None]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
)
_wire_pair = st.one_of(
    st.lists(_wire_scalar, min_size=2, max_size=2),
    st.lists(_wire_scalar, max_size=3),
    _wire_scalar,
)


@settings(max_examples=300)
@given(st.lists(st.lists(_wire_pair, max_size=4), min_size=3, max_size=3))
def test_the_fast_datum_decoder_agrees_with_the_careful_one(wire: list[list[object]]) -> None:
    descriptor = t.DatumType()
    try:
        careful: object = descriptor.decode_checked(wire)
    except WireTypeError as error:
        careful = error
    fast = t._fast_datum(wire)
    if fast is not None:
        assert fast == careful
    try:
        decoded: object = descriptor.decode(wire)
    except WireTypeError as error:
        decoded = error
    assert type(decoded) is type(careful)
    if isinstance(careful, Datum):
        assert decoded == careful
