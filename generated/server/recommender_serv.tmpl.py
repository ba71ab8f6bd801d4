"""The ``recommender`` service: its model and its methods.

Started from ``recommender_serv.tmpl.py``, which jenerator writes from recommender.idl:
copy it to ``recommender_serv.py``, fill in the methods, and run
``python recommender_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import recommender_types as types
from runtime import Datum, ServerBase


class RecommenderServ(ServerBase):
    """Recommendation: completes rows and finds similar ones (collaborative filtering)."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def clear_row(self, id: str) -> bool:
        """Remove the row ``id``."""
        raise NotImplementedError("recommender.clear_row")

    def update_row(self, id: str, row: Datum) -> bool:
        """Merge ``row`` into the row ``id``, creating it when new."""
        raise NotImplementedError("recommender.update_row")

    def clear(self) -> bool:
        """Forget every row."""
        raise NotImplementedError("recommender.clear")

    def complete_row_from_id(self, id: str) -> Datum:
        """The row ``id`` with its missing values estimated from similar rows."""
        raise NotImplementedError("recommender.complete_row_from_id")

    def complete_row_from_datum(self, row: Datum) -> Datum:
        """``row`` with its missing values estimated from similar rows."""
        raise NotImplementedError("recommender.complete_row_from_datum")

    def similar_row_from_id(self, id: str, size: int) -> list[types.IdWithScore]:
        """The ``size`` rows most similar to the row ``id``."""
        raise NotImplementedError("recommender.similar_row_from_id")

    def similar_row_from_id_and_score(self, id: str, score: float) -> list[types.IdWithScore]:
        """The rows similar to the row ``id`` with a score of at least ``score``."""
        raise NotImplementedError("recommender.similar_row_from_id_and_score")

    def similar_row_from_id_and_rate(self, id: str, rate: float) -> list[types.IdWithScore]:
        """The most similar fraction ``rate`` (0 to 1) of rows for the row ``id``."""
        raise NotImplementedError("recommender.similar_row_from_id_and_rate")

    def similar_row_from_datum(self, row: Datum, size: int) -> list[types.IdWithScore]:
        """The ``size`` rows most similar to ``row``."""
        raise NotImplementedError("recommender.similar_row_from_datum")

    def similar_row_from_datum_and_score(self, row: Datum, score: float) -> list[types.IdWithScore]:
        """The rows similar to ``row`` with a score of at least ``score``."""
        raise NotImplementedError("recommender.similar_row_from_datum_and_score")

    def similar_row_from_datum_and_rate(self, row: Datum, rate: float) -> list[types.IdWithScore]:
        """The most similar fraction ``rate`` (0 to 1) of rows for ``row``."""
        raise NotImplementedError("recommender.similar_row_from_datum_and_rate")

    def decode_row(self, id: str) -> Datum:
        """The stored row ``id`` as a datum."""
        raise NotImplementedError("recommender.decode_row")

    def get_all_rows(self) -> list[str]:
        """The ids of every stored row."""
        raise NotImplementedError("recommender.get_all_rows")

    def calc_similarity(self, lhs: Datum, rhs: Datum) -> float:
        """The similarity of two rows."""
        raise NotImplementedError("recommender.calc_similarity")

    def calc_l2norm(self, row: Datum) -> float:
        """The L2 norm of a row."""
        raise NotImplementedError("recommender.calc_l2norm")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("recommender: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("recommender: load")

    # Optional: implement export_rows, import_rows and delete_rows (runtime.ServerBase) and
    # proxies copy a replica's keys back to it when it restarts empty or joins, and hand
    # a departed server's keys on (docs/operating.md, "Replicas").
