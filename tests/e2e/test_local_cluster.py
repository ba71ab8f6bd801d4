"""``jubako cluster up|ps|down`` and ``jubako status`` as a user runs them: real commands,
real processes on 127.0.0.1, nothing left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from runtime.tools.local_cluster import STATE_FILE, pid_alive

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
KVS = REPO / "examples" / "kvs"


def jubako(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.tools.jubako", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def _up(directory: Path, *extra: str) -> dict[str, object]:
    result = jubako(
        "cluster", "up", "--server", str(KVS / "kvs_impl.py"), "--proxy",
        str(KVS / "kvs_proxy.py"), "--config", str(KVS / "config.json"), "--servers", "3",
        "--proxies", "1", "--name", "demo", "--dir", str(directory), *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "is up" in result.stdout
    state: dict[str, object] = json.loads((directory / STATE_FILE).read_text())
    return state


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "cluster"
    yield directory
    if (directory / STATE_FILE).exists():  # a failed test still stops its cluster
        jubako("cluster", "down", "--dir", str(directory))


def _pids(state: dict[str, object]) -> dict[str, list[int]]:
    processes = state["processes"]
    assert isinstance(processes, list)
    roles: dict[str, list[int]] = {}
    for process in processes:
        roles.setdefault(process["role"], []).append(process["pid"])
    return roles


def _proxy_port(state: dict[str, object]) -> int:
    processes = state["processes"]
    assert isinstance(processes, list)
    [proxy] = [p for p in processes if p["role"] == "proxy"]
    port: int = proxy["port"]
    return port


@pytest.mark.parametrize("zookeeper", ["none", "local"])
def test_up_serve_status_and_down_leave_nothing_behind(
    cluster_dir: Path, zookeeper: str, kvs: ModuleType
) -> None:
    state = _up(cluster_dir, "--zookeeper", zookeeper)
    pids = _pids(state)
    assert len(pids["server"]) == 3 and len(pids["proxy"]) == 1
    assert ("zookeeper" in pids) == (zookeeper == "local")
    port = _proxy_port(state)
    with kvs.Kvs("127.0.0.1", port, "demo") as client:
        for i in range(20):
            assert client.put(f"k{i}", f"v{i}") is True
        assert [client.get(f"k{i}") for i in range(20)] == [f"v{i}" for i in range(20)]
    ps = jubako("cluster", "ps", "--dir", str(cluster_dir))
    assert ps.returncode == 0 and ps.stdout.count("running") == sum(map(len, pids.values()))
    status = jubako("status", f"127.0.0.1:{port}", "--name", "demo")
    assert status.returncode == 0, status.stderr
    assert "== get_status" in status.stdout and "== get_proxy_status" in status.stdout
    servers = [p for p in state["processes"] if p["role"] == "server"]  # type: ignore[attr-defined]
    for server in servers:
        assert f"127.0.0.1_{server['port']}" in status.stdout
    server_status = jubako("status", f"127.0.0.1:{servers[0]['port']}", "--name", "demo", "--json")
    as_json = json.loads(server_status.stdout)
    assert list(as_json) == ["get_status"], "a server has no proxy status"
    assert as_json["get_status"][f"127.0.0.1_{servers[0]['port']}"]["num_keys"] != ""
    # A member asked without --name answers too (any cluster name is served, as in Jubatus).
    unnamed = jubako("status", f"127.0.0.1:{servers[0]['port']}", "--json")
    assert unnamed.returncode == 0, unnamed.stderr
    member = f"127.0.0.1_{servers[0]['port']}"
    unnamed_status = json.loads(unnamed.stdout)["get_status"][member]
    assert unnamed_status["num_keys"] == as_json["get_status"][member]["num_keys"]
    down = jubako("cluster", "down", "--dir", str(cluster_dir))
    assert down.returncode == 0, down.stderr
    assert f"stopped {sum(map(len, pids.values()))} process(es)" in down.stdout
    assert "SIGKILL" not in down.stdout
    for pid in (pid for group in pids.values() for pid in group):
        assert not pid_alive(pid), f"pid {pid} survived 'down'"
    assert not (cluster_dir / STATE_FILE).exists()
    assert (cluster_dir / "logs" / "server-0.log").is_file(), "logs stay"


def test_up_twice_down_twice_and_a_server_that_cannot_start(
    cluster_dir: Path, tmp_path: Path
) -> None:
    missing = jubako("cluster", "down", "--dir", str(cluster_dir))
    assert missing.returncode == 1 and "no cluster recorded" in missing.stderr
    _up(cluster_dir, "--servers", "1")
    again = jubako(
        "cluster", "up", "--server", str(KVS / "kvs_impl.py"), "--proxy",
        str(KVS / "kvs_proxy.py"), "--config", str(KVS / "config.json"),
        "--dir", str(cluster_dir),
    )  # fmt: skip
    assert again.returncode == 1 and "still running" in again.stderr
    assert jubako("cluster", "down", "--dir", str(cluster_dir)).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    failed = jubako(
        "cluster", "up", "--server", str(KVS / "kvs_impl.py"), "--proxy",
        str(KVS / "kvs_proxy.py"), "--config", str(bad), "--dir", str(tmp_path / "other"),
    )  # fmt: skip
    assert failed.returncode == 1
    assert "server 0 exited" in failed.stderr and "syntax error in configuration" in failed.stderr
    assert not (tmp_path / "other" / STATE_FILE).exists(), "nothing is left recorded"
    usage = jubako("status", "nonsense")
    assert usage.returncode == 2 and "HOST:PORT" in usage.stderr


def test_a_corrupt_state_file_is_a_clear_error_and_is_kept(cluster_dir: Path) -> None:
    cluster_dir.mkdir(parents=True)
    state = cluster_dir / STATE_FILE
    for garbage in ("{not json", '{"name": "x"}', "[]"):
        state.write_text(garbage)
        for action in ("ps", "down"):
            result = jubako("cluster", action, "--dir", str(cluster_dir))
            assert result.returncode == 1, result.stderr
            assert str(state) in result.stderr or "not a cluster state file" in result.stderr
            assert "Traceback" not in result.stderr
        assert state.read_text() == garbage, "a file it cannot read is not deleted"
