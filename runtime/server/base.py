"""The base class of every user service (the class in a ``*_serv`` module).

A service derives from :class:`ServerBase`, builds its model in ``__init__`` from the JSON
config, implements the IDL methods, and fills in the hooks the framework calls:

- :meth:`get_status` adds service keys to the built-in ``get_status``;
- :meth:`pack` / :meth:`unpack` turn the model into one msgpack-able value and back, for
  ``save`` and ``load``. ``unpack`` must build the new model fully before swapping it in,
  so a payload it rejects leaves the running model untouched;
- ``user_data_version`` is stored in model files; ``load`` refuses files of another version
  (and the mixer refuses to copy a peer's model of another version);
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

The built-in RPCs themselves (``get_config``, ``save``, ``load``, ``get_status``) live in
:mod:`runtime.server.host`, which calls these hooks under the model lock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from runtime.errors import ConfigError
from runtime.mix.mixable import Mixable
from runtime.rpc.locks import LockMode


class ServerBase:
    """What every service class derives from; see the module docstring for the hooks."""

    #: Version of the model payload written by :meth:`pack`; bump it when the layout changes.
    user_data_version: ClassVar[int] = 1
    #: ``#@nolock`` methods the framework runs under its model lock anyway, with the mode
    #: (``ANALYSIS`` shared, ``UPDATE`` alone and counted); see the module docstring.
    model_lock_for: ClassVar[Mapping[str, LockMode]] = {}

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

    def mixable(self) -> Mixable | None:
        """The model the mixer combines across servers, or ``None`` (no mix).

        The mixer calls its methods under the framework's model lock (read lock for
        ``get_diff``/``get_model``, write lock for ``put_diff``/``set_model``); a model that
        is also changed by ``#@nolock`` methods must guard itself as well (see
        :class:`runtime.mix.locked.LockedMixable`).
        """
        return None

    def updated(self) -> None:
        """Count one model update (for ``#@nolock`` methods that change the model)."""
        listener = self.update_listener
        if listener is not None:
            listener()

    def get_status(self) -> dict[str, str]:
        """Service-specific status keys (strings to strings)."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement save (pack)")

    def unpack(self, payload: object) -> None:
        """Replace the model with ``payload`` from :meth:`pack`; all or nothing."""
        raise NotImplementedError(f"{type(self).__name__} does not implement load (unpack)")
