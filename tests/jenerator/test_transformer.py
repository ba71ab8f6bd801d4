"""Parse tree → model: the objects built, their spans, doc lines, and that nothing is
rejected here (judging is the validator's job)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jenerator import model as m
from jenerator.parser import parse
from jenerator.transformer import transform, unquote

OK = Path(__file__).resolve().parent / "cases" / "ok"


def build(text: str, path: str = "x.idl") -> m.Idl:
    parsed = parse(text, path)
    return transform(parsed, path)


P = m.PrimitiveType


def test_a_whole_file_becomes_the_expected_model() -> None:
    idl = build(
        '%include "types.hpp"\n'
        "enum color { 0: red 1: green }\n"
        'message point("std::pair<double, double>") {\n'
        "  0: double x\n"
        "  1: double? y\n"
        "}\n"
        "exception oops < base_oops { 0: string why }\n"
        "exception base_oops {}\n"
        "service shapes {\n"
        "  #@cht(1) #@update #@all_and\n"
        "  bool put(0: string key, 1: map<color, list<point> > value)\n"
        "  #@random #@analysis #@pass\n"
        "  tuple<int, raw, object, datum> info()\n"
        "}\n"
    )
    assert idl == m.Idl(
        "x.idl",
        includes=(m.Include("types.hpp"),),
        enums=(m.Enum("color", (m.EnumValue(0, "red"), m.EnumValue(1, "green"))),),
        messages=(
            m.Message(
                "point",
                (m.Field(0, P("double"), "x"), m.Field(1, m.NullableType(P("double")), "y")),
                "std::pair<double, double>",
            ),
        ),
        exceptions=(
            m.ExceptionDef("oops", (m.Field(0, P("string"), "why"),), "base_oops"),
            m.ExceptionDef("base_oops", ()),
        ),
        services=(
            m.Service(
                "shapes",
                (
                    m.Method(
                        "put",
                        P("bool"),
                        (
                            m.Arg(0, P("string"), "key"),
                            m.Arg(
                                1,
                                m.MapType(m.NamedType("color"), m.ListType(m.NamedType("point"))),
                                "value",
                            ),
                        ),
                        (m.Annotation("cht", 1), m.Annotation("update"), m.Annotation("all_and")),
                    ),
                    m.Method(
                        "info",
                        m.TupleType((P("int"), P("raw"), P("object"), P("datum"))),
                        (),
                        (m.Annotation("random"), m.Annotation("analysis"), m.Annotation("pass")),
                    ),
                ),
            ),
        ),
    )


def test_derived_annotation_properties() -> None:
    idl = build(
        "service s {\n  #@all_and #@update\n  #@cht\n  bool f(0: string k)\n"
        "  #@broadcast #@nolock #@concat list<int> g()\n}\n"
    )
    f, g = idl.services[0].methods
    assert (f.routing, f.lock, f.aggregator, f.cht_replicas) == (
        m.Routing.CHT, m.Lock.UPDATE, m.Aggregator.ALL_AND, 2,
    )  # fmt: skip
    assert (g.routing, g.lock, g.aggregator, g.cht_replicas) == (
        m.Routing.BROADCAST, m.Lock.NOLOCK, m.Aggregator.CONCAT, None,
    )  # fmt: skip


def test_spans_point_at_the_source() -> None:
    text = (
        "message point {\n"  # 1
        "  0: double x\n"  # 2
        "  1: list<point> near\n"  # 3
        "}\n"  # 4
        "service s {\n"  # 5
        "  #@random #@analysis\n"  # 6
        "    #@pass\n"  # 7
        "  map<string, int?> f(0: string a, 1: int b)\n"  # 8
        "}\n"
    )
    idl = build(text, "dir/x.idl")
    point = idl.messages[0]
    assert point.span == m.Span("dir/x.idl", 1, 1, 4, 2)
    assert point.fields[1].span == m.Span("dir/x.idl", 3, 3, 3, 22)
    assert point.fields[1].type.span == m.Span("dir/x.idl", 3, 6, 3, 17)
    near = point.fields[1].type
    assert isinstance(near, m.ListType)
    assert near.element.span == m.Span("dir/x.idl", 3, 11, 3, 16)
    method = idl.services[0].methods[0]
    assert method.span.line == 6 and method.span.column == 3, "a method starts at its annotations"
    assert [(a.span.line, a.span.column) for a in method.annotations] == [(6, 3), (6, 12), (7, 5)]
    ret = method.return_type
    assert isinstance(ret, m.MapType)
    assert (ret.span.line, ret.span.column) == (8, 3)
    assert (ret.value.span.line, ret.value.span.column) == (8, 15)
    assert [(a.span.line, a.span.column) for a in method.args] == [(8, 23), (8, 36)]


def test_spans_do_not_take_part_in_equality() -> None:
    assert build("message m { 0: int a }") == build("\n\n   message   m {\n0:int    a}", "x.idl")


def test_primitive_words_and_named_types() -> None:
    idl = build(
        "message m {\n" + "".join(f"  {i}: {name} f{i}\n" for i, name in enumerate(
            ["bool", "byte", "short", "int", "long", "ubyte", "ushort", "uint", "ulong", "float",
             "double", "raw", "string", "object", "datum", "void", "later", "Upper"])) + "}\n"
    )  # fmt: skip
    types = [f.type for f in idl.messages[0].fields]
    assert all(isinstance(t, m.PrimitiveType) for t in types[:16])
    assert types[16:] == [m.NamedType("later"), m.NamedType("Upper")]


def test_nullable_types_nest_inside_containers() -> None:
    field = build("message m { 0: map<string, list<int?>?>? a }").messages[0].fields[0]
    assert field.type == m.NullableType(
        m.MapType(P("string"), m.NullableType(m.ListType(m.NullableType(P("int")))))
    )


def test_keyword_names() -> None:
    idl = build(
        "message from { 0: string class 1: int list }\n"
        "service import {\n  #@cht #@update #@all_and\n  bool del(0: string pass)\n}\n"
    )
    assert idl.messages[0].name == "from"
    assert [f.name for f in idl.messages[0].fields] == ["class", "list"]
    method = idl.services[0].methods[0]
    assert (idl.services[0].name, method.name, method.args[0].name) == ("import", "del", "pass")


@pytest.mark.parametrize(
    ("literal", "text"),
    [
        (r'"plain"', "plain"),
        (r'"a\"b"', 'a"b'),
        (r'"a\'b"', "a'b"),
        (r'"back\\slash"', "back\\slash"),
        (r'"\n\r\b\t"', "\n\r\b\t"),
        (r'"\q stays"', "\\q stays"),
        (r'""', ""),
    ],
)
def test_string_escapes(literal: str, text: str) -> None:
    assert unquote(literal) == text
    assert build(f"message m({literal}) {{ 0: int a }}").messages[0].cpp_type == text


def test_doc_lines_attach_to_the_node_below() -> None:
    idl = build(
        "#- The point.\n"
        "#-   Second line keeps its spaces.\n"
        "message point {\n"
        "  #- X.\n"
        "  0: double x\n"
        "  1: double y #- trailing: documents nothing\n"
        "  2: double z\n"
        "}\n"
        "#- Colours.\n"
        "enum color {\n"
        "  #- Red.\n"
        "  0: red\n"
        "}\n"
        "#- Failure.\n"
        "exception oops {}\n"
        "#- Shapes.\n"
        "service shapes {\n"
        "  #- Put a point.\n"
        "  #@cht #@update #@all_and\n"
        "  bool put(0: string key)\n"
        "}\n"
    )
    point = idl.messages[0]
    assert point.doc == (" The point.", "   Second line keeps its spaces.")
    assert [f.doc for f in point.fields] == [(" X.",), (), ()]
    assert idl.enums[0].doc == (" Colours.",)
    assert idl.enums[0].values[0].doc == (" Red.",)
    assert idl.exceptions[0].doc == (" Failure.",)
    assert idl.services[0].doc == (" Shapes.",)
    assert idl.services[0].methods[0].doc == (" Put a point.",)


def test_blank_lines_and_plain_comments_end_a_doc_run() -> None:
    idl = build(
        "#- Lost to the blank line.\n\nmessage a { 0: int x }\n"
        "#- Lost to the plain comment.\n# plain\nmessage b { 0: int x }\n"
        "#- Kept.\nmessage c { 0: int x }\n"
    )
    assert [msg.doc for msg in idl.messages] == [(), (), (" Kept.",)]


def test_comments_case_docs() -> None:
    path = OK / "comments.idl"
    parsed = parse(path.read_text(encoding="utf-8"), str(path))
    idl = transform(parsed, str(path))
    point, axis, service = idl.messages[0], idl.enums[0], idl.services[0]
    assert point.doc == ("  Doc lines keep everything after the marker.", " A second doc line.")
    assert [f.doc for f in point.fields] == [(" The x coordinate.",), (), ()]
    assert axis.doc == ()
    assert [v.doc for v in axis.values] == [(" Across.",), ()]
    assert service.doc == (" Doc lines above a service.",)
    assert [meth.doc for meth in service.methods] == [
        (" Above the first annotation.",),
        (" Between the annotations: joins the method's doc.", " And above the return type."),
        (),
        (),
    ]
    assert [meth.name for meth in service.methods] == ["get", "clear", "ping", "nested"]


def test_nothing_is_rejected_here() -> None:
    """Duplicates, unknown types, void, bad annotations: all built, none judged."""
    idl = build(
        "message m {}\nmessage m { -1: void a -1: nope a }\nexception e < e {}\n"
        "enum n { 0: x 0: x }\n"
        "service s {\n  #@cht(-5) #@cht #@frob(2) void get_status()\n"
        "  bool f(0: int a, 0: int a)\n}\n"
    )
    assert [msg.name for msg in idl.messages] == ["m", "m"]
    assert idl.messages[1].fields[0] == m.Field(-1, P("void"), "a")
    assert idl.exceptions[0].base == "e"
    first = idl.services[0].methods[0]
    assert first.annotations == (
        m.Annotation("cht", -5), m.Annotation("cht"), m.Annotation("frob", 2),
    )  # fmt: skip
    assert (first.routing, first.lock, first.aggregator, first.cht_replicas) == (
        m.Routing.CHT, None, None, -5,
    )  # fmt: skip


def test_a_doc_run_belongs_to_the_node_that_opens_the_line() -> None:
    idl = build(
        "#- The message.\nmessage m { 0: int a\n  1: int b }\n#- The enum.\n  enum e { 0: x }"
    )
    assert idl.messages[0].doc == (" The message.",)
    assert [f.doc for f in idl.messages[0].fields] == [(), ()]
    assert idl.enums[0].doc == (" The enum.",)
    assert idl.enums[0].values[0].doc == ()


def test_doc_lines_between_annotations_join_the_method_doc() -> None:
    idl = build(
        "service s {\n"
        "  #- Above.\n"
        "  #@cht\n"
        "  #- Between.\n"
        "  #@update\n"
        "  # plain: skipped, the run goes on\n"
        "  #@pass\n"
        "  #- Last.\n"
        "  int f(0: string k)\n"
        "  #- Documents g, not f.\n"
        "  #@random #@update #@pass int g()\n"
        "}\n"
    )
    f, g = idl.services[0].methods
    assert f.doc == (" Above.", " Between.", " Last.")
    assert g.doc == (" Documents g, not f.",)
