"""A pool of :class:`~runtime.rpc.client.AsyncClient` keyed by address.

The proxy's fan-out and the mixer call many servers; one pipelined connection per server
(or up to ``max_per_host``, used round-robin) carries all their calls. A client whose
connection failed is dropped, so the next call connects afresh.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from runtime.errors import ConnectError, ConnectionLost
from runtime.rpc.client import AsyncClient


class ClientPool:
    """Clients by ``(host, port)``; ``await pool.call(host, port, method, params)``."""

    def __init__(self, *, timeout: float | None = 10.0, max_per_host: int = 1) -> None:
        self.timeout = timeout
        self.max_per_host = max(1, max_per_host)
        self._clients: dict[tuple[str, int], list[AsyncClient]] = {}
        self._turn = itertools.count()

    def client(self, host: str, port: int) -> AsyncClient:
        clients = self._clients.get((host, port))
        if clients is None:
            clients = self._clients[(host, port)] = []
        elif len(clients) == 1 == self.max_per_host:
            return clients[0]
        if len(clients) < self.max_per_host:
            clients.append(AsyncClient(host, port, timeout=self.timeout))
            return clients[-1]
        return clients[next(self._turn) % len(clients)]

    async def call(
        self,
        host: str,
        port: int,
        method: str,
        params: Sequence[object],
        *,
        timeout: float | None = None,
    ) -> Any:
        client = self.client(host, port)
        try:
            return await client.call(method, params, timeout=timeout or self.timeout)
        except (ConnectError, ConnectionLost):
            await self.discard(host, port, client)
            raise

    async def discard(self, host: str, port: int, client: AsyncClient) -> None:
        clients = self._clients.get((host, port), [])
        if client in clients:
            clients.remove(client)
        await client.close()

    async def close(self) -> None:
        for clients in self._clients.values():
            for client in clients:
                await client.close()
        self._clients.clear()
