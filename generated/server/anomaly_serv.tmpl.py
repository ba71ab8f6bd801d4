"""The ``anomaly`` service: its model and its methods.

Started from ``anomaly_serv.tmpl.py``, which jenerator writes from anomaly.idl:
copy it to ``anomaly_serv.py``, fill in the methods, and run
``python anomaly_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import anomaly_types as types
from runtime import Datum, ServerBase


class AnomalyServ(ServerBase):
    """Anomaly detection: scores how unusual a row is compared with the rows seen so far
    (local outlier factor and similar methods)."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def clear_row(self, id: str) -> bool:
        """Remove the row ``id``; true when it is gone."""
        raise NotImplementedError("anomaly.clear_row")

    def add(self, row: Datum) -> types.IdWithScore:
        """Add ``row`` under a new id chosen by the cluster; returns that id and the score."""
        raise NotImplementedError("anomaly.add")

    def add_bulk(self, data: list[Datum]) -> list[str]:
        """Add every row of ``data``; returns the ids given to them."""
        raise NotImplementedError("anomaly.add_bulk")

    def update(self, id: str, row: Datum) -> float:
        """Merge ``row`` into the row ``id``; returns the row's new score."""
        raise NotImplementedError("anomaly.update")

    def overwrite(self, id: str, row: Datum) -> float:
        """Replace the row ``id`` with ``row``; returns the row's new score."""
        raise NotImplementedError("anomaly.overwrite")

    def clear(self) -> bool:
        """Forget every row on every server."""
        raise NotImplementedError("anomaly.clear")

    def calc_score(self, row: Datum) -> float:
        """The score ``row`` would get, without storing it."""
        raise NotImplementedError("anomaly.calc_score")

    def get_all_rows(self) -> list[str]:
        """The ids of every stored row."""
        raise NotImplementedError("anomaly.get_all_rows")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("anomaly: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("anomaly: load")

    # Optional: implement export_rows, import_rows and delete_rows (runtime.ServerBase) and
    # proxies copy a replica's keys back to it when it restarts empty or joins, and hand
    # a departed server's keys on (docs/operating.md, "Replicas").
