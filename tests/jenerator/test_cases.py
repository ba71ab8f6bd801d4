"""The error corpus: each ``cases/errors/e_<rule>.idl`` gives exactly its ``.stderr``.

Each file breaks one rule (some several times); the expected output names every line,
column and message, and the exit status is 1. Files under ``cases/ok/`` must compile.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "cases"
ERRORS = sorted((CASES / "errors").glob("e_*.idl"))
OK = sorted((CASES / "ok").glob("*.idl"))


def jenerator(path: Path, out: Path) -> subprocess.CompletedProcess[str]:
    relative = path.relative_to(REPO)
    return subprocess.run(
        [sys.executable, "-m", "jenerator", "-l", "server", "-t", "-o", str(out), str(relative)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


@pytest.mark.parametrize("path", ERRORS, ids=[p.stem for p in ERRORS])
def test_error_case(path: Path, tmp_path: Path) -> None:
    result = jenerator(path, tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr == path.with_suffix(".stderr").read_text()
    assert not (tmp_path / "out").exists(), "an IDL error must write nothing"


@pytest.mark.parametrize("path", OK, ids=[p.stem for p in OK])
def test_ok_case(path: Path, tmp_path: Path) -> None:
    result = jenerator(path, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("*.py"))) == 5
