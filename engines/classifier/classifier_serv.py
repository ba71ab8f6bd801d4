"""The classifier service: :class:`~engines.classifier.model.ClassifierModel` behind the
generated server.

Run it as ``jubaclassifier --rpc-port 9199 --configpath classifier.json`` with a Jubatus
classifier config (``method``, ``parameter``, ``converter``), or in a cluster with
``--zookeeper HOST:PORT --name NAME`` behind ``jubaclassifier_proxy``, where the servers mix
their models.

The IDL declares every method ``#@nolock``, as Jubatus does (its driver locks inside), so
clients and proxies see what they see with Jubatus. Each method needs the whole model, so
``model_lock_for`` has the framework take its model lock for them: ``train``,
``set_label``, ``clear`` and ``delete_label`` alone (counted as updates for the mixer's
``--interval_count`` trigger), ``classify`` and ``get_labels`` shared. The mixer, ``save``
and ``load`` take the same lock. The server only tries that lock on its event loop: a
``classify`` that arrives while a mix applies its diff waits in a queue, and the server
goes on reading and answering meanwhile.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import ClassVar

from engines.classifier import classifier_types as types
from engines.classifier.model import ClassifierModel
from engines.common.neighbor_classifier import NEIGHBOR_METHODS, NeighborClassifierModel
from runtime import Datum, LockMode, Mixable, ServerBase


class ClassifierServ(ServerBase):
    """A Jubatus-compatible linear classifier."""

    #: 2: the payload holds master and unmixed parts of the model separately.
    user_data_version = 2
    model_lock_for: ClassVar[Mapping[str, LockMode]] = {
        "train": LockMode.UPDATE,
        "classify": LockMode.ANALYSIS,
        "get_labels": LockMode.ANALYSIS,
        "set_label": LockMode.UPDATE,
        "clear": LockMode.UPDATE,
        "delete_label": LockMode.UPDATE,
    }

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.model: ClassifierModel | NeighborClassifierModel
        if isinstance(self.config, dict) and self.config.get("method") in NEIGHBOR_METHODS:
            self.model = NeighborClassifierModel(self.config)  # NN, cosine, euclidean
        else:
            self.model = ClassifierModel(self.config)

    def train(self, data: list[types.LabeledDatum]) -> int:
        return self.model.train([(example.label, example.data) for example in data])

    def classify(self, data: list[Datum]) -> list[list[types.EstimateResult]]:
        results = self.model.classify(data)
        return [[types.EstimateResult(label, score) for label, score in row] for row in results]

    def get_labels(self) -> dict[str, int]:
        return self.model.get_labels()

    def set_label(self, new_label: str) -> bool:
        return self.model.set_label(new_label)

    def clear(self) -> bool:
        return self.model.clear()

    def delete_label(self, target_label: str) -> bool:
        return self.model.delete_label(target_label)

    def get_status(self) -> dict[str, str]:
        return self.model.get_status()

    def pack(self) -> object:
        # A deep copy: the model may change while the framework writes the file.
        return copy.deepcopy(self.model.pack())

    def unpack(self, payload: object) -> None:
        self.model.unpack(payload)

    def mixable(self) -> Mixable:
        return self.model  # the mixer calls it under the framework's model lock
