"""The anomaly service: :class:`~engines.anomaly.model.AnomalyModel` behind the generated
server.

Run it as ``jubaanomaly --rpc-port 9199 --configpath anomaly.json`` with a Jubatus anomaly
config (``method`` lof or light_lof, ``parameter``, ``converter``), or in a cluster behind
``jubaanomaly_proxy`` (:mod:`engines.anomaly.proxy`), which gives every ``add`` an id
unique in the cluster. ``add`` and ``add_bulk`` are ``#@nolock`` in the IDL, as in Jubatus;
``model_lock_for`` has the framework take its model lock alone for them. ``add`` and
``calc_score`` are served on the wire values (``wire_methods``): the datum becomes
features through the converter's caches without a ``Datum``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from engines.anomaly import anomaly_types as types
from engines.anomaly.jubatus_file import from_jubatus, to_jubatus
from engines.anomaly.model import AnomalyModel
from engines.common import kernels
from engines.common.jubatus_file import from_file
from engines.common.wire import call_typed
from runtime import Datum, LockMode, Mixable, ServerBase


class AnomalyServ(ServerBase):
    """Jubatus's anomaly engine."""

    #: 1: Jubatus's layout (:mod:`engines.anomaly.jubatus_file`); Jubako's older map loads.
    user_data_version = 1
    model_lock_for: ClassVar[Mapping[str, LockMode]] = {
        "add": LockMode.UPDATE,
        "add_bulk": LockMode.UPDATE,
    }
    wire_methods: ClassVar[Mapping[str, str]] = {
        "add": "add_wire",
        "calc_score": "calc_score_wire",
    }

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model = AnomalyModel(self.config)

    def clear_row(self, id: str) -> bool:
        return self.model.clear_row(id)

    def add(self, row: Datum) -> types.IdWithScore:
        key, score = self.model.add(row)
        return types.IdWithScore(key, score)

    def add_bulk(self, data: list[Datum]) -> list[str]:
        return self.model.add_bulk(data)

    def update(self, id: str, row: Datum) -> float:
        return self.model.update(id, row)

    def overwrite(self, id: str, row: Datum) -> float:
        return self.model.overwrite(id, row)

    def clear(self) -> bool:
        return self.model.clear()

    def calc_score(self, row: Datum) -> float:
        return self.model.calc_score(row)

    # -- on the wire ------------------------------------------------------------------------

    def add_wire(self, row: object) -> object:
        """``add`` on its wire argument, answering ``(id, score)``."""
        datum = self.model.converter.wire_datum(row)
        if datum is None:
            return call_typed(types.ANOMALY_ADD, self.add, row)
        key, score = self.model.add(datum)
        return (key, float(score))

    def calc_score_wire(self, row: object) -> object:
        datum = self.model.converter.wire_datum(row)
        if datum is None:
            return call_typed(types.ANOMALY_CALC_SCORE, self.calc_score, row)
        return float(self.model.calc_score(datum))

    def get_all_rows(self) -> list[str]:
        return self.model.get_all_rows()

    def get_status(self) -> dict[str, str]:
        return {**self.model.get_status(), **kernels.status()}

    def pack(self) -> object:
        return to_jubatus(self.model)

    def unpack(self, payload: object) -> None:
        model = self.model
        model.unpack(from_file(payload, "anomaly", lambda v: from_jubatus(v, model)))

    def mixable(self) -> Mixable:
        return self.model
