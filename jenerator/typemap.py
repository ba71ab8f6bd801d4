"""IDL type expressions → Python annotation text and runtime wire-descriptor expressions.

Walks types in Python so templates never recurse. Descriptor expressions refer to the
runtime module as ``_t`` (``from runtime.wire import types as _t``), to
:class:`~runtime.wire.datum.Datum` as ``Datum``, and to generated classes by their class
names; the caller says how a generated class is reached from the module being written
(``prefix``, e.g. ``"types."``).
"""

from __future__ import annotations

from dataclasses import dataclass

from jenerator import naming
from jenerator.model import (
    Enum,
    ExceptionDef,
    Idl,
    ListType,
    MapType,
    Message,
    NamedType,
    NullableType,
    PrimitiveType,
    TupleType,
    TypeExpr,
)
from jenerator.pyexpr import Expr, call

_INT_WIDTHS: dict[str, tuple[bool, int]] = {
    "byte": (True, 1),
    "short": (True, 2),
    "int": (True, 4),
    "long": (True, 8),
    "ubyte": (False, 1),
    "ushort": (False, 2),
    "uint": (False, 4),
    "ulong": (False, 8),
}

_PRIMITIVE_ANNOTATIONS: dict[str, str] = {
    "bool": "bool",
    "float": "float",
    "double": "float",
    "string": "str",
    "raw": "bytes",
    "object": "object",
    "datum": "Datum",
    **{name: "int" for name in _INT_WIDTHS},
}

_PRIMITIVE_DESCRIPTORS: dict[str, str] = {
    "bool": "_t.Bool()",
    "float": "_t.Float()",
    "double": "_t.Float()",
    "string": "_t.String()",
    "raw": "_t.Raw()",
    "object": "_t.Object()",
    "datum": "_t.DatumType()",
    **{
        name: f"_t.Int(signed={signed}, size={size})"
        for name, (signed, size) in _INT_WIDTHS.items()
    },
}


@dataclass(frozen=True)
class TypeMapper:
    """Maps the types of one IDL; ``prefix`` qualifies generated class names."""

    idl: Idl
    prefix: str = ""

    def annotation(self, expr: TypeExpr) -> str:
        """Python annotation text, e.g. ``list[EstimateResult]`` or ``str | None``."""
        match expr:
            case PrimitiveType(name=name):
                if name == "void":
                    return "None"
                return _PRIMITIVE_ANNOTATIONS[name]
            case ListType(element=element):
                return f"list[{self.annotation(element)}]"
            case MapType(key=key, value=value):
                return f"dict[{self.annotation(key)}, {self.annotation(value)}]"
            case TupleType(elements=elements):
                inner = ", ".join(self.annotation(e) for e in elements) or "()"
                return f"tuple[{inner}]"
            case NullableType(inner=inner):
                return f"{self.annotation(inner)} | None"
            case NamedType(name=name):
                return self.prefix + naming.class_name(name)
        raise AssertionError(f"unhandled type node {expr!r}")

    def descriptor(self, expr: TypeExpr) -> Expr:
        """Expression tree building the runtime descriptor for ``expr``."""
        match expr:
            case PrimitiveType(name=name):
                return _PRIMITIVE_DESCRIPTORS[name]
            case ListType(element=element):
                return call("_t.List", self.descriptor(element))
            case MapType(key=key, value=value):
                return call("_t.Map", self.descriptor(key), self.descriptor(value))
            case TupleType(elements=elements):
                return call("_t.Tuple", *(self.descriptor(e) for e in elements))
            case NullableType(inner=inner):
                return call("_t.Nullable", self.descriptor(inner))
            case NamedType(name=name):
                declaration = self.idl.type_named(name)
                cls = self.prefix + naming.class_name(name)
                if isinstance(declaration, Enum):
                    return call("_t.EnumType", cls)
                if isinstance(declaration, Message | ExceptionDef):
                    return f"{cls}.WIRE"
                raise AssertionError(f"unresolved type {name!r}: validate the IDL first")
        raise AssertionError(f"unhandled type node {expr!r}")

    def uses_datum(self, expr: TypeExpr) -> bool:
        """Whether ``expr`` mentions ``datum`` anywhere (the module must import Datum)."""
        match expr:
            case PrimitiveType(name=name):
                return name == "datum"
            case ListType(element=element):
                return self.uses_datum(element)
            case MapType(key=key, value=value):
                return self.uses_datum(key) or self.uses_datum(value)
            case TupleType(elements=elements):
                return any(self.uses_datum(e) for e in elements)
            case NullableType(inner=inner):
                return self.uses_datum(inner)
            case NamedType():
                return False
        raise AssertionError(f"unhandled type node {expr!r}")

    def named_types(self, expr: TypeExpr) -> set[str]:
        """Names of the user types ``expr`` refers to."""
        match expr:
            case PrimitiveType():
                return set()
            case ListType(element=element):
                return self.named_types(element)
            case MapType(key=key, value=value):
                return self.named_types(key) | self.named_types(value)
            case TupleType(elements=elements):
                return set().union(*(self.named_types(e) for e in elements))
            case NullableType(inner=inner):
                return self.named_types(inner)
            case NamedType(name=name):
                return {name}
        raise AssertionError(f"unhandled type node {expr!r}")


def is_message_like(declaration: object) -> bool:
    """Messages and exceptions both travel as arrays in field order."""
    return isinstance(declaration, Message | ExceptionDef)
