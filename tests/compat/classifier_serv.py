"""A small real classifier (multiclass perceptron) behind the generated classifier server.

Used by the interop tests: the official ``jubatus.classifier.client.Classifier`` must be
able to drive a Jubako server built from ``idl/classifier.idl``. The IDL says ``#@nolock``
(as Jubatus does); ``model_lock_for`` has the framework's model lock guard the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import classifier_types as types
from engines.classifier.classifier_serv import ClassifierServ as EngineServ
from runtime import Datum, LockMode, ServerBase


def features(datum: Datum) -> dict[str, float]:
    vector = {f"{k}${v}": 1.0 for k, v in datum.string_values}
    vector.update({k: v for k, v in datum.num_values})
    return vector


class ClassifierServ(ServerBase):
    """Multiclass perceptron over string and number features."""

    #: The same methods, the same locks as the shipped classifier's.
    model_lock_for: ClassVar[Mapping[str, LockMode]] = EngineServ.model_lock_for

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self._weights: dict[str, dict[str, float]] = {}
        self._counts: dict[str, int] = {}

    def _score(self, label: str, vector: dict[str, float]) -> float:
        weights = self._weights[label]
        return sum(weights.get(f, 0.0) * x for f, x in vector.items())

    def train(self, data: list[types.LabeledDatum]) -> int:
        for example in data:
            self._weights.setdefault(example.label, {})
            self._counts[example.label] = self._counts.get(example.label, 0) + 1
            vector = features(example.data)
            best = max(self._weights, key=lambda label: self._score(label, vector))
            if best != example.label or len(self._weights) == 1:
                for f, x in vector.items():
                    row = self._weights[example.label]
                    row[f] = row.get(f, 0.0) + x
                    if best != example.label:
                        wrong = self._weights[best]
                        wrong[f] = wrong.get(f, 0.0) - x
        return len(data)

    def classify(self, data: list[Datum]) -> list[list[types.EstimateResult]]:
        return [
            [
                types.EstimateResult(label, self._score(label, features(d)))
                for label in sorted(self._weights)
            ]
            for d in data
        ]

    def get_labels(self) -> dict[str, int]:
        return dict(self._counts)

    def set_label(self, new_label: str) -> bool:
        if new_label in self._weights:
            return False
        self._weights[new_label] = {}
        self._counts[new_label] = 0
        return True

    def clear(self) -> bool:
        self._weights, self._counts = {}, {}
        return True

    def delete_label(self, target_label: str) -> bool:
        self._counts.pop(target_label, None)
        return self._weights.pop(target_label, None) is not None

    def get_status(self) -> dict[str, str]:
        return {"num_classes": str(len(self._weights))}

    def pack(self) -> object:
        return {"weights": self._weights, "counts": self._counts}

    def unpack(self, payload: object) -> None:
        if not isinstance(payload, dict):
            raise ValueError("classifier model must be a map")
        text = {(k.decode() if isinstance(k, bytes) else k): v for k, v in payload.items()}
        weights = {
            label.decode(): {f.decode(): float(x) for f, x in row.items()}
            for label, row in text["weights"].items()
        }
        counts = {label.decode(): int(n) for label, n in text["counts"].items()}
        self._weights, self._counts = weights, counts
