"""Validation rules, one by one and all together.

Each rule is called on its own, on models parsed (not validated) from small texts, so a
test shows what one rule finds and what it leaves to the others. The exact command-line
output of every rule is pinned by the error corpus (``test_cases.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from jenerator import model as m, validate as v
from jenerator.annotations import ANNOTATIONS
from jenerator.diagnostics import Diagnostic
from jenerator.parser import parse
from jenerator.transformer import transform

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    [*(REPO / "idl").glob("*.idl"), *(REPO / "tests/jenerator/cases/ok").glob("*.idl")]
)
GOOD_METHOD = "#@random #@analysis #@pass"


def model(text: str) -> m.Idl:
    parsed = parse(text, "x.idl")
    return transform(parsed, "x.idl")


def found(rule: v.Rule, text: str) -> list[tuple[int, int, str]]:
    """(line, column, message) of each finding of ``rule`` alone."""
    diagnostics = list(rule(model(text)))
    assert all(d.severity == "error" and d.code for d in diagnostics)
    return [(d.span.line, d.span.column, d.message) for d in diagnostics]


def service(*methods: str) -> str:
    return "service s {\n" + "".join(f"  {method}\n" for method in methods) + "}\n"


# -- every shipped IDL is clean ----------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_idls_have_no_findings(path: Path) -> None:
    parsed = parse(path.read_text(encoding="utf-8"), str(path))
    assert v.validate(transform(parsed, str(path))) == []


def test_every_rule_is_registered() -> None:
    functions = {
        name for name, value in vars(v).items()
        if callable(value) and not name.startswith("_") and getattr(value, "__module__", "")
        == v.__name__ and name != "validate"
    }  # fmt: skip
    assert functions == {rule.__name__ for rule in v.RULES}


# -- names -------------------------------------------------------------------------------


def test_unknown_types_with_suggestions() -> None:
    text = "message point { 0: pont a 1: map<string, list<flaot>> b 2: zzzz c 3: void d }"
    assert found(v.unknown_types, text) == [
        (1, 20, "unknown type 'pont'; did you mean 'point'?"),
        (1, 47, "unknown type 'flaot'; did you mean 'float'?"),
        (1, 60, "unknown type 'zzzz'"),
    ]


def test_types_may_be_used_before_they_are_defined() -> None:
    assert found(v.unknown_types, "message a { 0: b x }\nenum b { 0: y }") == []


def test_duplicate_types_share_one_namespace_services_another() -> None:
    text = (
        "message a { 0: int x }\nenum a { 0: y }\nexception a {}\n"
        f"service a {{ {GOOD_METHOD} bool f() }}\nservice a {{ {GOOD_METHOD} bool f() }}\n"
    )
    assert found(v.duplicate_types, text) == [
        (2, 1, "duplicate type name 'a' (first at line 1)"),
        (3, 1, "duplicate type name 'a' (first at line 1)"),
        (5, 1, "duplicate service 'a' (first at line 4)"),
    ]


def test_duplicate_methods_are_per_service() -> None:
    text = (
        f"service a {{\n {GOOD_METHOD} bool f()\n {GOOD_METHOD} int f()\n}}\n"
        f"service b {{\n {GOOD_METHOD} bool f()\n}}\n"
    )
    assert found(v.duplicate_methods, text) == [(3, 2, "duplicate method 'f' (first at line 2)")]


def test_duplicate_fields_names_and_ids() -> None:
    text = "message m {\n 0: int a\n 1: int a\n 1: int b\n}\nexception e { 0: int a 0: int a }"
    assert found(v.duplicate_fields, text) == [
        (3, 2, "duplicate field 'a' (first at line 2)"),
        (4, 2, "duplicate field id 1 (first at line 3)"),
        (6, 24, "duplicate field 'a' (first at line 6)"),
        (6, 24, "duplicate field id 0 (first at line 6)"),
    ]


def test_duplicate_arguments_names_and_ids() -> None:
    text = service(f"{GOOD_METHOD} bool f(0: int a, 1: int a, 1: int b)")
    assert found(v.duplicate_args, text) == [
        (2, 47, "duplicate argument 'a' (first at line 2)"),
        (2, 57, "duplicate argument id 1 (first at line 2)"),
    ]


def test_duplicate_enum_values_names_and_ids() -> None:
    assert found(v.duplicate_enum_values, "enum c { 0: red 1: red 1: blue }") == [
        (1, 17, "duplicate enum value 'red' (first at line 1)"),
        (1, 24, "duplicate enum value id 1 (first at line 1)"),
    ]


def test_negative_ids() -> None:
    text = "message m { -1: int a }\nenum c { -1: below }\n" + service(
        f"{GOOD_METHOD} bool f(-3: int a)"
    )
    assert found(v.negative_ids, text) == [
        (1, 13, "field id -1 is negative; ids start at 0"),
        (4, 37, "argument id -3 is negative; ids start at 0"),
    ]


def test_enum_values_fit_msgpack_integers() -> None:
    text = f"enum e {{ {2**64 - 1}: a {2**64}: b {-(2**63)}: c {-(2**63) - 1}: d 0: e }}"
    assert [(col, message.split(" does")[0]) for _, col, message in found(
        v.enum_value_range, text)] == [
        (34, f"enum value id {2**64}"), (82, f"enum value id {-(2**63) - 1}"),
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(v.RESERVED_TYPE_NAMES))
def test_reserved_type_names(name: str) -> None:
    assert found(v.reserved_type_names, f"enum {name} {{ 0: x }}") == [
        (1, 1, f"'{name}' is a built-in type; choose another name")
    ]


@pytest.mark.parametrize("name", sorted(v.BUILTIN_METHODS))
def test_builtin_methods(name: str) -> None:
    assert found(v.builtin_methods, service(f"{GOOD_METHOD} bool {name}()")) == [
        (2, 3, f"'{name}' is a built-in method every service already has")
    ]


# -- types -------------------------------------------------------------------------------


def test_void_return() -> None:
    text = service(f"{GOOD_METHOD} void f()", f"{GOOD_METHOD} list<void> g()")
    assert found(v.void_return, text) == [
        (2, 30, "method 'f' returns 'void'; a method must return a value (bool, for instance)")
    ]
    assert found(v.void_values, text) == [
        (3, 35, "'void' is not a value type and cannot be used here")
    ]


def test_void_values_in_fields_and_arguments() -> None:
    text = "message m { 0: void a 1: map<string, void> b }\n" + service(
        f"{GOOD_METHOD} bool f(0: void a)"
    )
    assert [(line, col) for line, col, _ in found(v.void_values, text)] == [
        (1, 16), (1, 38), (3, 40),
    ]  # fmt: skip


def test_nested_nullable() -> None:
    assert found(v.nested_nullable, "message m { 0: int? a 1: list<int??> b }") == [
        (1, 31, "'int??' is nullable twice; write 'int?'")
    ]


@pytest.mark.parametrize(
    "key", ["bool", "byte", "int", "ulong", "float", "double", "string", "raw", "color"]
)
def test_scalar_and_enum_map_keys_are_fine(key: str) -> None:
    assert found(v.map_keys, f"enum color {{ 0: red }}\nmessage m {{ 0: map<{key}, int> a }}") == []


@pytest.mark.parametrize(
    "key",
    ["list<int>", "map<int, int>", "tuple<int>", "datum", "object", "m", "oops", "int?", "color?"],
)
def test_other_map_keys_are_refused(key: str) -> None:
    text = f"enum color {{ 0: red }}\nexception oops {{}}\nmessage m {{ 0: map<{key}, int> a }}"
    assert found(v.map_keys, text) == [
        (3, 20, f"'{key}' cannot key a map; keys must be scalars "
         "(bool, a number, string, raw or an enum)"),
    ]  # fmt: skip


def test_map_keys_leave_unknown_types_to_their_rule() -> None:
    assert found(v.map_keys, "message m { 0: map<nope, int> a }") == []


def test_nested_maps_are_checked() -> None:
    assert len(found(v.map_keys, "message m { 0: list<map<string, map<raw?, int>>> a }")) == 1


def test_exception_bases() -> None:
    text = (
        "exception base {}\nexception ok < base {}\nexception typo < bsae {}\n"
        "message msg { 0: int a }\nexception wrong < msg {}\nenum e { 0: x }\n"
        "exception wrong2 < e {}\n"
    )
    assert found(v.exception_bases, text) == [
        (3, 1, "unknown base exception 'bsae'; did you mean 'base'?"),
        (5, 1, "base 'msg' is a message; an exception can only extend an exception"),
        (7, 1, "base 'e' is a enum; an exception can only extend an exception"),
    ]


def test_exception_cycles_are_reported_once_per_member() -> None:
    text = "exception a < b {}\nexception b < a {}\nexception c < a {}\nexception d < d {}\n"
    assert found(v.exception_bases, text) == [
        (1, 1, "exception 'a' extends itself (a < b < a)"),
        (2, 1, "exception 'b' extends itself (b < a < b)"),
        (4, 1, "exception 'd' extends itself (d < d)"),
    ]


def test_empty_declarations() -> None:
    text = "message m {}\nenum e {}\nexception x {}\n" + service()
    assert found(v.empty_declarations, text) == [
        (1, 1, "message 'm' has no fields; a message needs at least one"),
        (2, 1, "enum 'e' has no values; an enum needs at least one"),
    ]


# -- annotations ---------------------------------------------------------------------------


def test_unknown_annotations() -> None:
    assert found(v.unknown_annotations, service("#@random #@analysys #@pass #@fast bool f()")) == [
        (2, 12, "unknown annotation '#@analysys'; did you mean '#@analysis'?"),
        (2, 30, "unknown annotation '#@fast'"),
    ]


def test_annotation_arguments() -> None:
    text = service(
        "#@cht(1) #@analysis #@pass bool a(0: string k)",
        "#@cht(0) #@analysis #@pass bool b(0: string k)",
        "#@cht(-2) #@analysis #@pass bool c(0: string k)",
        "#@random #@update(1) #@pass(0) bool d()",
        "#@frob(3) bool e()",
    )
    assert found(v.annotation_arguments, text) == [
        (3, 3, "'#@cht(0)': the replica count must be at least 1"),
        (4, 3, "'#@cht(-2)': the replica count must be at least 1"),
        (5, 12, "'#@update' takes no argument (only '#@cht(n)' does)"),
        (5, 24, "'#@pass' takes no argument (only '#@cht(n)' does)"),
    ]


def test_annotation_kinds_in_any_order() -> None:
    text = service(
        "#@pass\n #@update #@cht bool f(0: string k)", "#@nolock #@all_or #@internal bool g()"
    )
    assert found(v.annotation_kinds, text) == []


def test_missing_repeated_and_conflicting_annotations() -> None:
    text = service(
        "bool none()",
        "#@random #@random #@analysis #@pass bool twice()",
        "#@random #@analysis #@nolock #@pass bool clash()",
        "#@internal bool internal()",
        "#@frob #@random #@analysis bool unknown_is_not_a_kind()",
    )
    assert found(v.annotation_kinds, text) == [
        (2, 3, "method 'none' has no routing annotation "
         "(one of #@random, #@broadcast, #@cht, #@internal)"),
        (2, 3, "method 'none' has no lock annotation (one of #@analysis, #@update, #@nolock)"),
        (2, 3, "method 'none' has no aggregator annotation "
         "(one of #@pass, #@all_and, #@all_or, #@merge, #@concat, #@add, #@ignore)"),
        (3, 12, "repeated routing annotation '#@random'"),
        (4, 23, "conflicting lock annotations '#@analysis' and '#@nolock'"),
        (5, 3, "method 'internal' has no lock annotation (one of #@analysis, #@update, #@nolock)"),
        (5, 3, "method 'internal' has no aggregator annotation "
         "(one of #@pass, #@all_and, #@all_or, #@merge, #@concat, #@add, #@ignore)"),
        (6, 3, "method 'unknown_is_not_a_kind' has no aggregator annotation "
         "(one of #@pass, #@all_and, #@all_or, #@merge, #@concat, #@add, #@ignore)"),
    ]  # fmt: skip


def test_cht_keys() -> None:
    text = service(
        "#@cht #@update #@all_and bool fine(0: string k, 1: int v)",
        "#@cht #@update #@all_and bool none()",
        "#@cht #@update #@all_and bool number(0: int k)",
        "#@cht #@update #@all_and bool by_id(1: string later, 0: raw first)",
        "#@random #@update #@pass bool random_needs_no_key()",
    )
    assert found(v.cht_keys, text) == [
        (3, 3, "cht method 'none' needs a string key as its first argument"),
        (4, 40, "the first argument of cht method 'number' must be a string key, not 'int'"),
        (5, 56, "the first argument of cht method 'by_id' must be a string key, not 'raw'"),
    ]


@pytest.mark.parametrize(
    ("aggregator", "fits", "misfits"),
    [
        ("all_and", ["bool"], ["int", "bool?", "list<bool>"]),
        ("all_or", ["bool"], ["string"]),
        ("merge", ["map<string, int>", "map<int, list<string>>"], ["list<int>", "int"]),
        ("concat", ["list<int>", "list<list<string>>"], ["map<string, int>", "tuple<int>"]),
        ("add", ["int", "ulong", "byte", "float", "double"], ["bool", "string", "int?"]),
        ("pass", ["int", "object", "datum"], []),
        ("ignore", ["string", "list<int>"], []),
    ],
)
@pytest.mark.parametrize("routing", ["broadcast", "cht"])
def test_aggregators_must_fit_the_return_type(
    aggregator: str, fits: list[str], misfits: list[str], routing: str
) -> None:
    need = {"all_and": "a bool", "all_or": "a bool", "merge": "a map", "concat": "a list",
            "add": "a number"}  # fmt: skip
    #: What the message suggests for each misfit: the folds that fit it, pass last.
    suggested = {"int": "#@add or #@pass", "bool?": "#@pass", "list<bool>": "#@concat or #@pass",
                 "string": "#@pass", "list<int>": "#@concat or #@pass",
                 "map<string, int>": "#@merge or #@pass", "tuple<int>": "#@pass",
                 "bool": "#@all_and or #@all_or or #@pass", "int?": "#@pass"}  # fmt: skip
    for i, type_text in enumerate(fits + misfits):
        text = service(f"#@{routing} #@analysis #@{aggregator} {type_text} f{i}(0: string k)")
        expected = (
            []
            if type_text in fits
            else [
                f"aggregator '#@{aggregator}' of 'f{i}' needs {need[aggregator]} result, and "
                f"'f{i}' returns '{type_text}'; use {suggested[type_text]}"
            ]
        )
        assert [message for _, _, message in found(v.aggregator_fits, text)] == expected


def test_random_and_internal_methods_fold_nothing() -> None:
    text = service("#@random #@analysis #@all_and int f()", "#@internal #@update #@add string g()")
    assert found(v.aggregator_fits, text) == []


# -- all together ------------------------------------------------------------------------


def test_validate_runs_every_rule_and_sorts_by_position() -> None:
    idl = model(
        "message m { 0: nope a 0: int b }\nservice s {\n  #@cht #@merge\n  void get_status()\n}\n"
    )
    diagnostics = v.validate(idl)
    assert [(d.span.line, d.span.column, d.code) for d in diagnostics] == [
        (1, 16, "unknown-type"),
        (1, 23, "duplicate"),
        (3, 3, "reserved"),  # same place: by message text
        (3, 3, "cht"),
        (3, 3, "annotation"),
        (3, 9, "aggregator"),
        (4, 3, "void"),
    ]
    assert diagnostics == sorted(diagnostics, key=lambda d: d.sort_key)


def test_diagnostic_text() -> None:
    diagnostic = Diagnostic.error(m.Span("a/b.idl", 3, 7, 3, 9), "something is off", "code")
    assert str(diagnostic) == "a/b.idl:3:7: error: something is off"
    assert Diagnostic("error", m.Span("a", 1, 1, 1, 1), "x") == Diagnostic.at_file("a", "x")


# -- never raises ------------------------------------------------------------------------

words = st.sampled_from(["a", "b", "m", "int", "void", "datum", "list", "get_status", "del"])
any_annotations = st.builds(
    m.Annotation,
    st.sampled_from([*ANNOTATIONS, "frob"]),
    st.none() | st.integers(-3, 3),
)


def any_types() -> st.SearchStrategy[m.TypeExpr]:
    leaves = st.one_of(
        st.sampled_from(sorted(m.PRIMITIVE_NAMES)).map(m.PrimitiveType),
        words.map(m.NamedType),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            inner.map(m.ListType),
            inner.map(m.NullableType),
            st.tuples(inner, inner).map(lambda kv: m.MapType(*kv)),
            st.lists(inner, max_size=3).map(lambda es: m.TupleType(tuple(es))),
        ),
        max_leaves=5,
    )


fields = st.builds(m.Field, st.integers(-2, 3), any_types(), words)
any_models = st.builds(
    m.Idl,
    st.just("random.idl"),
    messages=st.lists(st.builds(m.Message, words, st.lists(fields, max_size=3).map(tuple)),
                      max_size=3).map(tuple),
    enums=st.lists(st.builds(m.Enum, words, st.lists(
        st.builds(m.EnumValue, st.integers(-1, 2), words), max_size=3).map(tuple)),
        max_size=2).map(tuple),
    exceptions=st.lists(st.builds(m.ExceptionDef, words, st.lists(fields, max_size=2).map(tuple),
                                  st.none() | words), max_size=3).map(tuple),
    services=st.lists(st.builds(m.Service, words, st.lists(st.builds(
        m.Method, words, any_types(),
        st.lists(st.builds(m.Arg, st.integers(-1, 2), any_types(), words), max_size=3).map(tuple),
        st.lists(any_annotations, max_size=4).map(tuple)), max_size=3).map(tuple)),
        max_size=2).map(tuple),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(any_models)
def test_validate_never_raises_on_any_model(idl: m.Idl) -> None:
    diagnostics = v.validate(idl)
    assert all(d.message and d.code for d in diagnostics)
