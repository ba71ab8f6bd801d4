"""The weight service: :class:`~engines.weight.model.WeightModel` behind the generated server.

Run it as ``jubaweight --rpc-port 9199 --configpath weight.json`` with a Jubatus config
holding a ``converter``. The IDL declares every method ``#@nolock`` as Jubatus does;
``model_lock_for`` has the framework take its model lock for them (``update`` and
``clear`` alone, counted as updates so the mixer's triggers see them; ``calc_weight``
shared). ``update`` and ``calc_weight`` are served on the wire values (``wire_methods``):
the datum becomes features through the converter's caches without a ``Datum``, and the
features go out as ``(key, value)`` pairs without an object per pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from engines.common.jubatus_file import from_file
from engines.common.wire import call_typed
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
    wire_methods: ClassVar[Mapping[str, str]] = {
        "update": "update_wire",
        "calc_weight": "calc_weight_wire",
    }

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model = WeightModel(self.config)

    def update(self, d: Datum) -> list[types.Feature]:
        return [types.Feature(key, value) for key, value in self.model.update(d)]

    def calc_weight(self, d: Datum) -> list[types.Feature]:
        return [types.Feature(key, value) for key, value in self.model.calc_weight(d)]

    # -- on the wire ------------------------------------------------------------------------

    def update_wire(self, d: object) -> object:
        """``update`` on its wire argument, answering ``[(key, value)...]``."""
        datum = self.model.converter.wire_datum(d)
        if datum is None:
            return call_typed(types.WEIGHT_UPDATE, self.update, d)
        return self.model.update(datum)

    def calc_weight_wire(self, d: object) -> object:
        """``calc_weight`` on its wire argument, answering ``[(key, value)...]``."""
        datum = self.model.converter.wire_datum(d)
        if datum is None:
            return call_typed(types.WEIGHT_CALC_WEIGHT, self.calc_weight, d)
        return self.model.calc_weight(datum)

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
