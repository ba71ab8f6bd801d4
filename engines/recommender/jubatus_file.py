"""The recommender model in Jubatus's layout (the user data of a ``jubarecommender`` model
file, user-data version 1): ``[index, weight_manager]``, the index as
:mod:`engines.common.jubatus_recommender` lays it out, converted from and to
:meth:`~engines.recommender.model.RecommenderModel.pack`'s value. The weight manager's
version is the model's mix version.
"""

from __future__ import annotations

from engines.common.jubatus_file import pack_weight_manager, read_weight_manager
from engines.common.jubatus_recommender import index_from_jubatus, index_to_jubatus
from engines.common.recommender_index import RecommenderIndex
from engines.recommender.model import RecommenderModel
from runtime.mix.mixable import DiffError, read_list


def to_jubatus(model: RecommenderModel) -> list[object]:
    packed = model.pack()
    assert isinstance(packed, dict)
    weights = packed["weights"]
    return [
        index_to_jubatus(model.index, packed["index"]),
        pack_weight_manager(packed["version"], weights["master"], weights["diff"]),
    ]


def from_jubatus(payload: object, model: RecommenderModel) -> dict[str, object]:
    parts = read_list(payload, "model")
    if len(parts) != 2:
        raise DiffError(f"model: expected [recommender, weight_manager], got {len(parts)} parts")
    fresh = RecommenderIndex(model.method, model._parameter, model.owner)
    version, master, diff = read_weight_manager(parts[1], "model[1]")
    return {
        "version": version,
        "index": index_from_jubatus(parts[0], fresh, "model[0]"),
        "weights": {"master": master, "diff": diff},
    }


__all__ = ["from_jubatus", "to_jubatus"]
