"""The compiled global weights (``weigh_idf`` in engines/common/kernels_c/weights.c) weigh
features as ``WeightManager.weigh`` does in Python, to the bit: idf and idf1 from the
document frequencies of master and diff, other kinds and names with no slash unchanged,
zeros left out; bm25 and weight stay with the Python. ``sort_and_merge`` sorts and sums
features as the Python does, to the bit."""

from __future__ import annotations

import random

import pytest

from engines.common import kernels
from engines.common.fv_converter import WeightManager, sort_and_merge
from tests.engines.kernel_modes import with_and_without

KINDS = ["idf", "idf1", "bin", "", "xidf", "idf11", "weigh"]


def manager(rng: random.Random) -> WeightManager:
    weights = WeightManager()
    for part in (weights.master, weights.diff):
        part.document_count = rng.randint(0, 50)
        for i in range(30):
            if rng.random() < 0.7:
                part.document_frequencies[f"k$w{i}@space#tf/{rng.choice(KINDS)}"] = float(
                    rng.randint(0, 60)
                )
    return weights


def features(rng: random.Random, kinds: list[str]) -> list[tuple[str, float]]:
    out = []
    for _ in range(rng.randint(0, 40)):
        kind = rng.choice(kinds)
        name = f"k$w{rng.randint(0, 30)}@space#tf/{kind}" if kind else f"plain{rng.randint(0, 3)}"
        if rng.random() < 0.1:
            name = f"a/b/{name}"
        out.append((name, rng.choice([0.0, -0.0, 1.0, 2.5, -3.0, rng.uniform(-5, 5)])))
    return out


def both(weights: WeightManager, data: list[tuple[str, float]]) -> list[tuple[str, float]]:
    with_kernel, python = with_and_without(lambda: weights.weigh(data))
    assert [(n, v.hex()) for n, v in with_kernel] == [(n, v.hex()) for n, v in python]
    return with_kernel


def test_idf_and_other_kinds_weigh_as_the_python() -> None:
    rng = random.Random(1)
    for _ in range(200):
        weights = manager(rng)
        data = features(rng, KINDS)
        assert kernels.compiled is not None
        taken = kernels.compiled.weigh_idf(
            data,
            weights.master.document_frequencies,
            weights.diff.document_frequencies,
            float(weights.document_count),
        )
        assert taken is not None  # no bm25, no weight: the kernel answered
        both(weights, data)


@pytest.mark.parametrize("kind", ["bm25", "weight"])
def test_bm25_and_weight_are_left_to_the_python(kind: str) -> None:
    rng = random.Random(kind)
    weights = manager(rng)
    data = [*features(rng, ["idf"]), (f"k$w1@space#tf/{kind}", 1.0)]
    assert kernels.compiled is not None
    frequencies = weights.master.document_frequencies, weights.diff.document_frequencies
    assert kernels.compiled.weigh_idf(data, *frequencies, 1.0) is None
    both(weights, data)


#: Characters whose names sort differently by byte and by code point if compared wrongly:
#: one byte (ASCII, Latin-1), two (Ā) and four (an emoji) per character in memory.
LETTERS = ["a", "b", "ab", "é", "ÿ", "A", "ß", "Ā", "\U0001f600", " ", "", "\x00", "\x80"]


def test_sort_and_merge_is_the_pythons_to_the_bit() -> None:
    """Names sorted in code point order, a name's values summed from 0.0 in the order they
    come (-0.0 alone becomes 0.0), infinities and NaN summed as Python sums them."""
    rng = random.Random("merge")
    values = [0.0, -0.0, 1.5, -2.25, 1e308, float("inf"), float("-inf"), float("nan")]
    for _ in range(400):
        names = [
            "".join(rng.choices(LETTERS, k=rng.randint(0, 3))) for _ in range(rng.randint(0, 70))
        ]
        data = [(name, rng.choice([*values, rng.uniform(-9.0, 9.0)])) for name in names]
        assert kernels.compiled is not None
        assert kernels.compiled.sort_and_merge(data) is not None
        with_kernel, python = with_and_without(lambda: sort_and_merge(data))  # noqa: B023
        assert [(n, v.hex()) for n, v in with_kernel] == [(n, v.hex()) for n, v in python]
        assert [n for n, _ in with_kernel] == sorted({n for n, _ in data})


@pytest.mark.parametrize(
    "data",
    [[("a", 1)], [("a", 1.0, 2.0)], [["a", 1.0]], [(b"a", 1.0)], ("not", "a list")],
    ids=["an int value", "a triple", "a list pair", "a bytes name", "a tuple"],
)
def test_sort_and_merge_leaves_odd_features_to_the_python(data: object) -> None:
    assert kernels.compiled is not None
    assert kernels.compiled.sort_and_merge(data) is None
