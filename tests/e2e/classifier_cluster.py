"""Helpers for classifier cluster tests: a generated data set, servers, and model checks.

The data set: ``classes`` Gaussian clusters in ``dims`` numeric features (centroids drawn
from N(0, 1), noise N(0, ``noise``)), made from a seed, so every run sees the same examples.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

from engines.classifier import classifier_types as types
from engines.classifier.classifier_client import Classifier
from runtime.testing import ServerProcess
from runtime.wire.datum import Datum

REPO = Path(__file__).resolve().parents[2]
IMPL = REPO / "engines" / "classifier" / "classifier_impl.py"
PROXY = REPO / "engines" / "classifier" / "classifier_proxy.py"

CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {"num_rules": [{"key": "*", "type": "num"}]},
}

Example = tuple[str, Datum]


def make_data(
    seed: int, count: int, *, classes: int = 4, dims: int = 20, noise: float = 1.5
) -> list[Example]:
    """``count`` labelled examples of the seeded Gaussian-cluster data set."""
    rng = random.Random(seed)
    centroids = [[rng.gauss(0, 1) for _ in range(dims)] for _ in range(classes)]
    examples: list[Example] = []
    for _ in range(count):
        label = rng.randrange(classes)
        values = {f"f{d}": centroids[label][d] + rng.gauss(0, noise) for d in range(dims)}
        examples.append((f"c{label}", Datum(values)))
    return examples


def labeled(examples: Sequence[Example]) -> list[types.LabeledDatum]:
    return [types.LabeledDatum(label, datum) for label, datum in examples]


def predictions(client: Classifier, examples: Sequence[Example]) -> list[str]:
    """The best label of every example (ties broken by label name)."""
    rows = client.classify([datum for _, datum in examples])
    return [max(row, key=lambda r: (r.score, r.label)).label if row else "" for row in rows]


def accuracy(client: Classifier, examples: Sequence[Example]) -> float:
    guessed = predictions(client, examples)
    return sum(g == label for g, (label, _) in zip(guessed, examples, strict=True)) / len(examples)


def write_config(directory: Path, config: dict[str, object] | None = None) -> Path:
    path = directory / "classifier.json"
    path.write_text(json.dumps(config or CONFIG))
    return path


def start_server(
    stack: ExitStack,
    tmp: Path,
    config: Path,
    zk_hosts: str,
    *extra: str,
    index: int = 0,
) -> ServerProcess:
    """A classifier server in cluster ``m``; mix triggers off unless ``extra`` sets them."""
    args = [
        "--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp),
        "--zookeeper", zk_hosts, "--name", "m", "--zookeeper_timeout", "2",
        "--interconnect_timeout", "5", "--interval_sec", "0", "--interval_count", "0",
        *extra,
    ]  # fmt: skip
    log_path = tmp / f"classifier-{index}-{time.monotonic_ns()}.log"
    return stack.enter_context(ServerProcess(IMPL, args, log_path=log_path))


def client(server: ServerProcess, timeout: float = 30) -> Classifier:
    return Classifier("127.0.0.1", server.port, "m", timeout=timeout)


def status(server: ServerProcess) -> dict[str, str]:
    with client(server) as c:
        [values] = c.get_status().values()
    return values


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> float:
    """Poll ``condition`` every 50 ms; returns the seconds it took, or fails the test."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def up_to_date(servers: Sequence[ServerProcess]) -> bool:
    """Every server is up to date at the same model version."""
    states = [status(s) for s in servers]
    versions = {s["mix.model_version"] for s in states}
    return len(versions) == 1 and all(s["linear_mixer.is_obsolete"] == "0" for s in states)
