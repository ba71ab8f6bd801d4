"""The regression service: :class:`~engines.regression.model.RegressionModel` behind the
generated server.

Run it as ``jubaregression --rpc-port 9199 --configpath regression.json`` with a Jubatus
regression config (``method``, ``parameter``, ``converter``), or in a cluster with
``--zookeeper HOST:PORT --name NAME`` behind ``jubaregression_proxy``, where the servers
mix their models. ``train`` and ``clear`` are ``#@update`` and ``estimate`` ``#@analysis``
in the IDL, so the framework's model lock guards every call and the mixer.
"""

from __future__ import annotations

from engines.common.jubatus_file import from_file
from engines.regression import regression_types as types
from engines.regression.jubatus_file import from_jubatus, shape_of, to_jubatus
from engines.regression.model import RegressionModel
from runtime import Datum, Mixable, ServerBase


class RegressionServ(ServerBase):
    """A Jubatus-compatible regression server."""

    #: 1: Jubatus's layout (:mod:`engines.regression.jubatus_file`); Jubako's older map
    #: loads.
    user_data_version = 1

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model = RegressionModel(self.config)

    def train(self, train_data: list[types.ScoredDatum]) -> int:
        return self.model.train([(example.score, example.data) for example in train_data])

    def estimate(self, estimate_data: list[Datum]) -> list[float]:
        return self.model.estimate(estimate_data)

    def clear(self) -> bool:
        return self.model.clear()

    def get_status(self) -> dict[str, str]:
        return self.model.get_status()

    def pack(self) -> object:
        return to_jubatus(self.model.pack(), shape_of(self.model))

    def unpack(self, payload: object) -> None:
        shape = shape_of(self.model)
        self.model.unpack(from_file(payload, "regression", lambda v: from_jubatus(v, shape)))

    def mixable(self) -> Mixable:
        return self.model
