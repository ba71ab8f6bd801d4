"""The engines' throughput beside Jubatus's own: in process against the C++ core
(``embedded_jubatus``) and over RPC against Jubatus's C++ servers, side by side.

``python -m bench.engines [--core-python PATH] [--jubatus-run PATH] [--scale F]
[--placements free,same] [--write]``

- in process: the same rows, in the same order, through Jubako's model and the core's
  class with the same config (``train``/``update``/``set_row``/``update_row``/``add`` one
  datum per call, then the engine's query one datum per call);
- over RPC: a Jubako server (the console script) and Jubatus's server for the same config,
  each called by the same blocking client (``runtime.rpc.client.Client``), one call at a
  time, once per placement of ``--placements`` (:mod:`bench.placement`: ``free`` leaves
  the client and the server to the scheduler, ``same`` pins both to one CPU, ``apart``
  to two); one call at a time on a VM measures cross-CPU wake-ups more than the servers
  unless pinned.

The C++ columns need the core and the servers built per ``shared/reference``
(``--core-python``: its venv's python; ``--jubatus-run``: the servers' ``run_server.sh``);
when they are absent the bench says so and leaves those columns empty. ``--write``
replaces the ``## Engines`` section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.placement import PLACEMENTS, check, pin, pin_self
from engines.anomaly.model import AnomalyModel
from engines.common.neighbor_classifier import NeighborClassifierModel
from engines.nearest_neighbor.model import NearestNeighborModel
from engines.recommender.model import RecommenderModel
from engines.regression.model import RegressionModel
from engines.weight.model import WeightModel
from runtime import Datum
from runtime.rpc.client import Client
from runtime.testing import ServerProcess

REPO = Path(__file__).resolve().parents[1]
CORE_SCRIPT = REPO / "bench" / "oracle" / "engines_core.py"
DEFAULT_CORE = Path("/work/jubatus-ref/core/venv/bin/python")
DEFAULT_RUN = Path("/work/jubatus-ref/server/run_server.sh")

NUM = {"num_rules": [{"key": "*", "type": "num"}]}
TEXT = {
    "string_types": {"bigram": {"method": "ngram", "char_num": "2"}},
    "string_rules": [{"key": "*", "type": "bigram", "sample_weight": "tf", "global_weight": "idf"}],
    "num_rules": [{"key": "*", "type": "num"}],
}


@dataclass
class Job:
    engine: str
    label: str
    config: dict[str, Any]
    updates: int
    queries: int
    rows: str = "numeric"


def _linear(method: str) -> dict[str, Any]:
    parameter = {"regularization_weight": 1.0, "sensitivity": 0.1}
    return {"method": method, "parameter": parameter, "converter": NUM}


def _hashed(method: str) -> dict[str, Any]:
    return {"method": method, "parameter": {"hash_num": 64}, "converter": NUM}


def _lof(method: str, backend: str, parameter: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": method,
        "parameter": {
            "nearest_neighbor_num": 10,
            "reverse_nearest_neighbor_num": 30,
            "method": backend,
            "parameter": parameter,
        },
        "converter": NUM,
    }


NN_CLASSIFIER = {
    "method": "NN",
    "parameter": {
        "method": "euclid_lsh",
        "parameter": {"hash_num": 64},
        "nearest_neighbor_num": 10,
        "local_sensitivity": 1.0,
    },
    "converter": NUM,
}
INVERTED = {"method": "inverted_index", "parameter": {}, "converter": NUM}

JOBS = [
    Job("regression", "AROW", _linear("AROW"), 4000, 4000),
    Job("regression", "PA1", _linear("PA1"), 4000, 4000),
    Job("weight", "bigram tf-idf", {"converter": TEXT}, 3000, 3000, "text"),
    Job("nearest_neighbor", "lsh 64", _hashed("lsh"), 3000, 500),
    Job("nearest_neighbor", "euclid_lsh 64", _hashed("euclid_lsh"), 3000, 500),
    Job("recommender", "inverted_index", INVERTED, 2000, 300),
    Job("recommender", "lsh 64", _hashed("lsh"), 2000, 300),
    Job(
        "anomaly", "lof (inverted_index_euclid)", _lof("lof", "inverted_index_euclid", {}), 600, 300
    ),
    Job(
        "anomaly",
        "light_lof (euclid_lsh)",
        _lof("light_lof", "euclid_lsh", {"hash_num": 64}),
        600,
        300,
    ),
    Job("classifier", "NN (euclid_lsh)", NN_CLASSIFIER, 2000, 500),
]

UPDATE_NAMES = {
    "regression": "train",
    "weight": "update",
    "nearest_neighbor": "set_row",
    "recommender": "update_row",
    "anomaly": "add",
    "classifier": "train",
}
QUERY_NAMES = {
    "regression": "estimate",
    "weight": "calc_weight",
    "nearest_neighbor": "neighbor_row_from_datum",
    "recommender": "similar_row_from_datum",
    "anomaly": "calc_score",
    "classifier": "classify",
}


def make_rows(kind: str, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    if kind == "text":
        words = [
            "".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 8))) for _ in range(300)
        ]
        return [{"text": " ".join(rng.sample(words, 6)), "n": rng.random()} for _ in range(count)]
    centres = [[rng.gauss(0, 3) for _ in range(20)] for _ in range(8)]
    rows = []
    for _ in range(count):
        centre = rng.choice(centres)
        rows.append({f"f{j}": round(c + rng.gauss(0, 1), 4) for j, c in enumerate(centre)})
    return rows


# -- in process ----------------------------------------------------------------------------


class _Calls:
    """One update and one query call on a Jubako model, for the in-process timing."""

    def __init__(self, job: Job) -> None:
        self.engine = job.engine
        factory = {
            "regression": RegressionModel,
            "weight": WeightModel,
            "nearest_neighbor": NearestNeighborModel,
            "recommender": RecommenderModel,
            "anomaly": AnomalyModel,
            "classifier": NeighborClassifierModel,
        }[job.engine]
        self.model: Any = factory(job.config)

    def update(self, i: int, datum: Datum) -> object:
        model, engine = self.model, self.engine
        if engine == "regression":
            return model.train([(float(i % 13), datum)])
        if engine == "weight":
            return model.update(datum)
        if engine == "nearest_neighbor":
            return model.set_row(f"r{i}", datum)
        if engine == "recommender":
            return model.update_row(f"r{i}", datum)
        if engine == "anomaly":
            return model.add(datum)
        return model.train([(f"c{i % 5}", datum)])

    def query(self, datum: Datum) -> object:
        model, engine = self.model, self.engine
        if engine == "regression":
            return model.estimate([datum])
        if engine == "weight":
            return model.calc_weight(datum)
        if engine == "nearest_neighbor":
            return model.neighbor_row_from_datum(datum, 10)
        if engine == "recommender":
            return model.similar_row_from_datum(datum, 10)
        if engine == "anomaly":
            return model.calc_score(datum)
        return model.classify([datum])


def jubako_in_process(job: Job, updates: list[Datum], queries: list[Datum]) -> tuple[float, float]:
    calls = _Calls(job)
    started = time.perf_counter()
    for i, datum in enumerate(updates):
        calls.update(i, datum)
    update_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for datum in queries:
        calls.query(datum)
    return update_seconds, time.perf_counter() - started


def core_in_process(
    core: Path | None, job: Job, updates: list[dict[str, Any]], queries: list[dict[str, Any]]
) -> tuple[float, float] | None:
    if core is None:
        return None
    request = {"engine": job.engine, "config": job.config, "updates": updates, "queries": queries}
    done = subprocess.run(
        [str(core), str(CORE_SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout)
    return out["update"], out["query"]


# -- over RPC ------------------------------------------------------------------------------


def _wire_datum(row: dict[str, Any]) -> list[list[list[object]]]:
    return Datum(row).to_msgpack()


def _update_call(engine: str, i: int, datum: object) -> tuple[str, list[object]]:
    if engine == "regression":
        return "train", ["b", [[float(i % 13), datum]]]
    if engine == "weight":
        return "update", ["b", datum]
    if engine == "nearest_neighbor":
        return "set_row", ["b", f"r{i}", datum]
    if engine == "recommender":
        return "update_row", ["b", f"r{i}", datum]
    if engine == "anomaly":
        return "add", ["b", datum]
    return "train", ["b", [[f"c{i % 5}", datum]]]


def _query_call(engine: str, datum: object) -> tuple[str, list[object]]:
    if engine == "regression":
        return "estimate", ["b", [datum]]
    if engine == "weight":
        return "calc_weight", ["b", datum]
    if engine == "nearest_neighbor":
        return "neighbor_row_from_datum", ["b", datum, 10]
    if engine == "recommender":
        return "similar_row_from_datum", ["b", datum, 10]
    if engine == "anomaly":
        return "calc_score", ["b", datum]
    return "classify", ["b", [datum]]


#: Queries sent, untimed, before the timed ones (both servers alike): a Jubako server runs a
#: method on its worker threads until it has timed it as fast, and a few hundred timed
#: queries would otherwise count that warm-up.
WARMUP_QUERIES = 100


def rpc_calls(
    client: Client, job: Job, updates: list[dict[str, Any]], queries: list[dict[str, Any]]
) -> tuple[float, float]:
    engine = job.engine
    started = time.perf_counter()
    for i, row in enumerate(updates):
        client.call(*_update_call(engine, i, _wire_datum(row)))
    update_seconds = time.perf_counter() - started
    calls = [_query_call(engine, _wire_datum(row)) for row in queries]
    for method, params in calls[:WARMUP_QUERIES]:
        client.call(method, params)
    started = time.perf_counter()
    for method, params in calls:
        client.call(method, params)
    return update_seconds, time.perf_counter() - started


def _jubatus_server(
    run: Path, engine: str, config: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(run),
            engine,
            "--rpc-port",
            str(port),
            "--configpath",
            str(config),
            "-b",
            "127.0.0.1",
            "--thread",
            "2",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            Client("127.0.0.1", port, timeout=1).call("get_status", ["b"])
            return process
        except Exception:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"Jubatus's {engine} server did not start; see {log}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def rpc_pair(
    run: Path | None,
    job: Job,
    updates: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    tmp: Path,
    placement: str = "free",
) -> tuple[tuple[float, float], tuple[float, float] | None]:
    config = tmp / f"{job.engine}.json"
    config.write_text(json.dumps(job.config))
    script = shutil.which(f"juba{job.engine}", path=str(Path(sys.executable).parent))
    assert script is not None
    server_cpus, client_cpus, _ = PLACEMENTS[placement]
    args = ["--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp)]
    pin_self(client_cpus)
    try:
        with ServerProcess(Path(script), args, log_path=tmp / f"{job.engine}.log") as server:
            pin(server.pid, server_cpus)
            mine = rpc_calls(Client("127.0.0.1", server.port, timeout=60), job, updates, queries)
        theirs = None
        if run is not None:
            port = _free_port()
            log = tmp / f"jubatus-{job.engine}.log"
            process = _jubatus_server(run, job.engine, config, port, log)
            try:
                pin(process.pid, server_cpus)
                theirs = rpc_calls(Client("127.0.0.1", port, timeout=60), job, updates, queries)
            finally:
                process.terminate()
                process.wait(timeout=10)
    finally:
        pin_self(None)
    return mine, theirs


# -- report --------------------------------------------------------------------------------


def _rate(count: int, seconds: float | None) -> str:
    return "" if seconds is None else f"{count / seconds:,.0f}"


def _ratio(count: int, mine: float | None, theirs: float | None) -> str:
    return "" if theirs is None or mine is None else f"{theirs / mine:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engines", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--core-python", type=Path, default=DEFAULT_CORE)
    parser.add_argument("--jubatus-run", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every job's counts")
    parser.add_argument("--only", default="", help="run only jobs whose engine contains this")
    parser.add_argument(
        "--placements", default="free,same", help="over RPC, of " + ",".join(PLACEMENTS)
    )
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    placements = args.placements.split(",")
    problem = check(placements)
    if problem:
        parser.error(f"--placements: {problem}")
    core = args.core_python if args.core_python.exists() else None
    run = args.jubatus_run if args.jubatus_run.exists() else None
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")
    scale = f" --scale {args.scale}" if args.scale != 1 else ""
    if args.placements != "free,same":
        scale += f" --placements {args.placements}"
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines = [
        "## Engines",
        "",
        f"Command: `python -m bench.engines{scale}`  ",
        f"Date: {started}  ",
        f"Machine: {machine}, "
        f"load average at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}. Other agents share "
        "these 2 cores, so absolute figures are noisy; compare the ratios, measured side by "
        "side in one run.",
        "",
        "Calls per second, one datum per call (updates first, then queries on the model they "
        "built). *ratio* = Jubako / Jubatus. In process: Jubako's model vs the C++ core through "
        "`embedded_jubatus` (same rows, same config). Over RPC: `juba<engine>` vs Jubatus's "
        "C++ server (2 threads), each called by the same blocking client, one call at a time,"
        " the client and the server left to the scheduler (*free*) or pinned to one CPU (*one"
        " CPU*: see `bench/placement.py`)."
        + ("" if core else " The core was not found: its columns are empty.")
        + ("" if run else " Jubatus's servers were not found: their columns are empty."),
        "",
        "| engine | method | call | in process | core | ratio "
        + "".join(f"| RPC, {PLACEMENTS[p][2] or p} | Jubatus server | ratio " for p in placements)
        + "|",
        "|---|---|---|---:|---:|---:|" + "---:|---:|---:|" * len(placements),
    ]
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        for job in JOBS:
            if args.only and args.only not in job.engine:
                continue
            count_u = max(int(job.updates * args.scale), 10)
            count_q = max(int(job.queries * args.scale), 10)
            rows = make_rows(job.rows, count_u + count_q, seed=17)
            updates, queries = rows[:count_u], rows[count_u:]
            mine = jubako_in_process(job, [Datum(r) for r in updates], [Datum(r) for r in queries])
            theirs = core_in_process(core, job, updates, queries)
            rpc_count_u, rpc_count_q = min(count_u, 1500), min(count_q, 1500)
            pairs: list[tuple[tuple[float | None, float | None], tuple[float, float] | None]]
            pairs = [((None, None), None)] * len(placements)
            if job.engine != "classifier":  # (jubaclassifier's RPC figures: bench.vs_jubatus)
                pairs = [
                    rpc_pair(run, job, updates[:rpc_count_u], queries[:rpc_count_q], tmp, place)
                    for place in placements
                ]
            for index, (name, count, rpc_count) in enumerate(
                (
                    (UPDATE_NAMES[job.engine], count_u, rpc_count_u),
                    (QUERY_NAMES[job.engine], count_q, rpc_count_q),
                )
            ):
                core_seconds = None if theirs is None else theirs[index]
                line = (
                    f"| {job.engine} | {job.label} | {name} | {_rate(count, mine[index])} | "
                    f"{_rate(count, core_seconds)} | {_ratio(count, mine[index], core_seconds)} |"
                )
                for rpc_mine, rpc_theirs in pairs:
                    rpc_their_seconds = None if rpc_theirs is None else rpc_theirs[index]
                    line += (
                        f" {_rate(rpc_count, rpc_mine[index])} |"
                        f" {_rate(rpc_count, rpc_their_seconds)} |"
                        f" {_ratio(rpc_count, rpc_mine[index], rpc_their_seconds)} |"
                    )
                lines.append(line)
                print(line, flush=True)
    block = "\n".join(lines) + "\n"
    if args.write:
        from bench.results import replace_section

        replace_section("## Engines", block)
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
