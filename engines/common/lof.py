"""Jubatus's local outlier factor: ``lof`` over a recommender method and ``light_lof`` over
a nearest-neighbour method, computed as Jubatus computes them.

Both keep, per row, its k-distance (the distance to its ``nearest_neighbor_num``-th
neighbour, the row itself counted first) and its local reachability density
``lrd = k' / Σ max(distance(p, o), kdist(o))`` over its ``k' <= k`` neighbours ``o``
(``lof`` adds 1e-15 to the sum; ``light_lof`` gives ∞ for a zero sum). When a row is set,
the rows that had it, or now have it, among their ``reverse_nearest_neighbor_num`` nearest
are brought up to date. The score of a point is ``mean(lrd(o)) / lrd(p)`` over its
neighbours (1 when both are infinite; 1 with no neighbours and lrd 0, else ∞).

- ``lof``: ``update_row`` merges features into a row (the recommender's ``update_row``),
  ``remove_row`` forgets it; rows and scores mix (removals too).
- ``light_lof``: only ``set_row`` (a whole row, replacing an older one); ``clear_row`` and
  ``update`` are refused, as in Jubatus; rows and scores mix as versioned rows.
- ``ignore_kth_same_point``: a point whose ``k - 1`` nearest are all at distance 0 is not
  stored (counted in ``num_ignored``); its score is computed as if it were queried.
- ``unlearner`` (``lru``, ``random``): at most ``max_size`` rows; a forgotten row's
  neighbours are brought up to date.

Thread-safety is the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Sequence

import numpy as np

from engines.common.config import Params
from engines.common.inverted_index import InvertedIndex
from engines.common.nearest_neighbor import (
    NearestNeighborIndex,
    RowTable,
    Scored,
    create_nearest_neighbor,
)
from engines.common.recommender_index import RecommenderIndex
from engines.common.unlearner import Unlearner, create_unlearner
from engines.common.versions import ChangeLog, merge_rows
from runtime.errors import ConfigError
from runtime.mix.mixable import DiffError, read_float, read_int, read_list, read_map, read_text

Features = Sequence[tuple[str, float]]

_KEYS = (
    "nearest_neighbor_num",
    "reverse_nearest_neighbor_num",
    "ignore_kth_same_point",
    "method",
    "parameter",
    "unlearner",
    "unlearner_parameter",
)


def merge_vector(row: Sequence[tuple[str, float]], diff: Features) -> list[tuple[str, float]]:
    """Jubatus's ``merge_vector``: ``diff``'s values replace or follow ``row``'s."""
    merged = list(row)
    positions = {name: i for i, (name, _) in enumerate(merged)}
    for name, value in diff:
        position = positions.get(name)
        if position is None:
            positions[name] = len(merged)
            merged.append((name, value))
        else:
            merged[position] = (name, value)
    return merged


def calculate_lof(lrd: float, neighbour_lrds: Iterable[float]) -> float:
    values = list(neighbour_lrds)
    if not values:
        return 1.0 if lrd == 0 else math.inf
    total = 0.0
    for value in values:
        total += value
    if math.isinf(total) and math.isinf(lrd):
        return 1.0
    try:
        return total / (len(values) * lrd)
    except ZeroDivisionError:
        return math.inf if total > 0 else math.nan


class _Lof:
    """What ``lof`` and ``light_lof`` share: the config and the scoring."""

    def __init__(self, params: Params) -> None:
        params.only(_KEYS)
        self.k = params.integer("nearest_neighbor_num", 10)
        self.reverse_k = params.integer("reverse_nearest_neighbor_num", 30)
        self.ignore_kth = params.boolean("ignore_kth_same_point", False)
        params.check(self.k >= 2, "nearest_neighbor_num", "must be >= 2")
        params.check(
            self.k <= self.reverse_k,
            "reverse_nearest_neighbor_num",
            "must be >= nearest_neighbor_num",
        )
        self.method = params.text("method")
        self.parameter = params.raw("parameter")
        self.unlearner: Unlearner | None = create_unlearner(params)
        self.ignored = 0
        #: The ``reverse_nearest_neighbor_num`` nearest rows that storing a row found for it,
        #: while nothing else has changed: ``score_of`` that row takes its nearest from them.
        self._just_stored: tuple[str, Scored] | None = None

    def kdist(self, key: str) -> float:
        raise NotImplementedError

    def lrd(self, key: str) -> float:
        raise NotImplementedError

    def neighbours(self, features: Features, count: int) -> Scored:
        raise NotImplementedError

    def neighbours_of(self, key: str, count: int) -> Scored:
        raise NotImplementedError

    def _lrd_of(self, neighbours: Scored) -> tuple[float, list[float]]:
        if not neighbours:
            return math.inf, []
        lrds = [self.lrd(key) for key, _ in neighbours]
        total = 0.0
        for key, distance in neighbours:
            total += max(distance, self.kdist(key))
        if total == 0:
            return math.inf, lrds
        return len(neighbours) / total, lrds

    def score(self, features: Features) -> float:
        lrd, lrds = self._lrd_of(self.neighbours(features, self.k))
        return calculate_lof(lrd, lrds)

    def _stored(self, key: str, found: Scored) -> None:
        """Keep what storing ``key`` found, when its ``k + 1`` nearest are a prefix of it:
        the ranking is by distance then row (a total order), so the ``k + 1`` nearest are
        the first ``k + 1`` of the ``reverse_k`` nearest unless a NaN distance is about."""
        self._just_stored = None
        if self.prefix_is_nearest and len(found) > self.k and all(d == d for _, d in found):
            self._just_stored = (key, found)

    prefix_is_nearest = True

    def score_of(self, key: str) -> float:
        just, self._just_stored = self._just_stored, None
        if just is not None and just[0] == key:
            neighbours = just[1][: self.k + 1]
        else:
            neighbours = self.neighbours_of(key, self.k + 1)
        for i, (other, _) in enumerate(neighbours):
            if other == key:
                neighbours[i] = neighbours[-1]
                neighbours.pop()
                break
        del neighbours[self.k :]
        lrd, lrds = self._lrd_of(neighbours)
        return calculate_lof(lrd, lrds)

    def _is_kth_same(self, features: Features) -> bool:
        found = self.neighbours(features, self.k - 1)
        return len(found) == self.k - 1 and found[-1][1] == 0


class _Nearest:
    """Each row's ``k`` nearest over ``inverted_index_euclid`` (what
    ``neighbor_row_from_id(row, k)`` answers), kept while rows are only added.

    A new row ``x`` enters row ``r``'s list when it ranks among its ``k`` nearest by
    (distance, later row first). ``r``'s distance to ``x`` is the one ``r``'s own query
    gives: ``√max(0, |r|² + |x|² - 2 dot)`` with ``|r|²`` as that query summed it, ``|x|²``
    the index's, and ``dot`` from ``x``'s query. That dot is ``r``'s bit for bit: both
    add the same products ``r_f x_f`` in the same order, rows' features being listed in
    one order (the recommender's first-seen column order), as long as no posting holds a
    leftover 0 for a row (``irregular``: a removal or rows applied from a peer). Any write
    other than a new row, or a NaN distance, forgets the lists concerned."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.index: InvertedIndex | None = None
        self.generation = -1
        self.lists: dict[int, list[tuple[float, int]]] = {}
        self._reset_arrays(16)

    def _reset_arrays(self, capacity: int) -> None:
        self.query_norms = np.zeros(capacity, dtype=np.float64)
        self.worst = np.zeros(capacity, dtype=np.float64)
        self.worst_number = np.zeros(capacity, dtype=np.int64)
        self.full = np.zeros(capacity, dtype=bool)
        self.kept = np.zeros(capacity, dtype=bool)

    def _grow(self, size: int) -> None:
        capacity = len(self.kept)
        if size <= capacity:
            return
        capacity = max(size, 2 * capacity)
        for name in ("query_norms", "worst", "worst_number", "full", "kept"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def usable(self, index: InvertedIndex) -> bool:
        """Whether the lists may be read and kept; forgets them if ``index`` changed."""
        if index is not self.index or index.generation != self.generation:
            self.index = index
            self.generation = index.generation
            if self.lists:
                self.lists = {}
                self._reset_arrays(16)
        return not index.irregular

    def keep(self, number: int, found: list[tuple[float, int]], query_norm: float) -> None:
        self._grow(number + 1)
        self.lists[number] = found
        self.query_norms[number] = query_norm
        self.kept[number] = True
        self._note(number, found)

    def _note(self, number: int, found: list[tuple[float, int]]) -> None:
        self.full[number] = len(found) >= self.k
        if found:
            self.worst[number], self.worst_number[number] = found[-1]

    def _forget(self, numbers: Iterable[int]) -> None:
        for number in numbers:
            self.lists.pop(number, None)
            self.kept[number] = False

    def added(self, index: InvertedIndex, number: int, query: Features, writes: int) -> None:
        """Row ``number`` (new, ``query`` its features) was just written by ``writes`` sets
        of values; ``self.generation`` was the index's before them."""
        if (
            index is not self.index
            or index.generation != self.generation + writes
            or index.irregular
            or not self.lists
        ):
            self.usable(index)
            return
        self.generation = index.generation
        self._grow(len(index.keys))
        norm = float(index._norm_array[number])
        if norm == 0.0:  # not among anyone's candidates
            return
        rows = np.flatnonzero(self.kept[: len(index.keys)])
        if len(rows) == 0:
            return
        dots, _ = index._dots(query)
        squared = self.query_norms[rows] + norm - 2 * dots[rows]
        distances = np.sqrt(np.maximum(0.0, squared))
        lost = np.isnan(distances)
        if lost.any():
            self._forget(rows[lost].tolist())
        worst = self.worst[rows]
        enters = ~self.full[rows] | (distances < worst)
        enters |= (distances == worst) & (number > self.worst_number[rows])
        enters &= ~lost
        k = self.k
        for row, distance in zip(rows[enters].tolist(), distances[enters].tolist(), strict=True):
            found = self.lists[row]
            at = 0
            for other_distance, other in found:
                if other_distance > distance or (other_distance == distance and other < number):
                    break
                at += 1
            found.insert(at, (distance, number))
            del found[k:]
            self._note(row, found)


class Lof(_Lof):
    """``lof``: LOF over a recommender method (its rows, its distances)."""

    updatable = True

    def __init__(self, params: Params, owner: str) -> None:
        super().__init__(params)
        self.engine = RecommenderIndex(
            self.method, self.parameter, owner, params.where("parameter")
        )
        self.kdists: dict[str, float] = {}
        self.lrds: dict[str, float] = {}
        self.log = ChangeLog(owner)
        #: Rows in the model as of the last mix or load (Jubatus's master table: its
        #: ``num_id_master``; a standalone server's stays 0, as Jubatus's does).
        self.master_rows = 0
        # inverted_index_euclid ranks every row by (distance, row), a NaN distance showing;
        # cosine clamps a NaN to -1, and the hashed methods' candidates may depend on how
        # many are asked
        self.prefix_is_nearest = self.engine.method == "inverted_index_euclid"
        self.nearest: _Nearest | None = None
        if self.prefix_is_nearest and not self.engine.ignore_orthogonal:
            self.nearest = _Nearest(self.k)
        if self.unlearner is not None:
            self.unlearner.forget = self.remove_row

    def kdist(self, key: str) -> float:
        try:
            return self.kdists[key]
        except KeyError:
            raise ValueError(f"specified row does not exist: row id: {key}") from None

    def lrd(self, key: str) -> float:
        try:
            return self.lrds[key]
        except KeyError:
            raise ValueError(f"specified row does not exist: row id: {key}") from None

    def neighbours(self, features: Features, count: int) -> Scored:
        return self.engine.neighbor_row_from_features(features, count)

    def neighbours_of(self, key: str, count: int) -> Scored:
        return self.engine.neighbor_row_from_id(key, count)

    def _collect(self, key: str, into: set[str]) -> Scored:
        found = self.neighbours_of(key, self.reverse_k)
        into.update(k for k, _ in found)
        return found

    def _row_update(self, key: str, diff: Features, pending: set[str]) -> bool:
        self._just_stored = None
        if self.ignore_kth and self._is_kth_same(merge_vector(self.engine.decode(key), diff)):
            self.ignored += 1
            return False
        if self.engine.decode(key):
            self._collect(key, pending)
        inverted = self.engine.inverted
        nearest = self.nearest
        new = nearest is not None and inverted is not None and key not in inverted.ids
        self.engine.update_row(key, diff)
        if new:
            assert nearest is not None and inverted is not None
            number = inverted.ids.get(key)  # none for an empty row
            if number is not None:
                nearest.added(inverted, number, self.engine.original.get(key), len(diff))
        self._stored(key, self._collect(key, pending))
        pending.add(key)
        return True

    def update_row(self, key: str, diff: Features) -> bool:
        unlearner = self.unlearner
        if unlearner is not None and not unlearner.can_touch(key):
            raise ValueError(
                "cannot add new row as number of sticky rows reached the maximum size of "
                f"unlearner: {key}"
            )
        pending: set[str] = set()
        updated = self._row_update(key, diff, pending)
        if updated:
            self._update_entries(pending)
            if unlearner is not None:
                unlearner.touch(key)
        return updated

    def update_bulk(self, rows: Sequence[tuple[str, Features]]) -> list[str]:
        pending: set[str] = set()
        updated = []
        for key, features in rows:
            if self.unlearner is not None and not self.unlearner.can_touch(key):
                continue
            if self._row_update(key, features, pending):
                if self.unlearner is not None:
                    self.unlearner.touch(key)
                updated.append(key)
        self._update_entries(pending)
        return updated

    def set_row(self, key: str, features: Features) -> bool:
        self.remove_row(key)
        return self.update_row(key, features)

    def score_with(self, key: str, features: Features) -> float:
        merged = merge_vector(self.engine.decode(key), features)
        return self.score(merged)

    def remove_row(self, key: str) -> None:
        self._just_stored = None
        self.kdists.pop(key, None)
        self.lrds.pop(key, None)
        self.log.touch(key)
        self.engine.clear_row(key)

    def clear_row(self, key: str) -> None:
        self.remove_row(key)
        if self.unlearner is not None:
            self.unlearner.remove(key)

    def _update_entries(self, keys: Iterable[str]) -> None:
        order = list(keys)
        rows = self._nearest_of(order)
        kdists = self.kdists
        # Every row's kdist first, a row with no neighbours included (0.0, the entry Jubatus
        # makes for it), so that the lrds below do not depend on the order of ``keys``: a
        # set, and Python's string hashing differs between processes. Jubatus makes that
        # entry in its second pass, so there a row that has such a row among its neighbours
        # fails with "row does not exist" or not, by the order of its hash set; Jubako
        # answers as the order that does not fail.
        for key, found in rows.items():
            if found:
                self.kdists[key] = found[-1][1]
                self.lrds.setdefault(key, 1.0)
            else:
                self.kdists.setdefault(key, 0.0)
        for key, found in rows.items():
            if not found:
                self.lrds[key] = 1.0
            else:
                length = min(len(found), self.k)
                total = 0.0
                for other, distance in found[:length]:
                    try:
                        other_kdist = kdists[other]
                    except KeyError:
                        self.kdist(other)  # raises the error
                        raise
                    # max(distance, other_kdist), as Python picks it
                    total += other_kdist if other_kdist > distance else distance
                self.lrds[key] = length / (total + 1e-15)
            self.log.touch(key)

    def _nearest_of(self, order: list[str]) -> dict[str, Scored]:
        """Each key's ``k`` nearest (``neighbor_row_from_id``), from the kept lists when
        they hold them."""
        nearest = self.nearest
        inverted = self.engine.inverted
        if nearest is None or inverted is None or not nearest.usable(inverted):
            return dict(zip(order, self.engine.neighbor_rows_from_ids(order, self.k), strict=True))
        ids = inverted.ids
        keys = inverted.keys
        lists = nearest.lists
        rows: dict[str, Scored] = {}
        missing = []
        for key in order:
            number = ids.get(key)
            kept = lists.get(number) if number is not None else None
            if kept is None:
                missing.append(key)
                rows[key] = []
            else:
                rows[key] = [(keys[n], d) for d, n in kept]
        if missing:
            get = self.engine.original.get
            found, norms, numeric = inverted.euclid_distances_with(
                [get(key) for key in missing], self.k
            )
            for key, scored, norm, ok in zip(missing, found, norms, numeric, strict=True):
                rows[key] = scored
                number = ids.get(key)
                if ok and number is not None:
                    nearest.keep(number, [(d, ids[k]) for k, d in scored], norm)
        return rows

    def all_rows(self) -> list[str]:
        return self.engine.all_rows()

    def clear(self) -> None:
        self._just_stored = None
        self.engine.clear()
        self.kdists = {}
        self.lrds = {}
        self.log.clear()
        self.ignored = 0
        self.master_rows = 0
        if self.unlearner is not None:
            self.unlearner.clear()

    def status(self) -> dict[str, str]:
        status = {"num_id_master": str(self.master_rows), "num_id_diff": str(len(self.log.changed))}
        if self.ignore_kth:
            status["num_ignored"] = str(self.ignored)
        if self.unlearner is not None:
            status.update(self.unlearner.status())
        return status

    # -- mix and save ----------------------------------------------------------------------

    def take_diff(self) -> dict[str, object]:
        scores: dict[str, object] = {}
        for key in self.log.take():
            clock, owner = self.log.versions[key]
            entry = [self.kdists[key], self.lrds[key]] if key in self.kdists else None
            scores[key] = [clock, owner, entry]
        return {"scores": scores, "rows": self.engine.take_rows()}

    @staticmethod
    def mix(lhs: object, rhs: object) -> dict[str, object]:
        left = read_map(lhs, "lof")
        right = read_map(rhs, "lof")
        return {
            "scores": merge_rows(left.get("scores"), right.get("scores"), "scores"),
            "rows": merge_rows(left.get("rows"), right.get("rows"), "rows"),
        }

    def apply(self, diff: object, path: str) -> None:
        self._just_stored = None
        fields = read_map(diff, path)
        scores = _read_scores(fields.get("scores"), f"{path}.scores")
        self.engine.apply_rows(read_map(fields.get("rows"), f"{path}.rows"), f"{path}.rows")
        for key, version, entry in scores:
            if self.log.newer_here(key, version):
                continue
            if entry is None:
                self.kdists.pop(key, None)
                self.lrds.pop(key, None)
            else:
                self.kdists[key], self.lrds[key] = entry
            self.log.accept(key, version)
            self.log.changed.pop(key, None)

    def after_mix(self) -> None:
        self.log.after_mix()
        self.engine.after_mix()
        self.master_rows = len(self.kdists)

    def pack(self) -> dict[str, object]:
        return {
            "engine": self.engine.pack(),
            "scores": {
                key: [*self.log.versions.get(key, (0, "")), [self.kdists[key], self.lrds[key]]]
                for key in self.kdists
            },
            "clock": self.log.clock,
            "ignored": self.ignored,
            "unlearner": self.unlearner.pack() if self.unlearner is not None else None,
        }

    def unpack_into(self, value: object, path: str) -> None:
        self._just_stored = None
        fields = read_map(value, path)
        engine = self.engine
        self.engine = RecommenderIndex.unpack(
            fields.get("engine"), f"{path}.engine", engine.method, engine.parameter, engine.owner
        )
        for key, version, entry in _read_scores(fields.get("scores"), f"{path}.scores"):
            if entry is not None:
                self.kdists[key], self.lrds[key] = entry
                self.log.accept(key, version)
        self.log.clock = max(self.log.clock, read_int(fields.get("clock"), f"{path}.clock"))
        self.ignored = read_int(fields.get("ignored"), f"{path}.ignored")
        if self.unlearner is not None and fields.get("unlearner") is not None:
            self.unlearner.unpack(fields["unlearner"], f"{path}.unlearner")
        _check_scored(self.engine.all_rows(), self.kdists, f"{path}.scores")
        self.master_rows = len(self.kdists)


def _read_scores(
    value: object, path: str
) -> list[tuple[str, tuple[int, str], tuple[float, float] | None]]:
    out = []
    for key, row in read_map(value, path).items():
        items = read_list(row, f"{path}[{key!r}]")
        if len(items) != 3:
            raise DiffError(f"{path}[{key!r}]: expected [clock, owner, [kdist, lrd]]")
        version = (read_int(items[0], path), read_text(items[1], path))
        entry: tuple[float, float] | None = None
        if items[2] is not None:
            pair = read_list(items[2], f"{path}[{key!r}][2]")
            if len(pair) != 2:
                raise DiffError(f"{path}[{key!r}][2]: expected [kdist, lrd]")
            entry = (_read_score(pair[0], path), _read_score(pair[1], path))
        out.append((key, version, entry))
    return out


def _read_score(value: object, path: str) -> float:
    if isinstance(value, float) and math.isinf(value):
        return value
    return read_float(value, path)


class ScoreTable(RowTable):
    """``light_lof``'s table of k-distances and lrds, a versioned row table."""

    def __init__(self, owner: str) -> None:
        self._reset()
        super().__init__(owner)

    def _reset(self) -> None:
        self.kdist = np.zeros(16, dtype=np.float64)
        self.lrd = np.zeros(16, dtype=np.float64)

    def _grow(self, size: int) -> None:
        if size > len(self.kdist):
            capacity = max(size, 2 * len(self.kdist))
            for name in ("kdist", "lrd"):
                old = getattr(self, name)
                new = np.zeros(capacity, dtype=np.float64)
                new[: len(old)] = old
                setattr(self, name, new)

    def _move(self, source: int, target: int) -> None:
        self.kdist[target] = self.kdist[source]
        self.lrd[target] = self.lrd[source]

    def add(self, key: str, kdist: float, lrd: float) -> None:
        position = self._place(key)
        self.kdist[position] = kdist
        self.lrd[position] = lrd
        self._touch(position)

    def touch_row(self, position: int) -> None:
        self._touch(position)

    def row_data(self, position: int) -> list[object]:
        return [float(self.kdist[position]), float(self.lrd[position])]

    def check_row_data(self, data: Sequence[object], path: str) -> None:
        if len(data) != 2:
            raise DiffError(f"{path}: expected [kdist, lrd]")
        _read_score(data[0], path)
        _read_score(data[1], path)

    def set_row_data(self, position: int, data: Sequence[object], path: str) -> None:
        self.kdist[position] = _read_score(data[0], path)
        self.lrd[position] = _read_score(data[1], path)


class LightLof(_Lof):
    """``light_lof``: LOF over a nearest-neighbour method, scores in a versioned table."""

    updatable = False

    def __init__(self, params: Params, owner: str) -> None:
        super().__init__(params)
        self.engine: NearestNeighborIndex = create_nearest_neighbor(
            self.method, self.parameter, owner, params.where("parameter")
        )
        self.scores = ScoreTable(owner)
        if self.unlearner is not None:
            self.unlearner.forget = self._unlearn

    def _parameter(self, key: str) -> tuple[float, float]:
        position = self.scores.index.get(key)
        if position is None:
            raise ValueError(f'row "{key}" not found in light_lof table')
        return float(self.scores.kdist[position]), float(self.scores.lrd[position])

    def kdist(self, key: str) -> float:
        return self._parameter(key)[0]

    def lrd(self, key: str) -> float:
        return self._parameter(key)[1]

    def _lrd_of(self, neighbours: Scored) -> tuple[float, list[float]]:
        """As the base class's, looking the neighbours' rows up in one step."""
        if not neighbours:
            return math.inf, []
        index = self.scores.index
        found = [index.get(key) for key, _ in neighbours]
        positions = [position for position in found if position is not None]
        if len(positions) < len(found):
            self._parameter(neighbours[found.index(None)][0])  # raises for it
        lrds: list[float] = self.scores.lrd[positions].tolist()
        kdists: list[float] = self.scores.kdist[positions].tolist()
        total = 0.0
        for (_, distance), kdist in zip(neighbours, kdists, strict=True):
            total += max(distance, kdist)
        if total == 0:
            return math.inf, lrds
        return len(neighbours) / total, lrds

    def neighbours(self, features: Features, count: int) -> Scored:
        return self.engine.neighbor_row_from_features(features, count)

    def neighbours_of(self, key: str, count: int) -> Scored:
        return self.engine.neighbor_row_from_id(key, count)

    def _collect(self, key: str, into: set[str]) -> Scored:
        found = self.neighbours_of(key, self.reverse_k)
        into.update(k for k, _ in found)
        return found

    def _touch(self, key: str) -> None:
        if self.unlearner is not None and not self.unlearner.touch(key):
            raise ValueError(
                "cannot add new ID as number of sticky IDs reached the maximum size of "
                f"unlearner: {key}"
            )

    def set_row(self, key: str, features: Features) -> bool:
        self._just_stored = None
        if self.ignore_kth and self._is_kth_same(features):
            self.ignored += 1
            return False
        pending: set[str] = set()
        if key in self.scores.index:
            self._collect(key, pending)
        self._touch(key)
        self.engine.set_row(key, features)
        found = self._collect(key, pending)
        self.scores.add(key, -1.0, -1.0)
        pending.add(key)
        self._update_entries(pending)
        self._stored(key, found)
        return True

    def set_bulk(self, rows: Sequence[tuple[str, Features]]) -> list[str]:
        self._just_stored = None
        pending: set[str] = set()
        accepted = []
        for key, features in rows:
            if self.ignore_kth and self._is_kth_same(features):
                self.ignored += 1
                continue
            if key in self.scores.index:
                self._collect(key, pending)
            accepted.append(key)
            self.engine.set_row(key, features)
        for key in accepted:
            self._touch(key)
            self._collect(key, pending)
            self.scores.add(key, -1.0, -1.0)
            pending.add(key)
        self._update_entries(pending)
        return accepted

    def _unlearn(self, key: str) -> None:
        self._just_stored = None
        reverse: set[str] = set()
        self._collect(key, reverse)
        reverse.discard(key)
        self.engine.table.delete(key)
        self.scores.delete(key)
        self._update_entries(reverse)

    def _update_entries(self, keys: Iterable[str]) -> None:
        table = self.scores
        index = table.index
        positions = [index[key] for key in keys if key in index]
        keys_of = table.keys
        many = self.engine.neighbor_rows_from_ids([keys_of[p] for p in positions], self.k)
        kdist = table.kdist
        nested: list[list[tuple[int, float]]] = []
        for position, found in zip(positions, many, strict=True):
            nested.append([(index[other], distance) for other, distance in found if other in index])
            if found:
                kdist[position] = found[-1][1]
        # the neighbours' k-distances, read once the k-distances above are all written
        others = [other for neighbours in nested for other, _ in neighbours]
        kdists: list[float] = kdist[others].tolist() if others else []
        at = 0
        for position, neighbours in zip(positions, nested, strict=True):
            lrd = 1.0
            if neighbours:
                length = min(len(neighbours), self.k)
                total = 0.0
                for (_, distance), other_kdist in zip(
                    neighbours[:length], kdists[at : at + length], strict=True
                ):
                    # max(distance, other_kdist), as Python picks it
                    total += other_kdist if other_kdist > distance else distance
                lrd = math.inf if total == 0 else length / total
            at += len(neighbours)
            table.lrd[position] = lrd
            table.touch_row(position)

    def all_rows(self) -> list[str]:
        return list(self.engine.table.keys)

    def clear(self) -> None:
        self._just_stored = None
        self.engine.table.clear()
        self.scores.clear()
        self.ignored = 0
        if self.unlearner is not None:
            self.unlearner.clear()

    def status(self) -> dict[str, str]:
        status = {"num_id": str(len(self.engine.table))}
        if self.ignore_kth:
            status["num_ignored"] = str(self.ignored)
        if self.unlearner is not None:
            status.update(self.unlearner.status())
        return status

    # -- mix and save ----------------------------------------------------------------------

    def take_diff(self) -> dict[str, object]:
        return {"scores": self.scores.take_diff(), "rows": self.engine.table.take_diff()}

    @staticmethod
    def mix(lhs: object, rhs: object) -> dict[str, object]:
        left = read_map(lhs, "light_lof")
        right = read_map(rhs, "light_lof")
        return {
            "scores": merge_rows(left.get("scores"), right.get("scores"), "scores"),
            "rows": merge_rows(left.get("rows"), right.get("rows"), "rows"),
        }

    def apply(self, diff: object, path: str) -> None:
        self._just_stored = None
        fields = read_map(diff, path)
        rows = read_map(fields.get("rows"), f"{path}.rows")
        scores = read_map(fields.get("scores"), f"{path}.scores")
        applied = self.engine.table.apply_rows(rows, f"{path}.rows")  # type: ignore[arg-type]
        self.scores.apply_rows(scores, f"{path}.scores")  # type: ignore[arg-type]
        if self.unlearner is not None:
            for key in applied:
                if self.unlearner.can_touch(key):
                    self.unlearner.touch(key)

    def after_mix(self) -> None:
        self.engine.table.forget_sent()
        self.scores.forget_sent()

    def pack(self) -> dict[str, object]:
        return {
            "rows": self.engine.table.pack(),
            "scores": self.scores.pack(),
            "ignored": self.ignored,
            "unlearner": self.unlearner.pack() if self.unlearner is not None else None,
        }

    def unpack_into(self, value: object, path: str) -> None:
        self._just_stored = None
        fields = read_map(value, path)
        self.engine.table.unpack_into(fields.get("rows"), f"{path}.rows")
        self.scores.unpack_into(fields.get("scores"), f"{path}.scores")
        self.ignored = read_int(fields.get("ignored"), f"{path}.ignored")
        if self.unlearner is not None and fields.get("unlearner") is not None:
            self.unlearner.unpack(fields["unlearner"], f"{path}.unlearner")
        _check_scored(self.engine.table.keys, self.scores.index, f"{path}.scores")


def _check_scored(rows: Iterable[str], scored: Container[str], path: str) -> None:
    """A model read from a file or a peer must score every row its index holds: a row
    without its k-distance and lrd fails every query that meets it."""
    for key in rows:
        if key not in scored:
            raise DiffError(f"{path}: row {key!r} has no k-distance and lrd")


def create_lof(method: str, parameter: object, owner: str) -> Lof | LightLof:
    """``lof`` or ``light_lof`` with its checked ``parameter`` block."""
    if method not in ("lof", "light_lof"):
        raise ConfigError(f"method: unknown method {method!r} (known: lof, light_lof)")
    if parameter is None:
        raise ConfigError("parameter: required")
    params = Params(parameter, "parameter")
    return Lof(params, owner) if method == "lof" else LightLof(params, owner)
