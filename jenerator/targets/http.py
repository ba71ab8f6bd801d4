"""The ``http`` target: ``NAME_http.py``, a FastAPI gateway forwarding to a server or proxy.

The module is self-contained (it needs only ``runtime``): pydantic models for the IDL's
messages, exceptions and enums, an arguments model and a result model per method, a
:class:`runtime.http.spec.MethodSpec` per method with the shapes that convert JSON to
wire values and back, one ``POST /v1/METHOD`` endpoint per method, ``create_app`` and
``main``. Field and argument names that Python or pydantic cannot take (keywords,
``BaseModel`` attributes, leading underscores) get a Python name with the IDL name as
the JSON alias, so the JSON always spells names as the IDL does.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass

from jenerator import naming
from jenerator.diagnostics import Diagnostic
from jenerator.errors import IdlError
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
    TupleType,
    TypeExpr,
)
from jenerator.pyexpr import Expr, call, layout, tuple_of
from jenerator.render import render
from jenerator.targets import Options
from jenerator.targets.context import MessageContext, build_context, docstring, layout_def
from jenerator.targets.imports import isort_order
from jenerator.writer import OutputFile

#: Attributes of pydantic's BaseModel (and of our models) a field must not shadow.
MODEL_RESERVED: frozenset[str] = frozenset(
    {
        "SHAPE", "construct", "copy", "dict", "from_orm", "json", "parse_file", "parse_obj",
        "parse_raw", "schema", "schema_json", "update_forward_refs", "validate",
    }
)  # fmt: skip

#: Module-level names of the generated module that IDL-derived names must leave alone.
MODULE_NAMES: frozenset[str] = frozenset(
    {
        "SERVICE", "router", "create_app", "main", "enum", "sys", "typing", "fastapi",
        "pydantic", "build_app", "forward", "run_gateway", "GatewaySettings", "_CONFIG",
    }
)  # fmt: skip

_SCALARS: dict[str, tuple[str, str]] = {
    "bool": ("Bool", "BOOL"), "byte": ("Byte", "BYTE"), "short": ("Short", "SHORT"),
    "int": ("Int", "INT"), "long": ("Long", "LONG"), "ubyte": ("UByte", "UBYTE"),
    "ushort": ("UShort", "USHORT"), "uint": ("UInt", "UINT"), "ulong": ("ULong", "ULONG"),
    "float": ("Float", "FLOAT"), "double": ("Double", "DOUBLE"), "string": ("String", "STRING"),
    "raw": ("Raw", "RAW"), "object": ("Object", "OBJECT"), "datum": ("Datum", "DATUM"),
}  # fmt: skip


@dataclass(frozen=True)
class ModelField:
    """A field of a generated pydantic model."""

    name: str
    annotation: str
    default: str
    doc: str


@dataclass(frozen=True)
class Model:
    class_name: str
    doc: str
    fields: tuple[ModelField, ...]
    #: The statement binding the message's shape (messages only).
    bind: str = ""
    #: The IDL name (messages only: the shape's name).
    wire_name: str = ""


@dataclass(frozen=True)
class Endpoint:
    wire_name: str
    function: str
    constant: str
    doc: str
    args_model: str | None
    result_model: str
    spec_statement: str
    def_line: str


class _Names:
    """Unique module-level names: a taken name gets a trailing underscore."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)

    def claim(self, name: str) -> str:
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name


class _Types:
    """IDL types → pydantic annotations and shape expressions of the generated module."""

    def __init__(self, idl: Idl, classes: dict[str, str]) -> None:
        self.idl = idl
        self.classes = classes

    def annotation(self, expr: TypeExpr) -> str:
        match expr:
            case PrimitiveType(name=name):
                return "None" if name == "void" else f"_j.{_SCALARS[name][0]}"
            case ListType(element=element):
                return f"list[{self.annotation(element)}]"
            case MapType(key=key, value=value):
                return f"dict[{self.annotation(key)}, {self.annotation(value)}]"
            case TupleType(elements=elements):
                return f"tuple[{', '.join(self.annotation(e) for e in elements) or '()'}]"
            case NullableType(inner=inner):
                return f"{self.annotation(inner)} | None"
            case NamedType(name=name):
                return self.classes[name]
        raise AssertionError(f"unhandled type node {expr!r}")

    def shape(self, expr: TypeExpr) -> Expr:
        match expr:
            case PrimitiveType(name=name):
                return "_s.VOID" if name == "void" else f"_s.{_SCALARS[name][1]}"
            case ListType(element=element):
                return call("_s.ListShape", self.shape(element))
            case MapType(key=key, value=value):
                return call("_s.MapShape", self.shape(key), self.shape(value))
            case TupleType(elements=elements):
                return call("_s.TupleShape", *(self.shape(e) for e in elements))
            case NullableType(inner=inner):
                return call("_s.NullableShape", self.shape(inner))
            case NamedType(name=name):
                if isinstance(self.idl.type_named(name), Enum):
                    return call("_s.EnumShape", self.classes[name])
                return f"{self.classes[name]}.SHAPE"
        raise AssertionError(f"unhandled type node {expr!r}")


def field_name(name: str, taken: set[str]) -> str:
    """A pydantic field name for the IDL name ``name`` (see the module docstring)."""
    python = name
    if python.startswith("_"):
        python = python.lstrip("_") or "field"
    if python.startswith("model_"):
        python += "_"
    while keyword.iskeyword(python) or python in MODEL_RESERVED or python in taken:
        python += "_"
    taken.add(python)
    return python


def _model_field(
    name: str, expr: TypeExpr, types: _Types, taken: set[str], doc: str = ""
) -> tuple[ModelField, str]:
    python = field_name(name, taken)
    nullable = isinstance(expr, NullableType)
    if python != name:
        default = (
            f' = pydantic.Field(None, alias="{name}")'
            if nullable
            else (f' = pydantic.Field(alias="{name}")')
        )
    else:
        default = " = None" if nullable else ""
    return ModelField(python, types.annotation(expr), default, doc), python


def build(idl: Idl, options: Options) -> list[OutputFile]:
    """``NAME_http.py`` for ``idl`` (which must hold exactly one service)."""
    if len(idl.services) != 1:
        message = f"the http target needs exactly one service; found {len(idl.services)}"
        if len(idl.services) > 1:
            raise IdlError([Diagnostic.error(idl.services[1].span, message)])
        raise IdlError([Diagnostic.at_file(idl.path, message)])
    ctx = build_context(idl, options.source_name, "")
    names = _Names(set(MODULE_NAMES))
    classes = {e.wire_name: names.claim(e.class_name) for e in ctx.messages}
    enum_classes = {
        enum.name: names.claim(c.class_name) for enum, c in zip(idl.enums, ctx.enums, strict=True)
    }
    types = _Types(idl, {**classes, **enum_classes})
    models = [_message_model(idl, m, classes[m.wire_name], types) for m in ctx.messages]
    service, methods = ctx.services[0], idl.services[0].methods
    endpoints: list[Endpoint] = []
    for method, mctx in zip(methods, service.methods, strict=True):
        endpoint, extra = _endpoint(method, mctx.doc, mctx.lock, mctx.routing, types, names)
        endpoints.append(endpoint)
        models.extend(extra)
    exports = [*enum_classes.values(), *(m.class_name for m in models), "SERVICE"]
    exports += [e.constant for e in endpoints] + ["create_app", "main", "router"]
    text = render(
        "http/http.py.j2",
        ctx=ctx,
        service=service,
        enums=[(enum_classes[e.name], ectx) for e, ectx in zip(idl.enums, ctx.enums, strict=True)],
        models=models,
        messages=[m for m in models if m.bind],
        endpoints=endpoints,
        exports=sorted(exports, key=isort_order),
        service_doc=service.doc,
    )
    return [OutputFile(f"{ctx.base_name}_http.py", text)]


def _declared_fields(idl: Idl, message: MessageContext) -> list[Field]:
    """The IDL fields of a message or exception in wire order (a base's first)."""
    declaration = idl.type_named(message.wire_name)
    assert isinstance(declaration, Message | ExceptionDef)
    own = {f.name: f for f in declaration.fields}
    base = declaration.base if isinstance(declaration, ExceptionDef) else None
    chain: dict[str, Field] = {}
    while base is not None:
        parent = idl.type_named(base)
        if not isinstance(parent, ExceptionDef):
            break
        for f in parent.fields:
            chain.setdefault(f.name, f)
        base = parent.base
    return [own.get(f.wire_name) or chain[f.wire_name] for f in message.wire_fields]


def _message_model(idl: Idl, message: MessageContext, class_name: str, types: _Types) -> Model:
    taken: set[str] = set()
    fields: list[ModelField] = []
    rows: list[Expr] = []
    for declared, fctx in zip(_declared_fields(idl, message), message.wire_fields, strict=True):
        field, python = _model_field(declared.name, declared.type, types, taken, fctx.doc)
        fields.append(field)
        rows.append(tuple_of(f'"{declared.name}"', f'"{python}"', types.shape(declared.type)))
    bind = layout(call(f"{class_name}.SHAPE.bind", tuple_of(*rows)))
    return Model(class_name, message.doc, tuple(fields), bind, message.wire_name)


def _endpoint(
    method: Method, doc: str, lock: str, routing: str, types: _Types, names: _Names
) -> tuple[Endpoint, list[Model]]:
    camel = naming.class_name(method.name)
    models: list[Model] = []
    args_model = None
    arg_rows: list[Expr] = []
    ordered = sorted(method.args, key=lambda a: a.id)
    if ordered:
        args_model = names.claim(f"{camel}Args")
        taken: set[str] = set()
        fields = []
        for a in ordered:
            field, python = _model_field(a.name, a.type, types, taken)
            fields.append(field)
            arg_rows.append(call("_spec.arg", str(a.id), f'"{a.name}"', f'"{python}"',
                                 types.shape(a.type)))  # fmt: skip
        args_doc = docstring((), f"The arguments of ``{method.name}``.")
        models.append(Model(args_model, args_doc, tuple(fields)))
    result_model = names.claim(f"{camel}Result")
    result_doc = docstring((), f"The answer of ``{method.name}``.")
    result = ModelField("result", types.annotation(method.return_type), "", "")
    models.append(Model(result_model, result_doc, (result,)))
    constant = names.claim(naming.constant_name(method.name))
    spec = call(
        "_spec.MethodSpec",
        f'"{method.name}"',
        args_model or "None",
        tuple_of(*arg_rows),
        types.shape(method.return_type),
        f'lock="{lock.lower()}"',
        f'routing="{routing.lower()}"',
    )
    statement = layout(spec, lead=f"{constant}: typing.Final = ")
    function = names.claim(f"post_{method.name}")
    params: tuple[str, ...] = ("request: fastapi.Request",)
    if args_model:
        params = (f"args: {args_model}", *params)
    head = layout_def(f"async def {function}", params, "fastapi.Response", 0)
    endpoint = Endpoint(
        method.name, function, constant, doc, args_model, result_model, statement, head
    )
    return endpoint, models
