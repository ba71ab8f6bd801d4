"""Text → Lark parse tree, plus the comments the grammar ignores.

One LALR parser is built lazily from ``grammar/msgpack_idl.lark`` and reused. Syntax
errors become a :class:`~jenerator.diagnostics.Diagnostic` saying what was expected at
the line and column where parsing stopped (LALR stops at the first).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from importlib import resources

import lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from jenerator.diagnostics import Diagnostic
from jenerator.errors import IdlError
from jenerator.model import Span

_LOCK = threading.Lock()
_COMMENTS: list[lark.Token] = []

_NAMES = {
    "NAME": "a name", "INT": "a number", "SIGNED_INT": "a number", "STRING": "a string",
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "LESSTHAN": "'<'",
    "MORETHAN": "'>'", "COLON": "':'", "COMMA": "','", "QMARK": "'?'",
    "ANNOTATION": "an annotation", "$END": "end of file",
}  # fmt: skip


@dataclass(frozen=True)
class Parsed:
    tree: lark.Tree[lark.Token]
    #: ``#`` comments by line (without the newline), in order.
    comments: dict[int, str]


@functools.cache
def _parser() -> lark.Lark:
    grammar = resources.files("jenerator").joinpath("grammar/msgpack_idl.lark").read_text("utf-8")
    return lark.Lark(
        grammar,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": _COMMENTS.append},
    )


def _expected(names: set[str]) -> str:
    readable = sorted({_NAMES.get(n, f"'{n.lower()}'" if n.isupper() else n) for n in names})
    return ", ".join(readable[:8]) + (", ..." if len(readable) > 8 else "")


def parse(text: str, path: str) -> Parsed:
    """Parse ``text``; raises IdlError with the syntax error's position and expectation."""
    with _LOCK:
        _COMMENTS.clear()
        try:
            tree = _parser().parse(text)
        except UnexpectedInput as error:
            raise IdlError([_diagnostic(error, text, path)]) from None
        comments = {token.line or 0: str(token) for token in _COMMENTS}
        _COMMENTS.clear()
    return Parsed(tree, comments)


def _diagnostic(error: UnexpectedInput, text: str, path: str) -> Diagnostic:
    line, column = max(error.line, 1), max(error.column, 1)
    if isinstance(error, UnexpectedCharacters):
        position: int = getattr(error, "pos_in_stream", None) or 0
        char = text[position] if position < len(text) else "?"
        message = f"unexpected character {char!r}"
    elif isinstance(error, UnexpectedEOF):
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        message = f"unexpected end of file; expected {_expected(set(error.expected))}"
    elif isinstance(error, UnexpectedToken):
        found = "end of file" if error.token.type == "$END" else repr(str(error.token))
        message = f"unexpected {found}; expected {_expected(set(error.expected))}"
    else:
        message = "syntax error"
    return Diagnostic.error(Span(path, line, column, line, column), message, "syntax")
