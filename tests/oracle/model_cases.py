"""The models behind the golden model files (``goldens/models/``): per case an engine, a
config, the calls that build the model and the calls that question it.

Shared by both sides (plain Python, importable from Jubatus's core venv): the core builds
each case with ``embedded_jubatus`` and saves it (:mod:`tests.oracle.core_models`), Jubako
builds it with its services, and each loads the other's file and must answer the same
(:mod:`tests.oracle.record_models`, ``tests/oracle/test_model_files.py``).

A call is ``[method, *arguments]`` with the client's method names; a datum is written as
the dict of its values (:func:`tests.oracle.datasets.split_datum` splits it).
"""

from __future__ import annotations

import random
from typing import Any

from tests.oracle.datasets import synthetic_rows

NUM_CONVERTER: dict[str, Any] = {"num_rules": [{"key": "*", "type": "num"}]}
TEXT_CONVERTER: dict[str, Any] = {
    "string_types": {"bigram": {"method": "ngram", "char_num": "2"}},
    "string_rules": [
        {"key": "text", "type": "space", "sample_weight": "tf", "global_weight": "idf"},
        {"key": "tag", "type": "str", "sample_weight": "bin", "global_weight": "bin"},
    ],
    "num_rules": [{"key": "*", "type": "num"}],
}

Call = list[Any]


def gaussian_rows(seed: int, count: int, classes: int = 4) -> list[tuple[str, dict[str, Any]]]:
    """``(label, row)`` pairs around ``classes`` seeded centres in 5 dimensions."""
    rng = random.Random(seed)
    centres = [[rng.uniform(-3, 3) for _ in range(5)] for _ in range(classes)]
    out = []
    for _ in range(count):
        label = rng.randrange(classes)
        row = {f"g{j}": round(rng.gauss(c, 1.2), 4) for j, c in enumerate(centres[label])}
        out.append((f"class{label}", row))
    return out


def _text_labelled(seed: int, count: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for row in synthetic_rows(seed, count):
        total = sum(v for k, v in row.items() if k.startswith("n") and isinstance(v, float))
        label = "warm" if total > 0 else "cold"
        if "banana" in str(row.get("text", "")):
            label = "fruit"
        out.append((label, row))
    return out


def _classifier_case(
    name: str, method: str, parameter: Any, data: list[tuple[str, dict[str, Any]]], split: int
) -> dict[str, Any]:
    converter = TEXT_CONVERTER if "text" in name else NUM_CONVERTER
    config: dict[str, Any] = {"method": method, "converter": converter}
    if parameter is not None:
        config["parameter"] = parameter
    build: list[Call] = [["train", [[label, row]]] for label, row in data[:split]]
    build.append(["set_label", "spare"])
    if "delete" in name:
        build.append(["delete_label", data[0][0]])
    ask: list[Call] = [["get_labels"], ["classify", [row for _, row in data[split:]]]]
    return {"name": name, "engine": "classifier", "config": config, "build": build, "ask": ask}


def _stat_case() -> dict[str, Any]:
    rng = random.Random(17)
    build: list[Call] = [
        ["push", rng.choice("abcd"), round(rng.gauss(5.0, 3.0), 3)] for _ in range(30)
    ]
    ask: list[Call] = [["entropy", ""]]
    for key in "abcd":
        ask += [
            ["sum", key],
            ["stddev", key],
            ["max", key],
            ["min", key],
            ["moment", key, 3, 0.5],
        ]
    return {
        "name": "stat_window",
        "engine": "stat",
        "config": {"window_size": 12},
        "build": build,
        "ask": ask,
    }


def cases() -> list[dict[str, Any]]:
    """Every case, in a fixed order (the goldens' names are the case names)."""
    gaussian = gaussian_rows(23, 130)
    text = _text_labelled(41, 100)
    return [
        _classifier_case("classifier_arow_text", "AROW", {"regularization_weight": 1.0}, text, 80),
        _classifier_case("classifier_perceptron_delete", "perceptron", None, gaussian, 100),
        _classifier_case("classifier_cw", "CW", {"regularization_weight": 1.0}, gaussian, 100),
        _classifier_case("classifier_pa1_text", "PA1", {"regularization_weight": 0.5}, text, 80),
        _classifier_case(
            "classifier_nherd", "NHERD", {"regularization_weight": 0.5}, gaussian, 100
        ),
        _stat_case(),
    ]
