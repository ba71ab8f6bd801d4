"""Per-label weights as arrays, with Jubatus's master + diff split, and their mix.

A linear model's numbers live in flat ``array('d')`` tables with one row per feature id and
one column per label slot (``stride`` columns, some of them free), so that training reads
and writes single numbers at Python speed while bulk work (a mix, a batch of
classifications, a load) runs as numpy operations on views of the same memory:

- ``W``: the weight a label gives a feature (master + diff): what scoring reads;
- ``V``: its variance, 1 where neither part has one (CW, AROW and NHERD);
- ``WM``/``WD``, ``VM``/``VD``: the *master* part (agreed at the last mix) and the *diff*
  (learned here since), NaN where a part has no value. A missing weight counts as 0 and a
  missing variance as 1, as Jubatus's storage counts them.

``W`` and ``V`` are derived, kept up to date by every write: ``W = m + d`` with a missing
part as 0, and ``V = (m or 0) + (d or 0)``, or 1 when both are missing: the very
expressions the engine computed per lookup when it kept dicts, so every score and every
update is the same to the bit. Values are 64-bit floats for the same reason (Jubatus keeps
32-bit ones: answers agree with Jubatus's to 1e-6, not exactly).

Row 0 is the *unknown feature*: all zeros, never written. A feature a model does not know
is scored through it (0 times its value, as a missing weight always was).

:class:`FeatureIndex` maps feature names to row ids; it only grows, so the copies of a
model made for readers can share it (a copy knows how many rows it holds: a name added
after it was made reads as unknown there). :func:`as_float32` rounds like Jubatus.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.common import kernels
from runtime.mix.mixable import DiffError, read_float, read_map

#: label -> feature -> value (the shape model files and old diffs use).
Table = dict[str, dict[str, float]]
Vector = Mapping[str, float]
FloatArray = npt.NDArray[np.float64]

NAN = math.nan


def storage_status(
    standalone: bool, *, every: int, master: int, diff: int, version: int
) -> dict[str, str]:
    """The status keys of Jubatus's linear storage: a standalone server's
    ``local_storage`` (``num_features``: every feature with a weight), a cluster member's
    ``local_storage_mixture`` (features mixed, features learned since, the model's
    version). Jubatus's servers pick the first when standalone."""
    if standalone:
        return {"num_features": str(every), "storage": "local_storage"}
    return {
        "num_features": str(master),
        "num_features_diff": str(diff),
        "model_version": str(version),
        "storage": "local_storage_mixture",
    }


def as_float32(value: float) -> float:
    """``value`` rounded to the nearest 32-bit float (how Jubatus keeps its parameters)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


class FeatureIndex:
    """Feature names and their row ids; id 0 is the unknown feature. It only grows."""

    __slots__ = ("ids", "names")

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = [""]

    def __len__(self) -> int:
        """Rows in use, the unknown feature included."""
        return len(self.names)

    def intern(self, name: str) -> int:
        """The id of ``name``, given the next free one if it is new."""
        fid = self.ids.get(name)
        if fid is None:
            fid = len(self.names)
            self.names.append(name)
            self.ids[name] = fid
        return fid

    def intern_all(self, names: Iterable[str]) -> list[int]:
        intern = self.intern
        return [intern(name) for name in names]


#: What a new row or column holds, per table.
_FILL = {"W": 0.0, "V": 1.0, "WM": NAN, "WD": NAN, "VM": NAN, "VD": NAN}
TABLES = tuple(_FILL)


def copy_rows(pairs: Iterable[tuple[array[Any], array[Any], int]], ids: list[int]) -> None:
    """Rows ``ids`` of each ``(destination, source, stride)`` array pair (``stride`` items a
    row) copied from source to destination: by the compiled kernel when it is built."""
    compiled = kernels.compiled
    if compiled is not None:  # memcpy per row
        compiled.copy_rows(list(pairs), ids)
        return
    for mine, theirs, stride in pairs:
        for fid in ids:
            start = fid * stride
            mine[start : start + stride] = theirs[start : start + stride]


class WeightArrays:
    """The six tables of a linear model (see the module docstring): ``capacity`` rows of
    ``stride`` label slots each, stored row after row."""

    __slots__ = ("V", "VD", "VM", "W", "WD", "WM", "_views", "capacity", "stride")

    def __init__(self, stride: int = 2, capacity: int = 64) -> None:
        self.stride = max(stride, 2)  # at least two columns: see ``score_batch``
        self.capacity = max(capacity, 1)
        size = self.stride * self.capacity
        self.W = array("d", [0.0]) * size
        self.V = array("d", [1.0]) * size
        self.WM = array("d", [NAN]) * size
        self.WD = array("d", [NAN]) * size
        self.VM = array("d", [NAN]) * size
        self.VD = array("d", [NAN]) * size
        self._views: dict[str, FloatArray] | None = None

    def table(self, name: str) -> array[float]:
        value: array[float] = getattr(self, name)
        return value

    def views(self) -> dict[str, FloatArray]:
        """numpy views (``capacity`` by ``stride``) of the tables, sharing their memory.
        While one is alive the tables cannot grow: drop them before :meth:`ensure_rows`."""
        views = self._views
        if views is None:
            views = {
                name: np.frombuffer(self.table(name), dtype=np.float64).reshape(
                    self.capacity, self.stride
                )
                for name in TABLES
            }
            self._views = views
        return views

    def ensure_rows(self, rows: int) -> None:
        """Room for ``rows`` rows (doubling)."""
        if rows <= self.capacity:
            return
        capacity = max(rows, self.capacity * 2)
        extra = (capacity - self.capacity) * self.stride
        self._views = None
        for name in TABLES:
            filler = array("d", [_FILL[name]]) * extra
            table = self.table(name)
            try:
                table.extend(filler)
            except BufferError:  # someone still holds a view: grow a copy instead
                grown = array("d", table)
                grown.extend(filler)
                setattr(self, name, grown)
        self.capacity = capacity

    def ensure_slots(self, slots: int) -> None:
        """Room for ``slots`` label columns (doubling; rows are laid out again)."""
        if slots <= self.stride:
            return
        stride = max(slots, self.stride * 2)
        old = self.views()
        self._views = None
        for name in TABLES:
            grown = np.full((self.capacity, stride), _FILL[name], dtype=np.float64)
            grown[:, : self.stride] = old[name]
            setattr(self, name, array("d", grown.tobytes()))
        self.stride = stride
        del old

    def reset_slot(self, slot: int) -> None:
        """Make column ``slot`` as new (a label deleted, or a slot given to a new label)."""
        views = self.views()
        for name in TABLES:
            views[name][:, slot] = _FILL[name]

    def copy(self) -> WeightArrays:
        other = WeightArrays.__new__(WeightArrays)
        other.stride = self.stride
        other.capacity = self.capacity
        for name in TABLES:
            setattr(other, name, array("d", self.table(name)))
        other._views = None
        return other

    def copy_rows_from(
        self,
        source: WeightArrays,
        rows: Iterable[int],
        also: Sequence[tuple[array[Any], array[Any], int]] = (),
    ) -> None:
        """Take ``rows`` from ``source`` (same stride; this copy has room for them), and
        the same rows of the ``also`` pairs (as :func:`copy_rows` takes them): one kernel
        call for all of them."""
        stride = self.stride
        ids = rows if type(rows) is list else list(rows)
        if not ids:
            return
        if kernels.compiled is not None or len(ids) <= 16:
            copy_rows(
                [
                    (self.W, source.W, stride),
                    (self.V, source.V, stride),
                    (self.WM, source.WM, stride),
                    (self.WD, source.WD, stride),
                    (self.VM, source.VM, stride),
                    (self.VD, source.VD, stride),
                    *also,
                ],
                ids,
            )
            return
        index = np.fromiter(ids, dtype=np.intp, count=len(ids))
        mine_views, their_views = self.views(), source.views()
        for name in TABLES:
            mine_views[name][index] = their_views[name][index]
        copy_rows(also, ids)

    # -- derived values ----------------------------------------------------------------------

    def refresh(self, rows: Any, slots: Any = slice(None)) -> None:
        """Recompute ``W`` and ``V`` from the parts for ``rows`` by ``slots`` (numpy
        indexes), as :meth:`set_weight` and :meth:`set_variance` compute them."""
        v = self.views()
        wm, wd = v["WM"][rows, slots], v["WD"][rows, slots]
        v["W"][rows, slots] = np.where(np.isnan(wm), 0.0, wm) + np.where(np.isnan(wd), 0.0, wd)
        vm, vd = v["VM"][rows, slots], v["VD"][rows, slots]
        missing = np.isnan(vm) & np.isnan(vd)
        # (m or 0.0) + (d or 0.0): a zero of either sign, or a missing part, counts as +0.0
        vm0 = np.where(np.isnan(vm) | (vm == 0.0), 0.0, vm)
        vd0 = np.where(np.isnan(vd) | (vd == 0.0), 0.0, vd)
        v["V"][rows, slots] = np.where(missing, 1.0, vm0 + vd0)

    # -- single values (training) -------------------------------------------------------------

    def set_weight(self, i: int, value: float) -> None:
        """The weight at flat position ``i`` becomes ``value``: diff = value - master."""
        m = self.WM[i]
        if m != m:
            m = 0.0
        d = value - m
        self.WD[i] = d
        self.W[i] = m + d

    def add_weight(self, i: int, delta: float) -> None:
        """Add ``delta`` to the diff of the weight at flat position ``i``."""
        d = self.WD[i]
        d = (0.0 if d != d else d) + delta
        self.WD[i] = d
        m = self.WM[i]
        self.W[i] = (0.0 if m != m else m) + d

    def set_variance(self, i: int, value: float) -> None:
        m = self.VM[i]
        if m != m:
            m = 0.0
        d = value - m
        self.VD[i] = d
        self.V[i] = (m or 0.0) + (d or 0.0)


def read_table(value: object, path: str) -> Table:
    """A ``label -> feature -> number`` map, checked; raises :class:`DiffError`."""
    table: Table = {}
    for label, row in read_map(value, path).items():
        fast = _plain_row(row)
        if fast is not None:
            table[label] = fast
            continue
        where = f"{path}[{label!r}]"
        table[label] = {
            feature: read_float(number, f"{where}[{feature!r}]")
            for feature, number in read_map(row, where).items()
        }
    return table


def _plain_row(row: object) -> dict[str, float] | None:
    """A copy of ``row`` when it is already ``str -> finite float`` (the common case, checked
    without building a path per value); ``None`` sends it down the slow, explaining path."""
    if type(row) is not dict:
        return None
    if not all(type(key) is str for key in row):
        return None
    if not all(type(number) is float and number - number == 0.0 for number in row.values()):
        return None
    return dict(row)


def table_rows(
    table: Table, index: FeatureIndex
) -> tuple[list[str], list[int], list[float], list[str]]:
    """A table flattened for bulk writes: ``(labels, row ids, values, label per value)``
    with feature names interned in ``index`` (order kept)."""
    labels = list(table)
    fids: list[int] = []
    values: list[float] = []
    owners: list[str] = []
    intern = index.intern
    for label, row in table.items():
        fids.extend(intern(name) for name in row)
        values.extend(row.values())
        owners.extend([label] * len(row))
    return labels, fids, values, owners


def check_finite(values: FloatArray, path: str) -> None:
    """DiffError unless every present (non-NaN) value is finite."""
    present = values[~np.isnan(values)]
    if present.size and not np.isfinite(present).all():
        raise DiffError(f"{path}: values must be finite")


__all__ = [
    "NAN",
    "TABLES",
    "FeatureIndex",
    "Table",
    "Vector",
    "WeightArrays",
    "as_float32",
    "check_finite",
    "read_table",
    "table_rows",
]
