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

#: Converters only Jubatus's whole converter takes (the classifier's linear methods run
#: on it for these: engines/classifier/full_converter.py).
FILTER_CONVERTER: dict[str, Any] = {
    "string_filter_types": {"vowels": {"method": "regexp", "pattern": "[aeiou]", "replace": ""}},
    "string_filter_rules": [{"key": "text", "type": "vowels", "suffix": "-nov"}],
    "num_filter_types": {
        "plus": {"method": "add", "value": "2.5"},
        "scaled": {"method": "linear_normalization", "min": "-4", "max": "4"},
    },
    "num_filter_rules": [
        {"key": "n1", "type": "plus", "suffix": "+"},
        {"key": "n*", "type": "scaled", "suffix": "_s"},
    ],
    "string_rules": [
        {"key": "text", "type": "space", "sample_weight": "tf", "global_weight": "idf"},
        {"key": "text-nov", "type": "space", "sample_weight": "bin", "global_weight": "idf1"},
        {"key": "tag", "type": "str", "sample_weight": "bin", "global_weight": "bin"},
    ],
    "num_rules": [{"key": "*", "type": "num"}],
}
COMBINATION_CONVERTER: dict[str, Any] = {
    "string_rules": [
        {"key": "text", "type": "space", "sample_weight": "bin", "global_weight": "bin"},
        {"key": "tag", "type": "str", "sample_weight": "bin", "global_weight": "bin"},
    ],
    "num_rules": [{"key": "*", "type": "num"}],
    "combination_rules": [
        {"key_left": "n*", "key_right": "n*", "type": "mul"},
        {"key_left": "tag*", "key_right": "n*", "type": "add"},
    ],
}
BM25_CONVERTER: dict[str, Any] = {
    "string_types": {"bigram": {"method": "ngram", "char_num": "2"}},
    "string_rules": [
        {"key": "text", "type": "space", "sample_weight": "tf", "global_weight": "bm25"},
        {"key": "text", "type": "bigram", "sample_weight": "log_tf", "global_weight": "bm25"},
        {"key": "tag", "type": "str", "sample_weight": "bin", "global_weight": "weight"},
    ],
    "num_rules": [{"key": "*", "type": "num"}],
    "hash_max_size": 512,
}
FULL_CONVERTERS = {
    "filters": FILTER_CONVERTER,
    "combination": COMBINATION_CONVERTER,
    "bm25": BM25_CONVERTER,
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
    for key, full in FULL_CONVERTERS.items():
        if name.endswith(f"_{key}"):
            converter = full
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


def _numeric_rows(seed: int, count: int) -> list[dict[str, Any]]:
    return [row for _, row in gaussian_rows(seed, count)]


def _regression_case(name: str, method: str, parameter: Any) -> dict[str, Any]:
    rng = random.Random(31)
    data = []
    for row in synthetic_rows(53, 70):
        total = sum(v for k, v in row.items() if k.startswith("n") and isinstance(v, float))
        data.append((round(2.0 * total + rng.gauss(0.0, 0.5), 4), row))
    build: list[Call] = [["train", [[value, row]]] for value, row in data[:55]]
    ask: list[Call] = [["estimate", [row for _, row in data[55:]]]]
    config = {"method": method, "parameter": parameter, "converter": TEXT_CONVERTER}
    return {"name": name, "engine": "regression", "config": config, "build": build, "ask": ask}


def _weight_case() -> dict[str, Any]:
    rows = synthetic_rows(61, 40)
    build: list[Call] = [["update", row] for row in rows[:30]]
    ask: list[Call] = [["calc_weight", row] for row in rows[30:]]
    return {
        "name": "weight_idf",
        "engine": "weight",
        "config": {"converter": TEXT_CONVERTER},
        "build": build,
        "ask": ask,
    }


def _row_questions(prefix: str, ids: list[str], probes: list[dict[str, Any]]) -> list[Call]:
    """Questions by id and by datum for the row engines (``prefix``: ``neighbor``/``similar``
    methods of nearest_neighbor, ``similar`` of the recommender)."""
    ask: list[Call] = [["get_all_rows"]]
    for row_id in ids:
        ask.append([f"{prefix}_row_from_id", row_id, 6])
    for row in probes:
        ask.append([f"{prefix}_row_from_datum", row, 6])
    return ask


def _nearest_neighbor_case(name: str, method: str, parameter: Any) -> dict[str, Any]:
    rows = _numeric_rows(71, 45)
    build: list[Call] = [["set_row", f"r{i}", row] for i, row in enumerate(rows[:40])]
    build.append(["set_row", "r3", rows[40]])  # a row set again
    ids = ["r0", "r3", "r17", "r39"]
    ask = _row_questions("neighbor", ids, rows[41:]) + [
        question
        for question in _row_questions("similar", ids, rows[41:])
        if question[0] != "get_all_rows"
    ]
    return {
        "name": name,
        "engine": "nearest_neighbor",
        "config": {"method": method, "parameter": parameter, "converter": NUM_CONVERTER},
        "build": build,
        "ask": ask,
    }


def _recommender_case(name: str, method: str, parameter: Any) -> dict[str, Any]:
    rows = synthetic_rows(83, 45)
    build: list[Call] = [["update_row", f"u{i}", row] for i, row in enumerate(rows[:40])]
    build.append(["update_row", "u5", rows[40]])  # a row updated (features added)
    build.append(["clear_row", "u7"])
    ids = ["u0", "u5", "u7", "u22"]
    ask = _row_questions("similar", ids, rows[41:])
    ask += [["complete_row_from_id", row_id] for row_id in ids]
    ask += [["complete_row_from_datum", row] for row in rows[41:]]
    ask += [["decode_row", row_id] for row_id in ids]
    config: dict[str, Any] = {"method": method, "converter": TEXT_CONVERTER}
    if parameter is not None:
        config["parameter"] = parameter
    return {"name": name, "engine": "recommender", "config": config, "build": build, "ask": ask}


def _anomaly_case(name: str, method: str, parameter: Any) -> dict[str, Any]:
    rows = _numeric_rows(97, 40)
    build: list[Call] = [["add", row] for row in rows[:34]]
    build.append(["update", "4", rows[34]])
    ask: list[Call] = [["get_all_rows"]] + [["calc_score", row] for row in rows[35:]]
    config = {"method": method, "parameter": parameter, "converter": NUM_CONVERTER}
    return {"name": name, "engine": "anomaly", "config": config, "build": build, "ask": ask}


def cases() -> list[dict[str, Any]]:
    """Every case, in a fixed order (the goldens' names are the case names)."""
    gaussian = gaussian_rows(23, 130)
    text = _text_labelled(41, 100)
    # Two labels: no tie between wrong labels, which Jubatus breaks in its hash order.
    text_two = [("cold" if label == "cold" else "warm", row) for label, row in text]
    return [
        _classifier_case("classifier_arow_text", "AROW", {"regularization_weight": 1.0}, text, 80),
        _classifier_case("classifier_perceptron_delete", "perceptron", None, gaussian, 100),
        _classifier_case("classifier_cw", "CW", {"regularization_weight": 1.0}, gaussian, 100),
        _classifier_case("classifier_pa1_text", "PA1", {"regularization_weight": 0.5}, text, 80),
        _classifier_case(
            "classifier_nherd", "NHERD", {"regularization_weight": 0.5}, gaussian, 100
        ),
        _stat_case(),
        _classifier_case(
            "classifier_nn_lsh",
            "NN",
            {
                "method": "lsh",
                "parameter": {"hash_num": 64},
                "nearest_neighbor_num": 5,
                "local_sensitivity": 1.0,
            },
            gaussian,
            100,
        ),
        _classifier_case(
            "classifier_cosine_text",
            "cosine",
            {"nearest_neighbor_num": 5, "local_sensitivity": 1.0},
            text,
            80,
        ),
        _regression_case(
            "regression_pa1", "PA1", {"sensitivity": 0.1, "regularization_weight": 1.0}
        ),
        _regression_case(
            "regression_arow", "AROW", {"sensitivity": 0.1, "regularization_weight": 1.0}
        ),
        _weight_case(),
        _nearest_neighbor_case("nearest_neighbor_lsh", "lsh", {"hash_num": 64}),
        _recommender_case("recommender_inverted_index", "inverted_index", None),
        _recommender_case("recommender_lsh", "lsh", {"hash_num": 64}),
        _anomaly_case(
            "anomaly_lof",
            "lof",
            {
                "nearest_neighbor_num": 5,
                "reverse_nearest_neighbor_num": 10,
                "method": "inverted_index_euclid",
                "parameter": {},
            },
        ),
        _classifier_case(
            "classifier_nn_euclid_lsh_lru",
            "NN",
            {
                "method": "euclid_lsh",
                "parameter": {"hash_num": 64},
                "nearest_neighbor_num": 5,
                "local_sensitivity": 1.0,
                "unlearner": "lru",
                "unlearner_parameter": {"max_size": 60},
            },
            gaussian,
            100,
        ),
        _regression_case(
            "regression_nn_euclid_lsh",
            "NN",
            {"method": "euclid_lsh", "parameter": {"hash_num": 64}, "nearest_neighbor_num": 5},
        ),
        _regression_case(
            "regression_cosine", "cosine", {"nearest_neighbor_num": 5, "weight": "distance"}
        ),
        _nearest_neighbor_case("nearest_neighbor_minhash", "minhash", {"hash_num": 64}),
        _nearest_neighbor_case("nearest_neighbor_euclid_lsh", "euclid_lsh", {"hash_num": 100}),
        _recommender_case(
            "recommender_inverted_index_lru",
            "inverted_index",
            {"unlearner": "lru", "unlearner_parameter": {"max_size": 30}},
        ),
        _recommender_case("recommender_inverted_index_euclid", "inverted_index_euclid", None),
        _recommender_case("recommender_minhash", "minhash", {"hash_num": 64}),
        _recommender_case(
            "recommender_euclid_lsh",
            "euclid_lsh",
            {"hash_num": 64, "table_num": 4, "seed": 1091, "probe_num": 64, "bin_width": 100},
        ),
        _recommender_case(
            "recommender_nearest_neighbor",
            "nearest_neighbor_recommender",
            {"method": "euclid_lsh", "parameter": {"hash_num": 128}},
        ),
        _anomaly_case(
            "anomaly_lof_euclid_lsh_lru",
            "lof",
            {
                "nearest_neighbor_num": 5,
                "reverse_nearest_neighbor_num": 10,
                "method": "euclid_lsh",
                "parameter": {
                    "hash_num": 64,
                    "table_num": 4,
                    "seed": 1091,
                    "probe_num": 64,
                    "bin_width": 100,
                },
                "unlearner": "lru",
                "unlearner_parameter": {"max_size": 25},
            },
        ),
        _anomaly_case(
            "anomaly_light_lof",
            "light_lof",
            {
                "nearest_neighbor_num": 5,
                "reverse_nearest_neighbor_num": 10,
                "method": "euclid_lsh",
                "parameter": {"hash_num": 64},
            },
        ),
        _classifier_case(
            "classifier_arow_text_filters", "AROW", {"regularization_weight": 1.0}, text[:40], 30
        ),
        _classifier_case(
            "classifier_pa1_text_combination", "PA1", {"regularization_weight": 0.5}, text[:40], 30
        ),
        _classifier_case(
            "classifier_arow_text_bm25", "AROW", {"regularization_weight": 1.0}, text_two[:40], 30
        ),
    ]
