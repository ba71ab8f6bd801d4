"""Servers measured by ``bench.rpc``, each run as its own process.

``python -m bench._servers ceiling`` is the ceiling: a bare ``asyncio.Protocol`` with
msgpack 1.x and the echo handler inline, the replies to one read written at once
(``--unbatched``: one write per reply, as a naive server does). ``python -m
bench._servers jubako [--uvloop] [--threads N] [--lock MODE]`` is a Jubako ``RpcServer``
with one ``echo(raw) -> raw`` method, by default under the shared model lock as an
``#@analysis`` method runs (``--lock nolock`` shows what the lock costs).
Both bind 127.0.0.1 on a free port, print ``PORT <n>`` and serve until killed.
(The msgpack-rpc-python server lives in the oracle venv:
``tests/compat/oracle_scripts/msgpackrpc_server.py``.) With ``--profile FILE`` the
server runs under cProfile and writes the stats to FILE on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from collections.abc import Callable
from typing import Any

import msgpack


class CeilingProtocol(asyncio.Protocol):
    """msgpack-rpc with nothing but the wire: decode, echo ``params[1]``, encode."""

    def __init__(self) -> None:
        self.unpacker = msgpack.Unpacker(raw=True, max_buffer_size=64 * 1024 * 1024)
        self.packer = msgpack.Packer(use_bin_type=False)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.unpacker.feed(data)
        pack = self.packer.pack
        replies = [pack([1, message[1], None, message[3][1]]) for message in self.unpacker]
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))


class UnbatchedCeilingProtocol(CeilingProtocol):
    """The same, but one ``transport.write`` per reply (a send system call each)."""

    def data_received(self, data: bytes) -> None:
        self.unpacker.feed(data)
        pack = self.packer.pack
        assert self.transport is not None
        for message in self.unpacker:
            self.transport.write(pack([1, message[1], None, message[3][1]]))


async def serve_ceiling(batched: bool) -> None:
    loop = asyncio.get_running_loop()
    protocol = CeilingProtocol if batched else UnbatchedCeilingProtocol
    server = await loop.create_server(protocol, "127.0.0.1", 0)
    announce(server.sockets[0].getsockname()[1])
    await wait_for_stop()
    server.close()


async def serve_jubako(threads: int, lock: str) -> None:
    from runtime.rpc.dispatch import Dispatcher, Handler
    from runtime.rpc.locks import LockMode, RWLock
    from runtime.rpc.server import RpcServer
    from runtime.wire import types as t

    def echo(value: bytes) -> bytes:
        return value

    handlers = {"echo": Handler(echo, LockMode(lock), (t.Raw(),), t.Raw())}
    dispatcher = Dispatcher(handlers, model_lock=RWLock())
    server = RpcServer(dispatcher, "127.0.0.1", 0, threads=threads)
    await server.start()
    announce(server.port)
    await wait_for_stop()
    await server.close()


def announce(port: int) -> None:
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()


async def wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["ceiling", "jubako"])
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--unbatched", action="store_true", help="ceiling: a write per reply")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--lock", choices=["analysis", "update", "nolock"], default="analysis", help="jubako"
    )
    parser.add_argument("--profile", default="")
    args = parser.parse_args(argv)
    main_coroutine: Callable[[], Any] = (
        (lambda: serve_ceiling(not args.unbatched))
        if args.kind == "ceiling"
        else (lambda: serve_jubako(args.threads, args.lock))
    )
    runner: Callable[[Any], Any] = asyncio.run
    if args.uvloop:
        runner = importlib.import_module("uvloop").run
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            runner(main_coroutine())
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        runner(main_coroutine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
