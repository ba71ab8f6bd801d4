"""The stat engine's numbers against hand computations, its global window, and its mix."""

from __future__ import annotations

import copy
import math

import msgpack
import pytest

from engines.stat.model import StatError, StatModel
from runtime.errors import ConfigError, ModelFileError
from runtime.mix.mixable import DiffError, Mixable, fold_diffs


def model(size: int = 4) -> StatModel:
    return StatModel({"window_size": size})


def pushed(size: int, *entries: tuple[str, float]) -> StatModel:
    m = model(size)
    for key, value in entries:
        assert m.push(key, value) is True
    return m


def test_definitions_on_a_small_window() -> None:
    m = pushed(4, ("a", 1.0), ("a", 2.0), ("a", 3.0), ("a", 6.0))
    assert m.sum("a") == 12.0
    assert m.max("a") == 6.0 and m.min("a") == 1.0
    assert m.moment("a", 1, 0.0) == 3.0
    assert m.moment("a", 1, 2.0) == 1.0
    assert m.moment("a", 2, 3.0) == (4 + 1 + 0 + 9) / 4
    assert m.moment("a", 3, 1.0) == (0 + 1 + 8 + 125) / 4
    assert m.moment("a", 4, 0.0) == (1 + 16 + 81 + 1296) / 4
    assert m.moment("a", 0, 5.0) == 1.0
    assert m.stddev("a") == pytest.approx(math.sqrt(3.5), rel=1e-15)


def test_jubatus_trivial_case() -> None:
    # The numbers Jubatus's own unit test expects, window 3.
    m = pushed(3, ("t", 1.0), ("t", 5.0), ("t", 3.0))
    assert m.sum("t") == 9.0 and m.max("t") == 5.0 and m.min("t") == 1.0
    assert m.moment("t", 2, 0.0) == pytest.approx(35 / 3)
    assert m.moment("t", 2, 3.0) == pytest.approx(8 / 3)
    assert m.moment("t", 3, 0.0) == pytest.approx(51.0)
    assert m.stddev("t") == pytest.approx(math.sqrt(8 / 3))
    m.push("t", 2.0)
    m.push("t", 4.0)  # the window is now 3, 2, 4
    assert m.sum("t") == 9.0 and m.max("t") == 4.0 and m.min("t") == 2.0
    assert m.moment("t", 2, 0.0) == pytest.approx(29 / 3)
    assert m.moment("t", 2, 3.0) == pytest.approx(2 / 3)
    assert m.moment("t", 3, 0.0) == pytest.approx(33.0)
    assert m.stddev("t") == pytest.approx(math.sqrt(2 / 3))


def test_a_constant_series_has_zero_deviation_not_nan() -> None:
    m = pushed(8, *[("c", 0.1)] * 7)
    assert m.stddev("c") == 0.0
    assert m.moment("c", 2, 0.1) == 0.0


def test_a_negative_degree_is_minus_one_even_for_an_unknown_key() -> None:
    assert model().moment("nope", -1, 0.0) == -1.0
    assert pushed(2, ("a", 5.0)).moment("a", -3, 1.0) == -1.0


def test_moment_overflow_is_infinite() -> None:
    m = pushed(2, ("a", -1e200))
    assert m.moment("a", 3, 0.0) == -math.inf
    assert m.moment("a", 2, 0.0) == math.inf


def test_the_window_is_shared_by_all_keys() -> None:
    m = pushed(3, ("a", 1.0), ("a", 2.0), ("b", 5.0))
    m.push("c", 7.0)  # evicts a's 1.0
    assert m.sum("a") == 2.0 and m.min("a") == 2.0
    m.push("d", 9.0)  # evicts a's 2.0: a is gone
    with pytest.raises(StatError, match="sum: key a not found"):
        m.sum("a")
    assert m.sum("b") == 5.0 and m.sum("c") == 7.0 and m.sum("d") == 9.0
    assert m.entropy("any") == pytest.approx(math.log(3))


def test_eviction_recomputes_max_and_min() -> None:
    m = pushed(3, ("a", 9.0), ("a", 1.0), ("a", 5.0))
    m.push("a", 4.0)  # drops 9
    assert m.max("a") == 5.0
    m.push("a", 6.0)  # drops 1
    assert m.min("a") == 4.0 and m.max("a") == 6.0


def test_entropy_over_key_counts() -> None:
    m = pushed(10, ("a", 1.0), ("a", 1.0), ("b", 1.0), ("c", 1.0))
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert m.entropy("ignored") == pytest.approx(expected)
    assert pushed(3, ("x", 1.0), ("x", 2.0)).entropy() == 0.0
    assert model().entropy("empty") == 0.0


@pytest.mark.parametrize("method", ["sum", "stddev", "max", "min"])
def test_unknown_key_is_a_key_error_with_jubatus_message(method: str) -> None:
    with pytest.raises(KeyError) as caught:
        getattr(pushed(4, ("a", 1.0)), method)("nope")
    assert isinstance(caught.value, StatError)
    assert str(caught.value) == f"{method}: key nope not found"


def test_unknown_key_in_moment() -> None:
    with pytest.raises(StatError, match="moment: key k not found"):
        model().moment("k", 2, 0.0)
    with pytest.raises(StatError, match="moment: key k not found"):
        model().moment("k", 0, 0.0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "window_size"),
        ({"window_size": 0}, "window_size"),
        ({"window_size": -5}, "window_size"),
        ({"window_size": 2**31}, "window_size"),
        ({"window_size": "3"}, "window_size"),
        ({"window_size": 3.0}, "window_size"),
        ({"window_size": True}, "window_size"),
        ({"window_size": 2, "x": 1}, "x: unknown key"),
        ([], "JSON object"),
    ],
)
def test_bad_configs(config: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StatModel(config)


@pytest.mark.parametrize("value", [float("nan"), "1", None, True])
def test_bad_values_are_refused(value: object) -> None:
    m = pushed(3, ("a", 1.0))
    with pytest.raises(ValueError, match="push"):
        m.push("a", value)  # type: ignore[arg-type]
    assert m.sum("a") == 1.0


def test_clear() -> None:
    m = pushed(3, ("a", 1.0))
    m.put_diff({"version": 0, "n_log_n": 5.0, "count": 7})
    assert m.clear() is True
    with pytest.raises(StatError):
        m.sum("a")
    assert m.entropy("a") == 0.0


# -- save and load -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packer", "unpacker"),
    [
        ({"use_bin_type": False}, {"raw": True}),  # the model file's old format
        ({"use_bin_type": True}, {"raw": False}),
    ],
)
def test_pack_unpack(packer: dict[str, bool], unpacker: dict[str, bool]) -> None:
    m = pushed(3, ("k", 1.5), ("j", 9.0), ("k", 2.5), ("k", 4.0))
    payload = msgpack.unpackb(msgpack.packb(m.pack(), **packer), **unpacker)
    other = model(3)
    other.unpack(payload)
    assert other.sum("k") == 6.5
    assert other.pack() == m.pack()
    other.push("x", 1.0)  # the order of the window survived: j is the oldest now
    assert other.sum("k") == 6.5
    with pytest.raises(StatError):
        other.sum("j")


def test_unpack_into_a_smaller_window_keeps_the_newest() -> None:
    m = pushed(4, ("a", 1.0), ("b", 2.0), ("a", 3.0), ("c", 4.0))
    small = model(2)
    small.unpack(m.pack())
    assert small.sum("a") == 3.0 and small.sum("c") == 4.0
    with pytest.raises(StatError):
        small.sum("b")


GARBAGE: list[object] = [
    None,
    [],
    {"windows": {"k": [1.0]}},
    {"window_size": 3, "window": [["k", "x"]], "mixed": {"n_log_n": 0.0, "count": 0}, "version": 0},
    {"window_size": 3, "window": [["k"]], "mixed": {"n_log_n": 0.0, "count": 0}, "version": 0},
    {"window_size": 3, "window": [[1, 1.0]], "mixed": {"n_log_n": 0.0, "count": 0}, "version": 0},
    {"window_size": 3, "window": [], "mixed": {"count": 0}, "version": 0},
    {"window_size": 3, "window": [], "mixed": {"n_log_n": 0.0, "count": 0}, "version": -1},
    {"window_size": 0, "window": [], "mixed": {"n_log_n": 0.0, "count": 0}, "version": 0},
]


@pytest.mark.parametrize("payload", GARBAGE)
def test_unpack_of_garbage_leaves_the_model_intact(payload: object) -> None:
    m = pushed(3, ("k", 1.0), ("k", 2.0))
    before = copy.deepcopy(m.pack())
    with pytest.raises(ModelFileError):
        m.unpack(payload)
    assert m.pack() == before


# -- mix -----------------------------------------------------------------------------------


def roundtrip(value: object) -> object:
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False)


def test_mixed_entropy_is_the_entropy_of_all_servers_keys() -> None:
    servers = [
        pushed(10, ("a", 1.0), ("a", 2.0), ("b", 3.0)),
        pushed(10, ("c", 1.0)),
        model(10),
    ]
    diffs = [roundtrip(s.get_diff()) for s in servers]
    assert diffs[0] == {"version": 0, "n_log_n": pytest.approx(2 * math.log(2)), "count": 3}
    mixed = roundtrip(fold_diffs(servers[0], diffs))
    assert [s.put_diff(mixed) for s in servers] == [True, True, True]
    # keys a: 2, b: 1, c: 1 over 4 values
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    for s in servers:
        assert s.version == 1
        assert s.entropy("x") == pytest.approx(expected)
    # As in Jubatus, entropy keeps answering from the last mix until the next one.
    servers[1].push("c", 5.0)
    assert servers[1].entropy("x") == pytest.approx(expected)


def test_stat_never_refuses_a_diff() -> None:
    m = pushed(3, ("a", 1.0))
    m.put_diff({"version": 0, "n_log_n": 0.0, "count": 1})
    assert m.put_diff({"version": 0, "n_log_n": 0.0, "count": 1}) is True
    assert m.version == 2


def test_mix_adds_totals_and_changes_neither_argument() -> None:
    m = model()
    left = {"version": 1, "n_log_n": 1.5, "count": 3}
    right = {"version": 2, "n_log_n": 2.0, "count": 4}
    assert m.mix(left, right) == {"version": 2, "n_log_n": 3.5, "count": 7}
    assert left == {"version": 1, "n_log_n": 1.5, "count": 3}


def test_get_model_carries_the_totals_only() -> None:
    source = pushed(3, ("a", 1.0), ("b", 1.0))
    source.put_diff(source.get_diff())
    joiner = model(3)
    joiner.set_model(roundtrip(source.get_model()))
    assert joiner.version == 1
    assert joiner.entropy("x") == pytest.approx(math.log(2))
    with pytest.raises(StatError):
        joiner.sum("a")


@pytest.mark.parametrize("bad", [None, {"version": 0}, {"version": 0, "n_log_n": "1", "count": 1}])
def test_malformed_diffs_are_refused(bad: object) -> None:
    m = pushed(3, ("a", 1.0))
    with pytest.raises(DiffError):
        m.put_diff(bad)
    with pytest.raises(DiffError):
        m.mix(m.get_diff(), bad)
    assert m.version == 0 and m.entropy("a") == 0.0


def test_the_model_is_mixable() -> None:
    assert isinstance(model(), Mixable)


def test_sums_past_the_largest_double_are_infinite_and_the_model_still_saves() -> None:
    """fsum raises where a sum has no finite answer; the answer is then the running sum's
    inf or NaN (as Jubatus's), and a save of the window, whose file carries each key's
    sums, does not fail on what a client pushed."""
    import json

    from engines.stat.stat_serv import StatServ
    from runtime.server.persistence import decode_model_file, encode_model_file

    m = pushed(4, ("big", 1e308), ("big", 1e308), ("both", math.inf), ("both", -math.inf))
    assert m.sum("big") == math.inf and m.stddev("big") == math.inf
    assert math.isnan(m.sum("both")) and math.isnan(m.stddev("both"))
    serv = StatServ(json.dumps({"window_size": 4}))
    for key, value in [("big", 1e308), ("big", 1e308), ("both", math.inf), ("both", -math.inf)]:
        serv.holder.write(lambda stat, k=key, v=value: stat.push(k, v))  # type: ignore[misc]
    data = encode_model_file(
        service_type="stat", model_id="m", config_json="{}", user_data_version=1,
        payload=serv.pack(),
    )  # fmt: skip
    copy_ = StatServ(json.dumps({"window_size": 4}))
    loaded = decode_model_file(data, service_type="stat", user_data_version=1).payload
    copy_.holder.write(lambda _stat: copy_.unpack(loaded))  # as load does, on the writer
    assert copy_.holder.snapshot.sum("big") == math.inf
    assert math.isnan(copy_.holder.snapshot.sum("both"))
