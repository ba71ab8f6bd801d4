"""Model → IDL text: the inverse of the front end.

``print_idl(idl)`` writes every declaration back as MessagePack-IDL that parses to an equal
model (spans aside). Doc lines are written as ``#-`` lines above their node. Output order
is includes, enums, messages, exceptions, services; messages may refer to later ones.
"""

from __future__ import annotations

from jenerator.model import (
    Enum,
    ExceptionDef,
    Field,
    Idl,
    ListType,
    MapType,
    Message,
    Method,
    NamedType,
    NullableType,
    PrimitiveType,
    Service,
    TupleType,
    TypeExpr,
)


def print_type(expr: TypeExpr) -> str:
    match expr:
        case PrimitiveType(name=name) | NamedType(name=name):
            return name
        case ListType(element=element):
            return f"list<{print_type(element)}>"
        case MapType(key=key, value=value):
            return f"map<{print_type(key)}, {print_type(value)}>"
        case TupleType(elements=elements):
            return "tuple<" + ", ".join(print_type(e) for e in elements) + ">"
        case NullableType(inner=inner):
            return f"{print_type(inner)}?"
    raise AssertionError(f"unhandled type node {expr!r}")


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\r", "\\r").replace("\b", "\\b").replace("\t", "\\t") + '"'


def _doc(lines: tuple[str, ...], indent: str) -> list[str]:
    return [f"{indent}#-{line}" for line in lines]


def _fields(fields: tuple[Field, ...]) -> list[str]:
    out: list[str] = []
    for field in fields:
        out += _doc(field.doc, "  ")
        out.append(f"  {field.id}: {print_type(field.type)} {field.name}")
    return out


def _message(message: Message) -> list[str]:
    cpp = f"({_quote(message.cpp_type)})" if message.cpp_type is not None else ""
    return [
        *_doc(message.doc, ""),
        f"message {message.name}{cpp} {{",
        *_fields(message.fields),
        "}",
    ]


def _exception(exception: ExceptionDef) -> list[str]:
    base = f" < {exception.base}" if exception.base else ""
    head = f"exception {exception.name}{base} {{"
    return [*_doc(exception.doc, ""), head, *_fields(exception.fields), "}"]


def _enum(enum: Enum) -> list[str]:
    values: list[str] = []
    for value in enum.values:
        values += _doc(value.doc, "  ")
        values.append(f"  {value.id}: {value.name}")
    return [*_doc(enum.doc, ""), f"enum {enum.name} {{", *values, "}"]


def _method(method: Method) -> list[str]:
    annotations = " ".join(
        f"#@{a.name}" + (f"({a.argument})" if a.argument is not None else "")
        for a in method.annotations
    )
    args = ", ".join(f"{a.id}: {print_type(a.type)} {a.name}" for a in method.args)
    lines = _doc(method.doc, "  ")
    if annotations:
        lines.append(f"  {annotations}")
    lines.append(f"  {print_type(method.return_type)} {method.name}({args})")
    return lines


def _service(service: Service) -> list[str]:
    body: list[str] = []
    for method in service.methods:
        body += _method(method)
    return [*_doc(service.doc, ""), f"service {service.name} {{", *body, "}"]


def print_idl(idl: Idl) -> str:
    """IDL text that parses back to a model equal to ``idl``."""
    blocks = [[f"%include {_quote(i.path)}"] for i in idl.includes]
    blocks += [_enum(e) for e in idl.enums]
    blocks += [_message(m) for m in idl.messages]
    blocks += [_exception(e) for e in idl.exceptions]
    blocks += [_service(s) for s in idl.services]
    return "\n\n".join("\n".join(block) for block in blocks) + "\n"
