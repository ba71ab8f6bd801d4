"""Load generator for ``bench.rpc``: a lean raw-msgpack asyncio client in its own process.

It opens ``--connections`` TCP connections, keeps ``--depth`` calls in flight on each
(closed loop: every reply sends the next request, written in one batch per read), warms
up, then measures for ``--seconds``: calls completed, latency percentiles, and the CPU
time the server process (``--server-pid``) and this process spent in that window. It
prints one JSON object on stdout. Requests are ``[0, msgid, "echo", ["bench", payload]]``
packed in the old msgpack spec, as Jubatus clients send them; replies are only checked
for a nil error and the payload's length, so the client costs the same for every server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgpack

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from ``/proc/<pid>/stat``, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        text = stat.read().decode()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def resident_mib(pid: int) -> float:
    """Resident memory of ``pid`` (VmRSS from /proc), MiB; NaN if not shown."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Window:
    """What is counted: only replies that arrive while ``measuring`` is set."""

    measuring: bool = False
    stopping: bool = False
    calls: int = 0
    errors: int = 0
    #: The error of the first failed reply, where the connection records it.
    first_error: object = None
    latencies_ns: list[int] = field(default_factory=list)


class LoadConnection(asyncio.Protocol):
    """One connection keeping ``depth`` requests in flight."""

    def __init__(self, body: bytes, payload_size: int, depth: int, window: Window) -> None:
        self.body = body
        self.payload_size = payload_size
        self.depth = depth
        self.window = window
        self.unpacker = msgpack.Unpacker(raw=True, max_buffer_size=64 * 1024 * 1024)
        self.sent_at: dict[int, int] = {}
        self.next_id = 0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def _request(self, now: int) -> bytes:
        msgid = self.next_id
        self.next_id = (msgid + 1) & 0xFFFFFFFF
        self.sent_at[msgid] = now
        return b"\x94\x00" + struct.pack(">BI", 0xCE, msgid) + self.body

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
                ok = message[2] is None and len(message[3]) == self.payload_size
                if ok and sent is not None:
                    window.calls += 1
                    window.latencies_ns.append(now - sent)
                else:
                    window.errors += 1
        if replies and not window.stopping and self.transport is not None:
            self.transport.write(b"".join(self._request(now) for _ in range(replies)))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index] / 1000.0


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    payload = b"x" * args.payload
    body = msgpack.packb("echo", use_bin_type=False) + msgpack.packb(
        ["bench", payload], use_bin_type=False
    )
    window = Window()
    connections: list[LoadConnection] = []
    for _ in range(args.connections):
        _, protocol = await loop.create_connection(
            lambda: LoadConnection(body, args.payload, args.depth, window), args.host, args.port
        )
        connections.append(protocol)
    return await measure(connections, window, args)


async def measure(
    connections: Sequence[LoadConnection], window: Window, args: argparse.Namespace
) -> dict[str, object]:
    """Warm up for ``args.warmup``, count replies for ``args.seconds``, close the
    connections and sum up: calls/s, latency, the server's (``args.server_pid``) and this
    process's CPU per call."""
    await asyncio.sleep(args.warmup)
    server_cpu_before = process_cpu_seconds(args.server_pid) if args.server_pid else 0.0
    client_before = os.times()
    started = time.perf_counter()
    window.measuring = True
    await asyncio.sleep(args.seconds)
    window.measuring = False
    elapsed = time.perf_counter() - started
    client_after = os.times()
    server_cpu = (
        process_cpu_seconds(args.server_pid) - server_cpu_before if args.server_pid else 0.0
    )
    window.stopping = True
    for connection in connections:  # measurement is over: drop unsent requests too
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
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--payload", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--server-pid", type=int, default=0)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
