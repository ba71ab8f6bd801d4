"""A recommender index (:class:`~engines.common.recommender_index.RecommenderIndex`, the
recommender engine's model and the ``lof`` anomaly's backend) in Jubatus's layout:
``[orig, storage]`` (the unlearner first when there is one), where ``orig`` is the rows as
given (``sparse_matrix_storage``) and ``storage`` the method's own:

- ``inverted_index``, ``inverted_index_euclid``: an ``inverted_index_storage``;
- ``lsh``, ``minhash``: a ``bit_index_storage`` of the rows' hash bits;
- ``euclid_lsh``: an ``lsh_index_storage``, ``[entries, entries_diff, buckets,
  buckets_diff, shift, table_num, rows]`` with ``entries = {row: [bucket keys, sign bits,
  norm]}`` and ``buckets = {bucket key: [row ids]}``. A row removed since the last mix
  stays a member of its buckets in Jubatus, and counts towards a query's candidates, until
  the next mix: such members are written and read too (``stale`` in
  :meth:`~engines.common.lsh_index.LshIndex.pack`);
- ``nearest_neighbor_recommender``: a ``column_table`` of the nearest-neighbour engine.

Converted from and to :meth:`RecommenderIndex.pack`'s value (pieces in
:mod:`engines.common.jubatus_tables`; everything is written as master, per-row versions
in trailing elements).
"""

from __future__ import annotations

from typing import Any

from engines.common.jubatus_file import pack_key_manager, read_key_manager, read_number, read_struct
from engines.common.jubatus_tables import (
    EXTRA_VERSION,
    nn_columns,
    pack_bit_index,
    pack_bit_vector,
    pack_column_table,
    pack_inverted_index,
    pack_sparse_matrix,
    pack_unlearner,
    read_bit_index,
    read_bit_vector,
    read_column_table,
    read_inverted_index,
    read_sparse_matrix,
    read_unlearner,
    rows_table,
    table_rows,
)
from engines.common.recommender_index import RecommenderIndex
from runtime.mix.mixable import DiffError, read_int, read_list, read_map, read_text


def index_to_jubatus(index: RecommenderIndex, packed: object) -> list[object]:
    """``index.pack()``'s value in Jubatus's layout (see the module docstring)."""
    assert isinstance(packed, dict)
    stored: Any = packed["index"]
    if index.inverted is not None:
        storage = pack_inverted_index(stored)
    elif index.bit_index is not None:
        storage = pack_bit_index(table_rows(stored), stored["clock"], index.bit_index.hash_num)
    elif index.lsh_index is not None:
        storage = _pack_lsh(index, stored)
    else:
        assert index.neighbors is not None
        columns = nn_columns(index.neighbors.name, index.neighbors.hash_num)
        storage = pack_column_table(table_rows(stored), stored["clock"], columns)
    part: list[object] = [pack_sparse_matrix(packed["original"]), storage]
    if index.unlearner is not None and packed["unlearner"] is not None:
        part.insert(0, pack_unlearner(index.unlearner.name, packed["unlearner"]))
    return part


def index_from_jubatus(value: object, index: RecommenderIndex, path: str) -> dict[str, object]:
    """Jubatus's layout as ``RecommenderIndex.unpack()`` takes it; ``index`` is a fresh
    index of the same config (it says which storage to read)."""
    part = read_list(value, path)
    unlearned = None
    if index.unlearner is not None:
        if len(part) != 3:
            raise DiffError(f"{path}: expected [unlearner, orig, storage]")
        unlearned = read_unlearner(index.unlearner.name, part[0], f"{path}[0]")
        if unlearned.get("random", 0) is None:
            current = index.unlearner.pack()
            assert isinstance(current, dict)
            unlearned["random"] = current["random"]
        part = part[1:]
    if len(part) != 2:
        raise DiffError(f"{path}: expected [orig, storage], got {len(part)} parts")
    where = f"{path}[storage]"
    stored: object
    if index.inverted is not None:
        stored = read_inverted_index(part[1], where)
    elif index.bit_index is not None:
        rows, clock = read_bit_index(part[1], index.bit_index.hash_num, where)
        stored = rows_table(rows, clock)
    elif index.lsh_index is not None:
        stored = _read_lsh(index, part[1], where)
    else:
        assert index.neighbors is not None
        columns = nn_columns(index.neighbors.name, index.neighbors.hash_num)
        rows, clock = read_column_table(part[1], columns, where)
        stored = rows_table(rows, clock)
    return {
        "original": read_sparse_matrix(part[0], f"{path}[orig]"),
        "index": stored,
        "unlearner": unlearned,
    }


def _pack_lsh(index: RecommenderIndex, stored: Any) -> list[object]:
    lsh = index.lsh_index
    assert lsh is not None
    rows: dict[str, list[Any]] = stored["rows"]
    stale: dict[str, list[int]] = stored.get("stale", {})
    keys = list(rows) + [key for key in stale if key not in rows]
    numbers = {key: number for number, key in enumerate(keys)}
    entries = {}
    buckets: dict[int, list[int]] = {}
    for key in rows:
        bucket_keys, words, norm = rows[key][2]
        entries[key] = [list(bucket_keys), pack_bit_vector(words, lsh.bits), norm]
        for bucket in bucket_keys:
            buckets.setdefault(bucket, []).append(numbers[key])
    for key, bucket_keys in stale.items():
        for bucket in bucket_keys:
            buckets.setdefault(bucket, []).append(numbers[key])
    return [
        entries,
        {},
        {bucket: sorted(set(members)) for bucket, members in buckets.items()},
        {},
        [float(v) for v in lsh.shift],
        lsh.table_num,
        pack_key_manager(keys),
        {
            "jubako": EXTRA_VERSION,
            "clock": stored["clock"],
            "versions": {key: rows[key][:2] for key in rows},
        },
    ]


def _read_lsh(index: RecommenderIndex, value: object, path: str) -> dict[str, object]:
    lsh = index.lsh_index
    assert lsh is not None
    items = read_list(value, path)
    master, diff, table, table_diff, _, table_num, row2id = read_struct(items, path, 7)
    if table_num is not None and read_int(table_num, f"{path}[5]") != lsh.table_num:
        raise DiffError(f"{path}[5]: {table_num} tables, the config has {lsh.table_num}")
    names = read_key_manager(row2id, f"{path}[6]")
    numbers = {key: number for number, key in names.items()}
    entries: dict[str, list[object] | None] = {}
    for part, where in ((master, f"{path}[0]"), (diff, f"{path}[1]")):
        for key, entry in read_map(part or {}, where).items():
            bucket_keys, vector, norm = read_struct(entry, f"{where}[{key!r}]", 3)
            buckets = [read_int(b, where) for b in read_list(bucket_keys or [], where)]
            if not buckets:  # an emptied entry: the row was removed
                entries[key] = None
                continue
            bits, words = read_bit_vector(vector, f"{where}[{key!r}][1]")
            if bits != lsh.bits:
                raise DiffError(f"{where}[{key!r}]: {bits} bits, expected {lsh.bits}")
            entries[key] = [buckets, words, read_number(norm or 0.0, where)]
    # Bucket members without an entry: rows removed since the last mix, which Jubatus
    # leaves in their buckets (they count towards a query's candidates until then).
    stale: dict[str, list[int]] = {}
    for part, where in ((table, f"{path}[2]"), (table_diff, f"{path}[3]")):
        for bucket, members in _any_map(part or {}, where).items():
            number = read_int(bucket, f"{where} key")
            for member in read_list(members, f"{where}[{number}]"):
                name = names.get(read_int(member, f"{where}[{number}]"))
                if name is None:
                    raise DiffError(f"{where}[{number}]: unknown row id {member}")
                if entries.get(name) is None:
                    stale.setdefault(name, []).append(number)
    versions: dict[str, list[object]] = {}
    clock = 0
    extra = items[7] if len(items) > 7 else None
    if isinstance(extra, dict):
        fields = read_map(extra, f"{path}[7]")
        if fields.get("jubako") == EXTRA_VERSION:
            clock = read_int(fields.get("clock", 0), f"{path}[7].clock")
            for key, version in read_map(fields.get("versions", {}), f"{path}[7]").items():
                row_clock, owner = read_struct(version, f"{path}[7][{key!r}]", 2)
                versions[key] = [read_int(row_clock, "clock"), read_text(owner, "owner")]
    ordered = sorted(entries, key=lambda key: numbers.get(key, len(numbers)))
    rows = {
        key: [*versions.get(key, [0, ""]), entries[key]]
        for key in ordered
        if entries[key] is not None
    }
    return {
        "clock": clock,
        "rows": rows,
        "stale": {key: sorted(set(buckets)) for key, buckets in sorted(stale.items())},
    }


def _any_map(value: object, path: str) -> dict[object, object]:
    """A map with keys of any type (the buckets are keyed by number)."""
    if not isinstance(value, dict):
        raise DiffError(f"{path}: expected a map, got {type(value).__name__}")
    return value


__all__ = ["index_from_jubatus", "index_to_jubatus"]
