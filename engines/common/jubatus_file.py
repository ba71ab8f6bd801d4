"""Jubatus's own layout of the model inside a model file: the pieces ``jubatus_core`` packs
with ``MSGPACK_DEFINE``, read from a file's payload and written back.

The pieces every engine shares (the layouts are jubatus_core 1.1.1's):

- a version (``storage::version``): ``[number]``;
- a key manager (``common::key_manager``, label or row names to ids):
  ``[{key: id}, {id: key}, next_id]``;
- the label table (``storage::labels``): ``[{label: count}, {label: count}, version]``,
  master (mixed) then diff (learned here since);
- keyword weights (``fv_converter::keyword_weights``, the document counts behind idf and
  bm25): ``[document_count, [{feature: df}], [{group: frequency}],
  [{group: total length}], {key: user weight}]`` (the counts are doubles);
- the converter's weight manager (``fv_converter::weight_manager``):
  ``[version, diff keyword weights, master keyword weights]``;
- a linear storage (``storage::local_storage`` and ``local_storage_mixture`` share it):
  ``[tbl, class2id, tbl_diff, model_version]`` where a table is
  ``{feature: {label id: [v1, v2, v3]}}`` (weight, variance, unused), doubles.

**Trailing elements.** msgpack-c 0.5, which Jubatus reads with, converts an array into a
``MSGPACK_DEFINE`` structure field by field and ignores elements past the last field (a
shorter array leaves the missing fields as they were). Jubako keeps what it holds beyond
Jubatus's model in such a trailing element, which Jubatus and ``jubadump`` skip; readers
here accept both longer and shorter arrays, as Jubatus does.

Readers take what ``msgpack`` gives for a file (strings as ``bytes``) and raise
:class:`~runtime.mix.mixable.DiffError` naming the path of what does not fit; writers
return plain values ``msgpack`` packs in the old spec. Nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from runtime.errors import ModelFileError
from runtime.mix.mixable import (
    DiffError,
    read_counter,
    read_int,
    read_list,
    read_map,
    read_text,
)

#: A keyword-weights part as the engines keep it (``fv_converter.KeywordWeights.to_plain``).
PlainWeights = dict[str, object]


def read_struct(value: object, path: str, fields: int) -> list[object]:
    """The first ``fields`` elements of a ``MSGPACK_DEFINE`` array (``None`` for missing
    ones; elements past them are the caller's, see the module docstring)."""
    items = read_list(value, path)
    return items[:fields] + [None] * (fields - len(items))


def read_number(value: object, path: str, *, infinite: bool = False) -> float:
    """A finite double (integers accepted, as msgpack-c converts them); ``infinite``: +inf
    too (LOF's lrd of a row whose neighbours are all at distance 0, which Jubatus saves)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DiffError(f"{path}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) and not (infinite and number == math.inf):
        raise DiffError(f"{path}: expected a finite number")
    return number


def read_count(value: object, path: str) -> int:
    """A count msgpack holds as a double or an integer (document frequencies)."""
    number = read_number(value, path)
    if number < 0 or number != int(number):
        raise DiffError(f"{path}: expected a count, got {number!r}")
    return int(number)


def read_version(value: object, path: str) -> int:
    """``[number]`` (``None``: a field the array lacked, version 0)."""
    if value is None:
        return 0
    (number,) = read_struct(value, path, 1)
    return 0 if number is None else read_counter(number, f"{path}[0]")


def pack_version(number: int) -> list[int]:
    return [number]


def read_key_manager(value: object, path: str) -> dict[int, str]:
    """Ids to keys (from the ``id2key`` map, as ``jubadump`` reads it)."""
    if value is None:
        return {}
    _, id2key, _ = read_struct(value, path, 3)
    if id2key is None:
        return {}
    if not isinstance(id2key, dict):
        raise DiffError(f"{path}[1]: expected a map, got {type(id2key).__name__}")
    keys: dict[int, str] = {}
    for key_id, key in id2key.items():
        keys[read_int(key_id, f"{path}[1] key")] = read_text(key, f"{path}[1][{key_id!r}]")
    if len(set(keys.values())) != len(keys):
        raise DiffError(f"{path}[1]: a key has two ids")
    return keys


def pack_key_manager(keys: list[str]) -> list[object]:
    """``keys`` with ids 0, 1, ... in their order."""
    return [
        {key: i for i, key in enumerate(keys)},
        dict(enumerate(keys)),
        len(keys),
    ]


def read_counts(value: object, path: str) -> dict[str, int]:
    """``{name: count}`` (unsigned integers)."""
    if value is None:
        return {}
    return {
        name: read_counter(count, f"{path}[{name!r}]")
        for name, count in read_map(value, path).items()
    }


def read_labels(value: object, path: str) -> tuple[dict[str, int], dict[str, int], int]:
    """``storage::labels``: master counts, diff counts, version."""
    master, diff, version = read_struct(value, path, 3)
    return (
        read_counts(master, f"{path}[0]"),
        read_counts(diff, f"{path}[1]"),
        read_version(version, f"{path}[2]"),
    )


def pack_labels(master: Mapping[str, int], diff: Mapping[str, int], version: int) -> list[object]:
    return [dict(master), dict(diff), pack_version(version)]


def _read_counter(value: object, path: str) -> dict[str, float]:
    """``counter<string>``: ``[{key: double}]``."""
    if value is None:
        return {}
    (data,) = read_struct(value, path, 1)
    if data is None:
        return {}
    counts = {
        key: read_number(number, f"{path}[0][{key!r}]")
        for key, number in read_map(data, f"{path}[0]").items()
    }
    for key, number in counts.items():
        if number < 0:  # a document frequency, a group's count or length
            raise DiffError(f"{path}[0][{key!r}]: expected a count, got {number!r}")
    return counts


def read_keyword_weights(value: object, path: str) -> PlainWeights:
    """``keyword_weights`` as the engines' plain form (``document_count``,
    ``document_frequencies``, ``group_frequencies``, ``group_total_lengths``). User weights
    (the ``weight`` global weight's table) are dropped: no Jubatus call sets them."""
    count, frequencies, groups, lengths, _ = read_struct(value, path, 5)
    return {
        "document_count": 0 if count is None else read_counter(count, f"{path}[0]"),
        "document_frequencies": _read_counter(frequencies, f"{path}[1]"),
        "group_frequencies": _read_counter(groups, f"{path}[2]"),
        "group_total_lengths": _read_counter(lengths, f"{path}[3]"),
    }


def pack_keyword_weights(weights: Mapping[str, object]) -> list[object]:
    """The engines' plain keyword weights in Jubatus's layout (counts as doubles)."""

    def counter(name: str) -> list[dict[str, float]]:
        table = weights.get(name) or {}
        assert isinstance(table, Mapping)
        return [{key: float(number) for key, number in table.items()}]

    count = weights.get("document_count", 0)
    assert isinstance(count, int)
    return [
        count,
        counter("document_frequencies"),
        counter("group_frequencies"),
        counter("group_total_lengths"),
        {},
    ]


def read_weight_manager(value: object, path: str) -> tuple[int, PlainWeights, PlainWeights]:
    """``weight_manager``: version, master and diff keyword weights (plain)."""
    version, diff, master = read_struct(value, path, 3)
    return (
        read_version(version, f"{path}[0]"),
        read_keyword_weights(master if master is not None else [], f"{path}[2]"),
        read_keyword_weights(diff if diff is not None else [], f"{path}[1]"),
    )


def pack_weight_manager(
    version: int, master: Mapping[str, object], diff: Mapping[str, object]
) -> list[object]:
    return [pack_version(version), pack_keyword_weights(diff), pack_keyword_weights(master)]


def empty_weights() -> PlainWeights:
    return {
        "document_count": 0,
        "document_frequencies": {},
        "group_frequencies": {},
        "group_total_lengths": {},
    }


#: ``{feature: {label: (v1, v2)}}``: a linear storage table with its label ids resolved.
LinearTable = dict[str, dict[str, tuple[float, float]]]


def read_linear_table(value: object, labels: Mapping[int, str], path: str) -> LinearTable:
    """A ``{feature: {label id: [v1, v2, v3]}}`` table with ids turned into labels."""
    if value is None:
        return {}
    table: LinearTable = {}
    for feature, row in read_map(value, path).items():
        where = f"{path}[{feature!r}]"
        if not isinstance(row, dict):
            raise DiffError(f"{where}: expected a map, got {type(row).__name__}")
        entries: dict[str, tuple[float, float]] = {}
        for label_id, triple in row.items():
            number = read_int(label_id, f"{where} key")
            label = labels.get(number)
            if label is None:
                raise DiffError(f"{where}: unknown label id {number}")
            v1, v2, _ = read_struct(triple, f"{where}[{number}]", 3)
            entries[label] = (
                0.0 if v1 is None else read_number(v1, f"{where}[{number}][0]"),
                0.0 if v2 is None else read_number(v2, f"{where}[{number}][1]"),
            )
        table[feature] = entries
    return table


def pack_linear_table(table: LinearTable, ids: Mapping[str, int]) -> dict[str, object]:
    """``{feature: {label id: [v1, v2, 0.0]}}``."""
    return {
        feature: {ids[label]: [v1, v2, 0.0] for label, (v1, v2) in row.items()}
        for feature, row in table.items()
    }


def from_file(payload: object, engine: str, convert: Callable[[object], object]) -> object:
    """What a model's ``unpack`` takes, from a file's payload: Jubatus's layout (an array)
    through ``convert``, Jubako's older layout (a map) as it is; a payload that does not fit
    raises :class:`~runtime.errors.ModelFileError` naming what."""
    if not isinstance(payload, list):
        return payload
    try:
        return convert(payload)
    except DiffError as error:
        raise ModelFileError(f"{engine} model does not fit: {error}") from None


__all__ = [
    "LinearTable",
    "PlainWeights",
    "empty_weights",
    "from_file",
    "pack_key_manager",
    "pack_keyword_weights",
    "pack_labels",
    "pack_linear_table",
    "pack_version",
    "pack_weight_manager",
    "read_count",
    "read_counts",
    "read_key_manager",
    "read_keyword_weights",
    "read_labels",
    "read_linear_table",
    "read_number",
    "read_struct",
    "read_version",
    "read_weight_manager",
]
