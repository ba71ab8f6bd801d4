"""The stat service: :class:`~engines.stat.model.StatModel` behind the generated server.

Run it as ``jubastat --rpc-port 9199 --configpath stat.json`` (config ``{"window_size":
128}``), or in a cluster (``--zookeeper``, ``--name``) behind ``jubastat_proxy``, where the
servers mix their per-key totals for ``entropy`` as Jubatus's stat does.
"""

from __future__ import annotations

from engines.stat.model import StatModel
from runtime import Mixable, ServerBase


class StatServ(ServerBase):
    """Sliding-window statistics per key."""

    #: 2: the payload carries the mixed totals next to the windows.
    user_data_version = 2

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model = StatModel(self.config)

    def push(self, key: str, value: float) -> bool:
        return self.model.push(key, value)

    def sum(self, key: str) -> float:
        return self.model.sum(key)

    def stddev(self, key: str) -> float:
        return self.model.stddev(key)

    def max(self, key: str) -> float:
        return self.model.max(key)

    def min(self, key: str) -> float:
        return self.model.min(key)

    def entropy(self, key: str) -> float:
        return self.model.entropy(key)

    def moment(self, key: str, degree: int, center: float) -> float:
        return self.model.moment(key, degree, center)

    def clear(self) -> bool:
        return self.model.clear()

    def get_status(self) -> dict[str, str]:
        return {"window_size": str(self.model.window_size)}

    def pack(self) -> object:
        return self.model.pack()

    def unpack(self, payload: object) -> None:
        self.model.unpack(payload)

    def mixable(self) -> Mixable:
        # push and clear are #@update: the framework's model lock guards the model.
        return self.model
