"""MessagePack-RPC framing, sans I/O: records, packing, and a streaming decoder.

Request ``[0, msgid, method, params]``, response ``[1, msgid, error, result]``,
notification ``[2, method, params]``. Everything is packed in the *old* msgpack spec
(``use_bin_type=False``: strings and bytes both as raw, never str8 or bin), as Jubatus
and its clients do, so old clients read our frames. Decoding keeps raw values as
``bytes`` (``raw=True``); descriptors decode them by declared type. No asyncio here.
"""

from __future__ import annotations

import asyncio
import enum
import fcntl
import struct
import termios
import typing
from dataclasses import dataclass
from typing import Any

import msgpack

from runtime.errors import ARGUMENT_ERROR, NO_METHOD_ERROR, MessageTooLarge, ProtocolError

__all__ = [
    "ARGUMENT_ERROR",
    "MSGID_LIMIT",
    "NO_METHOD_ERROR",
    "Decoder",
    "MessageType",
    "Notification",
    "Request",
    "Response",
    "pack_notification",
    "pack_request",
    "pack_response",
]

#: msgids are uint32 and wrap.
MSGID_LIMIT = 1 << 32
#: Decoded method names kept per connection.
_NAME_CACHE_SIZE = 64


class MessageType(enum.IntEnum):
    REQUEST = 0  #: [0, msgid, method, params]
    RESPONSE = 1  #: [1, msgid, error, result]
    NOTIFY = 2  #: [2, method, params]


@dataclass(slots=True)
class Request:
    msgid: int
    method: str
    params: list[Any]


@dataclass(slots=True)
class Response:
    msgid: int
    error: Any
    result: Any


@dataclass(slots=True)
class Notification:
    method: str
    params: list[Any]


Message = Request | Response | Notification


def pack_request(msgid: int, method: str, params: list[Any]) -> bytes:
    packed: bytes = msgpack.packb([0, msgid, method, params], use_bin_type=False)
    return packed


def pack_response(msgid: int, error: Any, result: Any) -> bytes:
    packed: bytes = msgpack.packb([1, msgid, error, result], use_bin_type=False)
    return packed


def response_packer() -> msgpack.Packer:
    """A reusable packer for responses (old spec); one per connection, not thread-safe."""
    return msgpack.Packer(use_bin_type=False)


def pack_notification(method: str, params: list[Any]) -> bytes:
    packed: bytes = msgpack.packb([2, method, params], use_bin_type=False)
    return packed


#: A method name longer than this names no method: it is cut (and answered "unknown").
MAX_METHOD_NAME = 256


def _method_name(value: object) -> str:
    if isinstance(value, bytes):
        if len(value) > MAX_METHOD_NAME:  # no method has such a name: cut, not decoded
            head = value[:MAX_METHOD_NAME].decode("utf-8", "replace")
            return f"{head}... ({len(value)} bytes)"
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("method name is not valid UTF-8") from None
    if isinstance(value, str):
        if len(value) > MAX_METHOD_NAME:
            return f"{value[:MAX_METHOD_NAME]}... ({len(value)} characters)"
        return value
    raise ProtocolError(f"method name must be a string, not {type(value).__name__}")


def _msgid(value: object) -> int:
    if type(value) is not int or not 0 <= value < MSGID_LIMIT:
        raise ProtocolError(f"msgid must be a uint32, not {value!r}")
    return value


def to_message(obj: object) -> Message:
    """Check one unpacked object and turn it into a record; ProtocolError if malformed."""
    if not isinstance(obj, list) or not obj:
        raise ProtocolError(f"a message must be a non-empty array, not {type(obj).__name__}")
    kind = obj[0]
    if kind == MessageType.REQUEST and len(obj) == 4:
        if not isinstance(obj[3], list):
            raise ProtocolError("request params must be an array")
        return Request(_msgid(obj[1]), _method_name(obj[2]), obj[3])
    if kind == MessageType.RESPONSE and len(obj) == 4:
        return Response(_msgid(obj[1]), obj[2], obj[3])
    if kind == MessageType.NOTIFY and len(obj) == 3:
        if not isinstance(obj[2], list):
            raise ProtocolError("notification params must be an array")
        return Notification(_method_name(obj[1]), obj[2])
    raise ProtocolError(f"not a MessagePack-RPC message: type {kind!r}, {len(obj)} elements")


class Decoder:
    """Feed bytes, get whole messages; raises ProtocolError / MessageTooLarge on garbage.

    After an error the decoder is unusable: the stream has lost its framing.
    """

    def __init__(self, max_message_size: int = 64 * 1024 * 1024) -> None:
        self.max_message_size = max_message_size
        self._unpacker = msgpack.Unpacker(
            raw=True, strict_map_key=False, max_buffer_size=max_message_size
        )
        #: Method names seen, raw → text (a connection uses a handful).
        self._names: dict[bytes, str] = {}
        #: Bytes pushed so far (a client reads it to tell a silent server from a busy one).
        self.fed = 0

    @property
    def unpacker(self) -> msgpack.Unpacker:
        """The streaming unpacker: iterate it for the objects :meth:`push` completed.
        Turn what iterating raises into a stream error with :meth:`stream_error`."""
        return self._unpacker

    def push(self, data: bytes) -> None:
        """Add bytes; MessageTooLarge when the buffer would pass the limit."""
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            raise MessageTooLarge(
                f"a message is larger than the limit of {self.max_message_size} bytes"
            ) from None
        self.fed += len(data)

    def stream_error(self, error: Exception) -> ProtocolError | MessageTooLarge:
        """What an exception raised while iterating :attr:`unpacker` means."""
        if isinstance(error, ProtocolError | MessageTooLarge):
            return error
        if "exceeds max" in str(error):
            return MessageTooLarge(
                f"a message is larger than the limit of {self.max_message_size} bytes"
            )
        return ProtocolError(f"malformed msgpack: {error}")

    def message(self, obj: object) -> Message:
        """Check one unpacked object and turn it into a record; ProtocolError if malformed.
        Method names are decoded once per connection."""
        names = self._names
        if type(obj) is list and len(obj) == 4 and obj[0] == 0 and type(obj[2]) is bytes:
            name = names.get(obj[2])  # a known method: only the msgid and params to check
            msgid, params = obj[1], obj[3]
            if name is not None and type(params) is list:
                return Request(_msgid(msgid), name, params)
        message = to_message(obj)
        if isinstance(message, Request) and len(names) < _NAME_CACHE_SIZE:
            names[obj[2]] = message.method  # type: ignore[index]
        return message

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes and return the whole messages they complete."""
        self.push(data)
        message = self.message
        try:
            return [message(obj) for obj in self._unpacker]
        except (ProtocolError, ValueError, msgpack.UnpackException, TypeError) as error:
            raise self.stream_error(error) from None


#: The ioctl that reads how much of a socket's output the peer has not taken (Linux).
_OUTQ: int | None = getattr(termios, "TIOCOUTQ", None)


def unsent(transport: asyncio.BaseTransport) -> int:
    """Bytes written to ``transport`` that the peer has not taken yet: held by the
    transport, and in the kernel's send queue (not acknowledged; uvloop's transports do
    not count what they handed to libuv, the kernel queue does)."""
    held = typing.cast(asyncio.WriteTransport, transport).get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is not None and _OUTQ is not None:
        try:
            held += struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
        except OSError:  # closed meanwhile
            pass
    return held
