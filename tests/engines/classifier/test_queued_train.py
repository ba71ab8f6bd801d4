"""A fire-and-forget ``train``'s answer: how many examples it queued, or the dispatcher's
refusal when its shape is wrong (the caller's answer: it is not queued)."""

from __future__ import annotations

from typing import Any

import pytest

from engines.classifier.classifier_serv import _queued_examples
from runtime.errors import TypeMismatch

DATUM: list[Any] = [[[b"text", b"fig"]], [[b"n", 1.0]], []]


@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_well_formed_train_answers_its_examples(count: int) -> None:
    assert _queued_examples([[b"label", DATUM]] * count) == count


@pytest.mark.parametrize(
    "data",
    [
        b"not a list",
        [[b"label"]],
        [[b"label", DATUM, b"more"]],
        [[b"label", DATUM], [7, DATUM]],
        [[b"label", b"not a datum"]],
    ],
    ids=["not a list", "a pair of one", "a pair of three", "a label not a string",
         "a datum not a list"],
)  # fmt: skip
def test_a_bad_shape_is_refused_as_the_dispatcher_refuses_it(data: object) -> None:
    with pytest.raises(TypeMismatch, match="train: argument"):
        _queued_examples(data)
