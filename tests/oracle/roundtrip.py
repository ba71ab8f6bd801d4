"""What the tests do to plain values the way servers move them: a mix round between
models (msgpack between servers, as the mixer sends diffs) and a save file's payload
(old-spec msgpack: strings come back as bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgpack


class MixableModel(Protocol):
    def get_diff(self) -> object: ...

    def mix(self, lhs: object, rhs: object) -> object: ...

    def put_diff(self, mixed: object) -> bool: ...


def wire(value: object) -> Any:
    """Through msgpack as the mixer sends values between servers."""
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False)


def saved(value: object) -> Any:
    """Through a model file's old-spec msgpack (text comes back as bytes)."""
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=False), raw=True)


def mix_round(models: Sequence[MixableModel]) -> None:
    """One linear-mixer round: every diff, folded on the first model, put to every model."""
    diffs = [wire(model.get_diff()) for model in models]
    folded = diffs[0]
    for diff in diffs[1:]:
        folded = wire(models[0].mix(folded, diff))
    for model in models:
        assert model.put_diff(wire(folded)) is True
