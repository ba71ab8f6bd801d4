"""Semantic checks of a model: every rule runs, every finding is returned, sorted.

Each rule is one small function ``rule(idl) -> Iterator[Diagnostic]`` listed in
:data:`RULES`; :func:`validate` runs them all and sorts what they find by position. A
rule looks at one concern only and stays quiet about what another rule reports (a map
keyed by an unknown type is the unknown-type rule's finding, not the map-key rule's).

This module never raises on a bad model and never prints: findings are values.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from jenerator.annotations import ANNOTATIONS, KIND_NAMES
from jenerator.diagnostics import Diagnostic
from jenerator.model import (
    FLOAT_NAMES,
    INTEGER_NAMES,
    PRIMITIVE_NAMES,
    Aggregator,
    Annotation,
    Enum,
    ExceptionDef,
    Idl,
    ListType,
    Lock,
    MapType,
    Message,
    Method,
    NamedType,
    NullableType,
    PrimitiveType,
    Routing,
    Service,
    Span,
    TupleType,
    TypeExpr,
)
from jenerator.printer import print_type

#: Methods every service gets from the framework; an IDL may not declare them.
BUILTIN_METHODS = frozenset(
    {"get_config", "save", "load", "get_status", "do_mix", "get_proxy_status"}
)
#: Names a user type may not take: the type words of the language.
RESERVED_TYPE_NAMES = PRIMITIVE_NAMES | {"list", "map", "tuple"}
#: Primitive types a map may be keyed by (enums are allowed too).
SCALAR_KEY_NAMES = INTEGER_NAMES | FLOAT_NAMES | {"bool", "string", "raw"}
NUMBER_NAMES = INTEGER_NAMES | FLOAT_NAMES

Rule = Callable[[Idl], Iterable[Diagnostic]]
_Key = TypeVar("_Key")


def _error(span: Span, message: str, code: str) -> Diagnostic:
    return Diagnostic.error(span, message, code)


# -- walking the model -----------------------------------------------------------------


def _walk(expr: TypeExpr) -> Iterator[TypeExpr]:
    """``expr`` and every type nested in it, outermost first."""
    yield expr
    match expr:
        case ListType(element=inner) | NullableType(inner=inner):
            yield from _walk(inner)
        case MapType(key=key, value=value):
            yield from _walk(key)
            yield from _walk(value)
        case TupleType(elements=elements):
            for element in elements:
                yield from _walk(element)


def _records(idl: Idl) -> tuple[Message | ExceptionDef, ...]:
    return (*idl.messages, *idl.exceptions)


def _methods(idl: Idl) -> Iterator[tuple[Service, Method]]:
    for service in idl.services:
        for method in service.methods:
            yield service, method


def _type_uses(idl: Idl) -> Iterator[TypeExpr]:
    """Every type expression written in the file (not the nested ones)."""
    for record in _records(idl):
        for field in record.fields:
            yield field.type
    for _, method in _methods(idl):
        yield method.return_type
        for arg in method.args:
            yield arg.type


def _all_types(idl: Idl) -> Iterator[TypeExpr]:
    for root in _type_uses(idl):
        yield from _walk(root)


def _duplicates(
    items: Iterable[tuple[_Key, Span]], describe: Callable[[_Key], str], code: str
) -> Iterator[Diagnostic]:
    seen: dict[_Key, Span] = {}
    for key, span in items:
        first = seen.setdefault(key, span)
        if first is not span:
            yield _error(span, f"duplicate {describe(key)} (first at line {first.line})", code)


def _did_you_mean(name: str, candidates: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1)
    return f"; did you mean '{prefix}{close[0]}'?" if close else ""


# -- names ---------------------------------------------------------------------------


def unknown_types(idl: Idl) -> Iterator[Diagnostic]:
    """A named type must be a message, enum or exception of this file."""
    known = [d.name for d in idl.user_types]
    for expr in _all_types(idl):
        if isinstance(expr, NamedType) and idl.type_named(expr.name) is None:
            hint = _did_you_mean(expr.name, [*known, *(PRIMITIVE_NAMES - {"void"})])
            yield _error(expr.span, f"unknown type '{expr.name}'{hint}", "unknown-type")


def duplicate_types(idl: Idl) -> Iterator[Diagnostic]:
    """Messages, enums and exceptions share one namespace; services have their own."""
    yield from _duplicates(
        ((d.name, d.span) for d in idl.user_types), lambda n: f"type name '{n}'", "duplicate"
    )
    yield from _duplicates(
        ((s.name, s.span) for s in idl.services), lambda n: f"service '{n}'", "duplicate"
    )


def duplicate_methods(idl: Idl) -> Iterator[Diagnostic]:
    for service in idl.services:
        yield from _duplicates(
            ((m.name, m.span) for m in service.methods), lambda n: f"method '{n}'", "duplicate"
        )


def duplicate_fields(idl: Idl) -> Iterator[Diagnostic]:
    for record in _records(idl):
        yield from _duplicates(
            ((f.name, f.span) for f in record.fields), lambda n: f"field '{n}'", "duplicate"
        )
        yield from _duplicates(
            ((f.id, f.span) for f in record.fields), lambda i: f"field id {i}", "duplicate"
        )


def duplicate_args(idl: Idl) -> Iterator[Diagnostic]:
    for _, method in _methods(idl):
        yield from _duplicates(
            ((a.name, a.span) for a in method.args), lambda n: f"argument '{n}'", "duplicate"
        )
        yield from _duplicates(
            ((a.id, a.span) for a in method.args), lambda i: f"argument id {i}", "duplicate"
        )


def duplicate_enum_values(idl: Idl) -> Iterator[Diagnostic]:
    for enum in idl.enums:
        yield from _duplicates(
            ((v.name, v.span) for v in enum.values), lambda n: f"enum value '{n}'", "duplicate"
        )
        yield from _duplicates(
            ((v.id, v.span) for v in enum.values), lambda i: f"enum value id {i}", "duplicate"
        )


def negative_ids(idl: Idl) -> Iterator[Diagnostic]:
    """Field and argument ids are positions on the wire: 0 or more."""
    for record in _records(idl):
        for field in record.fields:
            if field.id < 0:
                yield _error(field.span, f"field id {field.id} is negative; ids start at 0", "id")
    for _, method in _methods(idl):
        for arg in method.args:
            if arg.id < 0:
                yield _error(arg.span, f"argument id {arg.id} is negative; ids start at 0", "id")


#: Integers msgpack can carry: int64 and uint64.
WIRE_INT_MIN, WIRE_INT_MAX = -(2**63), 2**64 - 1


def enum_value_range(idl: Idl) -> Iterator[Diagnostic]:
    """Enum values travel as msgpack integers: int64 or uint64."""
    for enum in idl.enums:
        for value in enum.values:
            if not WIRE_INT_MIN <= value.id <= WIRE_INT_MAX:
                yield _error(
                    value.span,
                    f"enum value id {value.id} does not fit a msgpack integer "
                    f"({WIRE_INT_MIN} to {WIRE_INT_MAX})",
                    "id",
                )


def reserved_type_names(idl: Idl) -> Iterator[Diagnostic]:
    for declaration in idl.user_types:
        if declaration.name in RESERVED_TYPE_NAMES:
            yield _error(
                declaration.span,
                f"'{declaration.name}' is a built-in type; choose another name",
                "reserved",
            )


def builtin_methods(idl: Idl) -> Iterator[Diagnostic]:
    for _, method in _methods(idl):
        if method.name in BUILTIN_METHODS:
            yield _error(
                method.span,
                f"'{method.name}' is a built-in method every service already has",
                "reserved",
            )


# -- types ---------------------------------------------------------------------------


def void_return(idl: Idl) -> Iterator[Diagnostic]:
    for _, method in _methods(idl):
        if method.return_type == PrimitiveType("void"):
            yield _error(
                method.return_type.span,
                f"method '{method.name}' returns 'void'; a method must return a value "
                "(bool, for instance)",
                "void",
            )


def void_values(idl: Idl) -> Iterator[Diagnostic]:
    """``void`` is only a (rejected) return type; it holds no value anywhere else."""
    nested: list[TypeExpr] = []
    for record in _records(idl):
        nested += (expr for field in record.fields for expr in _walk(field.type))
    for _, method in _methods(idl):
        nested += list(_walk(method.return_type))[1:]  # the return itself is void_return's
        nested += (expr for arg in method.args for expr in _walk(arg.type))
    for expr in nested:
        if expr == PrimitiveType("void"):
            yield _error(expr.span, "'void' is not a value type and cannot be used here", "void")


def nested_nullable(idl: Idl) -> Iterator[Diagnostic]:
    for expr in _all_types(idl):
        if isinstance(expr, NullableType) and isinstance(expr.inner, NullableType):
            written = print_type(expr)
            yield _error(
                expr.span,
                f"'{written}' is nullable twice; write '{print_type(expr.inner)}'",
                "nullable",
            )


def map_keys(idl: Idl) -> Iterator[Diagnostic]:
    """msgpack and Python key maps by scalars: bool, numbers, string, raw or an enum."""
    for expr in _all_types(idl):
        if not isinstance(expr, MapType):
            continue
        key = expr.key
        if isinstance(key, PrimitiveType) and key.name in SCALAR_KEY_NAMES:
            continue
        if isinstance(key, NamedType):
            declared = idl.type_named(key.name)
            if declared is None or isinstance(declared, Enum):
                continue  # an unknown type is reported once, by unknown_types
        yield _error(
            key.span,
            f"'{print_type(key)}' cannot key a map; keys must be scalars "
            "(bool, a number, string, raw or an enum)",
            "map-key",
        )


def exception_bases(idl: Idl) -> Iterator[Diagnostic]:
    """A base must be an exception of this file, and no exception may derive from itself."""
    exceptions = {e.name: e for e in idl.exceptions}
    for exception in idl.exceptions:
        if exception.base is None:
            continue
        declared = idl.type_named(exception.base)
        if declared is None:
            hint = _did_you_mean(exception.base, exceptions)
            yield _error(
                exception.span,
                f"unknown base exception '{exception.base}'{hint}",
                "exception-base",
            )
        elif not isinstance(declared, ExceptionDef):
            kind = "message" if isinstance(declared, Message) else "enum"
            yield _error(
                exception.span,
                f"base '{exception.base}' is a {kind}; an exception can only extend an exception",
                "exception-base",
            )
        else:
            chain = [exception.name]
            current: ExceptionDef | None = declared
            while current is not None and current.name not in chain:
                chain.append(current.name)
                current = exceptions.get(current.base) if current.base else None
            if current is not None and current.name == exception.name:
                path = " < ".join([*chain, exception.name])
                yield _error(
                    exception.span,
                    f"exception '{exception.name}' extends itself ({path})",
                    "exception-base",
                )


def empty_declarations(idl: Idl) -> Iterator[Diagnostic]:
    for message in idl.messages:
        if not message.fields:
            yield _error(
                message.span,
                f"message '{message.name}' has no fields; a message needs at least one",
                "empty",
            )
    for enum in idl.enums:
        if not enum.values:
            yield _error(
                enum.span, f"enum '{enum.name}' has no values; an enum needs at least one", "empty"
            )


# -- annotations -----------------------------------------------------------------------


def unknown_annotations(idl: Idl) -> Iterator[Diagnostic]:
    for annotation in _annotations(idl):
        if annotation.name not in ANNOTATIONS:
            hint = _did_you_mean(annotation.name, ANNOTATIONS, "#@")
            yield _error(
                annotation.span, f"unknown annotation '#@{annotation.name}'{hint}", "annotation"
            )


def annotation_arguments(idl: Idl) -> Iterator[Diagnostic]:
    """Only ``#@cht(n)`` takes an argument, and n counts replicas: at least 1."""
    for annotation in _annotations(idl):
        spec = ANNOTATIONS.get(annotation.name)
        if spec is None or annotation.argument is None:
            continue
        if not spec.takes_argument:
            yield _error(
                annotation.span,
                f"'#@{annotation.name}' takes no argument (only '#@cht(n)' does)",
                "annotation",
            )
        elif annotation.argument < 1:
            yield _error(
                annotation.span,
                f"'#@{annotation.name}({annotation.argument})': the replica count must be "
                "at least 1",
                "annotation",
            )


def annotation_kinds(idl: Idl) -> Iterator[Diagnostic]:
    """Each method has exactly one routing, one lock and one aggregator annotation."""
    for _, method in _methods(idl):
        yield from _annotation_kinds(method)


def _annotation_kinds(method: Method) -> Iterator[Diagnostic]:
    first_of_kind: dict[type, Annotation] = {}
    for annotation in method.annotations:
        spec = ANNOTATIONS.get(annotation.name)
        if spec is None:
            continue
        first = first_of_kind.setdefault(spec.kind, annotation)
        if first is annotation:
            continue
        what = KIND_NAMES[spec.kind]
        if first.name == annotation.name:
            message = f"repeated {what} annotation '#@{annotation.name}'"
        else:
            message = f"conflicting {what} annotations '#@{first.name}' and '#@{annotation.name}'"
        yield _error(annotation.span, message, "annotation")
    for kind in (Routing, Lock, Aggregator):
        if kind not in first_of_kind:
            choices = ", ".join(f"#@{value.value}" for value in kind)
            yield _error(
                method.span,
                f"method '{method.name}' has no {KIND_NAMES[kind]} annotation (one of {choices})",
                "annotation",
            )


def cht_keys(idl: Idl) -> Iterator[Diagnostic]:
    """A ``#@cht`` method is routed by its first argument (lowest id), a string key."""
    for _, method in _methods(idl):
        if method.routing is not Routing.CHT:
            continue
        if not method.args:
            yield _error(
                method.span,
                f"cht method '{method.name}' needs a string key as its first argument",
                "cht",
            )
            continue
        first = min(method.args, key=lambda a: a.id)
        if first.type != PrimitiveType("string"):
            yield _error(
                first.span,
                f"the first argument of cht method '{method.name}' must be a string key, "
                f"not '{print_type(first.type)}'",
                "cht",
            )


#: What each folding aggregator needs the method to return, in words and as a test.
_AGGREGATOR_NEEDS: dict[Aggregator, tuple[str, Callable[[TypeExpr], bool]]] = {
    Aggregator.ALL_AND: ("a bool", lambda t: t == PrimitiveType("bool")),
    Aggregator.ALL_OR: ("a bool", lambda t: t == PrimitiveType("bool")),
    Aggregator.MERGE: ("a map", lambda t: isinstance(t, MapType)),
    Aggregator.CONCAT: ("a list", lambda t: isinstance(t, ListType)),
    Aggregator.ADD: (
        "a number",
        lambda t: isinstance(t, PrimitiveType) and t.name in NUMBER_NAMES,
    ),
}


def aggregator_fits(idl: Idl) -> Iterator[Diagnostic]:
    """Results of several servers (cht, broadcast) must fold with the aggregator."""
    for _, method in _methods(idl):
        if method.routing not in (Routing.CHT, Routing.BROADCAST):
            continue
        aggregator = method.aggregator
        if aggregator is None or aggregator not in _AGGREGATOR_NEEDS:
            continue  # pass and ignore take anything; a missing one is reported elsewhere
        need, fits = _AGGREGATOR_NEEDS[aggregator]
        if fits(method.return_type):
            continue
        where = next(
            (a.span for a in method.annotations if a.name == aggregator.value), method.span
        )
        # The folds that fit this result, pass (which takes anything) last.
        fitting = [
            f"#@{other.value}"
            for other, (_, fits_other) in _AGGREGATOR_NEEDS.items()
            if fits_other(method.return_type)
        ] + ["#@pass"]
        yield _error(
            where,
            f"aggregator '#@{aggregator.value}' of '{method.name}' needs {need} result, and "
            f"'{method.name}' returns '{print_type(method.return_type)}'; use "
            f"{' or '.join(fitting)}",
            "aggregator",
        )


def _annotations(idl: Idl) -> Iterator[Annotation]:
    for _, method in _methods(idl):
        yield from method.annotations


RULES: tuple[Rule, ...] = (
    unknown_types,
    duplicate_types,
    duplicate_methods,
    duplicate_fields,
    duplicate_args,
    duplicate_enum_values,
    negative_ids,
    enum_value_range,
    reserved_type_names,
    builtin_methods,
    void_return,
    void_values,
    nested_nullable,
    map_keys,
    exception_bases,
    empty_declarations,
    unknown_annotations,
    annotation_arguments,
    annotation_kinds,
    cht_keys,
    aggregator_fits,
)


def validate(idl: Idl) -> list[Diagnostic]:
    """Every problem every rule finds in ``idl``, sorted by position; empty when valid."""
    found = [diagnostic for rule in RULES for diagnostic in rule(idl)]
    return sorted(found, key=lambda d: d.sort_key)
