"""The ``regression`` service: its model and its methods.

Started from ``regression_serv.tmpl.py``, which jenerator writes from regression.idl:
copy it to ``regression_serv.py``, fill in the methods, and run
``python regression_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import regression_types as types
from runtime import Datum, ServerBase


class RegressionServ(ServerBase):
    """Online regression: estimates a number for a datum."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def train(self, train_data: list[types.ScoredDatum]) -> int:
        """Train with every scored datum; returns how many were trained."""
        raise NotImplementedError("regression.train")

    def estimate(self, estimate_data: list[Datum]) -> list[float]:
        """Estimate a value for each datum, in the order given."""
        raise NotImplementedError("regression.estimate")

    def clear(self) -> bool:
        """Forget the whole model."""
        raise NotImplementedError("regression.clear")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("regression: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("regression: load")
