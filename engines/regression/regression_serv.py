"""The regression service: :class:`~engines.regression.model.RegressionModel` behind the
generated server.

Run it as ``jubaregression --rpc-port 9199 --configpath regression.json`` with a Jubatus
regression config (``method``, ``parameter``, ``converter``), or in a cluster with
``--zookeeper HOST:PORT --name NAME`` behind ``jubaregression_proxy``, where the servers
mix their models. ``train`` and ``clear`` are ``#@update`` and ``estimate`` ``#@analysis``
in the IDL, so the framework's model lock guards every call and the mixer. ``train`` and
``estimate`` are served on the wire values (``wire_methods``): a datum becomes features
through the converter's caches without a ``Datum`` per datum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from engines.common.fv_converter import ConvertedDatum
from engines.common.jubatus_file import from_file
from engines.common.wire import call_typed
from engines.regression import regression_types as types
from engines.regression.jubatus_file import from_jubatus, shape_of, to_jubatus
from engines.regression.model import RegressionModel
from runtime import Datum, Mixable, ServerBase


class RegressionServ(ServerBase):
    """A Jubatus-compatible regression server."""

    #: 1: Jubatus's layout (:mod:`engines.regression.jubatus_file`); Jubako's older map
    #: loads.
    user_data_version = 1
    wire_methods: ClassVar[Mapping[str, str]] = {
        "train": "train_wire",
        "estimate": "estimate_wire",
    }

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model = RegressionModel(self.config)

    def train(self, train_data: list[types.ScoredDatum]) -> int:
        return self.model.train([(example.score, example.data) for example in train_data])

    def estimate(self, estimate_data: list[Datum]) -> list[float]:
        return self.model.estimate(estimate_data)

    # -- on the wire ------------------------------------------------------------------------

    def train_wire(self, train_data: object) -> object:
        """``train`` on its wire argument (``[[score, datum]...]``)."""
        if type(train_data) is list:
            wire_datum = self.model.converter.wire_datum
            pairs: list[tuple[float, ConvertedDatum]] = []
            for pair in train_data:
                if type(pair) is not list or len(pair) != 2:
                    break
                score, datum = pair
                if type(score) is not float:
                    if type(score) is not int:
                        break
                    score = float(score)
                converted = wire_datum(datum)
                if converted is None:
                    break
                pairs.append((score, converted))
            else:
                return self.model.train(pairs)
        return call_typed(types.REGRESSION_TRAIN, self.train, train_data)

    def estimate_wire(self, estimate_data: object) -> object:
        """``estimate`` on its wire argument (``[datum...]``)."""
        if type(estimate_data) is list:
            wire_datum = self.model.converter.wire_datum
            data: list[ConvertedDatum] = []
            for datum in estimate_data:
                converted = wire_datum(datum)
                if converted is None:
                    break
                data.append(converted)
            else:
                return [float(value) for value in self.model.estimate(data)]
        return call_typed(types.REGRESSION_ESTIMATE, self.estimate, estimate_data)

    def clear(self) -> bool:
        return self.model.clear()

    def get_status(self) -> dict[str, str]:
        return self.model.get_status(self.standalone)

    def pack(self) -> object:
        return to_jubatus(self.model.pack(), shape_of(self.model))

    def unpack(self, payload: object) -> None:
        shape = shape_of(self.model)
        self.model.unpack(from_file(payload, "regression", lambda v: from_jubatus(v, shape)))

    def mixable(self) -> Mixable:
        return self.model
