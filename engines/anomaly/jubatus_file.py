"""The anomaly model in Jubatus's layout (the user data of a ``jubaanomaly`` model file,
user-data version 1), converted from and to
:meth:`~engines.anomaly.model.AnomalyModel.pack`'s value:

- ``lof``: ``[[lof_storage, backend], weight_manager]`` (the unlearner first when there
  is one). ``lof_storage`` is ``[{row: [kdist, lrd]}, diff, nearest_neighbor_num,
  reverse_nearest_neighbor_num, ignore_kth_same_point]`` (a diff entry wins; a ``kdist``
  below 0 marks a removed row); the backend is the recommender index
  (:mod:`engines.common.jubatus_recommender`). Jubako's per-row versions, clock and count
  of ignored points follow in a trailing element.
- ``light_lof``: ``[[table, scores], weight_manager]``: the nearest-neighbour engine's
  column table and a column table of ``kdist`` and ``lrd`` per row (two ``double``
  columns; the count of ignored points in a trailing element).

The weight manager's version is the model's mix version.
"""

from __future__ import annotations

from typing import Any

from engines.anomaly.model import AnomalyModel
from engines.common.jubatus_file import (
    pack_weight_manager,
    read_number,
    read_struct,
    read_weight_manager,
)
from engines.common.jubatus_recommender import index_from_jubatus, index_to_jubatus
from engines.common.jubatus_tables import (
    DOUBLE,
    EXTRA_VERSION,
    nn_columns,
    pack_column_table,
    pack_unlearner,
    read_column_table,
    read_unlearner,
    rows_table,
    table_rows,
)
from engines.common.lof import LightLof, Lof
from engines.common.recommender_index import RecommenderIndex
from runtime.mix.mixable import DiffError, read_int, read_list, read_map, read_text

SCORES = [(DOUBLE, 0), (DOUBLE, 0)]


def to_jubatus(model: AnomalyModel) -> list[object]:
    packed = model.pack()
    assert isinstance(packed, dict)
    lof: Any = packed["lof"]
    weights = packed["weights"]
    engine = model.lof
    if isinstance(engine, Lof):
        scores = lof["scores"]
        storage = [
            {key: list(row[2]) for key, row in scores.items()},
            {},
            engine.k,
            engine.reverse_k,
            engine.ignore_kth,
            {
                "jubako": EXTRA_VERSION,
                "clock": lof["clock"],
                "versions": {key: row[:2] for key, row in scores.items()},
                "ignored": lof["ignored"],
            },
        ]
        part: list[object] = [storage, index_to_jubatus(engine.engine, lof["engine"])]
    else:
        nn = engine.engine
        table = pack_column_table(
            table_rows(lof["rows"]), lof["rows"]["clock"], nn_columns(nn.name, nn.hash_num)
        )
        score_table = pack_column_table(table_rows(lof["scores"]), lof["scores"]["clock"], SCORES)
        score_table.append({"jubako": EXTRA_VERSION, "ignored": lof["ignored"]})
        part = [table, score_table]
    if engine.unlearner is not None and lof["unlearner"] is not None:
        part.insert(0, pack_unlearner(engine.unlearner.name, lof["unlearner"]))
    return [part, pack_weight_manager(packed["version"], weights["master"], weights["diff"])]


def from_jubatus(payload: object, model: AnomalyModel) -> dict[str, object]:
    parts = read_list(payload, "model")
    if len(parts) != 2:
        raise DiffError(f"model: expected [anomaly, weight_manager], got {len(parts)} parts")
    part = read_list(parts[0], "model[0]")
    engine = model.lof
    unlearned = None
    if engine.unlearner is not None:
        if len(part) != 3:
            raise DiffError("model[0]: expected [unlearner, storage, backend]")
        unlearned = read_unlearner(engine.unlearner.name, part[0], "model[0][0]")
        if unlearned.get("random", 0) is None:
            current = engine.unlearner.pack()
            assert isinstance(current, dict)
            unlearned["random"] = current["random"]
        part = part[1:]
    if len(part) != 2:
        raise DiffError(f"model[0]: expected two parts, got {len(part)}")
    if isinstance(engine, Lof):
        lof = _read_lof(part[0], "model[0][storage]")
        fresh = RecommenderIndex(engine.engine.method, engine.engine.parameter, engine.engine.owner)
        lof["engine"] = index_from_jubatus(part[1], fresh, "model[0][backend]")
    else:
        assert isinstance(engine, LightLof)
        nn = engine.engine
        rows, clock = read_column_table(part[0], nn_columns(nn.name, nn.hash_num), "model[0]")
        scores, score_clock = read_column_table(
            part[1], SCORES, "model[0][scores]", infinite=True
        )
        items = read_list(part[1], "model[0][scores]")
        lof = {
            "rows": rows_table(rows, clock),
            "scores": rows_table(scores, score_clock),
            "ignored": _ignored(items[6] if len(items) > 6 else None),
        }
    lof["unlearner"] = unlearned
    version, master, diff = read_weight_manager(parts[1], "model[1]")
    return {"version": version, "lof": lof, "weights": {"master": master, "diff": diff}}


def _ignored(extra: object) -> int:
    if isinstance(extra, dict):
        fields = read_map(extra, "extra")
        if fields.get("jubako") == EXTRA_VERSION:
            return read_int(fields.get("ignored", 0), "extra.ignored")
    return 0


def _read_lof(value: object, path: str) -> dict[str, Any]:
    items = read_list(value, path)
    table, table_diff = read_struct(items, path, 2)
    entries: dict[str, list[float] | None] = {}
    for part, where in ((table, f"{path}[0]"), (table_diff, f"{path}[1]")):
        for key, entry in read_map(part or {}, where).items():
            kdist, lrd = read_struct(entry, f"{where}[{key!r}]", 2)
            first = read_number(kdist or 0.0, where, infinite=True)
            entries[key] = (
                None if first < 0 else [first, read_number(lrd or 0.0, where, infinite=True)]
            )
    versions: dict[str, list[object]] = {}
    clock = ignored = 0
    extra = items[5] if len(items) > 5 else None
    if isinstance(extra, dict):
        fields = read_map(extra, f"{path}[5]")
        if fields.get("jubako") == EXTRA_VERSION:
            clock = read_int(fields.get("clock", 0), f"{path}[5].clock")
            ignored = read_int(fields.get("ignored", 0), f"{path}[5].ignored")
            for key, version in read_map(fields.get("versions", {}), f"{path}[5]").items():
                row_clock, owner = read_struct(version, f"{path}[5][{key!r}]", 2)
                versions[key] = [read_int(row_clock, "clock"), read_text(owner, "owner")]
    return {
        "scores": {
            key: [*versions.get(key, [0, ""]), entry]
            for key, entry in entries.items()
            if entry is not None
        },
        "clock": clock,
        "ignored": ignored,
    }


__all__ = ["from_jubatus", "to_jubatus"]
