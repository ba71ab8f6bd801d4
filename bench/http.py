"""HTTP gateway benchmark: the generated gateway beside direct msgpack-rpc, in one run.

``python -m bench.http [--seconds S] [--batch N] [--no-write]`` starts a kvs server, a
classifier server and a gateway (``generated/http``) in front of each, then measures:

- online: calls/s and p50/p99 of kvs ``get`` and classifier ``classify`` (one datum)
  through the gateway and straight to the server, sequential and 16 clients, with the
  same closed-loop load generator (prebuilt requests, one call in flight per connection);
  the ratio and the gateway's added p50;
- batch: ``classify`` of N datums (default 100k) as one job against the best of a few
  pipeline depths of a direct client sending the same calls, and how often the job's
  progress figures moved while it ran;
- store: the time a gateway killed with -9 mid-job (N stored inputs) takes to run again:
  start to serving, and start to the next stored result.

It rewrites the ``## HTTP`` section of ``bench/RESULTS.md`` unless ``--no-write``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import random
import signal
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import msgpack

from bench.results import replace_section
from bench.rpc import machine_note, ratio
from runtime.rpc.client import AsyncClient
from runtime.testing import ServerProcess

REPO = Path(__file__).resolve().parent.parent
SECTION = "## HTTP"
FEATURES = 10
CLASSIFIER_CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {"num_rules": [{"key": "*", "type": "num"}]},
}


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000 if ordered else 0.0


class _Conn(asyncio.Protocol):
    """One connection of the closed-loop generator: a request, its reply, the next."""

    def __init__(
        self, make: Callable[[int], bytes], parse: Callable[[_Conn], int], stats: dict[str, Any]
    ) -> None:
        self.make, self.parse, self.stats = make, parse, stats
        self.buffer = bytearray()
        self.sent = 0
        self.seq = 0
        self.transport: asyncio.Transport | None = None
        self.unpacker = msgpack.Unpacker(raw=True)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send()

    def send(self) -> None:
        if self.stats["stop"] or self.transport is None:
            return
        self.seq += 1
        self.sent = time.perf_counter_ns()
        self.transport.write(self.make(self.seq))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = self.parse(self)
        for _ in range(replies):
            if self.stats["measuring"]:
                self.stats["latencies"].append(time.perf_counter_ns() - self.sent)
            self.send()


def _parse_rpc(conn: _Conn) -> int:
    conn.unpacker.feed(bytes(conn.buffer))
    conn.buffer.clear()
    count = 0
    for reply in conn.unpacker:
        if reply[2] is not None:
            conn.stats["errors"] += 1
        count += 1
    return count


def _parse_http(conn: _Conn) -> int:
    count = 0
    while True:
        head_end = conn.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return count
        head = bytes(conn.buffer[:head_end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        end = head_end + 4 + length
        if len(conn.buffer) < end:
            return count
        if not head.startswith(b"http/1.1 200"):
            conn.stats["errors"] += 1
        del conn.buffer[:end]
        count += 1


async def closed_loop(port: int, make: Callable[[int], bytes], parse: Callable[[_Conn], int],
                      connections: int, seconds: float) -> dict[str, float]:  # fmt: skip
    """Calls/s and p50/p99 (µs) of ``connections`` connections for ``seconds``."""
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {"stop": False, "measuring": False, "latencies": [], "errors": 0}
    transports = []
    for _ in range(connections):
        transport, _ = await loop.create_connection(
            lambda: _Conn(make, parse, stats), "127.0.0.1", port
        )
        transports.append(transport)
    await asyncio.sleep(min(1.0, seconds / 3))  # warm up
    stats["measuring"] = True
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    stats["measuring"] = False
    elapsed = time.perf_counter() - start
    stats["stop"] = True
    await asyncio.sleep(0.1)
    for transport in transports:
        transport.close()
    latencies = stats["latencies"]
    return {"rate": len(latencies) / elapsed, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "errors": stats["errors"]}  # fmt: skip


def rpc_request(method: str, params: list[Any]) -> Callable[[int], bytes]:
    tail = msgpack.packb(method, use_bin_type=False) + msgpack.packb(params, use_bin_type=False)
    return lambda seq: b"\x94\x00" + msgpack.packb(seq % (1 << 31)) + tail


def http_request(path: str, body: dict[str, Any]) -> Callable[[int], bytes]:
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n\r\n").encode()  # fmt: skip
    request = head + data
    return lambda seq: request


def datum(rng: random.Random) -> dict[str, float]:
    return {f"f{i}": round(rng.gauss(0, 1), 4) for i in range(FEATURES)}


def wire_datum(values: dict[str, float]) -> list[Any]:
    return [[], [[k, v] for k, v in values.items()], []]


async def direct_pipelined(port: int, params: list[list[Any]], depth: int) -> float:
    """Calls/s of ``classify`` calls sent with at most ``depth`` in flight."""
    client = AsyncClient("127.0.0.1", port, timeout=60)
    await client.call("get_labels", [""])
    slots = asyncio.Semaphore(depth)
    done = asyncio.Event()
    left = [len(params)]

    def reply(error: object, result: object) -> None:
        slots.release()
        left[0] -= 1
        if left[0] == 0:
            done.set()

    start = time.perf_counter()
    for item in params:
        await slots.acquire()
        if not client.call_soon("classify", ["", [item]], reply):
            await client.call("classify", ["", [item]])
            reply(None, None)
    await done.wait()
    elapsed = time.perf_counter() - start
    await client.close()
    return len(params) / elapsed


def gateway(service: str, upstream: int, datadir: Path, *extra: str) -> ServerProcess:
    args = ["--port", "0", "--upstream", f"127.0.0.1:{upstream}", "--datadir", str(datadir),
            "--log-level", "warning", *extra]  # fmt: skip
    env = {"PYTHONPATH": str(REPO)}
    return ServerProcess(REPO / "generated/http" / f"{service}_http.py", args, env=env,
                         log_path=datadir / f"{service}-gateway.log").start()  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per online measurement")
    parser.add_argument("--batch", type=int, default=100_000, help="datums in the batch job")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    note = machine_note(with_loop=False)
    uptime = Path("/proc/loadavg").read_text().split()[:3]
    rng = random.Random(7)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        (tmp / "kvs.json").write_text("{}")
        (tmp / "classifier.json").write_text(json.dumps(CLASSIFIER_CONFIG))
        kvs = stack.enter_context(ServerProcess(
            REPO / "examples/kvs/kvs_impl.py",
            ["--rpc-port", "0", "--configpath", str(tmp / "kvs.json"), "--datadir", str(tmp)],
            cwd=REPO / "examples/kvs", log_path=tmp / "kvs.log"))  # fmt: skip
        classifier = stack.enter_context(ServerProcess(
            REPO / "engines/classifier/classifier_impl.py",
            ["--rpc-port", "0", "--configpath", str(tmp / "classifier.json"),
             "--datadir", str(tmp)],
            log_path=tmp / "classifier.log"))  # fmt: skip
        kvs_gw = gateway("kvs", kvs.port, tmp)
        cl_gw = gateway("classifier", classifier.port, tmp)
        stack.callback(kvs_gw.stop)
        stack.callback(cl_gw.stop)
        kvs_url, cl_url = f"http://127.0.0.1:{kvs_gw.port}", f"http://127.0.0.1:{cl_gw.port}"
        httpx.post(f"{kvs_url}/v1/put", json={"key": "key", "value": "v" * 8})
        train = [{"label": f"c{i % 4}", "data": datum(rng)} for i in range(2000)]
        httpx.post(f"{cl_url}/v1/train", json={"data": train}, timeout=60)
        one = datum(rng)

        online = []
        cases = [
            ("kvs get", kvs.port, kvs_gw.port, rpc_request("get", ["", "key"]),
             http_request("/v1/get", {"key": "key"})),
            ("classify (1 datum)", classifier.port, cl_gw.port,
             rpc_request("classify", ["", [wire_datum(one)]]),
             http_request("/v1/classify", {"data": [one]})),
        ]  # fmt: skip
        for label, direct_port, http_port, rpc, http in cases:
            for shape, connections in (("sequential", 1), ("16 clients", 16)):
                direct = asyncio.run(
                    closed_loop(direct_port, rpc, _parse_rpc, connections, args.seconds)
                )
                gw = asyncio.run(
                    closed_loop(http_port, http, _parse_http, connections, args.seconds)
                )
                online.append((label, shape, direct, gw))
                print(label, shape, "direct", direct, "gateway", gw, flush=True)

        # Batch: the same calls, one datum each, direct (best depth) and as one job.
        datums = [datum(rng) for _ in range(args.batch)]
        params = [wire_datum(d) for d in datums]
        sample = params[:20000]
        depths = {
            d: asyncio.run(direct_pipelined(classifier.port, sample, d)) for d in (16, 64, 256)
        }
        best_depth = max(depths, key=lambda d: depths[d])
        direct_rate = asyncio.run(direct_pipelined(classifier.port, params, best_depth))
        print("direct pipelined", depths, "best", best_depth, direct_rate, flush=True)
        body = "".join(json.dumps({"data": [d]}) + "\n" for d in datums).encode()
        started = time.perf_counter()
        reply = httpx.post(f"{cl_url}/v1/jobs/classify", content=body, timeout=600)
        stored = time.perf_counter() - started
        job = reply.json()["job"]
        t0, accepted = time.perf_counter(), time.time()
        moves: list[float] = []
        last_done = -1
        while True:
            status = httpx.get(f"{cl_url}/v1/jobs/{job}").json()
            now = time.perf_counter()
            if status["done"] != last_done:
                moves.append(now)
                last_done = status["done"]
            if status["state"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.2)
        # From the 202 to the end the gateway recorded (same clock): the 0.2 s polls would
        # add up to 0.2 s to a job of a few seconds.
        job_seconds = (
            status["finished"] - accepted if status.get("finished") else time.perf_counter() - t0
        )
        job_rate = args.batch / job_seconds
        gaps = [b - a for a, b in itertools.pairwise(moves)]
        max_gap = max(gaps) if gaps else 0.0
        print("job", status["state"], job_rate, "stored in", stored, "max gap", max_gap, flush=True)
        results = httpx.get(f"{cl_url}/v1/jobs/{job}/results", timeout=600).text.count("\n")

        # Store: kill -9 a gateway mid-job with N stored inputs; time its restart.
        datadir = tmp / "resume"
        datadir.mkdir()
        gets = "".join(json.dumps({"key": "key"}) + "\n" for _ in range(args.batch)).encode()
        slow = ("--job-concurrency", "1", "--job-chunk", "64")
        victim = gateway("kvs", kvs.port, datadir, *slow)
        url = f"http://127.0.0.1:{victim.port}"
        job = httpx.post(f"{url}/v1/jobs/get", content=gets, timeout=600).json()["job"]
        while httpx.get(f"{url}/v1/jobs/{job}").json()["done"] < args.batch // 10:
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        before = time.perf_counter()
        revived = gateway("kvs", kvs.port, datadir, *slow)
        serving = time.perf_counter() - before
        url = f"http://127.0.0.1:{revived.port}"
        at_kill = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = httpx.get(f"{url}/v1/jobs/{job}").json()
            if at_kill is None:
                at_kill = status["done"]
            elif status["done"] > at_kill or status["state"] != "running":
                break
            time.sleep(0.005)
        resumed = time.perf_counter() - before
        revived.stop()

    today = datetime.date.today().isoformat()
    lines = [
        SECTION, "",
        f"`python -m bench.http --seconds {args.seconds:g} --batch {args.batch}` on {today}; "
        f"{note} (`uptime` load {' '.join(uptime)} at start). Server, gateway and load "
        "generator share the 2 cores; the same closed-loop generator (prebuilt requests, one "
        "call in flight per connection) drives the server directly and through the gateway.",
        "",
        "| call | load | direct calls/s | gateway calls/s | gateway/direct | direct p50/p99 µs "
        "| gateway p50/p99 µs | added p50 µs |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for label, shape, direct, gw in online:
        lines.append(
            f"| {label} | {shape} | {direct['rate']:.0f} | {gw['rate']:.0f} | "
            f"{ratio(gw['rate'], direct['rate'])} | {direct['p50']:.0f}/{direct['p99']:.0f} | "
            f"{gw['p50']:.0f}/{gw['p99']:.0f} | {gw['p50'] - direct['p50']:.0f} |"
        )
    depth_text = ", ".join(f"depth {d}: {r:.0f}/s" for d, r in depths.items())
    lines += [
        "",
        f"Batch: `classify` of {args.batch} datums ({FEATURES} numbers each), one datum per call. "
        f"Direct, pipelined ({depth_text} on the first 20000; best depth {best_depth}): "
        f"**{direct_rate:.0f} calls/s**. As one job (default `--job-concurrency 256 "
        f"--job-chunk 1024`): **{job_rate:.0f} inputs/s** (from the 202 to the end the "
        "gateway recorded), "
        f"ratio **{ratio(job_rate, direct_rate)}** "
        f"(target ≥ 0.70); the upload was validated and stored in {stored:.2f} s (202), "
        f"{results} result lines streamed back; the progress figures moved {len(moves)} times, "
        f"at most {max_gap:.2f} s apart (polled every 0.2 s).",
        "",
        f"Store: a gateway killed with -9 when {args.batch // 10} of {args.batch} stored `get` "
        f"inputs were done: restarted on the same `--datadir`, it served again after "
        f"{serving:.2f} s (process start, store opened, interrupted inputs found) and stored "
        f"its next result {resumed:.2f} s after the restart began.",
    ]
    block = "\n".join(lines) + "\n"
    print(block)
    if not args.no_write:
        replace_section(SECTION, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
