"""Log lines: one DEBUG line per request, errors naming method, peer and cluster, and the
line format of the mains. A real server on 127.0.0.1."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from runtime.errors import RemoteError
from runtime.rpc.client import AsyncClient
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.locks import LockMode
from runtime.rpc.server import RpcServer
from runtime.testing import ServerProcess
from runtime.wire import types as t

REPO = Path(__file__).resolve().parents[3]


def boom() -> int:
    raise ValueError("no such thing")


def ok() -> int:
    return 1


@pytest_asyncio.fixture
async def server() -> AsyncIterator[RpcServer]:
    handlers = {
        "ok": Handler(ok, LockMode.ANALYSIS, (), t.Int()),
        "boom": Handler(boom, LockMode.ANALYSIS, (), t.Int()),
    }
    rpc = RpcServer(Dispatcher(handlers), "127.0.0.1", 0)
    await rpc.start()
    yield rpc
    await rpc.close()


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "runtime.rpc.connection" and r.levelno == level
    ]


@pytest.mark.asyncio
async def test_one_debug_line_per_request_with_its_details(
    server: RpcServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="runtime.rpc.connection")
    async with AsyncClient("127.0.0.1", server.port) as client:
        assert await client.call("ok", ["cluster-a"]) == 1
        local_port = client._protocol.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        with pytest.raises(RemoteError):
            await client.call("boom", ["cluster-a"])
        with pytest.raises(Exception, match="nope"):
            await client.call("nope", ["cluster-a"])
    lines = [line for line in _lines(caplog, logging.DEBUG) if line.startswith("request ")]
    assert len(lines) == 3, lines
    assert re.fullmatch(
        rf"request ok msgid=\d+ peer=127\.0\.0\.1:{local_port} cluster=cluster-a ok in \d+us",
        lines[0],
    )
    assert "request boom" in lines[1] and "error ValueError" in lines[1]
    assert "request nope" in lines[2] and "refused" in lines[2]


@pytest.mark.asyncio
async def test_errors_name_method_peer_and_cluster_and_info_has_no_request_lines(
    server: RpcServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runtime.rpc.connection")
    async with AsyncClient("127.0.0.1", server.port) as client:
        assert await client.call("ok", ["c1"]) == 1
        with pytest.raises(RemoteError):
            await client.call("boom", ["c1"])
    assert not [line for line in _lines(caplog, logging.DEBUG)]
    [warning] = _lines(caplog, logging.WARNING)
    assert re.fullmatch(
        r"boom from 127\.0\.0\.1:\d+ \(cluster c1\) failed: ValueError: no such thing", warning
    )


def test_server_log_lines_carry_time_level_pid_and_logger(tmp_path: Path) -> None:
    kvs = REPO / "examples" / "kvs"
    args = ["--rpc-port", "0", "--configpath", str(kvs / "config.json"), "--logdir", str(tmp_path)]
    with ServerProcess(kvs / "kvs_impl.py", args, cwd=kvs) as server:
        pid = server.pid
    [log_file] = tmp_path.glob("kvs_impl.*.log")
    assert log_file.name == f"kvs_impl.{pid}.log"
    pattern = re.compile(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{3}} (DEBUG|INFO|WARNING|ERROR) \[{pid}\] "
        r"[\w.]+: .+"
    )
    lines = log_file.read_text().splitlines()
    assert any("listening on" in line for line in lines)
    assert any("stopped" in line for line in lines)
    assert all(pattern.fullmatch(line) for line in lines), lines
