"""Tiny Python expression trees laid out within the line limit.

Generated code must pass ruff (100 columns) without running a formatter. Calls and tuples
are kept as trees and laid out here: on one line when they fit, otherwise exploded one
argument per line with a trailing comma, the way a careful person would write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

LINE_LIMIT = 100
INDENT = "    "


@dataclass(frozen=True)
class Call:
    """``func(arg, ...)``; with ``func == ""`` a tuple literal ``(arg, ...)``."""

    func: str
    args: tuple[Expr, ...]


Expr: TypeAlias = str | Call


def call(func: str, *args: Expr) -> Call:
    return Call(func, args)


def tuple_of(*items: Expr) -> Call:
    return Call("", items)


def flat(expr: Expr) -> str:
    """``expr`` on one line."""
    if isinstance(expr, str):
        return expr
    inner = ", ".join(flat(a) for a in expr.args)
    if expr.func == "" and len(expr.args) == 1:
        inner += ","
    return f"{expr.func}({inner})"


def layout(expr: Expr, indent: int = 0, lead: str = "", trail: str = "") -> str:
    """``lead + expr + trail`` at ``indent`` levels, exploded where a line would be too long.

    The result has no final newline; continuation lines carry their own indentation.
    """
    pad = INDENT * indent
    one_line = f"{pad}{lead}{flat(expr)}{trail}"
    if len(one_line) <= LINE_LIMIT or isinstance(expr, str) or not expr.args:
        return one_line
    lines = [f"{pad}{lead}{expr.func}("]
    lines.extend(layout(arg, indent + 1, trail=",") for arg in expr.args)
    lines.append(f"{pad}){trail}")
    return "\n".join(lines)
