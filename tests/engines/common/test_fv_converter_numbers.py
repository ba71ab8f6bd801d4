"""Jubatus's converter (``engines/common/fv_converter``) on numbers: a datum read from the
wire and the same datum decoded both give the features Jubatus's rules define, for every
kind of number rule, one rule or several on a key, keys no rule reads, and values of every
size; a ``$`` in a key a rule reads is refused on both paths."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from engines.common.fv_converter import FeatureConverter, format_number
from runtime.wire.datum import Datum

#: Which keys each rule's pattern reads.
MATCHES: dict[str, Callable[[str], bool]] = {
    "*": lambda k: True,
    "l*": lambda k: k.startswith("l"),
    "*s": lambda k: k.endswith("s"),
    "x*": lambda k: k.startswith("x"),
}
CONFIGS: dict[str, dict[str, Any]] = {
    "num": {"num_rules": [{"key": "*", "type": "num"}]},
    "log": {"num_rules": [{"key": "*", "type": "log"}]},
    "str": {"num_rules": [{"key": "*", "type": "str"}]},
    "several": {
        "num_rules": [
            {"key": "*", "type": "num"},
            {"key": "l*", "type": "log"},
            {"key": "*s", "type": "str"},
        ]
    },
    "some keys": {"num_rules": [{"key": "x*", "type": "num"}]},
}
KEYS = st.sampled_from(["x1", "x2", "lx", "ls", "xs", "y", "l"])
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(2**53), max_value=2**53),
)


def expected(config: dict[str, Any], pairs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Jubatus's number rules, by their definition: per value in order, per rule in order."""
    features = []
    for key, number in pairs:
        value = float(number)
        for rule in config["num_rules"]:
            if not MATCHES[rule["key"]](key):
                continue
            kind = rule["type"]
            if kind == "num":
                features.append((f"{key}@num", value))
            elif kind == "log":
                features.append((f"{key}@log", math.log(max(1.0, value))))
            else:
                features.append((f"{key}@str${format_number(value)}", 1.0))
    return features


def on_the_wire(pairs: list[tuple[str, float]]) -> object:
    """The datum as a server reads it: old-spec msgpack, strings as bytes."""
    packed = msgpack.packb([[], [[k, v] for k, v in pairs], []], use_bin_type=False)
    return msgpack.unpackb(packed, raw=True)


@pytest.mark.parametrize("name", CONFIGS)
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(KEYS, VALUES), max_size=8))
def test_numbers_from_the_wire_are_the_decoded_datums_features(
    name: str, pairs: list[tuple[str, float]]
) -> None:
    converter = FeatureConverter.from_config(CONFIGS[name])
    datum = Datum()
    for key, value in pairs:
        datum.add_number(key, float(value))
    want = [(n, v.hex()) for n, v in expected(CONFIGS[name], pairs)]
    for _ in range(2):  # the first read fills the caches, the second reads them
        assert [(n, v.hex()) for n, v in converter.unweighted(datum)] == want
        wired = converter.wire_datum(on_the_wire(pairs))
        assert wired is not None
        assert [(n, v.hex()) for n, v in wired.features] == want


@pytest.mark.parametrize("name", ["num", "several"])
def test_a_dollar_in_a_key_a_rule_reads_is_refused_on_both_paths(name: str) -> None:
    converter = FeatureConverter.from_config(CONFIGS[name])
    with pytest.raises(ValueError, match=r"\$"):
        converter.convert(Datum().add_number("a$b", 1.0))
    assert converter.wire_datum(on_the_wire([("a$b", 1.0)])) is None
