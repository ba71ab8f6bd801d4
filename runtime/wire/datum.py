"""Jubatus's datum: string, number and binary values keyed by name.

On the wire a datum is ``[[[k, str]...], [[k, float]...], [[k, bytes]...]]``, three lists
in insertion order. :class:`Datum` accepts and produces what the official client's
``jubatus.common.Datum`` does: a dict sorted into the three lists by value type, ints
stored as floats, and ``add_string`` / ``add_number`` / ``add_binary``.
"""

from __future__ import annotations

from collections.abc import Mapping


class Datum:
    """A set of named string, number and binary values."""

    __slots__ = ("binary_values", "num_values", "string_values")

    def __init__(self, values: Mapping[str, str | float | int | bytes] | None = None) -> None:
        self.string_values: list[tuple[str, str]] = []
        self.num_values: list[tuple[str, float]] = []
        self.binary_values: list[tuple[str, bytes]] = []
        for key, value in (values or {}).items():
            if isinstance(value, str):
                self.add_string(key, value)
            elif isinstance(value, bytes):
                self.add_binary(key, value)
            elif type(value) in (int, float):
                self.add_number(key, value)
            else:
                raise TypeError(f"datum value for {key!r} must be str, number or bytes")

    def add_string(self, key: str, value: str) -> Datum:
        if type(key) is not str or type(value) is not str:
            raise TypeError("add_string takes a str key and a str value")
        self.string_values.append((key, value))
        return self

    def add_number(self, key: str, value: float) -> Datum:
        if type(key) is not str or type(value) not in (int, float):
            raise TypeError("add_number takes a str key and a number")
        self.num_values.append((key, float(value)))
        return self

    def add_binary(self, key: str, value: bytes) -> Datum:
        if type(key) is not str or type(value) is not bytes:
            raise TypeError("add_binary takes a str key and bytes")
        self.binary_values.append((key, value))
        return self

    def to_msgpack(self) -> list[list[list[object]]]:
        """The wire form: three lists of ``[key, value]`` pairs."""
        return [
            [[k, v] for k, v in self.string_values],
            [[k, v] for k, v in self.num_values],
            [[k, v] for k, v in self.binary_values],
        ]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Datum):
            return NotImplemented
        return (
            self.string_values == other.string_values
            and self.num_values == other.num_values
            and self.binary_values == other.binary_values
        )

    def __hash__(self) -> int:
        return hash((tuple(self.string_values), tuple(self.num_values), tuple(self.binary_values)))

    def __repr__(self) -> str:
        return (
            f"datum{{string_values: {self.string_values}, num_values: {self.num_values}, "
            f"binary_values: {self.binary_values}}}"
        )
