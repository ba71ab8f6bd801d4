"""Cluster configs in ZooKeeper (jubaconfig): the functions, their guards and the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from runtime.cluster.zookeeper import paths
from runtime.cluster.zookeeper.config import (
    check_config_text,
    delete_config,
    list_configs,
    read_config,
    read_config_from,
    write_config,
)
from runtime.cluster.zookeeper.lock import config_read_lock
from runtime.errors import ConfigError, MembershipError
from runtime.tools.jubaconfig import main

TYPE, NAME = "classifier", "c1"
CONFIG = '{"method": "PA", "parameter": {"regularization_weight": 1.0}}'


# -- text checks (no ZooKeeper) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "config is empty: f.json"),
        (" \n\t", "config is empty: f.json"),
        ('{"a": 1,}', r"syntax error in configuration: f\.json:1:9: "),
        ('{\n  "a": \n}', r"syntax error in configuration: f\.json:3:1: Expecting value"),
        ("[1, 2]", "configuration must be a JSON object, not list: f.json"),
        ('"text"', "configuration must be a JSON object, not str"),
        ("[" * 100_000, "syntax error in configuration: f.json"),
    ],
)
def test_bad_config_text_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_config_text(text, "f.json")


def test_good_config_text_passes() -> None:
    check_config_text(CONFIG)
    check_config_text('{"名前": "値"}')


# -- against ZooKeeper ------------------------------------------------------------------------


@pytest.mark.zookeeper
def test_write_read_overwrite_list_delete(zk_client: KazooClient) -> None:
    write_config(zk_client, TYPE, NAME, CONFIG)
    assert read_config(zk_client, TYPE, NAME) == CONFIG
    assert zk_client.get(f"/jubatus/config/{TYPE}/{NAME}")[0] == CONFIG.encode()
    assert zk_client.get_children(paths.config_lock_path(TYPE, NAME)) == []  # lock released

    unicode_config = '{"name": "日本語"}'
    write_config(zk_client, TYPE, NAME, unicode_config)
    assert read_config(zk_client, TYPE, NAME) == unicode_config
    write_config(zk_client, TYPE, "c2", "{}")
    write_config(zk_client, "recommender", "r", '{"method": "lsh"}')
    assert list_configs(zk_client) == {
        (TYPE, NAME): unicode_config,
        (TYPE, "c2"): "{}",
        ("recommender", "r"): '{"method": "lsh"}',
    }
    assert list(list_configs(zk_client, "recommender")) == [("recommender", "r")]
    assert list_configs(zk_client, "nosuchtype") == {}

    delete_config(zk_client, TYPE, NAME)
    with pytest.raises(ConfigError, match=f"config does not exist: /jubatus/config/{TYPE}/{NAME}"):
        read_config(zk_client, TYPE, NAME)
    with pytest.raises(ConfigError, match="config does not exist"):
        delete_config(zk_client, TYPE, NAME)
    assert list(list_configs(zk_client)) == [(TYPE, "c2"), ("recommender", "r")]


@pytest.mark.zookeeper
def test_list_on_an_empty_zookeeper(zk_client: KazooClient) -> None:
    assert list_configs(zk_client) == {}


@pytest.mark.zookeeper
def test_bad_text_never_reaches_zookeeper(zk_client: KazooClient) -> None:
    write_config(zk_client, TYPE, NAME, CONFIG)
    with pytest.raises(ConfigError, match="syntax error"):
        write_config(zk_client, TYPE, NAME, "{broken", source="my.json")
    with pytest.raises(ConfigError, match="config is empty"):
        write_config(zk_client, TYPE, NAME, "")
    assert read_config(zk_client, TYPE, NAME) == CONFIG


@pytest.mark.zookeeper
def test_running_servers_block_changes_unless_forced(zk_client: KazooClient) -> None:
    write_config(zk_client, TYPE, NAME, CONFIG)
    zk_client.create(
        f"{paths.nodes_path(TYPE, NAME)}/127.0.0.1_9199", ephemeral=True, makepath=True
    )
    with pytest.raises(ConfigError, match=rf"any server is running: {TYPE}, {NAME} \(127"):
        write_config(zk_client, TYPE, NAME, "{}")
    with pytest.raises(ConfigError, match="any server is running"):
        delete_config(zk_client, TYPE, NAME)
    assert read_config(zk_client, TYPE, NAME) == CONFIG
    write_config(zk_client, TYPE, NAME, "{}", force=True)
    assert read_config(zk_client, TYPE, NAME) == "{}"
    delete_config(zk_client, TYPE, NAME, force=True)
    assert list_configs(zk_client) == {}


@pytest.mark.zookeeper
def test_a_held_config_lock_blocks_writers(zk_client: KazooClient, zk_hosts: str) -> None:
    server = KazooClient(hosts=zk_hosts)
    server.start(timeout=10)
    try:
        lock = config_read_lock(server, TYPE, NAME)  # what a running server holds
        assert lock.try_acquire()
        with pytest.raises(ConfigError, match="any user is using config"):
            write_config(zk_client, TYPE, NAME, CONFIG, lock_tries=2, lock_retry_interval=0.05)
        lock.release()
        write_config(zk_client, TYPE, NAME, CONFIG, lock_tries=2, lock_retry_interval=0.05)
    finally:
        server.stop()
        server.close()
    assert read_config(zk_client, TYPE, NAME) == CONFIG


@pytest.mark.zookeeper
def test_bad_type_or_name_is_refused(zk_client: KazooClient) -> None:
    with pytest.raises(ValueError, match="name"):
        write_config(zk_client, TYPE, "a/b", CONFIG)
    with pytest.raises(ValueError, match="type"):
        read_config(zk_client, "", NAME)


@pytest.mark.zookeeper
def test_read_config_from_hosts(zk_client: KazooClient, zk_hosts: str) -> None:
    write_config(zk_client, TYPE, NAME, CONFIG)
    assert read_config_from(zk_hosts, TYPE, NAME) == (CONFIG, f"/jubatus/config/{TYPE}/{NAME}")
    with pytest.raises(ConfigError, match="config does not exist"):
        read_config_from(zk_hosts, TYPE, "missing")
    zk_client.create(paths.config_path(TYPE, "broken"), b"{not json")  # written by hand
    with pytest.raises(ConfigError, match=f"syntax error in configuration: /jubatus/config/{TYPE}"):
        read_config_from(zk_hosts, TYPE, "broken")
    zk_client.create(paths.config_path(TYPE, "binary"), b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_config(zk_client, TYPE, "binary")


def test_read_config_from_an_unreachable_zookeeper() -> None:
    with pytest.raises(MembershipError, match=r"cannot connect zk in 0\.5 sec"):
        read_config_from("127.0.0.1:1", TYPE, NAME, timeout=0.5)
    with pytest.raises(MembershipError, match="bad ZooKeeper address"):
        read_config_from("127.0.0.1:notaport", TYPE, NAME, timeout=0.5)


# -- the CLI ----------------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.zookeeper
def test_cli_round_trip(zk_hosts: str, tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(CONFIG, encoding="utf-8")
    common = ["-t", TYPE, "-n", NAME, "-z", zk_hosts]
    assert run_cli("-c", "write", "-f", str(config_file), *common) == (0, "", "")
    assert run_cli("-c", "read", *common) == (0, CONFIG + "\n", "")
    code, out, _ = run_cli("-c", "list", "-z", zk_hosts)
    assert (code, out) == (0, f"{TYPE}/{NAME}:\n{CONFIG}\n")
    assert run_cli("-c", "delete", *common) == (0, "", "")
    code, _, err = run_cli("-c", "read", *common)
    assert code == 1
    assert err == f"jubaconfig: error: config does not exist: /jubatus/config/{TYPE}/{NAME}\n"


@pytest.mark.zookeeper
def test_cli_failures_exit_1_with_the_reason(zk_hosts: str, tmp_path: Path) -> None:
    common = ["-t", TYPE, "-n", NAME, "-z", zk_hosts]
    empty = tmp_path / "empty.json"
    empty.write_text("", encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": }', encoding="utf-8")
    cases = [
        (["-c", "write", "-f", str(empty)], "config is empty"),
        (["-c", "write", "-f", str(bad)], f"syntax error in configuration: {bad}:1:7"),
        (["-c", "write", "-f", str(tmp_path / "missing.json")], "cannot read"),
        (["-c", "delete"], "config does not exist"),
    ]
    for argv, message in cases:
        code, out, err = run_cli(*argv, *common)
        assert code == 1, argv
        assert out == ""
        assert err.startswith("jubaconfig: error: ") and message in err, err


def test_cli_usage_errors_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZK", raising=False)
    cases = [
        (["-c", "read", "-t", TYPE, "-n", NAME], "give ZooKeeper with -z"),
        (["-c", "read", "-t", TYPE, "-z", "h:1"], "needs -t TYPE and -n NAME"),
        (["-c", "write", "-t", TYPE, "-n", NAME, "-z", "h:1"], "needs -f FILE"),
        (["-c", "read", "-t", "a/b", "-n", NAME, "-z", "h:1"], "cannot be a ZooKeeper path"),
        (["-c", "list", "-z", "h:1", "--timeout", "0"], "--timeout must be > 0"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(*argv)
        assert code == 2, argv
        assert message in err, err
    assert run_cli("-c", "explode")[0] == 2  # argparse: invalid choice
    assert run_cli()[0] == 2  # -c is required


def test_cli_unreachable_zookeeper_exits_1() -> None:
    code, _, err = run_cli("-c", "list", "-z", "127.0.0.1:1", "--timeout", "0.5")
    assert code == 1
    assert "cannot connect zk in 0.5 sec: 127.0.0.1:1" in err


@pytest.mark.zookeeper
def test_cli_as_a_module_with_zk_from_the_environment(zk_hosts: str) -> None:
    env_run = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.tools.jubaconfig",
            "-c",
            "write",
            "-f",
            "-",
            "-t",
            TYPE,
            "-n",
            NAME,
        ],
        input=json.dumps({"method": "PA"}),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ZK": zk_hosts},
        check=False,
    )
    assert (env_run.returncode, env_run.stderr) == (0, "")
    read = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.tools.jubaconfig",
            "-c",
            "read",
            "-t",
            TYPE,
            "-n",
            NAME,
            "-z",
            zk_hosts,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (read.returncode, read.stdout) == (0, '{"method": "PA"}\n')
