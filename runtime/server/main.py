"""The main of every generated server: flags → config → service → RPC listener → serve.

``run_server`` is what a generated ``*_impl.py`` calls. It parses Jubatus-compatible flags,
reads the JSON config (``--configpath``, or the model file's saved config with
``--model_file``), imports the user's ``*_serv`` class, loads the ``--model_file`` (before
it listens, as Jubatus), binds the RPC listener (``--rpc-port
0`` picks a free port; the bound address is logged as ``listening on HOST:PORT``), joins
the cluster when ``--zookeeper`` is given, and serves until SIGTERM or SIGINT, when it stops
accepting, drains calls in flight and leaves the cluster. A second signal exits at once.

A service whose ``*_serv`` returns a :class:`~runtime.server.snapshot.SnapshotModel` from
``snapshot_model()`` holds its model the snapshot way: the writer thread is the server's first
subsystem (started before the listener, stopped after it has drained its calls), its
``#@update`` methods go through the writer and its ``#@analysis`` methods (``save`` and
``get_status`` too) run with no lock.

In a cluster, a service whose ``*_serv`` returns a model from ``mixable()`` gets a
:class:`~runtime.mix.linear_mixer.LinearMixer` as a third subsystem: it catches the model up
with the cluster and puts the server into ``actives``. A service without one is active as
soon as it has registered. ``do_mix`` on a standalone server is a clear error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runtime.cluster.membership import Node
from runtime.cluster.zookeeper.lock import ZkLock, config_read_lock, master_lock
from runtime.cluster.zookeeper.membership import ZooKeeperMembership, connect_client
from runtime.errors import (
    ConfigError,
    JubakoError,
    MembershipError,
    ModelFileError,
    StartModeError,
)
from runtime.mix.linear_mixer import LinearMixer, MixSettings, standalone_handlers
from runtime.process.cli import parse_server_args, server_parser, start_mode_error
from runtime.process.daemon import daemonize
from runtime.process.lifecycle import Part, Subsystem, System
from runtime.process.logs import setup_logging
from runtime.process.serving import (
    log_file_path,
    report_start_failure,
    run_on_event_loop,
    serve_until_signalled,
)
from runtime.process.settings import ServerSettings, connection_cap, listen_host
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.listener import parse_allow
from runtime.rpc.locks import LockMode, RWLock
from runtime.rpc.server import RpcServer
from runtime.server.base import ServerBase
from runtime.server.host import ServiceHost, handler
from runtime.server.persistence import read_model_file, remove_stale_temps
from runtime.server.replication import Replication
from runtime.server.snapshot import snapshot_rows
from runtime.wire.signature import RESUME_MIXER, SUSPEND_MIXER
from runtime.wire.types import Object

__all__ = ["ServerApp", "handler", "load_service_class", "run_server"]

log = logging.getLogger(__name__)

#: Jubatus's words when a standalone server has neither a config nor a model file.
STANDALONE_NEEDS_CONFIG = "config path or model file must be specified for standalone mode"

HandlersFactory = Callable[[Any], Mapping[str, Handler]]


def load_service_class(module_name: str, class_name: str) -> type[ServerBase]:
    """Import the user's service class; a missing module gets a hint about the template."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name.rsplit(".", 1)[-1] and error.name != module_name:
            raise
        stem = module_name.rsplit(".", 1)[-1]
        raise ConfigError(
            f"cannot import {module_name}: copy {stem}.tmpl.py to {stem}.py and fill in "
            "the methods (jenerator -t writes the template)"
        ) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, ServerBase):
        raise ConfigError(f"{module_name}.{class_name} must be a class deriving from ServerBase")
    return cls


def read_config(settings: ServerSettings, service_type: str) -> tuple[str, str]:
    """The JSON config text and where it came from (the ``configpath`` status key)."""
    if settings.model_file:
        model = read_model_file(
            Path(settings.model_file),
            service_type=service_type,
            config_json=None,
            user_data_version=None,
        )
        return model.config_json, settings.model_file
    if settings.configpath:
        try:
            text = Path(settings.configpath).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read config {settings.configpath}: {error}") from None
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"syntax error in configuration: {settings.configpath}:{error.lineno}:"
                f"{error.colno}: {error.msg}"
            ) from None
        return text, settings.configpath
    if settings.zookeeper:
        from runtime.cluster.zookeeper.config import read_config_from

        return read_config_from(
            settings.zookeeper, service_type, settings.name, timeout=settings.zookeeper_timeout
        )
    return "{}", ""


def build_service(cls: type[ServerBase], config_json: str, config_label: str) -> ServerBase:
    """The service built from its config; a config error names where the config came
    from, and says how to give one when none was."""
    try:
        serv = cls(config_json)
    except ConfigError as error:
        if not config_label:  # Jubatus's line, then what would do
            raise StartModeError(
                f"{STANDALONE_NEEDS_CONFIG}\n"
                "give a JSON config file with --configpath FILE or a saved model with "
                "--model_file FILE (with --zookeeper, store a config first with jubaconfig "
                f"-c write -t TYPE -n NAME -f FILE); without one the service says: {error}"
            ) from None
        raise ConfigError(f"config {config_label}: {error}") from None
    if not config_label:
        log.warning("no --configpath given: the service starts with an empty config {}")
    return serv


class ServerApp:
    """One server process: the service, its built-ins, the RPC listener and membership."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        service_type: str,
        serv: ServerBase,
        handlers: Mapping[str, Handler],
        use_cht: bool,
        prog: str,
        configpath_label: str,
    ) -> None:
        self.settings = settings
        self.service_type = service_type
        self.use_cht = use_cht
        self.model_lock = RWLock()
        self.host = ServiceHost(
            serv,
            service_type=service_type,
            settings=settings,
            model_lock=self.model_lock,
            prog=prog,
            configpath_label=configpath_label,
            use_cht=use_cht,
        )
        mixable = serv.mixable()
        #: The model held the snapshot way (one writer thread), or None: the lock.
        self.snapshot = serv.snapshot_model()
        self.mixer: LinearMixer | None = None
        if settings.zookeeper and mixable is not None:
            self.mixer = LinearMixer(
                mixable,
                # A snapshot model's mixable goes through its writer: no lock to share.
                model_lock=self.model_lock if self.snapshot is None else RWLock(),
                members=_JoinedCluster(self),
                master_lock=self._master_lock,
                self_node=self._self_node,
                protocol_version=serv.user_data_version,
                settings=MixSettings(
                    interval_sec=settings.interval_sec,
                    interval_count=settings.interval_count,
                    interconnect_timeout=settings.interconnect_timeout,
                ),
            )
            self.host.update_listeners.append(self.mixer.updated)
            mix_rows = self.mixer.handlers()
        elif settings.zookeeper:
            mix_rows = standalone_handlers(f"{service_type} has no mixable model")
        else:
            mix_rows = standalone_handlers(
                "this server is standalone (no --zookeeper): there is no mixer"
            )
        serv.update_listener = self.host.on_update
        #: Ordered cht writes and replica repair (services with cht methods).
        self.replication: Replication | None = None
        replication_rows: dict[str, Handler] = {}
        if use_cht:
            self.replication = Replication(
                serv,
                lambda: self.dispatcher,
                self_id=lambda: self.host.server_id,
                timeout=settings.interconnect_timeout,
            )
            replication_rows = self.replication.handlers()
        table = {
            **with_model_locks(handlers, serv),
            **self.host.handlers(),
            **mix_rows,
            **replication_rows,
        }
        table = with_wire_methods(table, serv)
        if self.snapshot is not None:
            table = snapshot_rows(table, self.snapshot)
            self.snapshot.on_applied = self.host.on_update
        self.dispatcher = Dispatcher(
            table,
            cluster_name=settings.name or None,
            model_lock=self.model_lock,
            on_update=self.host.on_update,
        )
        self.bind_host = listen_host(settings.listen_addr, settings.listen_if)
        max_connections, lowered = connection_cap(settings.max_connections)
        if lowered:
            log.warning("%s", lowered)
        self.rpc = RpcServer(
            self.dispatcher,
            self.bind_host,
            settings.rpc_port,
            threads=settings.thread,
            max_message_size=settings.max_message_size,
            idle_timeout=settings.timeout,
            max_connections=max_connections,
            allow=parse_allow(settings.allow),
            read_timeout=settings.read_timeout,
        )
        self.rpc.answer_frames_with(serv.frame_answerer())
        if self.replication is not None:  # a write's answer goes out as its backups answer
            self.replication.pool.after_read = self.rpc.flush_now
        if self.snapshot is not None:  # a batch's answers go out as it is published
            self.snapshot.answering = self.rpc.answering
        self._zk: Any = None
        self._config_lock: Any = None
        self.membership: ZooKeeperMembership | None = None
        parts: list[Subsystem] = [Part("rpc", self._start_rpc, self._stop_rpc)]
        if self.snapshot is not None:  # first up, last down: it applies what rpc drains
            parts.insert(0, self.snapshot)
        if settings.zookeeper:
            parts.append(Part("membership", self._join_cluster, self._leave_cluster))
        if self.mixer is not None:
            parts.append(self.mixer)
        #: Subsystems started in order and stopped in reverse; states in get_status.
        self.system = System(f"{service_type}-server", parts)
        self.host.add_status(self.system.status, self.system.status_key)
        if self.snapshot is not None:
            self.host.add_status(self.snapshot.status, self.snapshot.status_key)
        if self.mixer is not None:
            self.host.add_status(self.mixer.status)  # (its figures: made every call)
            for signature, func in (
                (SUSPEND_MIXER, self._suspend_mixer),
                (RESUME_MIXER, self._resume_mixer),
            ):
                row = Handler(func, LockMode.NOLOCK, signature.args, signature.result)
                self.dispatcher.add(signature.name, row)

    def _self_node(self) -> Node:
        return (self.bind_host, self.rpc.port)

    def _master_lock(self) -> ZkLock:
        return master_lock(self._zk, self.service_type, self.settings.name)

    async def _suspend_mixer(self) -> bool:
        """Stop starting mix rounds until ``resume_mixer`` (the server keeps serving)."""
        await self.system.suspend("mixer")
        return True

    async def _resume_mixer(self) -> bool:
        await self.system.resume("mixer")
        return True

    async def start(self) -> None:
        """Listen, then (in a cluster) register and turn active: the order proxies rely on."""
        await self.system.start()

    async def _start_rpc(self) -> None:
        # The model file first, as Jubatus does: nobody may reach an empty model, and a file
        # that does not load stops the start before the server says it listens.
        if self.settings.model_file:
            self.host.load_file(Path(self.settings.model_file), overwrite_config=True)
        await self.rpc.start()
        self.host.bound(self.bind_host, self.rpc.port)
        log.info("listening on %s:%d", self.bind_host, self.rpc.port)
        datadir = Path(self.settings.datadir)
        for stale in remove_stale_temps(datadir, self.host.server_id, self.service_type):
            log.info("removed %s, left by a save that did not finish", stale)

    async def _stop_rpc(self) -> None:
        await self.rpc.close(drain_timeout=self.settings.drain_timeout)
        if self.replication is not None:
            await self.replication.close()

    async def _join_cluster(self) -> None:
        s = self.settings
        self._zk = await asyncio.to_thread(connect_client, s.zookeeper, s.zookeeper_timeout)
        self._config_lock = config_read_lock(self._zk, self.service_type, s.name)
        held = await asyncio.to_thread(self._config_lock.acquire, 3.0, 1.0)
        if not held:
            raise ConfigError("cannot take the config lock: any user is writing config?")
        self.membership = ZooKeeperMembership(
            self._zk,
            self.service_type,
            s.name,
            use_cht=self.use_cht,
            session_timeout=s.zookeeper_timeout,
        )
        await self.membership.start()
        await self.membership.register_node(self.bind_host, self.rpc.port)
        if self.mixer is None:
            await self.membership.set_active(True)
        self.host.add_status(self._cluster_status, self._zookeeper_connected)
        log.info("joined cluster %s/%s via %s", self.service_type, s.name, s.zookeeper)

    def _zookeeper_connected(self) -> bool:
        return self.membership is not None and self.membership.connected

    def _cluster_status(self) -> dict[str, str]:
        connected = self._zookeeper_connected()
        return {"connected_zookeeper": self.settings.zookeeper if connected else ""}

    async def _leave_cluster(self) -> None:
        if self.membership is not None:
            await self.membership.stop()
        if self._zk is not None:
            zk, lock = self._zk, self._config_lock
            await asyncio.to_thread(_release_and_close, zk, lock)

    async def stop(self) -> None:
        """Leave the cluster, then stop accepting and drain calls in flight."""
        await self.system.stop()
        log.info("stopped")

    async def serve(self) -> int:
        """Run until SIGTERM or SIGINT; returns the process exit status."""
        return await serve_until_signalled(self.start, self.stop)


class _JoinedCluster:
    """The membership of a server's own cluster, as the mixer reads it."""

    def __init__(self, app: ServerApp) -> None:
        self.app = app

    def _membership(self) -> ZooKeeperMembership:
        if self.app.membership is None:
            raise ConfigError("the mixer runs only after the server joined its cluster")
        return self.app.membership

    def members(self) -> list[Node]:
        return self._membership().members()

    def actives(self) -> list[Node]:
        return self._membership().actives()

    async def set_active(self, active: bool) -> None:
        await self._membership().set_active(active)


def _release_and_close(zk: Any, lock: Any) -> None:
    """Release the config lock and close the session (which frees it anyway: when ZooKeeper
    is unreachable, do not wait for it)."""
    try:
        if lock is not None and zk.connected:
            lock.release()
    except MembershipError as error:
        log.warning("%s", error)
    finally:
        zk.stop()
        zk.close()


def with_model_locks(handlers: Mapping[str, Handler], serv: ServerBase) -> dict[str, Handler]:
    """The dispatch table with the model lock ``serv.model_lock_for`` declares for some of
    its ``#@nolock`` methods; ValueError when it names a method that is not ``#@nolock``."""
    table = dict(handlers)
    for name, mode in type(serv).model_lock_for.items():
        row = table.get(name)
        if row is None:
            raise ValueError(f"{type(serv).__name__}.model_lock_for names {name!r}: no such method")
        if row.lock is not LockMode.NOLOCK:
            raise ValueError(
                f"{type(serv).__name__}.model_lock_for names {name!r}, which the IDL declares "
                f"#@{row.lock.value}: only #@nolock methods can be given the model lock"
            )
        table[name] = dataclasses.replace(row, lock=mode)
    return table


def with_wire_methods(handlers: Mapping[str, Handler], serv: ServerBase) -> dict[str, Handler]:
    """The dispatch table with the functions ``serv.wire_methods`` names serving their
    methods on the wire values (no decoding, no encoding: the function checks its input
    and returns a wire value); ValueError when it names a method or function that is not
    there."""
    table = dict(handlers)
    for name, attribute in type(serv).wire_methods.items():
        row = table.get(name)
        func = getattr(serv, attribute, None)
        if row is None or not callable(func):
            raise ValueError(
                f"{type(serv).__name__}.wire_methods names {name!r} -> {attribute!r}: "
                "no such method or function"
            )
        table[name] = dataclasses.replace(
            row, func=func, arg_types=(Object(),) * len(row.arg_types), ret_type=Object()
        )
    return table


def run_server(
    service_type: str,
    serv_module: str,
    serv_class: str,
    handlers: HandlersFactory,
    argv: Sequence[str] | None = None,
    *,
    use_cht: bool = False,
) -> int:
    """Parse flags and serve ``service_type``; returns the exit status (0 on a clean stop)."""
    prog = Path(sys.argv[0]).name or f"{service_type}_impl.py"
    settings = parse_server_args(prog, argv)
    setup_logging(settings.log_level, log_file_path(settings.logdir, prog))
    try:
        config_json, config_label = read_config(settings, service_type)
        cls = load_service_class(serv_module, serv_class)
        serv = build_service(cls, config_json, config_label)
        if settings.config_test:
            print("Configuration OK")
            return 0
        _check_datadir(settings.datadir)
        app = ServerApp(
            settings,
            service_type=service_type,
            serv=serv,
            handlers=handlers(serv),
            use_cht=use_cht,
            prog=prog,
            configpath_label=config_label,
        )
        if settings.daemon:
            daemonize(settings.logdir)
            setup_logging(settings.log_level, log_file_path(settings.logdir, prog))
        return run_on_event_loop(app.serve(), settings.event_loop)
    except StartModeError as error:
        start_mode_error(server_parser(prog), str(error))
    except (ConfigError, ModelFileError, JubakoError) as error:
        if settings.config_test:  # the answer -T asks for, once, on stdout
            print(f"Configuration error: {error}")
        else:
            log.error("server failed to start: %s", error)
        return 1
    except OSError as error:
        report_start_failure("server", error, settings.rpc_port)
        return 1


def _check_datadir(datadir: str) -> None:
    path = Path(datadir)
    if not path.is_dir() or not os.access(path, os.W_OK):
        raise ConfigError(f"can't use datadir: {datadir} is not a writable directory")
