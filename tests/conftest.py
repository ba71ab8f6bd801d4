"""Shared pytest fixtures for tests that need real parts.

- ``zookeeper``: one private ZooKeeper for the whole session (:class:`ManagedZooKeeper`).
  Tests that stop or restart ZooKeeper take ``private_zookeeper`` instead.
- ``zk_hosts``: a connect string with a chroot of its own for this test, so tests never
  see each other's znodes; ``zk_client``: a started kazoo client on it.
- ``server_process``: a factory starting :class:`ServerProcess` es whose logs go to the
  test's temp dir; they are stopped after the test.
- ``tmp_datadir``: an empty, writable ``--datadir``.

When a test fails, the tail of every log it touched (ZooKeeper, server processes) is
appended to its report, so a failure in CI explains itself.

Mark tests that use ZooKeeper ``@pytest.mark.zookeeper``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from runtime.testing import ManagedZooKeeper, ServerProcess, TestingError

pytest_plugins = ["pytester"]  # tests/runtime/test_testing.py checks the failure reports

#: Per-test sources of log text for the failure report: (title, read function).
_LOGS = pytest.StashKey[list[tuple[str, Callable[[], str]]]]()
_SESSION_ZK = pytest.StashKey[ManagedZooKeeper]()

_LOG_TAIL_LINES = 60


def _add_log(node: pytest.Item | pytest.Collector, title: str, read: Callable[[], str]) -> None:
    node.stash.setdefault(_LOGS, []).append((title, read))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        logged: list[tuple[str, Callable[[], str]]] = item.stash.get(_LOGS, [])
        sources = list(logged)
        session_zk = item.config.stash.get(_SESSION_ZK, None)
        if session_zk is not None and "zookeeper" in getattr(item, "fixturenames", ()):
            sources.insert(0, ("ZooKeeper log", session_zk.log_text))
        for title, read in sources:
            text = "\n".join(read().splitlines()[-_LOG_TAIL_LINES:])
            report.sections.append((f"{title} (last {_LOG_TAIL_LINES} lines)", text))
    return report


def _start_zookeeper() -> ManagedZooKeeper:
    server = ManagedZooKeeper()
    try:
        server.start()
    except TestingError as error:
        server.close()
        pytest.fail(f"cannot start ZooKeeper: {error}", pytrace=False)
    return server


@pytest.fixture(scope="session")
def zookeeper(request: pytest.FixtureRequest) -> Iterator[ManagedZooKeeper]:
    """A ZooKeeper shared by the session. Do not stop it: use ``private_zookeeper``."""
    server = _start_zookeeper()
    request.config.stash[_SESSION_ZK] = server
    yield server
    del request.config.stash[_SESSION_ZK]
    server.close()


@pytest.fixture
def private_zookeeper(request: pytest.FixtureRequest) -> Iterator[ManagedZooKeeper]:
    """A ZooKeeper of this test's own, to stop and restart at will."""
    server = _start_zookeeper()
    _add_log(request.node, "private ZooKeeper log", server.log_text)
    yield server
    server.close()


@pytest.fixture(scope="session")
def _zk_admin(zookeeper: ManagedZooKeeper) -> Iterator[KazooClient]:
    client = KazooClient(hosts=zookeeper.hosts)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def zk_hosts(zookeeper: ManagedZooKeeper, _zk_admin: KazooClient) -> Iterator[str]:
    """``"127.0.0.1:PORT/<unique chroot>"``; the chroot exists and is removed afterwards."""
    chroot = f"/test-{uuid.uuid4().hex[:12]}"
    _zk_admin.create(chroot)
    yield f"{zookeeper.hosts}{chroot}"
    if _zk_admin.connected:
        _zk_admin.delete(chroot, recursive=True)


@pytest.fixture
def zk_client(zk_hosts: str) -> Iterator[KazooClient]:
    """A started kazoo client inside this test's chroot."""
    client = KazooClient(hosts=zk_hosts)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def server_process(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., ServerProcess]]:
    """``server_process(script, *args, env=, cwd=, ready_timeout=)`` → a started process."""
    started: list[ServerProcess] = []

    def start(
        script: str | os.PathLike[str],
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        ready_timeout: float = 30.0,
    ) -> ServerProcess:
        log_path = tmp_path / f"{Path(script).stem}-{len(started)}.log"
        process = ServerProcess(
            script, args, log_path=log_path, env=env, cwd=cwd, ready_timeout=ready_timeout
        )
        started.append(process)
        _add_log(request.node, f"{Path(script).name} #{len(started)} log", process.log_text)
        return process.start()

    yield start
    for process in started:
        if process.running:
            process.stop()


@pytest.fixture
def tmp_datadir(tmp_path: Path) -> Path:
    """An empty writable directory for ``--datadir``."""
    path = tmp_path / "datadir"
    path.mkdir()
    return path
