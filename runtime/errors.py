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
    """The peer answered with an error; ``message`` is its text (or repr)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class MembershipError(JubakoError):
    """ZooKeeper membership cannot be used (unreachable, bad address, not started)."""


#: Wire error codes → exception classes.
WIRE_ERRORS: dict[int, type[RPCError]] = {
    NO_METHOD_ERROR: UnknownMethod,
    ARGUMENT_ERROR: TypeMismatch,
}
