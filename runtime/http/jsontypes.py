"""The IDL's types as pydantic types: what generated gateways annotate their models with.

Every scalar is strict, so a JSON body gets the same type errors a MessagePack client
does (``"5"`` is not a ``long``, ``true`` is not a ``double``); integers carry their IDL
range. ``raw`` travels as base64 text, ``object`` as any JSON value, and ``datum`` as
either Jubatus's three lists or the flat shorthand ``{"key": value}`` (strings become
string values, numbers num values). The conversion to wire values is
:mod:`runtime.http.shapes`' job; this module only validates.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

import pydantic
from pydantic import Field, Strict

__all__ = [
    "Bool", "Byte", "Datum", "DatumLists", "Double", "Float", "Int", "Long", "Object", "Raw",
    "Short", "String", "UByte", "UInt", "ULong", "UShort",
]  # fmt: skip


Bool: TypeAlias = Annotated[bool, Strict()]
Byte: TypeAlias = Annotated[int, Strict(), Field(ge=-128, le=127)]
Short: TypeAlias = Annotated[int, Strict(), Field(ge=-32768, le=32767)]
Int: TypeAlias = Annotated[int, Strict(), Field(ge=-2147483648, le=2147483647)]
Long: TypeAlias = Annotated[int, Strict(), Field(ge=-9223372036854775808, le=9223372036854775807)]
UByte: TypeAlias = Annotated[int, Strict(), Field(ge=0, le=255)]
UShort: TypeAlias = Annotated[int, Strict(), Field(ge=0, le=65535)]
UInt: TypeAlias = Annotated[int, Strict(), Field(ge=0, le=4294967295)]
ULong: TypeAlias = Annotated[int, Strict(), Field(ge=0, le=18446744073709551615)]
#: ``float`` and ``double``: JSON numbers (integers too), never booleans or strings, and
#: finite: Python's JSON reader takes ``NaN``, ``Infinity`` and ``1e400``, which are not JSON.
Double: TypeAlias = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Float: TypeAlias = Double
String: TypeAlias = Annotated[str, Strict()]
#: ``raw``: base64 text in JSON.
Raw: TypeAlias = pydantic.Base64Bytes
#: ``object``: any JSON value, passed on as it is.
Object: TypeAlias = Any


class DatumLists(pydantic.BaseModel):
    """Jubatus's datum: ``[key, value]`` pairs by kind; binary values in base64."""

    model_config = pydantic.ConfigDict(extra="forbid")

    string_values: list[tuple[String, String]] = []
    num_values: list[tuple[String, Double]] = []
    binary_values: list[tuple[String, pydantic.Base64Bytes]] = []


#: ``datum``: the three lists, or ``{"key": "text" | number}``.
Datum: TypeAlias = DatumLists | dict[String, String | Double]
