"""The official ``jubatus`` clients drive the engines' console commands directly and through
their proxies: ``jubaclassifier`` (+ ``jubaclassifier_proxy``) and ``jubastat_proxy``."""

from __future__ import annotations

import json
import math
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from runtime.testing import ServerProcess
from tests.compat.oracle import run_script

pytestmark = pytest.mark.oracle

CLASSIFIER_CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {
        "string_rules": [
            {"key": "*", "type": "str", "sample_weight": "bin", "global_weight": "bin"}
        ],
        "num_rules": [{"key": "*", "type": "num"}],
    },
}


def _command(name: str) -> Path:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found is not None, f"the {name} console script is installed with the package"
    return Path(found)


def _start(stack: ExitStack, command: str, *args: str) -> ServerProcess:
    return stack.enter_context(ServerProcess(_command(command), ["--rpc-port", "0", *args]))


def _check_classifier(out: dict[str, object], config: str) -> None:
    assert out["train"] == 120
    classified = out["classify"]
    assert isinstance(classified, list)
    good, bad = classified
    assert {row[2] for row in good + bad} == {"EstimateResult"}
    assert max(good, key=lambda r: r[1])[0] == "pos"
    assert max(bad, key=lambda r: r[1])[0] == "neg"
    assert out["get_labels"] == {"pos": 60, "neg": 60}
    assert out["set_label"] is True and out["delete_label"] is True
    assert out["clear"] is True and out["labels_after_clear"] == {}
    assert out["load"] is True and out["labels_after_load"] == {"pos": 60, "neg": 60}
    assert out["status_types"] == ["str"]
    assert out["num_classes"] == ["2"]
    assert out["config"] == config
    assert "bad_train" in out


@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "proxy"])
def test_official_classifier_client_drives_jubaclassifier(
    tmp_path: Path, through_proxy: bool
) -> None:
    config = json.dumps(CLASSIFIER_CONFIG)
    (tmp_path / "classifier.json").write_text(config)
    with ExitStack() as stack:
        server = _start(
            stack,
            "jubaclassifier",
            "--configpath",
            str(tmp_path / "classifier.json"),
            "--datadir",
            str(tmp_path),
        )
        port = server.port
        if through_proxy:
            port = _start(stack, "jubaclassifier_proxy", "--servers", f"127.0.0.1:{port}").port
        out = run_script("classifier_calls.py", {"host": "127.0.0.1", "port": port, "name": "c"})
    _check_classifier(out, config)
    saved = out["save"]
    assert isinstance(saved, dict)
    [(server_id, path)] = saved.items()
    assert server_id == f"127.0.0.1_{server.port}"
    assert path.endswith(f"{server_id}_classifier_m1.jubatus")


def test_official_stat_client_through_jubastat_proxy(tmp_path: Path) -> None:
    config = tmp_path / "stat.json"
    config.write_text('{"window_size": 128}')
    with ExitStack() as stack:
        server = _start(stack, "jubastat", "--configpath", str(config), "--datadir", str(tmp_path))
        proxy = _start(stack, "jubastat_proxy", "--servers", f"127.0.0.1:{server.port}")
        out = run_script("stat_calls.py", {"host": "127.0.0.1", "port": proxy.port, "name": "s"})
    assert out["sum"] == 12.0
    assert out["stddev"] == pytest.approx(math.sqrt(3.5))
    assert out["max"] == 6.0 and out["min"] == 1.0
    assert out["entropy"] == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))
    assert out["types"] == ["float"]
    assert out["load"] is True and out["sum_after_load"] == 12.0
    assert out["config"] == '{"window_size": 128}'
