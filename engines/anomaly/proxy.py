"""``jubaanomaly_proxy``: the generated anomaly proxy, with cluster-wide ids for ``add``.

In Jubatus an ``add`` reaching any server of a cluster gets an id unique in the cluster
(the version of the ZooKeeper znode ``/jubatus/actors/anomaly/<name>/id_generator``, bumped
once per id), and the point goes to the two servers that own that id on the hash ring,
which is where ``update``, ``overwrite`` and ``clear_row`` for it are routed. This proxy
does that itself: it draws the id (from that znode with ``--zookeeper``; with
``--servers``, from a counter that starts after the largest id the servers hold), then
forwards ``overwrite(id, datum)`` by ``cht`` like the generated row for ``overwrite``, and
answers ``{id, score}`` from the first replica. ``add_bulk`` does the same per datum and
answers the ids. Every other method is the generated proxy's row (``anomaly_proxy.py``).

The hook is a subclass of :class:`runtime.proxy.main.ProxyApp` overriding one method,
``handler_for`` (the proxy's extension hook), for the two routes; nothing in the runtime
knows about anomaly.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engines.anomaly.anomaly_proxy import ROUTES, SERVICE_TYPE
from runtime.cluster.zookeeper import paths
from runtime.errors import ConfigError, JubakoError
from runtime.process.cli import parse_proxy_args
from runtime.process.logs import setup_logging
from runtime.process.serving import log_file_path, run_on_event_loop
from runtime.process.settings import ProxySettings
from runtime.proxy.main import ProxyApp
from runtime.proxy.routing import Route
from runtime.rpc.dispatch import Handler
from runtime.rpc.locks import LockMode
from runtime.wire import types as _t
from runtime.wire.types import text_param

__all__ = ["AnomalyProxyApp", "main"]

log = logging.getLogger(__name__)


def id_generator_path(name: str) -> str:
    """Jubatus's znode whose version numbers an anomaly cluster's ids."""
    return f"{paths.actor_path(SERVICE_TYPE, name)}/id_generator"


class AnomalyProxyApp(ProxyApp):
    """A proxy whose ``add`` and ``add_bulk`` give cluster-wide ids (module docstring)."""

    def __init__(self, settings: ProxySettings, *, prog: str) -> None:
        #: Without ZooKeeper: the next id per cluster name (None until first used).
        self._next_ids: dict[str, int] = {}
        self._id_locks: dict[str, asyncio.Lock] = {}
        super().__init__(settings, service_type=SERVICE_TYPE, routes=ROUTES, prog=prog)

    def handler_for(self, route: Route) -> Handler:
        if route.name == "add":
            return Handler(self._add, LockMode.NOLOCK, (_t.Object(), _t.Object()), _t.Object(),
                           takes_cluster_name=False)  # fmt: skip
        if route.name == "add_bulk":
            return Handler(self._add_bulk, LockMode.NOLOCK, (_t.Object(), _t.Object()),
                           _t.Object(), takes_cluster_name=False)  # fmt: skip
        return super().handler_for(route)

    async def _add(self, cluster: Any, datum: Any) -> object:
        name = text_param(cluster, "cluster name")
        key = await self._new_ids(name, 1)
        score = await self.forwarder.forward("overwrite", [cluster, str(key[0]), datum])
        return [str(key[0]), score]

    async def _add_bulk(self, cluster: Any, data: Any) -> object:
        name = text_param(cluster, "cluster name")
        if not isinstance(data, list | tuple):
            raise TypeError("add_bulk: argument 0 (data): expected list<datum>")
        keys = await self._new_ids(name, len(data))
        await asyncio.gather(
            *(
                self.forwarder.forward("overwrite", [cluster, str(key), datum])
                for key, datum in zip(keys, data, strict=True)
            )
        )
        return [str(key) for key in keys]

    async def _new_ids(self, name: str, count: int) -> list[int]:
        if self._zk_client is not None:
            return [await asyncio.to_thread(self._zookeeper_id, name) for _ in range(count)]
        lock = self._id_locks.setdefault(name, asyncio.Lock())
        async with lock:
            first = self._next_ids.get(name)
            if first is None:
                first = await self._largest_id(name) + 1
            self._next_ids[name] = first + count
        return list(range(first, first + count))

    def _zookeeper_id(self, name: str) -> int:
        """Bump the id znode's version (creating the znode once), as Jubatus's servers do."""
        path = id_generator_path(name)
        client = self._zk_client
        try:
            stat = client.set(path, b"dummy")
        except Exception as error:  # kazoo's NoNodeError: the first id of this cluster
            if type(error).__name__ != "NoNodeError":
                raise
            client.ensure_path(path)
            stat = client.set(path, b"dummy")
        return int(stat.version)

    async def _largest_id(self, name: str) -> int:
        """The largest numeric id the cluster's servers hold (``max_id`` in their status)."""
        statuses = await self.forwarder.forward("get_status", [name])
        largest = -1
        if isinstance(statuses, dict):
            for status in statuses.values():
                if isinstance(status, dict):
                    for key, value in status.items():
                        if key in (b"max_id", "max_id") and value is not None:
                            text = value.decode() if isinstance(value, bytes) else str(value)
                            if text.isdigit():
                                largest = max(largest, int(text))
        return largest


def main(argv: Sequence[str] | None = None) -> int:
    """Parse Jubatus-compatible proxy flags and forward anomaly calls until stopped."""
    prog = Path(sys.argv[0]).name or "jubaanomaly_proxy"
    settings = parse_proxy_args(prog, argv)
    setup_logging(settings.log_level, log_file_path(settings.logdir, prog))
    try:
        app = AnomalyProxyApp(settings, prog=prog)
        return run_on_event_loop(app.serve(), settings.event_loop)
    except (ConfigError, JubakoError) as error:
        log.error("proxy failed to start: %s", error)
        return 1
    except OSError as error:
        log.error(
            "proxy failed to start: %s (any process using port %d?)", error, settings.rpc_port
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
