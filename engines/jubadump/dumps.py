"""What ``jubadump`` prints for each engine: the model in a model file's user data, in
Jubatus's layout, as plain JSON values (the shapes of jubadump 1.1.0's ``*_dump`` structs).

Jubatus's jubadump reads the model as its own mirror structures do; so does this module,
and its answers have the same shape, member for member:

- ``classifier`` (linear methods) and ``regression`` (linear methods): the storage's
  weights, master and diff added up (``{"weight": {feature: {label: {"v1", "v2",
  "v3"}}}}``), the label counts and their version (classifier), and the converter's
  document counts (``weights``);
- ``recommender`` (``inverted_index``, ``inverted_index_euclid``): the rows as given
  (``original.inv``: ``{row: {feature: value}}``) and the mixed inverted index
  (``storage.inv``: ``{feature: {row: value}}``);
- ``anomaly``: for ``lof`` over ``inverted_index``, the LOF entries (``kdist``, ``lrd``)
  and the index; other methods and backends print ``{"(dump not supported)": null}`` for
  the part jubadump cannot read, with Jubatus's warning on stderr;
- ``nearest_neighbor``: the row table (``schema``, ``data`` per row with its column
  values, owner and version, ``clock``).

Jubako's jubadump also dumps what Jubatus's refuses ("type ... is not supported for dump"):
``stat`` (window, per-key sums, mixed totals), ``weight`` (the document counts), the
neighbour-based methods of ``classifier`` and ``regression``, and recommender and ``lof``
models with an unlearner (Jubatus's stops with ``std::bad_cast``); those shapes follow the
same conventions (:data:`EXTENSIONS` names them). Every problem is a :class:`DumpError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from engines.common.jubatus_file import (
    PlainWeights,
    read_key_manager,
    read_keyword_weights,
    read_labels,
    read_number,
    read_struct,
    read_version,
)
from runtime.mix.mixable import DiffError, read_int, read_list, read_map, read_text

#: What Jubako's jubadump dumps beyond Jubatus's (engine, method) pairs. Besides these,
#: the recommender and anomaly models with an unlearner (Jubatus's fails on the unlearner
#: that comes first: "std::bad_cast"); the unlearner is left out of the dump.
EXTENSIONS = (
    "stat",
    "weight",
    "classifier: NN, nearest_neighbor, cosine, euclidean",
    "regression: NN, nearest_neighbor, cosine, euclidean",
)
#: The methods Jubatus's jubadump refuses for classifier and regression.
NEIGHBOR_METHODS = ("NN", "nearest_neighbor", "cosine", "euclidean")
UNSUPPORTED = {"(dump not supported)": None}


class DumpError(Exception):
    """A model jubadump cannot print (its message is what follows ``failed to dump``)."""


# -- shared pieces -------------------------------------------------------------------------


def _weight_manager(value: object) -> dict[str, Any]:
    """``weight_manager_dump``: master and diff added up."""
    version, diff, master = read_struct(value, "weights", 3)
    master_weights = read_keyword_weights(master if master is not None else [], "weights[2]")
    diff_weights = read_keyword_weights(diff if diff is not None else [], "weights[1]")

    def merged(name: str) -> dict[str, float]:
        out = dict(_counter(master_weights, name))
        for key, number in _counter(diff_weights, name).items():
            out[key] = out.get(key, 0.0) + number
        return out

    count = _count(master_weights) + _count(diff_weights)
    return {
        "version_number": read_version(version, "weights[0]"),
        "document_count": count,
        "document_frequencies": merged("document_frequencies"),
        "group_frequencies": merged("group_frequencies"),
        "group_total_lengths": merged("group_total_lengths"),
    }


def _counter(weights: PlainWeights, name: str) -> dict[str, float]:
    table = weights[name]
    assert isinstance(table, dict)
    return table


def _count(weights: PlainWeights) -> int:
    count = weights["document_count"]
    assert isinstance(count, int)
    return count


def _labels(value: object) -> dict[str, Any]:
    master, diff, version = read_labels(value, "labels")
    counts = dict(master)
    for label, n in diff.items():
        counts[label] = counts.get(label, 0) + n
    return {"version_number": version, "label_count": counts}


def _triples(value: object, labels: dict[int, str], path: str, into: dict[str, Any]) -> None:
    """Add a ``{feature: {label id: [v1, v2, v3]}}`` table into ``into`` (v += table)."""
    if value is None:
        return
    for feature, row in read_map(value, path).items():
        if not isinstance(row, dict):
            raise DiffError(f"{path}[{feature!r}]: expected a map")
        entries = into.setdefault(feature, {})
        for label_id, triple in row.items():
            label = labels.get(read_int(label_id, f"{path}[{feature!r}] key"))
            if label is None:
                raise DumpError("unknown key found in storage")
            values = read_struct(triple, f"{path}[{feature!r}]", 3)
            v1, v2, v3 = (0.0 if v is None else read_number(v, path) for v in values)
            entry = entries.setdefault(label, {"v1": 0.0, "v2": 0.0, "v3": 0.0})
            entry["v1"] += v1
            entry["v2"] += v2
            entry["v3"] += v3


def _linear_storage(value: object) -> dict[str, Any]:
    """``local_storage_mixture_dump``: ``tbl`` plus ``tbl_diff``."""
    tbl, class2id, tbl_diff = read_struct(value, "storage", 3)
    labels = read_key_manager(class2id, "storage[1]")
    weight: dict[str, Any] = {}
    _triples(tbl, labels, "storage[0]", weight)
    _triples(tbl_diff, labels, "storage[2]", weight)
    return {"weight": weight}


def _convert_table(value: object, keys: dict[int, str], path: str) -> dict[str, Any]:
    """jubadump's ``convert_table``: ``{outer: {inner id: value}}`` with ids named."""
    out: dict[str, dict[str, float]] = {}
    if value is None:
        return out
    for outer, row in read_map(value, path).items():
        if not isinstance(row, dict):
            raise DiffError(f"{path}[{outer!r}]: expected a map")
        for inner, number in row.items():
            key = keys.get(read_int(inner, f"{path}[{outer!r}] key"))
            if key is None:
                raise DumpError(f"ID is not found. This file is broken: {inner}")
            out.setdefault(outer, {})[key] = read_number(number, f"{path}[{outer!r}]")
    return out


def _inverted_index_recommender(value: object) -> dict[str, Any]:
    """``inverted_index_recommender_dump``: ``[original, storage]``."""
    original, storage = read_struct(value, "index", 2)
    tbl, column2id = read_struct(original, "index[0]", 2)
    inv, _, _, _, row2id = read_struct(storage, "index[1]", 5)
    return {
        "original": {"inv": _convert_table(tbl, read_key_manager(column2id, "index[0][1]"), "o")},
        "storage": {"inv": _convert_table(inv, read_key_manager(row2id, "index[1][4]"), "s")},
    }


_COLUMN_TYPES = (
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float",
    "double",
    "bit_vector",
    "string",
)


def column_table(value: object) -> dict[str, Any]:
    """``column_table_dump``: the schema, each row's column values, owner and version.

    A row's own words: Jubatus's jubadump 1.1.0 reads the words of the row at position
    ``r`` at ``r + i`` instead of ``r * words + i``, so for hashes longer than 64 bits it
    prints other rows' words (the only place this dump differs from it on purpose)."""
    keys, _, versions, columns, clock, index = read_struct(value, "table", 6)
    schema: list[dict[str, Any]] = []
    bits_of: list[int] = []
    data: list[list[object]] = []
    for i, column in enumerate(read_list(columns or [], "table[3]")):
        kind, words = read_struct(column, f"table[3][{i}]", 2)
        type_id, bits = read_struct(kind, f"table[3][{i}][0]", 2)
        number = read_int(type_id, f"table[3][{i}][0][0]")
        if number >= len(_COLUMN_TYPES):
            raise DumpError("unknown type")
        bits_of.append(read_int(bits or 0, "bits"))
        schema.append({"type": _COLUMN_TYPES[number], "bit_vector_length": bits_of[-1]})
        data.append(read_list(words or [], f"table[3][{i}][1]"))
    positions = {read_text(k, "table[5] key"): v for k, v in read_map(index or {}, "t").items()}
    version_list = read_list(versions or [], "table[2]")
    rows: dict[str, Any] = {}
    for row_id, key in enumerate(read_list(keys or [], "table[0]")):
        name = read_text(key, f"table[0][{row_id}]")
        if name not in positions:
            raise DumpError("index is broken")
        at = read_int(positions[name], "table[5]")
        values: list[list[object]] = []
        for bits, column_words in zip(bits_of, data, strict=True):
            blocks = max(bits - 1, 0) // 64 + 1
            start = at * blocks
            values.append([_plain(column_words[start + b]) for b in range(blocks)])
        owner, version = read_struct(version_list[row_id], f"table[2][{row_id}]", 2)
        (owner_name,) = read_struct(owner, f"table[2][{row_id}][0]", 1)
        rows[name] = {
            "values": values,
            "owner": read_text(owner_name or b"", "owner"),
            "version": read_int(version or 0, "version"),
        }
    return {"schema": schema, "data": rows, "clock": read_int(clock or 0, "table[4]")}


def _plain(value: object) -> object:
    """A msgpack value as jubadump's serializer turns one into JSON (an unsigned integer
    as a signed 64-bit one: a hash word above 2**63 prints negative, as in Jubatus's)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 << 63:
        return value - (1 << 64)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    return value


def _driver(payload: object, parts: int) -> list[object]:
    items = read_list(payload, "model")
    if len(items) < parts:
        raise DiffError(f"model: expected {parts} parts, got {len(items)}")
    return items


# -- the engines ---------------------------------------------------------------------------


def _classifier(config: dict[str, Any], payload: object, warn: Callable[[str], None]) -> object:
    method = str(config.get("method"))
    model, weights = _driver(payload, 2)[:2]
    if method in NEIGHBOR_METHODS:
        return {"storage": neighbor_classifier(method, model), "weights": _weight_manager(weights)}
    storage, labels = read_struct(model, "classifier", 2)
    return {
        "storage": {"storage": _linear_storage(storage), "label": _labels(labels)},
        "weights": _weight_manager(weights),
    }


def _regression(config: dict[str, Any], payload: object, warn: Callable[[str], None]) -> object:
    method = str(config.get("method"))
    model, weights = _driver(payload, 2)[:2]
    if method in NEIGHBOR_METHODS:
        return {"storage": neighbor_regression(method, model), "weights": _weight_manager(weights)}
    (storage,) = read_struct(model, "regression", 1)
    return {"storage": {"storage": _linear_storage(storage)}, "weights": _weight_manager(weights)}


def _without_unlearner(config: dict[str, Any], model: object, path: str) -> object:
    """A recommender's or lof's part without the unlearner that leads it when the config
    names one."""
    parameter = config.get("parameter")
    if isinstance(parameter, dict) and parameter.get("unlearner") is not None:
        return read_list(model, path)[1:]
    return model


def _recommender(config: dict[str, Any], payload: object, warn: Callable[[str], None]) -> object:
    method = str(config.get("method"))
    if method not in ("inverted_index", "inverted_index_euclid"):
        raise DumpError(f'recommender method "{method}" is not supported for dump')
    model, weights = _driver(payload, 2)[:2]
    model = _without_unlearner(config, model, "recommender")
    return {"index": _inverted_index_recommender(model), "weights": _weight_manager(weights)}


def _anomaly(config: dict[str, Any], payload: object, warn: Callable[[str], None]) -> object:
    method = str(config.get("method"))
    parameter = config.get("parameter")
    backend = str(parameter.get("method")) if isinstance(parameter, dict) else "None"
    model, weights = _driver(payload, 2)[:2]
    if method != "lof":
        warn(f'Warning: anomaly method "{method}" is not fully supported for dump')
        return {"storage": dict(UNSUPPORTED), "weights": _weight_manager(weights)}
    storage, nn_storage = read_struct(_without_unlearner(config, model, "lof"), "lof", 2)
    table, table_diff, _, _ = read_struct(storage, "lof[0]", 4)
    entries: dict[str, Any] = {}
    for part in (table_diff, table):  # jubadump reads the diff first: the master wins
        for row, entry in read_map(part or {}, "lof[0]").items():
            kdist, lrd = read_struct(entry, f"lof[0][{row!r}]", 2)
            entries[row] = {
                "kdist": read_number(kdist or 0.0, "kdist"),
                "lrd": read_number(lrd or 0.0, "lrd"),
            }
    if backend == "inverted_index":
        records: object = _inverted_index_recommender(nn_storage)
    else:
        warn(f'Warning: backend recommender method "{backend}" is not supported for dump')
        records = dict(UNSUPPORTED)
    return {
        "storage": {"lof_records": {"entry": entries}, "nn_records": records},
        "weights": _weight_manager(weights),
    }


def _nearest_neighbor(
    config: dict[str, Any], payload: object, warn: Callable[[str], None]
) -> object:
    table, weights = _driver(payload, 2)[:2]
    return {"table": column_table(table), "weights": _weight_manager(weights)}


def _weight(config: dict[str, Any], payload: object, warn: Callable[[str], None]) -> object:
    (weights,) = _driver(payload, 1)[:1]
    return {"weights": _weight_manager(weights)}


def _stat(config: dict[str, Any], payload: object, warn: Callable[[str], None]) -> object:
    window_size, window, stats, e, n = read_struct(payload, "stat", 5)
    entries = []
    for i, entry in enumerate(read_list(window or [], "stat[1]")):
        clock, pair = read_struct(entry, f"stat[1][{i}]", 2)
        key, value = read_struct(pair, f"stat[1][{i}][1]", 2)
        entries.append(
            {
                "clock_time": read_int(clock or 0, "clock"),
                "key": read_text(key, "key"),
                "value": read_number(value, "value"),
            }
        )
    per_key = {}
    for key, numbers in read_map(stats or {}, "stat[2]").items():
        count, total, squares, high, low = read_struct(numbers, f"stat[2][{key!r}]", 5)
        per_key[key] = {
            "n": read_int(count or 0, "n"),
            "sum": read_number(total or 0.0, "sum"),
            "sum2": read_number(squares or 0.0, "sum2"),
            "max": read_number(high or 0.0, "max"),
            "min": read_number(low or 0.0, "min"),
        }
    return {
        "window_size": read_int(window_size or 0, "stat[0]"),
        "window": entries,
        "stats": per_key,
        "e": read_number(e or 0.0, "stat[3]"),
        "n": read_number(n or 0.0, "stat[4]"),
    }


def neighbor_classifier(method: str, model: object) -> dict[str, Any]:
    """The neighbour classifiers (Jubako's extension): the rows and the label counts."""
    parts = read_list(model, "classifier")
    if method in ("cosine", "euclidean"):
        storage, labels = read_struct(parts, "classifier", 2)
        return {"index": inverted_index_storage(storage), "label": _labels(labels)}
    table, labels = parts[-2:] if len(parts) >= 2 else (None, None)
    return {"table": column_table(table), "label": _labels(labels)}


def neighbor_regression(method: str, model: object) -> dict[str, Any]:
    """The neighbour regressions (Jubako's extension): the rows and their values."""
    parts = read_list(model, "regression")
    storage, values = parts[-2:] if len(parts) >= 2 else (None, None)
    rows = column_table(storage) if method not in ("cosine", "euclidean") else None
    out: dict[str, Any] = {"values": _plain(values)}
    if rows is not None:
        out["table"] = rows
    else:
        out["index"] = inverted_index_storage(storage)
    return out


def inverted_index_storage(value: object) -> dict[str, Any]:
    """``inverted_index_storage`` with master and diff added up, and the row norms."""
    inv, inv_diff, norms, norms_diff, row2id = read_struct(value, "index", 5)
    rows = read_key_manager(row2id, "index[4]")
    table = _convert_table(inv, rows, "index[0]")
    for feature, row in _convert_table(inv_diff, rows, "index[1]").items():
        table.setdefault(feature, {}).update(row)
    norm: dict[str, float] = {}
    for part in (norms, norms_diff):
        for row_id, number in (part or {}).items() if isinstance(part, dict) else ():
            name = rows.get(read_int(row_id, "norm"))
            if name is not None:
                norm[name] = read_number(number, "norm")
    return {"inv": table, "norm": norm}


ENGINES: dict[str, Callable[[dict[str, Any], object, Callable[[str], None]], object]] = {
    "classifier": _classifier,
    "regression": _regression,
    "recommender": _recommender,
    "anomaly": _anomaly,
    "nearest_neighbor": _nearest_neighbor,
    "weight": _weight,
    "stat": _stat,
}


def dump(service_type: str, config_json: str, payload: object, warn: Callable[[str], None]) -> Any:
    """The JSON value jubadump prints for a model; ``warn`` gets its warnings."""
    engine = ENGINES.get(service_type)
    if engine is None:
        raise DumpError(f'type "{service_type}" is not supported for dump')
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as error:
        raise DumpError(f"invalid model file structure: config: {error}") from None
    if not isinstance(config, dict):
        raise DumpError("invalid model file structure: config is not an object")
    try:
        return engine(config, payload, warn)
    except DiffError as error:
        raise DumpError(f"invalid model data: {error}") from None


__all__ = ["EXTENSIONS", "DumpError", "column_table", "dump"]
