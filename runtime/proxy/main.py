"""The main of every generated proxy: flags → membership → forwarding server → serve.

``run_proxy`` is what a generated ``*_proxy.py`` calls with its routing rows. A proxy
serves every cluster name of its service type. Membership is either a static list
(``--servers h:p,h:p``, no ZooKeeper: every cluster name maps to that list) or ZooKeeper
(``--zookeeper``: one watched view per cluster name, created on its first call).

Besides the service's methods the proxy answers the built-ins: ``get_config`` (one random
server), ``save`` (every server; maps merged), ``load`` (every server; all must succeed),
``get_status`` (every server; maps merged) and ``get_proxy_status`` (its own status).
``do_mix`` is not forwarded: it is a server-to-server matter, as in Jubatus.

What a client's cluster names cost a ZooKeeper proxy is bounded: a name no server has
joined is answered ``no server found`` and creates nothing in ZooKeeper (looking it up
costs one read, remembered for :data:`ABSENT_SECONDS`; at most :data:`LOOKUPS_PER_SECOND`
such reads a second); at most :data:`MAX_VIEWS` clusters are watched, the least recently
used one let go first.

A proxy is a :class:`~runtime.process.lifecycle.System` of membership → pool → rpc, started in that
order and stopped in reverse (stop accepting and drain, close server connections, leave
ZooKeeper); ``get_proxy_status`` shows the states (``state``, ``state.<part>``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.cluster.membership import Membership, Node
from runtime.cluster.static import StaticMembership
from runtime.cluster.zookeeper import paths
from runtime.cluster.zookeeper.membership import ZooKeeperMembership, connect_client
from runtime.errors import ConfigError, JubakoError, MembershipError, TypeMismatch
from runtime.process.cli import parse_proxy_args
from runtime.process.daemon import daemonize
from runtime.process.lifecycle import Part, System
from runtime.process.logs import setup_logging
from runtime.process.serving import (
    log_file_path,
    report_start_failure,
    run_on_event_loop,
    serve_until_signalled,
)
from runtime.process.settings import FILE_RESERVE, ProxySettings, connection_cap, listen_host
from runtime.process.status_values import MemoryFigures, number_text, user_name
from runtime.proxy.forwarder import ClusterView, Forwarder, ForwardError
from runtime.proxy.replicas import ReplicaKeeper
from runtime.proxy.routing import Route, Routing
from runtime.proxy.view import MembershipView
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.listener import parse_allow
from runtime.rpc.locks import LockMode
from runtime.rpc.logbounds import cut
from runtime.rpc.pool import ClientPool
from runtime.rpc.server import RpcServer
from runtime.version import JUBATUS_VERSION, __version__
from runtime.wire import signature as sig, types as _t

__all__ = ["BUILTIN_ROUTES", "MembershipView", "ProxyApp", "parse_servers", "run_proxy"]

log = logging.getLogger(__name__)


#: Clusters a ZooKeeper proxy watches at once.
MAX_VIEWS = 256
#: Seconds a name found to have no cluster is answered without asking ZooKeeper again.
ABSENT_SECONDS = 1.0
#: Names remembered as absent (the oldest are forgotten first).
MAX_ABSENT = 1024
#: ZooKeeper look-ups of new cluster names a proxy makes in one second, at most.
LOOKUPS_PER_SECOND = 20

#: The built-ins every proxy forwards, with Jubatus's routing and aggregation.
BUILTIN_ROUTES: tuple[Route, ...] = (
    Route(sig.GET_CONFIG, Routing.RANDOM, LockMode.ANALYSIS, "pass"),
    Route(sig.SAVE, Routing.BROADCAST, LockMode.ANALYSIS, "merge"),
    Route(sig.LOAD, Routing.BROADCAST, LockMode.UPDATE, "all_and"),
    Route(sig.GET_STATUS, Routing.BROADCAST, LockMode.ANALYSIS, "merge"),
)


def parse_servers(text: str) -> list[Node]:
    """``"h:p,h:p"`` → nodes; raises ConfigError naming a bad entry."""
    nodes: list[Node] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"servers: {entry!r} is not HOST:PORT")
        nodes.append((host, int(port)))
    if not nodes:
        raise ConfigError("servers: no HOST:PORT given")
    return nodes


class ProxyApp:
    """One proxy process: membership views, the forwarder and the RPC listener."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        service_type: str,
        routes: Sequence[Route],
        prog: str,
    ) -> None:
        self.settings = settings
        self.service_type = service_type
        self.prog = prog
        self.pool = ClientPool(timeout=settings.timeout, max_per_host=4)
        #: Watched clusters by name, least recently used first.
        self._views: OrderedDict[str, MembershipView] = OrderedDict()
        self._starting: dict[str, asyncio.Task[MembershipView]] = {}
        #: Names found to have no cluster, with when that stops being trusted.
        self._absent: OrderedDict[str, float] = OrderedDict()
        #: Look-ups of new names made in the current second, and that second.
        self._lookups = (0, 0)
        #: Views let go whose watches are being stopped.
        self._stopping: set[asyncio.Task[None]] = set()
        self._static: MembershipView | None = None
        cht_writes = [
            r.name for r in routes if r.routing is Routing.CHT and r.lock is LockMode.UPDATE
        ]
        #: What a cluster's keeper copies when it repairs a server (docs/operating.md).
        self._replicas = max([r.replicas for r in routes if r.routing is Routing.CHT] or [1])
        self._cht_writes = cht_writes
        if settings.servers:
            # Every cluster name maps to this list: the servers serve any name, so the
            # keeper probes and repairs them under the empty one.
            self._static = self._new_view("", StaticMembership(parse_servers(settings.servers)))
        self._zk_client: Any = None
        self.forwarder = Forwarder(
            [*BUILTIN_ROUTES, *routes],
            self._view,
            self.pool,
            timeout=settings.timeout,
        )
        handlers = {n: self.handler_for(r) for n, r in self.forwarder.routes.items()}
        handlers["get_proxy_status"] = Handler(
            self.get_proxy_status, LockMode.NOLOCK, (), sig.GET_PROXY_STATUS.result
        )
        self.dispatcher = Dispatcher(handlers)
        self.bind_host = listen_host(settings.listen_addr, settings.listen_if)
        # A proxy keeps connections to its servers besides its clients'.
        max_connections, lowered = connection_cap(settings.max_connections, 2 * FILE_RESERVE)
        if lowered:
            log.warning("%s", lowered)
        self.rpc = RpcServer(
            self.dispatcher,
            self.bind_host,
            settings.rpc_port,
            threads=settings.thread,
            max_message_size=settings.max_message_size,
            idle_timeout=settings.idle_timeout,
            max_connections=max_connections,
            allow=parse_allow(settings.allow),
            read_timeout=settings.read_timeout,
        )
        # Answers relayed from one server's read go out at once, not an iteration later.
        self.pool.after_read = self.rpc.flush_now
        # A server that closes a connection is probed at once (it may be back empty).
        self.pool.on_lost = self._server_lost
        self._memory = MemoryFigures()
        self._user = user_name()
        #: Subsystems started in order and stopped in reverse; states in get_proxy_status.
        self.system = System(
            f"{service_type}-proxy",
            [
                Part("membership", self._start_membership, self._stop_membership),
                Part("pool", self._start_pool, self._stop_pool),
                Part("rpc", self._start_rpc, self._stop_rpc),
            ],
        )

    def handler_for(self, route: Route) -> Handler:
        """The dispatch row that serves ``route``'s method: by default it forwards the raw
        wire params (cluster name first) as the route says.

        **The proxy's extension hook.** A proxy that must do more than route a method (as
        Jubatus's anomaly proxy gives ``add`` a cluster-wide id) subclasses
        :class:`ProxyApp` and overrides this for that method, returning its own
        :class:`~runtime.rpc.dispatch.Handler` (``takes_cluster_name=False``: it gets the
        cluster name first); the handler may call ``self.forwarder.forward(method,
        params)`` to send calls as the routes say. Every other method keeps the default
        (``super().handler_for(route)``). See ``engines/anomaly/proxy.py`` and
        ``docs/writing-a-service.md``."""
        forwarder = self.forwarder
        name = route.name

        async def forward(*params: Any) -> object:
            return await forwarder.forward(name, list(params))

        raw = (_t.Object(),) * (route.signature.arity + 1)
        return Handler(
            forward,
            LockMode.NOLOCK,
            raw,
            _t.Object(),
            takes_cluster_name=False,
            start=forwarder.starter(name),
        )

    async def _view(self, name: str) -> ClusterView:
        if self._static is not None:
            return self._static
        view = self._views.get(name)
        if view is not None:
            self._views.move_to_end(name)
            return view
        task = self._starting.get(name)
        if task is None:
            self._check_lookup(name)
            task = asyncio.create_task(self._open_view(name))
            self._starting[name] = task
        try:
            return await task
        finally:
            self._starting.pop(name, None)

    def _check_lookup(self, name: str) -> None:
        """Refuse a name known to have no cluster, or one over the look-up budget."""
        now = time.monotonic()
        until = self._absent.get(name)
        if until is not None:
            if now < until:
                raise ForwardError(f"no server found: {cut(name)}")
            del self._absent[name]
        second = int(now)
        count, current = self._lookups
        count = count + 1 if second == current else 1
        self._lookups = (count, second)
        if count > LOOKUPS_PER_SECOND:
            raise ForwardError(
                f"no server found: {cut(name)} (new cluster names are looked up at most "
                f"{LOOKUPS_PER_SECOND} times a second)"
            )

    async def _open_view(self, name: str) -> MembershipView:
        if not name:
            raise TypeMismatch("cluster name must not be empty with ZooKeeper membership")
        try:
            paths.check_segment("name", name)
        except ValueError as error:
            raise TypeMismatch(str(error)) from None
        membership = ZooKeeperMembership(
            self._zk_client,
            self.service_type,
            name,
            session_timeout=self.settings.zookeeper_timeout,
            create=False,
        )
        try:
            await membership.start()
        except MembershipError as error:
            if "no server has joined" not in str(error):
                raise
            self._absent[name] = time.monotonic() + ABSENT_SECONDS
            while len(self._absent) > MAX_ABSENT:
                self._absent.popitem(last=False)
            raise ForwardError(f"no server found: {cut(name)}") from None
        view = self._new_view(name, membership)
        assert view.keeper is not None
        view.keeper.start()
        self._views[name] = view
        log.info("watching cluster %s/%s", self.service_type, name)
        while len(self._views) > MAX_VIEWS:
            old_name, old = self._views.popitem(last=False)
            self.forwarder.forget()
            log.info("letting cluster %s/%s go (least recently used)", self.service_type, old_name)
            stopping = asyncio.get_running_loop().create_task(self._stop_view(old))
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)
        return view

    def get_proxy_status(self) -> dict[str, dict[str, str]]:
        stats = self.forwarder.stats
        now = time.time()
        s = self.settings
        members = sorted(
            {f"{h}_{p}" for view in self._all_views() for h, p in view.membership.members()}
        )
        status = {
            "clock_time": str(int(now)),
            "start_time": str(int(stats.started)),
            "uptime": str(int(now - stats.started)),
            "VERSION": JUBATUS_VERSION,
            "jubako_version": __version__,
            "PROGNAME": self.prog,
            "pid": str(os.getpid()),
            "user": self._user,
            **self._memory.status(),
            "threadnum": str(s.thread),
            "timeout": number_text(s.timeout),
            "logdir": s.logdir,
            "log_config": s.log_config,
            "zookeeper": s.zookeeper,
            "connected_zookeeper": s.zookeeper if self._zk_connected() else "",
            "servers": s.servers,
            "zookeeper_timeout": number_text(s.zookeeper_timeout),
            "interconnect_timeout": number_text(s.timeout),
            "idle_timeout": number_text(s.idle_timeout),
            "session_pool_expire": number_text(s.pool_expire),
            "session_pool_size": str(s.pool_size),
            "request_count": str(stats.request_count + 1),
            "forward_count": str(stats.forward_count),
            "error_count": str(stats.error_count),
            "failover_count": str(stats.failover_count),
            "members": ",".join(members),
            "clusters": str(len(self._views) if self._static is None else 1),
            **self.system.status(),
        }
        for view in self._all_views():  # every server with its state: up, down, catching up
            if view.keeper is not None:
                status.update(view.keeper.status())
        stats.request_count += 1
        return {f"{self.bind_host}_{self.rpc.port}": status}

    def _new_view(self, name: str, membership: Membership) -> MembershipView:
        """A view of one cluster, with the keeper that probes and repairs its servers."""
        keeper = ReplicaKeeper(
            name,
            membership,
            self.pool,
            replicas=self._replicas,
            cht_writes=self._cht_writes,
        )
        return MembershipView(membership, keeper)

    async def _stop_view(self, view: MembershipView) -> None:
        if view.keeper is not None:
            await view.keeper.stop()
        await view.membership.stop()

    def _server_lost(self, node: Node) -> None:
        for view in self._all_views():
            if view.keeper is not None:
                view.keeper.lost(node)

    def _all_views(self) -> list[MembershipView]:
        return [self._static] if self._static is not None else list(self._views.values())

    async def start(self) -> None:
        """Membership, then the pool, then the listener (stopped in reverse)."""
        await self.system.start()

    def _zk_connected(self) -> bool:
        client = self._zk_client
        return client is not None and bool(client.connected)

    async def _start_membership(self) -> None:
        if self.settings.zookeeper:
            self._zk_client = await asyncio.to_thread(
                connect_client, self.settings.zookeeper, self.settings.zookeeper_timeout
            )
        if self._static is not None:
            await self._static.membership.start()
            assert self._static.keeper is not None
            self._static.keeper.start()

    async def _stop_membership(self) -> None:
        for view in self._all_views():
            await self._stop_view(view)
        if self._zk_client is not None:
            await asyncio.to_thread(_close_client, self._zk_client)

    async def _start_pool(self) -> None:
        log.debug("connection pool ready (%d per server)", self.pool.max_per_host)

    async def _stop_pool(self) -> None:
        await self.pool.close()

    async def _start_rpc(self) -> None:
        await self.rpc.start()
        log.info("listening on %s:%d", self.bind_host, self.rpc.port)
        if self._zk_client is not None:
            path = paths.proxy_path(self.service_type, self.bind_host, self.rpc.port)
            await asyncio.to_thread(
                self._zk_client.create, path, b"", ephemeral=True, makepath=True
            )
            log.info("registered proxy %s", path)

    async def _stop_rpc(self) -> None:
        await self.rpc.close(drain_timeout=self.settings.drain_timeout)

    async def stop(self) -> None:
        """Stop accepting and drain calls in flight, close connections, leave ZooKeeper."""
        await self.system.stop()
        log.info("stopped")

    async def serve(self) -> int:
        """Run until SIGTERM or SIGINT; returns the process exit status."""
        return await serve_until_signalled(self.start, self.stop)


def _close_client(client: Any) -> None:
    client.stop()
    client.close()


def run_proxy(
    service_type: str,
    routes: Sequence[Route],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
) -> int:
    """Parse proxy flags and forward ``service_type`` calls; returns the exit status."""
    name = prog or Path(sys.argv[0]).name or f"{service_type}_proxy.py"
    settings = parse_proxy_args(name, argv)
    setup_logging(settings.log_level, log_file_path(settings.logdir, name))
    try:
        app = ProxyApp(settings, service_type=service_type, routes=routes, prog=name)
        if settings.daemon:
            daemonize(settings.logdir)
            setup_logging(settings.log_level, log_file_path(settings.logdir, name))
        return run_on_event_loop(app.serve(), settings.event_loop)
    except (ConfigError, JubakoError) as error:
        log.error("proxy failed to start: %s", error)
        return 1
    except OSError as error:
        report_start_failure("proxy", error, settings.rpc_port)
        return 1
