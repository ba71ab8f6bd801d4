"""The compiled nearest-row searches of engines/common/kernels_c/hashing.c pick the rows numpy
picks, in the same order: by Hamming distance (``nearest_by_hamming``: lsh, minhash) or by
euclid_lsh's estimated distance (``nearest_by_euclid_lsh``), then by position (Jubatus's
heap), so the answers do not depend on whether the kernels are built."""

from __future__ import annotations

import numpy as np
import pytest

from engines.common import kernels
from engines.common.config import Params
from engines.common.nearest_neighbor import EuclidLsh, smallest
from engines.nearest_neighbor.model import NearestNeighborModel
from runtime import Datum
from tests.engines.kernel_modes import with_and_without


def hamming(matrix: np.ndarray, size: int, words: np.ndarray) -> np.ndarray:
    xor = np.bitwise_xor(matrix[:size], words[np.newaxis, :])
    counts: np.ndarray = np.bitwise_count(xor).sum(axis=1, dtype=np.int64)
    return counts


@pytest.mark.parametrize("width", [1, 2, 3])
def test_the_same_rows_in_the_same_order(width: int) -> None:
    assert kernels.compiled is not None
    rng = np.random.default_rng(width)
    for trial in range(300):
        capacity = int(rng.integers(1, 200))
        size = int(rng.integers(0, capacity + 1))
        matrix = rng.integers(0, 2**63, size=(capacity, width), dtype=np.uint64)
        words = rng.integers(0, 2**63, size=width, dtype=np.uint64)
        if trial % 2:  # a few bits only: many ties
            matrix &= np.uint64(5)
            words &= np.uint64(5)
        count = int(rng.integers(0, size + 4))
        distances = hamming(matrix, size, words)
        positions, found = kernels.compiled.nearest_by_hamming(matrix, size, words, count)
        assert positions == smallest(distances, count)
        assert found == [int(distances[i]) for i in positions]


def test_what_does_not_fit_is_refused() -> None:
    assert kernels.compiled is not None
    nearest = kernels.compiled.nearest_by_hamming
    matrix = np.zeros((4, 1), dtype=np.uint64)
    with pytest.raises(ValueError):
        nearest(matrix, 5, np.zeros(1, dtype=np.uint64), 2)  # more rows than it has
    with pytest.raises(ValueError):
        nearest(matrix.astype(np.uint32), 4, np.zeros(1, dtype=np.uint64), 2)
    assert nearest(matrix, 4, np.zeros(1, dtype=np.uint64), 0) == ([], [])


@pytest.mark.parametrize("method", ["lsh", "minhash", "euclid_lsh"])
def test_neighbour_answers_with_the_kernel_and_without(method: str) -> None:
    config = {
        "method": method,
        "parameter": {"hash_num": 64},
        "converter": {"num_rules": [{"key": "*", "type": "num"}]},
    }
    model = NearestNeighborModel(config)
    rng = np.random.default_rng(7)
    for i in range(300):
        model.set_row(f"r{i}", Datum({f"f{j}": float(rng.integers(0, 3)) for j in range(6)}))
    queries = [Datum({f"f{j}": float(rng.integers(0, 3)) for j in range(6)}) for _ in range(20)]
    compiled, python = with_and_without(
        lambda: (
            [model.neighbor_row_from_datum(q, 10) for q in queries]
            + [model.neighbor_row_from_id(f"r{i}", 7) for i in range(0, 300, 37)]
            + [model.similar_row_from_datum(q, 5) for q in queries]
        )
    )
    assert compiled == python


def test_euclid_lsh_distances_and_order_are_numpys() -> None:
    """Repeated rows (equal distances), rows at Hamming distance 0, rows of norm 0."""
    assert kernels.compiled is not None
    index = EuclidLsh(Params({"hash_num": 100}, "parameter"), "me")
    rng = np.random.default_rng(3)
    patterns = [rng.integers(0, 2**63, size=2, dtype=np.uint64) for _ in range(5)]
    for i in range(120):
        index.table.put(f"r{i}", patterns[i % 5], float(i % 7) * 0.5)
    for trial in range(50):
        words = patterns[trial % 5] if trial % 2 else patterns[0] ^ np.uint64(trial)
        norm = float(trial % 4)
        for count in (1, 3, 10, 500):
            scores = index.distances(words, norm)
            expected = [(f"r{i}", float(scores[i])) for i in smallest(scores, count)]
            assert index._ranked(words, norm, count) == expected
