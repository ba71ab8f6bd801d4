"""The ``#@`` annotation table: which names exist, what kind each is, whether it takes ``(n)``.

One row per annotation name. The kind (routing, lock or aggregator) is clear from the name,
so annotations may be written in any order. Unknown names are not rejected here: the
validator reports them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from jenerator.model import ANNOTATION_KINDS, Aggregator, Lock, Routing


@dataclass(frozen=True)
class AnnotationSpec:
    """What one ``#@name`` means."""

    name: str
    kind: type[enum.Enum]
    takes_argument: bool


ANNOTATIONS: dict[str, AnnotationSpec] = {
    spec.name: spec
    for spec in (
        *(AnnotationSpec(r.value, Routing, r is Routing.CHT) for r in Routing),
        *(AnnotationSpec(lk.value, Lock, False) for lk in Lock),
        *(AnnotationSpec(a.value, Aggregator, False) for a in Aggregator),
    )
}

#: Human names of the annotation kinds, for messages.
KIND_NAMES: dict[type[enum.Enum], str] = {
    Routing: "routing",
    Lock: "lock",
    Aggregator: "aggregator",
}


def kind_of(name: str) -> type[enum.Enum] | None:
    """The kind (``Routing``, ``Lock`` or ``Aggregator``) of ``#@name``; ``None`` if unknown."""
    return ANNOTATION_KINDS.get(name)
