"""Accepting connections: a cap, an allow list, and a calm answer to running out of files.

asyncio's own accept loop logs a traceback for every ``accept()`` that fails with EMFILE,
many times a loop iteration, for as long as the process has no file descriptor left (GBs
of log in minutes). :class:`Listener` accepts in a task of its own instead:

- a connection over ``max_connections`` open ones is accepted and closed at once (a reset:
  the client learns at once, and holds nothing here);
- a client whose address is not in ``allow`` (when given) is closed the same way;
- ``accept()`` failing for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) waits and
  tries again, 10 ms first, doubling up to 1 s, while connections close and free their
  descriptors;
- each of these is logged at most once a second, with a count (:class:`Throttle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Final

from runtime.errors import ConfigError
from runtime.rpc.logbounds import Throttle

log = logging.getLogger(__name__)

#: Network = an address or a CIDR block clients may connect from.
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_OUT_OF_RESOURCES: Final = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_FIRST_BACKOFF: Final = 0.01
_MAX_BACKOFF: Final = 1.0
_BACKLOG: Final = 128
#: SO_LINGER on, zero seconds: close() resets the connection, keeping no TIME_WAIT here.
_RESET: Final = struct.pack("ii", 1, 0)


def parse_allow(text: str) -> list[Network]:
    """``"127.0.0.1,10.0.0.0/8"`` → networks; ConfigError naming a bad entry."""
    networks: list[Network] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                f"allow: {entry!r} is not an address or network (e.g. 10.0.0.0/8)"
            ) from None
    return networks


class Listener:
    """Accepts connections on ``host:port`` and hands each to ``factory``'s protocol."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        max_connections: int,
        open_connections: Callable[[], int],
        allow: Sequence[Network] = (),
        throttle: Throttle | None = None,
    ) -> None:
        self.factory = factory
        self.host = host
        self.requested_port = port
        self.max_connections = max_connections
        self.open_connections = open_connections
        self.allow = tuple(allow)
        self.throttle = throttle or Throttle(log)
        self.port = 0
        #: Connections closed at once: over the cap, and from outside the allow list.
        self.refused_over_cap = 0
        self.refused_not_allowed = 0
        #: accept() calls that failed for lack of descriptors or memory.
        self.accept_failures = 0
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and listen; ``port`` 0 picks a free port (read :attr:`port` after)."""
        infos = await asyncio.get_running_loop().getaddrinfo(
            self.host, self.requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def close(self) -> None:
        """Stop accepting (connections already open stay)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        sock = self._sock
        backoff = _FIRST_BACKOFF
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as error:
                if error.errno in _OUT_OF_RESOURCES:
                    self.accept_failures += 1
                    self.throttle.log(
                        logging.WARNING,
                        "accept",
                        "cannot accept connections: %s; trying again in %.2f s",
                        error.strerror,
                        backoff,
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                if error.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN):
                    continue  # the client gave up before we took it
                raise
            backoff = _FIRST_BACKOFF
            if self.allow and not _allowed(peer, self.allow):
                self.refused_not_allowed += 1
                self.throttle.log(
                    logging.WARNING,
                    "not allowed",
                    "refusing a connection from %s: not in --allow",
                    peer[0],
                )
                _reset(conn)
                continue
            if self.open_connections() >= self.max_connections:
                self.refused_over_cap += 1
                self.throttle.log(
                    logging.WARNING,
                    "over cap",
                    "refusing a connection from %s: %d connections are open (--max-connections)",
                    peer[0],
                    self.max_connections,
                )
                _reset(conn)
                continue
            try:
                await loop.connect_accepted_socket(self.factory, conn)
            except OSError as error:
                self.throttle.log(
                    logging.WARNING, "connect", "cannot serve a connection: %s", error
                )
                conn.close()


def _allowed(peer: object, allow: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer[0])  # type: ignore[index]
    except (ValueError, TypeError, IndexError):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allow)


def _reset(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    conn.close()
