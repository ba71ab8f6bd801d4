"""Mix benchmark: linear-mixer round time vs model size and members; classifier throughput.

``python -m bench.mix [--sizes 1000,10000,100000] [--members 2,3,4] [--seconds S]`` starts a
private ZooKeeper and ``jubaclassifier`` servers (mix triggers off), and for each member
count and model size: clears the model, trains every server on its share of ``size``
distinct features (each feature for two labels), then times one ``do_mix`` from the
client and reads the master's own figures (``mix.last_seconds``, ``mix.last_bytes``) from
``get_status``. Then, on one standalone server, the train and classify throughput in
examples/s (batches of 100 examples of 20 numeric features, one client), side by side with
the same model called in-process, so the RPC share shows. It rewrites the ``## Mix`` section
of ``bench/RESULTS.md`` unless ``--no-write``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from bench.results import replace_section
from bench.rpc import machine_note, ratio
from engines.classifier import classifier_types as types
from engines.classifier.classifier_client import Classifier
from engines.classifier.model import ClassifierModel
from runtime.testing import ManagedZooKeeper, ServerProcess
from runtime.wire.datum import Datum

SECTION = "## Mix"
REPO = Path(__file__).resolve().parents[1]
IMPL = REPO / "engines" / "classifier" / "classifier_impl.py"
CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {"num_rules": [{"key": "*", "type": "num"}]},
}
FEATURES_PER_EXAMPLE = 100
BATCH = 100


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


def _mix_rows(sizes: list[int], member_counts: list[int], tmp: Path) -> list[dict[str, float]]:
    config = tmp / "classifier.json"
    config.write_text(json.dumps(CONFIG))
    rows: list[dict[str, float]] = []
    with ManagedZooKeeper() as zookeeper, ExitStack() as stack:
        for members in member_counts:
            name = f"bench{members}"
            servers = [
                stack.enter_context(
                    ServerProcess(
                        IMPL,
                        ["--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp),
                         "--zookeeper", zookeeper.hosts, "--name", name,
                         "--interval_sec", "0", "--interval_count", "0",
                         "--interconnect_timeout", "120"],
                        log_path=tmp / f"{name}-{i}.log",
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
                started = time.perf_counter()
                assert clients[0].do_mix() is True
                wall = time.perf_counter() - started
                worst = probe.finish()
                master = _status(clients[0])
                row = {
                    "members": members,
                    "features": size,
                    "wall_s": wall,
                    "round_s": float(master["mix.last_seconds"]),
                    "bytes": float(master["mix.last_bytes"]),
                    "worst_classify_s": worst,
                    "apply_s": float(master["mix.last_apply_seconds"]),
                }
                rows.append(row)
                print(
                    f"members {members} features {size:>7}: do_mix {wall * 1000:8.1f} ms, "
                    f"round {row['round_s'] * 1000:8.1f} ms, {row['bytes'] / 1e6:6.2f} MB, "
                    f"slowest classify on a member meanwhile {worst * 1000:.1f} ms "
                    f"(the master's put_diff held its lock {row['apply_s'] * 1000:.1f} ms)",
                    flush=True,
                )
            for s in servers:
                s.stop()
    return rows


class _ClassifyProbe:
    """Classifies one datum on a server over and over while a round runs; the slowest
    answer says how long the round held readers off."""

    def __init__(self, port: int, name: str) -> None:
        self.port = port
        self.name = name
        self.stop = threading.Event()
        self.worst = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        time.sleep(0.05)

    def _run(self) -> None:
        query = [Datum({"f0": 1.0})]
        with Classifier("127.0.0.1", self.port, self.name, timeout=300) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                client.classify(query)
                self.worst = max(self.worst, time.perf_counter() - started)
                time.sleep(0.001)

    def finish(self) -> float:
        self.stop.set()
        self.thread.join(30)
        return self.worst


def _wait_up_to_date(clients: list[Classifier]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [_status(c) for c in clients]
        if all(s["linear_mixer.is_obsolete"] == "0" for s in states):
            return
        time.sleep(0.1)
    raise SystemExit("servers did not join their cluster within 60 s")


def _throughput_data(count: int) -> list[types.LabeledDatum]:
    out = []
    for i in range(count):
        values = {f"x{d}": float((i * 7 + d * 13) % 10) / 10 for d in range(20)}
        out.append(types.LabeledDatum(f"c{i % 4}", Datum(values)))
    return out


def _throughput(seconds: float, tmp: Path) -> dict[str, float]:
    config = tmp / "classifier.json"
    config.write_text(json.dumps(CONFIG))
    data = _throughput_data(BATCH)
    queries = [example.data for example in data]
    model = ClassifierModel(CONFIG)
    pairs = [(example.label, example.data) for example in data]
    out: dict[str, float] = {}
    with ServerProcess(IMPL, ["--rpc-port", "0", "--configpath", str(config)]) as server:
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
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    member_counts = [int(m) for m in args.members.split(",")]
    note = machine_note()
    with tempfile.TemporaryDirectory() as tmp:
        rows = _mix_rows(sizes, member_counts, Path(tmp))
        rates = _throughput(args.seconds, Path(tmp))
    accuracy = _accuracy()
    if not args.no_write:
        _write(rows, rates, accuracy, args, note)
    return 0


def _write(
    rows: list[dict[str, float]],
    rates: dict[str, float],
    accuracy: dict[str, float],
    args: argparse.Namespace,
    note: str,
) -> None:
    lines = [
        SECTION,
        "",
        f"`python -m bench.mix --sizes {args.sizes} --members {args.members} --seconds "
        f"{args.seconds:g}` on {time.strftime('%Y-%m-%d %H:%M')}; {note}.",
        "jubaclassifier (AROW), linear mixer with a private ZooKeeper. `features` = distinct",
        "features in the mixed model (each for two labels, spread over the members);",
        "`round` = the master's own time from the first get_diff to the last put_diff;",
        "`do_mix` = what the caller waits (adds the ZooKeeper master lock).",
        "",
        "`slowest classify` = the slowest of back-to-back one-datum `classify` calls on a",
        "member (not the master) while the round ran; `apply` = how long the master's own",
        "put_diff held the write lock (`mix.last_apply_seconds`). Every member applies the",
        "mixed diff at the same moment, on 2 cores here, so a member's apply takes longer in",
        "wall time than the master's figure.",
        "",
        "| members | features | do_mix ms | round ms | mixed diff MB | slowest classify ms "
        "| apply ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['members']:.0f} | {r['features']:.0f} | {r['wall_s'] * 1000:.1f} | "
            f"{r['round_s'] * 1000:.1f} | {r['bytes'] / 1e6:.2f} | "
            f"{r['worst_classify_s'] * 1000:.1f} | {r['apply_s'] * 1000:.1f} |"
        )
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
    replace_section(SECTION, "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
