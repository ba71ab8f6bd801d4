"""The compiled random projection (``project`` in engines/common/kernels_c/hashing.c)
gives the sums and sign bits of the numpy one to the bit: lsh and euclid_lsh rows, and so
every neighbour answer built on them, do not depend on whether the kernels are built."""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import pytest

from engines.common import kernels
from engines.common.hashing import ProjectionCache, pack_bits, projection_bits, random_projection
from tests.engines.kernel_modes import with_and_without


def features(rng: random.Random) -> list[tuple[str, float]]:
    """Repeated names, zeros of both signs, tiny, huge and negative values."""
    values = [0.0, -0.0, 1.0, 1e-40, -3.5, 1e30]
    return [
        (f"f{rng.randint(0, 40)}", rng.choice([*values, rng.gauss(0.0, 100.0)]))
        for _ in range(rng.randint(0, 25))
    ]


def project_both(
    datum: list[tuple[str, float]], cache: ProjectionCache
) -> tuple[np.ndarray, np.ndarray]:
    return random_projection(datum, cache), projection_bits(datum, cache)


@pytest.mark.parametrize("hash_num", [1, 7, 64, 100, 128])
def test_the_kernel_and_numpy_give_the_same_bits(hash_num: int) -> None:
    assert kernels.compiled is not None
    rng = random.Random(hash_num)
    cache = ProjectionCache(hash_num)
    for _ in range(200):
        datum = features(rng)
        (compiled, words), (python, python_words) = with_and_without(
            partial(project_both, datum, cache)
        )
        assert compiled.dtype == python.dtype == np.float32
        assert compiled.tobytes() == python.tobytes(), datum
        assert words.tobytes() == python_words.tobytes() == pack_bits(python > 0).tobytes()


def test_the_fallback_alone(python_only: None) -> None:
    cache = ProjectionCache(64)
    datum = [("a", 1.0), ("b", -2.0)]
    expected = cache.rows(["a"])[0] * np.float32(1.0) + cache.rows(["b"])[0] * np.float32(-2.0)
    assert random_projection(datum, cache).tobytes() == expected.astype(np.float32).tobytes()
    assert projection_bits([], cache).tobytes() == bytes(8)


def test_the_kernel_refuses_what_does_not_fit() -> None:
    assert kernels.compiled is not None
    project = kernels.compiled.project
    matrix = np.ones((2, 64), dtype=np.float32)
    with pytest.raises(TypeError):
        project(matrix.astype(np.float64), [1.0, 2.0], None, None)
    with pytest.raises(TypeError):
        project(matrix, [1.0, 2.0, 3.0], None, None)  # not len(values) rows
    with pytest.raises(TypeError):
        project(matrix, [1.0, 2.0], np.empty(63, dtype=np.float32), None)
    with pytest.raises(TypeError):
        project(matrix, [1.0, 2.0], None, np.empty(2, dtype=np.uint64))
    with pytest.raises(TypeError):
        project(matrix, [1.0, "x"], None, None)
    words = np.empty(1, dtype=np.uint64)
    project(matrix, [1.0, -2.0], None, words)
    assert int(words[0]) == 0  # every sum is -1
