"""Model files move both ways between Jubatus's core and Jubako (goldens from
:mod:`tests.oracle.record_models`), and ``jubadump`` prints what Jubatus's prints.

- A file the core saved loads into Jubako's service, which then answers every question of
  the case as the core answered it before saving.
- Jubako builds the same model afresh and saves it: the user data is the committed file's
  (the layout the core was checked against has not moved), and the core, loading that
  file, answered as Jubako does (recorded; ``record_models --check`` repeats it where the
  core is built, and :func:`test_the_core_loads_files_jubako_saves_now` runs it then).
- Jubako's ``jubadump`` prints, for every golden file, the JSON Jubatus's jubadump printed
  (the same text once members are in the same order), or refuses where it refused,
  except for the engines Jubako dumps beyond it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engines.jubadump.printer import pretty
from runtime.server.persistence import decode_model_file
from tests.oracle import jubako_models
from tests.oracle.model_cases import cases

MODELS = Path(__file__).resolve().parent / "goldens" / "models"
ANSWERS: dict[str, Any] = json.loads((MODELS / "answers.json").read_text(encoding="utf-8"))
CASES = cases()
IDS = [case["name"] for case in CASES]
CORE_PYTHON = Path(os.environ.get("JUBATUS_CORE_PYTHON", "/work/jubatus-ref/core/venv/bin/python"))
JUBADUMP = Path(sys.executable).parent / "jubadump"


def same_answers(a: Any, b: Any, abs_tol: float = 1e-12) -> bool:
    """Equal answers: numbers within 1e-9 (relative) or ``abs_tol``, a classify's labels in
    any order, an error equal to an error whatever its class."""
    if isinstance(a, dict) and isinstance(b, dict):
        if "error" in a or "error" in b:
            return "error" in a and "error" in b
        return a.keys() == b.keys() and all(same_answers(a[k], b[k], abs_tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        if a and all(_scored(x) for x in a + b):  # [[label, score], ...]: any order
            a, b = sorted(a, key=lambda x: str(x[0])), sorted(b, key=lambda x: str(x[0]))
        return all(same_answers(x, y, abs_tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol)
    return bool(a == b)


def tolerance(case: dict[str, Any]) -> float:
    """Jubatus's stat answers from running sums that drift as values leave the window
    (a single value's deviation comes out near 1e-7, not 0); Jubako sums the window."""
    return 1e-6 if case["engine"] == "stat" else 1e-12


def _scored(item: object) -> bool:
    return isinstance(item, list) and len(item) == 2 and isinstance(item[1], int | float)


def _without_clocks(engine: str, payload: Any) -> Any:
    """A stat model's user data with the push times (the time of the save) left out."""
    if engine == "stat":
        payload = list(payload)
        payload[1] = [entry[1] for entry in payload[1]]
    return payload


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_file_the_core_saved_answers_as_the_core(case: dict[str, Any]) -> None:
    data = (MODELS / "core" / f"{case['name']}.jubatus").read_bytes()
    serv = jubako_models.load_bytes(case, data)
    answers = jubako_models.answers(serv, case)
    expected = ANSWERS[case["name"]]["core"]
    assert same_answers(answers, expected, tolerance(case)), f"Jubako {answers}\ncore {expected}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jubako_saves_the_layout_the_core_loaded(case: dict[str, Any]) -> None:
    serv = jubako_models.build(case)
    answers = jubako_models.answers(serv, case)
    assert same_answers(answers, ANSWERS[case["name"]]["jubako"])
    # the core answered so from the committed file, which holds what Jubako saves now
    assert same_answers(ANSWERS[case["name"]]["core_loads_jubako"], answers, tolerance(case))
    saved = decode_model_file(
        jubako_models.save_bytes(serv, case), service_type=case["engine"], user_data_version=1
    )
    committed = decode_model_file(
        (MODELS / "jubako" / f"{case['name']}.jubatus").read_bytes(),
        service_type=case["engine"],
        user_data_version=1,
    )
    assert _without_clocks(case["engine"], saved.payload) == _without_clocks(
        case["engine"], committed.payload
    )
    # and it loads back into Jubako as it was
    again = jubako_models.load_bytes(case, jubako_models.save_bytes(serv, case))
    assert same_answers(jubako_models.answers(again, case), answers)


@pytest.mark.parametrize("origin", ["core", "jubako"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jubadump_prints_what_jubatus_jubadump_printed(origin: str, case: dict[str, Any]) -> None:
    path = MODELS / origin / f"{case['name']}.jubatus"
    recorded = json.loads(
        (MODELS / "jubadump" / origin / f"{case['name']}.json").read_text(encoding="utf-8")
    )
    done = subprocess.run(
        [str(JUBADUMP), "-i", str(path)], capture_output=True, text=True, check=False
    )
    if "stdout" not in recorded:  # Jubatus's refused: only Jubako's extensions dump it
        assert recorded["exit"] == 255
        assert f'type "{case["engine"]}" is not supported' in recorded["stderr"]
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)
        return
    assert done.returncode == 0, done.stderr
    assert done.stdout == pretty(json.loads(recorded["stdout"]))


def test_a_stat_dump_shows_the_window_and_the_sums() -> None:
    path = MODELS / "jubako" / "stat_window.jubatus"
    done = subprocess.run([str(JUBADUMP), "-i", str(path)], capture_output=True, text=True)
    dumped = json.loads(done.stdout)
    case = next(c for c in CASES if c["name"] == "stat_window")
    assert dumped["window_size"] == 12
    window = [[e["key"], e["value"]] for e in dumped["window"]]
    assert window == [call[1:] for call in case["build"][-12:]]
    for key, numbers in dumped["stats"].items():
        values = [v for k, v in window if k == key]
        assert numbers["n"] == len(values)
        assert numbers["sum"] == pytest.approx(math.fsum(values), rel=1e-11)
        assert (numbers["max"], numbers["min"]) == (max(values), min(values))


@pytest.mark.skipif(not CORE_PYTHON.exists(), reason=f"Jubatus's core is not built ({CORE_PYTHON})")
def test_the_core_loads_files_jubako_saves_now(tmp_path: Path) -> None:
    files = {}
    mine = {}
    for case in CASES:
        serv = jubako_models.build(case)
        files[case["name"]] = str(tmp_path / f"{case['name']}.jubatus")
        Path(files[case["name"]]).write_bytes(jubako_models.save_bytes(serv, case))
        mine[case["name"]] = jubako_models.answers(serv, case)
    done = subprocess.run(
        [str(CORE_PYTHON), "-m", "tests.oracle.core_models"],
        input=json.dumps({"action": "load", "files": files, "cases": CASES}),
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    for case in CASES:
        name = case["name"]
        assert same_answers(theirs[name], mine[name], tolerance(case)), f"{name}: {theirs[name]}"


def test_the_goldens_are_small() -> None:
    sizes = [path.stat().st_size for path in MODELS.rglob("*") if path.is_file()]
    assert sum(sizes) < 600_000
