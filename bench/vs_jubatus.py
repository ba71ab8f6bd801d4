"""Jubako's classifier beside Jubatus's own C++ ``jubaclassifier``, side by side in one run.

``python -m bench.vs_jubatus [--rounds 3] [--seconds 1] [--loops asyncio,uvloop]
[--calls get_status,classify,train,classify100] [--placements free,same,apart]
[--compare-with DIR] [--no-write]``

Over RPC: Jubatus's server (its default 2 threads, built per ``shared/reference``; found at
``--jubatus-run``), and ``jubaclassifier`` on each event loop of ``--loops``, plus one on the
last loop with ``"jubako": {"train": "queued"}`` (fire-and-forget ``train``), and with
``--compare-with DIR`` the ``jubaclassifier`` of another checkout (``@base``: the code
before a change, on asyncio). Every server gets the same config (AROW, one ``space``
string rule and a ``num`` rule) and is trained on the same 300 examples first. For each
call and load, every server in turn is driven by the same lean closed-loop client
(``bench._call_load``: its own process, old-spec strings, replies decoded in full) for
``--seconds`` after a warm-up, in ``--rounds`` rounds; the median round counts. Calls: a
``get_status``, a ``classify`` of 1 datum (1 string of three words, 3 numbers), a
``train`` of 1 datum, a ``classify`` of 100 datums; loads: 1 connection, 16 connections,
1 connection with 64 calls pipelined.

Placements (``--placements``; every server in turn gets the same one, see
:mod:`bench.placement`): ``free`` leaves the client and the server to the scheduler;
``same`` pins both (every thread of the server) to CPU 0, ``apart`` the client to CPU 0
and the server to CPU 1.

In process (``--skip-engine`` leaves it out): the AROW model on the ``digits`` rows of the
oracle goldens (scikit-learn's data set, 400 training rows and 100 held out), trained one
datum per call and classifying one datum per call, against Jubatus's C++ core through
``embedded_jubatus`` (``--core-python``), with the predicted label of every held-out row
compared.

When the C++ server or core is absent the bench says so and prints only Jubako's columns.
It rewrites the ``## vs Jubatus`` section of ``bench/RESULTS.md`` unless ``--no-write``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._call_load import labeled
from bench.placement import PLACEMENTS, check, pin, pin_self
from bench.results import replace_section
from bench.rpc import machine_note
from runtime.rpc.client import Client
from runtime.testing import ServerProcess

REPO = Path(__file__).resolve().parents[1]
SECTION = "## vs Jubatus"
DEFAULT_RUN = Path("/work/jubatus-ref/server/run_server.sh")
DEFAULT_CORE = Path("/work/jubatus-ref/core/venv/bin/python")
CORE_SCRIPT = REPO / "bench" / "oracle" / "classifier_core.py"
IMPL = Path("engines") / "classifier" / "classifier_impl.py"
CONVERTER = {
    "string_filter_types": {},
    "string_filter_rules": [],
    "num_filter_types": {},
    "num_filter_rules": [],
    "string_types": {},
    "string_rules": [{"key": "*", "type": "space", "sample_weight": "bin", "global_weight": "bin"}],
    "num_types": {},
    "num_rules": [{"key": "*", "type": "num"}],
}
CONFIG = {"method": "AROW", "parameter": {"regularization_weight": 1.0}, "converter": CONVERTER}
SHAPES = (("1 connection", 1, 1), ("16 connections", 16, 1), ("1 connection, 64 pipelined", 1, 64))
CALLS = {
    "get_status": "`get_status`",
    "classify": "`classify` of 1 datum",
    "train": "`train` of 1 datum",
    "classify100": "`classify` of 100 datums",
}
PRETRAIN = 300


@dataclass
class Server:
    label: str
    port: int
    pid: int
    only: tuple[str, ...] = ()  # the calls it is measured on (empty: all)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def jubatus_server(run: Path, config: Path, log: Path) -> Iterator[Server]:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(run), "classifier", "--rpc-port", str(port), "--configpath", str(config),
             "-b", "127.0.0.1", "--thread", "2"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                Client("127.0.0.1", port, timeout=1).call("get_status", ["bench"])
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"Jubatus's server did not start; see {log}") from None
                time.sleep(0.1)
        yield Server("jubatus", port, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def jubako_server(
    label: str, loop: str, config: Path, tmp: Path, root: Path = REPO, only: tuple[str, ...] = ()
) -> Iterator[Server]:
    env = {"PYTHONPATH": str(root)} if root != REPO else None
    args = ["--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp),
            "--event-loop", loop]  # fmt: skip
    process = ServerProcess(
        root / IMPL, args, log_path=tmp / f"{label.replace('/', '_')}.log", env=env, cwd=root
    )
    with process:
        yield Server(label, process.port, process.pid, only)


def pretrain(server: Server) -> None:
    client = Client("127.0.0.1", server.port, timeout=60)
    try:
        for i in range(PRETRAIN):
            client.call("train", ["bench", [labeled(i)]])
    finally:
        client.close()


def measure(
    server: Server,
    call: str,
    connections: int,
    depth: int,
    args: argparse.Namespace,
    client_cpus: set[int] | None = None,
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench._call_load", "--port", str(server.port), "--call", call,
        "--connections", str(connections), "--depth", str(depth),
        "--seconds", str(args.seconds), "--warmup", str(args.warmup),
        "--server-pid", str(server.pid),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: pin_self(client_cpus),
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"load against {server.label} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["errors"]:
        raise SystemExit(f"{server.label} answered {call} with errors: {result['first_error']}")
    return result


def rpc_table(
    args: argparse.Namespace, tmp: Path
) -> tuple[dict[tuple[str, str, str], float], list[str], str]:
    config = tmp / "classifier.json"
    config.write_text(json.dumps(CONFIG))
    queued = tmp / "queued.json"
    queued.write_text(json.dumps({**CONFIG, "jubako": {"train": "queued"}}))
    loops = [loop for loop in args.loops.split(",") if loop]
    if "uvloop" in loops and importlib.util.find_spec("uvloop") is None:
        print("uvloop is not installed: Jubako runs on asyncio only", flush=True)
        loops = [loop for loop in loops if loop != "uvloop"]
    calls = args.calls.split(",")
    results: dict[tuple[str, str, str], list[float]] = {}
    note = ""
    with ExitStack() as stack:
        servers: list[Server] = []
        if args.jubatus_run.exists():
            servers.append(
                stack.enter_context(jubatus_server(args.jubatus_run, config, tmp / "jubatus.log"))
            )
        else:
            note = f"Jubatus's server is absent ({args.jubatus_run}): only Jubako's columns."
            print(note, flush=True)
        for loop in loops:
            servers.append(stack.enter_context(jubako_server(f"jubako/{loop}", loop, config, tmp)))
        if loops and "train" in calls:
            servers.append(
                stack.enter_context(
                    jubako_server(
                        f"jubako/{loops[-1]}/queued", loops[-1], queued, tmp, only=("train",)
                    )
                )
            )
        if args.compare_with is not None:
            servers.append(
                stack.enter_context(
                    jubako_server(
                        "jubako@base/asyncio", "asyncio", config, tmp, root=args.compare_with
                    )
                )
            )
        for server in servers:
            pretrain(server)
        for round_number in range(1, args.rounds + 1):
            for call in calls:
                for shape, connections, depth, placement in loads(args):
                    server_cpus, client_cpus, _ = PLACEMENTS[placement]
                    for server in servers:
                        if server.only and call not in server.only:
                            continue
                        pin(server.pid, server_cpus)
                        r = measure(server, call, connections, depth, args, client_cpus)
                        results.setdefault((call, shape, server.label), []).append(r["calls_per_s"])
                        print(
                            f"{round_number} {call:<11} {shape:<27} {server.label:<22} "
                            f"{r['calls_per_s']:>9,.0f} calls/s  p50 {r['p50_us']:>8,.0f} µs  "
                            f"server {r['server_cpu_us_per_call']:7.1f} µs/call",
                            flush=True,
                        )
        labels = [server.label for server in servers]
    medians = {key: statistics.median(values) for key, values in results.items()}
    return medians, labels, note


def loads(args: argparse.Namespace) -> list[tuple[str, int, int, str]]:
    """Every load of :data:`SHAPES` in every placement asked for, named for the table."""
    return [
        (
            shape + (f", {name}" if (name := PLACEMENTS[placement][2]) else ""),
            connections,
            depth,
            placement,
        )
        for placement in args.placements.split(",")
        for shape, connections, depth in SHAPES
    ]


def engine_speed(args: argparse.Namespace) -> dict[str, Any]:
    """In process: Jubako's model and Jubatus's core on the digits rows."""
    from engines.classifier.model import ClassifierModel
    from runtime import Datum
    from tests.oracle.goldens import golden

    data = golden("classifier")["datasets"]["digits"]
    split = data["split"]
    train = list(zip(data["labels"][:split], data["rows"][:split], strict=True))
    test = data["rows"][split:]
    config = {
        "method": "AROW",
        "parameter": {"regularization_weight": 1.0},
        "converter": {"num_rules": [{"key": "*", "type": "num"}]},
    }
    passes = args.passes
    model = ClassifierModel(config)
    examples = [(label, Datum(row)) for label, row in train]
    queries = [Datum(row) for row in test]
    started = time.perf_counter()
    for _ in range(passes):
        for example in examples:
            model.train([example])
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(passes * 4):
        for query in queries:
            model.classify([query])
    classify_seconds = time.perf_counter() - started
    mine = [max(row, key=lambda r: r[1])[0] for row in model.classify(queries)]
    out: dict[str, Any] = {
        "trains": passes * len(examples),
        "classifies": passes * 4 * len(queries),
        "jubako_train_s": train_seconds,
        "jubako_classify_s": classify_seconds,
    }
    if not args.core_python.exists():
        print(f"Jubatus's core is absent ({args.core_python}): only Jubako's figures", flush=True)
        return out
    job = {"config": config, "train": train, "test": test, "passes": passes}
    done = subprocess.run(
        [str(args.core_python), str(CORE_SCRIPT)],
        input=json.dumps(job), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the core's run failed:\n{done.stderr}")
    theirs = json.loads(done.stdout)
    out["core_train_s"] = theirs["train_seconds"]
    out["core_classify_s"] = theirs["classify_seconds"]
    out["same_predictions"] = sum(a == b for a, b in zip(mine, theirs["predictions"], strict=True))
    out["rows"] = len(mine)
    return out


def render(
    medians: dict[tuple[str, str, str], float],
    labels: list[str],
    note: str,
    engine: dict[str, Any] | None,
    args: argparse.Namespace,
    machine: str,
) -> str:
    jubakos = [label for label in labels if label.startswith("jubako") and "queued" not in label]
    lines = [
        SECTION,
        "",
        f"Command: `{args.command_line}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
        f"Machine: {machine}. Other agents' tests and benches share these 2 cores: absolute",
        "figures move by up to 2x between runs; the ratios, measured side by side in one run, are",
        "what count.",
        "",
        f"Calls/s, the median of {args.rounds} rounds of {args.seconds:g} s (after a"
        f" {args.warmup:g} s warm-up), every server in turn under the same lean client"
        " (`bench/_call_load.py`: closed loop, old-spec strings, replies decoded). Jubatus:"
        " its C++ `jubaclassifier` 1.1.1, 2 threads. AROW, a `space` and a `num` rule; a datum"
        " is 1 string of three words and 3 numbers; every server trained on the same 300"
        " examples first. *ratio* = Jubako / Jubatus. Loads marked *one CPU* pin the client"
        " and the server to the same CPU, *CPUs apart* to different ones (every server"
        " alike); the others leave them to the scheduler (see the notes).",
        "",
    ]
    if note:
        lines += [note, ""]
    header = "| call | load |"
    rule = "|---|---|"
    have_jubatus = "jubatus" in labels
    if have_jubatus:
        header += " Jubatus |"
        rule += "---:|"
    for label in jubakos:
        header += f" {label} |" + (" ratio |" if have_jubatus else "")
        rule += "---:|" + ("---:|" if have_jubatus else "")
    lines += [header, rule]
    for call, title in CALLS.items():
        for shape, _, _, _ in loads(args):
            if (call, shape, jubakos[0]) not in medians:
                continue
            row = f"| {title} | {shape} |"
            base = medians.get((call, shape, "jubatus"))
            if have_jubatus:
                row += f" {base:,.0f} |" if base else " - |"
            for label in jubakos:
                value = medians[(call, shape, label)]
                row += f" {value:,.0f} |"
                if have_jubatus:
                    row += f" {value / base:.2f} |" if base else " - |"
            lines.append(row)
    queued = [label for label in labels if label.endswith("/queued")]
    if queued:
        label = queued[0]
        lines += ["", f"`train` of 1 datum, fire-and-forget (`{label}`: answered once queued):", ""]
        lines += [
            "| load | calls/s | ratio to Jubatus | ratio to applied (same loop) |",
            "|---|---:|---:|---:|",
        ]
        applied = label.removesuffix("/queued")
        for shape, _, _, _ in loads(args):
            queued_rate = medians.get(("train", shape, label))
            if queued_rate is None:
                continue
            value = queued_rate
            base = medians.get(("train", shape, "jubatus"))
            same = medians.get(("train", shape, applied))
            lines.append(
                f"| {shape} | {value:,.0f} | {f'{value / base:.2f}' if base else '-'} |"
                f" {f'{value / same:.2f}' if same else '-'} |"
            )
    if engine is not None:
        lines += [
            "",
            f"In process, AROW on the `digits` rows of the oracle goldens: {engine['trains']:,}"
            f" `train` calls of one datum, then {engine['classifies']:,} `classify` calls of one"
            " datum (calls/s):",
            "",
            "| call | Jubako's model | Jubatus's core | ratio |",
            "|---|---:|---:|---:|",
        ]
        for call, count in (("train", "trains"), ("classify", "classifies")):
            mine = engine[count] / engine[f"jubako_{call}_s"]
            core = engine.get(f"core_{call}_s")
            theirs = engine[count] / core if core else None
            lines.append(
                f"| {call} | {mine:,.0f} | {f'{theirs:,.0f}' if theirs else '-'} |"
                f" {f'{mine / theirs:.2f}' if theirs else '-'} |"
            )
        if "same_predictions" in engine:
            lines += [
                "",
                f"Same predicted label on {engine['same_predictions']} of {engine['rows']}"
                " held-out rows.",
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--calls", default=",".join(CALLS))
    parser.add_argument(
        "--placements", default="free,same,apart", help="of " + ",".join(PLACEMENTS)
    )
    parser.add_argument("--passes", type=int, default=5, help="in process: passes over the rows")
    parser.add_argument("--jubatus-run", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--core-python", type=Path, default=DEFAULT_CORE)
    parser.add_argument("--compare-with", type=Path, default=None, metavar="DIR")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    problem = check(args.placements.split(","))
    if problem:
        parser.error(f"--placements: {problem}")
    raw = sys.argv[1:] if argv is None else argv
    args.command_line = "python -m bench.vs_jubatus" + (" " + shlex.join(raw) if raw else "")
    machine = machine_note(with_loop=False)
    print(machine, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-vs-jubatus-") as tmp:
        medians, labels, note = rpc_table(args, Path(tmp))
    engine = None if args.skip_engine else engine_speed(args)
    text = render(medians, labels, note, engine, args, machine)
    print()
    print(text)
    if not args.no_write:
        replace_section(SECTION, text)
        print(f"wrote the {SECTION!r} section of bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
