"""The regression model in Jubatus's layout (the user data of a ``jubaregression`` model
file, user-data version 1), converted from and to
:meth:`~engines.regression.model.RegressionModel.pack`'s value.

- The linear methods (``linear_regression``): ``[[storage], weight_manager]``, the storage
  a linear storage (:mod:`engines.common.jubatus_file`) with one label, ``"+"``. ``tbl``
  holds every feature's weight and variance as the model uses them (master + unmixed diff),
  ``tbl_diff`` is empty, and a trailing element keeps Jubako's own parts:
  ``{"jubako": 1, "diff": {feature: [weight, variance]}, "master": {...} (the mixed part of
  the features that have a diff), "state": [...]}`` (``state``: PA's running sums of the
  targets, which Jubatus does not save: after loading a file from Jubatus they start over).
  A file from Jubatus loads ``tbl`` as master and ``tbl_diff`` as the diff.
- ``NN`` (``nearest_neighbor_regression``): ``[[table, values], weight_manager]`` (the
  unlearner first when there is one), two column tables with the same rows: the hash bits
  (:mod:`engines.common.jubatus_tables`) and each row's target (a ``double`` column).
- ``cosine`` and ``euclidean`` (``inverted_index_regression``): ``[[inverted index,
  values], weight_manager]``.

The weight manager's version is the model's mix version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engines.common.jubatus_file import (
    pack_key_manager,
    pack_version,
    pack_weight_manager,
    read_key_manager,
    read_linear_table,
    read_number,
    read_struct,
    read_version,
    read_weight_manager,
)
from engines.common.jubatus_tables import (
    DOUBLE,
    EXTRA_VERSION,
    Row,
    nn_columns,
    pack_column_table,
    pack_inverted_index,
    pack_unlearner,
    read_column_table,
    read_inverted_index,
    read_unlearner,
)
from engines.regression.model import RegressionModel
from runtime.mix.mixable import DiffError, read_list, read_map

#: The label Jubatus's regression keeps its weights under.
LABEL = "+"


@dataclass(frozen=True)
class Shape:
    """What the config fixes about the layout: ``kind`` is ``linear``, ``nn`` or
    ``inverted``; the hash of ``nn``; the unlearner and its current random state."""

    kind: str
    method: str = ""
    hash_num: int = 0
    unlearner: str | None = None
    unlearner_state: object = None


def shape_of(model: RegressionModel) -> Shape:
    neighbors = model.neighbors
    if neighbors is None:
        return Shape("linear")
    unlearner = neighbors.unlearner
    state = unlearner.pack() if unlearner is not None else None
    name = unlearner.name if unlearner is not None else None
    if neighbors.index is not None:
        return Shape("nn", neighbors.index.name, neighbors.index.hash_num, name, state)
    return Shape("inverted")


def to_jubatus(packed: object, shape: Shape) -> list[object]:
    assert isinstance(packed, dict)
    weights = packed["weights"]
    manager = pack_weight_manager(packed["version"], weights["master"], weights["diff"])
    if shape.kind == "linear":
        return [[_linear_storage(packed["linear"], packed["version"])], manager]
    rows_part = packed["rows"]
    rows: dict[str, list[Any]] = rows_part["rows"]
    table: list[Row] = [(key, row[0], row[1], row[2]) for key, row in rows.items()]
    values: list[Row] = [(key, row[0], row[1], [float(row[3])]) for key, row in rows.items()]
    clock = max((row[0] for row in rows.values()), default=-1) + 1
    if shape.kind == "nn":
        index = pack_column_table(table, clock, nn_columns(shape.method, shape.hash_num))
    else:
        index = pack_inverted_index(
            {"clock": clock, "rows": {key: [c, o, v] for key, c, o, v in table}}
        )
    part: list[object] = [index, pack_column_table(values, clock, [(DOUBLE, 0)])]
    if shape.unlearner is not None and rows_part["unlearner"] is not None:
        part.insert(0, pack_unlearner(shape.unlearner, rows_part["unlearner"]))
    return [part, manager]


def _linear_storage(linear: Mapping[str, Any], version: int) -> list[object]:
    master: dict[str, list[float]] = linear["master"]
    diff: dict[str, list[float]] = linear["diff"]
    table: dict[str, dict[int, list[float]]] = {}
    both = {}
    for feature in dict.fromkeys([*master, *diff]):
        m, d = master.get(feature), diff.get(feature)
        if m is None:
            total = list(d)  # type: ignore[arg-type]
        elif d is None:
            total = list(m)
        else:
            total = [m[0] + d[0], m[1] + d[1]]
            both[feature] = list(m)
        table[feature] = {0: [total[0], total[1], 0.0]}
    return [
        table,
        pack_key_manager([LABEL]),
        {},
        pack_version(version),
        {
            "jubako": EXTRA_VERSION,
            "diff": {feature: list(row) for feature, row in diff.items()},
            "master": both,
            "state": list(linear["state"]),
        },
    ]


def from_jubatus(payload: object, shape: Shape) -> dict[str, object]:
    parts = read_list(payload, "model")
    if len(parts) != 2:
        raise DiffError(f"model: expected [regression, weight_manager], got {len(parts)} parts")
    version, master, diff = read_weight_manager(parts[1], "model[1]")
    out: dict[str, object] = {"version": version, "weights": {"master": master, "diff": diff}}
    if shape.kind == "linear":
        (storage,) = read_struct(parts[0], "model[0]", 1)
        out["linear"] = _read_linear(storage, "model[0][0]")
        out["version"] = read_version(read_struct(storage, "model[0][0]", 4)[3], "model[0][0][3]")
        return out
    part = read_list(parts[0], "model[0]")
    unlearner = None
    if shape.unlearner is not None:
        if len(part) != 3:
            raise DiffError("model[0]: expected [unlearner, rows, values]")
        unlearner = read_unlearner(shape.unlearner, part[0], "model[0][0]")
        if unlearner.get("random", 0) is None:
            unlearner["random"] = read_map(shape.unlearner_state, "state")["random"]
        part = part[1:]
    if len(part) != 2:
        raise DiffError(f"model[0]: expected [rows, values], got {len(part)} parts")
    values, _ = read_column_table(part[1], [(DOUBLE, 0)], "model[0][1]")
    targets = {key: data[0] for key, _, _, data in values}
    rows: dict[str, object] = {}
    if shape.kind == "nn":
        table, _ = read_column_table(part[0], nn_columns(shape.method, shape.hash_num), "rows")
        for key, clock, owner, data in table:
            rows[key] = [clock, owner, data, targets.get(key, 0.0)]
    else:
        index = read_inverted_index(part[0], "model[0][0]")
        for key, row in read_map(index["rows"], "rows").items():
            clock, owner, data = row  # type: ignore[misc]
            rows[key] = [clock, owner, data, targets.get(key, 0.0)]
    out["rows"] = {"rows": rows, "unlearner": unlearner}
    return out


def _read_linear(storage: object, path: str) -> dict[str, object]:
    items = read_list(storage, path)
    tbl, class2id, tbl_diff, _ = read_struct(items, path, 4)
    labels = read_key_manager(class2id, f"{path}[1]")
    if len(labels) > 1:
        raise DiffError(f"{path}[1]: a regression has one label, found {len(labels)}")
    master = _pairs(read_linear_table(tbl, labels, f"{path}[0]"))
    diff = _pairs(read_linear_table(tbl_diff, labels, f"{path}[2]"))
    state: list[float] = []
    extra = items[4] if len(items) > 4 else None
    if isinstance(extra, dict):
        fields = read_map(extra, f"{path}[4]")
        if fields.get("jubako") == EXTRA_VERSION:
            if diff:
                raise DiffError(f"{path}[2]: a diff table beside Jubako's own diff")
            diff = _read_pairs(fields.get("diff", {}), f"{path}[4].diff")
            exact = _read_pairs(fields.get("master", {}), f"{path}[4].master")
            master = {f: row for f, row in master.items() if f not in diff}
            master.update(exact)
            state = [read_number(v, "state") for v in read_list(fields.get("state", []), "s")]
    return {"master": master, "diff": diff, "state": state}


def _pairs(table: Mapping[str, Mapping[str, tuple[float, float]]]) -> dict[str, list[float]]:
    out = {}
    for feature, row in table.items():
        for v1, v2 in row.values():
            out[feature] = [v1, v2]
    return out


def _read_pairs(value: object, path: str) -> dict[str, list[float]]:
    out = {}
    for feature, pair in read_map(value, path).items():
        first, second = read_struct(pair, f"{path}[{feature!r}]", 2)
        out[feature] = [read_number(first, path), read_number(second, path)]
    return out


__all__ = ["LABEL", "Shape", "from_jubatus", "shape_of", "to_jubatus"]
