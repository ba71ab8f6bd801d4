"""``jubadump`` fed what is not a model file it can dump: one ``Error: failed to dump``
line on stderr, nothing on stdout, exit 255 (Jubatus's jubadump's status); a bad option
prints the usage and exits 1; the file itself is never changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime.server.persistence import encode_model_file

JUBADUMP = Path(sys.executable).parent / "jubadump"
GOLDEN = (
    Path(__file__).resolve().parents[1] / "oracle" / "goldens" / "models" / "jubako"
    / "classifier_cw.jubatus"
)  # fmt: skip
ENGINES = ["classifier", "stat", "regression", "weight", "nearest_neighbor", "recommender",
           "anomaly"]  # fmt: skip


def _dump(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JUBADUMP), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = GOLDEN.read_bytes()
    flipped = bytearray(good)
    flipped[-3] ^= 0xFF
    files = {
        "empty": b"",
        "random": bytes(range(256)) * 3,
        "truncated": good[:200],
        "crc": bytes(flipped),
        "unknown type": encode_model_file(
            service_type="nosuch", model_id="m", config_json="{}", user_data_version=1,
            payload=[],
        ),
    }
    paths = {}
    for name, data in files.items():
        path = tmp_path / f"{name.replace(' ', '_')}.jubatus"
        path.write_bytes(data)
        paths[name] = path
    return paths


def test_files_that_are_not_model_files_are_refused_and_left_alone(tmp_path: Path) -> None:
    for name, path in [*_bad_files(tmp_path).items(), ("missing", tmp_path / "none"),
                       ("a folder", tmp_path)]:  # fmt: skip
        before = path.read_bytes() if path.is_file() else None
        done = _dump("-i", str(path))
        assert done.returncode == 255, (name, done.stderr)
        assert done.stdout == ""
        assert done.stderr.startswith(f'Error: failed to dump "{path}": '), (name, done.stderr)
        assert done.stderr.count("\n") <= 2
        if before is not None:
            assert path.read_bytes() == before


@pytest.mark.parametrize("engine", ENGINES)
def test_a_sound_container_with_garbage_inside_is_refused(engine: str, tmp_path: Path) -> None:
    path = tmp_path / "garbage.jubatus"
    path.write_bytes(
        encode_model_file(
            service_type=engine, model_id="m", config_json='{"method": "AROW"}',
            user_data_version=1, payload=[["garbage", 3], {"x": None}],
        )
    )
    done = _dump("-i", str(path))
    assert done.returncode == 255
    assert done.stdout == ""
    assert f'Error: failed to dump "{path}": ' in done.stderr


def test_a_bad_option_prints_the_usage_and_exits_1() -> None:
    done = _dump("--bogus")
    assert done.returncode == 1
    assert "usage: jubadump" in done.stderr
    assert _dump().returncode == 0  # no arguments: the usage, as Jubatus's prints it
