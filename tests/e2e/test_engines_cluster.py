"""Each new engine as a 3-server ZooKeeper cluster behind its ``*_proxy`` command, driven
by the official ``jubatus`` client: calls spread by the proxy (random, cht, broadcast),
``do_mix`` on a server, then every server answers from the mixed model.

- regression: examples trained on three servers, estimates equal everywhere after a mix;
- weight: document counts added up (every server weighs alike);
- nearest_neighbor: rows set by cht on one server each, found on every server after a mix;
- recommender: rows by cht on two servers each, the index mixed, ``decode_row`` through
  the proxy, a ``clear_row`` mixed away;
- anomaly: ``add`` through ``jubaanomaly_proxy`` gets cluster-wide ids (ZooKeeper's id
  znode: 1, 2, 3, ... as Jubatus's), rows and scores mixed.
"""

from __future__ import annotations

import json
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from runtime.cluster.zookeeper import paths
from runtime.testing import ServerProcess
from tests.compat.oracle import run_script
from tests.e2e.classifier_cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.zookeeper, pytest.mark.oracle]

CONVERTER = {
    "string_rules": [{"key": "*", "type": "str", "sample_weight": "bin", "global_weight": "bin"}],
    "num_rules": [{"key": "*", "type": "num"}],
}
CONFIGS: dict[str, dict[str, Any]] = {
    "regression": {
        "method": "PA1",
        "parameter": {"sensitivity": 0.1, "regularization_weight": 1.0},
        "converter": CONVERTER,
    },
    "weight": {
        "converter": {
            "string_rules": [
                {"key": "*", "type": "space", "sample_weight": "tf", "global_weight": "idf"}
            ]
        }
    },
    "nearest_neighbor": {
        "method": "euclid_lsh",
        "parameter": {"hash_num": 64},
        "converter": CONVERTER,
    },
    "recommender": {"method": "inverted_index", "parameter": {}, "converter": CONVERTER},
    "anomaly": {
        "method": "lof",
        "parameter": {
            "nearest_neighbor_num": 3,
            "reverse_nearest_neighbor_num": 6,
            "method": "inverted_index_euclid",
            "parameter": {},
        },
        "converter": CONVERTER,
    },
}


def _command(name: str) -> Path:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found is not None, f"{name} is installed with the package"
    return Path(found)


def _cluster(
    stack: ExitStack, engine: str, zk_hosts: str, zk_client: KazooClient, tmp: Path
) -> tuple[ServerProcess, list[ServerProcess]]:
    config = tmp / f"{engine}.json"
    config.write_text(json.dumps(CONFIGS[engine]))
    args = [
        "--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp),
        "--zookeeper", zk_hosts, "--name", f"e2e_{engine}", "--zookeeper_timeout", "2",
        "--interval_sec", "0", "--interval_count", "0",
    ]  # fmt: skip
    servers = [
        stack.enter_context(
            ServerProcess(_command(f"juba{engine}"), args, log_path=tmp / f"{engine}{i}.log")
        )
        for i in range(3)
    ]
    actives = paths.actives_path(engine, f"e2e_{engine}")
    wait_for(
        lambda: zk_client.exists(actives) is not None and len(zk_client.get_children(actives)) == 3,
        "three active servers",
    )
    proxy = stack.enter_context(
        ServerProcess(
            _command(f"juba{engine}_proxy"),
            ["--rpc-port", "0", "--zookeeper", zk_hosts],
            log_path=tmp / f"{engine}-proxy.log",
        )
    )
    return proxy, servers


def _run(engine: str, zk_hosts: str, zk_client: KazooClient, tmp: Path) -> Any:
    with ExitStack() as stack:
        proxy, servers = _cluster(stack, engine, zk_hosts, zk_client, tmp)
        return run_script(
            "engine_cluster_calls.py",
            {
                "engine": engine,
                "proxy": proxy.port,
                "servers": [s.port for s in servers],
                "name": f"e2e_{engine}",
            },
            timeout=120,
        )


def test_regression_cluster(zk_hosts: str, zk_client: KazooClient, tmp_path: Path) -> None:
    out = _run("regression", zk_hosts, zk_client, tmp_path)
    assert out["trained"] == 60
    assert sum(out["counts"]) == 60 and min(out["counts"]) > 0, "random routing spreads"
    assert out["mix"] is True
    first = out["estimates"][0]
    assert out["estimates"] == [first] * 3 and out["proxy_estimate"] == first
    assert first != [0.0, 0.0]
    assert out["clear"] is True and out["after_clear"] == [[0.0, 0.0]] * 3


def test_weight_cluster(zk_hosts: str, zk_client: KazooClient, tmp_path: Path) -> None:
    out = _run("weight", zk_hosts, zk_client, tmp_path)
    assert out["mix"] is True
    assert out["status"] == ["30"] * 3, "the document counts add up on every server"
    assert out["weights"][0] == out["weights"][1] == out["weights"][2]
    weights = dict(out["weights"][0])
    assert weights["text$rare@space#tf/idf"] > weights["text$w1@space#tf/idf"] > 0.0


def test_nearest_neighbor_cluster(zk_hosts: str, zk_client: KazooClient, tmp_path: Path) -> None:
    out = _run("nearest_neighbor", zk_hosts, zk_client, tmp_path)
    assert out["set"] is True
    assert sum(out["held"]) == 24 and max(out["held"]) < 24, "cht(1) spreads the rows"
    assert out["mix"] is True
    everything = sorted(f"r{i}" for i in range(24))
    assert out["rows"] == [everything] * 3
    assert out["neighbors"][0][0] == "r5" and out["neighbors"] == [out["neighbors"][0]] * 3
    assert out["proxy_similar"][0] == ["r5", -0.0] or out["proxy_similar"][0][1] == 0.0


def test_recommender_cluster(zk_hosts: str, zk_client: KazooClient, tmp_path: Path) -> None:
    out = _run("recommender", zk_hosts, zk_client, tmp_path)
    assert out["update"] is True and out["mix"] is True
    everything = sorted(f"r{i}" for i in range(24))
    assert out["rows"] == [everything] * 3
    assert out["similar"][0][0] == "r5"
    assert out["similar_datum"][0] == out["similar_datum"][1] == out["similar_datum"][2]
    assert out["decode"] == [[["tag", "t2"]], [["x", 6.0], ["y", 1.0]]]
    assert out["clear_row"] is True and out["mix2"] is True
    assert out["rows_after"] == [23] * 3


def test_anomaly_cluster(zk_hosts: str, zk_client: KazooClient, tmp_path: Path) -> None:
    out = _run("anomaly", zk_hosts, zk_client, tmp_path)
    assert out["ids"] == [str(i) for i in range(1, 21)], "ids from ZooKeeper's id znode"
    assert out["bulk"] == [str(i) for i in range(21, 27)]
    assert out["mix"] is True
    assert out["rows"] == [[str(i) for i in range(1, 27)]] * 3
    assert out["scores"][0] == out["scores"][1] == out["scores"][2] > 1.5
    assert out["near"] < out["scores"][0]
    assert isinstance(out["update"], float) and isinstance(out["overwrite"], float)
