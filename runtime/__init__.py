"""Jubako runtime: what generated servers, proxies and clients import.

A service author imports from here and nowhere else::

    from runtime import Datum, ServerBase

- :class:`ServerBase`: the base of a ``*_serv`` class (config, status, save hooks);
- :class:`SnapshotModel`: the other way of holding a model (one writer thread, read-only
  snapshots, an experience buffer), with :class:`SnapshotMixable` for its mix and the
  errors its callers see (:class:`UpdateBufferFull`, :class:`WriterStopped`), and
  :func:`text_weight` for a fire-and-forget update's weight in its buffer;
- :class:`FrameAnswerer`: some methods' plain calls answered from the requests' bytes
  (:meth:`ServerBase.frame_answerer`), with :data:`MSGID_LIMIT`, the msgids they may carry;
- :class:`Datum`: Jubatus's datum;
- :class:`Mixable`, :class:`DiffError`: the contract of a model that mixes in a cluster;
- :class:`LockMode`: the lock a method takes (``#@analysis``, ``#@update``, ``#@nolock``);
- :class:`Client`, :class:`AsyncClient`: raw MessagePack-RPC clients (the generated
  ``NAME_client`` classes are the usual way to call a service);
- the errors a caller handles (:mod:`runtime.errors` draws the whole tree).

Everything else lives in the folders named after its concern (``docs/architecture.md``
has the map) and may move between releases.
"""

from runtime.errors import (
    ClusterError,
    ConfigError,
    JubakoError,
    ModelFileError,
    RemoteError,
    RPCError,
    RPCTimeout,
    TypeMismatch,
    UnknownMethod,
)
from runtime.mix.mixable import DiffError, Mixable
from runtime.rpc.client import AsyncClient, Client
from runtime.rpc.frames import FrameAnswerer
from runtime.rpc.locks import LockMode
from runtime.rpc.protocol import MSGID_LIMIT
from runtime.server.base import ServerBase
from runtime.server.snapshot import (
    SnapshotMixable,
    SnapshotModel,
    UpdateBufferFull,
    WriterStopped,
    text_weight,
)
from runtime.version import __version__
from runtime.wire.datum import Datum

__all__ = [
    "MSGID_LIMIT",
    "AsyncClient",
    "Client",
    "ClusterError",
    "ConfigError",
    "Datum",
    "DiffError",
    "FrameAnswerer",
    "JubakoError",
    "LockMode",
    "Mixable",
    "ModelFileError",
    "RPCError",
    "RPCTimeout",
    "RemoteError",
    "ServerBase",
    "SnapshotMixable",
    "SnapshotModel",
    "TypeMismatch",
    "UnknownMethod",
    "UpdateBufferFull",
    "WriterStopped",
    "__version__",
    "text_weight",
]
