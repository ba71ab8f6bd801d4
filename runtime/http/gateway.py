"""A gateway's settings and the state its routes share: upstream, job store, job runner.

The state starts with the app's lifespan, or at the first request when the app is
mounted in another app whose lifespan does not start it (Starlette runs no lifespan for
mounted apps); :func:`gateway_of` gives a route the started gateway.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from runtime.http.limits import DEFAULT_MAX_REQUEST
from runtime.http.runner import JobManager, JobSettings
from runtime.http.spec import ServiceSpec
from runtime.http.store import Store
from runtime.http.upstream import Upstream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewaySettings:
    """Where to forward and how (see ``docs/http.md``).

    ``upstream`` is ``HOST:PORT`` of a server or proxy, ``name`` the cluster name sent
    with every call, ``timeout`` the online call timeout in seconds, ``connections`` the
    pool's bound, ``datadir`` where the job store lives, ``max_upload`` a job upload's
    limit in bytes, ``max_request`` an online request body's.
    """

    upstream: str
    name: str = ""
    timeout: float = 10.0
    connections: int = 4
    datadir: Path = Path("/tmp")
    jobs: JobSettings = field(default_factory=JobSettings)
    max_upload: int = 1 << 30
    max_request: int = DEFAULT_MAX_REQUEST

    def store_path(self, service: str) -> Path:
        return self.datadir / f"jubako_http_{service}.sqlite3"


class Gateway:
    """The upstream, the job store and the job manager of one app."""

    def __init__(self, service: ServiceSpec, settings: GatewaySettings) -> None:
        self.service = service
        self.settings = settings
        self.upstream = Upstream(
            settings.upstream, settings.name, timeout=settings.timeout,
            connections=settings.connections,
        )  # fmt: skip
        self._store: Store | None = None
        self._jobs: JobManager | None = None
        self._starting: asyncio.Lock | None = None

    @property
    def store(self) -> Store:
        assert self._store is not None, "the gateway is not started"
        return self._store

    @property
    def jobs(self) -> JobManager:
        assert self._jobs is not None, "the gateway is not started"
        return self._jobs

    @property
    def started(self) -> bool:
        return self._jobs is not None

    async def start(self) -> None:
        """Open the job store and resume its jobs (once; later calls return at once)."""
        if self._jobs is not None:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.started:  # started by another request while this one waited
                return
            path = self.settings.store_path(self.service.name)
            self._store = await asyncio.to_thread(Store, path)
            jobs = JobManager(self.service, self._store, self.upstream, self.settings.jobs)
            await jobs.start()
            self._jobs = jobs
            log.info("job store %s; forwarding to %s (cluster name %r)", path,
                     self.settings.upstream, self.settings.name)  # fmt: skip

    async def stop(self) -> None:
        if self._jobs is not None:
            await self._jobs.stop()
            self._jobs = None
        await self.upstream.close()
        if self._store is not None:
            self._store.close()
            self._store = None


async def gateway_of(request: Request) -> Gateway:
    """The started gateway of the app serving ``request``."""
    gateway: Gateway = request.app.state.gateway
    if not gateway.started:
        await gateway.start()
    return gateway
