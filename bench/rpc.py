"""RPC benchmark: Jubako's server against msgpack-rpc-python and a bare asyncio ceiling.

``python -m bench.rpc [--quick] [--no-write]`` starts each server in its own process (the
Jubako ``RpcServer``; msgpack-rpc-python 0.4.1 from the oracle venv; a bare asyncio +
msgpack 1.x server with the handler inline; and the Jubako server on uvloop when uvloop
is importable), then, for every payload size and load shape, runs the same load
generator (``bench._load``, its own process) against each server in turn, side by side.
It prints calls/s, p50/p99 latency and server CPU per call, the ratios Jubako/msgpackrpc
and Jubako/ceiling, and (unless ``--no-write`` or ``--quick``) rewrites the ``## RPC``
section of ``bench/RESULTS.md``.

``--compare-with DIR`` adds ``jubako@base``: the same Jubako server run from another
checkout (e.g. ``git worktree add /tmp/base HEAD~3``), measured in the same rounds, so a
change to the server is judged side by side with the code before it.

Load shapes: ``sequential`` (one connection, one call in flight), ``16 connections``
(one call in flight on each), ``pipelined`` (64 calls in flight on one connection).
Payloads: 8 B, 1 KiB, 64 KiB, echoed back. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ORACLE_PYTHON = REPO / ".venv-oracle" / "bin" / "python"
MSGPACKRPC_SERVER = REPO / "tests" / "compat" / "oracle_scripts" / "msgpackrpc_server.py"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## RPC"

#: One measurement, as ``bench._load`` prints it.
Measurement = dict[str, Any]
#: Measurements keyed by (payload label, load shape, server label).
Results = dict[tuple[str, str, str], Measurement]


@dataclass(frozen=True)
class Shape:
    name: str
    connections: int
    depth: int


SHAPES = (
    Shape("sequential", 1, 1),
    Shape("16 connections", 16, 1),
    Shape("pipelined 64", 1, 64),
)
PAYLOADS = ((8, "8 B"), (1024, "1 KiB"), (65536, "64 KiB"))


@dataclass(frozen=True)
class Server:
    label: str
    pid: int
    port: int
    log: Path


@contextmanager
def started(
    label: str, command: Sequence[str], log_dir: Path, cwd: Path = REPO
) -> Iterator[Server]:
    """Run a server process that prints ``PORT <n>``; stop it on exit.

    Its stderr goes to a file in ``log_dir`` (a pipe nobody reads would fill up and
    stall a server that logs, e.g. on every reset connection).
    """
    log_path = log_dir / (label.replace("/", "_").replace("+", "_") + ".log")
    with open(log_path, "w") as log_file:
        env = {**os.environ, "PYTHONPATH": str(cwd)} if cwd != REPO else None
        process = subprocess.Popen(
            list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            process.kill()
            process.wait(timeout=10)
            raise SystemExit(f"{label} did not start: {line!r}\n{log_path.read_text()}")
        yield Server(label, process.pid, int(line.split()[1]), log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def measure(
    server: Server, shape: Shape, payload: int, seconds: float, warmup: float
) -> Measurement:
    command = [
        sys.executable, "-m", "bench._load",
        "--port", str(server.port),
        "--connections", str(shape.connections),
        "--depth", str(shape.depth),
        "--payload", str(payload),
        "--seconds", str(seconds),
        "--warmup", str(warmup),
        "--server-pid", str(server.pid),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=seconds + warmup + 60
    )
    if done.returncode != 0:
        raise SystemExit(
            f"load generator failed against {server.label}:\n{done.stderr}\n"
            f"server log ({server.log}):\n{server.log.read_text()[-3000:]}"
        )
    result: Measurement = json.loads(done.stdout)
    if result["calls"] == 0:
        raise SystemExit(
            f"no call completed against {server.label}; server log ({server.log}):\n"
            f"{server.log.read_text()[-3000:]}"
        )
    return result


def server_commands(threads: int, base: Path | None) -> list[tuple[str, list[str], Path]]:
    jubako = [sys.executable, "-m", "bench._servers", "jubako", "--threads", str(threads)]
    commands = [
        ("jubako", jubako),
        (
            "jubako/nolock",
            [sys.executable, "-m", "bench._servers", "jubako", "--lock", "nolock"],
        ),
        ("msgpackrpc", [str(ORACLE_PYTHON), str(MSGPACKRPC_SERVER), "0"]),
        ("ceiling", [sys.executable, "-m", "bench._servers", "ceiling"]),
        ("ceiling/unbatched", [sys.executable, "-m", "bench._servers", "ceiling", "--unbatched"]),
    ]
    if importlib.util.find_spec("uvloop") is not None:
        commands.append(
            ("jubako+uvloop", [sys.executable, "-m", "bench._servers", "jubako", "--uvloop"])
        )
    placed = [(label, command, REPO) for label, command in commands]
    if base is not None:
        placed.insert(1, ("jubako@base", jubako, base))
    return placed


def best(previous: Measurement | None, current: Measurement) -> Measurement:
    """Keep the round with more calls/s (interference only ever slows a round down)."""
    if previous is None or current["calls_per_s"] > previous["calls_per_s"]:
        return current
    return previous


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def machine_note(*, with_loop: bool = True) -> str:
    load = os.getloadavg()
    note = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )
    return f"{note}, Jubako processes on the {event_loop()} event loop" if with_loop else note


def event_loop() -> str:
    """The loop Jubako server and proxy processes started by a benchmark run on."""
    choice = os.environ.get("JUBAKO_EVENT_LOOP", "auto")
    if choice == "auto":
        return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    return choice


def render(results: Results, labels: list[str], args: argparse.Namespace, note: str) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{args.command_line}`  ",
        f"Date: {args.date}  ",
        f"Machine: {note}. Other work shares these cores, so absolute figures are noisy;",
        "the ratios, measured side by side in one run, are what count.",
        "",
        f"Each cell: {args.warmup:g} s warm-up, then {args.seconds:g} s measured, in "
        f"{args.rounds} round(s)",
        "over all servers in turn; the round with the most calls/s is shown. The load",
        "generator is one raw-msgpack asyncio process (`bench/_load.py`), the same for every",
        "server. Server CPU per call = the server process's utime+stime over the window / calls.",
        "`ceiling` writes the replies to one read at once; `ceiling/unbatched` writes each reply",
        "by itself; `jubako/nolock` is the same Jubako server with the method's lock off.",
        "",
        "| payload | load | server | calls/s | p50 µs | p99 µs | server CPU µs/call |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for _, payload_label in PAYLOADS:
        for shape in SHAPES:
            for label in labels:
                r = results.get((payload_label, shape.name, label))
                if r is None:
                    continue
                lines.append(
                    f"| {payload_label} | {shape.name} | {label} | {r['calls_per_s']:,.0f} | "
                    f"{r['p50_us']:,.0f} | {r['p99_us']:,.0f} | "
                    f"{r['server_cpu_us_per_call']:.1f} |"
                )
    columns = [
        # (heading, numerator label, denominator label, measure)
        ("Jubako / msgpackrpc", "jubako", "msgpackrpc", "calls_per_s"),
        ("Jubako / ceiling", "jubako", "ceiling", "calls_per_s"),
        ("Jubako / ceiling unbatched", "jubako", "ceiling/unbatched", "calls_per_s"),
        ("CPU: Jubako / ceiling", "jubako", "ceiling", "server_cpu_us_per_call"),
        ("no lock / Jubako", "jubako/nolock", "jubako", "calls_per_s"),
        ("uvloop / Jubako", "jubako+uvloop", "jubako", "calls_per_s"),
        ("Jubako / Jubako@base", "jubako", "jubako@base", "calls_per_s"),
        ("CPU: Jubako / Jubako@base", "jubako", "jubako@base", "server_cpu_us_per_call"),
    ]
    columns = [c for c in columns if c[1] in labels and c[2] in labels]
    lines += [
        "",
        "Ratios (calls/s, except the CPU column: server CPU per call):",
        "",
        "| payload | load | " + " | ".join(c[0] for c in columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for _, payload_label in PAYLOADS:
        for shape in SHAPES:
            cells = []
            for _, top, bottom, measure in columns:
                a = results.get((payload_label, shape.name, top))
                b = results.get((payload_label, shape.name, bottom))
                cells.append(ratio(a[measure], b[measure]) if a and b else "-")
            if any(cell != "-" for cell in cells):
                lines.append(f"| {payload_label} | {shape.name} | " + " | ".join(cells) + " |")
    lines += ["", *targets(results)]
    return "\n".join(lines) + "\n"


def targets(results: Results) -> list[str]:
    """The project's targets for an 8-byte call, each marked met or missed."""
    out = ["Targets (8 B payload):", ""]
    for shape in SHAPES[1:]:
        j = results.get(("8 B", shape.name, "jubako"))
        m = results.get(("8 B", shape.name, "msgpackrpc"))
        c = results.get(("8 B", shape.name, "ceiling"))
        if not (j and m and c):
            continue
        checks = [
            ("Jubako / msgpackrpc >= 2.5", j["calls_per_s"] / m["calls_per_s"], 2.5, True),
            ("Jubako / ceiling >= 0.7", j["calls_per_s"] / c["calls_per_s"], 0.7, True),
            (
                "server CPU per call Jubako / ceiling <= 1.5",
                j["server_cpu_us_per_call"] / c["server_cpu_us_per_call"],
                1.5,
                False,
            ),
        ]
        for text, value, limit, at_least in checks:
            met = value >= limit if at_least else value <= limit
            out.append(f"- {shape.name}: {text}: {value:.2f}, {'met' if met else 'missed'}")
    return out


END_MARK = "<!-- end of the figures written by bench/rpc.py; notes below are kept -->"


def write_section(text: str) -> None:
    """Rewrite the figures of the ``## RPC`` section of RESULTS.md.

    Other sections are left alone, and so are the notes after :data:`END_MARK` inside the
    RPC section (hand-written analysis survives a re-run).
    """
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    figures = text.rstrip("\n") + "\n\n" + END_MARK + "\n"
    if start is None:
        new = old.rstrip("\n") + "\n\n" + figures
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        section = lines[start:end]
        mark = next((i for i, line in enumerate(section) if line.rstrip() == END_MARK), None)
        notes = "".join(section[mark + 1 :]) if mark is not None else ""
        tail = "".join(lines[end:])
        body = figures + notes
        new = "".join(lines[:start]) + body.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
    RESULTS.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter cells; no RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--threads", type=int, default=2, help="Jubako server --thread")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (best one counts)")
    parser.add_argument("--payloads", default="", help="comma-separated subset, e.g. 8,1024")
    parser.add_argument("--servers", default="", help="comma-separated subset of server labels")
    parser.add_argument(
        "--compare-with",
        type=Path,
        default=None,
        metavar="DIR",
        help="another checkout whose Jubako server runs beside this one as jubako@base",
    )
    args = parser.parse_args(argv)
    args.seconds, args.warmup = (0.6, 0.2) if args.quick else (1.0, 0.3)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    args.command_line = "python -m bench.rpc" + (" " + shlex.join(argv) if argv else "")
    if argv is None and len(sys.argv) > 1:
        args.command_line = "python -m bench.rpc " + shlex.join(sys.argv[1:])
    args.date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    if not ORACLE_PYTHON.exists():
        raise SystemExit(f"{ORACLE_PYTHON} is missing: run `make oracle` first")
    payloads: tuple[tuple[int, str], ...] = PAYLOADS
    if args.payloads:
        wanted = {int(p) for p in args.payloads.split(",")}
        payloads = tuple(p for p in PAYLOADS if p[0] in wanted)
    note = machine_note(with_loop=False)
    print(note, flush=True)
    results: Results = {}
    began = time.monotonic()
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-rpc-")))
        chosen = set(args.servers.split(",")) if args.servers else None
        servers = [
            stack.enter_context(started(label, command, log_dir, cwd))
            for label, command, cwd in server_commands(args.threads, args.compare_with)
            if chosen is None or label in chosen
        ]
        labels = [s.label for s in servers]
        for round_number in range(1, args.rounds + 1):
            for payload, payload_label in payloads:
                for shape in SHAPES:
                    for server in servers:
                        r = measure(server, shape, payload, args.seconds, args.warmup)
                        key = (payload_label, shape.name, server.label)
                        results[key] = best(results.get(key), r)
                        print(
                            f"{round_number} {payload_label:>7} {shape.name:<15} "
                            f"{server.label:<18} "
                            f"{r['calls_per_s']:>9,.0f} calls/s  p50 {r['p50_us']:>8,.0f} µs  "
                            f"p99 {r['p99_us']:>8,.0f} µs  server "
                            f"{r['server_cpu_us_per_call']:6.1f} µs/call  client "
                            f"{r['client_cpu_us_per_call']:5.1f} µs/call"
                            + (f"  errors {r['errors']}" if r["errors"] else ""),
                            flush=True,
                        )
    text = render(results, labels, args, note)
    print()
    print(text)
    print(f"total {time.monotonic() - began:.0f} s")
    if not (args.quick or args.no_write):
        write_section(text)
        print(f"wrote the {SECTION!r} section of {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
