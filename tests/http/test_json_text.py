"""A wire value's JSON text written straight from it (``Shape.text``) is exactly the text
of its JSON value, ``dumps(shape.to_json(wire))``, and fails with the same error: numbers
JSON has no spelling for, text as bytes or str, values that do not fit, nesting, and a
message that contains itself. Every IDL's messages and methods are checked the same way
with drawn values in ``test_typemap.py``."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, strategies as st

from runtime.errors import WireTypeError
from runtime.http import shapes as s
from runtime.http.jsontext import dumps

RESULT = s.MessageShape("estimate_result")
RESULT.bind([("label", "label", s.STRING), ("score", "score", s.DOUBLE)])
NODE = s.MessageShape("node")  # contains itself
NODE.bind([("name", "name", s.STRING), ("children", "children", s.ListShape(NODE))])
WIDE = s.MessageShape("wide")
WIDE.bind([
    ("a", "a", s.INT), ("b", "b", s.NullableShape(s.BOOL)), ("c", "c", s.FLOAT),
    ("d", "d", s.TupleShape(s.ULONG, s.STRING)), ("e", "e", s.MapShape(s.STRING, s.LONG)),
])  # fmt: skip
EMPTY = s.MessageShape("empty")
EMPTY.bind([])
ONE = s.MessageShape("one")
ONE.bind([("only", "only", s.RAW)])

SHAPES = {
    "classify": s.ListShape(s.ListShape(RESULT)),
    "node": NODE,
    "wide": s.ListShape(WIDE),
    "empty": EMPTY,
    "one": ONE,
    "scalars": s.TupleShape(s.BYTE, s.UBYTE, s.SHORT, s.USHORT, s.UINT, s.DOUBLE, s.BOOL),
    "object": s.OBJECT,
    "datum": s.DATUM,
    "nullable list": s.NullableShape(s.ListShape(s.DOUBLE)),
}


def outcome(call: Any) -> tuple[str, str]:
    try:
        return "ok", call()
    except (WireTypeError, OverflowError) as error:
        return type(error).__name__, str(error)


def check(shape: s.Shape, wire: Any) -> None:
    assert outcome(lambda: shape.text()(wire)) == outcome(lambda: dumps(shape.to_json(wire)))


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("classify", [[["a", 0.5], [b"b", -0.0], ["c", math.inf], ["d", -math.inf]]]),
        ("classify", [[["nan", math.nan], ["int", 3], ["big", 1e308], ["tiny", 5e-324]]]),
        ("classify", [[['\u00e9\u4e2d"\\\n\x00\ud800', 1.0]], []]),
        ("classify", [[[b"\xff", 1.0]]]),  # not UTF-8
        ("classify", [[["a", True]]]),  # a bool is not a double
        ("classify", [[["a", 10**400]]]),  # an int past the doubles
        ("classify", [[["a"]]]),  # a field short
        ("classify", [[["a", 1.0, 2.0]]]),
        ("classify", [["a"]]),
        ("classify", {"a": 1}),
        ("node", ["root", [["a", []], ["b", [["c", []]]]]]),
        ("node", ["root", [["a", "not a list"]]]),
        ("wide", [[2**31 - 1, None, 1.5, [2**64 - 1, "x"], {"k": -(2**63)}]]),
        ("wide", [[1, True, 2, (0, b"y"), {b"k": 1, "k": 2}]]),  # map keys that collide
        ("wide", [[2**31, None, 1.5, [0, "x"], {}]]),  # out of range
        ("wide", [[1, None, 1.5, [0, "x", 1], {}]]),
        ("empty", []),
        ("empty", [1]),
        ("one", [b"\x00\x01"]),
        ("one", [5]),
        ("scalars", [-128, 255, -32768, 65535, 2**32 - 1, -0.5, False]),
        ("scalars", [-129, 255, 0, 0, 0, 0.0, False]),
        ("object", {b"k": [1, b"\xff", None, 2.5]}),
        ("datum", [[["s", "v"]], [["n", 1.5]], [["b", b"\x01"]]]),
        ("nullable list", None),
        ("nullable list", [math.nan, 1]),
    ],
)
def test_the_text_is_the_json_values_text_or_the_same_error(name: str, wire: Any) -> None:
    check(SHAPES[name], wire)


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.one_of(st.text(), st.binary()),
                st.one_of(st.floats(), st.integers(), st.booleans(), st.none()),
            ).map(list)
        )
    )
)
def test_drawn_classify_results(wire: list[list[list[Any]]]) -> None:
    check(SHAPES["classify"], wire)
