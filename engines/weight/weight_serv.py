"""The weight service: :class:`~engines.weight.model.WeightModel` behind the generated server.

Run it as ``jubaweight --rpc-port 9199 --configpath weight.json`` with a Jubatus config
holding a ``converter``. The IDL declares every method ``#@nolock`` as Jubatus does;
``model_lock_for`` has the framework take its model lock for them (``update`` and
``clear`` alone, counted as updates so the mixer's triggers see them; ``calc_weight``
shared).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from engines.common.jubatus_file import from_file
from engines.weight import weight_types as types
from engines.weight.jubatus_file import from_jubatus, to_jubatus
from engines.weight.model import WeightModel
from runtime import Datum, LockMode, Mixable, ServerBase


class WeightServ(ServerBase):
    """Jubatus's weight engine."""

    #: 1: Jubatus's layout (:mod:`engines.weight.jubatus_file`); Jubako's older map loads.
    user_data_version = 1
    model_lock_for: ClassVar[Mapping[str, LockMode]] = {
        "update": LockMode.UPDATE,
        "calc_weight": LockMode.ANALYSIS,
        "clear": LockMode.UPDATE,
    }

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model = WeightModel(self.config)

    def update(self, d: Datum) -> list[types.Feature]:
        return [types.Feature(key, value) for key, value in self.model.update(d)]

    def calc_weight(self, d: Datum) -> list[types.Feature]:
        return [types.Feature(key, value) for key, value in self.model.calc_weight(d)]

    def clear(self) -> bool:
        return self.model.clear()

    def get_status(self) -> dict[str, str]:
        return self.model.get_status()

    def pack(self) -> object:
        return to_jubatus(self.model.pack())

    def unpack(self, payload: object) -> None:
        self.model.unpack(from_file(payload, "weight", from_jubatus))

    def mixable(self) -> Mixable:
        return self.model
