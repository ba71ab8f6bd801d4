"""The grammar and the parser: what parses, what the comments collector keeps, and the
exact syntax errors (line, column, message) for the slips people make."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lark
import pytest
from hypothesis import given, settings, strategies as st
from lark.exceptions import GrammarError
from lark.parsers.lalr_analysis import LALR_Analyzer

from jenerator.errors import IdlError
from jenerator.frontend import load_idl
from jenerator.parser import MAX_TYPE_DEPTH, get_parser, parse

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    [*(REPO / "idl").glob("*.idl"), *(REPO / "tests/jenerator/cases/ok").glob("*.idl")]
)


def syntax_error(text: str) -> str:
    with pytest.raises(IdlError) as caught:
        parse(text, "x.idl")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "syntax"
    return str(diagnostic)


def rule_names(tree: lark.Tree[lark.Token]) -> list[str]:
    return [str(t.data) for t in tree.children if isinstance(t, lark.Tree)]


# -- the grammar itself ----------------------------------------------------------------


def test_parser_is_built_once() -> None:
    assert get_parser() is get_parser()


def test_grammar_has_no_lalr_conflicts_under_strict_analysis() -> None:
    LALR_Analyzer(get_parser().parser.parser_conf, strict=True).compute_lalr()  # type: ignore[no-untyped-call]


def test_strict_analysis_does_catch_a_conflict() -> None:
    dangling_else = 'start: "if" start | "if" start "else" start | "x"\n%ignore " "\n'
    ambiguous = lark.Lark(dangling_else, parser="lalr")  # lark resolves it by shifting
    analyzer = LALR_Analyzer(ambiguous.parser.parser_conf, strict=True)
    with pytest.raises(GrammarError):
        analyzer.compute_lalr()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    "sample",
    ["#@cht", "#@update", "# x", "#", "#-doc", "# #@x", "abc", "Del_2", "0", "-12", '"s\\"t"',
     " \t\r\n"],
)  # fmt: skip
def test_terminals_are_disjoint(sample: str) -> None:
    """No text is matched in full by two pattern terminals: the lexer never guesses."""
    matching = [
        t.name
        for t in get_parser().terminals
        if t.pattern.type == "re" and t.pattern.to_regexp() and _fullmatch(t, sample)
    ]
    assert len(matching) == 1, matching


def _fullmatch(terminal: lark.lexer.TerminalDef, text: str) -> bool:
    return re.fullmatch(terminal.pattern.to_regexp(), text) is not None


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_idls_parse(path: Path) -> None:
    tree = parse(path.read_text(encoding="utf-8"), str(path)).tree
    assert rule_names(tree), "every shipped IDL declares something"


# -- what parses -----------------------------------------------------------------------


def test_empty_and_comment_only_files_parse() -> None:
    assert parse("", "x.idl").tree.children == []
    assert parse("# nothing here\n#- nor here", "x.idl").tree.children == []


def test_all_declaration_kinds() -> None:
    text = (
        '%include "a.hpp"\n'
        "message m { 0: int a }\n"
        'message n("std::pair<int, int>") { 0: int a }\n'
        "exception e < f { 0: string why }\n"
        "exception f {}\n"
        "enum c { 0: red 1: green }\n"
        "service s { #@random #@analysis #@pass bool f() }\n"
    )
    tree = parse(text, "x.idl").tree
    assert rule_names(tree) == [
        "include", "message", "message", "exception", "exception", "enum", "service",
    ]  # fmt: skip


def test_fields_need_no_separators_and_may_share_a_line() -> None:
    tree = parse("message m { 0: int a 1: int b\n2: int c }", "x.idl").tree
    (message,) = tree.children
    assert isinstance(message, lark.Tree)
    assert [str(f.data) for f in message.children if isinstance(f, lark.Tree)] == ["field"] * 3


@pytest.mark.parametrize(
    "type_text",
    ["list<list<int> >", "list<list<int>>", "map < string , list < int > >", "tuple<int>",
     "tuple<int, string, raw>", "int?", "list<int?>?", "map<string, tuple<int?, datum>>",
     "object", "datum", "Message_2"],
)  # fmt: skip
def test_types(type_text: str) -> None:
    parse(f"message m {{ 0: {type_text} a }}", "x.idl")


@pytest.mark.parametrize(
    "name", ["del", "from", "class", "import", "pass", "lambda", "None", "list", "map", "tuple",
             "message", "service", "enum", "exception", "UPPER", "_x9"],
)  # fmt: skip
def test_words_stay_valid_names_where_a_name_is_expected(name: str) -> None:
    text = (
        f"message m {{ 0: int {name} }}\n"
        f"enum e {{ 0: {name} }}\n"
        f"service s {{ #@random #@analysis #@pass bool {name}(0: int {name}) }}\n"
    )
    parse(text, "x.idl")


def test_annotations_in_any_order_on_one_or_several_lines() -> None:
    text = (
        "service s {\n"
        "  #@pass #@cht(3)\n"
        "     #@update\n"
        "  bool f(0: string k)\n"
        "  #@random #@analysis #@pass bool g()\n"
        "  bool h()\n"
        "}\n"
    )
    parse(text, "x.idl")


def test_method_arguments() -> None:
    parse("service s { bool f() bool g(0: int a) bool h(0: int a, 1: int b,\n 2: int c) }", "x")


# -- comments --------------------------------------------------------------------------


def test_comments_anywhere_and_on_the_last_line_without_newline() -> None:
    text = "# top\nmessage m { # after brace\n 0: int # inside\n a }\n# last"
    parsed = parse(text, "x.idl")
    assert rule_names(parsed.tree) == ["message"]
    assert parsed.comments == {1: "# top", 5: "# last"}


def test_a_bare_hash_line_does_not_swallow_the_next_line() -> None:
    parsed = parse("#\nmessage m { 0: int a }\n#\n", "x.idl")
    assert rule_names(parsed.tree) == ["message"]
    assert parsed.comments == {1: "#", 3: "#"}


def test_an_annotation_inside_a_comment_is_text() -> None:
    parsed = parse("# #@cht\nmessage m { 0: int a }", "x.idl")
    assert parsed.comments == {1: "# #@cht"}


def test_only_comments_alone_on_their_line_are_collected() -> None:
    text = "#- doc\n  #- indented doc\nmessage m { #- after code\n\t# tab\n 0: int a }"
    assert parse(text, "x.idl").comments == {1: "#- doc", 2: "#- indented doc", 4: "# tab"}


def test_windows_line_endings() -> None:
    parsed = parse("#- doc\r\nmessage m {\r\n  0: int a\r\n}\r\n", "x.idl")
    assert parsed.comments == {1: "#- doc"}
    assert rule_names(parsed.tree) == ["message"]


def test_byte_order_mark_is_skipped() -> None:
    assert rule_names(parse("\ufeffmessage m { 0: int a }", "x.idl").tree) == ["message"]


def test_concurrent_parses_keep_their_own_comments() -> None:
    texts = [f"#- doc {i}\n" * (i % 7) + f"message m{i} {{ 0: int a }}\n" for i in range(200)]

    def run(text: str) -> dict[int, str]:
        return dict(parse(text, "x.idl").comments)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, texts))
    assert results == [{line: f"#- doc {i}" for line in range(1, i % 7 + 1)} for i in range(200)]


# -- syntax errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "message m {\n  0: string a",
            "x.idl:2:14: error: unexpected end of file; expected a number or '}'",
        ),
        (
            "message m { 0: int a, 1: int b }",
            "x.idl:1:21: error: unexpected ','; expected a number or '}' "
            "(fields are not separated by commas)",
        ),
        (
            "enum e { 0: a, 1: b }",
            "x.idl:1:14: error: unexpected ','; expected a number or '}' "
            "(enum values are not separated by commas)",
        ),
        (
            "enum e { red }",
            "x.idl:1:10: error: unexpected 'red'; expected a number or '}' "
            "(an enum value is written 'ID: NAME', e.g. '0: red')",
        ),
        (
            "message m { string a }",
            "x.idl:1:13: error: unexpected 'string'; expected a number or '}' "
            "(a field is written 'ID: TYPE NAME', e.g. '0: string name')",
        ),
        (
            "message m {\n  0: int a\n  string b\n}",
            "x.idl:3:3: error: unexpected 'string'; expected a number or '}' "
            "(a field is written 'ID: TYPE NAME', e.g. '0: string name')",
        ),
        (
            "service s { #@random #@analysis #@pass bool f(string a) }",
            "x.idl:1:47: error: unexpected 'string'; expected a number or ')' "
            "(an argument is written 'ID: TYPE NAME', e.g. '0: string key')",
        ),
        (
            "service s { bool f(0: int a, string b) }",
            "x.idl:1:30: error: unexpected 'string'; expected a number "
            "(an argument is written 'ID: TYPE NAME', e.g. '0: string key')",
        ),
        (
            "service s { #@random #@analysis #@pass bool f(0: int a,) }",
            "x.idl:1:56: error: unexpected ')'; expected a number "
            "(no comma after the last argument)",
        ),
        (
            "service s { #@random #@analysis #@pass f() }",
            "x.idl:1:41: error: unexpected '('; expected a name or '?' "
            "(a method is written 'RETURN_TYPE NAME(ARGUMENTS)')",
        ),
        (
            "service s { bool f }",
            "x.idl:1:20: error: unexpected '}'; expected '('",
        ),
        (
            "message m {\n  #@cht\n  0: int a\n}",
            "x.idl:2:3: error: unexpected '#@cht'; expected a number or '}' "
            "(annotations go on the lines just before a method)",
        ),
        (
            "service s { #@random bool f(0: int a #@x) }",
            "x.idl:1:38: error: unexpected '#@x'; expected ')' or ',' "
            "(annotations go on the lines just before a method)",
        ),
        (
            "service s { #@ cht bool f() }",
            "x.idl:1:13: error: unexpected character '#' "
            "('#@' starts an annotation and needs a name, e.g. '#@cht')",
        ),
        (
            'message m("abc) { 0: int a }',
            "x.idl:1:11: error: unexpected character '\"' "
            "(a string must end with '\"' on the same line)",
        ),
        (
            "message m { 0: int a; }",
            "x.idl:1:21: error: unexpected character ';' (IDL declarations need no ';')",
        ),
        (
            "foo",
            "x.idl:1:1: error: unexpected 'foo'; expected '%include', 'enum', 'exception', "
            "'message', 'service' or end of file",
        ),
        (
            "message m { 0: map<string> a }",
            "x.idl:1:26: error: unexpected '>'; expected ',' or '?'",
        ),
        (
            "message m { 0: tuple<> a }",
            "x.idl:1:22: error: unexpected '>'; expected a name, 'list', 'map' or 'tuple'",
        ),
        (
            "message m { 0: int }",
            "x.idl:1:20: error: unexpected '}'; expected a name or '?'",
        ),
        (
            "service s {",
            "x.idl:1:12: error: unexpected end of file; expected a name, an annotation, "
            "'list', 'map', 'tuple' or '}'",
        ),
        ("message { }", "x.idl:1:9: error: unexpected '{'; expected a name"),
        ("message m { 0 int a }", "x.idl:1:15: error: unexpected 'int'; expected ':'"),
        ("%include foo", "x.idl:1:10: error: unexpected 'foo'; expected a string"),
        ("message m { 0: int a }\x00", "x.idl:1:23: error: unexpected character '\\x00'"),
        ("message m\n{\n  0: int a $\n}", "x.idl:3:12: error: unexpected character '$'"),
        (
            "message m { 0: int a }\nmessage",
            "x.idl:2:8: error: unexpected end of file; expected a name",
        ),
    ],
)
def test_syntax_errors(text: str, expected: str) -> None:
    assert syntax_error(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("mesagc{}()<>,:?#@-\"\\ \n0123456789abxyz_")),
               max_size=80))  # fmt: skip
def test_any_text_parses_or_gives_one_diagnostic(text: str) -> None:
    """Whatever the input, the front end answers with a model or IdlError, never a crash."""
    try:
        load_idl(text, "fuzz.idl")
    except IdlError as error:
        assert error.diagnostics
        for diagnostic in error.diagnostics:
            assert diagnostic.span.line >= 1 and diagnostic.span.column >= 1


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_idls_never_crash(data: st.DataObject) -> None:
    source = (REPO / "idl" / "graph.idl").read_text(encoding="utf-8")
    position = data.draw(st.integers(0, len(source)))
    cut = data.draw(st.integers(0, 5))
    insert = data.draw(st.text(alphabet='{}()<>,:?#@-" \nx0', max_size=3))
    damaged = source[:position] + insert + source[position + cut :]
    try:
        load_idl(damaged, "graph.idl")
    except IdlError as error:
        assert error.diagnostics


@pytest.mark.parametrize(("levels", "refused"), [(64, False), (65, True), (100_000, True)])
def test_type_nesting_is_bounded(levels: int, refused: bool) -> None:
    text = "message m {\n  0: " + "list<" * (levels - 1) + "int?" + ">" * (levels - 1) + " a }"
    if not refused:
        assert rule_names(parse(text, "x.idl").tree) == ["message"]
        return
    column = len("  0: ") + 1 + len("list<") * MAX_TYPE_DEPTH  # where level 65 starts
    assert syntax_error(text) == (
        f"x.idl:2:{column}: error: types nested more than {MAX_TYPE_DEPTH} levels deep"
    )
