"""What a generated gateway hands the runtime: its service and one row per method."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

from runtime.http.shapes import Shape


@dataclass(frozen=True)
class ArgSpec:
    """One argument: its IDL name, the attribute of the arguments model, its shape."""

    name: str
    attr: str
    shape: Shape
    #: How errors name it, as the RPC does: ``1 (value)``.
    label: str


@dataclass(frozen=True)
class MethodSpec:
    """One IDL method (or built-in) as the gateway serves it.

    ``model`` validates the JSON body (None: the method takes no argument); ``lock`` is
    the IDL's ``analysis``, ``update`` or ``nolock``: only ``analysis`` methods may have
    identical inputs of a job computed once, or interrupted inputs sent again.
    """

    name: str
    model: type[pydantic.BaseModel] | None
    args: tuple[ArgSpec, ...]
    result: Shape
    lock: str = "analysis"
    routing: str = "random"
    doc: str = ""

    def encode(self, body: pydantic.BaseModel | None) -> list[Any]:
        """The wire arguments of a validated body (without the cluster name)."""
        if body is None:
            return []
        return [arg.shape.to_wire(getattr(body, arg.attr)) for arg in self.args]

    def find_arg(self, name: str) -> ArgSpec | None:
        for arg in self.args:
            if arg.name == name:
                return arg
        return None

    @functools.cached_property
    def result_text(self) -> Callable[[Any], str]:
        """The JSON text of a wire result (:meth:`Shape.text`), made once."""
        return self.result.text()

    @property
    def reads_only(self) -> bool:
        """Whether the IDL says the method only reads (``#@analysis``)."""
        return self.lock == "analysis"

    def describe_args(self) -> str:
        """``key (string), value (string)`` for error messages."""
        return ", ".join(f"{a.name} ({a.shape.idl})" for a in self.args) or "none"


def arg(id: int, name: str, attr: str, shape: Shape) -> ArgSpec:
    """The argument ``id: TYPE name`` of the IDL, read from the model's ``attr``."""
    return ArgSpec(name, attr, shape, f"{id} ({name})")


@dataclass(frozen=True)
class ServiceSpec:
    """A service's gateway: its IDL name, its documentation and its methods."""

    name: str
    doc: str
    methods: Sequence[MethodSpec] = field(default_factory=tuple)

    def method(self, name: str) -> MethodSpec | None:
        for method in self.methods:
            if method.name == name:
                return method
        return None
