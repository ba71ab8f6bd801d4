# mypy: disable-error-code="import-not-found,unused-ignore"
"""Record golden answers of Jubatus's own C++ core (``embedded_jubatus``) on fixed inputs.

Run it with the interpreter that has the core's Python bridge, from the repository root::

    /path/to/core/venv/bin/python -m tests.oracle.record [ENGINE ...]

It writes ``tests/oracle/goldens/<engine>.json.gz``: the configs, the inputs and the core's
answers. The tests (``tests/engines/*/test_*_golden.py``) replay the inputs through Jubako
and compare, so CI needs no C++ build. Inputs are scikit-learn's bundled data sets (no
download) and seeded synthetic rows (:mod:`tests.oracle.datasets`).
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.oracle.datasets import split_row, synthetic_rows

GOLDENS = Path(__file__).resolve().parent / "goldens"

NUM_CONVERTER: dict[str, Any] = {"num_rules": [{"key": "*", "type": "num"}]}
TEXT_CONVERTER: dict[str, Any] = {
    "string_types": {"bigram": {"method": "ngram", "char_num": "2"}},
    "string_rules": [
        {"key": "text", "type": "space", "sample_weight": "tf", "global_weight": "idf"},
        {"key": "tag", "type": "str", "sample_weight": "bin", "global_weight": "bin"},
    ],
    "num_rules": [{"key": "*", "type": "num"}],
}


def _datum(row: dict[str, Any]) -> Any:
    from jubatus.common import Datum  # type: ignore[import-not-found]

    return Datum(row)


def _diabetes() -> tuple[list[dict[str, Any]], list[float]]:
    from sklearn.datasets import load_diabetes  # type: ignore[import-not-found]

    data = load_diabetes()
    rows = [{f"x{j}": float(v) for j, v in enumerate(x)} for x in data.data]
    return rows, [float(t) for t in data.target]


def _features(result: Any) -> list[list[Any]]:
    return [[f.key, f.value] for f in result]


# -- regression ----------------------------------------------------------------------------

REGRESSION_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("perceptron", "diabetes", {"learning_rate": 0.01}),
    ("PA", "diabetes", {"sensitivity": 0.1}),
    ("PA1", "diabetes", {"sensitivity": 0.1, "regularization_weight": 1.0}),
    ("PA2", "diabetes", {"sensitivity": 0.1, "regularization_weight": 1.0}),
    ("CW", "diabetes", {"sensitivity": 0.1, "regularization_weight": 1.0}),
    ("AROW", "diabetes", {"sensitivity": 0.1, "regularization_weight": 1.0}),
    ("NHERD", "diabetes", {"sensitivity": 0.1, "regularization_weight": 1.0}),
    ("AROW", "synthetic", {"sensitivity": 0.05, "regularization_weight": 0.5}),
    ("CW", "synthetic", {"sensitivity": 0.05, "regularization_weight": 0.5}),
    ("PA1", "synthetic", {"sensitivity": 0.05, "regularization_weight": 0.5}),
    (
        "NN",
        "diabetes",
        {"method": "euclid_lsh", "parameter": {"hash_num": 64}, "nearest_neighbor_num": 5},
    ),
    (
        "NN",
        "diabetes",
        {
            "method": "lsh",
            "parameter": {"hash_num": 128},
            "nearest_neighbor_num": 7,
            "weight": "distance",
        },
    ),
    (
        "NN",
        "synthetic",
        {"method": "minhash", "parameter": {"hash_num": 64}, "nearest_neighbor_num": 4},
    ),
    ("cosine", "diabetes", {"nearest_neighbor_num": 5}),
    ("cosine", "synthetic", {"nearest_neighbor_num": 3, "weight": "distance"}),
    ("euclidean", "diabetes", {"nearest_neighbor_num": 5, "weight": "distance"}),
    ("euclidean", "synthetic", {"nearest_neighbor_num": 6}),
]


def _regression_data(name: str) -> tuple[list[dict[str, Any]], list[float], dict[str, Any]]:
    if name == "diabetes":
        rows, targets = _diabetes()
        return rows, [t / 100.0 for t in targets], NUM_CONVERTER
    rows = synthetic_rows(7, 260)
    targets = [
        sum(v for k, v in row.items() if k.startswith("n") and isinstance(v, float))
        + (1.5 if "tag" in row else 0.0)
        for row in rows
    ]
    return rows, targets, TEXT_CONVERTER


def record_regression() -> dict[str, Any]:
    from embedded_jubatus import Regression  # type: ignore[import-not-found]

    cases = []
    for method, data_name, parameter in REGRESSION_CASES:
        rows, targets, converter = _regression_data(data_name)
        config = {"method": method, "parameter": parameter, "converter": converter}
        model = Regression(config)
        split = len(rows) * 2 // 3
        for row, target in zip(rows[:split], targets[:split], strict=True):
            model.train([(target, _datum(row))])
        estimates = model.estimate([_datum(row) for row in rows[split:]])
        cases.append(
            {"config": config, "data": data_name, "split": split, "estimates": list(estimates)}
        )
    datasets = {}
    for name in ("diabetes", "synthetic"):
        rows, targets, _ = _regression_data(name)
        datasets[name] = {"rows": rows, "targets": targets}
    return {"datasets": datasets, "cases": cases}


# -- weight --------------------------------------------------------------------------------

WEIGHT_CONVERTERS: list[dict[str, Any]] = [
    TEXT_CONVERTER,
    {
        "string_filter_types": {
            "vowels": {"method": "regexp", "pattern": "[aeiou]", "replace": "_"}
        },
        "string_filter_rules": [{"key": "text", "type": "vowels", "suffix": "-nov"}],
        "num_filter_types": {
            "linear": {"method": "linear_normalization", "min": "-3", "max": "3"},
            "gauss": {
                "method": "gaussian_normalization",
                "average": "0",
                "standard_deviation": "2",
            },
            "sig": {"method": "sigmoid_normalization", "gain": "0.5", "bias": "1"},
            "plus": {"method": "add", "value": "10"},
        },
        "num_filter_rules": [
            {"key": "n1", "type": "linear", "suffix": "_lin"},
            {"key": "n2*", "type": "gauss", "suffix": "_g"},
            {"key": "*", "except": "n1*", "type": "sig", "suffix": "_s"},
            {"key": "n3", "type": "plus", "suffix": "+"},
        ],
        "string_types": {
            "bigram": {"method": "ngram", "char_num": "2"},
            "words": {"method": "split", "separators": " _"},
            "first": {"method": "regexp", "pattern": "^([a-z]+)", "group": "1"},
        },
        "string_rules": [
            {"key": "text", "type": "words", "sample_weight": "tf", "global_weight": "idf1"},
            {
                "key": "text-nov",
                "type": "bigram",
                "sample_weight": "log_tf",
                "global_weight": "idf",
            },
            {"key": "tag", "type": "first", "sample_weight": "bin", "global_weight": "bm25"},
            {"key": "text", "type": "space", "sample_weight": "tf", "global_weight": "bm25"},
        ],
        "num_rules": [
            {"key": "n0", "type": "num"},
            {"key": "n1*", "type": "log"},
            {"key": "n2*", "type": "str"},
            {"key": "*", "except": "n0", "type": "num"},
        ],
    },
    {
        "string_rules": [
            {"key": "tag", "type": "str", "sample_weight": "bin", "global_weight": "bin"}
        ],
        "num_rules": [{"key": "n*", "type": "num"}],
        "combination_rules": [
            {"key_left": "*", "key_right": "*", "type": "mul"},
            {"key_left": "tag*", "key_right": "n*", "type": "add"},
        ],
    },
    {
        "string_rules": [
            {"key": "*", "type": "space", "sample_weight": "bin", "global_weight": "idf"}
        ],
        "num_rules": [{"key": "*", "type": "num"}],
        "hash_max_size": 1000,
    },
]


def record_weight() -> dict[str, Any]:
    from embedded_jubatus import Weight  # type: ignore[import-not-found]

    rows = synthetic_rows(11, 120)
    cases = []
    for converter in WEIGHT_CONVERTERS:
        model = Weight({"converter": converter})
        updates = [_features(model.update(_datum(row))) for row in rows[:80]]
        weights = [_features(model.calc_weight(_datum(row))) for row in rows[80:]]
        cases.append({"converter": converter, "updates": updates, "calc_weight": weights})
    return {"rows": rows, "cases": cases}


# -- nearest_neighbor ----------------------------------------------------------------------


def _digits(count: int) -> list[dict[str, Any]]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return [{f"p{j}": float(v) for j, v in enumerate(x) if v} for x in data.data[:count]]


NN_CASES: list[tuple[str, int, str]] = [
    ("lsh", 64, "digits"),
    ("lsh", 200, "synthetic"),
    ("minhash", 64, "digits"),
    ("minhash", 128, "synthetic"),
    ("euclid_lsh", 64, "digits"),
    ("euclid_lsh", 100, "synthetic"),
]


def _nn_rows(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if name == "digits":
        return _digits(400), NUM_CONVERTER
    return synthetic_rows(21, 300), TEXT_CONVERTER


def _scored(result: Any) -> list[list[Any]]:
    return [[r.id, r.score] for r in result]


def record_nearest_neighbor() -> dict[str, Any]:
    from embedded_jubatus import NearestNeighbor

    cases = []
    for method, hash_num, data_name in NN_CASES:
        rows, converter = _nn_rows(data_name)
        config = {"method": method, "parameter": {"hash_num": hash_num}, "converter": converter}
        model = NearestNeighbor(config)
        stored = rows[:-40]
        for i, row in enumerate(stored):
            model.set_row(f"r{i}", _datum(row))
        queries = rows[-40:]
        cases.append(
            {
                "config": config,
                "data": data_name,
                "stored": len(stored),
                "from_id": [
                    _scored(model.neighbor_row_from_id(f"r{i}", 10)) for i in range(0, 60, 3)
                ],
                "from_datum": [
                    _scored(model.neighbor_row_from_datum(_datum(q), 10)) for q in queries
                ],
                "similar_id": [
                    _scored(model.similar_row_from_id(f"r{i}", 5)) for i in range(0, 30, 3)
                ],
                "similar_datum": [
                    _scored(model.similar_row_from_datum(_datum(q), 5)) for q in queries[:10]
                ],
            }
        )
    datasets = {name: _nn_rows(name)[0] for name in ("digits", "synthetic")}
    return {"datasets": datasets, "cases": cases}


# -- recommender ---------------------------------------------------------------------------

RECOMMENDER_CASES: list[tuple[str, Any, str]] = [
    ("inverted_index", {}, "digits"),
    ("inverted_index", {}, "synthetic"),
    ("inverted_index_euclid", {}, "digits"),
    ("inverted_index_euclid", {"ignore_orthogonal": True}, "synthetic"),
    ("lsh", {"hash_num": 64}, "digits"),
    ("minhash", {"hash_num": 64}, "synthetic"),
    (
        "euclid_lsh",
        {"hash_num": 16, "table_num": 4, "bin_width": 8.0, "probe_num": 16, "seed": 1091},
        "digits",
    ),
    (
        "nearest_neighbor_recommender",
        {"method": "euclid_lsh", "parameter": {"hash_num": 64}},
        "digits",
    ),
    (
        "inverted_index",
        {"unlearner": "lru", "unlearner_parameter": {"max_size": 150}},
        "synthetic",
    ),
]


def _datum_values(d: Any) -> list[Any]:
    return [[list(p) for p in d.string_values], [list(p) for p in d.num_values]]


def record_recommender() -> dict[str, Any]:
    from embedded_jubatus import Recommender

    cases = []
    for method, parameter, data_name in RECOMMENDER_CASES:
        rows, converter = _nn_rows(data_name)
        config = {"method": method, "parameter": parameter, "converter": converter}
        model = Recommender(config)
        stored = rows[:-40]
        for i, row in enumerate(stored):
            first, second = split_row(row)
            model.update_row(f"r{i}", _datum(first))
            if second:
                model.update_row(f"r{i}", _datum(second))
        for i in range(0, 40, 7):
            model.clear_row(f"r{i}")
        queries = rows[-40:]
        ids = [f"r{i}" for i in range(1, 60, 4)]
        cases.append(
            {
                "config": config,
                "data": data_name,
                "stored": len(stored),
                "all_rows": sorted(model.get_all_rows()),
                "similar_id": [_scored(model.similar_row_from_id(k, 8)) for k in ids],
                "similar_datum": [
                    _scored(model.similar_row_from_datum(_datum(q), 8)) for q in queries
                ],
                "similar_id_score": [
                    _scored(model.similar_row_from_id_and_score(k, 0.5)) for k in ids[:4]
                ],
                "similar_datum_rate": [
                    _scored(model.similar_row_from_datum_and_rate(_datum(q), 0.02))
                    for q in queries[:6]
                ],
                "complete_id": [_datum_values(model.complete_row_from_id(k)) for k in ids[:6]],
                "complete_datum": [
                    _datum_values(model.complete_row_from_datum(_datum(q))) for q in queries[:6]
                ],
                "decode": [_datum_values(model.decode_row(k)) for k in ids],
                "similarity": [
                    model.calc_similarity(_datum(a), _datum(b))
                    for a, b in zip(queries[:10], queries[10:20], strict=True)
                ],
                "l2norm": [model.calc_l2norm(_datum(q)) for q in queries[:10]],
            }
        )
    return {"cases": cases}


# -- anomaly -------------------------------------------------------------------------------

ANOMALY_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "lof",
        {
            "nearest_neighbor_num": 5,
            "reverse_nearest_neighbor_num": 15,
            "method": "inverted_index_euclid",
            "parameter": {},
        },
        "wine",
    ),
    (
        "lof",
        {
            "nearest_neighbor_num": 4,
            "reverse_nearest_neighbor_num": 10,
            "ignore_kth_same_point": True,
            "method": "inverted_index",
            "parameter": {},
        },
        "synthetic",
    ),
    (
        "lof",
        {
            "nearest_neighbor_num": 6,
            "reverse_nearest_neighbor_num": 12,
            "method": "euclid_lsh",
            "parameter": {
                "hash_num": 8,
                "table_num": 8,
                "probe_num": 32,
                "bin_width": 40.0,
                "seed": 7,
            },
        },
        "wine",
    ),
    (
        "light_lof",
        {
            "nearest_neighbor_num": 5,
            "reverse_nearest_neighbor_num": 15,
            "method": "euclid_lsh",
            "parameter": {"hash_num": 64},
        },
        "wine",
    ),
    (
        "light_lof",
        {
            "nearest_neighbor_num": 4,
            "reverse_nearest_neighbor_num": 8,
            "ignore_kth_same_point": True,
            "method": "lsh",
            "parameter": {"hash_num": 128},
            "unlearner": "lru",
            "unlearner_parameter": {"max_size": 60},
        },
        "synthetic",
    ),
]


def _wine() -> list[dict[str, Any]]:
    from sklearn.datasets import load_wine

    data = load_wine()
    return [{f"f{j}": float(v) for j, v in enumerate(x)} for x in data.data]


def _anomaly_rows(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if name == "wine":
        return _wine(), NUM_CONVERTER
    return synthetic_rows(31, 150), TEXT_CONVERTER


def record_anomaly() -> dict[str, Any]:
    from embedded_jubatus import Anomaly

    cases = []
    for method, parameter, data_name in ANOMALY_CASES:
        rows, converter = _anomaly_rows(data_name)
        config = {"method": method, "parameter": parameter, "converter": converter}
        model = Anomaly(config)
        adds = [[r.id, r.score] for r in (model.add(_datum(row)) for row in rows[:100])]
        bulk = model.add_bulk([_datum(row) for row in rows[100:120]])
        changes = []
        for i, row in enumerate(rows[120:130]):
            key = str(i * 7)
            if method == "lof" and i % 2 == 0:
                changes.append(["update", key, model.update(key, _datum(row))])
            else:
                changes.append(["overwrite", key, model.overwrite(key, _datum(row))])
        if method == "lof":
            for key in ("3", "11", "50"):
                model.clear_row(key)
        scores = [model.calc_score(_datum(row)) for row in rows[130:]]
        cases.append(
            {
                "config": config,
                "data": data_name,
                "add": adds,
                "add_bulk": list(bulk),
                "changes": changes,
                "all_rows": sorted(model.get_all_rows()),
                "calc_score": scores,
            }
        )
    datasets = {name: _anomaly_rows(name)[0] for name in ("wine", "synthetic")}
    return {"datasets": datasets, "cases": cases}


# -- classifier ----------------------------------------------------------------------------

LINEAR_CLASSIFIER_METHODS = ("perceptron", "PA", "PA1", "PA2", "CW", "AROW", "NHERD")
NEIGHBOR_CLASSIFIER_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "NN",
        {
            "method": "euclid_lsh",
            "parameter": {"hash_num": 64},
            "nearest_neighbor_num": 5,
            "local_sensitivity": 1.0,
        },
        "digits",
    ),
    (
        "NN",
        {
            "method": "lsh",
            "parameter": {"hash_num": 128},
            "nearest_neighbor_num": 7,
            "local_sensitivity": 0.5,
        },
        "breast_cancer",
    ),
    (
        "NN",
        {
            "method": "minhash",
            "parameter": {"hash_num": 64},
            "nearest_neighbor_num": 5,
            "local_sensitivity": 1.0,
        },
        "gaussian",
    ),
    ("cosine", {"nearest_neighbor_num": 5, "local_sensitivity": 1.0}, "digits"),
    ("euclidean", {"nearest_neighbor_num": 5, "local_sensitivity": 0.01}, "breast_cancer"),
    ("euclidean", {"nearest_neighbor_num": 9, "local_sensitivity": 0.5}, "gaussian"),
]


def _classification_sets() -> dict[str, dict[str, Any]]:
    import random

    from sklearn.datasets import load_breast_cancer

    sets: dict[str, dict[str, Any]] = {}
    digits = _digits(500)
    from sklearn.datasets import load_digits

    sets["digits"] = {
        "rows": digits,
        "labels": [str(int(t)) for t in load_digits().target[:500]],
        "split": 400,
    }
    cancer = load_breast_cancer()
    sets["breast_cancer"] = {
        "rows": [{f"f{j}": float(v) for j, v in enumerate(x)} for x in cancer.data[:500]],
        "labels": [str(int(t)) for t in cancer.target[:500]],
        "split": 400,
    }
    rng = random.Random(5)
    centres = [[rng.uniform(-4, 4) for _ in range(6)] for _ in range(5)]
    rows, labels = [], []
    for _ in range(450):
        label = rng.randrange(5)
        rows.append({f"g{j}": round(rng.gauss(c, 1.5), 4) for j, c in enumerate(centres[label])})
        labels.append(f"class{label}")
    sets["gaussian"] = {"rows": rows, "labels": labels, "split": 350}
    return sets


def _classify(model: Any, rows: list[dict[str, Any]]) -> list[list[list[Any]]]:
    results = model.classify([_datum(row) for row in rows])
    return [sorted([[r.label, r.score] for r in result]) for result in results]


def record_classifier() -> dict[str, Any]:
    from embedded_jubatus import Classifier

    sets = _classification_sets()
    cases = []
    for data_name, data in sets.items():
        for method in LINEAR_CLASSIFIER_METHODS:
            parameter = None if method in ("perceptron", "PA") else {"regularization_weight": 1.0}
            config: dict[str, Any] = {"method": method, "converter": NUM_CONVERTER}
            if parameter is not None:
                config["parameter"] = parameter
            cases.append(_classifier_case(Classifier, config, data_name, data))
    for method, parameter, data_name in NEIGHBOR_CLASSIFIER_CASES:
        config = {"method": method, "parameter": parameter, "converter": NUM_CONVERTER}
        cases.append(_classifier_case(Classifier, config, data_name, sets[data_name]))
    return {"datasets": sets, "cases": cases}


def _classifier_case(
    classifier: Any, config: dict[str, Any], name: str, data: dict[str, Any]
) -> dict[str, Any]:
    model = classifier(config)
    split = data["split"]
    for row, label in zip(data["rows"][:split], data["labels"][:split], strict=True):
        model.train([(label, _datum(row))])
    return {
        "config": config,
        "data": name,
        "labels": dict(model.get_labels()),
        "classify": _classify(model, data["rows"][split : split + 100]),
    }


RECORDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "classifier": record_classifier,
    "anomaly": record_anomaly,
    "recommender": record_recommender,
    "nearest_neighbor": record_nearest_neighbor,
    "regression": record_regression,
    "weight": record_weight,
}


def main(argv: list[str]) -> int:
    GOLDENS.mkdir(exist_ok=True)
    for name in argv or list(RECORDERS):
        result = RECORDERS[name]()
        path = GOLDENS / f"{name}.json.gz"
        text = json.dumps(result, indent=None, separators=(",", ":")) + "\n"
        path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
        print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
