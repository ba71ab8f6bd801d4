"""jubastat as a cluster: keys spread by cht over two servers, entropy from mixed totals."""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path

import pytest

from engines.stat.stat_client import Stat
from runtime.testing import ServerProcess
from tests.e2e.classifier_cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.zookeeper]

REPO = Path(__file__).resolve().parents[2]
STAT = REPO / "engines" / "stat"


def _status(port: int) -> dict[str, str]:
    with Stat("127.0.0.1", port, "s") as client:
        [values] = client.get_status().values()
    return values


def test_stat_servers_mix_their_totals_for_entropy(zk_hosts: str, tmp_path: Path) -> None:
    config = tmp_path / "stat.json"
    config.write_text('{"window_size": 1000}')
    args = [
        "--rpc-port", "0", "--configpath", str(config), "--zookeeper", zk_hosts, "--name", "s",
        "--interval_sec", "0", "--interval_count", "0", "--zookeeper_timeout", "2",
    ]  # fmt: skip
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                ServerProcess(STAT / "stat_impl.py", args, log_path=tmp_path / f"stat{i}.log")
            )
            for i in range(2)
        ]
        wait_for(
            lambda: all(_status(s.port)["linear_mixer.is_obsolete"] == "0" for s in servers),
            "the servers to join",
        )
        proxy = stack.enter_context(
            ServerProcess(STAT / "stat_proxy.py", ["--rpc-port", "0", "--zookeeper", zk_hosts])
        )
        counts = {f"k{i}": i + 1 for i in range(8)}
        with Stat("127.0.0.1", proxy.port, "s") as client:
            for key, n in counts.items():
                for value in range(n):
                    assert client.push(key, float(value)) is True
            assert client.sum("k3") == sum(range(4))
        held = [int(_status(s.port)["update_count"]) for s in servers]
        assert sum(held) == sum(counts.values()) and all(held), "keys spread over both"
        with Stat("127.0.0.1", servers[0].port, "s") as direct:
            assert direct.do_mix() is True
        total = sum(counts.values())
        expected = -sum(n / total * math.log(n / total) for n in counts.values())
        for server in servers:
            with Stat("127.0.0.1", server.port, "s") as direct:
                assert direct.entropy("") == pytest.approx(expected)
