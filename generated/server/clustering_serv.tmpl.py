"""The ``clustering`` service: its model and its methods.

Started from ``clustering_serv.tmpl.py``, which jenerator writes from clustering.idl:
copy it to ``clustering_serv.py``, fill in the methods, and run
``python clustering_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import clustering_types as types
from runtime import Datum, ServerBase


class ClusteringServ(ServerBase):
    """Online clustering (k-means, GMM, DBSCAN) over a stream of points."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def push(self, points: list[types.IndexedPoint]) -> bool:
        """Add points; true when they were added."""
        raise NotImplementedError("clustering.push")

    def get_revision(self) -> int:
        """How many times the clusters have been recomputed."""
        raise NotImplementedError("clustering.get_revision")

    def get_core_members(self) -> list[list[types.WeightedDatum]]:
        """The members of every cluster with their weights."""
        raise NotImplementedError("clustering.get_core_members")

    def get_core_members_light(self) -> list[list[types.WeightedIndex]]:
        """The ids of the members of every cluster with their weights."""
        raise NotImplementedError("clustering.get_core_members_light")

    def get_k_center(self) -> list[Datum]:
        """The center of every cluster."""
        raise NotImplementedError("clustering.get_k_center")

    def get_nearest_center(self, point: Datum) -> Datum:
        """The center nearest to ``point``."""
        raise NotImplementedError("clustering.get_nearest_center")

    def get_nearest_members(self, point: Datum) -> list[types.WeightedDatum]:
        """The members of the cluster nearest to ``point``."""
        raise NotImplementedError("clustering.get_nearest_members")

    def get_nearest_members_light(self, point: Datum) -> list[types.WeightedIndex]:
        """The ids of the members of the cluster nearest to ``point``."""
        raise NotImplementedError("clustering.get_nearest_members_light")

    def clear(self) -> bool:
        """Forget every point and cluster."""
        raise NotImplementedError("clustering.clear")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("clustering: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("clustering: load")
