"""The Python cost of the proxy's relay, in one process, with no sockets.

``python -m bench.relay`` relays ``get`` calls (a ``cht`` read with ``pass``) through a
proxy's own parts (its RPC server's connections, the forwarder, the pool and its clients)
whose transports live in memory: the upstream connections keep the requests the proxy
writes and are fed ready-made answers. It prints, per relayed call (request read,
forwarded, answer read, relayed and written), the CPU time and the Python bytecodes run,
for 16 connections sending one call per read and for one connection sending 64 per read
(pipelined). The bytecode count does not depend on how busy the machine is; the CPU time
does. What ``bench.cluster`` measures on top is the kernel's and the event loop's share.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time
import types
from typing import Any

import msgpack

from runtime.process.cli import parse_proxy_args
from runtime.proxy.main import ProxyApp
from runtime.proxy.routing import Route, Routing
from runtime.rpc.client import AsyncClient, _ClientProtocol
from runtime.rpc.connection import Connection
from runtime.rpc.locks import LockMode
from runtime.wire import types as t
from runtime.wire.signature import Signature

GET = Signature("get", (t.String(),), t.String())
UPSTREAM = ("127.0.0.1", 9)
CLUSTER = "bench"


class _Sink(asyncio.Transport):
    """Keeps what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []

    def write(self, data: Any) -> None:
        self.chunks.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


class _Rig:
    """A proxy whose upstream connections and client connections are in memory."""

    def __init__(self, connections: int) -> None:
        settings = parse_proxy_args("bench_proxy", ["--servers", f"{UPSTREAM[0]}:{UPSTREAM[1]}"])
        route = Route(GET, Routing.CHT, LockMode.ANALYSIS, "pass", replicas=2)
        self.app = ProxyApp(settings, service_type="bench", routes=[route], prog="bench_proxy")
        pool = self.app.pool
        self.upstream: list[tuple[_Sink, _ClientProtocol]] = []
        clients = []
        for _ in range(pool.max_per_host):  # connected pool clients, as after a first call
            client = AsyncClient(*UPSTREAM, timeout=pool.timeout, after_read=pool.after_read)
            protocol = _ClientProtocol(client._pending, 1 << 26, UPSTREAM, pool.after_read)
            sink = _Sink()
            protocol.connection_made(sink)
            client._protocol, client.outbox = protocol, protocol.out
            clients.append(client)
            self.upstream.append((sink, protocol))
        pool._clients[UPSTREAM], pool._current[UPSTREAM] = clients, clients[0]
        self.clients: list[tuple[Connection, _Sink]] = []
        for _ in range(connections):
            connection, sink = Connection(self.app.rpc), _Sink()
            connection.connection_made(sink)
            self.clients.append((connection, sink))
        self.unpacker = msgpack.Unpacker(raw=False)

    async def prepare(self) -> None:
        """The cluster's view, as the first call through ``forward`` leaves it."""
        self.app.forwarder._known[CLUSTER] = await self.app._view(CLUSTER)

    async def round(self, data: bytes, on: Any, off: Any) -> float:
        """One read of ``data`` per client connection, the upstream answers, their relay;
        returns the CPU seconds of the proxy's part (``on``/``off`` bracket it)."""
        spent = 0.0
        on()
        started = time.process_time()
        for connection, _ in self.clients:
            connection.data_received(data)
        await asyncio.sleep(0)  # the pool's writes
        spent += time.process_time() - started
        off()
        for sink, protocol in self.upstream:
            if sink.chunks:
                self.unpacker.feed(b"".join(sink.chunks))
                sink.chunks.clear()
                answers = b"".join(msgpack.packb([1, m[1], None, "v"]) for m in self.unpacker)
                on()
                started = time.process_time()
                protocol.data_received(answers)
                spent += time.process_time() - started
                off()
        on()
        started = time.process_time()
        await asyncio.sleep(0)
        spent += time.process_time() - started
        off()
        for _, sink in self.clients:
            sink.chunks.clear()
        return spent


class _Counter:
    """Counts the bytecodes run while on (``sys.settrace`` with opcode events)."""

    def __init__(self) -> None:
        self.opcodes = 0

    def _trace(self, frame: types.FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            self.opcodes += 1
        return self._trace

    def on(self) -> None:
        sys.settrace(self._trace)

    def off(self) -> None:
        sys.settrace(None)


def _requests(count: int) -> bytes:
    body = msgpack.packb("get", use_bin_type=False) + msgpack.packb(
        [CLUSTER, "key"], use_bin_type=False
    )
    return b"".join(b"\x94\x00" + struct.pack(">BI", 0xCE, i) + body for i in range(count))


async def _measure(connections: int, per_read: int, rounds: int) -> tuple[float, float]:
    """(CPU µs, bytecodes) per relayed call; the CPU time is the best of three."""
    rig = _Rig(connections)
    await rig.prepare()
    data = _requests(per_read)
    calls = connections * per_read

    def nothing() -> None:
        pass

    for _ in range(20):  # warm up: inline entries, caches
        await rig.round(data, nothing, nothing)
    counter = _Counter()
    for _ in range(20):
        await rig.round(data, counter.on, counter.off)
    opcodes = counter.opcodes / (20 * calls)
    best = float("inf")
    for _ in range(3):
        spent = 0.0
        for _ in range(rounds):
            spent += await rig.round(data, nothing, nothing)
        best = min(best, spent / (rounds * calls) * 1e6)
    return best, opcodes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=80_000, help="relayed calls per cell")
    args = parser.parse_args(argv)
    print("| load | µs per relayed call | bytecodes per relayed call |")
    print("|---|---:|---:|")
    for label, connections, per_read in (("16 connections", 16, 1), ("pipelined 64", 1, 64)):
        rounds = max(args.calls // (connections * per_read), 10)
        micros, opcodes = asyncio.run(_measure(connections, per_read, rounds))
        print(f"| {label} | {micros:.2f} | {opcodes:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
