"""The Python cost of the RPC server's read path, in one process, with no sockets.

``python -m bench.dispatch`` feeds ready-made request bytes to a Jubako server
connection and to the ceiling's protocol (``bench._servers.CeilingProtocol``) through a
transport that drops what they write, and prints the CPU time per call: one request per
read (as 16 connections with one call each see it) and 64 per read (pipelined), for an
``analysis``, an ``update`` and a ``nolock`` echo of 8 bytes. What ``bench.rpc`` measures
on top of this is the kernel's and the event loop's share, the same for every server.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import msgpack

from bench._servers import CeilingProtocol
from runtime.rpc.connection import Connection
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.locks import LockMode, RWLock
from runtime.rpc.server import RpcServer
from runtime.wire import types as t


class _NullTransport(asyncio.Transport):
    """Accepts and drops everything written."""

    def write(self, data: Any) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _echo(value: bytes) -> bytes:
    return value


def _per_call_us(protocol: asyncio.Protocol, data: bytes, calls: int, reads: int) -> float:
    """Best of three: CPU µs per call for ``reads`` reads of ``data`` (``calls`` each)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(reads):
            protocol.data_received(data)
        best = min(best, (time.process_time() - started) / (reads * calls) * 1e6)
    return best


async def _measure(mode: LockMode, reads: int) -> list[tuple[str, float, float]]:
    dispatcher = Dispatcher(
        {"echo": Handler(_echo, mode, (t.Raw(),), t.Raw())}, model_lock=RWLock()
    )
    server = RpcServer(dispatcher)
    connection = Connection(server)
    connection.connection_made(_NullTransport())
    ceiling = CeilingProtocol()
    ceiling.connection_made(_NullTransport())
    one = msgpack.packb([0, 1, "echo", ["bench", b"12345678"]], use_bin_type=False)
    # The first calls of a method run on a worker; let them finish so it runs inline.
    deadline = time.monotonic() + 10
    while not (server.timings.get("echo") and server.timings["echo"].fast):
        if time.monotonic() > deadline:
            raise SystemExit("echo never became known fast")
        connection.data_received(one)
        await asyncio.sleep(0.02)
    _per_call_us(connection, one, 1, 10_000)  # warm up the interpreter's caches
    _per_call_us(ceiling, one, 1, 10_000)
    rows = []
    for label, batch in (("1 per read", 1), ("64 per read", 64)):
        data = one * batch
        count = max(reads // batch, 100)
        jubako = _per_call_us(connection, data, batch, count)
        bare = _per_call_us(ceiling, data, batch, count)
        rows.append((label, jubako, bare))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=100_000, help="single-call reads per cell")
    args = parser.parse_args(argv)
    print("| lock | calls per read | jubako µs/call | ceiling µs/call | jubako / ceiling |")
    print("|---|---|---:|---:|---:|")
    for mode in (LockMode.ANALYSIS, LockMode.UPDATE, LockMode.NOLOCK):
        for label, jubako, bare in asyncio.run(_measure(mode, args.reads)):
            print(f"| {mode.value} | {label} | {jubako:.2f} | {bare:.2f} | {jubako / bare:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
