"""Printer round trip: valid models print to IDL that loads back to the same model.

Hypothesis builds random *valid* models (every declaration kind, nested and nullable
types, enums as map keys, exception bases, annotations in any order with fitting
aggregators, names that are keywords elsewhere, docs and C++ type strings with escapes),
prints them, and loads the text with the whole front end, validation included.
"""

from __future__ import annotations

import keyword
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from jenerator import model as m
from jenerator.frontend import load_idl, load_idl_file
from jenerator.printer import print_idl, print_type
from jenerator.validate import BUILTIN_METHODS, RESERVED_TYPE_NAMES

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    [*(REPO / "idl").glob("*.idl"), *(REPO / "tests/jenerator/cases/ok").glob("*.idl")]
)
SCALARS = ["bool", "byte", "short", "int", "long", "ubyte", "ushort", "uint", "ulong", "float",
           "double", "string", "raw"]  # fmt: skip
VALUES = [*SCALARS, "object", "datum"]
NUMBERS = ["int", "ulong", "float", "double"]

names = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.sampled_from([*keyword.kwlist, "message", "service", "enum", "exception", "include"]),
).filter(lambda n: n not in RESERVED_TYPE_NAMES and n not in BUILTIN_METHODS)
docs = st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30),
                max_size=2).map(tuple)  # fmt: skip
strings = st.text(st.characters(codec="utf-8"), max_size=20)


def types(messages: list[str], enums: list[str]) -> st.SearchStrategy[m.TypeExpr]:
    leaves: st.SearchStrategy[m.TypeExpr] = st.sampled_from(VALUES).map(m.PrimitiveType)
    if messages or enums:
        leaves = leaves | st.sampled_from(messages + enums).map(m.NamedType)
    keys: st.SearchStrategy[m.TypeExpr] = st.sampled_from(SCALARS).map(m.PrimitiveType)
    if enums:
        keys = keys | st.sampled_from(enums).map(m.NamedType)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            inner.map(m.ListType),
            st.tuples(keys, inner).map(lambda kv: m.MapType(*kv)),
            st.lists(inner, min_size=1, max_size=3).map(lambda es: m.TupleType(tuple(es))),
            inner.filter(lambda t: not isinstance(t, m.NullableType)).map(m.NullableType),
        ),
        max_leaves=5,
    )


@st.composite
def methods(draw: st.DrawFn, name: str, any_type: st.SearchStrategy[m.TypeExpr]) -> m.Method:
    routing = draw(st.sampled_from(["random", "broadcast", "cht", "internal"]))
    aggregator = draw(st.sampled_from(["pass", "all_and", "all_or", "merge", "concat", "add",
                                       "ignore"]))  # fmt: skip
    folds = routing in ("broadcast", "cht")
    if folds and aggregator in ("all_and", "all_or"):
        returns: m.TypeExpr = m.PrimitiveType("bool")
    elif folds and aggregator == "merge":
        returns = m.MapType(m.PrimitiveType("string"), draw(any_type))
    elif folds and aggregator == "concat":
        returns = m.ListType(draw(any_type))
    elif folds and aggregator == "add":
        returns = m.PrimitiveType(draw(st.sampled_from(NUMBERS)))
    else:
        returns = draw(any_type)
    arg_names = draw(st.lists(names, min_size=1 if routing == "cht" else 0, max_size=3,
                              unique=True))  # fmt: skip
    ids = draw(st.permutations(range(len(arg_names))))
    args = tuple(
        m.Arg(i, m.PrimitiveType("string") if routing == "cht" and i == 0 else draw(any_type), a)
        for i, a in zip(ids, arg_names, strict=True)
    )
    cht_argument = draw(st.none() | st.integers(1, 5)) if routing == "cht" else None
    lock = draw(st.sampled_from(["analysis", "update", "nolock"]))
    annotations = (
        m.Annotation(routing, cht_argument),
        m.Annotation(lock),
        m.Annotation(aggregator),
    )
    ordered = tuple(draw(st.permutations(annotations)))
    return m.Method(name, returns, args, ordered, draw(docs))


@st.composite
def idls(draw: st.DrawFn) -> m.Idl:
    unique = draw(st.lists(names, min_size=2, max_size=9, unique=True))
    service_name, *type_names = unique
    split = draw(st.integers(0, len(type_names)))
    enum_names, rest = type_names[:split], type_names[split:]
    split = draw(st.integers(0, len(rest)))
    message_names, exception_names = rest[:split], rest[split:]
    any_type = types(message_names, enum_names)

    def fields() -> tuple[m.Field, ...]:
        field_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        ids = draw(st.lists(st.integers(0, 30), min_size=len(field_names),
                            max_size=len(field_names), unique=True))  # fmt: skip
        return tuple(
            m.Field(i, draw(any_type), f, draw(docs)) for i, f in zip(ids, field_names, strict=True)
        )

    enums = []
    for name in enum_names:
        value_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        ids = draw(st.lists(st.integers(-5, 50), min_size=len(value_names),
                            max_size=len(value_names), unique=True))  # fmt: skip
        values = tuple(m.EnumValue(i, v, draw(docs)) for i, v in zip(ids, value_names, strict=True))
        enums.append(m.Enum(name, values, draw(docs)))
    messages = [
        m.Message(name, fields(), draw(st.none() | strings), draw(docs)) for name in message_names
    ]
    exceptions: list[m.ExceptionDef] = []
    for name in exception_names:
        bases = [e.name for e in exceptions]
        base = draw(st.none() | st.sampled_from(bases)) if bases else None
        exceptions.append(m.ExceptionDef(name, fields(), base, draw(docs)))
    method_names = draw(st.lists(names, max_size=4, unique=True))
    service = m.Service(
        service_name, tuple(draw(methods(n, any_type)) for n in method_names), draw(docs)
    )
    includes = tuple(m.Include(p) for p in draw(st.lists(strings, max_size=2)))
    return m.Idl(
        "random.idl",
        includes=includes,
        messages=tuple(messages),
        enums=tuple(enums),
        exceptions=tuple(exceptions),
        services=(service,),
    )


@settings(max_examples=150, deadline=None)
@given(idls())
def test_random_models_print_and_load_back(idl: m.Idl) -> None:
    text = print_idl(idl)
    assert load_idl(text, "random.idl") == idl
    assert print_idl(load_idl(text, "random.idl")) == text


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_idls_round_trip(path: Path) -> None:
    idl = load_idl_file(path)
    assert load_idl(print_idl(idl), str(path)) == idl


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        (m.PrimitiveType("int"), "int"),
        (m.NamedType("point"), "point"),
        (m.ListType(m.ListType(m.PrimitiveType("int"))), "list<list<int>>"),
        (m.MapType(m.PrimitiveType("string"), m.NullableType(m.PrimitiveType("raw"))),
         "map<string, raw?>"),
        (m.TupleType((m.PrimitiveType("int"), m.NamedType("p"))), "tuple<int, p>"),
        (m.NullableType(m.ListType(m.PrimitiveType("datum"))), "list<datum>?"),
    ],
)  # fmt: skip
def test_print_type(expr: m.TypeExpr, text: str) -> None:
    assert print_type(expr) == text


def test_printed_layout() -> None:
    idl = load_idl(
        '%include "a.hpp"\n#- Doc.\nmessage p("q\\"uote") { 0: int x }\n'
        "service s {\n  #- Get.\n  #@cht(1) #@analysis #@pass\n  int get(0: string k)\n}\n",
        "x.idl",
    )
    assert print_idl(idl) == (
        '%include "a.hpp"\n\n'
        '#- Doc.\nmessage p("q\\"uote") {\n  0: int x\n}\n\n'
        "service s {\n  #- Get.\n  #@cht(1) #@analysis #@pass\n  int get(0: string k)\n}\n"
    )
