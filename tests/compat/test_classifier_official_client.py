"""The official ``jubatus.classifier.client.Classifier`` against a generated classifier server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.testing import ServerProcess
from tests.compat.oracle import run_script

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.oracle


def test_official_classifier_client(tmp_path: Path) -> None:
    out = tmp_path / "svc"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jenerator",
            "-l",
            "server",
            "-o",
            str(out),
            str(REPO / "idl" / "classifier.idl"),
        ],
        check=True,
    )
    shutil.copy(Path(__file__).with_name("classifier_serv.py"), out / "classifier_serv.py")
    config = '{"method": "perceptron", "converter": {}}'
    (out / "config.json").write_text(config)
    args = ["--rpc-port", "0", "--configpath", str(out / "config.json"), "--datadir", str(tmp_path)]
    with ServerProcess(out / "classifier_impl.py", args, cwd=out) as server:
        result = run_script(
            "classifier_calls.py", {"host": "127.0.0.1", "port": server.port, "name": "c"}
        )
    assert result["train"] == 120
    good, bad = result["classify"]
    assert {row[2] for row in good + bad} == {"EstimateResult"}
    assert max(good, key=lambda r: r[1])[0] == "pos"
    assert max(bad, key=lambda r: r[1])[0] == "neg"
    assert result["get_labels"] == {"pos": 60, "neg": 60}
    assert result["set_label"] is True and result["delete_label"] is True
    [(server_id, path)] = result["save"].items()
    assert path.endswith(f"{server_id}_classifier_m1.jubatus")
    assert result["clear"] is True and result["labels_after_clear"] == {}
    assert result["load"] is True and result["labels_after_load"] == {"pos": 60, "neg": 60}
    assert result["status_types"] == ["str"]
    assert result["num_classes"] == ["2"]
    assert result["config"] == config
    assert "bad_train" in result
