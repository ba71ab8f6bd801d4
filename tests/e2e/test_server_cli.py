"""Server and proxy mains: bad flags, bad configs and a taken port give clear errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "kvs"

pytestmark = pytest.mark.e2e


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, script, *args], cwd=EXAMPLE, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rpc-port", "70000"], "rpc_port: 70000 is not a port"),
        (["--thread", "0"], "thread: 0 is below the minimum 1"),
        (["--zookeeper", "127.0.0.1:1"], "without name specified"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--timeout", "soon"], "invalid float value"),
    ],
)
def test_bad_flags_exit_2(args: list[str], message: str) -> None:
    result = run("kvs_impl.py", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_bad_configs_exit_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    missing = run("kvs_impl.py", "--rpc-port", "0", "--configpath", str(tmp_path / "none.json"))
    assert missing.returncode == 1 and "cannot read config" in missing.stderr
    invalid = run("kvs_impl.py", "--rpc-port", "0", "--configpath", str(broken))
    assert invalid.returncode == 1 and "config is not valid JSON" in invalid.stderr
    datadir = run("kvs_impl.py", "--rpc-port", "0", "--datadir", str(broken))
    assert datadir.returncode == 1 and "can't use datadir" in datadir.stderr
    garbage = tmp_path / "garbage.jubatus"
    garbage.write_bytes(b"\x00" * 100)
    model = run("kvs_impl.py", "--rpc-port", "0", "--model_file", str(garbage))
    assert model.returncode == 1 and "invalid file format" in model.stderr


def test_config_test_flag(tmp_path: Path) -> None:
    ok = run("kvs_impl.py", "--config_test", "--configpath", "config.json")
    assert ok.returncode == 0 and ok.stdout.strip() == "Configuration OK"


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        server = run("kvs_impl.py", "--rpc-port", port, "--configpath", "config.json")
        proxy = run("kvs_proxy.py", "--rpc-port", port, "--servers", "127.0.0.1:1")
    assert server.returncode == 1 and f"any process using port {port}?" in server.stderr
    assert proxy.returncode == 1 and f"any process using port {port}?" in proxy.stderr


def test_proxy_needs_exactly_one_membership() -> None:
    neither = run("kvs_proxy.py", "--rpc-port", "0")
    assert neither.returncode == 2 and "exactly one of --zookeeper" in neither.stderr
    bad = run("kvs_proxy.py", "--rpc-port", "0", "--servers", "nohost")
    assert bad.returncode == 1 and "is not HOST:PORT" in bad.stderr
