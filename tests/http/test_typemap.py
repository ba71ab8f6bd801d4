"""The JSON ↔ IDL type mapping, for every message and every method of every IDL.

Each IDL we ship (and each single-service IDL of the jenerator corpus) is generated with
the ``http`` target and the ``server`` target. Hypothesis draws JSON for a message or a
method's arguments from the IDL types; the JSON goes through the generated pydantic model
(as a request body would), to wire values, through msgpack as the wire carries them, is
decoded by the server target's descriptors (what a server expects), and comes back to
JSON equal to what was sent, once normalised (ints as floats where the IDL says double,
a datum's shorthand as its three lists, omitted nullable fields as null). The JSON text
written straight from the wire value is the text of that JSON value.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jenerator import naming
from jenerator.frontend import load_idl_file
from jenerator.model import (
    Enum,
    ExceptionDef,
    Field,
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
from jenerator.targets import Options, generate
from jenerator.writer import write_all
from runtime.http.jsontext import dumps

REPO = Path(__file__).resolve().parents[2]
IDLS = sorted([*(REPO / "idl").glob("*.idl"), *(REPO / "tests/jenerator/cases/ok").glob("*.idl")])
INTS = {"byte": 8, "short": 16, "int": 32, "long": 64}
UINTS = {"ubyte": 8, "ushort": 16, "uint": 32, "ulong": 64}

_built: dict[str, tuple[Idl, ModuleType, ModuleType]] = {}
_root: list[Path] = []


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def modules(path: Path, tmp: Path) -> tuple[Idl, ModuleType, ModuleType]:
    """The IDL, its generated http module and its server-target types module."""
    if path.stem not in _built:
        idl = load_idl_file(str(path))
        out = tmp / path.stem
        write_all(generate(idl, "http", Options(path.name)), out)
        write_all(generate(idl, "server", Options(path.name)), out)
        http = _load(f"_typemap_{path.stem}_http", out / f"{path.stem}_http.py")
        types = _load(f"_typemap_{path.stem}_types", out / f"{path.stem}_types.py")
        _built[path.stem] = (idl, http, types)
    return _built[path.stem]


def fields_of(idl: Idl, declaration: Message | ExceptionDef) -> list[Field]:
    """Wire-order fields, an exception's bases' first (as both targets lay them out)."""
    own = sorted(declaration.fields, key=lambda f: f.id)
    if isinstance(declaration, ExceptionDef) and declaration.base:
        base = idl.type_named(declaration.base)
        assert isinstance(base, ExceptionDef)
        inherited = fields_of(idl, base)
        mine = {f.name: f for f in own}
        return [mine.pop(f.name, f) for f in inherited] + list(mine.values())
    return own


def strategy(idl: Idl, expr: TypeExpr, depth: int = 0) -> st.SearchStrategy[Any]:
    """JSON values of ``expr``."""
    deep = depth >= 2
    match expr:
        case PrimitiveType(name="bool"):
            return st.booleans()
        case PrimitiveType(name=name) if name in INTS:
            return st.integers(-(1 << (INTS[name] - 1)), (1 << (INTS[name] - 1)) - 1)
        case PrimitiveType(name=name) if name in UINTS:
            return st.integers(0, (1 << UINTS[name]) - 1)
        case PrimitiveType(name="float" | "double"):
            return st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(
                -999, 999
            )
        case PrimitiveType(name="string"):
            return st.text(max_size=8)
        case PrimitiveType(name="raw"):
            return st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode())
        case PrimitiveType(name="object"):
            scalar = st.none() | st.booleans() | st.integers(-99, 99) | st.text(max_size=4)
            return scalar | st.lists(scalar, max_size=3)
        case PrimitiveType(name="datum"):
            value = st.text(max_size=4) | st.floats(allow_nan=False, allow_infinity=False, width=32)
            flat = st.dictionaries(st.text(max_size=4), value, max_size=3)
            pair = st.tuples(st.text(max_size=4), st.text(max_size=4)).map(list)
            num = st.tuples(st.text(max_size=4), st.integers(-9, 9)).map(list)
            lists = st.fixed_dictionaries(
                {}, optional={"string_values": st.lists(pair, max_size=2),
                              "num_values": st.lists(num, max_size=2)},
            )  # fmt: skip
            return flat | lists
        case ListType(element=element):
            return st.just([]) if deep else st.lists(strategy(idl, element, depth + 1), max_size=2)
        case MapType(key=key, value=value):
            if deep:
                return st.just({})
            keys = strategy(idl, key, depth + 1).map(json_key)
            return st.dictionaries(keys, strategy(idl, value, depth + 1), max_size=2)
        case TupleType(elements=elements):
            return st.tuples(*(strategy(idl, e, depth + 1) for e in elements)).map(list)
        case NullableType(inner=inner):
            return st.none() if deep else st.none() | strategy(idl, inner, depth + 1)
        case NamedType(name=name):
            declaration = idl.type_named(name)
            if isinstance(declaration, Enum):
                return st.sampled_from([v.id for v in declaration.values])
            assert isinstance(declaration, Message | ExceptionDef)
            fields = fields_of(idl, declaration)
            required = {f.name: strategy(idl, f.type, depth + 1) for f in fields
                        if not isinstance(f.type, NullableType)}  # fmt: skip
            optional = {f.name: strategy(idl, f.type, depth + 1) for f in fields
                        if isinstance(f.type, NullableType)}  # fmt: skip
            return st.fixed_dictionaries(required, optional=optional)
    raise AssertionError(expr)


def json_key(value: object) -> str:
    """A map key as JSON writes it."""
    return json.dumps(value) if not isinstance(value, str) else value


def normal(idl: Idl, expr: TypeExpr, value: Any) -> Any:
    """What the gateway gives back for ``value`` sent as ``expr``."""
    match expr:
        case PrimitiveType(name="float" | "double"):
            return float(value)
        case PrimitiveType(name="datum"):
            if "string_values" in value or "num_values" in value or not value:
                return {
                    "string_values": value.get("string_values", []),
                    "num_values": [[k, float(v)] for k, v in value.get("num_values", [])],
                    "binary_values": [],
                }
            return {
                "string_values": [[k, v] for k, v in value.items() if isinstance(v, str)],
                "num_values": [[k, float(v)] for k, v in value.items() if not isinstance(v, str)],
                "binary_values": [],
            }
        case ListType(element=element):
            return [normal(idl, element, v) for v in value]
        case MapType(value=inner):
            return {k: normal(idl, inner, v) for k, v in value.items()}
        case TupleType(elements=elements):
            return [normal(idl, e, v) for e, v in zip(elements, value, strict=True)]
        case NullableType(inner=inner):
            return None if value is None else normal(idl, inner, value)
        case NamedType(name=name):
            declaration = idl.type_named(name)
            if isinstance(declaration, Message | ExceptionDef):
                return {
                    f.name: normal(idl, f.type, value.get(f.name))
                    for f in fields_of(idl, declaration)
                }
    return value


def through_the_wire(wire: object) -> Any:
    return msgpack.unpackb(msgpack.packb(wire, use_bin_type=False), raw=True, strict_map_key=False)


def same(a: object, b: object) -> bool:
    return bool(json.loads(json.dumps(a)) == json.loads(json.dumps(b)))


def cases() -> list[tuple[Path, str, str]]:
    """(IDL, kind, name) for every message and method of every single-service IDL."""
    out = []
    for path in IDLS:
        idl = load_idl_file(str(path))
        if len(idl.services) != 1:
            continue
        declared: list[Message | ExceptionDef] = [*idl.messages, *idl.exceptions]
        out += [(path, "message", d.name) for d in declared]
        out += [(path, "method", m.name) for m in idl.services[0].methods]
    return out


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("typemap")


CASES = cases()


@pytest.mark.parametrize(
    ("path", "kind", "name"), CASES, ids=[f"{p.stem}-{k}-{n}" for p, k, n in CASES]
)
def test_json_goes_to_the_wire_and_back(path: Path, kind: str, name: str, tmp: Path) -> None:
    idl, http, types = modules(path, tmp)
    check: Callable[[Any], None]
    if kind == "message":
        declaration = idl.type_named(name)
        assert isinstance(declaration, Message | ExceptionDef)
        cls = getattr(http, naming.class_name(name))
        wire_cls = getattr(types, naming.class_name(name))
        expr: TypeExpr = NamedType(name)

        def check(value: Any) -> None:
            model = cls.model_validate_json(json.dumps(value))
            back = through_the_wire(cls.SHAPE.to_wire(model))
            wire_cls.from_msgpack(back)  # what a server decodes
            assert same(cls.SHAPE.to_json(back), normal(idl, expr, value))
            assert cls.SHAPE.text()(back) == dumps(cls.SHAPE.to_json(back))

        drawn = strategy(idl, expr)
    else:
        method = next(m for m in idl.services[0].methods if m.name == name)
        args = sorted(method.args, key=lambda a: a.id)
        spec = http.SERVICE.method(name)
        service = idl.services[0].name
        signature = getattr(types, f"{naming.constant_name(service)}_{naming.constant_name(name)}")
        drawn = st.fixed_dictionaries({a.name: strategy(idl, a.type) for a in args})

        def check(value: Any) -> None:
            body = spec.model.model_validate_json(json.dumps(value)) if spec.model else None
            back = through_the_wire(spec.encode(body))
            for descriptor, item in zip(signature.args, back, strict=True):
                descriptor.decode(item)  # what a server decodes
            for a, item, arg in zip(spec.args, back, args, strict=True):
                assert same(a.shape.to_json(item), normal(idl, arg.type, value[arg.name]))
                assert a.shape.text()(item) == dumps(a.shape.to_json(item))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(drawn)
    def run(value: Any) -> None:
        check(value)

    run()
