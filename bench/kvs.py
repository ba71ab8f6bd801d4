"""kvs benchmark: the generated kvs server against the same methods on msgpack-rpc-python.

``python -m bench.kvs [--seconds S]`` starts, each in its own process: the kvs server
generated in ``examples/kvs`` (Jubako), a kvs on ``msgpackrpc.Server`` (oracle venv), and
a bare asyncio + msgpack kvs with the handler inline (the ceiling). For ``put`` and
``get`` it runs the same load generator (``bench._load``'s connection, another process)
against each server side by side: sequential, 16 concurrent connections, and 64 calls
pipelined on one connection. It prints calls/s, p50/p99 and server CPU per call and the
ratios Jubako/msgpackrpc and Jubako/ceiling, and rewrites the ``## kvs`` section of
``bench/RESULTS.md`` unless ``--no-write``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import re
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import msgpack

from bench._load import LoadConnection, Window, percentile, process_cpu_seconds
from bench.results import replace_section
from bench.rpc import machine_note, ratio
from runtime.rpc.client import Client

REPO = Path(__file__).resolve().parent.parent
ORACLE_PYTHON = REPO / ".venv-oracle" / "bin" / "python"
ORACLE_KVS = REPO / "bench" / "oracle" / "kvs_server.py"
PORT_LINE = r"PORT (\d+)"
SECTION = "## kvs"
SHAPES = (("sequential", 1, 1), ("16 clients", 16, 1), ("pipelined 64", 1, 64))
METHODS = ("put", "get")
VALUE = b"v" * 8


class KvsLoad(LoadConnection):
    """A load connection that counts any non-error reply as a call."""

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
        if replies and not window.stopping and self.transport is not None:
            self.transport.write(b"".join(self._request(now) for _ in range(replies)))


async def _load(
    port: int, pid: int, method: str, connections: int, depth: int, seconds: float
) -> dict[str, Any]:
    shapes: dict[str, list[object]] = {"put": ["bench", "key", VALUE], "get": ["bench", "key"]}
    params = shapes.get(method, ["bench"])
    body = msgpack.packb(method, use_bin_type=False) + msgpack.packb(params, use_bin_type=False)
    # One call first: a server's first call of a method runs on a worker, and if 16
    # connections open with that, their replies come back one by one and the clients stay
    # out of step for the whole run (a state of the closed loop, not of the server).
    await asyncio.to_thread(_prime, port, method, params)
    loop = asyncio.get_running_loop()
    window = Window()
    conns = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(
            lambda: KvsLoad(body, 0, depth, window), "127.0.0.1", port
        )
        conns.append(protocol)
    await asyncio.sleep(0.5)
    cpu_before = process_cpu_seconds(pid)
    started = time.perf_counter()
    window.measuring = True
    await asyncio.sleep(seconds)
    window.measuring = False
    elapsed = time.perf_counter() - started
    cpu = process_cpu_seconds(pid) - cpu_before
    window.stopping = True
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    latencies = sorted(window.latencies_ns)
    calls = window.calls
    return {
        "calls_per_s": calls / elapsed,
        "p50_us": percentile(latencies, 0.5),
        "p99_us": percentile(latencies, 0.99),
        "server_cpu_us_per_call": cpu / calls * 1e6 if calls else float("nan"),
        "errors": window.errors,
    }


def _prime(port: int, method: str, params: list[object]) -> None:
    with Client("127.0.0.1", port, timeout=10) as client:
        client.call(method, params)


class CeilingKvs(asyncio.Protocol):
    """put/get with nothing but the wire: the best a Python server can do here."""

    entries: typing.ClassVar[dict[bytes, bytes]] = {}

    def __init__(self) -> None:
        self.unpacker = msgpack.Unpacker(raw=True)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.unpacker.feed(data)
        out = []
        for message in self.unpacker:
            params = message[3]
            if message[2] == b"put":
                self.entries[params[1]] = params[2]
                result: object = True
            else:
                result = self.entries.get(params[1], b"")
            out.append(msgpack.packb([1, message[1], None, result], use_bin_type=False))
        assert self.transport is not None
        self.transport.write(b"".join(out))


async def _serve_ceiling() -> None:
    server = await asyncio.get_running_loop().create_server(CeilingKvs, "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


@contextmanager
def _process(command: list[str], pattern: str, cwd: Path) -> Iterator[tuple[int, int]]:
    """Start a server; yield (pid, port) once its output matches ``pattern``."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        port = 0
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise SystemExit(f"{command} exited before listening")
            found = re.search(pattern, line)
            if found:
                port = int(found.group(1))
                break
        yield process.pid, port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--serve-ceiling", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_ceiling:
        asyncio.run(_serve_ceiling())
        return 0
    example = REPO / "examples" / "kvs"
    with tempfile.TemporaryDirectory() as datadir, ExitStack() as stack:
        servers = {
            "jubako": stack.enter_context(
                _process(
                    [sys.executable, "kvs_impl.py", "--rpc-port", "0", "--datadir", datadir,
                     "--configpath", "config.json", "--thread", "2"],
                    r"listening on [\d.]+:(\d+)",
                    example,
                )
            ),
            "msgpackrpc": stack.enter_context(
                _process([str(ORACLE_PYTHON), str(ORACLE_KVS)], r"PORT (\d+)", REPO)
            ),
            "ceiling": stack.enter_context(
                _process([sys.executable, "-m", "bench.kvs", "--serve-ceiling"], PORT_LINE, REPO)
            ),
        }  # fmt: skip
        rows = []
        for method in METHODS:
            for shape, connections, depth in SHAPES:
                results = {
                    label: asyncio.run(_load(port, pid, method, connections, depth, args.seconds))
                    for label, (pid, port) in servers.items()
                }
                rows.append((method, shape, results))
                j, m, c = results["jubako"], results["msgpackrpc"], results["ceiling"]
                jps, mps, cps = j["calls_per_s"], m["calls_per_s"], c["calls_per_s"]
                print(
                    f"{method:4} {shape:13} jubako {jps:8.0f}/s "
                    f"({j['server_cpu_us_per_call']:5.1f} us cpu)  msgpackrpc {mps:8.0f}/s  "
                    f"ceiling {cps:8.0f}/s ({c['server_cpu_us_per_call']:5.1f} us cpu)  "
                    f"x{ratio(jps, mps)} vs msgpackrpc, x{ratio(jps, cps)} vs ceiling",
                    flush=True,
                )
    if not args.no_write:
        _write(rows, args.seconds)
    return 0


def _write(rows: list[tuple[str, str, dict[str, dict[str, Any]]]], seconds: float) -> None:
    lines = [
        SECTION,
        "",
        f"`python -m bench.kvs --seconds {seconds:g}` on {datetime.date.today()}; "
        f"{machine_note()}.",
        "Each server in its own process, the same load generator against each, side by side.",
        "",
        "| method | load | jubako calls/s | msgpackrpc calls/s | ceiling calls/s "
        "| jubako/msgpackrpc | jubako/ceiling | jubako p50/p99 µs "
        "| server CPU µs/call jubako / ceiling |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, shape, r in rows:
        j, m, c = r["jubako"], r["msgpackrpc"], r["ceiling"]
        lines.append(
            f"| {method} | {shape} | {j['calls_per_s']:.0f} | {m['calls_per_s']:.0f} | "
            f"{c['calls_per_s']:.0f} | {ratio(j['calls_per_s'], m['calls_per_s'])} | "
            f"{ratio(j['calls_per_s'], c['calls_per_s'])} | {j['p50_us']:.0f}/{j['p99_us']:.0f} | "
            f"{j['server_cpu_us_per_call']:.1f} / {c['server_cpu_us_per_call']:.1f} |"
        )
    replace_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
