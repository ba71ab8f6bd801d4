"""Jubatus's ``lsh_index_storage``: the recommender's ``euclid_lsh`` (E2LSH with probing).

A row's projection (``hash_num x table_num`` normals, Jubatus's, divided by ``bin_width``)
is shifted by numbers drawn from MT19937 seeded with ``seed``; each table's part, floored,
is a bucket key (FNV-1 over the integers' bytes, as Jubatus hashes them). A query looks in
its bucket of every table, then, while fewer than ``ret_num`` rows were found, in up to
``probe_num`` neighbouring buckets in Jubatus's order (the perturbation with the smallest
squared distance first). The candidates are ranked by the Euclidean distance estimated
from the sign bits of the unshifted projection and the norms (the law of cosines), score
``-distance``. Everything but the order of equal scores is Jubatus's.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from engines.common.hashing import (
    FNV_OFFSET,
    FNV_PRIME,
    MASK64,
    MersenneTwister,
    ProjectionCache,
    pack_bits,
    random_projection,
)
from engines.common.versions import ChangeLog
from runtime.mix.mixable import DiffError, read_float, read_int, read_list, read_map, read_text

Features = Sequence[tuple[str, float]]
Scored = list[tuple[str, float]]


def hash_ints(values: Sequence[int]) -> int:
    """FNV-1 over the little-endian bytes of 32-bit integers (Jubatus's ``hash_lv``)."""
    value = FNV_OFFSET
    for number in values:
        word = number & 0xFFFFFFFF
        for shift in (0, 8, 16, 24):
            value = (value * FNV_PRIME) & MASK64
            value ^= (word >> shift) & 0xFF
    return value


def _float(value: float) -> float:
    return float(np.float32(value))


class _Probes:
    """Jubatus's ``lsh_probe_generator`` over a shifted projection."""

    def __init__(self, shifted: npt.NDArray[np.float32], tables: int) -> None:
        size = len(shifted) // tables
        self.parts = [shifted[i * size : (i + 1) * size] for i in range(tables)]
        self.base = [[math.floor(float(v)) for v in part] for part in self.parts]
        self._heap: list[tuple[float, int, list[int]]] = []
        self._candidates: list[list[tuple[float, int]]] = []

    def init(self) -> None:
        for part, base in zip(self.parts, self.base, strict=True):
            candidates: list[tuple[float, int]] = []
            for j, value in enumerate(part):
                distance = np.float32(value - np.float32(base[j]))
                up = np.float32(np.float32(1) - distance)
                candidates.append((float(up * up), j))
                candidates.append((float(distance * distance), ~j))
            candidates.sort()
            self._candidates.append(candidates)
        for i, candidates in enumerate(self._candidates):
            if candidates:
                heapq.heappush(self._heap, (candidates[0][0], i, [0]))

    def next(self) -> tuple[int, list[int]]:
        if not self._heap:
            return -1, []
        score, table, chosen = heapq.heappop(self._heap)
        candidates = self._candidates[table]
        vector = list(self.base[table])
        for d in chosen:
            index = candidates[d][1]
            if index >= 0:
                vector[index] += 1
            else:
                vector[~index] -= 1
        shifted = [*chosen[:-1], chosen[-1] + 1]
        expanded = [*chosen, chosen[-1] + 1]
        # Jubatus's heap holds floats: each new score is a double rounded to a float.
        if shifted[-1] < len(candidates):
            step = np.float32(candidates[shifted[-1]][0]) - np.float32(
                candidates[shifted[-1] - 1][0]
            )
            heapq.heappush(self._heap, (_float(score + float(step)), table, shifted))
        if expanded[-1] < len(candidates):
            heapq.heappush(
                self._heap, (_float(score + candidates[expanded[-1]][0]), table, expanded)
            )
        return table, vector


class LshIndex:
    """Rows by E2LSH buckets, with Jubatus's search (see the module docstring)."""

    def __init__(
        self, hash_num: int, table_num: int, bin_width: float, probe_num: int, seed: int, owner: str
    ) -> None:
        self.hash_num = hash_num
        self.table_num = table_num
        self.bin_width = np.float32(bin_width)
        self.probe_num = probe_num
        twister = MersenneTwister(seed)
        self.shift = np.array(
            [twister.next_double() for _ in range(hash_num * table_num)], dtype=np.float32
        )
        self.cache = ProjectionCache(hash_num * table_num)
        self.bits = hash_num * table_num
        self._cosines = [math.cos((1 - h / self.bits) * math.pi) for h in range(self.bits + 1)]
        #: id -> (bucket keys, sign-bit words, norm)
        self.entries: dict[str, tuple[list[int], npt.NDArray[np.uint64], float]] = {}
        self.buckets: dict[int, set[str]] = {}
        self.log = ChangeLog(owner)

    def projection(self, features: Features) -> npt.NDArray[np.float32]:
        projected = random_projection(features, self.cache)
        return (projected / self.bin_width).astype(np.float32)

    def _keys(self, shifted: npt.NDArray[np.float32]) -> list[int]:
        probes = _Probes(shifted, self.table_num)
        return [hash_ints([*probes.base[i], i]) for i in range(self.table_num)]

    def set_row(self, key: str, features: Features) -> None:
        projection = self.projection(features)
        squared = 0.0
        for _, value in features:
            squared += value * value
        self._put(
            key,
            self._keys((projection + self.shift).astype(np.float32)),
            pack_bits(projection > 0),
            math.sqrt(squared),
        )
        self.log.touch(key)

    def _put(self, key: str, keys: list[int], words: npt.NDArray[np.uint64], norm: float) -> None:
        old = self.entries.get(key)
        if old is not None:
            self._leave(key, old[0])
        self.entries[key] = (keys, words, norm)
        for bucket in keys:
            self.buckets.setdefault(bucket, set()).add(key)

    def _leave(self, key: str, keys: list[int]) -> None:
        for bucket in keys:
            members = self.buckets.get(bucket)
            if members is not None:
                members.discard(key)
                if not members:
                    del self.buckets[bucket]

    def remove_row(self, key: str) -> bool:
        """Forget row ``key``. As in Jubatus, a row not yet mixed stays a member of its
        buckets: it still counts towards a query's candidates (and is then skipped)."""
        existed = self.entries.pop(key, None) is not None
        self.log.touch(key)
        return existed

    def _rebuild_buckets(self) -> None:
        """Buckets from the entries alone (what a mix leaves in Jubatus)."""
        self.buckets = {}
        for key, (keys, _, _) in self.entries.items():
            for bucket in keys:
                self.buckets.setdefault(bucket, set()).add(key)

    def clear(self) -> None:
        self.entries = {}
        self.buckets = {}
        self.log.clear()

    def all_ids(self) -> list[str]:
        return list(self.entries)

    def _rank(
        self, candidates: set[str], words: npt.NDArray[np.uint64], norm: float, count: int
    ) -> Scored:
        scored: list[tuple[float, str]] = []
        bits = self.bits
        for key in candidates:
            entry = self.entries.get(key)
            if entry is None:
                continue  # a removed row still in its buckets (see remove_row)
            _, other, other_norm = entry
            same = bits - int(np.bitwise_count(np.bitwise_xor(words, other)).sum())
            if same == bits:
                distance = abs(norm - other_norm)
            else:
                dot = other_norm * norm * self._cosines[same]
                distance = math.sqrt(norm * norm + other_norm * other_norm - 2 * dot)
            scored.append((-distance, key))
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [(key, score) for score, key in scored[:count]]

    def similar_row_from_features(self, features: Features, count: int) -> Scored:
        projection = self.projection(features)
        squared = 0.0
        for _, value in features:
            squared += value * value
        shifted = (projection + self.shift).astype(np.float32)
        probes = _Probes(shifted, self.table_num)
        candidates: set[str] = set()
        for i in range(self.table_num):
            candidates |= self.buckets.get(hash_ints([*probes.base[i], i]), set())
            if len(candidates) >= count:
                return self._rank(candidates, pack_bits(projection > 0), math.sqrt(squared), count)
        probes.init()
        for _ in range(self.probe_num):
            table, vector = probes.next()
            candidates |= self.buckets.get(hash_ints([*vector, table]), set())
            if len(candidates) >= count:
                break
        return self._rank(candidates, pack_bits(projection > 0), math.sqrt(squared), count)

    def similar_row_from_id(self, key: str, count: int) -> Scored:
        entry = self.entries.get(key)
        if entry is None:
            return []
        keys, words, norm = entry
        candidates: set[str] = set()
        for bucket in keys:
            candidates |= self.buckets.get(bucket, set())
            if len(candidates) >= count:
                break
        return self._rank(candidates, words, norm, count)

    # -- mix and save ----------------------------------------------------------------------

    def _plain(self, key: str) -> list[object]:
        keys, words, norm = self.entries[key]
        return [list(keys), [int(w) for w in words], norm]

    def take_diff(self) -> dict[str, list[object]]:
        out: dict[str, list[object]] = {}
        for key in self.log.take():
            clock, owner = self.log.versions[key]
            out[key] = [clock, owner, self._plain(key) if key in self.entries else None]
        return out

    def apply_rows(self, rows: object, path: str) -> list[str]:
        checked = []
        words_count = -(-self.bits // 64)
        for key, row in read_map(rows, path).items():
            items = read_list(row, f"{path}[{key!r}]")
            if len(items) != 3:
                raise DiffError(f"{path}[{key!r}]: expected [clock, owner, entry]")
            version = (read_int(items[0], f"{path}[{key!r}][0]"), read_text(items[1], path))
            entry = None
            if items[2] is not None:
                parts = read_list(items[2], f"{path}[{key!r}][2]")
                if len(parts) != 3:
                    raise DiffError(f"{path}[{key!r}][2]: expected [buckets, bits, norm]")
                keys = [read_int(v, f"{path}[{key!r}] bucket") for v in read_list(parts[0], path)]
                words = [read_int(v, f"{path}[{key!r}] bits") for v in read_list(parts[1], path)]
                if len(keys) != self.table_num or len(words) != words_count:
                    raise DiffError(f"{path}[{key!r}]: the entry does not fit this index")
                entry = (keys, np.array(words, dtype=np.uint64), read_float(parts[2], path))
            checked.append((key, version, entry))
        applied = []
        for key, version, entry in checked:
            if self.log.newer_here(key, version):
                continue
            if entry is None:
                self.entries.pop(key, None)
            else:
                self._put(key, *entry)
            self.log.accept(key, version)
            self.log.changed.pop(key, None)
            applied.append(key)
        self._rebuild_buckets()
        return applied

    def stale(self) -> dict[str, list[int]]:
        """The removed rows still members of buckets (see :meth:`remove_row`): row -> the
        buckets it is still in (sorted)."""
        out: dict[str, list[int]] = {}
        for bucket, members in self.buckets.items():
            for key in members:
                if key not in self.entries:
                    out.setdefault(key, []).append(bucket)
        return {key: sorted(out[key]) for key in sorted(out)}

    def pack(self) -> dict[str, object]:
        """The rows with their versions, the clock, and the removed rows still in buckets
        (``stale``: they count towards candidates until the next mix, as in Jubatus)."""
        return {
            "clock": self.log.clock,
            "rows": {
                key: [*self.log.versions.get(key, (0, "")), self._plain(key)]
                for key in self.entries
            },
            "stale": self.stale(),
        }

    def unpack_into(self, value: object, path: str) -> None:
        fields = read_map(value, path)
        self.apply_rows(fields.get("rows"), f"{path}.rows")
        self.log.clock = max(self.log.clock, read_int(fields.get("clock"), f"{path}.clock"))
        self.log.changed = {}
        for key, buckets in read_map(fields.get("stale", {}), f"{path}.stale").items():
            if key in self.entries:
                continue  # a row Jubatus removed and set again: its entry is its buckets
            for bucket in read_list(buckets, f"{path}.stale[{key!r}]"):
                number = read_int(bucket, f"{path}.stale[{key!r}]")
                self.buckets.setdefault(number, set()).add(key)
