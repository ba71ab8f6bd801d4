"""Replicas: what ordered writes cost, and how long a repair takes.

``python -m bench.replicas [--compare-with DIR] [--rows N] [--seconds S] [--no-write]``:

- **ordered writes**: kvs ``put`` (``cht(2)``) through a proxy to two servers, from 16
  clients (one call each at a time) and 64 calls pipelined on one connection, over
  10,000 keys and on one hot key; with ``--compare-with DIR`` the same cluster run from
  another checkout (``git worktree add /tmp/base <commit>``: writes sent to both replicas
  at once, no order) is measured in turn in each round, and the ratio this/that printed;
- **repair**: ``--rows`` keys (100,000 by default) put through the proxy, one server
  killed (SIGKILL) and started again empty on its port; the time until the proxy shows it
  ``up`` again (it has copied every key it holds back), and the proxy's own figure from
  its log line ``holds its keys (N rows copied ... in S s)``.

The ``## Replicas`` section of ``bench/RESULTS.md`` is rewritten unless ``--no-write``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import msgpack

from bench._call_load import CallConnection
from bench._load import Window, percentile
from bench.results import replace_section
from bench.rpc import machine_note
from runtime.rpc.client import AsyncClient, Client
from runtime.testing import ServerProcess

REPO = Path(__file__).resolve().parent.parent
SECTION = "## Replicas"
CLUSTER = "bench"
KEYS = 10_000
#: (label, connections, calls in flight per connection, distinct keys)
SHAPES = (
    ("16 clients", 16, 1, KEYS),
    ("pipelined 64", 1, 64, KEYS),
    ("16 clients, one key", 16, 1, 1),
)


@dataclass
class Tree:
    """A checkout whose examples/kvs runs: this one, or the one compared with."""

    label: str
    root: Path

    def server(self, datadir: Path, port: int = 0) -> ServerProcess:
        kvs = self.root / "examples" / "kvs"
        args = ["--rpc-port", str(port), "--configpath", str(kvs / "config.json")]
        args += ["--datadir", str(datadir)]
        env = {"PYTHONPATH": str(self.root)}
        return ServerProcess(kvs / "kvs_impl.py", args, cwd=kvs, env=env)

    def proxy(self, servers: list[ServerProcess]) -> ServerProcess:
        kvs = self.root / "examples" / "kvs"
        members = ",".join(f"127.0.0.1:{s.port}" for s in servers)
        args = ["--rpc-port", "0", "--servers", members, "--timeout", "30"]
        env = {"PYTHONPATH": str(self.root)}
        return ServerProcess(kvs / "kvs_proxy.py", args, cwd=kvs, env=env)


def _bodies(keys: int) -> list[bytes]:
    method = msgpack.packb("put", use_bin_type=False)
    return [
        method + msgpack.packb([CLUSTER, f"key{i}", "v" * 16], use_bin_type=False)
        for i in range(keys)
    ]


async def _measure(
    port: int, connections: int, depth: int, keys: int, seconds: float
) -> dict[str, float]:
    bodies = _bodies(keys)
    loop = asyncio.get_running_loop()
    window = Window()
    conns = []
    for i in range(connections):
        start = i * len(bodies) // connections
        _, protocol = await loop.create_connection(
            functools.partial(CallConnection, bodies, depth, window, start), "127.0.0.1", port
        )
        conns.append(protocol)
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    window.measuring = True
    await asyncio.sleep(seconds)
    window.measuring = False
    elapsed = time.perf_counter() - started
    window.stopping = True
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    latencies = sorted(window.latencies_ns)
    return {
        "calls_per_s": window.calls / elapsed,
        "p50_us": percentile(latencies, 0.5),
        "errors": window.errors,
    }


def _ordered_writes(
    trees: list[Tree], seconds: float, rounds: int, datadir: Path
) -> dict[tuple[str, str], list[dict[str, float]]]:
    """Each shape, each round, every tree in turn: puts through its proxy."""
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with ExitStack() as stack:
        proxies = {}
        for tree in trees:
            servers = [stack.enter_context(tree.server(datadir)) for _ in range(2)]
            proxies[tree.label] = stack.enter_context(tree.proxy(servers))
        for shape, connections, depth, keys in SHAPES:
            for _ in range(rounds):
                for tree in trees:
                    port = proxies[tree.label].port
                    result = asyncio.run(_measure(port, connections, depth, keys, seconds))
                    results.setdefault((shape, tree.label), []).append(result)
                    print(
                        f"put {shape:20} {tree.label:8} {result['calls_per_s']:8.0f}/s  "
                        f"p50 {result['p50_us']:.0f} us  errors {result['errors']}",
                        flush=True,
                    )
    return results


async def _fill(port: int, rows: int) -> None:
    client = AsyncClient("127.0.0.1", port, timeout=60)
    try:
        for start in range(0, rows, 2000):
            calls = [
                client.call("put", [CLUSTER, f"row{i}", f"value{i}"])
                for i in range(start, min(rows, start + 2000))
            ]
            assert all(r is True for r in await asyncio.gather(*calls))
    finally:
        await client.close()


def _state(proxy: ServerProcess, server: ServerProcess) -> str:
    with Client("127.0.0.1", proxy.port, timeout=30) as client:
        (status,) = client.call("get_proxy_status", [CLUSTER]).values()
    key = f"server.127.0.0.1_{server.port}"
    value = status.get(key, status.get(key.encode(), b""))
    return value.decode() if isinstance(value, bytes) else str(value)


def _repair(rows: int, datadir: Path) -> dict[str, float]:
    """Fill two replicas, kill one, restart it empty: seconds until it is up again."""
    tree = Tree("this", REPO)
    with ExitStack() as stack:
        servers = [stack.enter_context(tree.server(datadir)) for _ in range(2)]
        proxy = stack.enter_context(tree.proxy(servers))
        started = time.perf_counter()
        asyncio.run(_fill(proxy.port, rows))
        fill = time.perf_counter() - started
        victim = servers[1]
        victim.kill()
        deadline = time.monotonic() + 30
        while not _state(proxy, victim).startswith("down"):
            assert time.monotonic() < deadline, "the proxy never saw the server go"
            time.sleep(0.05)
        empty = datadir / "empty"
        empty.mkdir(exist_ok=True)
        started = time.perf_counter()
        back = stack.enter_context(tree.server(empty, port=victim.port))
        listening = time.perf_counter() - started
        deadline = time.monotonic() + 600
        while _state(proxy, back) != "up":
            assert time.monotonic() < deadline, "the server never caught up"
            time.sleep(0.05)
        total = time.perf_counter() - started
        with Client("127.0.0.1", back.port, timeout=30) as direct:
            (status,) = direct.call("get_status", [CLUSTER]).values()
            held = int(status.get(b"num_keys", status.get("num_keys", 0)))
        repairs = re.findall(
            r"holds its keys \((\d+) rows copied.*? in ([\d.]+) s\)\n", proxy.log_text()
        )
        found = repairs[-1] if repairs else None  # the restarted one's (not a hand-off)
    return {
        "rows": rows,
        "fill_s": fill,
        "listening_s": listening,
        "up_s": total,
        "held": held,
        "copied": int(found[0]) if found else -1,
        "copy_s": float(found[1]) if found else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare-with", type=Path, default=None, metavar="DIR")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    trees = [Tree("this", REPO)]
    if args.compare_with is not None:
        trees.append(Tree("before", args.compare_with.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        writes = _ordered_writes(trees, args.seconds, args.rounds, Path(tmp))
        repair = _repair(args.rows, Path(tmp))
    lines = _report(writes, repair, trees, args)
    print("\n".join(lines))
    if not args.no_write:
        replace_section(SECTION, "\n".join(lines) + "\n")
    return 0


def _report(
    writes: dict[tuple[str, str], list[dict[str, float]]],
    repair: dict[str, float],
    trees: list[Tree],
    args: argparse.Namespace,
) -> list[str]:
    compare = f" --compare-with {args.compare_with}" if args.compare_with else ""
    lines = [
        SECTION,
        "",
        f"`python -m bench.replicas{compare}` on {datetime.date.today()}; {machine_note()}.",
        "kvs `put` (cht(2)) through a static proxy to two servers; `this` orders each key's",
        "writes at its primary (docs/operating.md, Replicas)"
        + (", `before` sends them to both replicas at once" if len(trees) > 1 else "")
        + f"; {args.rounds} rounds of {args.seconds:g} s, each tree in turn; the median"
        " round shown.",
        "",
        "| load | tree | puts/s | p50 µs | errors | this / before (median of rounds) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for shape, *_ in SHAPES:
        ours = writes[(shape, "this")]
        theirs = writes.get((shape, "before"))
        share = ""
        if theirs:
            pairs = zip(ours, theirs, strict=True)
            ratios = [a["calls_per_s"] / b["calls_per_s"] for a, b in pairs]
            share = f"{statistics.median(ratios):.2f}"
        for tree in trees:
            runs = writes[(shape, tree.label)]
            mid = sorted(runs, key=lambda r: r["calls_per_s"])[len(runs) // 2]
            shown = share if tree.label == "this" else ""
            lines.append(
                f"| {shape} | {tree.label} | {mid['calls_per_s']:.0f} | {mid['p50_us']:.0f} | "
                f"{sum(r['errors'] for r in runs)} | {shown} |"
            )
    lines += [
        "",
        f"Repair: {repair['rows']:,} keys on two replicas (filled in {repair['fill_s']:.1f} s);"
        " one killed and started again empty on its port: listening after"
        f" {repair['listening_s']:.1f} s, `up` in the proxy's status {repair['up_s']:.1f} s"
        f" after its start; the proxy copied {repair['copied']:,} rows in"
        f" {repair['copy_s']:.1f} s; the server then held {repair['held']:,} keys.",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
