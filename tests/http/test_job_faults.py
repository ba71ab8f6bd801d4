"""Batch jobs when a run is cut short: a purged job's late replies, a cancel while a job
waits for its upstream, and a graceful stop while calls are at a slow upstream."""

from __future__ import annotations

import collections
import json
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from runtime.http.runner import MARK_GROUP
from runtime.testing import ServerProcess, free_port
from tests.http.conftest import Gateway, wait_job

pytestmark = pytest.mark.e2e

SLOW_UPSTREAM = Path(__file__).with_name("slow_upstream.py")


def _upstream(tmp: Path, delay: float, port: int = 0, calls: Path | None = None) -> ServerProcess:
    env = {"CALL_LOG": str(calls)} if calls is not None else {}
    return ServerProcess(
        SLOW_UPSTREAM, [str(delay), str(port)], log_path=tmp / f"upstream-{delay}.log", env=env
    )


def _submit(gw: Gateway, method: str, rows: Sequence[object]) -> str:
    body = "".join(json.dumps(row) + "\n" for row in rows).encode()
    reply = gw.http.post(f"/v1/jobs/{method}", content=body)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["job"])


def test_a_purged_jobs_late_replies_never_reach_a_later_job(
    gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    """A job's number is never given again: the replies of a cancelled and purged job
    that arrive after a new job was stored are not taken as the new job's results."""
    with _upstream(tmp_path, 2.0) as upstream:
        gw = gateway("kvs", f"127.0.0.1:{upstream.port}")
        first = _submit(gw, "get", [{"key": f"A{i}"} for i in range(20)])
        time.sleep(0.5)  # its calls are at the upstream
        assert gw.http.delete(f"/v1/jobs/{first}").json()["state"] == "cancelled"
        assert gw.http.delete(f"/v1/jobs/{first}", params={"purge": "true"}).status_code == 200
        second = _submit(gw, "get", [{"key": f"B{i}"} for i in range(20)])
        done = wait_job(gw, second, timeout=30)
        assert done["state"] == "completed" and done["done"] == 20 and done["errors"] == 0
        assert gw.results(second) == [{"line": i + 1, "result": f"val:B{i}"} for i in range(20)]


def test_cancelling_a_job_that_waits_for_its_upstream_frees_the_queue(
    gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    port = free_port()
    gw = gateway("kvs", f"127.0.0.1:{port}")  # nothing listens there yet
    waiting = _submit(gw, "get", [{"key": f"k{i}"} for i in range(10)])
    deadline = time.monotonic() + 10
    while "waiting for the upstream" not in str(gw.job(waiting)["message"]):
        assert time.monotonic() < deadline, gw.job(waiting)
        time.sleep(0.05)
    assert gw.http.delete(f"/v1/jobs/{waiting}").json()["state"] == "cancelled"
    with _upstream(tmp_path, 0.0, port):
        after = _submit(gw, "get", [{"key": "x"}])
        done = wait_job(gw, after, timeout=15)  # it ran: the cancelled run ended
    assert done["state"] == "completed"
    assert gw.results(after) == [{"line": 1, "result": "val:x"}]
    assert gw.job(waiting)["state"] == "cancelled"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stop_leaves_interrupted_only_what_was_at_the_upstream(
    how: str, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    """A stop while every call slot waits on a slow upstream: SIGTERM exits after the 5 s
    it gives calls in flight, kill -9 at once. Either way only those calls get
    ``interrupted``; every input taken from the store and not sent is sent after the
    restart, once."""
    calls = tmp_path / "calls.log"
    port = free_port()
    datadir = tmp_path / "jobs"
    flags = ("--job-concurrency", "16", "--job-chunk", "64")
    total = 200
    with _upstream(tmp_path, 60.0, port, calls):
        gw = gateway("kvs", f"127.0.0.1:{port}", *flags, datadir=datadir)
        job = _submit(gw, "put", [{"key": f"k{i}", "value": "v"} for i in range(total)])
        deadline = time.monotonic() + 10
        while calls.read_text().count("\n") < 16 if calls.exists() else True:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        gw.process.stop(getattr(signal, how), timeout=30)
        stopped_in = time.monotonic() - started
    assert stopped_in < 10, f"the stop took {stopped_in:.1f} s"
    with _upstream(tmp_path, 0.0, port, calls):
        gw = gateway("kvs", f"127.0.0.1:{port}", *flags, datadir=datadir)
        done = wait_job(gw, job, timeout=30)
    results = gw.results(job)
    codes = collections.Counter(r["error"]["code"] if "error" in r else "ok" for r in results)
    # The 16 calls at the upstream; a kill -9 also leaves the group marked sent just before
    # it would have left (MARK_GROUP at most), a graceful stop hands that back.
    extra = 0 if how == "SIGTERM" else MARK_GROUP - 16
    assert 16 <= codes["interrupted"] <= 16 + extra
    assert codes["ok"] == total - codes["interrupted"]
    sent = collections.Counter(calls.read_text().split("\n")[:-1])
    # Each input sent at most once: every ok one, and the 16 that were at the upstream.
    assert len(sent) == codes["ok"] + 16 and max(sent.values()) == 1
    assert done["state"] == "completed"


def test_a_store_file_removed_under_a_running_gateway_is_said_not_written_to(
    kvs_server: ServerProcess, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    """Its jobs would go to a file nobody can open again: a submission is a 503 that says
    so, and the log says it once (from the sweep too); online calls go on."""
    datadir = tmp_path / "store"
    gw = gateway("kvs", f"127.0.0.1:{kvs_server.port}", "--job-ttl", "1", datadir=datadir)
    assert _submit(gw, "put", [{"key": "a", "value": "b"}])
    (datadir / "jubako_http_kvs.sqlite3").unlink()
    reply = gw.http.post("/v1/jobs/put", content=b'{"key": "a", "value": "b"}\n')
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"] == "store_unavailable"
    assert "was removed or replaced while the gateway ran; restart" in reply.json()["message"]
    assert gw.http.post("/v1/put", json={"key": "k", "value": "v"}).json() == {"result": True}
    deadline = time.monotonic() + 10
    while gw.process.log_path.read_text().count("was removed or replaced") < 2:
        assert time.monotonic() < deadline, "the sweep never said it"
        time.sleep(0.1)
    time.sleep(1.0)  # a few more sweeps (a quarter of --job-ttl apart) say nothing more
    log = gw.process.log_path.read_text()
    assert log.count("was removed or replaced") == 2, log  # the submission's and the sweep's
