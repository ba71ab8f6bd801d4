"""The nearest_neighbor service: :class:`~engines.nearest_neighbor.model.NearestNeighborModel`
behind the generated server.

Run it as ``jubanearest_neighbor --rpc-port 9199 --configpath nn.json`` with a Jubatus
config (``method`` lsh, minhash or euclid_lsh, ``parameter`` with ``hash_num``,
``converter``). The IDL declares the queries ``#@nolock`` as Jubatus does;
``model_lock_for`` has the framework take its shared model lock for them. ``set_row`` and
the queries by datum are served on the wire values (``wire_methods``): the datum becomes
features through the converter's caches without a ``Datum``, and the rows go out as
``(id, score)`` pairs without an object per pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from engines.common import kernels
from engines.common.jubatus_file import from_file
from engines.common.wire import call_typed, scored_wire, wire_text, wire_uint
from engines.nearest_neighbor import nearest_neighbor_types as types
from engines.nearest_neighbor.jubatus_file import from_jubatus, to_jubatus
from engines.nearest_neighbor.model import NearestNeighborModel
from runtime import Datum, LockMode, Mixable, ServerBase


def _scored(rows: list[tuple[str, float]]) -> list[types.IdWithScore]:
    return [types.IdWithScore(key, score) for key, score in rows]


class NearestNeighborServ(ServerBase):
    """Jubatus's nearest_neighbor engine."""

    #: 1: Jubatus's layout (:mod:`engines.nearest_neighbor.jubatus_file`); Jubako's older
    #: map loads.
    user_data_version = 1
    model_lock_for: ClassVar[Mapping[str, LockMode]] = {
        "neighbor_row_from_id": LockMode.ANALYSIS,
        "neighbor_row_from_datum": LockMode.ANALYSIS,
        "similar_row_from_id": LockMode.ANALYSIS,
        "similar_row_from_datum": LockMode.ANALYSIS,
        "get_all_rows": LockMode.ANALYSIS,
    }
    wire_methods: ClassVar[Mapping[str, str]] = {
        "set_row": "set_row_wire",
        "neighbor_row_from_datum": "neighbor_row_from_datum_wire",
        "similar_row_from_datum": "similar_row_from_datum_wire",
    }

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model = NearestNeighborModel(self.config)

    def clear(self) -> bool:
        return self.model.clear()

    def set_row(self, id: str, d: Datum) -> bool:
        return self.model.set_row(id, d)

    def neighbor_row_from_id(self, id: str, size: int) -> list[types.IdWithScore]:
        return _scored(self.model.neighbor_row_from_id(id, size))

    def neighbor_row_from_datum(self, query: Datum, size: int) -> list[types.IdWithScore]:
        return _scored(self.model.neighbor_row_from_datum(query, size))

    def similar_row_from_id(self, id: str, ret_num: int) -> list[types.IdWithScore]:
        return _scored(self.model.similar_row_from_id(id, ret_num))

    def similar_row_from_datum(self, query: Datum, ret_num: int) -> list[types.IdWithScore]:
        return _scored(self.model.similar_row_from_datum(query, ret_num))

    # -- on the wire ------------------------------------------------------------------------

    def set_row_wire(self, id: object, d: object) -> object:
        key = wire_text(id)
        datum = self.model.converter.wire_datum(d)
        if key is None or datum is None:
            return call_typed(types.NEAREST_NEIGHBOR_SET_ROW, self.set_row, id, d)
        return self.model.set_row(key, datum)

    def neighbor_row_from_datum_wire(self, query: object, size: object) -> object:
        datum = self.model.converter.wire_datum(query)
        count = wire_uint(size)
        if datum is None or count is None:
            return call_typed(
                types.NEAREST_NEIGHBOR_NEIGHBOR_ROW_FROM_DATUM,
                self.neighbor_row_from_datum,
                query,
                size,
            )
        return scored_wire(self.model.neighbor_row_from_datum(datum, count))

    def similar_row_from_datum_wire(self, query: object, ret_num: object) -> object:
        datum = self.model.converter.wire_datum(query)
        count = wire_uint(ret_num)
        if datum is None or count is None:
            return call_typed(
                types.NEAREST_NEIGHBOR_SIMILAR_ROW_FROM_DATUM,
                self.similar_row_from_datum,
                query,
                ret_num,
            )
        return scored_wire(self.model.similar_row_from_datum(datum, count))

    def get_all_rows(self) -> list[str]:
        return self.model.get_all_rows()

    def get_status(self) -> dict[str, str]:
        return {**self.model.get_status(), **kernels.status()}

    def pack(self) -> object:
        model = self.model
        return to_jubatus(model.pack(), model.method, model.index.hash_num)

    def unpack(self, payload: object) -> None:
        model = self.model

        def convert(value: object) -> object:
            return from_jubatus(value, model.method, model.index.hash_num)

        model.unpack(from_file(payload, "nearest_neighbor", convert))

    def mixable(self) -> Mixable:
        return self.model
