"""Reading a Jubatus engine config the way Jubatus's ``config_cast_check`` does: every
member the engine declares is required unless optional, a key it does not declare is an
error, and so is a value of the wrong JSON type. Every error is a
:class:`~runtime.errors.ConfigError` naming the key's path (``parameter.hash_num``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable

from runtime.errors import ConfigError

_INT32 = (-(2**31), 2**31 - 1)


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def float32(value: float) -> float:
    """``value`` rounded to a 32-bit float (Jubatus keeps these parameters as ``float``)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


class Params:
    """An object of a config with its path; reads members and refuses unknown ones."""

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected an object, got {json_type(value)}")
        self.fields: dict[str, object] = {str(k): v for k, v in value.items()}
        self.path = path

    def where(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def only(self, allowed: Iterable[str]) -> None:
        known = list(allowed)
        for name in self.fields:
            if name not in known:
                raise ConfigError.unknown_key(self.where(name), known)

    def has(self, name: str) -> bool:
        return self.fields.get(name) is not None

    def raw(self, name: str) -> object:
        if name not in self.fields:
            raise ConfigError(f"{self.where(name)}: required")
        return self.fields[name]

    def number(self, name: str, default: float | None = None) -> float:
        if not self.has(name):
            if default is None:
                raise ConfigError(f"{self.where(name)}: required")
            return default
        value = self.fields[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.where(name)}: expected a number, got {json_type(value)}")
        number = float(value)
        if math.isnan(number):
            raise ConfigError(f"{self.where(name)}: expected a number, got NaN")
        return number

    def float32(self, name: str, default: float | None = None) -> float:
        number = self.number(name, default)
        try:
            return float32(number)
        except OverflowError:
            raise ConfigError(
                f"{self.where(name)}: does not fit a 32-bit float: {number}"
            ) from None

    def integer(
        self, name: str, default: int | None = None, bounds: tuple[int, int] = _INT32
    ) -> int:
        if not self.has(name):
            if default is None:
                raise ConfigError(f"{self.where(name)}: required")
            return default
        value = self.fields[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.where(name)}: expected an integer, got {json_type(value)}")
        if not bounds[0] <= value <= bounds[1]:
            raise ConfigError(f"{self.where(name)}: out of range: {value}")
        return value

    def text(self, name: str, default: str | None = None) -> str:
        if not self.has(name):
            if default is None:
                raise ConfigError(f"{self.where(name)}: required")
            return default
        value = self.fields[name]
        if not isinstance(value, str):
            raise ConfigError(f"{self.where(name)}: expected a string, got {json_type(value)}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        if not self.has(name):
            return default
        value = self.fields[name]
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where(name)}: expected true or false, got {json_type(value)}")
        return value

    def child(self, name: str) -> Params:
        return Params(self.raw(name), self.where(name))

    def check(self, ok: bool, name: str, rule: str) -> None:
        """``ConfigError("path.name: must be ...")`` unless ``ok``."""
        if not ok:
            raise ConfigError(f"{self.where(name)}: {rule}")


def engine_config(config: object, keys: Iterable[str], required: Iterable[str]) -> Params:
    """The top level of an engine config: only ``keys``, with ``required`` present."""
    params = Params(config, "")
    params.only(keys)
    for name in required:
        if name not in params.fields:
            raise ConfigError(f"{name}: required")
    return params
