"""JSON the way ``jubadump`` prints it (jubatus::util::text::json's ``pretty`` with escaping).

Objects and arrays open on their line and put each member on a line of its own, indented
by two spaces per level (an empty one prints its brace, a line break and the indent);
numbers of Python type ``int`` print as integers, ``float`` ones with 12 significant
digits (C++'s ``setprecision(12)``: ``0.5``, ``1``, ``1e-05``); strings escape ``"``, ``\\``,
``/``, the control characters and every non-ASCII character (``\\uXXXX``, a surrogate pair
beyond the BMP). The output ends with a line break. One difference: members are printed
in sorted order, where Jubatus's follow its hash tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n"}
_ESCAPES.update({"\r": "\\r", "\t": "\\t"})


def number(value: float) -> str:
    """A double as Jubatus prints it (``%.12g``); a non-finite one is an error there too."""
    if not math.isfinite(value):
        raise ValueError("value of json float must be finite")
    return format(value, ".12g")


def string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif code < 0x80:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04X}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
    out.append('"')
    return "".join(out)


def _pretty(value: object, level: int, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(number(value))
    elif isinstance(value, str):
        out.append(string(value))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            out.append("\n" if i == 0 else ",\n")
            out.append("  " * (level + 1) + string(str(key)) + ": ")
            _pretty(value[key], level + 1, out)
        out.append("\n" + "  " * level + "}")
    elif isinstance(value, Sequence):
        out.append("[")
        for i, item in enumerate(value):
            out.append("\n" if i == 0 else ",\n")
            out.append("  " * (level + 1))
            _pretty(item, level + 1, out)
        out.append("\n" + "  " * level + "]")
    else:
        raise TypeError(f"cannot print {type(value).__name__} as JSON")


def pretty(value: object) -> str:
    """``value`` (dicts, lists, str, int, float, bool, None) as ``jubadump`` prints it."""
    out: list[str] = []
    _pretty(value, 0, out)
    out.append("\n")
    return "".join(out)


__all__ = ["number", "pretty", "string"]
