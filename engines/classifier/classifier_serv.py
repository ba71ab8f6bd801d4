"""The classifier service: :class:`~engines.classifier.model.ClassifierModel` behind the
generated server.

Run it as ``jubaclassifier --rpc-port 9199 --configpath classifier.json`` with a Jubatus
classifier config (``method``, ``parameter``, ``converter``), or in a cluster with
``--zookeeper HOST:PORT --name NAME`` behind ``jubaclassifier_proxy``, where the servers mix
their models.

Every method is ``#@nolock`` in the IDL, as in Jubatus: the model guards itself with its own
read/write lock (``train``, ``set_label``, ``delete_label`` and ``clear`` write; ``classify``
and ``get_labels`` read), and the mixer takes the same lock through
:class:`~runtime.mix.locked.LockedMixable`. ``train`` and the other writers count as updates
for the mixer's ``--interval_count`` trigger.
"""

from __future__ import annotations

import copy

from engines.classifier import classifier_types as types
from engines.classifier.model import ClassifierModel
from runtime.datum import Datum
from runtime.locks import RWLock
from runtime.mix.locked import LockedMixable
from runtime.mix.mixable import Mixable
from runtime.server_base import ServerBase


class ClassifierServ(ServerBase):
    """A Jubatus-compatible linear classifier."""

    #: 2: the payload holds master and unmixed parts of the model separately.
    user_data_version = 2

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model = ClassifierModel(self.config)
        self.lock = RWLock()

    def train(self, data: list[types.LabeledDatum]) -> int:
        with self.lock.write():
            trained = self.model.train([(example.label, example.data) for example in data])
        self.updated()
        return trained

    def classify(self, data: list[Datum]) -> list[list[types.EstimateResult]]:
        with self.lock.read():
            results = self.model.classify(data)
        return [[types.EstimateResult(label, score) for label, score in row] for row in results]

    def get_labels(self) -> dict[str, int]:
        with self.lock.read():
            return self.model.get_labels()

    def set_label(self, new_label: str) -> bool:
        with self.lock.write():
            added = self.model.set_label(new_label)
        self.updated()
        return added

    def clear(self) -> bool:
        with self.lock.write():
            cleared = self.model.clear()
        self.updated()
        return cleared

    def delete_label(self, target_label: str) -> bool:
        with self.lock.write():
            deleted = self.model.delete_label(target_label)
        self.updated()
        return deleted

    def get_status(self) -> dict[str, str]:
        with self.lock.read():
            return self.model.get_status()

    def pack(self) -> object:
        # A deep copy: the model may change while the framework writes the file.
        with self.lock.read():
            return copy.deepcopy(self.model.pack())

    def unpack(self, payload: object) -> None:
        with self.lock.write():
            self.model.unpack(payload)

    def mixable(self) -> Mixable:
        return LockedMixable(self.model, self.lock)
