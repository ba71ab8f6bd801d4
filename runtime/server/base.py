"""The base class of every user service (the class in a ``*_serv`` module).

A service derives from :class:`ServerBase`, builds its model in ``__init__`` from the JSON
config, implements the IDL methods, and fills in the hooks the framework calls:

- :meth:`get_status` adds service keys to the built-in ``get_status``;
- :meth:`pack` / :meth:`unpack` turn the model into one msgpack-able value and back, for
  ``save`` and ``load``. ``unpack`` must build the new model fully before swapping it in,
  so a payload it rejects leaves the running model untouched;
- ``user_data_version`` is stored in model files; ``load`` refuses files of another version
  (and the mixer refuses to copy a peer's model of another version), except the
  ``older_user_data_versions`` a service still reads (its ``unpack`` tells the layouts
  apart);
- :meth:`mixable` hands the mixer the model it combines across servers (``None``, the
  default, for a service without mix);
- :meth:`updated` is what a method calls after changing the model when the framework does
  not count it itself (``#@nolock`` methods that learn): it feeds ``update_count`` and the
  mixer's ``--interval_count`` trigger. ``#@update`` methods are counted by the framework.
- ``model_lock_for`` names ``#@nolock`` methods that need the whole model anyway (Jubatus
  declares some engines' methods ``#@nolock`` and locks inside them): the framework then
  takes its model lock for them, shared or alone, as for ``#@analysis`` / ``#@update``,
  while clients and proxies still see ``#@nolock``. The server only *tries* that lock on
  its event loop; a method that waits for a lock of its own there stalls every
  connection.
- :meth:`snapshot_model` chooses the other way of holding a model: a
  :class:`~runtime.server.snapshot.SnapshotModel` (one writer thread, read-only
  snapshots, an experience buffer). ``#@update`` methods then run on the writer and
  ``#@analysis`` ones with no lock, on the published snapshot; ``None`` (the default)
  keeps the read/write lock. ``docs/writing-a-service.md`` says when to pick which.
- ``wire_methods`` names methods that take their arguments as the wire carries them
  (strings as ``bytes``) and return wire values, checked by themselves: a method whose
  per-call cost matters more than its convenience (the classifier's ``classify``).
- :meth:`frame_answerer` goes one step further for the hottest such methods: their plain
  calls are answered straight from the requests' bytes (:mod:`runtime.rpc.frames`).

The built-in RPCs themselves (``get_config``, ``save``, ``load``, ``get_status``) live in
:mod:`runtime.server.host`, which calls these hooks under the model lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from runtime.errors import ConfigError
from runtime.mix.mixable import Mixable
from runtime.rpc.locks import LockMode

if TYPE_CHECKING:
    from runtime.rpc.frames import FrameAnswerer
    from runtime.server.snapshot import SnapshotModel


class ServerBase:
    """What every service class derives from; see the module docstring for the hooks."""

    #: Version of the model payload written by :meth:`pack`; bump it when the layout changes.
    user_data_version: ClassVar[int] = 1
    #: Versions of older payload layouts :meth:`unpack` still reads (``load`` accepts them).
    older_user_data_versions: ClassVar[tuple[int, ...]] = ()
    #: ``#@nolock`` methods the framework runs under its model lock anyway, with the mode
    #: (``ANALYSIS`` shared, ``UPDATE`` alone and counted); see the module docstring.
    model_lock_for: ClassVar[Mapping[str, LockMode]] = {}
    #: Method name → the name of this class's function that serves it on the wire: it
    #: gets the wire values (strings as ``bytes``) and returns a wire value, and raises
    #: ``TypeMismatch`` on a value that does not fit (see the module docstring).
    wire_methods: ClassVar[Mapping[str, str]] = {}

    def __init__(self, config_json: str) -> None:
        try:
            config: Any = json.loads(config_json)
        except (json.JSONDecodeError, TypeError) as error:
            raise ConfigError(f"config is not valid JSON: {error}") from None
        #: The config text exactly as given (what ``get_config`` returns).
        self.config_json = config_json
        #: The parsed config.
        self.config = config
        #: Set by the framework: called by :meth:`updated`.
        self.update_listener: Callable[[], None] | None = None
        #: Set by the framework: whether the server runs alone (no ZooKeeper), Jubatus's
        #: ``is_standalone`` (some engines' status keys depend on it, as in Jubatus).
        self.standalone = True

    def mixable(self) -> Mixable | None:
        """The model the mixer combines across servers, or ``None`` (no mix).

        The mixer calls its methods under the framework's model lock (read lock for
        ``get_diff``/``get_model``, write lock for ``put_diff``/``set_model``); a model that
        is also changed by ``#@nolock`` methods must guard itself as well (see
        :class:`runtime.mix.locked.LockedMixable`).
        """
        return None

    def snapshot_model(self) -> SnapshotModel[Any, Any] | None:
        """The model held the snapshot way (one writer, published snapshots), or ``None``
        to keep the framework's read/write lock. Return the same object every time."""
        return None

    def frame_answerer(self) -> FrameAnswerer | None:
        """What answers some methods' plain calls straight from the bytes of the requests
        (:mod:`runtime.rpc.frames`), or ``None`` (the default): for the methods of a
        snapshot model (reads that take no lock, updates applied at once) whose per-call
        cost matters most. Asked once, at start."""
        return None

    def updated(self) -> None:
        """Count one model update (for ``#@nolock`` methods that change the model)."""
        listener = self.update_listener
        if listener is not None:
            listener()

    def get_status(self) -> dict[str, str]:
        """Service-specific status keys (strings to strings)."""
        return {}

    def status_key(self) -> Hashable | None:
        """What :meth:`get_status` is made from: while it returns an equal value, the
        keys are the same, and the server sends the status it packed last. ``None`` (the
        default): the status is made for every call."""
        return None

    # -- replicas (optional: a service that implements both lets proxies repair replicas)

    def export_rows(
        self, owned: Callable[[str], bool], after: str | None, limit: int
    ) -> list[tuple[str, object]]:
        """Up to ``limit`` rows, in key order after ``after`` (from the start when None),
        of the keys ``owned`` accepts: ``[(key, row)]``, where a row is any msgpack-able
        value :meth:`import_rows` takes back. Runs under the shared model lock.

        A service that implements this and :meth:`import_rows` has its ``cht`` replicas
        repaired: a proxy copies a restarted or new server's keys to it from the other
        replicas before it answers reads for them (``docs/operating.md``, Replicas)."""
        raise NotImplementedError(f"{type(self).__name__} does not export rows")

    def import_rows(self, rows: list[tuple[str, object]]) -> None:
        """Store rows :meth:`export_rows` gave on another server, replacing what is here
        under those keys (strings inside rows arrive as bytes). Runs under the exclusive
        model lock."""
        raise NotImplementedError(f"{type(self).__name__} does not import rows")

    def delete_rows(self, keys: list[str]) -> None:
        """Remove the rows of ``keys`` (optional, with the two above): a repair deletes the
        rows a returning server still holds that were deleted on the live replicas while it
        was away. Without it such rows stay (``docs/operating.md``, Replicas). Runs under
        the exclusive model lock."""
        raise NotImplementedError(f"{type(self).__name__} does not delete rows")

    @property
    def deletes_rows(self) -> bool:
        """Whether this service implements :meth:`delete_rows` (and exports rows)."""
        return self.exports_rows and type(self).delete_rows is not ServerBase.delete_rows

    @property
    def exports_rows(self) -> bool:
        """Whether this service implements :meth:`export_rows` and :meth:`import_rows`."""
        cls = type(self)
        return (
            cls.export_rows is not ServerBase.export_rows
            and cls.import_rows is not ServerBase.import_rows
        )

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement save (pack)")

    def unpack(self, payload: object) -> None:
        """Replace the model with ``payload`` from :meth:`pack`; all or nothing."""
        raise NotImplementedError(f"{type(self).__name__} does not implement load (unpack)")
