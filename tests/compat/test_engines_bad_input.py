"""Bad input to the new engines' servers, called with the official client as a user would:
a datum whose key holds ``$``, a datum that converts to nothing, unknown ids, empty
models, ``size`` of 2^32 - 1, a rate out of (0, 1]. Each gives a clear error or Jubatus's
answer, and the server goes on serving."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.testing import ServerProcess
from tests.compat.oracle import run_script

pytestmark = pytest.mark.oracle

NUM = {"num_rules": [{"key": "*", "type": "num"}]}
CONFIGS: dict[str, dict[str, Any]] = {
    "regression": {
        "method": "AROW",
        "parameter": {"regularization_weight": 1.0, "sensitivity": 0.1},
        "converter": NUM,
    },
    "weight": {"converter": NUM},
    "nearest_neighbor": {"method": "lsh", "parameter": {"hash_num": 16}, "converter": NUM},
    "recommender": {"method": "inverted_index", "parameter": {}, "converter": NUM},
    "anomaly": {
        "method": "lof",
        "parameter": {
            "nearest_neighbor_num": 2,
            "reverse_nearest_neighbor_num": 4,
            "method": "inverted_index_euclid",
            "parameter": {},
        },
        "converter": NUM,
    },
}


def _serve(engine: str, tmp: Path) -> Any:
    found = shutil.which(f"juba{engine}", path=str(Path(sys.executable).parent))
    assert found is not None
    config = tmp / "config.json"
    config.write_text(json.dumps(CONFIGS[engine]))
    args = ["--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp)]
    with ServerProcess(Path(found), args, log_path=tmp / "server.log") as server:
        return run_script("engine_bad_input.py", {"engine": engine, "port": server.port})


@pytest.mark.parametrize("engine", sorted(CONFIGS))
def test_bad_input_gets_clear_errors_and_the_server_serves_on(engine: str, tmp_path: Path) -> None:
    out = _serve(engine, tmp_path)
    assert "error" in out["bad_key"] and "cannot contain '$'" in out["bad_key"]["error"]
    assert "ok" in out["status"], out["status"]
    if engine == "regression":
        assert out["estimate_empty"] == {"ok": [0.0, 0.0]}
        assert out["nothing"] == {"ok": 1}
    elif engine == "weight":
        assert out["empty"] == {"ok": []}
    elif engine == "nearest_neighbor":
        assert out["unknown_id"] == {"ok": []} and out["empty_model"] == {"ok": []}
        assert out["huge"] == {"ok": 1}
    elif engine == "recommender":
        assert out["unknown_id"] == {"ok": []}
        assert "ok" in out["decode_unknown"] and "ok" in out["complete_unknown"]
        assert "0 < rate <= 1" in out["bad_rate"]["error"]
        assert out["huge"] == {"ok": 1}
    else:
        assert out["empty_model"] == {"ok": float("inf")} or out["empty_model"]["ok"] == "inf"
        assert "ok" in out["unknown_update"] and out["clear_unknown"] == {"ok": True}
