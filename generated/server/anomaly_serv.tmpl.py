"""The ``anomaly`` service: its model and its methods.

Started from ``anomaly_serv.tmpl.py``, which jenerator writes from anomaly.idl:
copy it to ``anomaly_serv.py``, fill in the methods, and run
``python anomaly_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import anomaly_types as types
from runtime.datum import Datum
from runtime.server_base import ServerBase


class AnomalyServ(ServerBase):
    """Anomaly detection over rows of data."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def clear_row(self, id: str) -> bool:
        """Remove a row."""
        raise NotImplementedError("anomaly.clear_row")

    def add(self, row: Datum) -> types.IdWithScore:
        """Add a row with a new id; returns the id and its score."""
        raise NotImplementedError("anomaly.add")

    def update(self, id: str, row: Datum) -> float:
        """Update a row; returns its new score."""
        raise NotImplementedError("anomaly.update")

    def overwrite(self, id: str, row: Datum) -> float:
        """Replace a row; returns its new score."""
        raise NotImplementedError("anomaly.overwrite")

    def clear(self) -> bool:
        """The ``clear`` method of ``anomaly``."""
        raise NotImplementedError("anomaly.clear")

    def calc_score(self, row: Datum) -> float:
        """The score a row would get, without adding it."""
        raise NotImplementedError("anomaly.calc_score")

    def get_all_rows(self) -> list[str]:
        """The ``get_all_rows`` method of ``anomaly``."""
        raise NotImplementedError("anomaly.get_all_rows")

    # Hooks the framework calls; see runtime.server_base.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("anomaly: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("anomaly: load")
