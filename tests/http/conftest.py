"""Real parts for the gateway tests: servers, generated gateways on uvicorn, httpx.

``kvs_server`` and ``classifier_server`` are real server processes; ``gateway(...)``
starts ``generated/http/NAME_http.py`` as a process on a free port (it logs ``listening
on HOST:PORT`` like a server) and gives a :class:`Gateway` with an httpx client.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.testing import ServerProcess

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "generated" / "http"
KVS_DIR = REPO / "examples" / "kvs"
CLASSIFIER_IMPL = REPO / "engines" / "classifier" / "classifier_impl.py"
CLASSIFIER_CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {
        "string_rules": [
            {"key": "*", "type": "str", "sample_weight": "bin", "global_weight": "bin"}
        ],
        "num_rules": [{"key": "*", "type": "num"}],
    },
}


@dataclass
class Gateway:
    """A gateway process and an httpx client on it."""

    process: ServerProcess
    url: str
    http: httpx.Client

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.http.get(f"/v1/jobs/{job_id}")
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        return result

    def results(self, job_id: str, **params: int) -> list[dict[str, Any]]:
        reply = self.http.get(f"/v1/jobs/{job_id}/results", params=params)
        assert reply.status_code == 200, reply.text
        return [json.loads(line) for line in reply.text.splitlines()]


def start_server(script: Path, tmp: Path, config: str, *, cwd: Path | None = None) -> ServerProcess:
    (tmp / "config.json").write_text(config)
    args = ["--rpc-port", "0", "--configpath", str(tmp / "config.json"), "--datadir", str(tmp)]
    return ServerProcess(script, args, log_path=tmp / "server.log", cwd=cwd).start()


@pytest.fixture(scope="module")
def kvs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("kvs")
    server = start_server(KVS_DIR / "kvs_impl.py", tmp, '{"note": "http"}\n', cwd=KVS_DIR)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def classifier_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("classifier")
    server = start_server(CLASSIFIER_IMPL, tmp, json.dumps(CLASSIFIER_CONFIG))
    yield server
    server.stop()


def launch(
    service: str, upstream: str, datadir: Path, *extra: str, log: Path | None = None
) -> Gateway:
    """Start ``generated/http/<service>_http.py`` forwarding to ``upstream``."""
    args = ["--port", "0", "--upstream", upstream, "--datadir", str(datadir), *extra]
    process = ServerProcess(
        GENERATED / f"{service}_http.py", args, log_path=log or datadir / "gateway.log",
        env={"PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")},
    ).start()  # fmt: skip
    url = f"http://127.0.0.1:{process.port}"
    return Gateway(process, url, httpx.Client(base_url=url, timeout=30))


@pytest.fixture
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """``gateway(service, upstream, *flags, datadir=)`` → a started gateway, stopped after."""
    started: list[Gateway] = []

    def start(service: str, upstream: str, *extra: str, datadir: Path | None = None) -> Gateway:
        folder = datadir or tmp_path / f"gw{len(started)}"
        folder.mkdir(exist_ok=True)
        log = tmp_path / f"gateway-{len(started)}.log"
        gw = launch(service, upstream, folder, *extra, log=log)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.http.close()
        if gw.process.running:
            gw.process.stop()


@pytest.fixture(scope="module")
def kvs_gateway(
    kvs_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gw = launch("kvs", f"127.0.0.1:{kvs_server.port}", tmp_path_factory.mktemp("kvs-gw"))
    yield gw
    gw.http.close()
    gw.process.stop()


@pytest.fixture(scope="module")
def classifier_gateway(
    classifier_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gw = launch(
        "classifier", f"127.0.0.1:{classifier_server.port}", tmp_path_factory.mktemp("cl-gw")
    )
    yield gw
    gw.http.close()
    gw.process.stop()


def wait_job(
    gw: Gateway,
    job_id: str,
    timeout: float = 60.0,
    states: tuple[str, ...] = ("completed", "failed", "cancelled"),
) -> dict[str, Any]:
    """Poll a job until it is in one of ``states``."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        job = gw.job(job_id)
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}: {job}"
        time.sleep(0.05)
