"""The stat engine held for snapshots answers exactly as the engine it replaced.

``tests/engines/stat/reference.py`` is that engine. Random pushes, clears, loads and
mix rounds go to both; every statistic of every key (and ``entropy``, whose sum runs over
the keys in the order the window learned them) must be the same to the bit, and so must
saved models. Snapshots taken along the way must keep answering what the model answered
when they were taken, while the model goes on.
"""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest

from engines.stat.model import StatModel, StatSnapshot
from tests.engines.stat.reference import StatModel as ReferenceModel

KEYS = ["a", "b", "c", "d", "e"]


def answers(model: Any) -> list[object]:
    out: list[object] = [repr(model.entropy(""))]
    for key in KEYS:
        for name, args in (
            ("sum", ()),
            ("max", ()),
            ("min", ()),
            ("stddev", ()),
            ("moment", (3, 0.5)),
            ("moment", (0, 1.0)),
        ):
            try:
                out.append(repr(getattr(model, name)(key, *args)))
            except KeyError as error:
                out.append(str(error))
    return out


@pytest.mark.parametrize("window", [1, 3, 7, 64])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_histories_answer_as_before(window: int, seed: int) -> None:
    rng = random.Random(seed)
    new, old = StatModel({"window_size": window}), ReferenceModel({"window_size": window})
    snapshots: list[tuple[StatSnapshot, list[object]]] = []
    for step in range(3000):
        roll = rng.random()
        if roll < 0.002:
            assert new.clear() == old.clear()
        elif roll < 0.004:  # through a model file: strings come back as bytes
            payload = msgpack.unpackb(msgpack.packb(old.pack(), use_bin_type=False), raw=True)
            new.unpack(payload)
            old.unpack(payload)
        elif roll < 0.006:
            totals = {"version": step, "n_log_n": rng.random() * 10, "count": rng.randint(0, 9)}
            assert new.put_diff(totals) == old.put_diff(totals)
        else:
            key = rng.choice(KEYS[: rng.randint(1, len(KEYS))])
            value = round(rng.gauss(0, 10), 2)
            assert new.push(key, value) == old.push(key, value)
        if step % 97 == 0:
            assert answers(new) == answers(old)
            assert new.pack() == old.pack()
            assert new.get_diff() == old.get_diff()
            snapshots.append((new.snapshot(), answers(old)))
    assert answers(new) == answers(old)
    for snapshot, expected in snapshots[-3:]:
        assert answers(snapshot) == expected


def test_a_snapshot_ignores_later_pushes_clears_and_compactions() -> None:
    model = StatModel({"window_size": 4})
    for value in (1.0, 2.0, 3.0):
        model.push("a", value)
    snapshot = model.snapshot()
    for i in range(5000):  # far past the window: the logs are compacted many times
        model.push("b" if i % 2 else "a", float(i))
    model.clear()
    assert snapshot.sum("a") == 6.0
    assert snapshot.entropy("") == 0.0
    assert snapshot.pack() == {
        "window_size": 4,
        "window": [["a", 1.0], ["a", 2.0], ["a", 3.0]],
        "mixed": {"n_log_n": 0.0, "count": 0},
        "version": 0,
    }
    with pytest.raises(KeyError):
        model.sum("a")
