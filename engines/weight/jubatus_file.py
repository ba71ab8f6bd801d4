"""The weight model in Jubatus's layout (the user data of a ``jubaweight`` model file,
user-data version 1): ``[weight_manager]``, the converter's document counts, master and
diff (:mod:`engines.common.jubatus_file`), converted from and to
:meth:`~engines.weight.model.WeightModel.pack`'s value. The weight manager's version is
the model's mix version.
"""

from __future__ import annotations

from engines.common.jubatus_file import pack_weight_manager, read_weight_manager
from runtime.mix.mixable import DiffError, read_list


def to_jubatus(packed: object) -> list[object]:
    assert isinstance(packed, dict)
    weights = packed["weights"]
    return [pack_weight_manager(packed["version"], weights["master"], weights["diff"])]


def from_jubatus(payload: object) -> dict[str, object]:
    parts = read_list(payload, "model")
    if len(parts) != 1:
        raise DiffError(f"model: expected [weight_manager], got {len(parts)} parts")
    version, master, diff = read_weight_manager(parts[0], "model[0]")
    return {"version": version, "weights": {"master": master, "diff": diff}}


__all__ = ["from_jubatus", "to_jubatus"]
