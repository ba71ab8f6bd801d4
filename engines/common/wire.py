"""Serving an engine's methods on their wire values (``ServerBase.wire_methods``).

A wire method gets the arguments as the wire carries them (strings as UTF-8 ``bytes``) and
returns a wire value: plain lists, tuples, strings and numbers, no message objects. It
reads the usual shapes itself (a datum through its converter's cached ``wire_datum`` or
``extract_wire``) and hands anything else to :func:`call_typed`, which decodes the
arguments as the dispatcher does (the same ``TypeMismatch``, worded the same way) and
runs the typed method, so an unusual or bad call gets exactly the answer or error it got
without the fast path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.errors import TypeMismatch, WireTypeError
from runtime.wire.signature import Signature


def decode_argument(signature: Signature[Any], value: object, index: int = 0) -> Any:
    """Argument ``index`` of ``signature`` decoded from ``value``; ``TypeMismatch`` worded
    as the dispatcher words it when it does not fit."""
    try:
        return signature.args[index].decode(value)
    except WireTypeError as error:
        raise TypeMismatch(
            f"{signature.name}: argument {signature.labels[index]}: {error}"
        ) from None


def call_typed(signature: Signature[Any], func: Callable[..., Any], *values: object) -> object:
    """``func`` (the typed method) on the decoded ``values``, its result encoded for the
    wire: what the dispatcher does for a method that is not a wire method."""
    args = [decode_argument(signature, value, index) for index, value in enumerate(values)]
    return signature.result.encode(func(*args))


def wire_text(value: object) -> str | None:
    """A ``string`` argument's text, or None when it is not UTF-8 ``bytes`` or ``str``."""
    if type(value) is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if type(value) is str:
        return value
    return None


#: The largest ``uint`` (``size``, ``ret_num``) the wire takes.
UINT_MAX = 0xFFFFFFFF


def wire_uint(value: object) -> int | None:
    """A ``uint`` argument, or None when it is not an int in range."""
    if type(value) is int and 0 <= value <= UINT_MAX:
        return value
    return None


def scored_wire(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """``[(id, score)]`` as ``list<id_with_score>`` goes out (scores as floats)."""
    return [(key, float(score)) for key, score in rows]
