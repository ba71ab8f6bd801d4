"""Method signatures: a wire name, argument descriptors and a result descriptor.

Generated ``*_types`` modules define one :class:`Signature` per IDL method; clients use it
to encode arguments and decode results, servers to build their dispatch rows, proxies to
check arity and find the hash key. The built-in methods every service has are defined
here once (``GET_CONFIG``, ``SAVE``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from runtime.errors import WireTypeError
from runtime.wire import types as _t

R = TypeVar("R")


class Signature(Generic[R]):
    """The wire shape of one method (without the leading cluster-name parameter).

    ``names`` are the arguments' IDL names and ``ids`` their IDL ids (positions 0, 1, ...
    when not given): errors name an argument as the IDL does, ``argument 1 (delta)``.
    """

    __slots__ = ("args", "arity", "labels", "name", "result")

    def __init__(
        self,
        name: str,
        args: tuple[_t.Descriptor[Any], ...],
        result: _t.Descriptor[R],
        names: tuple[str, ...] = (),
        ids: tuple[int, ...] = (),
    ) -> None:
        self.name = name
        self.args = args
        self.result = result
        self.arity = len(args)
        #: How errors name each argument: ``1 (delta)``, or its position alone.
        self.labels = argument_labels(len(args), names, ids)

    def encode_args(self, values: Sequence[object]) -> list[object]:
        """Encode call arguments, before anything is sent: ``TypeError`` on a wrong count,
        :class:`~runtime.errors.WireTypeError` naming the method and the argument on a
        value that does not fit its type."""
        if len(values) != self.arity:
            raise TypeError(
                f'"{self.name}" takes {self.arity} argument(s), but {len(values)} given'
            )
        try:
            return [
                descriptor.encode(value)
                for descriptor, value in zip(self.args, values, strict=True)
            ]
        except WireTypeError:
            for label, descriptor, value in zip(self.labels, self.args, values, strict=True):
                try:
                    descriptor.encode(value)
                except WireTypeError as error:
                    raise WireTypeError(f"{self.name}: argument {label}: {error}") from None
            raise

    def decode_result(self, wire: object) -> R:
        """Decode a reply's result; raises ``TypeMismatch`` when it does not fit."""
        return self.result.decode(wire)

    def __repr__(self) -> str:
        return f"Signature({self.name!r}, arity={self.arity})"


def argument_labels(count: int, names: tuple[str, ...], ids: tuple[int, ...]) -> tuple[str, ...]:
    """How errors name ``count`` arguments: ``"<id> (<name>)"``, or the id alone."""
    numbers = ids or tuple(range(count))
    if not names:
        return tuple(str(number) for number in numbers)
    return tuple(f"{number} ({name})" for number, name in zip(numbers, names, strict=True))


_STATUS = _t.Map(_t.String(), _t.Map(_t.String(), _t.String()))

GET_CONFIG: Signature[str] = Signature("get_config", (), _t.String())
SAVE: Signature[dict[str, str]] = Signature(
    "save", (_t.String(),), _t.Map(_t.String(), _t.String()), ("id",)
)
LOAD: Signature[bool] = Signature("load", (_t.String(),), _t.Bool(), ("id",))
GET_STATUS: Signature[dict[str, dict[str, str]]] = Signature("get_status", (), _STATUS)
DO_MIX: Signature[bool] = Signature("do_mix", (), _t.Bool())
SUSPEND_MIXER: Signature[bool] = Signature("suspend_mixer", (), _t.Bool())
RESUME_MIXER: Signature[bool] = Signature("resume_mixer", (), _t.Bool())
GET_PROXY_STATUS: Signature[dict[str, dict[str, str]]] = Signature("get_proxy_status", (), _STATUS)
