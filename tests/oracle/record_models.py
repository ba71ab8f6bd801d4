"""Record the golden model files: every case of :mod:`tests.oracle.model_cases` built by
Jubatus's core and by Jubako, each loaded by the other, and dumped by Jubatus's
``jubadump``. Run it from the repository root with the test venv, where Jubatus's core and
servers are built (``../shared/reference/jubatus-core-oracle.md``)::

    .venv/bin/python -m tests.oracle.record_models [--check] \\
        [--core /path/to/core/venv/bin/python] [--jubadump "/path/to/run_server.sh dump"] \\
        [CASE ...]

With case names it records (or checks) only those, and keeps the other cases' goldens.

It writes ``goldens/models/``:

- ``core/<case>.jubatus``: the model the core built and saved (``save_bytes``);
- ``jubako/<case>.jubatus``: the model Jubako built and saved;
- ``jubadump/{core,jubako}/<case>.json``: what Jubatus's ``jubadump -i FILE`` printed for
  each file (``{"exit": status, "stderr": text}`` when it refused the file);
- ``answers.json``: per case the core's answers (``core``), Jubako's (``jubako``) and the
  core's answers after loading Jubako's file (``core_loads_jubako``); of the last two only
  the answers that are not exactly the core's (:func:`differences`).

``--check`` writes nothing: it builds Jubako's files afresh, has the core load them, and
fails unless the core answers as Jubako does (the reverse direction, which CI cannot run:
it has no C++ build). The tests (``tests/oracle/test_model_files.py``) replay the rest.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.oracle import jubako_models
from tests.oracle.model_cases import cases

REPO = Path(__file__).resolve().parents[2]
MODELS = Path(__file__).resolve().parent / "goldens" / "models"
CORE_PYTHON = "/work/jubatus-ref/core/venv/bin/python"
JUBADUMP = "/work/jubatus-ref/server/run_server.sh dump"


def run_core(python: str, request: dict[str, Any]) -> dict[str, Any]:
    """:mod:`tests.oracle.core_models` in the core's interpreter."""
    done = subprocess.run(
        [python, "-m", "tests.oracle.core_models"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the core's script failed:\n{done.stderr}")
    reply: dict[str, Any] = json.loads(done.stdout)
    return reply


def jubadump(command: str, path: Path) -> Any:
    """Jubatus's jubadump on ``path``: the JSON it printed, or its exit and stderr."""
    done = subprocess.run(
        [*shlex.split(command), "-i", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {"exit": done.returncode, "stderr": done.stderr.strip().replace(str(path), "FILE")}
    return {"stdout": done.stdout}


def save_jubako(
    folder: Path, chosen: list[dict[str, Any]]
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Jubako's file and answers for every chosen case."""
    files, answers = {}, {}
    for case in chosen:
        serv = jubako_models.build(case)
        path = folder / f"{case['name']}.jubatus"
        path.write_bytes(jubako_models.save_bytes(serv, case))
        files[case["name"]] = path
        answers[case["name"]] = jubako_models.answers(serv, case)
    return files, answers


def check(core: str, chosen: list[dict[str, Any]]) -> int:
    """The reverse direction: the core loads Jubako's files and answers as Jubako does."""
    from tests.oracle.test_model_files import same_case_answers

    with tempfile.TemporaryDirectory() as tmp:
        files, mine = save_jubako(Path(tmp), chosen)
        theirs = run_core(
            core,
            {"action": "load", "files": {k: str(v) for k, v in files.items()}, "cases": chosen},
        )
    failed = 0
    for case in chosen:
        name = case["name"]
        got, expected = theirs.get(name), mine[name]
        ok = got is not None and same_case_answers(case, got, expected)
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {got}"))
    return 1 if failed else 0


def differences(answers: Any, core: Any) -> Any:
    """``answers`` as stored beside the core's: ``{"differs": {index: answer}}`` with the
    answers that are not exactly the core's (anything else, a load error, as it is)."""
    if isinstance(answers, list) and isinstance(core, list) and len(answers) == len(core):
        return {
            "differs": {
                str(i): a for i, (a, c) in enumerate(zip(answers, core, strict=True)) if a != c
            }
        }
    return answers


def answers_text(answers: dict[str, dict[str, Any]]) -> str:
    """``answers.json``'s text: a line per case and origin (the answers packed on it)."""
    lines = []
    for name, origins in answers.items():
        rows = [
            f"  {json.dumps(origin)}: {json.dumps(value, separators=(',', ':'))}"
            for origin, value in origins.items()
        ]
        lines.append(f" {json.dumps(name)}: {{\n" + ",\n".join(rows) + "\n }")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def record(core: str, dump: str, chosen: list[dict[str, Any]]) -> int:
    """Record the chosen cases' goldens; the other cases' stay as they are."""
    for sub in ("core", "jubako", "jubadump/core", "jubadump/jubako"):
        (MODELS / sub).mkdir(parents=True, exist_ok=True)
    core_answers = run_core(core, {"action": "build", "dir": str(MODELS / "core"), "cases": chosen})
    files, jubako_answers = save_jubako(MODELS / "jubako", chosen)
    core_loads = run_core(
        core,
        {"action": "load", "files": {k: str(v) for k, v in files.items()}, "cases": chosen},
    )
    for origin in ("core", "jubako"):
        for case in chosen:
            path = MODELS / origin / f"{case['name']}.jubatus"
            out = MODELS / "jubadump" / origin / f"{case['name']}.json"
            out.write_text(json.dumps(jubadump(dump, path), indent=1) + "\n", encoding="utf-8")
    answers_path = MODELS / "answers.json"
    answers = json.loads(answers_path.read_text(encoding="utf-8")) if answers_path.exists() else {}
    for case in chosen:
        name = case["name"]
        answers[name] = {"core": core_answers[name]}
        for origin, value in (("jubako", jubako_answers), ("core_loads_jubako", core_loads)):
            if value[name] != core_answers[name]:  # left out when equal to the core's
                answers[name][origin] = differences(value[name], core_answers[name])
    order = [case["name"] for case in cases()]
    answers = {name: answers[name] for name in order if name in answers}
    answers_path.write_text(answers_text(answers), encoding="utf-8")
    print(f"wrote {MODELS} ({len(chosen)} cases)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the reverse direction")
    parser.add_argument("--core", default=CORE_PYTHON, help="the core venv's python")
    parser.add_argument("--jubadump", default=JUBADUMP, help="the jubadump command")
    parser.add_argument(
        "names", nargs="*", metavar="CASE", help="only these cases (default: every case)"
    )
    args = parser.parse_args(argv)
    chosen = [case for case in cases() if not args.names or case["name"] in args.names]
    unknown = set(args.names) - {case["name"] for case in chosen}
    if unknown:
        parser.error(f"no such case: {', '.join(sorted(unknown))}")
    if args.check:
        return check(args.core, chosen)
    return record(args.core, args.jubadump, chosen)


if __name__ == "__main__":
    sys.exit(main())
