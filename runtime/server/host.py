"""The built-in methods every server has, and the bookkeeping behind ``get_status``.

:class:`ServiceHost` wraps one user service (a :class:`~runtime.server.base.ServerBase`)
and supplies ``get_config``, ``save``, ``load`` and ``get_status`` as dispatch rows, with
Jubatus's wire shapes. ``save`` writes the model file atomically under the shared model
lock; ``load`` reads and verifies the whole file before taking the exclusive lock to swap
the model in, so a bad file never touches the running model. For a service holding a
snapshot model (:mod:`runtime.server.snapshot`) ``save`` packs a snapshot with no lock and
``load`` swaps the model in through the writer.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TypeVar

import msgpack

from runtime.errors import ModelFileError
from runtime.process.settings import ServerSettings
from runtime.process.status_values import MemoryFigures, flag_text, number_text, user_name
from runtime.rpc.dispatch import Handler
from runtime.rpc.locks import LockMode, RWLock
from runtime.server.base import ServerBase
from runtime.server.persistence import (
    SUFFIX,
    model_path,
    read_model_file,
    validate_model_id,
    write_model_file,
)
from runtime.version import JUBATUS_VERSION, __version__
from runtime.wire import signature as sig
from runtime.wire.signature import Signature
from runtime.wire.types import Object

log = logging.getLogger(__name__)

R = TypeVar("R")
#: What a ``get_status`` provider's keys are made from (see :meth:`ServiceHost.add_status`).
StatusKey = Callable[[], Hashable | None]


def handler(signature: Signature[R], func: Callable[..., R], lock: LockMode) -> Handler:
    """A dispatch row: ``func`` called with the decoded arguments of ``signature``."""
    return Handler(func, lock, signature.args, signature.result, arg_labels=signature.labels)


class ServiceHost:
    """Built-in RPCs and status of one server process."""

    def __init__(
        self,
        serv: ServerBase,
        *,
        service_type: str,
        settings: ServerSettings,
        model_lock: RWLock,
        prog: str,
        configpath_label: str,
        use_cht: bool,
    ) -> None:
        self.serv = serv
        serv.standalone = settings.is_standalone
        self.service_type = service_type
        self.settings = settings
        self.model_lock = model_lock
        self.prog = prog
        self.configpath_label = configpath_label
        self.use_cht = use_cht
        self.server_id = f"127.0.0.1_{settings.rpc_port}"
        self.start_time = int(time.time())
        self.update_count = 0
        self.last_saved = "0"  # (seconds since the epoch; 0: never, as Jubatus says it)
        self.last_saved_path = ""
        self.last_loaded = "0"
        self.last_loaded_path = ""
        #: The status keys that do not change while the process runs (see get_status).
        self._fixed_status: dict[str, str] | None = None
        self._memory = MemoryFigures()
        #: Called after every counted update (the mixer's trigger).
        self.update_listeners: list[Callable[[], None]] = []
        #: The framework's own ``get_status`` keys (membership, mixer, lifecycle), every key
        #: and value a string, each with what tells when they change (:meth:`add_status`).
        self.status_providers: list[tuple[Callable[[], dict[str, str]], StatusKey | None]] = []
        #: :meth:`packed_status`'s last answer, and the figures it was made from.
        self._packed_status: tuple[tuple[Hashable, ...], bytes] | None = None

    def bound(self, host: str, port: int) -> None:
        """Record the address the RPC listener bound; it names this server."""
        self.server_id = f"{host}_{port}"
        self.start_time = int(time.time())
        self._fixed_status = None
        self._packed_status = None

    def add_status(
        self, provider: Callable[[], dict[str, str]], key: StatusKey | None = None
    ) -> None:
        """Add the framework's ``get_status`` keys ``provider`` makes. ``key()`` is what
        they are made from: while it returns an equal value, they are the same (a value
        that changes with the figures they show, each second included if they show one);
        None, or a ``key`` returning None, makes them (and so the whole status) every call."""
        self.status_providers.append((provider, key))

    def handlers(self) -> dict[str, Handler]:
        """Dispatch rows of the built-ins.

        ``save`` is ``#@analysis``, as in Jubatus: the framework holds the shared lock while
        the file is written (so the server only ever *tries* it on its event loop).
        ``load`` takes the exclusive lock itself, only to swap the verified model in (it
        reads and checks the file first, without the lock), and always runs on a worker:
        it may wait for that lock.
        """
        return {
            "get_config": handler(sig.GET_CONFIG, self.get_config, LockMode.NOLOCK),
            "save": handler(sig.SAVE, self.save, LockMode.ANALYSIS),
            "load": dataclasses.replace(
                handler(sig.LOAD, self.load, LockMode.NOLOCK), on_worker=True
            ),
            # Its values are strings already (get_status makes them so): no encoding.
            "get_status": Handler(
                self.get_status, LockMode.ANALYSIS, (), Object(), packed=self.packed_status
            ),
        }

    def on_update(self) -> None:
        """Called after every ``#@update`` call, every ``load`` and every
        :meth:`~runtime.server.base.ServerBase.updated`; any thread."""
        self.update_count += 1
        for listener in self.update_listeners:
            listener()

    def get_config(self) -> str:
        return self.serv.config_json

    def _path(self, model_id: str) -> Path:
        validate_model_id(model_id)
        return model_path(Path(self.settings.datadir), self.server_id, self.service_type, model_id)

    def save(self, model_id: str) -> dict[str, str]:
        """Write the model to ``<datadir>/<ip>_<port>_<type>_<id>.jubatus`` atomically
        (the caller holds the model's shared lock: the row is ``#@analysis``)."""
        path = self._path(model_id)
        write_model_file(
            path,
            service_type=self.service_type,
            model_id=model_id,
            config_json=self.serv.config_json,
            user_data_version=self.serv.user_data_version,
            payload=self.serv.pack(),
        )
        self.last_saved = str(int(time.time()))
        self.last_saved_path = str(path)
        log.info("saved model %r to %s", model_id, path)
        return {self.server_id: str(path)}

    def load(self, model_id: str) -> bool:
        """Load a model saved by ``save``; any failure leaves the running model as it was.

        As in Jubatus, ``load(id)`` reads the file this server's ``save(id)`` writes, named
        after its ``ip_port``: when it is missing, the error lists the files saved as
        ``id`` by other servers (another port, e.g. after a restart with ``--rpc-port 0``)
        and how to load one.
        """
        path = self._path(model_id)
        if not path.exists():
            raise ModelFileError(self._missing(path, model_id))
        self.load_file(path, overwrite_config=False)
        return True

    def _missing(self, path: Path, model_id: str) -> str:
        """The error for a ``load(id)`` whose file is not there."""
        text = f"cannot open input file {path}: no such file"
        suffix = f"_{self.service_type}_{model_id}{SUFFIX}"
        try:
            others = sorted(
                entry.name
                for entry in os.scandir(path.parent)
                if entry.name.endswith(suffix) and entry.is_file()
            )
        except OSError:
            others = []
        if not others:
            return f"{text}; no model is saved as {model_id!r} in {path.parent}"
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        return (
            f"{text}. load(id) reads the file this server ({self.server_id}) saved; "
            f"{path.parent} holds {model_id!r} saved by other servers: {shown}. "
            f"Start a server with --model_file {path.parent / others[0]} to load one, "
            f"or rename it to {path.name}"
        )

    def load_file(self, path: Path, *, overwrite_config: bool) -> None:
        """Verify ``path`` completely, then swap its model in under the exclusive lock."""
        model = read_model_file(
            path,
            service_type=self.service_type,
            config_json=None if overwrite_config else self.serv.config_json,
            user_data_version=self.serv.user_data_version,
            older_versions=self.serv.older_user_data_versions,
        )
        holder = self.serv.snapshot_model()
        if holder is not None:  # the writer swaps it in; readers keep the old snapshot
            holder.write(lambda _model: self._unpack(model.payload), name="load")
        else:
            with self.model_lock.write():
                self._unpack(model.payload)
        self.on_update()
        self.last_loaded = str(int(time.time()))
        self.last_loaded_path = str(path)
        log.info("loaded model from %s", path)

    def _unpack(self, payload: object) -> None:
        """The service's ``unpack``; what it raises on a model it cannot take (a service
        written by hand may raise ``ValueError`` or ``TypeError``) is a ``ModelFileError``."""
        try:
            self.serv.unpack(payload)
        except ModelFileError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            raise ModelFileError(
                f"the model does not fit this {self.service_type} server: "
                f"{type(error).__name__}: {error}"
            ) from None

    def get_status(self) -> dict[str, dict[str, str]]:
        """``{ip_port: {key: value}}`` with Jubatus's keys plus the service's own, every
        value a string. The keys fixed for the process's life are made once; the memory
        figures are read from /proc at most every
        :data:`~runtime.process.status_values.MEMORY_EVERY` seconds."""
        now = int(time.time())
        fixed = self._fixed_status
        if fixed is None:
            fixed = self._fixed_status = self._fixed()
        status: dict[str, str] = {
            "clock_time": str(now),
            "start_time": str(self.start_time),
            "uptime": str(now - self.start_time),
            **self._memory.status(),
            **fixed,
            "update_count": str(self.update_count),
            "last_saved": self.last_saved,
            "last_saved_path": self.last_saved_path,
            "last_loaded": self.last_loaded,
            "last_loaded_path": self.last_loaded_path,
        }
        service = self.serv.get_status()
        for key, value in service.items():
            if type(value) is not str or type(key) is not str:  # a service's number
                service = {str(k): str(v) for k, v in service.items()}
                break
        status.update(service)
        for provider, _ in self.status_providers:  # the framework's: strings already
            status.update(provider())
        return {self.server_id: status}

    def packed_status(self) -> bytes:
        """:meth:`get_status` packed as the connection's packer packs it (the fast path
        sends it as it is), made again only when what it shows may have changed: the
        clock's second, the memory figures, the update count, the last save and load, and
        what the service's :meth:`~runtime.server.base.ServerBase.status_key` and each
        provider's key say. Every call, when one of those keys is None."""
        key = self._status_key()
        made = self._packed_status
        if made is not None and made[0] == key:
            return made[1]
        packed: bytes = msgpack.packb(self.get_status(), use_bin_type=False)
        if key is not None and self._status_key() == key:  # nothing changed meanwhile
            self._packed_status = (key, packed)
        return packed

    def _status_key(self) -> tuple[Hashable, ...] | None:
        """What :meth:`get_status` is made from, or None when a part cannot say."""
        serv_key = self.serv.status_key()
        if serv_key is None:
            return None
        keys: list[Hashable] = [
            int(time.time()), self._memory.due(), self.update_count, self.last_saved,
            self.last_saved_path, self.last_loaded, self.last_loaded_path, serv_key,
        ]  # fmt: skip
        for _, provider_key in self.status_providers:
            made = None if provider_key is None else provider_key()
            if made is None:
                return None
            keys.append(made)
        return tuple(keys)

    def _fixed(self) -> dict[str, str]:
        """The status keys that stay the same while the process runs."""
        s = self.settings
        status: dict[str, str] = {
            "timeout": number_text(s.timeout),
            "threadnum": str(s.thread),
            "datadir": s.datadir,
            "is_standalone": flag_text(s.is_standalone),
            "VERSION": JUBATUS_VERSION,
            "jubako_version": __version__,
            "PROGNAME": self.prog,
            "type": self.service_type,
            "logdir": s.logdir,
            "log_config": s.log_config,
            "configpath": self.configpath_label,
            "pid": str(os.getpid()),
            "user": user_name(),
        }
        if not s.is_standalone:
            status.update(
                {
                    "zk": s.zookeeper,
                    "name": s.name,
                    "interval_sec": number_text(s.interval_sec),
                    "interval_count": str(s.interval_count),
                    "zookeeper_timeout": number_text(s.zookeeper_timeout),
                    "interconnect_timeout": number_text(s.interconnect_timeout),
                    "use_cht": flag_text(self.use_cht),
                    "mixer": s.mixer,
                }
            )
        return status
