"""The official ``jubatus.stat.client.Stat`` against ``jubastat`` (engines/stat)."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import pytest

from runtime.testing import ServerProcess
from tests.compat.oracle import run_script

pytestmark = pytest.mark.oracle


def test_official_stat_client(tmp_path: Path) -> None:
    jubastat = shutil.which("jubastat", path=str(Path(sys.executable).parent))
    assert jubastat is not None, "the jubastat console script is installed with the package"
    config = tmp_path / "stat.json"
    config.write_text('{"window_size": 128}')
    args = ["--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp_path)]
    with ServerProcess(Path(jubastat), args, cwd=tmp_path) as server:
        out = run_script("stat_calls.py", {"host": "127.0.0.1", "port": server.port, "name": "s"})
    assert out["sum"] == 12.0
    assert out["stddev"] == pytest.approx(math.sqrt(3.5))
    assert out["max"] == 6.0 and out["min"] == 1.0
    assert out["moment"] == pytest.approx(14 / 4)
    assert out["entropy"] == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))
    assert out["types"] == ["float"]
    assert out["clear"] is True
    assert "key a not found" in out["after_clear"]
    assert out["load"] is True and out["sum_after_load"] == 12.0
    assert out["config"] == '{"window_size": 128}'
