"""Load generator for ``bench.vs_jubatus``: a lean closed-loop msgpack-rpc client.

``python -m bench._call_load --port P --call NAME [--connections N] [--depth D]
[--seconds S] [--warmup W] [--server-pid PID]`` keeps ``depth`` calls of ``NAME`` (one of
:data:`CALLS`) in flight on each of ``connections`` connections (closed loop: every reply
sends the next request, written in one batch per read), warms up, then measures. Requests
are packed in the old msgpack spec (``use_bin_type=False``), as Jubatus's own clients and
servers speak it, so the same bytes go to Jubako's server and Jubatus's C++ one; replies
are decoded in full (the client's decoding is part of a call) and counted only when their
error is nil. It prints one JSON object: calls/s, p50/p99 latency, server and client CPU
per call.

The data is fixed and shared with ``bench.vs_jubatus``: :func:`datum` builds one datum of
one string (three words for a ``space`` rule) and three numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import time
from dataclasses import dataclass, field

import msgpack

from bench._load import percentile, process_cpu_seconds

CLUSTER = "bench"
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")
LABELS = ("pos", "neg", "neutral")
#: Distinct request bodies each call cycles through (train moves the model, classify
#: sees different datums).
VARIANTS = 64
CALLS = ("get_status", "classify", "train", "classify100")


def datum(i: int) -> list[list[list[object]]]:
    """The wire datum number ``i``: one string of three words and three numbers."""
    words = " ".join(WORDS[(i * k + k) % len(WORDS)] for k in (1, 2, 3))
    numbers = [[f"x{d}", float((i * 7 + d * 13) % 17) / 4.0] for d in range(3)]
    return [[["text", words]], numbers, []]


def labeled(i: int) -> list[object]:
    return [LABELS[i % len(LABELS)], datum(i)]


def params(call: str, i: int) -> list[object]:
    """The parameters (cluster name first) of request variant ``i`` of ``call``."""
    if call == "get_status":
        return [CLUSTER]
    if call == "classify":
        return [CLUSTER, [datum(i)]]
    if call == "classify100":
        return [CLUSTER, [datum(i * 100 + k) for k in range(100)]]
    if call == "train":
        return [CLUSTER, [labeled(i)]]
    raise ValueError(call)


def method(call: str) -> str:
    return "classify" if call == "classify100" else call


def bodies(call: str) -> list[bytes]:
    """Each request variant packed, without its ``[0, msgid`` head."""
    name = msgpack.packb(method(call), use_bin_type=False)
    count = 1 if call == "get_status" else VARIANTS
    return [name + msgpack.packb(params(call, i), use_bin_type=False) for i in range(count)]


@dataclass
class Window:
    measuring: bool = False
    stopping: bool = False
    calls: int = 0
    errors: int = 0
    first_error: object = None
    latencies_ns: list[int] = field(default_factory=list)


class LoadConnection(asyncio.Protocol):
    def __init__(self, bodies: list[bytes], depth: int, window: Window, offset: int) -> None:
        self.bodies = bodies
        self.depth = depth
        self.window = window
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=64 * 1024 * 1024)
        self.sent_at: dict[int, int] = {}
        self.next_id = 0
        self.turn = offset
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def _request(self, now: int) -> bytes:
        msgid = self.next_id
        self.next_id = (msgid + 1) & 0xFFFFFFFF
        self.sent_at[msgid] = now
        self.turn = (self.turn + 1) % len(self.bodies)
        return b"\x94\x00" + struct.pack(">BI", 0xCE, msgid) + self.bodies[self.turn]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        now = time.perf_counter_ns()
        transport.write(b"".join(self._request(now) for _ in range(self.depth)))

    def data_received(self, data: bytes) -> None:
        self.unpacker.feed(data)
        window = self.window
        now = time.perf_counter_ns()
        replies = 0
        for message in self.unpacker:
            replies += 1
            sent = self.sent_at.pop(message[1], None)
            if window.measuring:
                if message[2] is None and sent is not None:
                    window.calls += 1
                    window.latencies_ns.append(now - sent)
                else:
                    window.errors += 1
                    if window.first_error is None:
                        window.first_error = message[2]
        if replies and not window.stopping and self.transport is not None:
            self.transport.write(b"".join(self._request(now) for _ in range(replies)))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    window = Window()
    packed = bodies(args.call)
    connections: list[LoadConnection] = []
    for n in range(args.connections):
        _, protocol = await loop.create_connection(
            lambda n=n: LoadConnection(packed, args.depth, window, n * 7),  # type: ignore[misc]
            args.host,
            args.port,
        )
        connections.append(protocol)
    await asyncio.sleep(args.warmup)
    server_before = process_cpu_seconds(args.server_pid) if args.server_pid else 0.0
    client_before = os.times()
    started = time.perf_counter()
    window.measuring = True
    await asyncio.sleep(args.seconds)
    window.measuring = False
    elapsed = time.perf_counter() - started
    client_after = os.times()
    server_cpu = process_cpu_seconds(args.server_pid) - server_before if args.server_pid else 0.0
    window.stopping = True
    for connection in connections:
        if connection.transport is not None:
            connection.transport.abort()
    await asyncio.wait_for(asyncio.gather(*(c.closed for c in connections)), 10)
    latencies = sorted(window.latencies_ns)
    calls = window.calls
    client_cpu = (client_after.user + client_after.system) - (
        client_before.user + client_before.system
    )
    return {
        "calls": calls,
        "errors": window.errors,
        "first_error": repr(window.first_error) if window.errors else None,
        "seconds": elapsed,
        "calls_per_s": calls / elapsed if elapsed else 0.0,
        "p50_us": percentile(latencies, 0.50),
        "p99_us": percentile(latencies, 0.99),
        "server_cpu_us_per_call": server_cpu / calls * 1e6 if calls else float("nan"),
        "client_cpu_us_per_call": client_cpu / calls * 1e6 if calls else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--call", choices=CALLS, required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--server-pid", type=int, default=0)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
