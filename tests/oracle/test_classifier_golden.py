"""The classifier agrees with Jubatus's core: the linear methods (``ClassifierModel``, 7
methods x scikit-learn's ``digits`` and ``breast_cancer`` and a seeded 5-class Gaussian
set: 21 cells) and the neighbour methods ``NN`` (over ``euclid_lsh``, ``lsh``, ``minhash``),
``cosine`` and ``euclidean`` (:class:`~engines.common.neighbor_classifier.NeighborClassifierModel`).

One pass over the training rows in order, then 100 held-out rows: the same predicted label
on every row, every label's score within 1e-6 (the linear methods keep their parameters as
32-bit floats), the same label counts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from engines.classifier.classifier_serv import ClassifierServ
from engines.classifier.model import ClassifierModel
from engines.common.neighbor_classifier import NEIGHBOR_METHODS, NeighborClassifierModel
from tests.oracle.goldens import close, datum, golden

GOLDEN = golden("classifier")


def _case_id(case: dict[str, Any]) -> str:
    config = case["config"]
    extra = config["parameter"].get("method", "") if config["method"] == "NN" else ""
    return "-".join(filter(None, [config["method"], extra, case["data"]]))


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[_case_id(c) for c in GOLDEN["cases"]])
def test_classifications_agree_with_the_core(case: dict[str, Any]) -> None:
    data = GOLDEN["datasets"][case["data"]]
    config = case["config"]
    # The service picks the model by the method, as jubaclassifier does.
    model = ClassifierServ(json.dumps(config)).model
    expected = NeighborClassifierModel if config["method"] in NEIGHBOR_METHODS else ClassifierModel
    assert type(model) is expected
    split = data["split"]
    for row, label in zip(data["rows"][:split], data["labels"][:split], strict=True):
        assert model.train([(label, datum(row))]) == 1
    assert model.get_labels() == case["labels"]
    results = model.classify([datum(row) for row in data["rows"][split : split + 100]])
    for mine, theirs in zip(results, case["classify"], strict=True):
        ours = sorted((label, float(score)) for label, score in mine)
        assert max(ours, key=lambda r: r[1])[0] == max(theirs, key=lambda r: r[1])[0]
        assert [label for label, _ in ours] == [label for label, _ in theirs]
        assert all(close(a, b, 1e-6, 1e-9) for (_, a), (_, b) in zip(ours, theirs, strict=True))
