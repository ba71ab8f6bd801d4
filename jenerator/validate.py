"""Semantic checks of a model: every rule runs, every finding is returned, sorted.

One small function per rule; each yields diagnostics. ``validate`` never raises.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator

from jenerator.annotations import ANNOTATIONS, KIND_NAMES
from jenerator.diagnostics import Diagnostic
from jenerator.model import (
    FLOAT_NAMES,
    INTEGER_NAMES,
    PRIMITIVE_NAMES,
    Aggregator,
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
    Span,
    TupleType,
    TypeExpr,
)

#: Methods every service gets from the framework; an IDL may not declare them.
BUILTIN_METHODS = frozenset(
    {"get_config", "save", "load", "get_status", "do_mix", "get_proxy_status"}
)
_SCALAR_KEYS = (INTEGER_NAMES | FLOAT_NAMES) | {"bool", "string", "raw"}

Rule = Callable[[Idl], Iterable[Diagnostic]]

_NEEDS = {
    Aggregator.ALL_AND: "a bool",
    Aggregator.ALL_OR: "a bool",
    Aggregator.MERGE: "a map",
    Aggregator.CONCAT: "a list",
    Aggregator.ADD: "a number",
}


def _error(span: Span, message: str, code: str) -> Diagnostic:
    return Diagnostic.error(span, message, code)


def _walk(expr: TypeExpr) -> Iterator[TypeExpr]:
    yield expr
    match expr:
        case ListType(element=e) | NullableType(inner=e):
            yield from _walk(e)
        case MapType(key=k, value=v):
            yield from _walk(k)
            yield from _walk(v)
        case TupleType(elements=elements):
            for e in elements:
                yield from _walk(e)


def _declared(idl: Idl) -> tuple[Message | ExceptionDef, ...]:
    return (*idl.messages, *idl.exceptions)


def _all_types(idl: Idl) -> Iterator[TypeExpr]:
    for declaration in _declared(idl):
        for field in declaration.fields:
            yield field.type
    for service in idl.services:
        for method in service.methods:
            yield method.return_type
            for arg in method.args:
                yield arg.type


def _duplicates(items: Iterable[tuple[object, Span]], what: str, code: str) -> Iterator[Diagnostic]:
    seen: dict[object, Span] = {}
    for key, span in items:
        if key in seen:
            first = seen[key]
            yield _error(span, f"duplicate {what} '{key}' (first at line {first.line})", code)
        else:
            seen[key] = span


def unknown_types(idl: Idl) -> Iterator[Diagnostic]:
    known = [d.name for d in idl.user_types]
    for root in _all_types(idl):
        for expr in _walk(root):
            if isinstance(expr, NamedType) and idl.type_named(expr.name) is None:
                close = difflib.get_close_matches(expr.name, [*known, *PRIMITIVE_NAMES], n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                yield _error(expr.span, f"unknown type '{expr.name}'{hint}", "unknown-type")


def duplicate_names(idl: Idl) -> Iterator[Diagnostic]:
    yield from _duplicates(((d.name, d.span) for d in idl.user_types), "type name", "duplicate")
    yield from _duplicates(((s.name, s.span) for s in idl.services), "service", "duplicate")
    for service in idl.services:
        yield from _duplicates(((m.name, m.span) for m in service.methods), "method", "duplicate")
        for method in service.methods:
            yield from _duplicates(
                ((a.id, a.span) for a in method.args), "argument id", "duplicate"
            )
            yield from _duplicates(((a.name, a.span) for a in method.args), "argument", "duplicate")
    for declaration in _declared(idl):
        yield from _duplicates(
            ((f.id, f.span) for f in declaration.fields), "field id", "duplicate"
        )
        yield from _duplicates(((f.name, f.span) for f in declaration.fields), "field", "duplicate")
    for enum in idl.enums:
        yield from _duplicates(((v.id, v.span) for v in enum.values), "enum value id", "duplicate")
        yield from _duplicates(((v.name, v.span) for v in enum.values), "enum value", "duplicate")


def reserved_names(idl: Idl) -> Iterator[Diagnostic]:
    for declaration in idl.user_types:
        if declaration.name in PRIMITIVE_NAMES:
            yield _error(declaration.span, f"'{declaration.name}' is a built-in type", "reserved")
    for service in idl.services:
        for method in service.methods:
            if method.name in BUILTIN_METHODS:
                yield _error(
                    method.span,
                    f"'{method.name}' is a built-in method every service already has",
                    "reserved",
                )


def void_types(idl: Idl) -> Iterator[Diagnostic]:
    for root in _all_types(idl):
        for expr in _walk(root):
            if isinstance(expr, PrimitiveType) and expr.name == "void":
                yield _error(
                    expr.span, "'void' is not allowed: every method returns a value", "void"
                )


def method_annotations(idl: Idl) -> Iterator[Diagnostic]:
    for service in idl.services:
        for method in service.methods:
            yield from _method_annotations(method)


def _method_annotations(method: Method) -> Iterator[Diagnostic]:
    by_kind: dict[type, list[str]] = {}
    for annotation in method.annotations:
        spec = ANNOTATIONS.get(annotation.name)
        if spec is None:
            close = difflib.get_close_matches(annotation.name, list(ANNOTATIONS), n=1)
            hint = f"; did you mean '#@{close[0]}'?" if close else ""
            yield _error(
                annotation.span, f"unknown annotation '#@{annotation.name}'{hint}", "annotation"
            )
            continue
        if annotation.argument is not None and not spec.takes_argument:
            yield _error(annotation.span, f"'#@{annotation.name}' takes no argument", "annotation")
        if annotation.argument is not None and annotation.argument < 0:
            yield _error(
                annotation.span,
                f"'#@cht({annotation.argument})': replicas must be >= 0",
                "annotation",
            )
        seen = by_kind.setdefault(spec.kind, [])
        if seen:
            what = KIND_NAMES[spec.kind]
            if annotation.name in seen:
                yield _error(
                    annotation.span,
                    f"repeated {what} annotation '#@{annotation.name}'",
                    "annotation",
                )
            else:
                yield _error(
                    annotation.span,
                    f"conflicting {what} annotations '#@{seen[0]}' and '#@{annotation.name}'",
                    "annotation",
                )
        seen.append(annotation.name)
    for kind in (Routing, Lock, Aggregator):
        if kind not in by_kind:
            names = ", ".join(f"#@{v.value}" for v in kind)
            yield _error(
                method.span,
                f"method '{method.name}' has no {KIND_NAMES[kind]} annotation (one of {names})",
                "annotation",
            )


def cht_keys(idl: Idl) -> Iterator[Diagnostic]:
    for service in idl.services:
        for method in service.methods:
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
                    f"the first argument of cht method '{method.name}' must be a string key",
                    "cht",
                )


def aggregator_fits(idl: Idl) -> Iterator[Diagnostic]:
    for service in idl.services:
        for method in service.methods:
            if method.routing not in (Routing.CHT, Routing.BROADCAST):
                continue
            aggregator, ret = method.aggregator, method.return_type
            fits = (
                {
                    Aggregator.ALL_AND: ret == PrimitiveType("bool"),
                    Aggregator.ALL_OR: ret == PrimitiveType("bool"),
                    Aggregator.MERGE: isinstance(ret, MapType),
                    Aggregator.CONCAT: isinstance(ret, ListType),
                    Aggregator.ADD: isinstance(ret, PrimitiveType)
                    and ret.name in INTEGER_NAMES | FLOAT_NAMES,
                }.get(aggregator, True)
                if aggregator is not None
                else True
            )
            if not fits:
                assert aggregator is not None
                need = _NEEDS[aggregator]
                where = next(
                    (a.span for a in method.annotations if a.name == aggregator.value),
                    method.span,
                )
                yield _error(
                    where,
                    f"aggregator '#@{aggregator.value}' of '{method.name}' needs {need} result",
                    "aggregator",
                )


def map_keys(idl: Idl) -> Iterator[Diagnostic]:
    for root in _all_types(idl):
        for expr in _walk(root):
            if not isinstance(expr, MapType):
                continue
            key = expr.key
            ok = (isinstance(key, PrimitiveType) and key.name in _SCALAR_KEYS) or (
                isinstance(key, NamedType) and isinstance(idl.type_named(key.name), Enum)
            )
            if not ok:
                yield _error(
                    key.span,
                    "map keys must be scalars (bool, numbers, string, raw or an enum)",
                    "map-key",
                )


def exception_bases(idl: Idl) -> Iterator[Diagnostic]:
    for exception in idl.exceptions:
        if exception.base is not None and not isinstance(
            idl.type_named(exception.base), ExceptionDef
        ):
            yield _error(
                exception.span, f"unknown base exception '{exception.base}'", "unknown-type"
            )


def empty_declarations(idl: Idl) -> Iterator[Diagnostic]:
    for message in idl.messages:
        if not message.fields:
            yield _error(message.span, f"message '{message.name}' has no fields", "empty")
    for enum in idl.enums:
        if not enum.values:
            yield _error(enum.span, f"enum '{enum.name}' has no values", "empty")


RULES: tuple[Rule, ...] = (
    unknown_types, duplicate_names, reserved_names, void_types, method_annotations, cht_keys,
    aggregator_fits, map_keys, exception_bases, empty_declarations,
)  # fmt: skip


def validate(idl: Idl) -> list[Diagnostic]:
    """Every problem found by every rule, sorted by position."""
    found = [d for rule in RULES for d in rule(idl)]
    return sorted(found, key=lambda d: (d.span.line, d.span.column, d.message))
