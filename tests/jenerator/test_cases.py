"""The case corpus, run through the real command.

Each ``cases/errors/e_<rule>.idl`` breaks one rule (some several times) and its
``.stderr`` holds exactly what ``jenerator`` must print: every line, column and message.
The exit status is 1 and nothing is written. Every ``cases/ok/*.idl`` loads with no
diagnostic and generates.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jenerator.frontend import load_idl_file

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


def test_every_error_case_has_its_expected_stderr() -> None:
    stems = {p.stem for p in ERRORS}
    expected = {p.stem for p in (CASES / "errors").glob("e_*.stderr")}
    assert stems == expected
    assert len(stems) >= 30


@pytest.mark.parametrize("path", ERRORS, ids=[p.stem for p in ERRORS])
def test_error_case(path: Path, tmp_path: Path) -> None:
    result = jenerator(path, tmp_path / "out")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == path.with_suffix(".stderr").read_text(encoding="utf-8")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists(), "an IDL error must write nothing"


@pytest.mark.parametrize("path", OK, ids=[p.stem for p in OK])
def test_ok_case(path: Path, tmp_path: Path) -> None:
    idl = load_idl_file(path)
    assert len(idl.services) == 1
    result = jenerator(path, tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert len(list(tmp_path.glob("*.py"))) == 5
