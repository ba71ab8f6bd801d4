"""Reading requests with a bounded cost: what a client's bytes may turn into in memory.

msgpack builds Python objects as bytes arrive, and an object costs more than its bytes:
one byte (``0x90``, an empty array) becomes a 56-byte list plus a slot in its parent. A
server must therefore not let the unpacker build a message that is still arriving, nor
build one whose objects would be too large. :class:`BoundedDecoder` keeps three rules:

- **Whole reads, small leftovers.** Bytes go to the C unpacker as they come, so the common
  case (whole requests in each read) costs nothing extra. The serving loop records where
  each message ends (:meth:`BoundedDecoder.settle`); a message still incomplete at the end
  of a read may stay in the unpacker only while it is at most :data:`PARTIAL_LIMIT` bytes.
- **A larger message in progress is scanned, not built.** Its bytes are kept raw and walked
  by :class:`Scanner`, which builds nothing and keeps a running estimate of what the
  message will cost decoded (:func:`Scanner.estimate`). Once it is complete, and within
  the limits, it goes to the unpacker in one piece.
- **Exact limits.** A message longer than ``max_message_size`` bytes is refused at the first
  byte over; one whose decoded estimate passes ``2 * max_message_size``, or nested deeper
  than :data:`MAX_DEPTH`, as soon as the scanner sees it (ext types, which MessagePack-RPC
  never uses, too).

What this bounds: raw bytes kept for a message in progress ≤ ``max_message_size``; objects
kept across reads ≤ :data:`PARTIAL_LIMIT` * :data:`WORST_RATIO`; objects built from one
read while it is handled ≤ the size of the read * :data:`WORST_RATIO` (freed before the next).
No asyncio here.
"""

from __future__ import annotations

import re
import struct
from typing import Final

import msgpack

from runtime.errors import MessageTooLarge, ProtocolError
from runtime.rpc.protocol import Decoder, Message

#: Bytes of an incomplete message the unpacker may hold (as partly built objects) between
#: reads; a longer one is scanned until complete.
PARTIAL_LIMIT: Final = 4096
#: Containers nested deeper than this in a scanned message are refused.
MAX_DEPTH: Final = 64
#: The most memory one byte of MessagePack can become: an empty map (64 bytes) plus its
#: slot in the parent (8).
WORST_RATIO: Final = 72
#: The unpacker's own buffer limit: one read plus a leftover, whatever the message limit
#: (messages are measured one by one, see :meth:`BoundedDecoder.check_size`).
_BUFFER_LIMIT: Final = 4 * 1024 * 1024

# What the C unpacker allocates, at most, measured with tracemalloc on CPython 3.11 (64
# bits). A container pays for its children's slots: a list 8 bytes each (preallocated
# from its header), a dict 64 bytes an entry (its table grows in steps).
_SLOT = 8
_INT = 32
_FLOAT = 24
_RAW = 48  # plus the payload; empty and one-byte raws are cached
_LIST = 64
_MAP_EMPTY = 64
_MAP = 168
_MAP_ENTRY = 64

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
#: Bytes that are whole elements by themselves: fixints, nil, booleans, and the empty
#: array, map and string. Runs of them (what a dense attack sends) are measured at C
#: speed, a run at a time.
_ONE_BYTE_ELEMENTS = rb"\x00-\x7f\x80\x90\xa0\xc0\xc2\xc3\xe0-\xff"
_ONE_BYTE = frozenset([*range(0x80), 0x80, 0x90, 0xA0, 0xC0, 0xC2, 0xC3, *range(0xE0, 0x100)])
_IS_ONE_BYTE = [b in _ONE_BYTE for b in range(256)]
_ONE_BYTE_RUN = re.compile(b"[" + _ONE_BYTE_ELEMENTS + b"]+")


class Scanner:
    """Walks the bytes of one MessagePack object without building it.

    :meth:`feed` adds bytes and returns the object's length once it is complete; until
    then the bytes are kept in :attr:`buffer`. :attr:`estimate` is an upper bound of the
    memory the object will take once the C unpacker builds it (CPython 3.11, 64 bits:
    objects, and their containers' slots, which a list preallocates from its header).

    :raises MessageTooLarge: past ``max_size`` bytes or a decoded estimate of
        ``decoded_limit`` bytes.
    :raises ProtocolError: nested deeper than ``max_depth``, an ext type, or byte 0xc1.
    """

    __slots__ = ("buffer", "decoded_limit", "estimate", "max_depth", "max_size", "pos", "stack")

    def __init__(self, max_size: int, decoded_limit: int, max_depth: int = MAX_DEPTH) -> None:
        self.max_size = max_size
        self.decoded_limit = decoded_limit
        self.max_depth = max_depth
        self.buffer = bytearray()
        #: Bytes of :attr:`buffer` walked so far.
        self.pos = 0
        #: Elements still to read at each open level (the outermost: the object itself).
        self.stack = [1]
        self.estimate = 0

    def feed(self, data: bytes | bytearray | memoryview) -> int | None:
        """Add ``data``; the object's length in bytes once complete, else None."""
        self.buffer += data
        end = self._walk()
        if end is None:
            if len(self.buffer) >= self.max_size:
                raise MessageTooLarge(
                    f"a message is larger than the limit of {self.max_size} bytes"
                )
            return None
        if end > self.max_size:
            raise MessageTooLarge(f"a message is larger than the limit of {self.max_size} bytes")
        return end

    def _walk(self) -> int | None:
        buf = self.buffer
        size = len(buf)
        pos = self.pos
        stack = self.stack
        estimate = self.estimate
        try:
            while stack:
                if stack[-1] == 0:
                    stack.pop()
                    continue
                if pos >= size:
                    return None
                byte = buf[pos]
                if _IS_ONE_BYTE[byte] and pos + 1 < size and _IS_ONE_BYTE[buf[pos + 1]]:
                    run = _ONE_BYTE_RUN.match(buf, pos, min(size, pos + stack[-1]))
                    assert run is not None
                    end = run.end()
                    estimate += _LIST * buf.count(b"\x90", pos, end)
                    estimate += _MAP_EMPTY * buf.count(b"\x80", pos, end)
                    if estimate > self.decoded_limit:
                        raise self._too_large_decoded()
                    stack[-1] -= end - pos
                    pos = end
                    continue
                head = 1
                payload = 0
                opened = -1  # elements of a container this element opens
                cost = 0
                if byte <= 0x7F or byte >= 0xE0 or byte in (0xC0, 0xC2, 0xC3):
                    pass  # fixints, nil, booleans: cached objects
                elif byte <= 0x8F:
                    n = byte & 0x0F
                    opened, cost = 2 * n, (_MAP + _MAP_ENTRY * n if n else _MAP_EMPTY)
                elif byte <= 0x9F:
                    n = byte & 0x0F
                    opened, cost = n, _LIST + _SLOT * n
                elif byte <= 0xBF:
                    payload = byte & 0x1F
                    cost = _RAW + payload if payload > 1 else 0
                elif byte in (0xC4, 0xD9):  # bin 8, str 8
                    if pos + 2 > size:
                        return None
                    payload, head = buf[pos + 1], 2
                    cost = _RAW + payload if payload > 1 else 0
                elif byte in (0xC5, 0xDA):  # bin 16, str 16
                    if pos + 3 > size:
                        return None
                    payload, head = _U16.unpack_from(buf, pos + 1)[0], 3
                    cost = _RAW + payload
                elif byte in (0xC6, 0xDB):  # bin 32, str 32
                    if pos + 5 > size:
                        return None
                    payload, head = _U32.unpack_from(buf, pos + 1)[0], 5
                    cost = _RAW + payload
                elif byte in (0xCA, 0xCB):
                    head = 5 if byte == 0xCA else 9
                    cost = _FLOAT
                elif 0xCC <= byte <= 0xD3:  # uint 8..64, int 8..64
                    head = 1 + (1 << (byte - 0xCC) % 4)
                    cost = 0 if byte == 0xCC else _INT  # uint 8: a cached int
                elif byte in (0xDC, 0xDE):  # array 16, map 16
                    if pos + 3 > size:
                        return None
                    n, head = _U16.unpack_from(buf, pos + 1)[0], 3
                    opened, cost = _container(byte, n)
                elif byte in (0xDD, 0xDF):  # array 32, map 32
                    if pos + 5 > size:
                        return None
                    n, head = _U32.unpack_from(buf, pos + 1)[0], 5
                    opened, cost = _container(byte, n)
                elif byte == 0xC1:
                    raise ProtocolError("malformed msgpack: byte 0xc1 is never used")
                else:  # 0xc7-0xc9, 0xd4-0xd8: ext types
                    raise ProtocolError("malformed msgpack: ext types are not MessagePack-RPC")
                end = pos + head + payload
                if end > size:
                    return None
                estimate += cost
                if estimate > self.decoded_limit:
                    raise self._too_large_decoded()
                stack[-1] -= 1
                pos = end
                if opened > 0:
                    if len(stack) >= self.max_depth:
                        raise ProtocolError(f"a message nests deeper than {self.max_depth} levels")
                    stack.append(opened)
            return pos
        finally:
            self.pos = pos
            self.estimate = estimate


    def _too_large_decoded(self) -> MessageTooLarge:
        return MessageTooLarge(
            f"a message would take more than {self.decoded_limit} bytes of memory once decoded"
        )


def _container(byte: int, n: int) -> tuple[int, int]:
    """Elements a 16/32-bit array or map header opens, and what it costs decoded."""
    if byte in (0xDC, 0xDD):
        return n, _LIST + _SLOT * n
    return 2 * n, (_MAP + _MAP_ENTRY * n if n else _MAP_EMPTY)


class BoundedDecoder:
    """A server connection's decoder: whole messages only, at a bounded cost (see the
    module docstring).

    The serving loop asks :attr:`unpacker` for a message while it holds bytes past the
    last one (``given != boundary``), records where each message ends (``boundary``:
    ``unpacker.tell()`` right after it; :meth:`check_size` does both for other callers),
    and calls :meth:`settle` once the unpacker has no whole message left and part of one
    is there.
    Messages are checked and turned into records as :class:`~runtime.rpc.protocol.Decoder`
    does it (:meth:`message`, :meth:`stream_error`).
    """

    __slots__ = (
        "_last", "_older", "_records", "boundary", "decoded_limit", "fed", "given",
        "max_message_size", "scanned_end", "scanned_estimate", "scanner", "unpacker",
    )  # fmt: skip

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self.decoded_limit = 2 * max_message_size
        #: The C unpacker whole reads go to (replaced when a scanned message is handed
        #: over, or when an incomplete one leaves it for a scanner).
        self.unpacker = _new_unpacker(max_message_size)
        #: Bytes pushed so far, all told.
        self.fed = 0
        #: Bytes given to the current unpacker, and where its last whole message ended.
        self.given = 0
        self.boundary = 0
        #: The bytes given to the unpacker that may hold an incomplete message: the last
        #: read, and before it whatever was still unconsumed when it came.
        self._last: bytes | memoryview = b""
        self._older: list[bytes | memoryview] = []
        #: The scanner of a large message in progress, if any.
        self.scanner: Scanner | None = None
        #: The decoded estimate of the scanned message the unpacker holds, with its end.
        self.scanned_end = -1
        self.scanned_estimate = 0
        self._records = Decoder(max_message_size)

    @property
    def scanning(self) -> bool:
        """Whether a large message is in progress (held raw, not yet given to the unpacker)."""
        return self.scanner is not None

    @property
    def held(self) -> int:
        """Raw bytes held for a large message in progress."""
        return 0 if self.scanner is None else len(self.scanner.buffer)

    def in_progress(self) -> bool:
        """Whether part of a message has arrived and the rest not yet (as of the last
        :meth:`settle`)."""
        return self.scanner is not None or self.given > self.boundary

    def push(self, data: bytes | memoryview) -> None:
        """Add bytes from the client."""
        self.fed += len(data)
        if self.scanner is None:
            try:
                self.unpacker.feed(data)
            except msgpack.BufferFull:
                raise self._too_large() from None
            if self.boundary < self.given:  # part of a message came before this read
                self._older.append(self._last)
            elif self._older:
                self._older = []
            self.given += len(data)
            self._last = data
            return
        end = self.scanner.feed(data)
        if end is None:
            return
        message = self.scanner.buffer
        self.scanned_end, self.scanned_estimate = end, self.scanner.estimate
        self.scanner = None
        rest = bytes(message[end:])
        del message[end:]
        self.unpacker = _new_unpacker(self.max_message_size)
        self.unpacker.feed(message)  # whole: nothing of it is left over
        self.given, self.boundary = len(message), 0
        del message  # the unpacker has its own copy
        self._last, self._older = b"", []
        if rest:
            self.push(rest)
            self.fed -= len(rest)

    def check_size(self, end: int) -> None:
        """One message's end (``unpacker.tell()`` right after it): MessageTooLarge for a
        message over the limit; moves the boundary."""
        if end - self.boundary > self.max_message_size:
            raise self._too_large()
        self.boundary = end

    def estimate(self, end: int, size: int) -> int:
        """What a message of ``size`` bytes ending at ``end`` costs decoded, at most: the
        scanner's figure for a scanned one, else the worst ratio of its bytes."""
        if end == self.scanned_end:
            return self.scanned_estimate
        return size * WORST_RATIO

    def settle(self) -> None:
        """Called once the unpacker yields no more whole messages and part of one is
        there: one longer than :data:`PARTIAL_LIMIT` bytes leaves the unpacker for a
        scanner (a shorter one stays, and only its bytes are kept)."""
        partial = self.given - self.boundary
        if partial <= 0:
            return
        if partial >= self.max_message_size:
            raise self._too_large()
        recent = self._last
        if self._older:
            recent = b"".join([*self._older, recent])
        tail = recent[len(recent) - partial :]  # the bytes of the incomplete message
        if partial <= PARTIAL_LIMIT:
            self._last, self._older = tail, []
            return
        scanner = Scanner(self.max_message_size, self.decoded_limit)
        # The unpacker's partly built objects go with it; the scanner starts over.
        self.unpacker = _new_unpacker(self.max_message_size)
        self.given = self.boundary = 0
        self._last, self._older = b"", []
        self.scanned_end = -1
        if scanner.feed(tail) is not None:  # pragma: no cover - the unpacker found it incomplete
            raise ProtocolError("a message the unpacker found incomplete is complete")
        self.scanner = scanner

    def message(self, obj: object) -> Message:
        """Check one unpacked object and turn it into a record (see ``Decoder.message``)."""
        return self._records.message(obj)

    def stream_error(self, error: Exception) -> ProtocolError | MessageTooLarge:
        """What an exception raised while iterating :attr:`unpacker` means."""
        return self._records.stream_error(error)

    def _too_large(self) -> MessageTooLarge:
        limit = self.max_message_size
        return MessageTooLarge(f"a message is larger than the limit of {limit} bytes")


def _new_unpacker(max_message_size: int) -> msgpack.Unpacker:
    limit = max(max_message_size, _BUFFER_LIMIT)
    return msgpack.Unpacker(
        raw=True,
        strict_map_key=False,
        max_buffer_size=limit,
        max_str_len=max_message_size,
        max_bin_len=max_message_size,
        max_array_len=max_message_size,
        max_map_len=max_message_size,
        max_ext_len=0,
    )
