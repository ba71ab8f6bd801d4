"""Parse tree → typed model, with spans and ``#-`` doc lines. Never rejects input.

Doc lines attach to the node that starts right below them: a run of ``#-`` lines directly
above a message, field, enum, enum value, exception, service or method (for a method,
above its first annotation) becomes that node's ``doc``.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, Tree, v_args
from lark.tree import Meta

from jenerator import model as m

_CONTAINERS = {"list", "map", "tuple"}


def _unquote(token: Token) -> str:
    body = str(token)[1:-1]
    escapes = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "b": "\b", "t": "\t"}
    out: list[str] = []
    chars = iter(body)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append(escapes.get(nxt, "\\" + nxt))
        else:
            out.append(char)
    return "".join(out)


@v_args(meta=True)
class IdlTransformer(Transformer[Token, m.Idl]):
    """Builds the model; ``comments`` maps line numbers to ``#`` comment text."""

    def __init__(self, path: str, comments: dict[int, str]) -> None:
        super().__init__()
        self.path = path
        self.docs = {line: text[2:] for line, text in comments.items() if text.startswith("#-")}

    def _span(self, meta: Meta) -> m.Span:
        if getattr(meta, "empty", True):
            return m.Span(self.path, 1, 1, 1, 1)
        return m.Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _token_span(self, token: Token) -> m.Span:
        return m.Span(
            self.path, token.line or 1, token.column or 1,
            token.end_line or 1, token.end_column or 1,
        )  # fmt: skip

    def _doc(self, line: int) -> tuple[str, ...]:
        lines: list[str] = []
        current = line - 1
        while current in self.docs:
            lines.append(self.docs[current])
            current -= 1
        return tuple(reversed(lines))

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
        return m.Include(_unquote(items[0]), self._span(meta))

    def cpp_type(self, meta: Meta, items: list[Any]) -> str:
        return _unquote(items[0])

    def base(self, meta: Meta, items: list[Any]) -> str:
        return str(items[0])

    def message(self, meta: Meta, items: list[Any]) -> m.Message:
        name, rest = items[0], items[1:]
        cpp = rest.pop(0) if rest and isinstance(rest[0], str) else None
        span = self._span(meta)
        return m.Message(str(name), tuple(rest), cpp, self._doc(span.line), span)

    def exception(self, meta: Meta, items: list[Any]) -> m.ExceptionDef:
        name, rest = items[0], items[1:]
        base = rest.pop(0) if rest and isinstance(rest[0], str) else None
        span = self._span(meta)
        return m.ExceptionDef(str(name), tuple(rest), base, self._doc(span.line), span)

    def enum(self, meta: Meta, items: list[Any]) -> m.Enum:
        span = self._span(meta)
        return m.Enum(str(items[0]), tuple(items[1:]), self._doc(span.line), span)

    def enum_value(self, meta: Meta, items: list[Any]) -> m.EnumValue:
        span = self._span(meta)
        return m.EnumValue(int(items[0]), str(items[1]), self._doc(span.line), span)

    def field(self, meta: Meta, items: list[Any]) -> m.Field:
        span = self._span(meta)
        return m.Field(int(items[0]), items[1], str(items[2]), self._doc(span.line), span)

    def arg(self, meta: Meta, items: list[Any]) -> m.Arg:
        return m.Arg(int(items[0]), items[1], str(items[2]), self._span(meta))

    def annotation_argument(self, meta: Meta, items: list[Any]) -> int:
        return int(items[0])

    def annotation(self, meta: Meta, items: list[Any]) -> m.Annotation:
        argument = items[1] if len(items) > 1 else None
        return m.Annotation(str(items[0])[2:], argument, self._span(meta))

    def method(self, meta: Meta, items: list[Any]) -> m.Method:
        annotations = tuple(i for i in items if isinstance(i, m.Annotation))
        rest = [i for i in items if not isinstance(i, m.Annotation)]
        return_type, name, args = rest[0], rest[1], [a for a in rest[2:] if a is not None]
        span = self._span(meta)
        return m.Method(
            str(name), return_type, tuple(args), annotations, self._doc(span.line), span
        )

    def service(self, meta: Meta, items: list[Any]) -> m.Service:
        span = self._span(meta)
        return m.Service(str(items[0]), tuple(items[1:]), self._doc(span.line), span)

    def named(self, meta: Meta, items: list[Any]) -> m.TypeExpr:
        name = str(items[0])
        span = self._token_span(items[0])
        if name in m.PRIMITIVE_NAMES:
            return m.PrimitiveType(name, span)
        return m.NamedType(name, span)

    def nullable(self, meta: Meta, items: list[Any]) -> m.NullableType:
        return m.NullableType(items[0], self._span(meta))

    def list_type(self, meta: Meta, items: list[Any]) -> m.ListType:
        return m.ListType(items[0], self._span(meta))

    def map_type(self, meta: Meta, items: list[Any]) -> m.MapType:
        return m.MapType(items[0], items[1], self._span(meta))

    def tuple_type(self, meta: Meta, items: list[Any]) -> m.TupleType:
        return m.TupleType(tuple(items), self._span(meta))


def transform(tree: Tree[Token], path: str, comments: dict[int, str]) -> m.Idl:
    return IdlTransformer(path, comments).transform(tree)
