"""``jubako batch`` against a real gateway: submit and wait with progress (plain lines, and
rich's bar on a terminal), status, fetch, cancel, and its errors."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.testing import ServerProcess
from tests.http.conftest import Gateway

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def jubako(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.tools.jubako", "batch", *args],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        input=None if stdin is None else stdin.decode(),
    )  # fmt: skip


SLOW_UPSTREAM = Path(__file__).with_name("slow_upstream.py")


@pytest.fixture
def slow_kvs(gateway: Callable[..., Gateway], tmp_path: Path) -> Iterator[Gateway]:
    """A kvs gateway running one call at a time to an upstream that answers each after
    1 ms: a job of 3000 takes over 3 s however fast the machine (progress is shown)."""
    upstream = ServerProcess(SLOW_UPSTREAM, ["0.001"], log_path=tmp_path / "upstream.log")
    with upstream:
        address = f"127.0.0.1:{upstream.port}"
        yield gateway("kvs", address, "--job-concurrency", "1", "--job-chunk", "16")


def puts(path: Path, count: int) -> Path:
    path.write_text(
        "".join(json.dumps({"key": f"k{i}", "value": f"v{i}"}) + "\n" for i in range(count))
    )
    return path


def test_submit_wait_shows_progress_and_writes_the_results(
    slow_kvs: Gateway, tmp_path: Path
) -> None:
    source, out = puts(tmp_path / "in.jsonl", 3000), tmp_path / "out.jsonl"
    done = jubako(
        "submit", slow_kvs.url, "put", "--input", str(source), "--wait", "--output", str(out)
    )
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip()
    assert len(job) == 12
    lines = done.stderr.splitlines()
    assert lines[0] == f"job {job}: 3000 inputs stored"
    progress = [line for line in lines if line.startswith(f"job {job}: running ")]
    assert progress, done.stderr  # at least one line a second while it ran
    assert "/3000 (" in progress[0] and "/s" in progress[0]
    assert lines[-1] == f"job {job}: completed, 3000 results in {out}, 0 errors"
    results = out.read_text().splitlines()
    assert len(results) == 3000 and json.loads(results[-1]) == {"line": 3000, "result": True}

    status = jubako("status", slow_kvs.url, job)
    assert status.returncode == 0 and "completed 3000/3000 (100%), 0 errors" in status.stdout
    as_json = json.loads(jubako("status", slow_kvs.url, job, "--json").stdout)
    assert as_json["state"] == "completed" and as_json["done"] == 3000
    part = jubako("fetch", slow_kvs.url, job, "--offset", "5", "--limit", "2")
    assert [json.loads(line)["line"] for line in part.stdout.splitlines()] == [6, 7]
    refused = jubako("cancel", slow_kvs.url, job)
    assert refused.returncode == 1 and "409" in refused.stderr and "purge=true" in refused.stderr
    assert jubako("cancel", slow_kvs.url, job, "--purge").returncode == 0
    gone = jubako("status", slow_kvs.url, job)
    assert gone.returncode == 1 and "404" in gone.stderr and f"no job '{job}'" in gone.stderr


def test_the_progress_bar_on_a_terminal(slow_kvs: Gateway, tmp_path: Path) -> None:
    source, out = puts(tmp_path / "in.jsonl", 3000), tmp_path / "out.jsonl"
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "runtime.tools.jubako", "batch", "submit", slow_kvs.url, "put",
               "--input", str(source), "--wait", "--output", str(out)]  # fmt: skip
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=follower, cwd=REPO, env=env)
    os.close(follower)
    screen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            screen += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and len(stdout.strip()) == 12
    text = screen.decode("utf-8", "replace")
    assert "━" in text  # rich's bar
    assert "3000/3000" in text and "completed" in text
    assert len(out.read_text().splitlines()) == 3000


def test_cancel_from_the_command_line(slow_kvs: Gateway, tmp_path: Path) -> None:
    submitted = jubako(
        "submit", slow_kvs.url, "put", "--input", str(puts(tmp_path / "in.jsonl", 50000))
    )
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    cancelled = jubako("cancel", slow_kvs.url, job)
    assert cancelled.returncode == 0 and f"job {job}: cancelled" in cancelled.stdout
    assert slow_kvs.job(job)["state"] == "cancelled"


def test_errors_are_said_plainly(slow_kvs: Gateway, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "a", "value": "b"}\n{"key": 1, "value": "b"}\n')
    refused = jubako("submit", slow_kvs.url, "put", "--input", str(bad))
    assert refused.returncode == 1
    assert "422 bad_input" in refused.stderr and "line 2: put: argument 0 (key)" in refused.stderr
    kept = jubako("submit", slow_kvs.url, "put", "--input", "-", "--keep-bad-lines", "--wait",
                  stdin=bad.read_bytes())  # fmt: skip
    assert kept.returncode == 0 and "1 bad lines kept" in kept.stderr
    rows = [json.loads(line) for line in kept.stdout.splitlines()[1:]]
    assert rows[0] == {"line": 1, "result": True} and rows[1]["error"]["status"] == 422
    missing = jubako("submit", slow_kvs.url, "put", "--input", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    nowhere = jubako("status", "http://127.0.0.1:1", "x", "--timeout", "2")
    assert nowhere.returncode == 1 and "http://127.0.0.1:1" in nowhere.stderr
    usage = jubako("submit", slow_kvs.url)
    assert usage.returncode == 2
