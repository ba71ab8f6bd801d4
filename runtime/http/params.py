"""A job input's arguments as the store keeps them: packed as the wire carries them.

:func:`pack` writes a marker byte, then the arguments as one msgpack array in the old
spec that every request goes out in (without the cluster name). Sending one is then a
splice (:func:`with_name`): no decoding and packing again per input. Inputs stored
before the marker came are a msgpack array of the new spec; :func:`unpack` reads both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

#: The first byte of arguments stored as the wire carries them: 0xc1, a byte msgpack
#: never uses (an array, as stored before, starts with 0x90-0x9f, 0xdc or 0xdd).
MARK = b"\xc1"
_pack_old_spec = msgpack.Packer(use_bin_type=False).pack
_array_header = msgpack.Packer().pack_array_header


def pack(params: Sequence[object]) -> bytes:
    """The stored form of wire arguments (UnicodeEncodeError for text UTF-8 cannot carry)."""
    packed: bytes = _pack_old_spec(list(params))
    return MARK + packed


def unpack(stored: bytes) -> list[Any]:
    """The wire arguments of a stored input (text as bytes when stored in the old spec:
    packed again, it gives the same bytes)."""
    if stored[:1] == MARK:
        values: list[Any] = msgpack.unpackb(stored[1:], raw=True, strict_map_key=False)
    else:
        values = msgpack.unpackb(stored, raw=False, strict_map_key=False)
    return values


def with_name(stored: bytes, packed_name: bytes) -> bytes | None:
    """The request params of a stored input: one array, ``packed_name`` (the cluster name,
    packed) first; None for an input stored in the older form."""
    if stored[:1] != MARK:
        return None
    first = stored[1]
    if first & 0xF0 == 0x90:
        count, start = first & 0x0F, 2
    elif first == 0xDC:
        count, start = int.from_bytes(stored[2:4]), 4
    elif first == 0xDD:
        count, start = int.from_bytes(stored[2:6]), 6
    else:
        raise ValueError(f"stored arguments are not an array (byte 0x{first:02x})")
    return b"".join((_array_header(count + 1), packed_name, memoryview(stored)[start:]))
