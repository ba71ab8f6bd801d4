"""The ``nearest_neighbor`` service: its model and its methods.

Started from ``nearest_neighbor_serv.tmpl.py``, which jenerator writes from nearest_neighbor.idl:
copy it to ``nearest_neighbor_serv.py``, fill in the methods, and run
``python nearest_neighbor_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import nearest_neighbor_types as types
from runtime import Datum, ServerBase


class NearestNeighborServ(ServerBase):
    """Nearest-neighbour search over hashed rows (LSH, minhash, Euclid LSH)."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def clear(self) -> bool:
        """Forget every row."""
        raise NotImplementedError("nearest_neighbor.clear")

    def set_row(self, id: str, d: Datum) -> bool:
        """Store the row ``id`` with the datum ``d``, replacing any earlier one."""
        raise NotImplementedError("nearest_neighbor.set_row")

    def neighbor_row_from_id(self, id: str, size: int) -> list[types.IdWithScore]:
        """The ``size`` rows nearest to the row ``id``, nearest first."""
        raise NotImplementedError("nearest_neighbor.neighbor_row_from_id")

    def neighbor_row_from_datum(self, query: Datum, size: int) -> list[types.IdWithScore]:
        """The ``size`` rows nearest to ``query``, nearest first."""
        raise NotImplementedError("nearest_neighbor.neighbor_row_from_datum")

    def similar_row_from_id(self, id: str, ret_num: int) -> list[types.IdWithScore]:
        """The ``ret_num`` rows most similar to the row ``id``, most similar first."""
        raise NotImplementedError("nearest_neighbor.similar_row_from_id")

    def similar_row_from_datum(self, query: Datum, ret_num: int) -> list[types.IdWithScore]:
        """The ``ret_num`` rows most similar to ``query``, most similar first."""
        raise NotImplementedError("nearest_neighbor.similar_row_from_datum")

    def get_all_rows(self) -> list[str]:
        """The ids of every stored row."""
        raise NotImplementedError("nearest_neighbor.get_all_rows")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("nearest_neighbor: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("nearest_neighbor: load")

    # Optional: implement export_rows, import_rows and delete_rows (runtime.ServerBase) and
    # proxies copy a replica's keys back to it when it restarts empty or joins, and hand
    # a departed server's keys on (docs/operating.md, "Replicas").
