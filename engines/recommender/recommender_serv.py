"""The recommender service: :class:`~engines.recommender.model.RecommenderModel` behind the
generated server.

Run it as ``jubarecommender --rpc-port 9199 --configpath recommender.json`` with a Jubatus
recommender config (``method``, ``parameter``, ``converter``), or in a cluster behind
``jubarecommender_proxy``, which sends a row's calls to its servers on the hash ring and
the servers mix their indexes. Every method is ``#@update`` or ``#@analysis`` in the IDL,
so the framework's model lock guards the model. ``update_row`` and the calls by datum
(``similar_row_from_datum``, ``complete_row_from_datum``) are served on the wire values
(``wire_methods``): the datum becomes features through the converter's caches without a
``Datum``, and the answers go out as plain pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from engines.common import kernels
from engines.common.jubatus_file import from_file
from engines.common.wire import call_typed, scored_wire, wire_text, wire_uint
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
    wire_methods: ClassVar[Mapping[str, str]] = {
        "update_row": "update_row_wire",
        "similar_row_from_datum": "similar_row_from_datum_wire",
        "complete_row_from_datum": "complete_row_from_datum_wire",
    }

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

    # -- on the wire ------------------------------------------------------------------------

    def update_row_wire(self, id: object, row: object) -> object:
        key = wire_text(id)
        datum = self.model.converter.wire_datum(row)
        if key is None or datum is None:
            return call_typed(types.RECOMMENDER_UPDATE_ROW, self.update_row, id, row)
        return self.model.update_row(key, datum)

    def similar_row_from_datum_wire(self, row: object, size: object) -> object:
        datum = self.model.converter.wire_datum(row)
        count = wire_uint(size)
        if datum is None or count is None:
            return call_typed(
                types.RECOMMENDER_SIMILAR_ROW_FROM_DATUM, self.similar_row_from_datum, row, size
            )
        return scored_wire(self.model.similar_row_from_datum(datum, count))

    def complete_row_from_datum_wire(self, row: object) -> object:
        """``complete_row_from_datum``, answering the datum's wire form."""
        datum = self.model.converter.wire_datum(row)
        if datum is None:
            return call_typed(
                types.RECOMMENDER_COMPLETE_ROW_FROM_DATUM, self.complete_row_from_datum, row
            )
        strings, nums = self.model.complete_row_from_datum(datum)
        return (strings, nums, ())

    def decode_row(self, id: str) -> Datum:
        return _datum(self.model.decode_row(id))

    def get_all_rows(self) -> list[str]:
        return self.model.get_all_rows()

    def calc_similarity(self, lhs: Datum, rhs: Datum) -> float:
        return self.model.calc_similarity(lhs, rhs)

    def calc_l2norm(self, row: Datum) -> float:
        return self.model.calc_l2norm(row)

    def get_status(self) -> dict[str, str]:
        return {**self.model.get_status(), **kernels.status()}

    def pack(self) -> object:
        return to_jubatus(self.model)

    def unpack(self, payload: object) -> None:
        model = self.model
        model.unpack(from_file(payload, "recommender", lambda v: from_jubatus(v, model)))

    def mixable(self) -> Mixable:
        return self.model
