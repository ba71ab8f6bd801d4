"""Batch jobs against real servers: storage before 202, bad lines, dedupe, results,
cancel, retention, an upstream that goes away, and kill -9 of the gateway mid-job."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.testing import ServerProcess
from tests.http.conftest import (
    CLASSIFIER_CONFIG,
    CLASSIFIER_IMPL,
    KVS_DIR,
    Gateway,
    start_server,
    wait_job,
)

pytestmark = pytest.mark.e2e


def jsonl(rows: Sequence[object]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def submit(
    gw: Gateway, method: str, rows: Sequence[object] | bytes, **params: str
) -> dict[str, Any]:
    body = rows if isinstance(rows, bytes) else jsonl(rows)
    reply = gw.http.post(f"/v1/jobs/{method}", content=body, params=params)
    assert reply.status_code == 202, reply.text
    job: dict[str, Any] = reply.json()
    assert reply.headers["location"].endswith(f"/v1/jobs/{job['job']}")
    return job


def test_a_job_runs_and_streams_its_results(kvs_gateway: Gateway) -> None:
    puts = [{"key": f"k{i}", "value": f"v{i}"} for i in range(300)]
    job = submit(kvs_gateway, "put", puts)
    assert job["total"] == 300 and job["state"] in ("queued", "running", "completed")
    done = wait_job(kvs_gateway, str(job["job"]))
    assert done["state"] == "completed" and done["done"] == 300 and done["errors"] == 0
    assert done["eta"] == 0.0 and float(done["rate"]) > 0
    gets = submit(kvs_gateway, "get", [{"key": f"k{i}"} for i in range(300)])
    wait_job(kvs_gateway, str(gets["job"]))
    results = kvs_gateway.results(str(gets["job"]))
    assert results == [{"line": i + 1, "result": f"v{i}"} for i in range(300)]
    assert kvs_gateway.results(str(gets["job"]), offset=10, limit=3) == results[10:13]
    listed = kvs_gateway.http.get("/v1/jobs").json()["jobs"]
    assert [j["job"] for j in listed[:2]] == [gets["job"], job["job"]]


def test_bad_lines_are_refused_with_their_numbers_or_kept(kvs_gateway: Gateway) -> None:
    body = b'{"key": "a"}\n\n{"key": 5}\n{"key": "b"}\n{"kee": "c"}\nnot json\n'
    before = len(kvs_gateway.http.get("/v1/jobs").json()["jobs"])
    reply = kvs_gateway.http.post("/v1/jobs/get", content=body)
    assert reply.status_code == 422
    message = reply.json()["message"]
    assert "3 of the lines do not fit get, nothing was stored" in message
    assert "line 3: get: argument 0 (key): expected string, got number" in message
    assert "line 5: get: argument 0 (key) is missing" in message
    assert (
        "get has no argument 'kee'" in message and "line 6: the body is not valid JSON" in message
    )
    assert [line["line"] for line in reply.json()["lines"]] == [3, 5, 6]
    assert len(kvs_gateway.http.get("/v1/jobs").json()["jobs"]) == before
    job = submit(kvs_gateway, "get", body, bad_lines="keep")
    assert job["total"] == 5 and job["errors"] == 3  # the blank line is no input
    wait_job(kvs_gateway, str(job["job"]))
    results = kvs_gateway.results(str(job["job"]))
    assert [r["line"] for r in results] == [1, 3, 4, 5, 6]
    assert "result" in results[0] and "result" in results[2]
    for bad in (results[1], results[3], results[4]):
        assert bad["error"]["status"] == 422 and bad["error"]["code"] == "bad_request"
    for params, status in [({}, 404), ({"dedupe": "maybe"}, 422)]:
        path = "/v1/jobs/nope" if status == 404 else "/v1/jobs/get"
        assert kvs_gateway.http.post(path, content=b"{}\n", params=params).status_code == status
    empty = kvs_gateway.http.post("/v1/jobs/get", content=b"\n\n")
    assert empty.status_code == 422 and "no input" in empty.json()["message"]


def test_dedupe_computes_identical_inputs_once(kvs_gateway: Gateway) -> None:
    kvs_gateway.http.post("/v1/put", json={"key": "dup", "value": "once"})
    rows = [{"key": "dup"}, {"key": "other"}, {"key": "dup"}, {"key": "dup"}]
    upload = {"file": ("in.jsonl", jsonl(rows), "application/x-ndjson")}
    reply = kvs_gateway.http.post("/v1/jobs/get", files=upload, params={"dedupe": "true"})
    assert reply.status_code == 202, reply.text
    job = reply.json()
    assert job["duplicates"] == 2 and job["total"] == 4
    wait_job(kvs_gateway, job["job"])
    results = kvs_gateway.results(job["job"])
    assert [r.get("result") for r in results] == ["once", "", "once", "once"]
    refused = kvs_gateway.http.post("/v1/jobs/put", content=b'{"key": "a", "value": "b"}\n',
                                    params={"dedupe": "true"})  # fmt: skip
    assert refused.status_code == 422 and "only for #@analysis methods" in refused.json()["message"]


def test_202_comes_once_every_input_is_stored(
    gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    # Nothing listens upstream: the job cannot run, yet every input is in the store.
    datadir = tmp_path / "store"
    gw = gateway("kvs", "127.0.0.1:1", datadir=datadir)
    job = submit(gw, "get", [{"key": f"k{i}"} for i in range(1000)])
    with sqlite3.connect(datadir / "jubako_http_kvs.sqlite3") as db:
        seq, total = db.execute(
            "SELECT seq, total FROM jobs WHERE id = ?", (job["job"],)
        ).fetchone()
        stored = db.execute(
            "SELECT count(*) FROM items WHERE key >> 32 = ? AND params IS NOT NULL", (seq,)
        ).fetchone()[0]
    assert total == stored == 1000
    waiting = wait_job(gw, str(job["job"]), timeout=10, states=("running",))
    deadline = time.monotonic() + 10
    while "waiting for the upstream" not in str(waiting["message"]):
        assert time.monotonic() < deadline, waiting
        time.sleep(0.1)
        waiting = gw.job(str(job["job"]))
    assert "cannot reach the upstream 127.0.0.1:1" in str(waiting["message"])
    assert waiting["done"] == 0


def test_a_job_waits_for_its_upstream_and_goes_on(
    gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    server = start_server(KVS_DIR / "kvs_impl.py", tmp_path, "{}", cwd=KVS_DIR)
    port = server.port
    gw = gateway("kvs", f"127.0.0.1:{port}")
    assert gw.http.post("/v1/put", json={"key": "k", "value": "v"}).status_code == 200
    server.kill()
    job = submit(gw, "get", [{"key": "k"}] * 50)
    time.sleep(1.0)
    assert gw.job(str(job["job"]))["state"] == "running"
    args = ["--rpc-port", str(port), "--configpath", str(tmp_path / "config.json")]
    with ServerProcess(KVS_DIR / "kvs_impl.py", args, cwd=KVS_DIR):
        assert gw.http.post("/v1/put", json={"key": "k", "value": "back"}).status_code == 200
        done = wait_job(gw, str(job["job"]), timeout=30)
    assert done["state"] == "completed" and done["errors"] == 0 and done["message"] == ""
    assert {r["result"] for r in gw.results(str(job["job"]))} == {"back"}


def train_rows(count: int) -> list[object]:
    return [{"data": [{"label": f"l{i % 3}", "data": {"x": float(i % 7)}}]} for i in range(count)]


@pytest.fixture
def classifier(tmp_path: Path) -> ServerProcess:
    folder = tmp_path / "classifier"
    folder.mkdir()
    return start_server(CLASSIFIER_IMPL, folder, json.dumps(CLASSIFIER_CONFIG))


def test_cancel_keeps_what_ran_and_stops_the_rest(
    classifier: ServerProcess, gateway: Callable[..., Gateway]
) -> None:
    try:
        gw = gateway("classifier", f"127.0.0.1:{classifier.port}", "--job-concurrency", "1",
                     "--job-chunk", "8")  # fmt: skip
        job = submit(gw, "train", train_rows(20000))
        job_id = str(job["job"])
        while int(gw.job(job_id)["done"]) < 100:
            time.sleep(0.02)
        cancelled = gw.http.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        time.sleep(0.5)
        settled = gw.job(job_id)
        time.sleep(0.5)
        assert gw.job(job_id)["done"] == settled["done"] < 20000
        results = gw.results(job_id)
        assert len(results) == 20000
        ran = [r for r in results if "result" in r]
        assert len(ran) == settled["done"]
        assert results[-1]["error"]["code"] == "not_run"
        trained = sum(gw.http.post("/v1/get_labels").json()["result"].values())
        assert trained == len(ran)
        again = gw.http.delete(f"/v1/jobs/{job_id}")
        assert again.status_code == 409 and "purge=true" in again.json()["message"]
        assert gw.http.delete(f"/v1/jobs/{job_id}", params={"purge": "true"}).status_code == 200
        assert gw.http.get(f"/v1/jobs/{job_id}").status_code == 404
    finally:
        classifier.stop()


def test_finished_jobs_are_deleted_after_the_ttl(
    kvs_server: ServerProcess, gateway: Callable[..., Gateway]
) -> None:
    gw = gateway("kvs", f"127.0.0.1:{kvs_server.port}", "--job-ttl", "1s")
    job = submit(gw, "get", [{"key": "a"}])
    wait_job(gw, str(job["job"]))
    deadline = time.monotonic() + 10
    while gw.http.get(f"/v1/jobs/{job['job']}").status_code == 200:
        assert time.monotonic() < deadline, "the job outlived its TTL"
        time.sleep(0.1)
    gone = gw.http.get(f"/v1/jobs/{job['job']}")
    assert gone.status_code == 404 and "--job-ttl" in gone.json()["message"]


def _kill_mid_job(gw: Gateway, job_id: str, at: int) -> float:
    """Kill -9 the gateway once ``at`` inputs are done; the longest time (s) the done count
    stood still while the job ran."""
    changed = time.monotonic()
    last = 0
    longest = 0.0
    while last < at:
        done = int(gw.job(job_id)["done"])
        now = time.monotonic()
        if done != last:
            longest, changed, last = max(longest, now - changed), now, done
        time.sleep(0.02)
    gw.process.kill()
    return longest


def test_kill_9_mid_job_an_update_method_is_never_applied_twice(
    classifier: ServerProcess, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    """``train`` is not #@analysis: the inputs at the upstream when the gateway died get
    the error ``interrupted`` (applied or not, never twice); every other input gets
    exactly one result, and none with a stored result is sent again."""
    total = 12000
    datadir = tmp_path / "jobs"
    slow = ("--job-concurrency", "2", "--job-chunk", "32")
    try:
        gw = gateway("classifier", f"127.0.0.1:{classifier.port}", *slow, datadir=datadir)
        job_id = str(submit(gw, "train", train_rows(total))["job"])
        still = _kill_mid_job(gw, job_id, total // 3)
        assert still < 1.0, "the progress figures move at least once a second"
        gw = gateway("classifier", f"127.0.0.1:{classifier.port}", *slow, datadir=datadir)
        done = wait_job(gw, job_id, timeout=120)
        assert done["state"] == "completed" and done["done"] == total
        results = gw.results(job_id)
        assert [r["line"] for r in results] == list(range(1, total + 1))
        interrupted = [r for r in results if "error" in r]
        assert all(r["error"]["code"] == "interrupted" for r in interrupted)
        # The chunk marked sent at the kill (and results not yet written) had no result.
        assert done["errors"] == len(interrupted) and 1 <= len(interrupted) < total // 10
        ok = total - len(interrupted)
        assert all(r["result"] == 1 for r in results if "result" in r)
        applied = sum(gw.http.post("/v1/get_labels").json()["result"].values())
        # Each stored result was applied once; an interrupted input at most once.
        assert ok <= applied <= ok + len(interrupted)
    finally:
        classifier.stop()


def test_kill_9_mid_job_an_analysis_method_resumes_with_every_result(
    kvs_server: ServerProcess, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    """``get`` is #@analysis: inputs interrupted by the kill are sent again."""
    upstream = f"127.0.0.1:{kvs_server.port}"
    total = 30000
    datadir = tmp_path / "jobs"
    slow = ("--job-concurrency", "2", "--job-chunk", "64")
    with httpx.Client(base_url=gateway("kvs", upstream).url) as http:
        for i in range(10):
            http.post("/v1/put", json={"key": f"r{i}", "value": f"v{i}"})
    gw = gateway("kvs", upstream, *slow, datadir=datadir)
    job_id = str(submit(gw, "get", [{"key": f"r{i % 10}"} for i in range(total)])["job"])
    _kill_mid_job(gw, job_id, 3000)
    gw = gateway("kvs", upstream, *slow, datadir=datadir)
    done = wait_job(gw, job_id, timeout=120)
    assert done["state"] == "completed" and done["errors"] == 0
    results = gw.results(job_id)
    assert results == [{"line": i + 1, "result": f"v{i % 10}"} for i in range(total)]


def test_through_a_proxy_a_job_spreads_as_the_routing_says(
    gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    """kvs ``put`` is ``#@cht`` with two replicas: over three servers, every key of the job
    lands on two of them, and each server holds some."""
    servers = []
    try:
        for index in range(3):
            folder = tmp_path / f"s{index}"
            folder.mkdir()
            servers.append(start_server(KVS_DIR / "kvs_impl.py", folder, "{}", cwd=KVS_DIR))
        members = ",".join(f"127.0.0.1:{s.port}" for s in servers)
        args = ["--rpc-port", "0", "--servers", members]
        with ServerProcess(KVS_DIR / "kvs_proxy.py", args, cwd=KVS_DIR) as proxy:
            gw = gateway("kvs", f"127.0.0.1:{proxy.port}")
            job = submit(gw, "put", [{"key": f"k{i}", "value": "v"} for i in range(300)])
            assert wait_job(gw, str(job["job"]))["errors"] == 0
            status = gw.http.get("/v1/get_status").json()["result"]
            counts = sorted(int(s["num_keys"]) for s in status.values())
            assert len(counts) == 3 and sum(counts) == 600 and 0 < counts[0] <= counts[-1] < 300
            assert gw.http.get("/v1/get_proxy_status").status_code == 200
            page = gw.http.get("/v1/upstream").json()
            assert page["kind"] == "proxy" and len(page["servers"]) == 3
    finally:
        for server in servers:
            server.stop()
