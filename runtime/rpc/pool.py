"""A pool of :class:`~runtime.rpc.client.AsyncClient` keyed by address.

The proxy's fan-out and the mixer call many servers; one pipelined connection per server
carries their calls, and up to ``max_per_host`` when many calls come at once: a client
takes the calls of a loop iteration until ``batch`` of them wait to be written, then the
next client takes over. Few calls at a time thus share one write (fewer system calls on
both ends), and a burst is cut into batches the server can answer while the next ones
are still on their way. A client whose connection failed is dropped, so the next call
connects afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from runtime.errors import ConnectError, ConnectionLost
from runtime.rpc.client import AsyncClient


class ClientPool:
    """Clients by ``(host, port)``; ``await pool.call(host, port, method, params)``."""

    def __init__(
        self, *, timeout: float | None = 10.0, max_per_host: int = 1, batch: int = 32
    ) -> None:
        self.timeout = timeout
        #: Given to the clients made from now on (see :class:`AsyncClient`).
        self.after_read: Callable[[], None] | None = None
        self.max_per_host = max(1, max_per_host)
        self.batch = max(1, batch)
        self._clients: dict[tuple[str, int], list[AsyncClient]] = {}
        #: The client taking calls now, per address (an index into its list).
        self._current: dict[tuple[str, int], int] = {}

    def client(self, host: str, port: int) -> AsyncClient:
        """The client for the next call to ``host:port`` (it may not be connected yet)."""
        address = (host, port)
        clients = self._clients.get(address)
        if clients is None:
            client = AsyncClient(host, port, timeout=self.timeout, after_read=self.after_read)
            self._clients[address] = [client]
            self._current[address] = 0
            return client
        index = self._current[address]
        client = clients[index]
        if client.queued < self.batch or self.max_per_host == 1:
            return client
        index += 1  # this one has a full batch for this loop iteration: the next takes over
        if index == len(clients) < self.max_per_host:
            clients.append(
                AsyncClient(host, port, timeout=self.timeout, after_read=self.after_read)
            )
        elif index >= len(clients):
            index = 0
        self._current[address] = index
        return clients[index]

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
            if not clients:
                del self._clients[(host, port)]
            elif self._current[(host, port)] >= len(clients):
                self._current[(host, port)] = 0
        await client.close()

    async def close(self) -> None:
        for clients in self._clients.values():
            for client in clients:
                await client.close()
        self._clients.clear()
        self._current.clear()
