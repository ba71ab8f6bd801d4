"""Server and proxy mains: bad flags, bad configs and a taken port give clear errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.rpc.client import Client
from runtime.testing import ServerProcess

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
    assert invalid.returncode == 1
    assert f"syntax error in configuration: {broken}:1:2:" in invalid.stderr
    datadir = run("kvs_impl.py", "--rpc-port", "0", "--datadir", str(broken))
    assert datadir.returncode == 1 and "can't use datadir" in datadir.stderr
    garbage = tmp_path / "garbage.jubatus"
    garbage.write_bytes(b"\x00" * 100)
    model = run("kvs_impl.py", "--rpc-port", "0", "--model_file", str(garbage))
    assert model.returncode == 1 and "invalid file format" in model.stderr


def test_config_test_flag(tmp_path: Path) -> None:
    ok = run("kvs_impl.py", "--config_test", "--configpath", "config.json")
    assert ok.returncode == 0 and ok.stdout.strip() == "Configuration OK"
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": 1,\n')
    bad = run("kvs_impl.py", "--config_test", "--configpath", str(broken))
    assert bad.returncode == 1
    # Said once, on stdout, naming the file and where in it.
    assert bad.stdout.count("Configuration error") == 1, bad.stdout
    assert f"{broken}:2:1:" in bad.stdout
    assert "Configuration error" not in bad.stderr and "failed to start" not in bad.stderr


def engine(command: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = Path(sys.executable).parent / command
    return subprocess.run(
        [str(path), *args], cwd=EXAMPLE, capture_output=True, text=True, timeout=30
    )


def test_a_misspelt_config_key_gets_a_suggestion_and_the_file(tmp_path: Path) -> None:
    config = tmp_path / "classifier.json"
    config.write_text('{"method": "AROW", "paramter": {}, "converter": {}}')
    result = engine("jubaclassifier", "--rpc-port", "0", "--configpath", str(config))
    assert result.returncode == 1
    assert f"config {config}: paramter: unknown key; did you mean 'parameter'?" in result.stderr
    config.write_text('{"method": "PA", "converter": {"string_rulez": []}}')
    result = engine("jubaclassifier", "--rpc-port", "0", "--configpath", str(config))
    assert "converter.string_rulez: unknown key; did you mean 'string_rules'?" in result.stderr
    config.write_text('{"windowsize": 10}')
    result = engine("jubastat", "--rpc-port", "0", "--configpath", str(config))
    assert "windowsize: unknown key; did you mean 'window_size'?" in result.stderr


def test_no_config_says_so_as_jubatus_does_and_how_to_give_one() -> None:
    result = engine("jubaclassifier", "--rpc-port", "0")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "config path or model file must be specified for standalone mode"
    assert "give a JSON config file with --configpath FILE" in lines[1]
    assert "without one the service says: method: required" in lines[1]
    assert lines[2].startswith("usage: jubaclassifier")


def test_zookeeper_without_a_name_is_jubatus_line_and_status_1() -> None:
    result = run("kvs_impl.py", "--zookeeper", "127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "can't start multinode mode without name specified"
    assert "usage: kvs_impl.py" in result.stderr


def test_version_says_jubatus_first_and_jubako_after() -> None:
    result = engine("jubaclassifier", "--version")
    assert result.returncode == 0
    assert re.fullmatch(r"jubatus-1\.1\.\d+ \(jubaclassifier\) jubako-\S+\n", result.stdout)
    proxy = engine("jubaclassifier_proxy", "-v")
    assert proxy.stdout.startswith("jubatus-1.1.1 (jubaclassifier_proxy) jubako-")


def _saved_kvs_model(tmp_path: Path, config_json: str, rows: dict[str, str]) -> Path:
    """A kvs server of ``config_json`` holding ``rows``, saved as ``m1``: the file."""
    config = tmp_path / "config.json"
    config.write_text(config_json)
    with ServerProcess(
        EXAMPLE / "kvs_impl.py",
        ["--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp_path)],
        cwd=EXAMPLE,
    ) as first:
        with Client("127.0.0.1", first.port, timeout=10) as client:
            for key, value in rows.items():
                assert client.call("put", ["", key, value]) is True
            (path,) = client.call("save", ["", "m1"]).values()
    return Path(path.decode() if isinstance(path, bytes) else path)


def test_a_model_file_alone_starts_a_standalone_server(tmp_path: Path) -> None:
    """``-m`` without ``-f``: the saved config is the server's (as in Jubatus)."""
    model = str(_saved_kvs_model(tmp_path, '{"note": "saved with the model"}', {"k": "v"}))
    args = ["--rpc-port", "0", "--model_file", model, "--datadir", str(tmp_path)]
    with ServerProcess(EXAMPLE / "kvs_impl.py", args, cwd=EXAMPLE) as second:
        with Client("127.0.0.1", second.port, timeout=10) as client:
            assert client.call("get", ["", "k"]) == b"v"
            saved = client.call("get_config", [""])
            assert "saved with the model" in (saved.decode() if isinstance(saved, bytes) else saved)


def test_a_model_file_whose_model_does_not_fit_stops_the_start_before_listening(
    tmp_path: Path,
) -> None:
    """The model is loaded before the server listens (as in Jubatus): a sound container
    whose model the service cannot take ends the start, and no "listening on" line was
    printed for a supervisor to take as ready."""
    from runtime.server.persistence import encode_model_file, read_model_file

    model = _saved_kvs_model(tmp_path, "{}", {})
    sound = read_model_file(model, service_type=None, user_data_version=None)
    model.write_bytes(
        encode_model_file(
            service_type=sound.service_type,
            model_id="m1",
            config_json=sound.config_json,
            user_data_version=sound.user_data_version,
            payload=["not", "a", "kvs", "model"],
        )
    )
    result = run("kvs_impl.py", "--rpc-port", "0", "--model_file", str(model))
    assert result.returncode != 0
    assert "server failed to start" in result.stderr
    assert "listening on" not in result.stderr + result.stdout


def test_daemon_returns_at_once_and_logs_to_logdir(tmp_path: Path) -> None:
    """``-D``: the command returns 0 once the flags and config are checked; the server runs
    in the background, its log in ``--logdir``; a bad config still fails in front."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    bad = engine("jubaclassifier", "-D", "--logdir", str(logdir), "--rpc-port", "0")
    assert bad.returncode == 1 and bad.stderr.startswith("config path or model file")
    started = run(
        "kvs_impl.py", "-D", "--logdir", str(logdir), "--rpc-port", "0",
        "--configpath", "config.json", "--datadir", str(tmp_path),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 30
    pid = port = 0
    text = ""
    while time.monotonic() < deadline and not pid:
        for log in logdir.glob("kvs_impl.*.log"):
            text = log.read_text()
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
            if found:
                pid, port = int(log.name.split(".")[1]), int(found.group(1))
        time.sleep(0.1)
    assert pid, f"the daemon never logged that it listens: {text!r}"
    try:
        with Client("127.0.0.1", port, timeout=10) as client:
            (status,) = client.call("get_status", [""]).values()
            assert int(status[b"pid"]) == pid
            assert client.call("put", ["", "k", "v"]) is True
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _alive(pid):
        assert time.monotonic() < deadline, "the daemon did not stop on SIGTERM"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("script", "shown"),
    [
        ("kvs_impl.py", ["--thread THREAD\n  worker threads (default: 2)", "(default: /tmp)",
                         "0 never (default: 0)", "(default: 16)", "(default: 512)"]),
        ("kvs_proxy.py", ["(default: 10)", "(default: 60)", "0 unlimited (default: 0)"]),
    ],
)  # fmt: skip
def test_help_shows_the_defaults(script: str, shown: list[str]) -> None:
    result = run(script, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines at the terminal width
    for fragment in shown:
        assert " ".join(fragment.split()) in text, fragment


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        server = run("kvs_impl.py", "--rpc-port", port, "--configpath", "config.json")
        proxy = run("kvs_proxy.py", "--rpc-port", port, "--servers", "127.0.0.1:1")
    # Jubatus's own words, which jubakit looks for to try another port
    assert server.returncode == 1
    assert f"server failed to start: any process using port {port}?\n" in server.stderr
    assert proxy.returncode == 1 and f"any process using port {port}?" in proxy.stderr


def test_proxy_needs_exactly_one_membership() -> None:
    neither = run("kvs_proxy.py", "--rpc-port", "0")
    assert neither.returncode == 2 and "exactly one of --zookeeper" in neither.stderr
    bad = run("kvs_proxy.py", "--rpc-port", "0", "--servers", "nohost")
    assert bad.returncode == 1 and "is not HOST:PORT" in bad.stderr
