"""The ``classifier`` service: its model and its methods.

Started from ``classifier_serv.tmpl.py``, which jenerator writes from classifier.idl:
copy it to ``classifier_serv.py``, fill in the methods, and run
``python classifier_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import classifier_types as types
from runtime import Datum, ServerBase


class ClassifierServ(ServerBase):
    """Online multiclass classification. The model guards itself (``#@nolock``): methods
    may run side by side."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def train(self, data: list[types.LabeledDatum]) -> int:
        """Learn from every labeled datum; returns how many were used."""
        raise NotImplementedError("classifier.train")

    def classify(self, data: list[Datum]) -> list[list[types.EstimateResult]]:
        """Score every known label for each datum, in the order given."""
        raise NotImplementedError("classifier.classify")

    def get_labels(self) -> dict[str, int]:
        """Every label with the number of examples trained for it."""
        raise NotImplementedError("classifier.get_labels")

    def set_label(self, new_label: str) -> bool:
        """Add a label before any example of it arrives; false when it exists."""
        raise NotImplementedError("classifier.set_label")

    def clear(self) -> bool:
        """Forget the whole model."""
        raise NotImplementedError("classifier.clear")

    def delete_label(self, target_label: str) -> bool:
        """Remove a label and what was learnt for it; true when some server had it."""
        raise NotImplementedError("classifier.delete_label")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("classifier: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("classifier: load")
