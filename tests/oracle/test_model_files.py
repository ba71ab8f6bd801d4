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

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engines.common.neighbor_classifier import NEIGHBOR_METHODS
from engines.jubadump.dumps import EXTENSIONS
from engines.jubadump.printer import pretty
from runtime.errors import ModelFileError
from runtime.server.persistence import decode_model_file, encode_model_file
from tests.oracle import jubako_models
from tests.oracle.model_cases import cases

MODELS = Path(__file__).resolve().parent / "goldens" / "models"
ANSWERS: dict[str, Any] = json.loads((MODELS / "answers.json").read_text(encoding="utf-8"))
CASES = cases()
IDS = [case["name"] for case in CASES]
CORE_PYTHON = Path(os.environ.get("JUBATUS_CORE_PYTHON", "/work/jubatus-ref/core/venv/bin/python"))
JUBADUMP = Path(sys.executable).parent / "jubadump"


def recorded_answers(case: dict[str, Any], origin: str) -> Any:
    """The recorded answers of ``origin`` (``core``, ``jubako``, ``core_loads_jubako``);
    ``answers.json`` keeps only those that are not exactly the core's
    (``record_models.differences``)."""
    recorded = ANSWERS[case["name"]]
    core = recorded["core"]
    stored = recorded.get(origin, {"differs": {}})
    if isinstance(stored, dict) and "differs" in stored:
        return [stored["differs"].get(str(i), answer) for i, answer in enumerate(core)]
    return stored


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


def comparable(case: dict[str, Any], answers: Any) -> Any:
    """A case's answers as they compare: ``get_all_rows`` sorted (Jubatus lists the rows in
    its hash tables' order, which differs between a model built and one loaded; Jubako in
    insertion order); anything else (a load error) as it is."""
    if not isinstance(answers, list) or len(answers) != len(case["ask"]):
        return answers
    return [
        sorted(answer) if question[0] == "get_all_rows" and isinstance(answer, list) else answer
        for question, answer in zip(case["ask"], answers, strict=True)
    ]


def same_case_answers(case: dict[str, Any], a: Any, b: Any) -> bool:
    """:func:`same_answers` on :func:`comparable` answers, with the case's tolerance."""
    return same_answers(comparable(case, a), comparable(case, b), tolerance(case))


def tolerance(case: dict[str, Any]) -> float:
    """Jubatus's stat answers from running sums that drift as values leave the window
    (a single value's deviation comes out near 1e-7, not 0); Jubako sums the window."""
    return 1e-6 if case["engine"] == "stat" else 1e-12


def _scored(item: object) -> bool:
    return isinstance(item, list) and len(item) == 2 and isinstance(item[1], int | float)


def _without_clocks(case: dict[str, Any], payload: Any) -> Any:
    """A model's user data without what changes from run to run: a stat model's push
    times (the time of the save), and an anomaly model's per-row clocks of its scores (the
    order in which Jubako refreshes the neighbours' scores after a change follows Python's
    string hashing, which differs per process; the scores themselves do not)."""
    payload = copy.deepcopy(payload)
    if case["engine"] == "stat":
        payload[1] = [entry[1] for entry in payload[1]]
    elif case["engine"] == "anomaly" and case["config"]["method"] == "lof":
        extra = payload[0][-2][5]  # lof_storage's trailing element
        extra[b"versions"] = sorted(extra[b"versions"])
    elif case["engine"] == "anomaly":  # light_lof: the score table's row versions
        payload[0][-1][2] = [owner for owner, _ in payload[0][-1][2]]
    return payload


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_file_the_core_saved_answers_as_the_core(case: dict[str, Any]) -> None:
    data = (MODELS / "core" / f"{case['name']}.jubatus").read_bytes()
    serv = jubako_models.load_bytes(case, data)
    answers = jubako_models.answers(serv, case)
    expected = recorded_answers(case, "core")
    assert same_case_answers(case, answers, expected), f"Jubako {answers}\ncore {expected}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jubako_saves_the_layout_the_core_loaded(case: dict[str, Any]) -> None:
    serv = jubako_models.build(case)
    answers = jubako_models.answers(serv, case)
    assert same_answers(answers, recorded_answers(case, "jubako"))
    # the core answered so from the committed file, which holds what Jubako saves now
    assert same_case_answers(case, recorded_answers(case, "core_loads_jubako"), answers)
    saved = decode_model_file(
        jubako_models.save_bytes(serv, case), service_type=case["engine"], user_data_version=1
    )
    committed = decode_model_file(
        (MODELS / "jubako" / f"{case['name']}.jubatus").read_bytes(),
        service_type=case["engine"],
        user_data_version=1,
    )
    assert _without_clocks(case, saved.payload) == _without_clocks(case, committed.payload)
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
    if "stdout" not in recorded:  # Jubatus's refused: Jubako's refuses alike or dumps it
        assert recorded["exit"] == 255
        assert "is not supported for dump" in recorded["stderr"] or _extended(case)
        if _extended(case):
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)
        else:
            assert done.returncode == 255
            assert done.stderr.strip().replace(str(path), "FILE") == recorded["stderr"]
        return
    assert done.returncode == 0, done.stderr
    theirs = json.loads(recorded["stdout"])
    if _long_bit_vectors(theirs):
        # Jubatus's jubadump reads the words of the row at position r at r + i, not at
        # r * words + i: past 64 bits it prints other rows' words. Jubako's prints the
        # row's own; the rest is the same.
        mine = json.loads(done.stdout)
        assert _long_bit_vectors(mine) == _long_bit_vectors(theirs)
        for dumped in (mine, theirs):
            for row in dumped["table"]["data"].values():
                row["values"][0] = len(row["values"][0])
        assert mine == theirs
        return
    assert done.stdout == pretty(theirs)


def _long_bit_vectors(dumped: Any) -> int:
    """A nearest_neighbor dump's bit count when its hashes take more than one word."""
    if not isinstance(dumped, dict) or not isinstance(dumped.get("table"), dict):
        return 0
    schema = dumped["table"]["schema"]
    bits = int(schema[0]["bit_vector_length"]) if schema else 0
    return bits if bits > 64 else 0


def _extended(case: dict[str, Any]) -> bool:
    """Whether Jubako's jubadump dumps the case's engine and method beyond Jubatus's (a
    model with an unlearner too: Jubatus's fails on it with ``std::bad_cast``)."""
    parameter = case["config"].get("parameter")
    if isinstance(parameter, dict) and "unlearner" in parameter:
        return True
    for entry in EXTENSIONS:
        engine, _, methods = entry.partition(": ")
        if engine == case["engine"] and (
            not methods or case["config"]["method"] in methods.split(", ")
        ):
            return True
    return False


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
        assert same_case_answers(case, theirs[name], mine[name]), f"{name}: {theirs[name]}"


def test_the_goldens_are_small() -> None:
    sizes = [path.stat().st_size for path in MODELS.rglob("*") if path.is_file()]
    assert sum(sizes) < 800_000  # 3 classifier cases over the whole converter: ~190 kB


def _model_file(case: dict[str, Any], serv: Any, payload: object) -> bytes:
    return encode_model_file(
        service_type=case["engine"],
        model_id="",
        config_json=serv.config_json,
        user_data_version=serv.user_data_version,
        payload=payload,
        timestamp=0,
    )


#: The cases whose older Jubako layout was the model's own map at user data version 1 (the
#: linear classifiers and stat had a version 2 of their own, tested with their engines).
MAP_CASES = [
    case
    for case in CASES
    if case["engine"] != "stat"
    and not (case["engine"] == "classifier" and case["config"]["method"] not in NEIGHBOR_METHODS)
]


@pytest.mark.parametrize("case", MAP_CASES, ids=[case["name"] for case in MAP_CASES])
def test_a_file_of_jubakos_older_layout_still_loads(case: dict[str, Any]) -> None:
    """Before Jubatus's layout, these engines saved their model's ``pack()`` (a map) at
    user data version 1: such a file loads and answers as the model did."""
    serv = jubako_models.build(case)
    answers = jubako_models.answers(serv, case)
    older = _model_file(case, serv, serv.model.pack())  # type: ignore[attr-defined]
    again = jubako_models.load_bytes(case, older)
    assert same_answers(jubako_models.answers(again, case), answers)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_payload_that_does_not_fit_is_a_model_file_error(case: dict[str, Any]) -> None:
    serv = jubako_models.build(case)
    other = next(c for c in CASES if c["engine"] not in (case["engine"], "stat"))
    misfits: list[object] = [
        [[], []],  # Jubatus's layout with empty parts
        {"x": 1},  # a map that is not the older layout
        jubako_models.build(other).pack(),  # another engine's model
    ]
    for payload in misfits:
        with pytest.raises(ModelFileError, match=f"^{case['engine']} model does not fit: "):
            jubako_models.load_bytes(case, _model_file(case, serv, payload))
