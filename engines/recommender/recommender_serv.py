"""The recommender service: :class:`~engines.recommender.model.RecommenderModel` behind the
generated server.

Run it as ``jubarecommender --rpc-port 9199 --configpath recommender.json`` with a Jubatus
recommender config (``method``, ``parameter``, ``converter``), or in a cluster behind
``jubarecommender_proxy``, which sends a row's calls to its servers on the hash ring and
the servers mix their indexes. Every method is ``#@update`` or ``#@analysis`` in the IDL,
so the framework's model lock guards the model.
"""

from __future__ import annotations

from engines.common.jubatus_file import from_file
from engines.recommender import recommender_types as types
from engines.recommender.jubatus_file import from_jubatus, to_jubatus
from engines.recommender.model import RecommenderModel
from runtime import Datum, Mixable, ServerBase


def _scored(rows: list[tuple[str, float]]) -> list[types.IdWithScore]:
    return [types.IdWithScore(key, score) for key, score in rows]


def _datum(parts: tuple[list[tuple[str, str]], list[tuple[str, float]]]) -> Datum:
    datum = Datum()
    datum.string_values.extend(parts[0])
    datum.num_values.extend(parts[1])
    return datum


class RecommenderServ(ServerBase):
    """Jubatus's recommender engine."""

    #: 1: Jubatus's layout (:mod:`engines.recommender.jubatus_file`); Jubako's older map
    #: loads.
    user_data_version = 1

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model = RecommenderModel(self.config)

    def clear_row(self, id: str) -> bool:
        return self.model.clear_row(id)

    def update_row(self, id: str, row: Datum) -> bool:
        return self.model.update_row(id, row)

    def clear(self) -> bool:
        return self.model.clear()

    def complete_row_from_id(self, id: str) -> Datum:
        return _datum(self.model.complete_row_from_id(id))

    def complete_row_from_datum(self, row: Datum) -> Datum:
        return _datum(self.model.complete_row_from_datum(row))

    def similar_row_from_id(self, id: str, size: int) -> list[types.IdWithScore]:
        return _scored(self.model.similar_row_from_id(id, size))

    def similar_row_from_id_and_score(self, id: str, score: float) -> list[types.IdWithScore]:
        return _scored(self.model.similar_row_from_id_and_score(id, score))

    def similar_row_from_id_and_rate(self, id: str, rate: float) -> list[types.IdWithScore]:
        return _scored(self.model.similar_row_from_id_and_rate(id, rate))

    def similar_row_from_datum(self, row: Datum, size: int) -> list[types.IdWithScore]:
        return _scored(self.model.similar_row_from_datum(row, size))

    def similar_row_from_datum_and_score(self, row: Datum, score: float) -> list[types.IdWithScore]:
        return _scored(self.model.similar_row_from_datum_and_score(row, score))

    def similar_row_from_datum_and_rate(self, row: Datum, rate: float) -> list[types.IdWithScore]:
        return _scored(self.model.similar_row_from_datum_and_rate(row, rate))

    def decode_row(self, id: str) -> Datum:
        return _datum(self.model.decode_row(id))

    def get_all_rows(self) -> list[str]:
        return self.model.get_all_rows()

    def calc_similarity(self, lhs: Datum, rhs: Datum) -> float:
        return self.model.calc_similarity(lhs, rhs)

    def calc_l2norm(self, row: Datum) -> float:
        return self.model.calc_l2norm(row)

    def get_status(self) -> dict[str, str]:
        return self.model.get_status()

    def pack(self) -> object:
        return to_jubatus(self.model)

    def unpack(self, payload: object) -> None:
        model = self.model
        model.unpack(from_file(payload, "recommender", lambda v: from_jubatus(v, model)))

    def mixable(self) -> Mixable:
        return self.model
