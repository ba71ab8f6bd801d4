"""WeightArrays.copy_rows_from: the rows asked for (of the six tables and of the pairs
given beside them) become the source's, and nothing else changes; with the kernel and
without, a few rows (slices) and many (numpy)."""

from __future__ import annotations

import random
from array import array

import pytest

from engines.common.storage import TABLES, WeightArrays
from tests.engines.kernel_modes import with_and_without


def filled(seed: str, stride: int, capacity: int) -> WeightArrays:
    rng = random.Random(seed)
    arrays = WeightArrays(stride, capacity)
    for name in TABLES:
        table = arrays.table(name)
        for i in range(len(table)):
            table[i] = rng.uniform(-1.0, 1.0)
    return arrays


@pytest.mark.parametrize("count", [0, 3, 40])
def test_the_rows_asked_for_are_copied_and_no_other(count: int) -> None:
    rows = random.Random(count).sample(range(64), count)

    def copy() -> tuple[dict[str, list[float]], list[int]]:
        mine, theirs = filled("mine", 3, 64), filled("theirs", 3, 64)
        counts, source_counts = array("q", range(64)), array("q", range(100, 164))
        mine.copy_rows_from(theirs, set(rows), [(counts, source_counts, 1)])
        return {name: list(mine.table(name)) for name in TABLES}, list(counts)

    compiled, python = with_and_without(copy)
    assert compiled == python
    tables, counts = compiled
    before, source = filled("mine", 3, 64), filled("theirs", 3, 64)
    for row in range(64):
        expected = source if row in rows else before
        for name in TABLES:
            assert tables[name][row * 3 : row * 3 + 3] == list(
                expected.table(name)[row * 3 : row * 3 + 3]
            )
        assert counts[row] == (100 + row if row in rows else row)
