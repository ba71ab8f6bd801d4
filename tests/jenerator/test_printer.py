"""Printer round trip: random valid models print and parse back to the same model."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings, strategies as st

from jenerator import model as m
from jenerator.frontend import load_idl, load_idl_file
from jenerator.printer import print_idl

REPO = Path(__file__).resolve().parents[2]
SCALARS = ["bool", "byte", "int", "ulong", "double", "float", "string", "raw"]
VALUES = [*SCALARS, "object", "datum"]

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in m.PRIMITIVE_NAMES and n not in {"list", "map", "tuple", "message",
                                                       "service", "enum", "exception"}
)  # fmt: skip
docs = st.lists(st.from_regex(r"[ A-Za-z0-9.,`'()]{0,30}", fullmatch=True), max_size=2).map(tuple)


def types(named: list[str]) -> st.SearchStrategy[m.TypeExpr]:
    leaves: st.SearchStrategy[m.TypeExpr] = st.sampled_from(VALUES).map(m.PrimitiveType)
    if named:
        leaves = leaves | st.sampled_from(named).map(m.NamedType)
    keys = st.sampled_from(SCALARS).map(m.PrimitiveType)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            inner.map(m.ListType),
            st.tuples(keys, inner).map(lambda kv: m.MapType(*kv)),
            st.lists(inner, min_size=1, max_size=3).map(lambda es: m.TupleType(tuple(es))),
            inner.filter(lambda t: not isinstance(t, m.NullableType)).map(m.NullableType),
        ),
        max_leaves=4,
    )


@st.composite
def idls(draw: st.DrawFn) -> m.Idl:
    unique = draw(st.lists(names, min_size=3, max_size=7, unique=True))
    message_names, service_name, method_names = unique[:-2], unique[-2], unique[-1:]
    messages = []
    for name in message_names:
        field_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        fields = tuple(
            m.Field(i, draw(types(message_names)), f, draw(docs)) for i, f in enumerate(field_names)
        )
        messages.append(m.Message(name, fields, None, draw(docs)))
    methods = []
    for name in [
        *method_names,
        *draw(st.lists(names.map(lambda n: n + "_x"), max_size=2, unique=True)),
    ]:
        arg_names = draw(st.lists(names, max_size=3, unique=True))
        args = tuple(m.Arg(i, draw(types(message_names)), a) for i, a in enumerate(arg_names))
        annotations = (m.Annotation("random"), m.Annotation("analysis"), m.Annotation("pass"))
        order = draw(st.permutations(annotations))
        methods.append(m.Method(name, draw(types(message_names)), args, tuple(order), draw(docs)))
    service = m.Service(service_name, tuple(methods), draw(docs))
    return m.Idl("random.idl", messages=tuple(messages), services=(service,))


@settings(max_examples=80, deadline=None)
@given(idls())
def test_random_models_print_and_parse_back(idl: m.Idl) -> None:
    assert load_idl(print_idl(idl), "random.idl") == idl


def test_shipped_idls_round_trip() -> None:
    for path in sorted((REPO / "idl").glob("*.idl")):
        idl = load_idl_file(str(path))
        assert load_idl(print_idl(idl), str(path)) == idl
