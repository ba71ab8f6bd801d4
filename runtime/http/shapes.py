"""IDL types between validated JSON values and wire values: the gateway's converters.

A :class:`Shape` knows one IDL type three ways: ``idl`` (its IDL spelling, for error
messages), :meth:`Shape.to_wire` (a value pydantic validated against the matching
:mod:`runtime.http.jsontypes` annotation → the wire value a server expects) and
:meth:`Shape.to_json` (a wire result, strings as bytes → a JSON-ready value, checked
against the type by :mod:`runtime.wire.types`' descriptors). Generated gateways declare
their shapes once, at import; messages are bound after every shape exists, so they may
refer to each other and to themselves. :meth:`Shape.step` walks a pydantic error location
so a 422 can name the IDL type expected where the body went wrong.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Callable, Sequence
from typing import Any

from runtime.errors import WireTypeError
from runtime.http.jsontext import bool_text, dumps, float_text, int_text, string_text
from runtime.wire import types as _t
from runtime.wire.datum import Datum


class Shape:
    """One IDL type; subclasses convert, this base passes values through."""

    __slots__ = ("idl",)

    def __init__(self, idl: str) -> None:
        self.idl = idl

    def to_wire(self, value: Any) -> Any:
        """A validated JSON value → the wire value (packable with ``use_bin_type=False``)."""
        return value

    def to_json(self, wire: Any) -> Any:
        """A wire value (strings as bytes) → a JSON-ready value; WireTypeError if it does
        not fit the type."""
        return wire

    def step(self, part: str | int) -> Shape | None:
        """The shape one step of a pydantic error location down; None where it stops."""
        return None

    def converter(self) -> Callable[[Any], Any]:
        """The fastest callable doing :meth:`to_json` (containers call it per item)."""
        return self.to_json

    def text(self) -> Callable[[Any], str]:
        """A callable giving ``dumps(self.to_json(wire))``, the JSON text of a wire value,
        written straight from the wire value where the shape knows how (a job writes one
        result per input); :meth:`to_json`'s WireTypeError when it does not fit."""
        fast, to_json = self.writer(), self.to_json

        def text(wire: Any) -> str:
            try:
                return fast(wire)
            except WireTypeError:
                return dumps(to_json(wire))  # raises to_json's own error

        return text

    def writer(self) -> Callable[[Any], str]:
        """What :meth:`text` tries first (containers call it per item): here the JSON
        value's text; scalars, lists, tuples, nullables and messages write it directly."""
        to_json = self.to_json
        return lambda wire: dumps(to_json(wire))

    def __repr__(self) -> str:
        return f"<shape {self.idl}>"


class Scalar(Shape):
    """bool, the integers, float/double and string: JSON values as they are on the wire."""

    __slots__ = ("decode",)

    def __init__(self, idl: str, descriptor: _t.Descriptor[Any]) -> None:
        super().__init__(idl)
        self.decode = descriptor.decode

    def to_json(self, wire: Any) -> Any:
        return self.decode(wire)

    def converter(self) -> Callable[[Any], Any]:
        return self.decode

    def writer(self) -> Callable[[Any], str]:
        decode = self.decode
        if self.idl == "string":

            def string(wire: Any) -> str:
                return string_text(wire if type(wire) is str else decode(wire))

            return string
        if self.idl in ("double", "float"):

            def number(wire: Any) -> str:
                return float_text(wire if type(wire) is float else decode(wire))

            return number
        write = _SCALAR_TEXT.get(self.idl, dumps)
        return lambda wire: write(decode(wire))


class RawShape(Shape):
    """``raw``: base64 text in JSON, bytes on the wire."""

    __slots__ = ()

    def to_json(self, wire: Any) -> Any:
        return base64.b64encode(_t.Raw().decode(wire)).decode("ascii")


def _plain(wire: Any) -> Any:
    """Any wire value as JSON: bytes as UTF-8 text (base64 when they are not UTF-8)."""
    if isinstance(wire, bytes):
        try:
            return wire.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(wire).decode("ascii")
    if isinstance(wire, list | tuple):
        return [_plain(item) for item in wire]
    if isinstance(wire, dict):
        return {str(_plain(k)): _plain(v) for k, v in wire.items()}
    return wire


class ObjectShape(Shape):
    """``object``: any JSON value in, any wire value out (strings decoded as UTF-8)."""

    __slots__ = ()

    def to_json(self, wire: Any) -> Any:
        return _plain(wire)


class DatumShape(Shape):
    """``datum``: the three lists or the flat ``{"key": value}`` shorthand in; the three
    lists out."""

    __slots__ = ()
    _descriptor = _t.DatumType()

    def to_wire(self, value: Any) -> Any:
        if isinstance(value, dict):
            strings: list[list[object]] = []
            numbers: list[list[object]] = []
            for key, item in value.items():
                if isinstance(item, str):
                    strings.append([key, item])
                else:
                    numbers.append([key, float(item)])
            return [strings, numbers, []]
        return [
            [list(pair) for pair in value.string_values],
            [[k, float(v)] for k, v in value.num_values],
            [list(pair) for pair in value.binary_values],
        ]

    def to_json(self, wire: Any) -> Any:
        datum: Datum = self._descriptor.decode(wire)
        return {
            "string_values": [list(pair) for pair in datum.string_values],
            "num_values": [list(pair) for pair in datum.num_values],
            "binary_values": [
                [k, base64.b64encode(v).decode("ascii")] for k, v in datum.binary_values
            ],
        }


class EnumShape(Shape):
    """An IDL enum: its integer value in JSON and on the wire."""

    __slots__ = ("cls",)

    def __init__(self, cls: type[enum.IntEnum]) -> None:
        super().__init__(cls.__name__)
        self.cls = cls

    def to_wire(self, value: Any) -> Any:
        return int(value)

    def to_json(self, wire: Any) -> Any:
        return int(_t.EnumType(self.cls).decode(wire))


class ListShape(Shape):
    __slots__ = ("element",)

    def __init__(self, element: Shape) -> None:
        super().__init__(f"list<{element.idl}>")
        self.element = element

    def to_wire(self, value: Any) -> Any:
        convert = self.element.to_wire
        return [convert(item) for item in value]

    def to_json(self, wire: Any) -> Any:
        if not isinstance(wire, list | tuple):
            raise WireTypeError(f"expected list, got {type(wire).__name__}")
        convert = self.element.converter()
        return [convert(item) for item in wire]

    def writer(self) -> Callable[[Any], str]:
        element = self.element.writer()

        def write(wire: Any) -> str:
            if not isinstance(wire, list | tuple):
                raise WireTypeError(f"expected list, got {type(wire).__name__}")
            return "[" + ",".join(map(element, wire)) + "]"

        return write

    def step(self, part: str | int) -> Shape | None:
        return self.element if isinstance(part, int) else None


class MapShape(Shape):
    """``map<K, V>``: a JSON object; keys other than strings travel as their text."""

    __slots__ = ("key", "value")

    def __init__(self, key: Shape, value: Shape) -> None:
        super().__init__(f"map<{key.idl}, {value.idl}>")
        self.key = key
        self.value = value

    def to_wire(self, value: Any) -> Any:
        key, item = self.key.to_wire, self.value.to_wire
        return {key(k): item(v) for k, v in value.items()}

    def to_json(self, wire: Any) -> Any:
        if not isinstance(wire, dict):
            raise WireTypeError(f"expected map, got {type(wire).__name__}")
        key, item = self.key.converter(), self.value.converter()
        return {key(k): item(v) for k, v in wire.items()}

    def step(self, part: str | int) -> Shape | None:
        return self.value


class TupleShape(Shape):
    __slots__ = ("elements",)

    def __init__(self, *elements: Shape) -> None:
        super().__init__(f"tuple<{', '.join(e.idl for e in elements)}>")
        self.elements = elements

    def to_wire(self, value: Any) -> Any:
        return [shape.to_wire(item) for shape, item in zip(self.elements, value, strict=True)]

    def to_json(self, wire: Any) -> Any:
        if not isinstance(wire, list | tuple) or len(wire) != len(self.elements):
            raise WireTypeError(f"expected {self.idl}, got {type(wire).__name__}")
        return [shape.to_json(item) for shape, item in zip(self.elements, wire, strict=True)]

    def writer(self) -> Callable[[Any], str]:
        writers = tuple(shape.writer() for shape in self.elements)

        def write(wire: Any) -> str:
            if not isinstance(wire, list | tuple) or len(wire) != len(writers):
                raise WireTypeError(f"expected {self.idl}, got {type(wire).__name__}")
            return "[" + ",".join([w(item) for w, item in zip(writers, wire, strict=True)]) + "]"

        return write

    def step(self, part: str | int) -> Shape | None:
        if isinstance(part, int) and 0 <= part < len(self.elements):
            return self.elements[part]
        return None


class NullableShape(Shape):
    __slots__ = ("inner",)

    def __init__(self, inner: Shape) -> None:
        super().__init__(f"{inner.idl}?")
        self.inner = inner

    def to_wire(self, value: Any) -> Any:
        return None if value is None else self.inner.to_wire(value)

    def to_json(self, wire: Any) -> Any:
        return None if wire is None else self.inner.to_json(wire)

    def writer(self) -> Callable[[Any], str]:
        inner = self.inner.writer()
        return lambda wire: "null" if wire is None else inner(wire)

    def step(self, part: str | int) -> Shape | None:
        return self.inner.step(part)


class MessageShape(Shape):
    """A message: a pydantic model in, an array in field order on the wire, a JSON object
    by IDL field names out. Fields are bound with :meth:`bind` once every shape exists."""

    __slots__ = ("_building", "_converters", "_writer", "by_name", "fields")

    def __init__(self, idl: str) -> None:
        super().__init__(idl)
        #: ``(IDL name, attribute of the pydantic model, shape)`` in wire order.
        self.fields: tuple[tuple[str, str, Shape], ...] = ()
        self.by_name: dict[str, Shape] = {}
        self._converters: tuple[tuple[str, Any], ...] = ()
        #: Made at the first :meth:`writer` call (after :meth:`bind`).
        self._writer: Callable[[Any], str] | None = None
        self._building = False

    def bind(self, fields: Sequence[tuple[str, str, Shape]]) -> None:
        self.fields = tuple(fields)
        self.by_name = {name: shape for name, _, shape in self.fields}
        self._converters = tuple((name, shape.converter()) for name, _, shape in self.fields)
        self._writer = None

    def to_wire(self, value: Any) -> Any:
        return [shape.to_wire(getattr(value, attr)) for _, attr, shape in self.fields]

    def to_json(self, wire: Any) -> Any:
        if not isinstance(wire, list | tuple) or len(wire) != len(self._converters):
            raise WireTypeError(f"expected {self.idl} ({len(self.fields)} fields)")
        pairs = zip(self._converters, wire, strict=True)  # lengths checked above
        try:  # the common case in one comprehension (results of a job go through here)
            return {name: convert(item) for (name, convert), item in pairs}
        except WireTypeError:
            pass
        for (name, _, shape), item in zip(self.fields, wire, strict=True):
            try:
                shape.to_json(item)
            except WireTypeError as error:
                raise WireTypeError(f"{self.idl}.{name}: {error}") from None
        raise AssertionError("unreachable: a field failed once and not again")

    def writer(self) -> Callable[[Any], str]:
        if self._writer is not None:
            return self._writer
        if self._building:  # the message contains itself: look it up when writing
            return lambda wire: self.writer()(wire)
        self._building = True
        try:
            self._writer = self._make_writer()
        finally:
            self._building = False
        return self._writer

    def _make_writer(self) -> Callable[[Any], str]:
        """``{"name":value,...}`` with the key texts made once; two fields (most results)
        without a loop."""
        keys = tuple(
            ("{" if at == 0 else ",") + string_text(name) + ":"
            for at, (name, _, _) in enumerate(self.fields)
        )
        writers = tuple(shape.writer() for _, _, shape in self.fields)
        count, wrong = len(writers), f"expected {self.idl} ({len(self.fields)} fields)"
        if count == 2:
            (k0, k1), (w0, w1) = keys, writers

            def two(wire: Any) -> str:
                if not isinstance(wire, list | tuple) or len(wire) != 2:
                    raise WireTypeError(wrong)
                return k0 + w0(wire[0]) + k1 + w1(wire[1]) + "}"

            return two

        def many(wire: Any) -> str:
            if not isinstance(wire, list | tuple) or len(wire) != count:
                raise WireTypeError(wrong)
            if not count:
                return "{}"
            parts = [key + w(item) for key, w, item in zip(keys, writers, wire, strict=True)]
            return "".join(parts) + "}"

        return many

    def step(self, part: str | int) -> Shape | None:
        return self.by_name.get(part) if isinstance(part, str) else None


def _int(idl: str, signed: bool, size: int) -> Scalar:
    return Scalar(idl, _t.Int(signed=signed, size=size))


#: How the other scalars' decoded values are written (as :func:`dumps` writes them).
_SCALAR_TEXT: dict[str, Callable[[Any], str]] = {
    "bool": bool_text,
    **dict.fromkeys(("byte", "short", "int", "long", "ubyte", "ushort", "uint", "ulong"), int_text),
}

BOOL = Scalar("bool", _t.Bool())
BYTE = _int("byte", True, 1)
SHORT = _int("short", True, 2)
INT = _int("int", True, 4)
LONG = _int("long", True, 8)
UBYTE = _int("ubyte", False, 1)
USHORT = _int("ushort", False, 2)
UINT = _int("uint", False, 4)
ULONG = _int("ulong", False, 8)
FLOAT = Scalar("float", _t.Float())
DOUBLE = Scalar("double", _t.Float())
STRING = Scalar("string", _t.String())
RAW = RawShape("raw")
OBJECT = ObjectShape("object")
DATUM = DatumShape("datum")
#: The result of a method that returns nothing (``void``).
VOID = Shape("void")
