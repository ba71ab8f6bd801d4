"""The runtime's exception tree.

    JubakoError
    ├── RPCError                    a call failed
    │   ├── UnknownMethod           the peer has no such method        (wire error 1)
    │   ├── TypeMismatch            wrong argument count or type       (wire error 2)
    │   │   └── WireTypeError       a value does not fit its declared type (with a path)
    │   ├── RemoteError             the peer's method raised; .message says what
    │   ├── RPCTimeout              no answer in time                  (also TimeoutError)
    │   ├── ConnectError            cannot connect                     (also OSError)
    │   ├── ConnectionLost          the connection closed mid-call     (also OSError)
    │   ├── ProtocolError           malformed MessagePack-RPC frames
    │   └── MessageTooLarge         a frame beyond the size limit
    ├── ClusterError                no server found, or every replica failed
    ├── ModelFileError              a model file is corrupt or does not fit (also ValueError)
    ├── ConfigError                 a setting or config is wrong (also ValueError)
    └── MembershipError             ZooKeeper membership cannot be used

*Expected* errors (a server down, a bad model file, a timeout) are for callers to handle;
``TypeMismatch`` raised by a client before sending and ``ConfigError`` at start-up point at
a bug or a typo to fix. :data:`WIRE_ERRORS` maps wire error codes to classes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Self

#: Error code a server sends for an unknown method (msgpack-rpc's NO_METHOD_ERROR).
NO_METHOD_ERROR = 1
#: Error code a server sends for a wrong argument count or type (ARGUMENT_ERROR).
ARGUMENT_ERROR = 2


class JubakoError(Exception):
    """Base of every error the runtime raises on purpose."""


class RPCError(JubakoError):
    """A remote call failed."""


class UnknownMethod(RPCError):
    """The peer has no such method (wire error 1)."""


class TypeMismatch(RPCError, TypeError):
    """Wrong argument count or type (wire error 2)."""


class WireTypeError(TypeMismatch):
    """A wire value does not fit its declared type; the message names where."""


class RemoteError(RPCError):
    """The peer answered with an error; ``message`` is its text (or repr).

    ``result`` is what the reply carried beside the error (usually nil). For an exception
    the IDL declares, it holds the exception's fields, which a generated client turns back
    into the generated exception class.
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.result = result


class RPCTimeout(RPCError, TimeoutError):
    """No answer within the timeout."""


class ConnectError(RPCError, OSError):
    """The connection could not be made."""


class ConnectionLost(RPCError, OSError):
    """The connection closed before the answer came."""


class ProtocolError(RPCError):
    """Bytes that are not MessagePack-RPC."""


class MessageTooLarge(ProtocolError):
    """A frame larger than the configured limit."""


class ClusterError(JubakoError):
    """No server of the cluster could serve the call."""


class ModelFileError(JubakoError, ValueError):
    """A model file is corrupt, truncated, or does not fit this server."""


class ConfigError(JubakoError, ValueError):
    """A setting or config value is wrong; the message names it and its source."""

    @classmethod
    def unknown_key(cls, path: str, known: Iterable[str], what: str = "unknown key") -> Self:
        """``path: unknown key; did you mean 'parameter'?``: the nearest of ``known`` to the
        last part of ``path`` (``converter.string_rulez``), when one is near enough."""
        return cls(f"{path}: {what}{did_you_mean(path.rpartition('.')[2], known)}")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest of ``known`` to ``word``, or ``""``."""
    close = difflib.get_close_matches(word, sorted(set(known)), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class StartModeError(ConfigError):
    """The flags name no mode a server can start in (standalone without a config,
    ZooKeeper without a cluster name): Jubatus's line, usage, exit status 1."""


class MembershipError(JubakoError):
    """ZooKeeper membership cannot be used (unreachable, bad address, not started)."""


#: Wire error codes → exception classes.
WIRE_ERRORS: dict[int, type[RPCError]] = {
    NO_METHOD_ERROR: UnknownMethod,
    ARGUMENT_ERROR: TypeMismatch,
}
