"""Render contexts: plain data built from a validated model, shared by both targets.

Everything a template prints is decided here (Python names, annotations, descriptor
expressions, imports, docstrings), so templates only lay text out. Two IDL names that
would become the same Python name are reported as an :class:`~jenerator.errors.IdlError`
before anything is rendered.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from jenerator import naming
from jenerator.diagnostics import Diagnostic
from jenerator.errors import IdlError
from jenerator.model import (
    Enum,
    ExceptionDef,
    Field,
    Idl,
    Lock,
    Message,
    Method,
    Routing,
    Service,
    Span,
    TypeExpr,
)
from jenerator.pyexpr import INDENT, LINE_LIMIT, Expr, call, layout, tuple_of
from jenerator.targets.imports import isort_order
from jenerator.typemap import TypeMapper

_ENUM_RESERVED = frozenset({"name", "value", "mro"})


@dataclass(frozen=True)
class FieldContext:
    name: str
    wire_name: str
    annotation: str
    descriptor: Expr
    doc: str


@dataclass(frozen=True)
class MessageContext:
    class_name: str
    wire_name: str
    doc: str
    fields: tuple[FieldContext, ...]
    base: str | None
    is_exception: bool
    #: Every field in wire (and dataclass) order, inherited ones included.
    wire_fields: tuple[FieldContext, ...] = ()

    @property
    def bind_statement(self) -> str:
        """``Cls.WIRE.bind((("field", descriptor), ...))`` laid out within the line limit."""
        fields = tuple_of(*(tuple_of(f'"{f.name}"', f.descriptor) for f in self.wire_fields))
        return layout(call(f"{self.class_name}.WIRE.bind", fields))


@dataclass(frozen=True)
class EnumValueContext:
    name: str
    id: int


@dataclass(frozen=True)
class EnumContext:
    class_name: str
    doc: str
    values: tuple[EnumValueContext, ...]


@dataclass(frozen=True)
class ArgContext:
    name: str
    annotation: str


@dataclass(frozen=True)
class MethodContext:
    wire_name: str
    client_name: str
    serv_name: str
    constant: str
    doc: str
    args: tuple[ArgContext, ...]
    return_annotation: str
    lock: str
    routing: str
    replicas: int
    aggregator: str

    @property
    def params(self) -> str:
        """``key: str, value: str`` (without ``self``)."""
        return ", ".join(f"{a.name}: {a.annotation}" for a in self.args)

    @property
    def arg_names(self) -> str:
        return ", ".join(a.name for a in self.args)

    signature: str
    """Name of the method's signature constant in the types module (``KVS_PUT``)."""
    signature_statement: str
    """The statement defining that constant, laid out within the line limit."""

    def call_line(self, indent: int, *, awaited: bool = False) -> str:
        """``return self._call(types.SIG, args...)`` laid out within the line limit."""
        lead = "return await " if awaited else "return "
        target = call("self._call", f"types.{self.signature}", *(a.name for a in self.args))
        return layout(target, indent, lead=lead)

    def def_line(self, name: str, indent: int, *, is_async: bool = False, prefix: str = "") -> str:
        """``def name(self, args) -> ret:`` laid out within the line limit."""
        params = tuple(f"{a.name}: {a.annotation}" for a in self.args)
        keyword = "async def" if is_async else "def"
        return layout_def(
            f"{keyword} {prefix}{name}", ("self", *params), self.return_annotation, indent
        )


@dataclass(frozen=True)
class ServiceContext:
    wire_name: str
    class_name: str
    doc: str
    methods: tuple[MethodContext, ...]

    @property
    def proxied_methods(self) -> tuple[MethodContext, ...]:
        """Methods a proxy exposes (all but ``internal`` ones)."""
        return tuple(m for m in self.methods if m.routing != "INTERNAL")

    @property
    def use_cht(self) -> bool:
        return any(m.routing == "CHT" for m in self.methods)


@dataclass(frozen=True)
class IdlContext:
    """Everything the templates of one IDL need."""

    source_name: str
    base_name: str
    messages: tuple[MessageContext, ...]
    enums: tuple[EnumContext, ...]
    services: tuple[ServiceContext, ...]
    types_need_datum: bool
    methods_need_datum: bool
    methods_need_types: bool

    @property
    def exceptions(self) -> tuple[MessageContext, ...]:
        """The IDL's exceptions: a generated client raises them again."""
        return tuple(m for m in self.messages if m.is_exception)

    @property
    def types_exports(self) -> tuple[str, ...]:
        """Every public name of the types module, sorted."""
        names = [e.class_name for e in self.enums] + [m.class_name for m in self.messages]
        names += [m.signature for s in self.services for m in s.methods]
        if self.exceptions:
            names.append("EXCEPTIONS")
        return tuple(sorted(names, key=isort_order))


def layout_def(head: str, params: tuple[str, ...], returns: str, indent: int) -> str:
    """A ``def`` line, with one parameter per line when it does not fit."""
    pad = INDENT * indent
    line = f"{pad}{head}({', '.join(params)}) -> {returns}:"
    if len(line) <= LINE_LIMIT:
        return line
    inner = "".join(f"{pad}{INDENT}{p},\n" for p in params)
    return f"{pad}{head}(\n{inner}{pad}) -> {returns}:"


def docstring(lines: tuple[str, ...], fallback: str) -> str:
    """Docstring body from ``#-`` lines (dedented, quotes made safe) or ``fallback``."""
    text = textwrap.dedent("\n".join(lines)).strip() if lines else ""
    if not text:
        text = fallback
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


class _NameRegistry:
    """Collects the Python names given to IDL names and reports collisions."""

    def __init__(self) -> None:
        self._taken: dict[tuple[str, str], tuple[str, Span]] = {}
        self.diagnostics: list[Diagnostic] = []

    def claim(self, scope: str, python_name: str, idl_name: str, span: Span) -> str:
        key = (scope, python_name)
        previous = self._taken.get(key)
        if previous is not None and previous[0] != idl_name:
            self.diagnostics.append(
                Diagnostic.error(
                    span,
                    f"'{idl_name}' and '{previous[0]}' both become '{python_name}' in Python; "
                    "rename one of them",
                )
            )
        else:
            self._taken[key] = (idl_name, span)
        return python_name


def build_context(idl: Idl, source_name: str, types_prefix: str) -> IdlContext:
    """Build the render context of ``idl``.

    ``types_prefix`` is how modules other than the types module reach the generated
    classes (``"types."`` when they ``import ..._types as types``).
    """
    names = _NameRegistry()
    local = TypeMapper(idl)
    remote = TypeMapper(idl, types_prefix)

    declared: tuple[Message | ExceptionDef, ...] = (*idl.messages, *_bases_first(idl.exceptions))
    enums = tuple(_enum_context(e, names) for e in idl.enums)
    built: dict[str, MessageContext] = {}
    for declaration in declared:
        built[declaration.name] = _message_context(declaration, local, names, built)
    messages = tuple(built.values())
    services = tuple(_service_context(s, remote, names) for s in idl.services)
    if names.diagnostics:
        raise IdlError(names.diagnostics)

    method_types: list[TypeExpr] = [
        t
        for s in idl.services
        for m in s.methods
        for t in (m.return_type, *(a.type for a in m.args))
    ]
    field_types: list[TypeExpr] = [f.type for m in declared for f in m.fields]
    return IdlContext(
        source_name=source_name,
        base_name=source_name.rsplit("/", 1)[-1].removesuffix(".idl"),
        messages=messages,
        enums=enums,
        services=services,
        types_need_datum=any(local.uses_datum(t) for t in field_types),
        methods_need_datum=any(local.uses_datum(t) for t in method_types),
        methods_need_types=any(local.named_types(t) for t in method_types),
    )


def _enum_context(enum: Enum, names: _NameRegistry) -> EnumContext:
    class_name = names.claim("types module", naming.class_name(enum.name), enum.name, enum.span)
    values = tuple(
        EnumValueContext(
            names.claim(
                f"enum {enum.name}",
                naming.python_identifier(value.name, _ENUM_RESERVED),
                value.name,
                value.span,
            ),
            value.id,
        )
        for value in enum.values
    )
    return EnumContext(class_name, docstring(enum.doc, f"The ``{enum.name}`` enum."), values)


def _bases_first(exceptions: tuple[ExceptionDef, ...]) -> list[ExceptionDef]:
    """Exceptions ordered so that each base comes before what derives from it."""
    by_name = {e.name: e for e in exceptions}
    ordered: list[ExceptionDef] = []

    def visit(exception: ExceptionDef, path: frozenset[str]) -> None:
        if exception in ordered or exception.name in path:
            return
        base = by_name.get(exception.base or "")
        if base is not None:
            visit(base, path | {exception.name})
        ordered.append(exception)

    for exception in exceptions:
        visit(exception, frozenset())
    return ordered


def _message_context(
    message: Message | ExceptionDef,
    mapper: TypeMapper,
    names: _NameRegistry,
    built: dict[str, MessageContext],
) -> MessageContext:
    class_name = names.claim(
        "types module", naming.class_name(message.name), message.name, message.span
    )
    is_exception = isinstance(message, ExceptionDef)
    fields = sorted(message.fields, key=lambda f: f.id)
    kind = "exception" if is_exception else "message"
    base = None
    if isinstance(message, ExceptionDef) and message.base is not None:
        base = naming.class_name(message.base)
    own = tuple(_field_context(message.name, f, mapper, names) for f in fields)
    wire = list(own)
    parent = built.get(message.base) if isinstance(message, ExceptionDef) and message.base else None
    if parent is not None:
        # Dataclass order: the base's fields first (a redeclared one keeps its place),
        # then the new ones; the wire array follows the same order.
        mine = {f.name: f for f in own}
        wire = [mine.pop(f.name, f) for f in parent.wire_fields] + list(mine.values())
    return MessageContext(
        class_name=class_name,
        wire_name=message.name,
        doc=docstring(message.doc, f"The ``{message.name}`` {kind}."),
        fields=own,
        base=base if parent is not None else None,
        is_exception=is_exception,
        wire_fields=tuple(wire),
    )


def _field_context(
    owner: str, field: Field, mapper: TypeMapper, names: _NameRegistry
) -> FieldContext:
    name = names.claim(
        f"message {owner}",
        naming.python_identifier(field.name, naming.MESSAGE_RESERVED),
        field.name,
        field.span,
    )
    return FieldContext(
        name=name,
        wire_name=field.name,
        annotation=mapper.annotation(field.type),
        descriptor=mapper.descriptor(field.type),
        doc=docstring(field.doc, ""),
    )


def _service_context(service: Service, mapper: TypeMapper, names: _NameRegistry) -> ServiceContext:
    class_name = names.claim(
        "services", naming.class_name(service.name), service.name, service.span
    )
    methods = tuple(_method_context(service, m, mapper, names) for m in service.methods)
    return ServiceContext(
        wire_name=service.name,
        class_name=class_name,
        doc=docstring(service.doc, f"The ``{service.name}`` service."),
        methods=methods,
    )


def _method_context(
    service: Service, method: Method, mapper: TypeMapper, names: _NameRegistry
) -> MethodContext:
    scope = f"service {service.name}"
    client_name = names.claim(
        scope + " client",
        naming.python_identifier(method.name, naming.CLIENT_RESERVED),
        method.name,
        method.span,
    )
    serv_name = names.claim(
        scope + " server",
        naming.python_identifier(method.name, naming.SERVER_RESERVED),
        method.name,
        method.span,
    )
    ordered = sorted(method.args, key=lambda a: a.id)
    args = tuple(
        ArgContext(
            names.claim(f"{scope} {method.name}", naming.argument_name(a.name), a.name, a.span),
            mapper.annotation(a.type),
        )
        for a in ordered
    )
    signature = names.claim(
        "types module",
        naming.constant_name(service.name) + "_" + naming.constant_name(method.name),
        f"{service.name}.{method.name}",
        method.span,
    )
    local = TypeMapper(mapper.idl)
    # The IDL names of the arguments (and their ids, unless they are 0, 1, ...), so errors
    # name an argument as the IDL does.
    signature_args: list[Expr] = [
        f'"{method.name}"',
        tuple_of(*(local.descriptor(a.type) for a in ordered)),
        local.descriptor(method.return_type),
    ]
    if ordered:
        signature_args.append(tuple_of(*(f'"{a.name}"' for a in ordered)))
        if [a.id for a in ordered] != list(range(len(ordered))):
            signature_args.append(tuple_of(*(str(a.id) for a in ordered)))
    statement = layout(call("Signature", *signature_args), lead=f"{signature}: typing.Final = ")
    routing = method.routing or Routing.RANDOM
    lock = method.lock or Lock.ANALYSIS
    aggregator = method.aggregator
    return MethodContext(
        wire_name=method.name,
        client_name=client_name,
        serv_name=serv_name,
        constant=names.claim(
            scope + " constants", "_" + naming.constant_name(method.name), method.name, method.span
        ),
        doc=docstring(method.doc, f"The ``{method.name}`` method of ``{service.name}``."),
        args=args,
        return_annotation=mapper.annotation(method.return_type),
        signature=signature,
        signature_statement=statement,
        lock=lock.name,
        routing=routing.name,
        replicas=method.cht_replicas or 0,
        aggregator=aggregator.value if aggregator is not None else "pass",
    )
