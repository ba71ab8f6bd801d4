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
        #: Given to the clients made from now on: called with ``(host, port)`` when a
        #: server closes a connection (see :class:`AsyncClient`).
        self.on_lost: Callable[[tuple[str, int]], None] | None = None
        self.max_per_host = max(1, max_per_host)
        self.batch = max(1, batch)
        self._clients: dict[tuple[str, int], list[AsyncClient]] = {}
        #: The client taking calls now, per address.
        self._current: dict[tuple[str, int], AsyncClient] = {}
        #: Set by :meth:`close`: from then on every client handed out is a closed one.
        self.closed = False

    def client(self, host: str, port: int) -> AsyncClient:
        """The client for the next call to ``host:port`` (it may not be connected yet)."""
        address = (host, port)
        client = self._current.get(address)
        if client is not None and len(client.outbox) < self.batch:
            return client
        return self._next_client(address, client)

    def _next_client(self, address: tuple[str, int], full: AsyncClient | None) -> AsyncClient:
        """A new address's first client, or the one after ``full`` (which has a full batch
        for this loop iteration), made while there are fewer than ``max_per_host``."""
        if self.closed:  # a caller failing over while the pool closes: nothing connects
            dead = AsyncClient(*address, timeout=self.timeout)
            dead.closed = True
            return dead
        clients = self._clients.setdefault(address, [])
        index = clients.index(full) + 1 if full in clients else len(clients)
        if index == len(clients) < self.max_per_host:
            clients.append(
                AsyncClient(
                    *address, timeout=self.timeout, after_read=self.after_read, on_lost=self.on_lost
                )
            )
        elif index >= len(clients):
            index = 0
        self._current[address] = clients[index]
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
        address = (host, port)
        clients = self._clients.get(address, [])
        if client in clients:
            clients.remove(client)
            if not clients:
                del self._clients[address]
                self._current.pop(address, None)
            elif self._current.get(address) is client:
                self._current[address] = clients[0]
        await client.close()

    async def close(self) -> None:
        """Close every client. Calls still waiting fail, and their callbacks (a proxy
        failing over) get only closed clients from now on."""
        self.closed = True
        clients = [client for per_address in self._clients.values() for client in per_address]
        self._clients.clear()
        self._current.clear()
        for client in clients:
            await client.close()
