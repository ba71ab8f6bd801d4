"""Jubatus's row stores in a model file, read and written: the pieces of the
nearest-neighbour, recommender, anomaly and neighbour-based engines (jubatus_core 1.1.1's
layouts; :mod:`engines.common.jubatus_file` has the simpler pieces and the conventions:
readers take ``bytes`` for strings and raise ``DiffError``, a trailing array element
Jubatus skips carries what Jubako keeps beyond Jubatus's model).

- ``bit_vector``: ``[bit count, raw bytes]``, the 64-bit words big-endian, one after the
  other;
- ``column_table`` (the nearest-neighbour engines' rows): ``[keys, tuples, versions,
  columns, clock, index]`` with ``versions = [[[owner], clock], ...]`` per row,
  ``columns = [[[type, bits], values], ...]`` (a bit-vector column holds every row's words
  one after the other; ``double`` columns one number per row) and ``index = {key: row}``;
- ``inverted_index_storage`` (cosine and Euclidean scores): ``[inv, inv_diff, norms,
  norms_diff, rows]`` with ``inv = {feature: {row id: value}}``, ``norms = {row id: squared
  norm}`` and ``rows`` a key manager; master then diff;
- ``sparse_matrix_storage`` (the recommender's rows as given): ``[{row: {feature id:
  value}}, features]``;
- ``bit_index_storage`` (the recommender's ``lsh`` and ``minhash``): ``[{row: bit vector},
  {row: bit vector}]``, master then diff;
- the unlearners: ``lru`` is ``[ids, most recent first; sticky ids]``, ``random`` is
  ``[{id: position}, ids]``.

Jubako keeps its rows as one table with a version per row (the clock and owner of its last
change) where Jubatus keeps some stores as master + diff: Jubako writes everything as
master and reads master and diff together (a diff value wins; a 0 in a diff marks a removed
value), and keeps its per-row versions in the trailing element.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from engines.common.jubatus_file import (
    pack_key_manager,
    read_key_manager,
    read_number,
    read_struct,
)
from runtime.mix.mixable import (
    DiffError,
    read_counter,
    read_int,
    read_list,
    read_map,
    read_text,
)

#: jubatus_core's column types (``storage::column_type::type_name``) Jubako's tables use.
DOUBLE = 9
BIT_VECTOR = 10
#: A column: ``(type, bit count)`` (bit count 0 for a double).
Column = tuple[int, int]
#: A row of a table: ``(key, clock, owner, values)``; a bit-vector column gives its words,
#: a double column one number.
Row = tuple[str, int, str, list[object]]

#: The version of Jubako's trailing elements.
EXTRA_VERSION = 1


def words_per_value(bits: int) -> int:
    return max(bits - 1, 0) // 64 + 1 if bits else 1


# -- bit vectors ---------------------------------------------------------------------------


def pack_bit_vector(words: Sequence[int], bits: int) -> list[object]:
    return [bits, b"".join(struct.pack(">Q", int(word)) for word in words)]


def read_bit_vector(value: object, path: str) -> tuple[int, list[int]]:
    """``(bit count, words)``."""
    bits, raw = read_struct(value, path, 2)
    count = read_int(bits, f"{path}[0]")
    if not isinstance(raw, bytes) or len(raw) != 8 * words_per_value(count):
        raise DiffError(f"{path}[1]: expected {words_per_value(count)} words of 8 bytes")
    return count, [word for (word,) in struct.iter_unpack(">Q", raw)]


# -- column tables -------------------------------------------------------------------------


def pack_column_table(rows: Sequence[Row], clock: int, columns: Sequence[Column]) -> list[object]:
    """``rows`` (values per column, concatenated) as a ``column_table``."""
    data: list[list[object]] = [[] for _ in columns]
    for key, _, _, values in rows:
        at = 0
        for i, (kind, bits) in enumerate(columns):
            width = words_per_value(bits) if kind == BIT_VECTOR else 1
            if at + width > len(values):
                raise ValueError(f"row {key!r}: {len(values)} values for the columns")
            data[i].extend(values[at : at + width])
            at += width
    return [
        [key for key, _, _, _ in rows],
        len(rows),
        [[[owner], row_clock] for _, row_clock, owner, _ in rows],
        [[[kind, bits], column] for (kind, bits), column in zip(columns, data, strict=True)],
        clock,
        {key: i for i, (key, _, _, _) in enumerate(rows)},
    ]


def read_column_table(
    value: object, columns: Sequence[Column], path: str, *, infinite: bool = False
) -> tuple[list[Row], int]:
    """The rows (in table order) and the clock; the schema must be ``columns``;
    ``infinite``: a double may be +inf (see :func:`read_number`)."""
    keys, _, versions, stored, clock, index = read_struct(value, path, 6)
    schema: list[Column] = []
    data: list[list[object]] = []
    for i, column in enumerate(read_list(stored or [], f"{path}[3]")):
        kind, stored_values = read_struct(column, f"{path}[3][{i}]", 2)
        type_id, bits = read_struct(kind, f"{path}[3][{i}][0]", 2)
        schema.append((read_int(type_id, f"{path}[3][{i}][0][0]"), read_int(bits or 0, "bits")))
        data.append(read_list(stored_values or [], f"{path}[3][{i}][1]"))
    if schema != list(columns):
        raise DiffError(f"{path}[3]: columns {schema} (type, bits), expected {list(columns)}")
    names = [read_text(key, f"{path}[0]") for key in read_list(keys or [], f"{path}[0]")]
    version_list = read_list(versions or [], f"{path}[2]")
    if len(version_list) != len(names):
        raise DiffError(f"{path}[2]: {len(version_list)} versions for {len(names)} rows")
    positions = {
        read_text(k, f"{path}[5] key"): read_int(v, f"{path}[5]")
        for k, v in read_map(index or {}, f"{path}[5]").items()
    }
    rows: list[Row] = []
    for n, name in enumerate(names):
        at = positions.get(name, n)
        values: list[object] = []
        for (kind, bits), column in zip(columns, data, strict=True):
            width = words_per_value(bits) if kind == BIT_VECTOR else 1
            part = column[at * width : (at + 1) * width]
            if len(part) != width:
                raise DiffError(f"{path}[3]: a column is shorter than its rows")
            if kind == BIT_VECTOR:
                values.extend(read_int(word, f"{path}[3] word") for word in part)
            else:
                values.extend(
                    read_number(number, f"{path}[3] value", infinite=infinite) for number in part
                )
        owner, row_clock = read_struct(version_list[n], f"{path}[2][{n}]", 2)
        (owner_name,) = read_struct(owner if owner is not None else [], f"{path}[2][{n}][0]", 1)
        rows.append(
            (
                name,
                read_counter(row_clock or 0, f"{path}[2][{n}][1]"),
                read_text(owner_name or b"", f"{path}[2][{n}][0][0]"),
                values,
            )
        )
    return rows, read_counter(clock or 0, f"{path}[4]")


def table_rows(table: Mapping[str, object]) -> list[Row]:
    """A ``RowTable.pack()`` value (``{"clock", "rows": [[key, clock, owner, data]]}``) as
    rows."""
    out: list[Row] = []
    for item in table["rows"]:  # type: ignore[attr-defined]
        key, clock, owner, data = item
        out.append((key, clock, owner, list(data)))
    return out


def rows_table(rows: Sequence[Row], clock: int) -> dict[str, object]:
    """Rows back in ``RowTable.pack()``'s form."""
    return {"clock": clock, "rows": [[key, c, owner, values] for key, c, owner, values in rows]}


# -- inverted index ------------------------------------------------------------------------


def pack_inverted_index(index: Mapping[str, object]) -> list[object]:
    """An ``InvertedIndex.pack()`` value (``{"clock", "rows": {key: [clock, owner,
    {feature: value}]}}``, rows in their numbers' order) as an ``inverted_index_storage``
    (everything as master; squared norms summed feature after feature)."""
    rows = index["rows"]
    assert isinstance(rows, dict)
    keys = list(rows)
    inv: dict[str, dict[int, float]] = {}
    norms: dict[int, float] = {}
    versions: dict[str, list[object]] = {}
    for number, key in enumerate(keys):
        clock, owner, values = rows[key]
        versions[key] = [clock, owner]
        norm = 0.0
        for feature, value in values.items():
            inv.setdefault(feature, {})[number] = value
            norm += value * value
        if norm != 0.0:
            norms[number] = norm
    return [
        inv,
        {},
        norms,
        {},
        pack_key_manager(keys),
        {"jubako": EXTRA_VERSION, "clock": index["clock"], "versions": versions},
    ]


def read_inverted_index(value: object, path: str) -> dict[str, object]:
    """An ``inverted_index_storage`` as ``InvertedIndex.unpack_into()`` takes it (rows by
    id, master and diff together, zeros left out)."""
    items = read_list(value, path)
    inv, inv_diff, _, _, row2id = read_struct(items, path, 5)
    names = read_key_manager(row2id, f"{path}[4]")
    values: dict[int, dict[str, float]] = {}
    for part, where in ((inv, f"{path}[0]"), (inv_diff, f"{path}[1]")):
        for feature, column in read_map(part or {}, where).items():
            if not isinstance(column, dict):
                raise DiffError(f"{where}[{feature!r}]: expected a map")
            for number, number_value in column.items():
                row = read_int(number, f"{where}[{feature!r}] key")
                if row not in names:
                    raise DiffError(f"{where}[{feature!r}]: unknown row id {row}")
                values.setdefault(row, {})[feature] = read_number(number_value, where)
    versions, clock = _extra_versions(items[5] if len(items) > 5 else None, f"{path}[5]")
    rows: dict[str, object] = {}
    for row in sorted(values):
        key = names[row]
        kept = {feature: v for feature, v in values[row].items() if v != 0.0}
        if kept:
            rows[key] = [*versions.get(key, (0, "")), kept]
    return {"clock": clock, "rows": rows}


def _extra_versions(extra: object, path: str) -> tuple[dict[str, tuple[int, str]], int]:
    """Per-row versions and the clock from Jubako's trailing element (none: all 0)."""
    if not isinstance(extra, dict):
        return {}, 0
    fields = read_map(extra, path)
    if fields.get("jubako") != EXTRA_VERSION:
        return {}, 0
    versions = {}
    for key, version in read_map(fields.get("versions", {}), f"{path}.versions").items():
        clock, owner = read_struct(version, f"{path}.versions[{key!r}]", 2)
        versions[key] = (read_counter(clock, "clock"), read_text(owner, "owner"))
    return versions, read_counter(fields.get("clock", 0), f"{path}.clock")


# -- the recommender's rows as given -------------------------------------------------------


def pack_sparse_matrix(original: Mapping[str, object]) -> list[object]:
    """``OriginalRows.pack()`` (``{"features": [...], "rows": {row: {feature: value}}}``)
    as a ``sparse_matrix_storage``."""
    features = original["features"]
    rows = original["rows"]
    assert isinstance(features, list) and isinstance(rows, dict)
    ids = {feature: i for i, feature in enumerate(features)}
    return [
        {key: {ids[f]: v for f, v in row.items()} for key, row in rows.items()},
        pack_key_manager(features),
    ]


def read_sparse_matrix(value: object, path: str) -> dict[str, object]:
    tbl, column2id = read_struct(value, path, 2)
    names = read_key_manager(column2id, f"{path}[1]")
    rows: dict[str, dict[str, float]] = {}
    for key, row in read_map(tbl or {}, f"{path}[0]").items():
        if not isinstance(row, dict):
            raise DiffError(f"{path}[0][{key!r}]: expected a map")
        values = {}
        for number, number_value in row.items():
            feature = names.get(read_int(number, f"{path}[0][{key!r}] key"))
            if feature is None:
                raise DiffError(f"{path}[0][{key!r}]: unknown feature id {number}")
            values[feature] = read_number(number_value, f"{path}[0][{key!r}]")
        rows[key] = values
    return {"features": [names[i] for i in sorted(names)], "rows": rows}


# -- the recommender's lsh and minhash -----------------------------------------------------


def pack_bit_index(rows: Sequence[Row], clock: int, bits: int) -> list[object]:
    """Rows of words as a ``bit_index_storage`` (all master), versions trailing."""
    return [
        {key: pack_bit_vector(values, bits) for key, _, _, values in rows},  # type: ignore[arg-type]
        {},
        {
            "jubako": EXTRA_VERSION,
            "clock": clock,
            "versions": {key: [c, owner] for key, c, owner, _ in rows},
        },
    ]


def read_bit_index(value: object, bits: int, path: str) -> tuple[list[Row], int]:
    items = read_list(value, path)
    master, diff = read_struct(items, path, 2)
    found: dict[str, list[object]] = {}
    for part, where in ((master, f"{path}[0]"), (diff, f"{path}[1]")):
        for key, vector in read_map(part or {}, where).items():
            count, words = read_bit_vector(vector, f"{where}[{key!r}]")
            if count != bits:
                raise DiffError(f"{where}[{key!r}]: {count} bits, expected {bits}")
            found[key] = list(words)
    versions, clock = _extra_versions(items[2] if len(items) > 2 else None, f"{path}[2]")
    return [(key, *versions.get(key, (0, "")), words) for key, words in found.items()], clock


# -- unlearners ----------------------------------------------------------------------------


def pack_unlearner(name: str, packed: Mapping[str, object]) -> list[object]:
    """An unlearner's ``pack()`` in Jubatus's layout (``lru`` or ``random``)."""
    if name == "lru":
        recent = packed["recent"]
        assert isinstance(recent, list)
        return [list(reversed(recent)), list(packed["sticky"])]  # type: ignore[call-overload]
    ids = packed["ids"]
    assert isinstance(ids, list)
    return [
        {key: i for i, key in enumerate(ids)},
        list(ids),
        {"jubako": EXTRA_VERSION, "random": packed["random"]},
    ]


def read_unlearner(name: str, value: object, path: str) -> dict[str, object]:
    """An unlearner in Jubatus's layout as its ``unpack()`` takes it; a ``random`` one from
    Jubatus has no random state (``"random": None``: the caller puts the unlearner's own)."""
    if name == "lru":
        lru, sticky = read_struct(value, path, 2)
        recent = [read_text(k, f"{path}[0]") for k in read_list(lru or [], f"{path}[0]")]
        return {
            "recent": list(reversed(recent)),
            "sticky": [read_text(k, f"{path}[1]") for k in read_list(sticky or [], f"{path}[1]")],
        }
    items = read_list(value, path)
    _, ids = read_struct(items, path, 2)
    extra = items[2] if len(items) > 2 else None
    state = None
    if isinstance(extra, dict):
        fields = read_map(extra, f"{path}[2]")
        if fields.get("jubako") == EXTRA_VERSION:
            state = fields.get("random")
    return {
        "ids": [read_text(k, f"{path}[1]") for k in read_list(ids or [], f"{path}[1]")],
        "random": state,
    }


def nn_columns(method: str, hash_num: int) -> list[Column]:
    """The columns of a nearest-neighbour engine's table: the hash bits, and for
    ``euclid_lsh`` the row's norm."""
    columns: list[Column] = [(BIT_VECTOR, hash_num)]
    if method == "euclid_lsh":
        columns.append((DOUBLE, 0))
    return columns


__all__ = [
    "BIT_VECTOR",
    "DOUBLE",
    "Column",
    "Row",
    "nn_columns",
    "pack_bit_index",
    "pack_bit_vector",
    "pack_column_table",
    "pack_inverted_index",
    "pack_sparse_matrix",
    "pack_unlearner",
    "read_bit_index",
    "read_bit_vector",
    "read_column_table",
    "read_inverted_index",
    "read_sparse_matrix",
    "read_unlearner",
    "rows_table",
    "table_rows",
    "words_per_value",
]
