"""kvs as a cluster of real processes: 3 servers behind 2 proxies, static and ZooKeeper.

1 000 keys put through one proxy are read back through the other; each key lives on
exactly its ``cht(2)`` replicas; a killed server costs no read that had a live replica,
and writes that touch it fail loudly instead of half-succeeding.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType

import pytest

from runtime.errors import RemoteError, TypeMismatch
from runtime.rpc.client import Client
from runtime.testing import ManagedZooKeeper, ServerProcess

REPO = Path(__file__).resolve().parents[2]
KEYS = 1000

pytestmark = pytest.mark.e2e


def _server(stack: ExitStack, kvs_dir: Path, tmp: Path, *extra: str) -> ServerProcess:
    args = [
        "--rpc-port",
        "0",
        "--configpath",
        str(kvs_dir / "config.json"),
        "--datadir",
        str(tmp),
        *extra,
    ]
    return stack.enter_context(ServerProcess(kvs_dir / "kvs_impl.py", args, cwd=kvs_dir))


def _proxy(stack: ExitStack, kvs_dir: Path, *membership: str) -> ServerProcess:
    args = ["--rpc-port", "0", "--timeout", "2", *membership]
    return stack.enter_context(ServerProcess(kvs_dir / "kvs_proxy.py", args, cwd=kvs_dir))


def _check_cluster(
    kvs: ModuleType, proxies: list[ServerProcess], servers: list[ServerProcess]
) -> None:
    with (
        kvs.Kvs("127.0.0.1", proxies[0].port, "c1") as first,
        kvs.Kvs("127.0.0.1", proxies[1].port, "c1") as second,
    ):
        for i in range(KEYS):
            assert first.put(f"key{i}", f"value{i}") is True
        assert [second.get(f"key{i}") for i in range(KEYS)] == [f"value{i}" for i in range(KEYS)]
        status = second.get_status()
        assert sorted(status) == sorted(f"127.0.0.1_{s.port}" for s in servers)
        assert sum(int(s["num_keys"]) for s in status.values()) == 2 * KEYS, "each key on exactly 2"
        for server in servers:
            with kvs.Kvs("127.0.0.1", server.port, "c1") as direct:
                held = int(direct.get_status()[f"127.0.0.1_{server.port}"]["num_keys"])
                assert KEYS * 2 / 3 * 0.6 < held < KEYS * 2 / 3 * 1.4


def _kill_one_and_read(
    kvs: ModuleType, proxy: ServerProcess, victim: ServerProcess
) -> tuple[int, int]:
    victim.kill()
    failed_reads = 0
    failed_writes = 0
    with kvs.Kvs("127.0.0.1", proxy.port, "c1") as client:
        for i in range(KEYS):
            try:
                assert client.get(f"key{i}") == f"value{i}"
            except RemoteError:
                failed_reads += 1
        for i in range(50):
            try:
                client.put(f"key{i}", "new")
            except RemoteError as error:
                # The write reached the live replica (it is kept, and repaired onto the
                # victim when it is back); the error names the replica it missed.
                assert f"not on 127.0.0.1:{victim.port}" in str(error)
                assert "applied on" in str(error)
                failed_writes += 1
    return failed_reads, failed_writes


def test_static_cluster(kvs_dir: Path, kvs: ModuleType, tmp_path: Path) -> None:
    with ExitStack() as stack:
        servers = [_server(stack, kvs_dir, tmp_path) for _ in range(3)]
        members = ",".join(f"127.0.0.1:{s.port}" for s in servers)
        proxies = [_proxy(stack, kvs_dir, "--servers", members) for _ in range(2)]
        _check_cluster(kvs, proxies, servers)
        with Client("127.0.0.1", proxies[0].port, timeout=10) as raw:
            for bad_key in (b"\xff\xfe", 5, ["key1"]):  # hashed keys must be text
                with pytest.raises(TypeMismatch):
                    raw.call("get", ["c1", bad_key])
            assert raw.call("get", ["c1", "key1"]) == b"value1", "the proxy still serves"
        failed_reads, failed_writes = _kill_one_and_read(kvs, proxies[0], servers[0])
        assert failed_reads == 0
        assert 0 < failed_writes < 50
        for proxy in proxies:
            assert proxy.stop(signal.SIGTERM) == 0


def test_proxy_timeout_bounds_a_call_to_a_server_that_stopped_answering(
    kvs_dir: Path, kvs: ModuleType, tmp_path: Path
) -> None:
    """``--timeout`` on the proxy is per forwarded call: with one of two servers stopped
    (SIGSTOP: connected, silent), a read fails over after it and later reads do not wait
    on that server; writes fail, naming the server, until it answers again."""
    timeout = 0.5
    with ExitStack() as stack:
        servers = [_server(stack, kvs_dir, tmp_path) for _ in range(2)]
        members = ",".join(f"127.0.0.1:{s.port}" for s in servers)
        args = ["--rpc-port", "0", "--timeout", str(timeout), "--servers", members]
        proxy = stack.enter_context(ServerProcess(kvs_dir / "kvs_proxy.py", args, cwd=kvs_dir))
        keys = [f"key{i}" for i in range(20)]
        with kvs.Kvs("127.0.0.1", proxy.port, "c1", timeout=30) as client:
            for key in keys:
                assert client.put(key, key.upper()) is True
            assert client.get_proxy_status()[f"127.0.0.1_{proxy.port}"]["timeout"] == "0.5"
            stopped = servers[0]
            stopped.send_signal(signal.SIGSTOP)
            try:
                started = time.monotonic()
                assert [client.get(key) for key in keys] == [key.upper() for key in keys]
                reads = time.monotonic() - started
                started = time.monotonic()
                with pytest.raises(RemoteError) as failed:
                    client.put("key0", "new")
                write = time.monotonic() - started
            finally:
                stopped.send_signal(signal.SIGCONT)
            assert f"not on 127.0.0.1:{stopped.port}" in str(failed.value)
            # the reads found it silent: the write does not wait on it again
            assert write < timeout + 3, write
            # the first read that meets the stopped server waits one timeout; after that
            # the proxy reads its keys from the other replica first
            assert reads < 2 * timeout + 2, reads
            # once the proxy's probe sees it answer (and repairs it), writes reach both
            deadline = time.monotonic() + 20
            while True:
                try:
                    assert client.put("key0", "back") is True
                    break
                except RemoteError:
                    assert time.monotonic() < deadline, "the resumed server is never up again"
                    time.sleep(0.2)
            assert client.get("key0") == "back"


@pytest.mark.zookeeper
def test_zookeeper_cluster_survives_a_killed_server(
    kvs_dir: Path, kvs: ModuleType, tmp_path: Path, zk_hosts: str
) -> None:
    cluster = ["--zookeeper", zk_hosts, "--name", "c1", "--zookeeper_timeout", "2"]
    with ExitStack() as stack:
        subprocess.run(
            [sys.executable, "-m", "runtime.tools.jubaconfig", "-c", "write", "-t", "kvs",
             "-n", "c1", "-f", str(kvs_dir / "config.json"), "-z", zk_hosts],
            check=True,
        )  # fmt: skip
        servers = [_server(stack, kvs_dir, tmp_path, *cluster) for _ in range(3)]
        proxies = [
            _proxy(stack, kvs_dir, "--zookeeper", zk_hosts, "--zookeeper_timeout", "2")
            for _ in range(2)
        ]
        _check_cluster(kvs, proxies, servers)
        started = time.monotonic()
        failed_reads, _ = _kill_one_and_read(kvs, proxies[0], servers[0])
        assert failed_reads == 0
        # After the session of the dead server expires, writes succeed again.
        with kvs.Kvs("127.0.0.1", proxies[0].port, "c1") as client:
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert all(client.put(f"key{i}", "after") for i in range(50))
                    break
                except RemoteError:
                    assert time.monotonic() < deadline, "the proxy never dropped the dead server"
                    time.sleep(0.2)
            noticed = time.monotonic() - started
            assert noticed < 10
            assert len(client.get_status()) == 2
        # The server comes back and rejoins without restarting the proxies.
        servers.append(_server(stack, kvs_dir, tmp_path, *cluster))
        with kvs.Kvs("127.0.0.1", proxies[1].port, "c1") as client:
            deadline = time.monotonic() + 10
            while len(client.get_status()) != 3:
                assert time.monotonic() < deadline
                time.sleep(0.1)


@pytest.mark.zookeeper
def test_serving_continues_while_zookeeper_is_down_and_registration_recovers(
    kvs_dir: Path, kvs: ModuleType, tmp_path: Path, private_zookeeper: ManagedZooKeeper
) -> None:
    hosts = private_zookeeper.hosts
    cluster = ["--zookeeper", hosts, "--name", "c1", "--zookeeper_timeout", "2"]
    with ExitStack() as stack:
        subprocess.run(
            [sys.executable, "-m", "runtime.tools.jubaconfig", "-c", "write", "-t", "kvs",
             "-n", "c1", "-f", str(kvs_dir / "config.json"), "-z", hosts],
            check=True,
        )  # fmt: skip
        servers = [_server(stack, kvs_dir, tmp_path, *cluster) for _ in range(2)]
        proxy = _proxy(stack, kvs_dir, "--zookeeper", hosts, "--zookeeper_timeout", "2")
        with kvs.Kvs("127.0.0.1", proxy.port, "c1") as client:
            assert all(client.put(f"k{i}", "v") for i in range(100))
            private_zookeeper.stop()
            # Served on the last known membership while ZooKeeper is away.
            assert [client.get(f"k{i}") for i in range(100)] == ["v"] * 100
            assert all(client.put(f"k{i}", "w") for i in range(100))
            time.sleep(3)
            private_zookeeper.restart()
            assert [client.get(f"k{i}") for i in range(100)] == ["w"] * 100
        # A proxy started afresh finds both servers registered again.
        fresh = _proxy(stack, kvs_dir, "--zookeeper", hosts, "--zookeeper_timeout", "2")
        with kvs.Kvs("127.0.0.1", fresh.port, "c1") as client:
            deadline = time.monotonic() + 15
            while len(client.get_status()) != len(servers):
                assert time.monotonic() < deadline, "the servers never registered again"
                time.sleep(0.2)
            assert client.get("k1") == "w"
