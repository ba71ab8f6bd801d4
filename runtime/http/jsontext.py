"""JSON text as the gateway writes it: one encoder, and the pieces shapes write directly.

:func:`dumps` is compact JSON with UTF-8 kept as it is. The other functions give, for one
value, exactly the text :func:`dumps` gives it: :mod:`runtime.http.shapes` uses them to
write a wire result as JSON text without building the JSON value first (a job writes one
result per input).
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring
from typing import Any

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_FLOAT_REPR = float.__repr__
_INT_REPR = int.__repr__

#: ``"text"`` with JSON's escapes, as :func:`dumps` writes a string.
string_text = encode_basestring


def dumps(value: Any) -> str:
    """Compact JSON text (UTF-8 kept as it is)."""
    return _ENCODE(value)


def float_text(value: float) -> str:
    """A float as :func:`dumps` writes it (``Infinity``, ``-Infinity`` and ``NaN`` too)."""
    if -math.inf < value < math.inf:
        return _FLOAT_REPR(value)
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def int_text(value: int) -> str:
    """An int (not a bool) as :func:`dumps` writes it."""
    return _INT_REPR(value)


def bool_text(value: bool) -> str:
    return "true" if value else "false"
