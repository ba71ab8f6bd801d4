"""The one server or proxy a gateway forwards to, over a bounded pool of async clients.

Online calls await :meth:`Upstream.call`, which raises :class:`GatewayError` with the
HTTP status of the failure. Batch jobs use :meth:`Upstream.send`: pipelined, with no task
per call once a connection is open, the outcome handed to a callback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from runtime.errors import RPCError
from runtime.http import params as stored_params
from runtime.http.errors import GatewayError, upstream_error
from runtime.rpc.pool import ClientPool

log = logging.getLogger(__name__)

#: ``callback(error, result)``: error is None on success, else the RPCError.
Outcome = Callable[[RPCError | None, Any], None]


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) → ``(host, port)``; ValueError saying what is wrong."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9199)")
    return host, int(port)


class Upstream:
    """Calls to ``address`` for the cluster ``name``, ``connections`` connections at most."""

    def __init__(
        self, address: str, name: str = "", *, timeout: float = 10.0, connections: int = 4
    ) -> None:
        self.host, self.port = parse_address(address)
        self.address = address
        self.name = name
        self.timeout = timeout
        self.pool = ClientPool(timeout=timeout, max_per_host=connections, batch=64)
        self._packed_name = msgpack.packb(name, use_bin_type=False)
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(
        self, method: str, params: Sequence[object], timeout: float | None = None
    ) -> Any:
        """The wire result of ``method``; GatewayError (502/503/504) when it fails."""
        try:
            return await self.pool.call(
                self.host, self.port, method, [self.name, *params], timeout=timeout
            )
        except RPCError as error:
            raise upstream_error(error, self.address, method) from None
        except UnicodeEncodeError as error:  # JSON's "\ud800": text UTF-8 cannot carry
            bad = error.object[error.start : error.end]
            raise GatewayError(
                422,
                "bad_request",
                f"{method}: the request holds text that is not valid "
                f"Unicode (a lone surrogate, {bad!r}): it cannot be sent",
            ) from None

    def send(
        self, method: str, params: Sequence[object], callback: Outcome, timeout: float | None
    ) -> None:
        """Send a call now and have ``callback`` called once with its outcome."""
        wire = [self.name, *params]
        client = self.pool.client(self.host, self.port)
        if client.call_soon(method, wire, callback, timeout=timeout):
            return
        task = asyncio.create_task(self._call(method, wire, callback, timeout))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send_stored(
        self, method: str, stored: bytes, callback: Outcome, timeout: float | None
    ) -> None:
        """:meth:`send` with arguments as the job store keeps them: spliced into the
        request as they are, when a connection is open (:mod:`runtime.http.params`)."""
        packed = stored_params.with_name(stored, self._packed_name)
        if packed is not None:
            client = self.pool.client(self.host, self.port)
            if client.call_soon_packed(method, packed, callback, timeout=timeout):
                return
        self.send(method, stored_params.unpack(stored), callback, timeout)

    async def _call(
        self, method: str, wire: list[object], callback: Outcome, timeout: float | None
    ) -> None:
        try:
            result = await self.pool.call(self.host, self.port, method, wire, timeout=timeout)
        except RPCError as error:
            callback(error, None)
        else:
            callback(None, result)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.pool.close()
