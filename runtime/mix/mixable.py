"""The contract between a model and the linear mixer: diffs, their fold, and versions.

A model that can be mixed implements :class:`Mixable`. The mixer (one master per round)
asks every server for :meth:`~Mixable.get_diff`, folds the answers with
:meth:`~Mixable.mix`, and hands the result to every server's :meth:`~Mixable.put_diff`.
A server joining a running cluster first copies a peer's :meth:`~Mixable.get_model`
into its own with :meth:`~Mixable.set_model`, then takes part in the next round.

The contract every implementation keeps:

- **Version.** ``version`` counts the mixes this model has applied since it was created
  (or since :meth:`~Mixable.set_model` copied a peer's count). Two servers with the same
  version agree on the *mixed* part of their models; what each learned since then is its
  own diff.
- **get_diff** returns what changed locally since the last applied mix, together with the
  version it is based on. It does not change the model (it may remember what it sent, so
  that updates made while a round is running survive that round).
- **mix(lhs, rhs)** combines two diffs (or results of earlier ``mix`` calls) into one. It is
  associative (up to floating-point rounding), so the mixer may fold the diffs in any
  grouping; it never changes its arguments, and it does not touch the model (the mixer may
  call it on any server's object). Diffs based on different versions are combined by a
  rule of the model's choosing (Jubatus's: the newer base wins).
- **put_diff(mixed)** applies a folded diff. It returns ``False``, changing nothing, when
  the diff is based on another version than the local one (the server is obsolete and must
  catch up with ``get_model``/``set_model``); otherwise it applies the diff, increments
  ``version`` and returns ``True``. It is all-or-nothing: a malformed value raises
  :class:`DiffError` before anything is changed.
- **get_model / set_model** carry the mixed state and its version, for a joining server.
  ``set_model`` is all-or-nothing too.

Every value crossing these methods (diffs, mixed diffs, models) is plain data that survives
``msgpack.packb(value, use_bin_type=True)`` then ``msgpack.unpackb(..., raw=False)``
unchanged in meaning: maps with string keys, lists (never tuples or sets), str, int, float,
bool and None. Bytes, if a model needs them, travel as msgpack bin.

Thread-safety is the caller's: the server calls these methods under its model lock
(``get_diff``/``get_model`` under the read lock, ``put_diff``/``set_model`` under the
write lock). This module holds no mixing machinery and never talks to the network.

The ``read_*`` helpers check such plain values field by field and raise :class:`DiffError`
naming the path of the first value that does not fit. They accept text as ``bytes`` too
(UTF-8), so the same readers serve model files, whose old msgpack format cannot tell
strings from bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol, runtime_checkable


class DiffError(ValueError):
    """A diff or model handed to a mixable does not have the expected shape."""


@runtime_checkable
class Mixable(Protocol):
    """A model the linear mixer can combine across servers (see the module docstring)."""

    @property
    def version(self) -> int:
        """The number of mixes applied to this model."""
        ...

    def get_diff(self) -> object:
        """What changed since the last applied mix, with the version it is based on."""
        ...

    def mix(self, lhs: object, rhs: object) -> object:
        """The combination of two diffs; associative, and changes neither argument."""
        ...

    def put_diff(self, mixed: object) -> bool:
        """Apply a folded diff; ``False`` (and no change) when its base version differs."""
        ...

    def get_model(self) -> object:
        """The mixed state and its version, for a server joining the cluster."""
        ...

    def set_model(self, model: object) -> None:
        """Replace this model with a peer's :meth:`get_model`; all or nothing."""
        ...


def fold_diffs(mixable: Mixable, diffs: Iterable[object]) -> object:
    """Fold ``diffs`` left to right with ``mixable.mix``; at least one diff is needed."""
    iterator = iter(diffs)
    try:
        accumulated = next(iterator)
    except StopIteration:
        raise DiffError("no diffs to fold") from None
    for diff in iterator:
        accumulated = mixable.mix(accumulated, diff)
    return accumulated


def read_text(value: object, path: str) -> str:
    """``value`` as a string (UTF-8 ``bytes`` are decoded)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise DiffError(f"{path}: not valid UTF-8 text") from None
    raise DiffError(f"{path}: expected a string, got {type(value).__name__}")


def read_int(value: object, path: str, minimum: int = 0) -> int:
    """``value`` as an integer of at least ``minimum`` (booleans are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DiffError(f"{path}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise DiffError(f"{path}: must be >= {minimum}, got {value}")
    return value


#: The largest clock, version or count a diff or model file may hold: a counter read back
#: must have room to go on counting (and to be packed again: msgpack stops at 2^64 - 1).
COUNTER_MAX = 2**62


def read_counter(value: object, path: str) -> int:
    """``value`` as a clock, version or count: an integer from 0 to :data:`COUNTER_MAX`."""
    number = read_int(value, path)
    if number > COUNTER_MAX:
        raise DiffError(f"{path}: must be <= 2^62, got {number}")
    return number


def read_float(value: object, path: str) -> float:
    """``value`` as a finite float (integers are accepted, booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DiffError(f"{path}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise DiffError(f"{path}: must be finite, got {number}")
    return number


def read_map(value: object, path: str) -> dict[str, object]:
    """``value`` as a map with string keys, in its own order."""
    if not isinstance(value, dict):
        raise DiffError(f"{path}: expected a map, got {type(value).__name__}")
    result: dict[str, object] = {}
    for key, item in value.items():
        name = read_text(key, f"{path} key")
        if name in result:
            raise DiffError(f"{path}: key {name!r} appears twice")
        result[name] = item
    return result


def read_fields(value: object, path: str, names: Iterable[str]) -> dict[str, object]:
    """``value`` as a map holding exactly the fields ``names``."""
    fields = read_map(value, path)
    wanted = list(names)
    missing = [name for name in wanted if name not in fields]
    if missing:
        raise DiffError(f"{path}: missing field {missing[0]!r}")
    extra = sorted(set(fields) - set(wanted))
    if extra:
        raise DiffError(f"{path}: unknown field {extra[0]!r}")
    return fields


def read_list(value: object, path: str) -> list[object]:
    """``value`` as a list (msgpack arrays come back as lists)."""
    if not isinstance(value, list | tuple):
        raise DiffError(f"{path}: expected a list, got {type(value).__name__}")
    return list(value)
