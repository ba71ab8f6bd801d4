"""The stat engine's numbers, checked by hand."""

from __future__ import annotations

import math

import msgpack
import pytest

from engines.stat.model import StatError, StatModel


def model(size: int = 4) -> StatModel:
    return StatModel({"window_size": size})


def test_definitions_on_a_small_window() -> None:
    m = model()
    for value in (1.0, 2.0, 3.0, 6.0):
        m.push("a", value)
    assert m.sum("a") == 12.0
    assert m.max("a") == 6.0 and m.min("a") == 1.0
    assert m.moment("a", 1, 0.0) == 3.0
    assert m.moment("a", 2, 3.0) == (4 + 1 + 0 + 9) / 4
    assert m.moment("a", 3, 1.0) == (0 + 1 + 8 + 125) / 4
    assert m.moment("a", 0, 5.0) == 1.0 and m.moment("a", -1, 0.0) == -1.0
    assert m.stddev("a") == pytest.approx(math.sqrt(3.5))


def test_window_evicts_the_oldest_value_of_the_key() -> None:
    m = model(3)
    for value in (10.0, 1.0, 2.0, 3.0):
        m.push("a", value)
    m.push("b", 100.0)
    assert m.sum("a") == 6.0 and m.max("a") == 3.0 and m.sum("b") == 100.0


def test_entropy_over_key_counts() -> None:
    m = model(10)
    for key in ("a", "a", "b", "c"):
        m.push(key, 1.0)
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert m.entropy("any") == pytest.approx(expected)


@pytest.mark.parametrize("method", ["sum", "stddev", "max", "min"])
def test_unknown_key_is_an_error(method: str) -> None:
    with pytest.raises(StatError, match=f"{method}: key nope not found"):
        getattr(model(), method)("nope")
    with pytest.raises(StatError):
        model().entropy("x")


def test_bad_configs() -> None:
    configs: list[object] = [
        {},
        {"window_size": 0},
        {"window_size": "3"},
        {"window_size": 2, "x": 1},
        [],
    ]
    for config in configs:
        with pytest.raises(ValueError):
            StatModel(config)


def test_pack_unpack_through_the_model_file_encoding() -> None:
    m = model()
    m.push("k", 1.5)
    m.push("k", 2.5)
    payload = msgpack.unpackb(msgpack.packb(m.pack(), use_bin_type=False), raw=True)
    other = model()
    other.unpack(payload)
    assert other.sum("k") == 4.0
    with pytest.raises(ValueError):
        other.unpack({b"windows": {b"k": [b"x"]}})
    assert other.sum("k") == 4.0
