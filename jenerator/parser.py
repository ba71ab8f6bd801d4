"""IDL text → Lark parse tree, plus the comments the grammar ignores.

One LALR parser is built from ``grammar/msgpack_idl.lark`` on first use and then reused
(building it takes tens of milliseconds; parsing a service IDL takes about one). A syntax
error becomes a :class:`~jenerator.diagnostics.Diagnostic` at the line and column where
parsing stopped, saying what was found and what was expected there, with a hint for the
common slips (a trailing comma, a field without its id, ...). LALR stops at the first
syntax error, so there is at most one.

This module must never build model objects or judge meaning: that is the transformer's
and the validator's job.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TypeGuard

import lark
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from jenerator.diagnostics import Diagnostic
from jenerator.errors import IdlError
from jenerator.model import Span

logger = logging.getLogger(__name__)

#: Serialises parses: the lexer callback below appends to one shared list.
_LOCK = threading.Lock()
_COMMENT_TOKENS: list[lark.Token] = []

#: Deepest type nesting accepted: one level per ``list<``, ``map<``, ``tuple<`` or ``?``.
#: The transformer and the validator recurse over types, so a pathological file is refused
#: here, with a diagnostic, instead of exhausting Python's stack later.
MAX_TYPE_DEPTH = 64
_TYPE_RULES = frozenset({"list_type", "map_type", "tuple_type", "nullable"})
#: Longest number accepted, in digits: enough for any 64-bit value. Longer ones are
#: refused before ``int()`` could choke on them.
MAX_DIGITS = 20

#: How terminals with a pattern (rather than a fixed string) are named in messages.
_DESCRIBED = {
    "NAME": "a name",
    "INT": "a number",
    "STRING": "a string",
    "ANNOTATION": "an annotation",
    "$END": "end of file",
}

#: Hints for common slips, each found by the parser state and token its examples stop at.
_HINT_EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "no comma after the last argument",
        ("service s { bool f(0: int a,) }",),
    ),
    (
        "fields are not separated by commas",
        ("message m { 0: int a, 1: int b }",),
    ),
    (
        "enum values are not separated by commas",
        ("enum e { 0: a, 1: b }",),
    ),
    (
        "a field is written 'ID: TYPE NAME', e.g. '0: string name'",
        (
            "message m { string a }",
            "exception e { string a }",
            "message m { 0: int a string b }",
        ),
    ),
    (
        "an argument is written 'ID: TYPE NAME', e.g. '0: string key'",
        (
            "service s { bool f(string a) }",
            "service s { #@random bool f(string a) }",
            "service s { bool f(0: int a, string b) }",
        ),
    ),
    (
        "an enum value is written 'ID: NAME', e.g. '0: red'",
        ("enum e { red }", "enum e { 0: red blue }"),
    ),
    (
        "a method is written 'RETURN_TYPE NAME(ARGUMENTS)'",
        ("service s { f() }", "service s { #@random f() }"),
    ),
)


@dataclass(frozen=True)
class Parsed:
    """A parse tree, the text it was parsed from, and the comments alone on their lines."""

    tree: lark.Tree[lark.Token]
    #: The text parsed (without a leading byte-order mark); spans index into it.
    text: str
    #: Comment text (``#`` included) by line number, for comments with nothing but
    #: whitespace before them on their line. Comments after code are left out: they
    #: document nothing below them.
    comments: Mapping[int, str]


@functools.cache
def get_parser() -> lark.Lark:
    """The shared LALR parser, built on first call.

    ``strict=True`` is not passed: in lark it needs the optional ``interegular`` package
    to compare terminals. The grammar keeps its terminals disjoint instead, and the tests
    build the tables with lark's strict conflict check.
    """
    grammar = resources.files("jenerator").joinpath("grammar/msgpack_idl.lark").read_text("utf-8")
    logger.debug("building the IDL parser")
    return lark.Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _COMMENT_TOKENS.append},
    )


def parse(text: str, path: str) -> Parsed:
    """Parse ``text`` (read from ``path``, used in messages).

    Raises :class:`~jenerator.errors.IdlError` with one diagnostic on a syntax error.
    """
    parser = get_parser()
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the text
    with _LOCK:
        _COMMENT_TOKENS.clear()
        try:
            tree = parser.parse(text)
        except UnexpectedInput as error:
            raise IdlError([syntax_diagnostic(error, text, path)]) from None
        finally:
            tokens = list(_COMMENT_TOKENS)
            _COMMENT_TOKENS.clear()
    beyond = _beyond_limits(tree, path)
    if beyond is not None:
        raise IdlError([beyond])
    return Parsed(tree, text, _own_line_comments(tokens, text))


def _beyond_limits(tree: lark.Tree[lark.Token], path: str) -> Diagnostic | None:
    """The first number longer than MAX_DIGITS or type nested deeper than MAX_TYPE_DEPTH.

    Walks the tree with a stack, so the walk itself cannot run out of Python stack.
    """
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _TYPE_RULES:
            depth += 1
            if depth > MAX_TYPE_DEPTH:
                line, column = node.meta.line, node.meta.column
                message = f"types nested more than {MAX_TYPE_DEPTH} levels deep"
                return Diagnostic.error(Span(path, line, column, line, column), message, "syntax")
        for child in node.children:
            if isinstance(child, lark.Tree):
                stack.append((child, depth))
            elif _too_long(child):  # children may also be None (absent optional parts)
                line, column = child.line or 1, child.column or 1
                digits = len(child.lstrip("-"))
                message = f"number too long ({digits} digits; at most {MAX_DIGITS})"
                return Diagnostic.error(Span(path, line, column, line, column), message, "syntax")
    return None


def _too_long(child: object) -> TypeGuard[lark.Token]:
    return (
        isinstance(child, lark.Token)
        and child.type == "INT"
        and len(child.lstrip("-")) > MAX_DIGITS
    )


def _own_line_comments(tokens: list[lark.Token], text: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    for token in tokens:
        start = token.start_pos or 0
        line_start = text.rfind("\n", 0, start) + 1
        if not text[line_start:start].strip():
            comments[token.line or 0] = str(token)
    return comments


def syntax_diagnostic(error: UnexpectedInput, text: str, path: str) -> Diagnostic:
    """The diagnostic for a lark error raised while parsing ``text``."""
    if isinstance(error, UnexpectedToken):
        return _unclosed(error, text, path) or _unexpected_token(error, path)
    line, column = max(error.line, 1), max(error.column, 1)
    position: int | None = None
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream
    if position is None or not 0 <= position < len(text):
        message = "unexpected end of file"
    else:
        message = f"unexpected character {text[position]!r}{_character_hint(text, position)}"
    return Diagnostic.error(Span(path, line, column, line, column + 1), message, "syntax")


def _character_hint(text: str, position: int) -> str:
    if text.startswith("#@", position):
        return " ('#@' starts an annotation and needs a name, e.g. '#@cht')"
    if text[position] == '"':
        return " (a string must end with '\"' on the same line)"
    if text[position] == ";":
        return " (IDL declarations need no ';')"
    return ""


def _unexpected_token(error: UnexpectedToken, path: str) -> Diagnostic:
    token = error.token
    if token.type == "$END":
        found = "end of file"
        # lark places $END on the last token; the file ends after it.
        line, column = token.end_line or 1, token.end_column or 1
    else:
        found = repr(str(token))
        line, column = token.line or 1, token.column or 1
    # ``accepts`` replays the parser and is exact; ``expected`` may list terminals that an
    # LALR state merged in from elsewhere.
    message = f"unexpected {found}; expected {_expected(set(error.accepts or error.expected))}"
    hint = _hint(error)
    if hint:
        message += f" ({hint})"
    end_line = token.end_line or line
    end_column = token.end_column or column
    return Diagnostic.error(Span(path, line, column, end_line, end_column), message, "syntax")


#: Brackets a declaration closes on its own line (a ``{`` block spans lines by nature).
_CLOSERS = ("RPAR", "MORETHAN")
_OPENERS = ("LPAR", "LESSTHAN", "LBRACE")


def _unclosed(error: UnexpectedToken, text: str, path: str) -> Diagnostic | None:
    """A bracket left open at the end of a line (``int f(0: int a`` then a new line): the
    error is where the line ends, not at the next line's first token."""
    token = error.token
    expected = set(error.accepts or error.expected)
    closers = [name for name in _CLOSERS if name in expected]
    if token.type == "$END" or not closers or token.start_pos is None:
        return None
    previous = _token_before(text, token.start_pos)
    if previous is None or previous.end_line is None or previous.end_column is None:
        return None
    if previous.type in _OPENERS:
        return None
    if previous.end_line >= (token.line or 0):
        return None
    line, column = previous.end_line, previous.end_column
    message = (
        f"missing {_describe(closers[0])} at the end of the line; expected "
        f"{_expected(expected)} after {str(previous)!r}, found {str(token)!r} on line "
        f"{token.line}"
    )
    return Diagnostic.error(Span(path, line, column, line, column + 1), message, "syntax")


def _token_before(text: str, position: int) -> lark.Token | None:
    """The last token that ends before ``position`` (comments are not tokens)."""
    previous: lark.Token | None = None
    try:
        for token in get_parser().lex(text[:position]):
            previous = token
    except UnexpectedInput:
        return None
    return previous


def _expected(names: set[str]) -> str:
    words = sorted(_describe(n) for n in names - {"$END"})
    readable = [
        *(w for w in words if not w.startswith("'")),
        *(w for w in words if w.startswith("'")),
        *(["end of file"] if "$END" in names else []),
    ]
    if len(readable) == 1:
        return readable[0]
    return ", ".join(readable[:-1]) + " or " + readable[-1]


def _describe(terminal: str) -> str:
    if terminal in _DESCRIBED:
        return _DESCRIBED[terminal]
    literal = _literals().get(terminal)
    return f"'{literal}'" if literal is not None else terminal.lower()


@functools.cache
def _literals() -> dict[str, str]:
    """Terminal name → its fixed text, for the grammar's keywords and punctuation."""
    return {t.name: str(t.pattern.value) for t in get_parser().terminals if t.pattern.type == "str"}


def _hint(error: UnexpectedToken) -> str | None:
    if error.token.type == "ANNOTATION":
        return "annotations go on the lines just before a method"
    return _hint_table().get((_state_key(error), error.token.type))


def _state_key(error: UnexpectedToken) -> object:
    state = error.state
    return getattr(state, "position", state)


@functools.cache
def _hint_table() -> dict[tuple[object, str], str]:
    """(parser state, token type) → hint, found by parsing each example once."""
    table: dict[tuple[object, str], str] = {}
    parser = get_parser()
    for hint, examples in _HINT_EXAMPLES:
        for example in examples:
            try:
                parser.parse(example)
            except UnexpectedToken as error:
                table.setdefault((_state_key(error), error.token.type), hint)
            else:  # pragma: no cover - an example that parses is a bug in this table
                raise AssertionError(f"hint example parses: {example!r}")
    return table
