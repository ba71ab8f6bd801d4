"""Typed wire descriptors: IDL types converted between wire values and Python values.

Jubatus clients pack every string *and* every binary value as old-spec raw, so the
server cannot tell them apart by wire type: values arrive from an Unpacker with
``raw=True`` (both as ``bytes``) and each descriptor decodes by the *declared* type:
``String`` gives ``str`` (non-UTF-8 is a type error, not a crash), ``Raw`` keeps
``bytes``. ``encode`` gives values that pack with ``use_bin_type=False``, so old clients
read them; doubles always go out as floats, even when integral.

Every failure is a :class:`~runtime.errors.WireTypeError` (wire error 2) whose message
says where the value went wrong (``[2].label: expected string, got integer``). Types are
named as the IDL names them (``long``, ``list``, ``map``); a value that fails to decode is
named by its wire type (``nil``, ``bool``, ``integer``, ``double``, ``string`` for raw,
``list``, ``map``), one that fails to encode by its Python type (``str``, ``bytes``...).
Generated code declares descriptors once, at import; the runtime walks them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from runtime.errors import TypeMismatch, WireTypeError
from runtime.wire.datum import Datum

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
E = TypeVar("E", bound=enum.IntEnum)


#: How a wire value is named in errors. Jubatus clients send strings and binary alike as
#: raw, so raw is named "string", what it nearly always is.
_WIRE_KINDS: dict[type, str] = {
    type(None): "nil", bool: "bool", int: "integer", float: "double",
    bytes: "string", str: "string", list: "list", tuple: "list", dict: "map",
}  # fmt: skip
#: IDL names of the integer types by (signed, size in bytes).
_INT_NAMES = {
    (True, 1): "byte", (True, 2): "short", (True, 4): "int", (True, 8): "long",
    (False, 1): "ubyte", (False, 2): "ushort", (False, 4): "uint", (False, 8): "ulong",
}  # fmt: skip


def _kind(value: object) -> str:
    return _WIRE_KINDS.get(type(value), type(value).__name__)


def _fail(expected: str, value: object) -> WireTypeError:
    """A wire value that does not decode as ``expected``."""
    return WireTypeError(f"expected {expected}, got {_kind(value)}")


def _wrong(expected: str, value: object) -> WireTypeError:
    """A Python value that does not encode as ``expected``."""
    return WireTypeError(f"expected {expected}, got {type(value).__name__}")


def _at(where: str, error: WireTypeError) -> WireTypeError:
    text = str(error)
    joined = f"{where}{text}" if text.startswith(("[", ".")) else f"{where}: {text}"
    return WireTypeError(joined)


class Descriptor(Generic[T]):
    """Converts one IDL type between wire values and Python values."""

    __slots__ = ()
    #: Values of exactly this type decode and encode to themselves (None: no such type).
    #: Compiled dispatch code checks it before calling :meth:`decode` / :meth:`encode`.
    as_is: type | None = None

    def decode(self, wire: object) -> T:
        """Wire value (strings as bytes) → Python value; raises WireTypeError."""
        raise NotImplementedError

    def encode(self, value: T) -> object:
        """Python value → packable wire value; raises WireTypeError on a wrong type."""
        raise NotImplementedError


class Bool(Descriptor[bool]):
    __slots__ = ()
    as_is = bool

    def decode(self, wire: object) -> bool:
        if wire is True or wire is False:
            return wire
        raise _fail("bool", wire)

    def encode(self, value: bool) -> object:
        if value is True or value is False:
            return value
        raise _wrong("bool", value)


class Int(Descriptor[int]):
    """An integer of ``size`` bytes, signed or not; out-of-range values are type errors."""

    __slots__ = ("high", "low", "name")

    def __init__(self, signed: bool = True, size: int = 4) -> None:
        bits = size * 8
        self.low = -(1 << (bits - 1)) if signed else 0
        self.high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        self.name = _INT_NAMES.get((signed, size), f"{'' if signed else 'u'}int{bits}")

    def decode(self, wire: object) -> int:
        if type(wire) is int and self.low <= wire <= self.high:
            return wire
        if isinstance(wire, int) and not isinstance(wire, bool):
            raise WireTypeError(f"{wire} is out of range for {self.name}")
        raise _fail(self.name, wire)

    def encode(self, value: int) -> object:
        given: object = value  # a caller may pass anything
        if type(given) is int and self.low <= given <= self.high:
            return given
        if isinstance(given, int) and not isinstance(given, bool):
            raise WireTypeError(f"{given} is out of range for {self.name}")
        raise _wrong(self.name, given)


class Float(Descriptor[float]):
    """``float``/``double``: ints accepted from the wire, always sent as floats."""

    __slots__ = ()
    as_is = float

    def decode(self, wire: object) -> float:
        if type(wire) is float:
            return wire
        if isinstance(wire, int | float) and not isinstance(wire, bool):
            return float(wire)
        raise _fail("double", wire)

    def encode(self, value: float) -> object:
        given: object = value  # a caller may pass anything
        if type(given) is float:
            return given
        if isinstance(given, int | float) and not isinstance(given, bool):
            return float(given)
        raise _wrong("double", given)


def text_param(value: object, what: str) -> str:
    """A string parameter read by hand (a proxy's key, a replication call's names) as
    text: old clients send bytes; anything else is :class:`TypeMismatch` naming ``what``."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise TypeMismatch(f"{what} is not valid UTF-8") from None
    if isinstance(value, str):
        return value
    raise TypeMismatch(f"{what} must be a string, not {type(value).__name__}")


class String(Descriptor[str]):
    __slots__ = ()
    as_is = str

    def decode(self, wire: object) -> str:
        if type(wire) is bytes:
            try:
                return wire.decode("utf-8")
            except UnicodeDecodeError:
                raise WireTypeError("string is not valid UTF-8") from None
        if type(wire) is str:
            return wire
        raise _fail("string", wire)

    def encode(self, value: str) -> object:
        if isinstance(value, str):
            return value
        raise _wrong("string", value)


class Raw(Descriptor[bytes]):
    __slots__ = ()
    as_is = bytes

    def decode(self, wire: object) -> bytes:
        if isinstance(wire, bytes):
            return wire
        if isinstance(wire, str):
            return wire.encode("utf-8")
        raise _fail("raw", wire)

    def encode(self, value: bytes) -> object:
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        raise _wrong("raw", value)


class Object(Descriptor[Any]):
    """Any value, passed through as it is."""

    __slots__ = ()

    def decode(self, wire: object) -> Any:
        return wire

    def encode(self, value: Any) -> object:
        return value


class List(Descriptor[list[T]]):
    __slots__ = ("element",)

    def __init__(self, element: Descriptor[T]) -> None:
        self.element = element

    def decode(self, wire: object) -> list[T]:
        if not isinstance(wire, list | tuple):
            raise _fail("list", wire)
        decode = self.element.decode
        try:
            return [decode(item) for item in wire]
        except WireTypeError:
            raise self._locate(wire, decode) from None

    def _locate(self, items: Sequence[object], func: Callable[[Any], object]) -> WireTypeError:
        for index, item in enumerate(items):
            try:
                func(item)
            except WireTypeError as error:
                return _at(f"[{index}]", error)
        return WireTypeError("invalid list")

    def encode(self, value: list[T]) -> object:
        if not isinstance(value, list | tuple):
            raise _wrong("list", value)
        encode = self.element.encode
        try:
            return [encode(item) for item in value]
        except WireTypeError:
            raise self._locate(value, encode) from None


class Map(Descriptor[dict[K, V]]):
    __slots__ = ("key", "value")

    def __init__(self, key: Descriptor[K], value: Descriptor[V]) -> None:
        self.key = key
        self.value = value

    def decode(self, wire: object) -> dict[K, V]:
        if not isinstance(wire, dict):
            raise _fail("map", wire)
        result: dict[K, V] = {}
        for k, v in wire.items():
            try:
                key = self.key.decode(k)
            except WireTypeError as error:
                raise _at("<key>", error) from None
            try:
                result[key] = self.value.decode(v)
            except WireTypeError as error:
                raise _at(f"[{key!r}]", error) from None
        return result

    def encode(self, value: dict[K, V]) -> object:
        if not isinstance(value, dict):
            raise _wrong("map", value)
        result: dict[object, object] = {}
        for k, v in value.items():
            try:
                result[self.key.encode(k)] = self.value.encode(v)
            except WireTypeError as error:
                raise _at(f"[{k!r}]", error) from None
        return result


class Tuple(Descriptor[tuple[Any, ...]]):
    __slots__ = ("elements",)

    def __init__(self, *elements: Descriptor[Any]) -> None:
        self.elements = elements

    def _convert(self, items: object, encode: bool) -> tuple[Any, ...]:
        if not isinstance(items, list | tuple):
            raise (_wrong if encode else _fail)("tuple", items)
        if len(items) != len(self.elements):
            raise WireTypeError(f"expected {len(self.elements)} elements, got {len(items)}")
        out = []
        for index, (descriptor, item) in enumerate(zip(self.elements, items, strict=True)):
            try:
                out.append(descriptor.encode(item) if encode else descriptor.decode(item))
            except WireTypeError as error:
                raise _at(f"[{index}]", error) from None
        return tuple(out)

    def decode(self, wire: object) -> tuple[Any, ...]:
        return self._convert(wire, encode=False)

    def encode(self, value: tuple[Any, ...]) -> object:
        return list(self._convert(value, encode=True))


class Nullable(Descriptor[T | None]):
    __slots__ = ("inner",)

    def __init__(self, inner: Descriptor[T]) -> None:
        self.inner = inner

    def decode(self, wire: object) -> T | None:
        return None if wire is None else self.inner.decode(wire)

    def encode(self, value: T | None) -> object:
        return None if value is None else self.inner.encode(value)


class EnumType(Descriptor[E]):
    """An IDL enum: an integer on the wire, an ``IntEnum`` member in Python."""

    __slots__ = ("cls",)

    def __init__(self, cls: type[E]) -> None:
        self.cls = cls

    def decode(self, wire: object) -> E:
        if type(wire) is not int:
            raise _fail(f"{self.cls.__name__} (int)", wire)
        try:
            return self.cls(wire)
        except ValueError:
            raise WireTypeError(f"{wire} is not a value of {self.cls.__name__}") from None

    def encode(self, value: E) -> object:
        given: object = value  # a caller may pass anything
        if not isinstance(given, int) or isinstance(given, bool):
            raise _wrong(f"{self.cls.__name__} (int)", given)
        return int(self.decode(int(given)))


class DatumType(Descriptor[Datum]):
    """Jubatus's datum: three lists of ``[key, value]`` pairs; binary values stay bytes."""

    __slots__ = ()

    def decode(self, wire: object) -> Datum:
        if not isinstance(wire, list | tuple) or len(wire) != 3:
            raise WireTypeError(f"expected datum (3 arrays), got {_kind(wire)}")
        fast = _fast_datum(wire)
        if fast is not None:
            return fast
        return self.decode_checked(wire)

    def decode_checked(self, wire: list[Any] | tuple[Any, ...]) -> Datum:
        """Decode pair by pair, naming the first thing that is wrong."""
        datum = Datum()
        parts: tuple[tuple[list[Any], Descriptor[Any]], ...] = (
            (datum.string_values, String()),
            (datum.num_values, Float()),
            (datum.binary_values, Raw()),
        )
        key_type = String()
        for index, ((target, value_type), pairs) in enumerate(zip(parts, wire, strict=True)):
            if not isinstance(pairs, list | tuple):
                raise WireTypeError(f"[{index}]: expected list, got {_kind(pairs)}")
            for position, pair in enumerate(pairs):
                if not isinstance(pair, list | tuple) or len(pair) != 2:
                    raise WireTypeError(f"[{index}][{position}]: expected [key, value]")
                try:
                    target.append((key_type.decode(pair[0]), value_type.decode(pair[1])))
                except WireTypeError as error:
                    raise _at(f"[{index}][{position}]", error) from None
        return datum

    def encode(self, value: Datum) -> object:
        if type(value) is Datum:
            return value.to_msgpack()
        to_msgpack = getattr(value, "to_msgpack", None)
        if callable(to_msgpack):
            return self.encode(self.decode(to_msgpack()))
        raise _wrong("datum", value)


def _fast_datum(wire: list[Any] | tuple[Any, ...]) -> Datum | None:
    """The datum, if every pair is well formed in the usual way; else ``None``, and the
    careful decoder (which names what is wrong) takes over. Same results as that decoder."""
    strings, numbers, binaries = wire
    if type(strings) is not list or type(numbers) is not list or type(binaries) is not list:
        return None
    datum = Datum()
    try:
        for pair in strings:
            if type(pair) is not list or len(pair) != 2:
                return None
            key, value = pair
            if type(key) is bytes:
                key = key.decode("utf-8")
            elif type(key) is not str:
                return None
            if type(value) is bytes:
                value = value.decode("utf-8")
            elif type(value) is not str:
                return None
            datum.string_values.append((key, value))
        for pair in numbers:
            if type(pair) is not list or len(pair) != 2:
                return None
            key, value = pair
            if type(key) is bytes:
                key = key.decode("utf-8")
            elif type(key) is not str:
                return None
            if type(value) is int:
                value = float(value)
            elif type(value) is not float:
                return None
            datum.num_values.append((key, value))
        for pair in binaries:
            if type(pair) is not list or len(pair) != 2:
                return None
            key, value = pair
            if type(key) is bytes:
                key = key.decode("utf-8")
            elif type(key) is not str:
                return None
            if type(value) is not bytes:
                return None
            datum.binary_values.append((key, value))
    except UnicodeDecodeError:
        return None
    return datum


class MessageType(Descriptor[T]):
    """A message: an array of its fields in field order, a class instance in Python.

    Fields may be bound after construction (:meth:`bind`), so messages can refer to each
    other and to themselves. ``encode`` takes an instance or a plain list/tuple.
    """

    __slots__ = ("cls", "fields")

    def __init__(
        self, cls: type[T], fields: Sequence[tuple[str, Descriptor[Any]]] | None = None
    ) -> None:
        self.cls = cls
        self.fields: tuple[tuple[str, Descriptor[Any]], ...] = ()
        if fields is not None:
            self.bind(fields)

    def bind(self, fields: Sequence[tuple[str, Descriptor[Any]]]) -> None:
        self.fields = tuple(fields)

    def decode(self, wire: object) -> T:
        if not isinstance(wire, list | tuple):
            raise _fail(f"{self.cls.__name__} (array)", wire)
        if len(wire) != len(self.fields):
            raise WireTypeError(
                f"{self.cls.__name__} has {len(self.fields)} fields, got an array of {len(wire)}"
            )
        values = []
        for (name, descriptor), item in zip(self.fields, wire, strict=True):
            try:
                values.append(descriptor.decode(item))
            except WireTypeError as error:
                raise _at(f".{name}", error) from None
        return self.cls(*values)

    def encode(self, value: T) -> object:
        if isinstance(value, list | tuple):
            if len(value) != len(self.fields):
                raise WireTypeError(f"{self.cls.__name__} needs {len(self.fields)} values")
            items = list(value)
        elif isinstance(value, self.cls):
            items = [getattr(value, name) for name, _ in self.fields]
        else:
            raise _wrong(self.cls.__name__, value)
        out = []
        for (name, descriptor), item in zip(self.fields, items, strict=True):
            try:
                out.append(descriptor.encode(item))
            except WireTypeError as error:
                raise _at(f".{name}", error) from None
        return out
