"""Parse tree → typed model, with spans and ``#-`` doc lines.

The transformer only builds objects: it accepts every tree the grammar produces and
never rejects input (duplicate names, unknown types, a missing annotation are the
validator's findings). Each node's :class:`~jenerator.model.Span` comes from lark's
``meta``, so the transformer must run on a finished tree, outside ``Lark()``.

Doc lines: a run of ``#-`` comments, each alone on its line, directly above the line
where a message, field, enum, enum value, exception, service or method starts (for a
method, its first annotation) becomes that node's ``doc``, one entry per line with the
``#-`` marker removed. A method also takes the ``#-`` lines standing between its annotation
lines and its return type, after the run above it. Only a node that opens its line takes the run (in
``message m { 0: int a }`` the doc is the message's, not the field's). A blank line or a
plain ``#`` comment ends the run, and ``#-`` written after code documents nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lark import Token, Transformer, v_args
from lark.tree import Meta

from jenerator import model as m
from jenerator.parser import Parsed

_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "b": "\b", "t": "\t"}

DOC_MARKER = "#-"


def unquote(literal: str) -> str:
    """The text of a string literal: quotes removed, escapes resolved.

    Known escapes are ``\\\\ \\' \\" \\n \\r \\b \\t``; any other backslash pair is kept
    as written.
    """
    body = literal[1:-1]
    out: list[str] = []
    chars = iter(body)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(_ESCAPES.get(following, "\\" + following))
        else:
            out.append(char)
    return "".join(out)


@v_args(meta=True)
class IdlTransformer(Transformer[Token, m.Idl]):
    """Builds an :class:`~jenerator.model.Idl` from a parse tree of ``path``.

    ``comments`` maps line numbers to comments that stand alone on their line, and
    ``text`` is the parsed text, as :func:`jenerator.parser.parse` returns them.
    """

    def __init__(self, path: str, comments: Mapping[int, str], text: str) -> None:
        super().__init__()
        self.path = path
        self.lines = text.split("\n")
        self.docs = {
            line: text[len(DOC_MARKER) :]
            for line, text in comments.items()
            if text.startswith(DOC_MARKER)
        }

    # -- helpers ---------------------------------------------------------------------

    def _span(self, meta: Meta) -> m.Span:
        if getattr(meta, "empty", True):
            return m.Span(self.path, 1, 1, 1, 1)
        return m.Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _token_span(self, token: Token) -> m.Span:
        line, column = token.line or 1, token.column or 1
        return m.Span(self.path, line, column, token.end_line or line, token.end_column or column)

    def _doc(self, span: m.Span) -> tuple[str, ...]:
        line = span.line
        if line - 1 not in self.docs or not self._opens_line(span):
            return ()
        lines: list[str] = []
        current = line - 1
        while current in self.docs:
            lines.append(self.docs[current])
            current -= 1
        return tuple(reversed(lines))

    def _opens_line(self, span: m.Span) -> bool:
        if not 0 < span.line <= len(self.lines):
            return False
        return not self.lines[span.line - 1][: span.column - 1].strip()

    # -- declarations ----------------------------------------------------------------

    def start(self, meta: Meta, items: list[Any]) -> m.Idl:
        return m.Idl(
            path=self.path,
            includes=tuple(i for i in items if isinstance(i, m.Include)),
            messages=tuple(i for i in items if isinstance(i, m.Message)),
            enums=tuple(i for i in items if isinstance(i, m.Enum)),
            exceptions=tuple(i for i in items if isinstance(i, m.ExceptionDef)),
            services=tuple(i for i in items if isinstance(i, m.Service)),
        )

    def include(self, meta: Meta, items: list[Any]) -> m.Include:
        return m.Include(unquote(items[0]), self._span(meta))

    def cpp_type(self, meta: Meta, items: list[Any]) -> str:
        return unquote(items[0])

    def base(self, meta: Meta, items: list[Any]) -> str:
        return str(items[0])

    def message(self, meta: Meta, items: list[Any]) -> m.Message:
        name, cpp_type, *fields = items
        span = self._span(meta)
        return m.Message(str(name), tuple(fields), cpp_type, self._doc(span), span)

    def exception(self, meta: Meta, items: list[Any]) -> m.ExceptionDef:
        name, base, *fields = items
        span = self._span(meta)
        return m.ExceptionDef(str(name), tuple(fields), base, self._doc(span), span)

    def enum(self, meta: Meta, items: list[Any]) -> m.Enum:
        name, *values = items
        span = self._span(meta)
        return m.Enum(str(name), tuple(values), self._doc(span), span)

    def enum_value(self, meta: Meta, items: list[Any]) -> m.EnumValue:
        number, name = items
        span = self._span(meta)
        return m.EnumValue(int(number), str(name), self._doc(span), span)

    def field(self, meta: Meta, items: list[Any]) -> m.Field:
        number, type_, name = items
        span = self._span(meta)
        return m.Field(int(number), type_, str(name), self._doc(span), span)

    def service(self, meta: Meta, items: list[Any]) -> m.Service:
        name, *methods = items
        span = self._span(meta)
        return m.Service(str(name), tuple(methods), self._doc(span), span)

    def method(self, meta: Meta, items: list[Any]) -> m.Method:
        *annotations, return_type, name, args = items
        span = self._span(meta)
        between = range(span.line, return_type.span.line)  # empty without annotation lines
        doc = self._doc(span) + tuple(self.docs[line] for line in between if line in self.docs)
        return m.Method(str(name), return_type, tuple(args or ()), tuple(annotations), doc, span)

    def args(self, meta: Meta, items: list[Any]) -> list[m.Arg]:
        return list(items)

    def arg(self, meta: Meta, items: list[Any]) -> m.Arg:
        number, type_, name = items
        return m.Arg(int(number), type_, str(name), self._span(meta))

    def annotation(self, meta: Meta, items: list[Any]) -> m.Annotation:
        token, argument = items
        name = str(token)[len("#@") :]
        return m.Annotation(name, None if argument is None else int(argument), self._span(meta))

    # -- types -----------------------------------------------------------------------

    def named(self, meta: Meta, items: list[Any]) -> m.TypeExpr:
        token = items[0]
        span = self._token_span(token)
        if str(token) in m.PRIMITIVE_NAMES:
            return m.PrimitiveType(str(token), span)
        return m.NamedType(str(token), span)

    def nullable(self, meta: Meta, items: list[Any]) -> m.NullableType:
        return m.NullableType(items[0], self._span(meta))

    def list_type(self, meta: Meta, items: list[Any]) -> m.ListType:
        return m.ListType(items[0], self._span(meta))

    def map_type(self, meta: Meta, items: list[Any]) -> m.MapType:
        return m.MapType(items[0], items[1], self._span(meta))

    def tuple_type(self, meta: Meta, items: list[Any]) -> m.TupleType:
        return m.TupleType(tuple(items), self._span(meta))


def transform(parsed: Parsed, path: str) -> m.Idl:
    """The model of a parsed file; see :class:`IdlTransformer`."""
    return IdlTransformer(path, parsed.comments, parsed.text).transform(parsed.tree)
