# mypy: disable-error-code="import-not-found,unused-ignore,no-untyped-def"
"""Jubatus's core side of the golden model files: run by the interpreter that has
``embedded_jubatus`` (Jubatus's C++ core), from the repository root::

    /path/to/core/venv/bin/python -m tests.oracle.core_models < request.json

The request (JSON on stdin) is one of:

- ``{"action": "build", "dir": DIR, "cases": [case, ...]}``: build every case of
  :mod:`tests.oracle.model_cases`, save it as ``DIR/<name>.jubatus`` and answer its
  questions;
- ``{"action": "load", "files": {name: path}, "cases": [case, ...]}``: load each file
  (saved by anyone) into a fresh model of its case's config and answer its questions.

The reply (JSON on stdout) maps each case name to its answers, one per question.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _engine(name: str, config: dict[str, Any]) -> Any:
    import embedded_jubatus  # type: ignore[import-not-found]

    classes = {
        "classifier": embedded_jubatus.Classifier,
        "stat": embedded_jubatus.Stat,
        "regression": embedded_jubatus.Regression,
        "weight": embedded_jubatus.Weight,
        "nearest_neighbor": embedded_jubatus.NearestNeighbor,
        "recommender": embedded_jubatus.Recommender,
        "anomaly": embedded_jubatus.Anomaly,
    }
    return classes[name](config)


def _datum(row: dict[str, Any]) -> Any:
    from jubatus.common import Datum  # type: ignore[import-not-found]

    return Datum(row)


def _plain(value: Any) -> Any:
    """A result as JSON: records as lists of their fields, datums as their values."""
    if hasattr(value, "label") and hasattr(value, "score"):
        return [value.label, value.score]
    if hasattr(value, "id") and hasattr(value, "score"):
        return [value.id, value.score]
    if hasattr(value, "key") and hasattr(value, "value"):
        return [value.key, value.value]
    if hasattr(value, "string_values"):
        return [sorted(map(list, value.string_values)), sorted(map(list, value.num_values))]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _arguments(method: str, args: list[Any]) -> list[Any]:
    """The client's arguments for a call written with rows as dicts."""
    if method == "train":
        return [[(target, _datum(row)) for target, row in args[0]]]
    if method in ("classify", "estimate"):
        return [[_datum(row) for row in args[0]]]
    if method in ("update", "calc_weight", "add", "calc_score"):
        if method == "update" and len(args) == 2:  # anomaly's update(id, row)
            return [args[0], _datum(args[1])]
        return [_datum(args[0])]
    if method in ("set_row", "update_row", "overwrite"):
        return [args[0], _datum(args[1])]
    if method in (
        "neighbor_row_from_datum",
        "similar_row_from_datum",
        "complete_row_from_datum",
    ):
        return [_datum(args[0]), *args[1:]]
    return list(args)


def _call(model: Any, call: list[Any]) -> Any:
    method, *args = call
    try:
        return _plain(getattr(model, method)(*_arguments(method, args)))
    except Exception as error:  # an error is an answer too (e.g. a key not found)
        return {"error": type(error).__name__}


def build(request: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    folder = Path(request["dir"])
    for case in request["cases"]:
        model = _engine(case["engine"], case["config"])
        for call in case["build"]:
            _call(model, call)
        (folder / f"{case['name']}.jubatus").write_bytes(model.save_bytes())
        out[case["name"]] = [_call(model, call) for call in case["ask"]]
    return out


def load(request: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case in request["cases"]:
        path = request["files"].get(case["name"])
        if path is None:
            continue
        model = _engine(case["engine"], case["config"])
        try:
            model.load_bytes(Path(path).read_bytes())
        except Exception as error:
            out[case["name"]] = {"load_error": f"{type(error).__name__}: {error}"}
            continue
        out[case["name"]] = [_call(model, call) for call in case["ask"]]
    return out


def main() -> int:
    request = json.load(sys.stdin)
    action = {"build": build, "load": load}[request["action"]]
    json.dump(action(request), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
