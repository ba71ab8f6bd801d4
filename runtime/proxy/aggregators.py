"""How a proxy folds the results of several servers into one reply.

Each aggregator is a pure fold over a non-empty sequence of results *in the order given*
(the proxy passes them in ring or server order, so results are deterministic):

- ``pass`` (any type): the first result;
- ``all_and`` / ``all_or`` (bool): every / any result is true;
- ``merge`` (map): the union of the maps; on a duplicate key the later map wins;
- ``concat`` (list): the lists one after another;
- ``add`` (number): the sum, left to right;
- ``ignore`` (any): the first result, or None when there are none.

:data:`AGGREGATORS` maps the IDL annotation name to the function. :func:`merge_status`
folds ``get_status``-style maps ``{server: {key: value}}``.

Nothing here does I/O or mutates its inputs. An empty sequence (except for ``ignore``) is
a bug in the caller and raises :class:`ValueError`; a result of the wrong type raises
:class:`TypeError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "add",
    "all_and",
    "all_or",
    "concat",
    "ignore",
    "merge",
    "merge_status",
    "pass_",
]

#: A fold over the results of several servers.
Aggregator = Callable[[Sequence[Any]], Any]


def _require_results(results: Sequence[Any], name: str) -> None:
    if len(results) == 0:
        raise ValueError(f"aggregator {name!r} needs at least one result")


def pass_(results: Sequence[Any]) -> Any:
    """The first result (``pass`` is a keyword, hence the underscore)."""
    _require_results(results, "pass")
    return results[0]


def _bools(results: Sequence[Any], name: str) -> Sequence[bool]:
    _require_results(results, name)
    for value in results:
        if not isinstance(value, bool):
            raise TypeError(f"aggregator {name!r} needs bool results, got {type(value).__name__}")
    return results


def all_and(results: Sequence[Any]) -> bool:
    """True when every result is true."""
    return all(_bools(results, "all_and"))


def all_or(results: Sequence[Any]) -> bool:
    """True when any result is true."""
    return any(_bools(results, "all_or"))


def merge(results: Sequence[Any]) -> dict[Any, Any]:
    """The union of the maps in order; a later map's value wins on a duplicate key."""
    _require_results(results, "merge")
    merged: dict[Any, Any] = {}
    for value in results:
        if not isinstance(value, Mapping):
            raise TypeError(f"aggregator 'merge' needs map results, got {type(value).__name__}")
        merged.update(value)
    return merged


def concat(results: Sequence[Any]) -> list[Any]:
    """The lists one after another, in order."""
    _require_results(results, "concat")
    joined: list[Any] = []
    for value in results:
        if not isinstance(value, list | tuple):
            raise TypeError(f"aggregator 'concat' needs list results, got {type(value).__name__}")
        joined.extend(value)
    return joined


def add(results: Sequence[Any]) -> Any:
    """The sum of the results, left to right (``int`` stays ``int``)."""
    _require_results(results, "add")
    for value in results:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"aggregator 'add' needs numbers, got {type(value).__name__}")
    total = results[0]
    for value in results[1:]:
        total = total + value
    return total


def ignore(results: Sequence[Any]) -> Any:
    """The first result, or None when there is none (``#@ignore``: nobody uses the value)."""
    return results[0] if len(results) > 0 else None


def merge_status(
    results: Sequence[Mapping[str, Mapping[str, str]]],
) -> dict[str, dict[str, str]]:
    """Fold ``get_status`` replies ``{server: {key: value}}`` into one map.

    Servers are distinct keys, so normally this is a plain union; if two replies name the
    same server, their inner maps are merged and the later value wins.
    """
    _require_results(results, "merge_status")
    merged: dict[str, dict[str, str]] = {}
    for reply in results:
        if not isinstance(reply, Mapping):
            raise TypeError(f"a status reply must be a map, got {type(reply).__name__}")
        for server, status in reply.items():
            if not isinstance(status, Mapping):
                raise TypeError(
                    f"the status of {server!r} must be a map, got {type(status).__name__}"
                )
            merged.setdefault(server, {}).update(status)
    return merged


#: Aggregators by their IDL annotation name.
AGGREGATORS: Final[dict[str, Aggregator]] = {
    "pass": pass_,
    "all_and": all_and,
    "all_or": all_or,
    "merge": merge,
    "concat": concat,
    "add": add,
    "ignore": ignore,
}
