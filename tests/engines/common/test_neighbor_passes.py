"""Every key's neighbours, asked at once (``neighbor_rows_from_ids``), come in passes of a
bounded size; the passes give the same answers as one pass over all the keys."""

from __future__ import annotations

import random

import pytest

import engines.common.nearest_neighbor as nearest_neighbor
import engines.common.recommender_index as recommender_index
from engines.common.nearest_neighbor import create_nearest_neighbor
from engines.common.recommender_index import RecommenderIndex


def _rows(count: int) -> list[tuple[str, list[tuple[str, float]]]]:
    rng = random.Random(11)
    return [
        (f"r{i}", [(f"f{j}", round(rng.gauss(0, 2), 3)) for j in range(4)]) for i in range(count)
    ]


@pytest.mark.parametrize("method", ["lsh", "euclid_lsh", "minhash"])
def test_nearest_neighbor_passes_give_one_pass_answers(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = create_nearest_neighbor(method, {"hash_num": 64}, "me")
    rows = _rows(50)
    for key, features in rows:
        index.set_row(key, features)
    keys = [key for key, _ in rows] + ["absent"]
    whole = index.neighbor_rows_from_ids(keys, 5)
    monkeypatch.setattr(nearest_neighbor, "_CHUNK", 7 * 50)  # passes of 7 keys
    assert index.neighbor_rows_from_ids(keys, 5) == whole
    assert whole[-1] == [] and all(len(found) == 5 for found in whole[:-1])


def test_inverted_index_euclid_passes_give_one_pass_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index = RecommenderIndex("inverted_index_euclid", {}, "me")
    rows = _rows(50)
    for key, features in rows:
        index.update_row(key, features)
    keys = [key for key, _ in rows]
    whole = index.neighbor_rows_from_ids(keys, 5)
    monkeypatch.setattr(recommender_index, "DISTANCES_CHUNK", 7 * 50)
    assert index.neighbor_rows_from_ids(keys, 5) == whole
    assert [found[0] for found in whole] == [(key, 0.0) for key in keys]  # each is nearest
