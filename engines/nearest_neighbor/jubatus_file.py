"""The nearest_neighbor model in Jubatus's layout (the user data of a
``jubanearest_neighbor`` model file, user-data version 1), converted from and to
:meth:`~engines.nearest_neighbor.model.NearestNeighborModel.pack`'s value::

    [column_table, weight_manager]

The table holds every row's hash bits (and, for ``euclid_lsh``, its norm) with the row's
version (:mod:`engines.common.jubatus_tables`); the weight manager's version is the model's
mix version.
"""

from __future__ import annotations

from engines.common.jubatus_file import pack_weight_manager, read_weight_manager
from engines.common.jubatus_tables import (
    nn_columns,
    pack_column_table,
    read_column_table,
    rows_table,
    table_rows,
)
from runtime.mix.mixable import DiffError, read_list


def to_jubatus(packed: object, method: str, hash_num: int) -> list[object]:
    assert isinstance(packed, dict)
    table, weights = packed["table"], packed["weights"]
    return [
        pack_column_table(table_rows(table), table["clock"], nn_columns(method, hash_num)),
        pack_weight_manager(packed["version"], weights["master"], weights["diff"]),
    ]


def from_jubatus(payload: object, method: str, hash_num: int) -> dict[str, object]:
    parts = read_list(payload, "model")
    if len(parts) != 2:
        raise DiffError(
            f"model: expected [table, weight_manager] (no unlearner), got {len(parts)} parts"
        )
    rows, clock = read_column_table(parts[0], nn_columns(method, hash_num), "model[0]")
    version, master, diff = read_weight_manager(parts[1], "model[1]")
    return {
        "version": version,
        "table": rows_table(rows, clock),
        "weights": {"master": master, "diff": diff},
    }


__all__ = ["from_jubatus", "to_jubatus"]
