"""The ``weight`` service: its model and its methods.

Started from ``weight_serv.tmpl.py``, which jenerator writes from weight.idl:
copy it to ``weight_serv.py``, fill in the methods, and run
``python weight_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import weight_types as types
from runtime import Datum, ServerBase


class WeightServ(ServerBase):
    """Feature weights, as the datum converter computes them (tf-idf, bm25, ...)."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def update(self, d: Datum) -> list[types.Feature]:
        """Update the weighting statistics with ``d``; returns its weighted features."""
        raise NotImplementedError("weight.update")

    def calc_weight(self, d: Datum) -> list[types.Feature]:
        """The weighted features of ``d``, without updating anything."""
        raise NotImplementedError("weight.calc_weight")

    def clear(self) -> bool:
        """Forget the weighting statistics."""
        raise NotImplementedError("weight.clear")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("weight: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("weight: load")
