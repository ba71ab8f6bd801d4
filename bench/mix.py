"""Mix benchmark: linear-mixer round time vs model size and members; reads during a round
and during training; train throughput; memory; classifier throughput.

``python -m bench.mix [--sizes 1000,10000,100000] [--members 2,3,4] [--seconds S]
[--compare-with DIR] [--no-write]`` starts a private ZooKeeper and ``jubaclassifier``
servers (mix triggers off), and for each member count and model size: clears the model,
trains every server on its share of ``size`` distinct features (each feature for two
labels), probes a member (not the master) with one-datum ``classify`` calls back to back
for a second, then times one ``do_mix`` from the client while the probe goes on, and reads
the master's own figures (``mix.last_seconds``, ``mix.last_bytes``) from ``get_status``:
the slowest ``classify`` during the round and the p99 during it against the p99 outside it.

Then, on standalone servers: ``classify`` throughput (16 connections) alone and while one
client trains at full speed (64 ``train`` calls in flight); ``train`` throughput answered
when applied and fire-and-forget (``"jubako": {"train": "queued"}``); the resident memory
of a 1e5-feature model; and the train and classify throughput in examples/s (batches of
100 examples of 20 numeric features, one client) beside the same model in process.

``--compare-with DIR`` runs the same servers from another checkout beside these (``@base``:
the code before a change, e.g. ``git archive <commit> | tar -x -C DIR``), in the same run.
It rewrites the ``## Mix`` section of ``bench/RESULTS.md`` unless ``--no-write``. Not part
of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench._load import resident_mib
from bench.results import replace_section
from bench.rpc import machine_note, ratio
from engines.classifier import classifier_types as types
from engines.classifier.classifier_client import Classifier
from engines.classifier.model import ClassifierModel
from runtime.testing import ManagedZooKeeper, ServerProcess
from runtime.wire.datum import Datum

SECTION = "## Mix"
REPO = Path(__file__).resolve().parents[1]
IMPL = Path("engines") / "classifier" / "classifier_impl.py"
CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {"num_rules": [{"key": "*", "type": "num"}]},
}
FEATURES_PER_EXAMPLE = 100
BATCH = 100
#: Seconds the probe classifies before a round, for the p99 outside one.
OUTSIDE_SECONDS = 1.0


def _examples(features: range) -> list[types.LabeledDatum]:
    """Examples covering ``features``: FEATURES_PER_EXAMPLE each, labels alternating."""
    keys = [f"f{k}" for k in features]
    out = []
    for start in range(0, len(keys), FEATURES_PER_EXAMPLE):
        chunk = keys[start : start + FEATURES_PER_EXAMPLE]
        for label in ("a", "b"):
            out.append(types.LabeledDatum(label, Datum(dict.fromkeys(chunk, 1.0))))
    return out


def _status(client: Classifier) -> dict[str, str]:
    [values] = client.get_status().values()
    return values


def _server(root: Path, args: list[str], log: Path) -> ServerProcess:
    env = {"PYTHONPATH": str(root)} if root != REPO else None
    return ServerProcess(root / IMPL, args, log_path=log, env=env, cwd=root)


def _mix_rows(
    sizes: list[int], member_counts: list[int], tmp: Path, code: str, root: Path
) -> list[dict[str, Any]]:
    config = tmp / "classifier.json"
    config.write_text(json.dumps(CONFIG))
    rows: list[dict[str, Any]] = []
    with ManagedZooKeeper() as zookeeper, ExitStack() as stack:
        for members in member_counts:
            name = f"bench{members}"
            servers = [
                stack.enter_context(
                    _server(
                        root,
                        ["--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp),
                         "--zookeeper", zookeeper.hosts, "--name", name,
                         "--interval_sec", "0", "--interval_count", "0",
                         "--interconnect_timeout", "120"],
                        tmp / f"{code}-{name}-{i}.log",
                    )
                )
                for i in range(members)
            ]  # fmt: skip
            clients = [
                stack.enter_context(Classifier("127.0.0.1", s.port, name, timeout=300))
                for s in servers
            ]
            _wait_up_to_date(clients)
            for size in sizes:
                for c in clients:
                    c.clear()
                clients[0].do_mix()  # settle: every server at the same version, empty diffs
                for i, c in enumerate(clients):
                    share = _examples(range(i, size, members))
                    for start in range(0, len(share), BATCH):
                        c.train(share[start : start + BATCH])
                probe = _ClassifyProbe(servers[-1].port, name)
                probe.start()
                time.sleep(OUTSIDE_SECONDS)
                outside = probe.mark()
                started = time.perf_counter()
                assert clients[0].do_mix() is True
                wall = time.perf_counter() - started
                during = probe.finish()
                master = _status(clients[0])
                row: dict[str, Any] = {
                    "code": code,
                    "members": members,
                    "features": size,
                    "wall_s": wall,
                    "round_s": float(master["mix.last_seconds"]),
                    "bytes": float(master["mix.last_bytes"]),
                    "worst_s": max(during),
                    "p99_during_s": _p99(during),
                    "p99_outside_s": _p99(outside),
                    "apply_s": float(master["mix.last_apply_seconds"]),
                    "reads": len(during),
                }
                rows.append(row)
                print(
                    f"{code:<5} members {members} features {size:>7}: do_mix {wall * 1000:8.1f} ms,"
                    f" round {row['round_s'] * 1000:8.1f} ms, {row['bytes'] / 1e6:6.2f} MB,"
                    f" classify on a member: slowest {row['worst_s'] * 1000:.1f} ms, p99"
                    f" {row['p99_during_s'] * 1000:.2f} ms during vs"
                    f" {row['p99_outside_s'] * 1000:.2f} ms outside ({len(during)} calls)",
                    flush=True,
                )
            for s in servers:
                s.stop()
    return rows


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


class _ClassifyProbe:
    """Classifies one datum on a server back to back; every call's time, split at marks."""

    def __init__(self, port: int, name: str) -> None:
        self.port = port
        self.name = name
        self.stop = threading.Event()
        self.times: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        time.sleep(0.05)

    def _run(self) -> None:
        query = [Datum({"f0": 1.0, "f1": 1.0})]
        with Classifier("127.0.0.1", self.port, self.name, timeout=300) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                client.classify(query)
                self.times.append(time.perf_counter() - started)

    def mark(self) -> list[float]:
        """The times so far (and start afresh)."""
        seen, self.times = self.times, []
        return seen

    def finish(self) -> list[float]:
        self.stop.set()
        self.thread.join(30)
        return self.times


def _wait_up_to_date(clients: list[Classifier]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [_status(c) for c in clients]
        if all(s["linear_mixer.is_obsolete"] == "0" for s in states):
            return
        time.sleep(0.1)
    raise SystemExit("servers did not join their cluster within 60 s")


def _cpu_floor(burners: list[int], tmp: Path) -> list[dict[str, Any]]:
    """The same probe against an idle server (no mix, no writer at work) while ``n``
    processes keep CPUs busy: how slow a call gets on these cores from scheduling alone."""
    rows = []
    with _standalone(REPO, tmp, "floor", CONFIG) as server:
        with Classifier("127.0.0.1", server.port, "floor", timeout=60) as client:
            client.train(_examples(range(100)))
        for count in burners:
            busy = [
                subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)
            ]
            try:
                probe = _ClassifyProbe(server.port, "floor")
                probe.start()
                time.sleep(1.5)
                times = probe.finish()
            finally:
                for process in busy:
                    process.kill()
                    process.wait()
            rows.append({"burners": count, "worst_s": max(times), "p99_s": _p99(times)})
            print(
                f"floor: {count} busy processes: slowest {max(times) * 1000:.1f} ms, p99"
                f" {_p99(times) * 1000:.2f} ms ({len(times)} calls)",
                flush=True,
            )
    return rows


# -- standalone servers ----------------------------------------------------------------------


@contextmanager
def _standalone(
    root: Path, tmp: Path, label: str, config: dict[str, Any]
) -> Iterator[ServerProcess]:
    path = tmp / f"{label}.json"
    path.write_text(json.dumps(config))
    args = ["--rpc-port", "0", "--configpath", str(path), "--datadir", str(tmp)]
    with _server(root, args, tmp / f"{label}.log") as server:
        yield server


def _load(
    port: int, pid: int, call: str, connections: int, depth: int, seconds: float
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench._call_load", "--port", str(port), "--call", call,
        "--connections", str(connections), "--depth", str(depth), "--seconds", str(seconds),
        "--warmup", "0.3", "--server-pid", str(pid),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"load failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _pretrain(port: int) -> None:
    _load(port, 0, "train", 1, 64, 0.5)


def _classify_under_training(server: ServerProcess, seconds: float) -> tuple[float, float, float]:
    """Classify calls/s (16 connections) alone, then while one client trains at full speed
    (64 in flight); and that client's train calls/s."""
    alone = _load(server.port, server.pid, "classify", 16, 1, seconds)["calls_per_s"]
    training = subprocess.Popen(
        [sys.executable, "-m", "bench._call_load", "--port", str(server.port), "--call", "train",
         "--connections", "1", "--depth", "64", "--seconds", str(seconds + 0.6), "--warmup", "0.1"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.2)
    together = _load(server.port, server.pid, "classify", 16, 1, seconds)["calls_per_s"]
    out, _ = training.communicate(timeout=120)
    trained = json.loads(out)["calls_per_s"]
    return alone, together, trained


def _standalone_rows(
    tmp: Path, seconds: float, rounds: int, roots: dict[str, Path]
) -> dict[str, Any]:
    """Reads during training, train throughput by mode, memory: every code side by side."""
    configs = {
        "applied": CONFIG,
        "queued": {**CONFIG, "jubako": {"train": "queued"}},
    }
    out: dict[str, Any] = {"reads": {}, "train": {}, "memory": {}}
    with ExitStack() as stack:
        servers: dict[str, ServerProcess] = {}
        for code, root in roots.items():
            servers[code] = stack.enter_context(_standalone(root, tmp, code, CONFIG))
            if code == "now":
                servers["now/queued"] = stack.enter_context(
                    _standalone(root, tmp, "now-queued", configs["queued"])
                )
        for server in servers.values():
            _pretrain(server.port)
        shapes = (("1 connection", 1, 1), ("16 connections", 16, 1), ("64 pipelined", 1, 64))
        for _ in range(rounds):
            for code in roots:
                alone, together, trained = _classify_under_training(servers[code], seconds)
                out["reads"].setdefault(code, []).append((alone, together, trained))
                print(
                    f"{code:<5} classify alone {alone:9,.0f}/s, while training {together:9,.0f}/s"
                    f" ({together / alone:.2f}); train {trained:8,.0f}/s",
                    flush=True,
                )
            for shape, connections, depth in shapes:
                for code, server in servers.items():
                    rate = _load(server.port, server.pid, "train", connections, depth, seconds)
                    out["train"].setdefault((code, shape), []).append(rate["calls_per_s"])
                    print(f"{code:<10} train {shape:<15} {rate['calls_per_s']:9,.0f}/s", flush=True)
    for code, root in roots.items():
        out["memory"][code] = _memory(root, tmp, code)
    return out


def _memory(root: Path, tmp: Path, code: str) -> tuple[float, float]:
    """Resident MiB of a server before and after learning a 1e5-feature model (2 labels),
    classified and saved meanwhile (so its snapshots and copies exist)."""
    with _standalone(root, tmp, f"memory-{code}", CONFIG) as server:
        with Classifier("127.0.0.1", server.port, "m", timeout=300) as client:
            client.train(_examples(range(100))[:2])
            before = resident_mib(server.pid)
            examples = _examples(range(100_000))
            for start in range(0, len(examples), BATCH):
                client.train(examples[start : start + BATCH])
                client.classify([Datum({"f0": 1.0})])
            client.save("memory")
            after = resident_mib(server.pid)
    print(
        f"{code:<5} resident {before:.0f} MiB empty, {after:.0f} MiB with 1e5 features", flush=True
    )
    return before, after


# -- throughput in examples/s and accuracy (as before) ---------------------------------------


def _throughput_data(count: int) -> list[types.LabeledDatum]:
    out = []
    for i in range(count):
        values = {f"x{d}": float((i * 7 + d * 13) % 10) / 10 for d in range(20)}
        out.append(types.LabeledDatum(f"c{i % 4}", Datum(values)))
    return out


def _throughput(seconds: float, tmp: Path) -> dict[str, float]:
    data = _throughput_data(BATCH)
    queries = [example.data for example in data]
    model = ClassifierModel(CONFIG)
    pairs = [(example.label, example.data) for example in data]
    out: dict[str, float] = {}
    with _standalone(REPO, tmp, "throughput", CONFIG) as server:
        with Classifier("127.0.0.1", server.port, "t", timeout=60) as client:
            out["train_rpc"] = _rate(lambda: client.train(data), seconds)
            out["classify_rpc"] = _rate(lambda: client.classify(queries), seconds)
    out["train_local"] = _rate(lambda: model.train(pairs), seconds)
    out["classify_local"] = _rate(lambda: model.classify(queries), seconds)
    for key, value in out.items():
        print(f"{key:15} {value:10.0f} examples/s", flush=True)
    return out


def _rate(call: object, seconds: float) -> float:
    assert callable(call)
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        done += BATCH
    return done / (time.perf_counter() - started)


def _accuracy() -> dict[str, float]:
    """Held-out accuracy of one model trained on everything, of each third alone, and of
    the three thirds after one mix (the data set and split of the mix e2e test)."""
    from tests.e2e.classifier_cluster import CONFIG as TEST_CONFIG, make_data

    data = make_data(seed=11, count=2400)
    train, held_out = data[:1800], data[1800:]

    def score(model: ClassifierModel) -> float:
        rows = model.classify([datum for _, datum in held_out])
        best = [max(row, key=lambda r: (r[1], r[0]))[0] for row in rows]
        return sum(b == label for b, (label, _) in zip(best, held_out, strict=True)) / len(held_out)

    single = ClassifierModel(TEST_CONFIG)
    single.train(train)
    thirds = [ClassifierModel(TEST_CONFIG) for _ in range(3)]
    for i, model in enumerate(thirds):
        model.train(train[i::3])
    alone = [score(m) for m in thirds]
    diffs = [m.get_diff() for m in thirds]
    mixed = thirds[0].mix(thirds[0].mix(diffs[0], diffs[1]), diffs[2])
    for model in thirds:
        model.put_diff(mixed)
    out = {"single": score(single), "alone_min": min(alone), "alone_max": max(alone)}
    out["mixed"] = score(thirds[0])
    print(
        f"accuracy: single {out['single']:.3f}, thirds alone {min(alone):.3f}-"
        f"{max(alone):.3f}, mixed {out['mixed']:.3f}",
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--members", default="2,3,4")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="standalone figures: rounds")
    parser.add_argument("--compare-with", type=Path, default=None, metavar="DIR")
    parser.add_argument("--skip-mix", action="store_true", help="only the standalone figures")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    args.command_line = "python -m bench.mix" + (" " + shlex.join(raw) if raw else "")
    sizes = [int(s) for s in args.sizes.split(",")]
    member_counts = [int(m) for m in args.members.split(",")]
    roots = {"now": REPO}
    if args.compare_with is not None:
        roots["base"] = args.compare_with.resolve()
    note = machine_note()
    rows: list[dict[str, Any]] = []
    floor: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_mix:
            for code, root in roots.items():
                rows += _mix_rows(sizes, member_counts, Path(tmp), code, root)
            floor = _cpu_floor([0, *member_counts], Path(tmp))
        standalone = _standalone_rows(Path(tmp), args.seconds, args.rounds, roots)
        rates = _throughput(args.seconds, Path(tmp))
    accuracy = _accuracy()
    text = _render(rows, floor, standalone, rates, accuracy, args, note)
    print()
    print(text)
    if not args.no_write:
        replace_section(SECTION, text)
    return 0


def _render(
    rows: list[dict[str, Any]],
    floor: list[dict[str, Any]],
    standalone: dict[str, Any],
    rates: dict[str, float],
    accuracy: dict[str, float],
    args: argparse.Namespace,
    note: str,
) -> str:
    codes = ["now"] + (["base"] if args.compare_with is not None else [])
    lines = [
        SECTION,
        "",
        f"Command: `{args.command_line}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
        f"Machine: {note}. Other agents' tests and benches share these 2 cores (the load"
        " average above says how busy they were): absolute figures move by up to 2x between"
        " runs; compare within one run.",
        "",
        "`now` is this checkout; `base` (with `--compare-with`) the code before the snapshot"
        " model, run from another directory in the same run.",
        "",
        "jubaclassifier (AROW), linear mixer with a private ZooKeeper. `features` = distinct"
        " features in the mixed model (each for two labels, spread over the members); `round` ="
        " the master's own time from the first get_diff to the last put_diff; `do_mix` = what"
        " the caller waits (adds the ZooKeeper master lock). A probe on a member (not the"
        f" master) classifies one datum back to back, {OUTSIDE_SECONDS:g} s before the round"
        " (`outside`) and during it: the slowest call during the round, and the p99 during"
        " against the p99 outside. `apply` = how long the master's put_diff took"
        " (`mix.last_apply_seconds`: with the snapshot model, queued and applied by the writer"
        " while readers go on).",
        "",
        "| code | members | features | do_mix ms | round ms | mixed diff MB | slowest classify ms"
        " | p99 during ms | p99 outside ms | during / outside | apply ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['code']} | {r['members']} | {r['features']} | {r['wall_s'] * 1000:.1f} |"
            f" {r['round_s'] * 1000:.1f} | {r['bytes'] / 1e6:.2f} | {r['worst_s'] * 1000:.1f} |"
            f" {r['p99_during_s'] * 1000:.2f} | {r['p99_outside_s'] * 1000:.2f} |"
            f" {r['p99_during_s'] / r['p99_outside_s']:.2f} | {r['apply_s'] * 1000:.1f} |"
        )
    big = [
        r
        for r in rows
        if r["code"] == "now" and r["features"] == max(r2["features"] for r2 in rows)
    ]
    if big:
        lines += ["", "Targets (`now`, the largest model):", ""]
        for r in big:
            worst_ok = r["worst_s"] <= 0.005
            p99_ok = r["p99_during_s"] <= 2 * r["p99_outside_s"]
            lines.append(
                f"- {r['members']} members: slowest classify {r['worst_s'] * 1000:.1f} ms"
                f" (<= 5 ms: {'met' if worst_ok else 'missed'}), p99 during / outside"
                f" {r['p99_during_s'] / r['p99_outside_s']:.2f}"
                f" (<= 2: {'met' if p99_ok else 'missed'})"
            )
    if floor:
        lines += [
            "",
            "The floor of these cores: the same probe against an idle server (no mix, no"
            " writer at work) while processes spin (`while True: pass`), as the busy members"
            " and master of a round do:",
            "",
            "| busy processes | slowest classify ms | p99 ms |",
            "|---:|---:|---:|",
        ]
        for f in floor:
            lines.append(
                f"| {f['burners']} | {f['worst_s'] * 1000:.1f} | {f['p99_s'] * 1000:.2f} |"
            )
    lines += [
        "",
        f"One standalone server per code; medians of {args.rounds} rounds of {args.seconds:g} s."
        " `classify` from 16 connections alone, then while one client trains at full speed"
        " (64 `train` calls of 1 datum in flight):",
        "",
        "| code | classify alone /s | classify while training /s | ratio | train meanwhile /s |",
        "|---|---:|---:|---:|---:|",
    ]
    for code in codes:
        samples = standalone["reads"].get(code, [])
        if not samples:
            continue
        alone = statistics.median(s[0] for s in samples)
        together = statistics.median(s[1] for s in samples)
        trained = statistics.median(s[2] for s in samples)
        lines.append(
            f"| {code} | {alone:,.0f} | {together:,.0f} | {together / alone:.2f} | {trained:,.0f} |"
        )
    lines += [
        "",
        "`train` of 1 datum, calls/s: answered once applied and published (`now`), once queued"
        " (`now/queued`, fire-and-forget), and before the snapshot model (`base`, under the"
        " model lock):",
        "",
        "| load | " + " | ".join(c for c in ["now", "now/queued", *codes[1:]]) + " |",
        "|---|" + "---:|" * (len(codes) + 1),
    ]
    for shape in ("1 connection", "16 connections", "64 pipelined"):
        cells = []
        for code in ["now", "now/queued", *codes[1:]]:
            samples = standalone["train"].get((code, shape))
            cells.append(f"{statistics.median(samples):,.0f}" if samples else "-")
        lines.append(f"| {shape} | " + " | ".join(cells) + " |")
    memory = standalone["memory"]
    lines += [
        "",
        "Resident memory of a server, MiB: empty, and with a 1e5-feature model (two labels,"
        " classified and saved meanwhile):",
        "",
        "| code | empty | 1e5 features | model's share |",
        "|---|---:|---:|---:|",
    ]
    for code in codes:
        before, after = memory[code]
        lines.append(f"| {code} | {before:.0f} | {after:.0f} | {after - before:.0f} |")
    if "base" in memory:
        now_after, base_after = memory["now"][1], memory["base"][1]
        lines += [
            "",
            f"With snapshots / before: {now_after / base_after:.2f}x the resident size"
            " (target <= 1.5x).",
        ]
    lines += [
        "",
        f"Classifier throughput, batches of {BATCH} examples of 20 numeric features, one "
        "sequential client, examples/s:",
        "",
        "| call | over RPC | in-process model | RPC / in-process |",
        "|---|---:|---:|---:|",
    ]
    for call in ("train", "classify"):
        rpc, local = rates[f"{call}_rpc"], rates[f"{call}_local"]
        lines.append(f"| {call} | {rpc:.0f} | {local:.0f} | {ratio(rpc, local)} |")
    lines += [
        "",
        "Held-out accuracy (the data set of `tests/e2e/test_classifier_mix.py`: 4 Gaussian "
        "classes, 20 features, 1800 training and 600 held-out examples, AROW):",
        "",
        "| one model on all data | each third alone | three thirds after one mix |",
        "|---:|---:|---:|",
        f"| {accuracy['single']:.3f} | {accuracy['alone_min']:.3f}-{accuracy['alone_max']:.3f}"
        f" | {accuracy['mixed']:.3f} |",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
