"""``get_status`` of a real server has every key Jubatus's own server has, with the same
model figures, for the same config and the same calls.

The expected figures were read from Jubatus 1.1.1's own servers (standalone, built per
the reference note) after the calls each case makes; in a cluster, Jubatus's linear
storage is ``local_storage_mixture`` (its source: ``make_model`` in
``classifier_serv.cpp`` and ``regression_serv.cpp``).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from bench._call_load import datum, labeled
from runtime.rpc.client import Client
from runtime.testing import ServerProcess
from tests.e2e.classifier_cluster import (
    IMPL,
    PROXY,
    start_server,
    status,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]

#: The keys every Jubatus server's status has (``server_base``), whatever the engine.
COMMON = {
    "PROGNAME", "RSS", "SHR", "VERSION", "VIRT", "clock_time", "configpath", "datadir",
    "is_standalone", "last_loaded", "last_loaded_path", "last_saved", "last_saved_path",
    "log_config", "logdir", "pid", "start_time", "threadnum", "timeout", "type",
    "update_count", "uptime", "user",
}  # fmt: skip
CONVERTER = {
    "string_rules": [{"key": "*", "type": "space", "sample_weight": "bin", "global_weight": "bin"}],
    "num_rules": [{"key": "*", "type": "num"}],
}
IDF = {
    "string_rules": [{"key": "*", "type": "space", "sample_weight": "tf", "global_weight": "idf"}],
    "num_rules": [{"key": "*", "type": "num"}],
}
AROW = {"method": "AROW", "parameter": {"regularization_weight": 1.0}}
LSH = {"method": "lsh", "parameter": {"hash_num": 64}}
LOF = {"nearest_neighbor_num": 10, "reverse_nearest_neighbor_num": 30}
PA1 = {"method": "PA1", "parameter": {"regularization_weight": 1.0, "sensitivity": 0.1}}


def weight_manager(documents: int, frequencies: int) -> dict[str, str]:
    status = {"weight_manager_version": "0"}
    for prefix, counted in (("diff", (documents, frequencies)), ("master", (0, 0))):
        status[f"{prefix}_document_count"] = str(counted[0])
        status[f"{prefix}_num_document_frequencies"] = str(counted[1])
        for key in ("num_group_frequencies", "num_group_total_lengths", "num_weights"):
            status[f"{prefix}_{key}"] = "0"
    return status


#: Jubatus 1.1.1's answers: config, calls, the model's keys and their values.
CASES: dict[str, tuple[dict[str, Any], list[tuple[str, list[object]]], dict[str, str]]] = {
    "classifier, bin": (
        {**AROW, "converter": CONVERTER},
        [("train", ["x", [labeled(i)]]) for i in range(300)],
        {"num_classes": "3", "num_features": "12", "storage": "local_storage",
         **weight_manager(0, 0)},
    ),
    "classifier, idf": (
        {**AROW, "converter": IDF},
        [("train", ["x", [labeled(i)]]) for i in range(50)],
        {"num_classes": "3", "num_features": "12", "storage": "local_storage",
         **weight_manager(50, 12)},
    ),
    "classifier, NN": (
        {"method": "NN", "converter": CONVERTER, "parameter": {
            "method": "euclid_lsh", "parameter": {"hash_num": 64},
            "nearest_neighbor_num": 10, "local_sensitivity": 1.0}},
        [("train", ["x", [labeled(i)]]) for i in range(20)],
        weight_manager(0, 0),
    ),
    "regression, idf": (
        {**PA1, "converter": IDF},
        [("train", ["x", [[float(i % 7), datum(i)]]]) for i in range(50)],
        {"num_classes": "1", "num_features": "12", "storage": "local_storage"},
    ),
    "nearest_neighbor, lsh": (
        {**LSH, "converter": CONVERTER},
        [("set_row", ["x", f"r{i}", datum(i)]) for i in range(20)],
        {"data": "20", "update_row_cnt": "20"},
    ),
    "recommender, lsh": (
        {**LSH, "converter": CONVERTER},
        [("update_row", ["x", f"r{i}", datum(i)]) for i in range(20)],
        {"clear_row_cnt": "0", "update_row_cnt": "20"},
    ),
    "anomaly, lof": (
        {"method": "lof", "converter": CONVERTER, "parameter": {
            **LOF, "method": "inverted_index_euclid", "parameter": {}}},
        [("add", ["x", datum(i)]) for i in range(20)],
        {"max_id": "19", "num_id_diff": "20", "num_id_master": "0", "storage": "lof"},
    ),
    "anomaly, light_lof": (
        {"method": "light_lof", "converter": CONVERTER, "parameter": {
            **LOF, "method": "euclid_lsh", "parameter": {"hash_num": 64}}},
        [("add", ["x", datum(i)]) for i in range(20)],
        {"max_id": "19", "num_id": "20", "storage": "light_lof"},
    ),
    "stat": (
        {"window_size": 10},
        [("push", ["x", "k", float(i)]) for i in range(20)],
        {"storage": "stat"},
    ),
}  # fmt: skip


#: Where Jubako's figure differs on purpose (docs/operating.md, Differences from Jubatus):
#: Jubatus counts a document frequency for every feature of a counted document (here 9
#: words and 3 numbers), Jubako for the features a rule weighs by idf or bm25 (the 9
#: words); no weight or answer depends on the others (a Jubatus model file carries their
#: counts, a Jubako one does not; each loads the other's).
KNOWN: dict[str, dict[str, str]] = {"classifier, idf": {"diff_num_document_frequencies": "9"}}


def decoded(status: dict[Any, Any]) -> dict[str, str]:
    [values] = status.values()
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in values.items()
    }


@pytest.mark.parametrize("case", CASES)
def test_a_standalone_servers_status_is_jubatuss(tmp_path: Path, case: str) -> None:
    config, calls, expected = CASES[case]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    engine = case.split(",")[0]
    impl = IMPL if engine == "classifier" else REPO / "engines" / engine / f"{engine}_impl.py"
    args = ["--rpc-port", "0", "--configpath", str(path), "--datadir", str(tmp_path)]
    with ServerProcess(impl, args, log_path=tmp_path / "server.log") as server:
        client = Client("127.0.0.1", server.port, timeout=30)
        try:
            for method, params in calls:
                client.call(method, params)
            status = decoded(client.call("get_status", ["x"]))
        finally:
            client.close()
    assert COMMON <= status.keys(), COMMON - status.keys()
    expected = {**expected, **KNOWN.get(case, {})}
    assert {key: status.get(key) for key in expected} == expected
    assert status["last_saved"] == status["last_loaded"] == "0"  # never, as Jubatus says it
    assert status["update_count"] == str(len(calls))
    if engine in ("classifier", "nearest_neighbor", "recommender", "anomaly"):
        assert status["kernels"] == "compiled"  # engines/common/kernels.py, built by make
    else:
        assert "kernels" not in status


@pytest.mark.zookeeper
def test_a_cluster_members_linear_storage_is_the_mixture(zk_hosts: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, {**AROW, "converter": CONVERTER})
    with ExitStack() as stack:
        server = start_server(stack, tmp_path, config, zk_hosts)
        peer = start_server(stack, tmp_path, config, zk_hosts, index=1)  # to mix with
        client = Client("127.0.0.1", server.port, timeout=30)
        stack.callback(client.close)
        # Train once both are up to date: a server still catching up when a peer is there
        # copies the peer's model, as Jubatus's does (the training before it is lost).
        def caught_up() -> bool:
            return all(status(m)["linear_mixer.is_obsolete"] == "0" for m in (server, peer))

        wait_for(caught_up, "both servers up to date")
        for i in range(300):
            client.call("train", ["m", [labeled(i)]])
        before = decoded(client.call("get_status", ["m"]))
        wait_for(lambda: client.call("do_mix", ["m"]) is True, "a mix with the peer")
        after = decoded(client.call("get_status", ["m"]))
    assert before["storage"] == after["storage"] == "local_storage_mixture"
    assert (before["num_features"], before["num_features_diff"]) == ("0", "12")
    assert (after["num_features"], after["num_features_diff"]) == ("12", "0")
    assert int(after["model_version"]) == int(before["model_version"]) + 1
    assert after["weight_manager_version"] == after["model_version"]


#: The keys of Jubatus 1.1.1's ``jubaclassifier_proxy`` ``get_proxy_status``.
PROXY_KEYS = {
    "PROGNAME", "RSS", "SHR", "VERSION", "VIRT", "clock_time", "connected_zookeeper",
    "forward_count", "interconnect_timeout", "log_config", "logdir", "pid", "request_count",
    "session_pool_expire", "session_pool_size", "start_time", "threadnum", "timeout",
    "uptime", "user", "zookeeper", "zookeeper_timeout",
}  # fmt: skip


@pytest.mark.zookeeper
def test_a_proxys_status_and_a_members_mixer_keys_are_jubatuss(
    zk_hosts: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, {**AROW, "converter": CONVERTER})
    with ExitStack() as stack:
        server = start_server(stack, tmp_path, config, zk_hosts)
        proxy = stack.enter_context(
            ServerProcess(PROXY, ["--rpc-port", "0", "--zookeeper", zk_hosts])
        )
        client = Client("127.0.0.1", proxy.port, timeout=30)
        stack.callback(client.close)
        values = decoded(client.call("get_proxy_status", ["m"]))
        member = status(server)
    assert PROXY_KEYS <= values.keys(), PROXY_KEYS - values.keys()
    # Seconds as Jubatus writes them (10, not 10.0), the ZooKeeper it is connected to.
    assert (values["timeout"], values["interconnect_timeout"]) == ("10", "10")
    assert (values["zookeeper_timeout"], values["session_pool_expire"]) == ("10", "60")
    assert values["connected_zookeeper"] == zk_hosts
    assert int(values["RSS"]) > 0
    # Jubatus's linear_mixer.is_running is 1 while the mixer runs, not only during a round.
    assert member["linear_mixer.is_running"] == "1"
    assert member["mix.running"] == "0"



def test_a_status_sent_as_kept_shows_each_change_at_once(tmp_path: Path) -> None:
    """Once ``get_status`` is known fast, the server sends the status it packed last
    until what it shows may have changed: every call still shows each train, new label,
    save and load before it."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**AROW, "converter": CONVERTER}))
    args = ["--rpc-port", "0", "--configpath", str(path), "--datadir", str(tmp_path)]
    with ServerProcess(IMPL, args, log_path=tmp_path / "server.log") as server:
        client = Client("127.0.0.1", server.port, timeout=30)
        try:
            for _ in range(20):  # the first calls run on workers, then inline
                decoded(client.call("get_status", ["x"]))
            for i in range(12):
                assert client.call("train", ["x", [labeled(i)]]) == 1
                shown = decoded(client.call("get_status", ["x"]))
                assert shown["update_count"] == str(i + 1)
                assert shown["num_classes"] == str(min(i + 1, 3))  # (three labels in turn)
                assert shown["writer.applied"] == str(i + 1)
            for name in ("one", "two"):  # (two saves in one second: the path tells them)
                client.call("save", ["x", name])
                saved = decoded(client.call("get_status", ["x"]))
                assert saved["last_saved_path"].endswith(f"_classifier_{name}.jubatus")
            client.call("load", ["x", "one"])
            loaded = decoded(client.call("get_status", ["x"]))
            assert loaded["last_loaded_path"].endswith("_classifier_one.jubatus")
            assert loaded["update_count"] == "13"  # (a load counts as one)
        finally:
            client.close()
