"""The typed model of one IDL file: what the transformer builds and every target reads.

An :class:`Idl` owns its declarations in source order, split by kind: ``includes``,
``messages``, ``enums``, ``exceptions`` and ``services``. A message, enum or exception is
found by name through :meth:`Idl.type_named`; a reference to it inside a type expression is
a :class:`NamedType` holding only the name, so messages may be used before they are defined
and the model stays a tree (no cycles, cheap equality, easy to print back).

Type expressions are small frozen nodes: :class:`PrimitiveType` (``int``, ``string``,
``datum``, ``void`` ...), :class:`ListType`, :class:`MapType`, :class:`TupleType`,
:class:`NullableType` and :class:`NamedType`.

A :class:`Method` keeps its ``#@`` annotations as written (:class:`Annotation`); the derived
properties ``routing``, ``lock``, ``aggregator`` and ``cht_replicas`` read them through
:data:`ANNOTATION_KINDS` (each ``#@`` name is the value of one of the three enums) and give
``None`` where the method has no such annotation. Whether a method has exactly one of
each is the validator's question.

Every node carries a :class:`Span` pointing back at its source; spans never take part in
equality, so a model printed and parsed again compares equal to the original. ``doc`` holds
the ``#-`` lines written just before a node, without the ``#-`` marker.

This module holds data and derived properties only: no parsing, no checks, no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeAlias


@dataclass(frozen=True, order=True)
class Span:
    """Where a node stands in its source file; lines and columns count from 1."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


#: Span used for nodes built by hand (tests, printers) rather than parsed.
NO_SPAN = Span("<model>", 0, 0, 0, 0)


class Routing(enum.Enum):
    """How a proxy routes a method."""

    RANDOM = "random"  #: one live server chosen at random
    BROADCAST = "broadcast"  #: every live server, results folded by the aggregator
    CHT = "cht"  #: the replicas of the first argument on the consistent-hash ring
    INTERNAL = "internal"  #: not exposed by the proxy; server-to-server only


class Lock(enum.Enum):
    """Which side of the model's read/write lock a method takes on the server."""

    ANALYSIS = "analysis"  #: shared (read) lock
    UPDATE = "update"  #: exclusive (write) lock; counts as a model update
    NOLOCK = "nolock"  #: no lock; the method synchronises itself


class Aggregator(enum.Enum):
    """How a proxy folds the results of several servers."""

    PASS = "pass"
    ALL_AND = "all_and"
    ALL_OR = "all_or"
    MERGE = "merge"
    CONCAT = "concat"
    ADD = "add"
    IGNORE = "ignore"


#: The kind of every ``#@`` name: the enum it is a value of. The annotation table
#: (:mod:`jenerator.annotations`, which imports this module) adds what each takes.
ANNOTATION_KINDS: dict[str, type[enum.Enum]] = {
    member.value: kind for kind in (Routing, Lock, Aggregator) for member in kind
}

#: Default replica count of a bare ``#@cht``.
DEFAULT_CHT_REPLICAS = 2

PRIMITIVE_NAMES: frozenset[str] = frozenset(
    {
        "void", "object", "bool",
        "byte", "short", "int", "long",
        "ubyte", "ushort", "uint", "ulong",
        "float", "double", "raw", "string", "datum",
    }
)  # fmt: skip

INTEGER_NAMES: frozenset[str] = frozenset(
    {"byte", "short", "int", "long", "ubyte", "ushort", "uint", "ulong"}
)
FLOAT_NAMES: frozenset[str] = frozenset({"float", "double"})


@dataclass(frozen=True)
class PrimitiveType:
    """A built-in type word such as ``int``, ``string``, ``raw``, ``datum`` or ``void``."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class ListType:
    element: TypeExpr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class MapType:
    key: TypeExpr
    value: TypeExpr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class TupleType:
    elements: tuple[TypeExpr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class NullableType:
    """``T?``: the value may be nil on the wire."""

    inner: TypeExpr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class NamedType:
    """A reference by name to a message, enum or exception of the same IDL."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


TypeExpr: TypeAlias = PrimitiveType | ListType | MapType | TupleType | NullableType | NamedType


@dataclass(frozen=True)
class Field:
    """``ID: TYPE NAME`` inside a message or exception."""

    id: int
    type: TypeExpr
    name: str
    doc: tuple[str, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Message:
    """``message NAME [("c++ type")] { fields }``; fields in declaration order."""

    name: str
    fields: tuple[Field, ...]
    cpp_type: str | None = None
    doc: tuple[str, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    @property
    def wire_fields(self) -> tuple[Field, ...]:
        """Fields in field-id order: the order of the array on the wire."""
        return tuple(sorted(self.fields, key=lambda f: f.id))


@dataclass(frozen=True)
class EnumValue:
    id: int
    name: str
    doc: tuple[str, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Enum:
    """``enum NAME { ID: VALUE ... }``; travels as an integer."""

    name: str
    values: tuple[EnumValue, ...]
    doc: tuple[str, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class ExceptionDef:
    """``exception NAME [< BASE] { fields }``."""

    name: str
    fields: tuple[Field, ...]
    base: str | None = None
    doc: tuple[str, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Include:
    """``%include "path"``: kept for fidelity; no Python target uses it."""

    path: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Annotation:
    """``#@NAME`` or ``#@NAME(ARGUMENT)`` as written before a method."""

    name: str
    argument: int | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Arg:
    """``ID: TYPE NAME`` in a method's argument list."""

    id: int
    type: TypeExpr
    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Method:
    """``ANNOTATIONS RET NAME(ARGS)`` inside a service."""

    name: str
    return_type: TypeExpr
    args: tuple[Arg, ...]
    annotations: tuple[Annotation, ...] = ()
    doc: tuple[str, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)

    def _first(self, kind: type[enum.Enum]) -> Annotation | None:
        for annotation in self.annotations:
            if ANNOTATION_KINDS.get(annotation.name) is kind:
                return annotation
        return None

    @property
    def routing(self) -> Routing | None:
        annotation = self._first(Routing)
        return None if annotation is None else Routing(annotation.name)

    @property
    def cht_replicas(self) -> int | None:
        """Replica count of a ``cht`` method (default 2); ``None`` for other routings."""
        annotation = self._first(Routing)
        if annotation is None or annotation.name != Routing.CHT.value:
            return None
        return DEFAULT_CHT_REPLICAS if annotation.argument is None else annotation.argument

    @property
    def lock(self) -> Lock | None:
        annotation = self._first(Lock)
        return None if annotation is None else Lock(annotation.name)

    @property
    def aggregator(self) -> Aggregator | None:
        annotation = self._first(Aggregator)
        return None if annotation is None else Aggregator(annotation.name)


@dataclass(frozen=True)
class Service:
    """``service NAME { methods }``."""

    name: str
    methods: tuple[Method, ...]
    doc: tuple[str, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


UserType: TypeAlias = Message | Enum | ExceptionDef


@dataclass(frozen=True)
class Idl:
    """One IDL file: its declarations by kind, each tuple in source order."""

    path: str
    includes: tuple[Include, ...] = ()
    messages: tuple[Message, ...] = ()
    enums: tuple[Enum, ...] = ()
    exceptions: tuple[ExceptionDef, ...] = ()
    services: tuple[Service, ...] = ()

    @property
    def user_types(self) -> tuple[UserType, ...]:
        return (*self.messages, *self.enums, *self.exceptions)

    def type_named(self, name: str) -> UserType | None:
        """The first message, enum or exception called ``name``, or ``None``."""
        for declaration in self.user_types:
            if declaration.name == name:
                return declaration
        return None
