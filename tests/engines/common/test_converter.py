"""The datum-to-feature-vector converter: every rule type, weight and key pattern, and bad
configs, against feature vectors worked out by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from engines.common.converter import Converter, DatumLike
from runtime.errors import ConfigError


@dataclass
class Datum:
    string_values: list[tuple[str, str]] = field(default_factory=list)
    num_values: list[tuple[str, float]] = field(default_factory=list)
    binary_values: list[tuple[str, bytes]] = field(default_factory=list)


def text(**values: str) -> Datum:
    return Datum(string_values=list(values.items()))


def numbers(**values: float) -> Datum:
    return Datum(num_values=list(values.items()))


_UNSET = object()


def string_rule(
    key: object = "*",
    type_: object = "str",
    sample: object = "bin",
    glob: object = "bin",
    except_: object = _UNSET,
    **extra: object,
) -> dict[str, object]:
    rule = {"key": key, "type": type_, "sample_weight": sample, "global_weight": glob, **extra}
    if except_ is not _UNSET:
        rule["except"] = except_
    return rule


def converter(**config: object) -> Converter:
    return Converter.from_config(config)


def test_the_datum_protocol_accepts_a_plain_dataclass() -> None:
    datum: DatumLike = Datum()
    assert converter().convert(datum) == {}


# -- string types --------------------------------------------------------------------------


def test_str_type_keeps_the_whole_value() -> None:
    conv = converter(string_rules=[string_rule()])
    assert conv.convert(text(text="hello world")) == {"text$hello world@str#bin/bin": 1.0}


def test_str_type_keeps_an_empty_value_too() -> None:
    conv = converter(string_rules=[string_rule()])
    assert conv.convert(text(t="")) == {"t$@str#bin/bin": 1.0}


def test_space_type_with_each_sample_weight() -> None:
    datum = text(t="a b\ta\n a")
    bin_ = converter(string_rules=[string_rule(type_="space")]).convert(datum)
    assert bin_ == {"t$a@space#bin/bin": 1.0, "t$b@space#bin/bin": 1.0}
    tf = converter(string_rules=[string_rule(type_="space", sample="tf")]).convert(datum)
    assert tf == {"t$a@space#tf/bin": 3.0, "t$b@space#tf/bin": 1.0}
    log_tf = converter(string_rules=[string_rule(type_="space", sample="log_tf")]).convert(datum)
    assert log_tf == {"t$a@space#log_tf/bin": math.log(4.0), "t$b@space#log_tf/bin": math.log(2.0)}


def test_space_type_of_only_spaces_gives_nothing() -> None:
    conv = converter(string_rules=[string_rule(type_="space")])
    assert conv.convert(text(t=" \t\r\n\f\v ")) == {}


def test_character_ngrams_count_characters_not_bytes() -> None:
    conv = converter(
        string_types={"bigram": {"method": "ngram", "char_num": "2"}},
        string_rules=[string_rule(type_="bigram", sample="tf")],
    )
    assert conv.convert(text(t="abab")) == {"t$ab@bigram#tf/bin": 2.0, "t$ba@bigram#tf/bin": 1.0}
    assert conv.convert(text(t="日本語")) == {
        "t$日本@bigram#tf/bin": 1.0,
        "t$本語@bigram#tf/bin": 1.0,
    }
    assert conv.convert(text(t="a")) == {}


def test_ngram_char_num_may_be_a_json_integer() -> None:
    conv = converter(
        string_types={"uni": {"method": "ngram", "char_num": 1}},
        string_rules=[string_rule(type_="uni", sample="tf")],
    )
    assert conv.convert(text(t="aab")) == {"t$a@uni#tf/bin": 2.0, "t$b@uni#tf/bin": 1.0}


def test_split_type_splits_on_any_separator() -> None:
    conv = converter(
        string_types={"csv": {"method": "split", "separators": ",;"}},
        string_rules=[string_rule(type_="csv", sample="tf")],
    )
    assert conv.convert(text(t="a,b;;c,a,")) == {
        "t$a@csv#tf/bin": 2.0,
        "t$b@csv#tf/bin": 1.0,
        "t$c@csv#tf/bin": 1.0,
    }


def test_a_string_type_may_override_a_default_name() -> None:
    conv = converter(
        string_types={"str": {"method": "ngram", "char_num": "3"}},
        string_rules=[string_rule()],
    )
    assert conv.convert(text(t="abcd")) == {"t$abc@str#bin/bin": 1.0, "t$bcd@str#bin/bin": 1.0}


def test_the_same_feature_twice_is_summed() -> None:
    conv = converter(string_rules=[string_rule(), string_rule()])
    assert conv.convert(text(t="x")) == {"t$x@str#bin/bin": 2.0}
    assert converter(string_rules=[string_rule()]).convert(
        Datum(string_values=[("t", "x"), ("t", "x")])
    ) == {"t$x@str#bin/bin": 2.0}


# -- global weights ------------------------------------------------------------------------


def test_idf_counts_trained_documents_including_the_one_being_trained() -> None:
    conv = converter(string_rules=[string_rule(type_="space", glob="idf")])
    # The first document is the only one: every term has idf log(2/2) = 0 and drops out.
    assert conv.convert_and_count(text(t="a b")) == {}
    second = conv.convert_and_count(text(t="a c"))
    assert second == {"t$c@space#bin/idf": math.log(3 / 2)}
    assert conv.frequencies.documents == 2
    assert conv.frequencies.frequency("t$a@space#bin/idf") == 2
    # convert (classify) reads the counts without changing them.
    assert conv.convert(text(t="a b c d")) == {
        "t$b@space#bin/idf": math.log(3 / 2),
        "t$c@space#bin/idf": math.log(3 / 2),
        "t$d@space#bin/idf": math.log(3 / 1),
    }
    assert conv.frequencies.documents == 2


def test_idf1_adds_one_and_multiplies_the_sample_weight() -> None:
    conv = converter(string_rules=[string_rule(type_="space", sample="tf", glob="idf1")])
    conv.convert_and_count(text(t="a"))
    conv.convert_and_count(text(t="b"))
    assert conv.convert(text(t="a a z")) == {
        "t$a@space#tf/idf1": (math.log(3 / 2) + 1.0) * 2.0,
        "t$z@space#tf/idf1": (math.log(3 / 1) + 1.0) * 1.0,
    }


def test_documents_are_counted_only_when_a_rule_uses_idf() -> None:
    conv = converter(string_rules=[string_rule()])
    conv.convert_and_count(text(t="a"))
    assert conv.frequencies.documents == 0


def test_bin_global_weight_ignores_document_counts() -> None:
    conv = converter(
        string_rules=[string_rule(key="a"), string_rule(key="b", type_="space", glob="idf")]
    )
    conv.convert_and_count(Datum(string_values=[("a", "x"), ("b", "y")]))
    assert conv.frequencies.frequency("a$x@str#bin/bin") == 0
    assert conv.convert(text(a="x")) == {"a$x@str#bin/bin": 1.0}


# -- numbers -------------------------------------------------------------------------------


def test_num_types() -> None:
    num = converter(num_rules=[{"key": "*", "type": "num"}])
    assert num.convert(numbers(x=2.5, y=-1.0)) == {"x@num": 2.5, "y@num": -1.0}
    log = converter(num_rules=[{"key": "*", "type": "log"}])
    assert log.convert(numbers(x=math.e**2, y=0.5)) == {"x@log": pytest.approx(2.0)}
    as_str = converter(num_rules=[{"key": "*", "type": "str"}])
    assert as_str.convert(numbers(a=2.5, b=3.0, c=1e6, d=0.0001, e=-0.0)) == {
        "a@str$2.5": 1.0,
        "b@str$3": 1.0,
        "c@str$1e+06": 1.0,
        "d@str$0.0001": 1.0,
        "e@str$-0": 1.0,
    }


def test_a_zero_feature_is_left_out() -> None:
    conv = converter(num_rules=[{"key": "*", "type": "num"}])
    assert conv.convert(numbers(x=0.0, y=1.0)) == {"y@num": 1.0}


def test_integers_in_a_datum_are_numbers() -> None:
    conv = converter(num_rules=[{"key": "*", "type": "num"}])
    assert conv.convert(Datum(num_values=[("x", 3)])) == {"x@num": 3.0}


def test_binary_values_are_ignored() -> None:
    conv = converter(string_rules=[string_rule()], num_rules=[{"key": "*", "type": "num"}])
    assert conv.convert(Datum(binary_values=[("img", b"\x00\x01")])) == {}


# -- key patterns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        ("*", ["a", "user_id", ""], []),
        ("", ["a", "b"], []),
        ("user_*", ["user_id", "user_"], ["id_user", "use"]),
        ("*_id", ["user_id", "_id"], ["id_user", "id"]),
        ("age", ["age"], ["ages", "page"]),
        ("/a.c/", ["abc", "axc"], ["abcd", "zabc"]),
    ],
)
def test_key_patterns(pattern: str, matching: list[str], other: list[str]) -> None:
    conv = converter(num_rules=[{"key": pattern, "type": "num"}])
    for key in matching:
        assert conv.convert(numbers(**{key: 1.0})) == {f"{key}@num": 1.0}, key
    for key in other:
        assert conv.convert(numbers(**{key: 1.0})) == {}, key


def test_except_removes_keys_from_a_rule() -> None:
    conv = converter(string_rules=[string_rule(key="*", except_="secret*")])
    assert conv.convert(text(name="x", secret_token="y")) == {"name$x@str#bin/bin": 1.0}


def test_except_null_is_no_exception() -> None:
    conv = converter(num_rules=[{"key": "*", "except": None, "type": "num"}])
    assert conv.convert(numbers(x=1.0)) == {"x@num": 1.0}


def test_rules_apply_only_to_their_keys() -> None:
    conv = converter(
        string_rules=[
            string_rule(key="title", type_="space"),
            string_rule(key="*_id"),
        ],
        num_rules=[{"key": "price", "type": "log"}, {"key": "*", "type": "num"}],
    )
    datum = Datum(
        string_values=[("title", "big cat"), ("user_id", "u1"), ("body", "ignored")],
        num_values=[("price", math.e), ("age", 3.0)],
    )
    assert conv.convert(datum) == {
        "title$big@space#bin/bin": 1.0,
        "title$cat@space#bin/bin": 1.0,
        "user_id$u1@str#bin/bin": 1.0,
        "price@log": pytest.approx(1.0),
        "price@num": math.e,
        "age@num": 3.0,
    }


def test_a_dollar_in_a_matched_key_is_refused() -> None:
    conv = converter(string_rules=[string_rule(key="a*")])
    with pytest.raises(ValueError, match=r"cannot contain '\$'"):
        conv.convert(text(**{"a$b": "x"}))
    assert conv.convert(text(**{"b$c": "x"})) == {}


@pytest.mark.parametrize(
    "datum",
    [
        Datum(string_values=[("a", 1)]),  # type: ignore[list-item]
        Datum(num_values=[("a", "1")]),  # type: ignore[list-item]
        Datum(num_values=[("a", True)]),
        Datum(num_values=[("a", 10**400)]),
        Datum(binary_values=[("a", "text")]),  # type: ignore[list-item]
        Datum(string_values=[("a",)]),  # type: ignore[list-item]
        Datum(string_values=[(1, "x")]),  # type: ignore[list-item]
    ],
)
def test_malformed_datums_are_refused(datum: Datum) -> None:
    with pytest.raises(ValueError, match="datum"):
        converter(string_rules=[string_rule()]).convert(datum)


# -- configs -------------------------------------------------------------------------------


def test_a_full_jubatus_config_with_empty_parts_is_accepted() -> None:
    conv = Converter.from_config(
        {
            "string_filter_types": {},
            "string_filter_rules": [],
            "num_filter_types": {},
            "num_filter_rules": [],
            "string_types": {},
            "string_rules": [string_rule(sample="tf", glob="bin")],
            "num_types": {},
            "num_rules": [{"key": "*", "type": "num"}],
            "binary_types": {},
            "binary_rules": [],
            "combination_types": {},
            "combination_rules": [],
        }
    )
    assert conv.convert(Datum([("k", "v")], [("n", 2.0)])) == {"k$v@str#tf/bin": 1.0, "n@num": 2.0}


BAD_CONFIGS: list[tuple[object, str]] = [
    ([], "converter: expected an object, got array"),
    ({"string_rules": {}}, "converter.string_rules: expected an array, got object"),
    ({"string_rules": ["x"]}, r"converter.string_rules\[0\]: expected an object, got string"),
    ({"string_rules": [string_rule(type_="foo")]}, r"string_rules\[0\].type: unknown type 'foo'"),
    (
        {"string_rules": [string_rule(), string_rule(sample="idf")]},
        r"string_rules\[1\].sample_weight: unknown sample weight 'idf'",
    ),
    ({"string_rules": [string_rule(glob="tf")]}, r"global_weight: unknown global weight 'tf'"),
    ({"string_rules": [string_rule(glob="bm25")]}, r"global_weight: 'bm25' is not supported"),
    ({"string_rules": [string_rule(glob="weight")]}, r"'weight' is not supported"),
    (
        {"string_rules": [{"type": "str", "sample_weight": "bin", "global_weight": "bin"}]},
        r"string_rules\[0\].key: required",
    ),
    ({"string_rules": [string_rule(key=3)]}, r"\[0\].key: expected a string, got number"),
    ({"string_rules": [string_rule(oops="1")]}, r"string_rules\[0\].oops: unknown key"),
    ({"string_rules": [string_rule(key="/(/")]}, r"string_rules\[0\].key: bad regular expression"),
    ({"string_rules": [string_rule(except_=1)]}, r"\[0\].except: expected a string"),
    ({"string_types": {"t": {"method": "regexp"}}}, "string_types.t.method: unknown method"),
    ({"string_types": {"t": {}}}, "string_types.t.method: required"),
    ({"string_types": {"t": {"method": "ngram"}}}, "string_types.t.char_num: required"),
    (
        {"string_types": {"t": {"method": "ngram", "char_num": "0"}}},
        "char_num: must be a positive integer",
    ),
    (
        {"string_types": {"t": {"method": "ngram", "char_num": "two"}}},
        "char_num: must be an integer",
    ),
    ({"string_types": {"t": {"method": "split"}}}, "string_types.t.separators: required"),
    ({"num_rules": [{"key": "*", "type": "sqrt"}]}, r"num_rules\[0\].type: unknown type 'sqrt'"),
    ({"num_rules": [{"key": "*"}]}, r"num_rules\[0\].type: required"),
    ({"num_types": {"n": {"method": "x"}}}, "num_types.n.method: unknown method 'x'"),
    ({"string_filter_rules": [{"key": "*"}]}, "string_filter_rules: string filters are not"),
    ({"num_filter_types": {"f": {}}}, "num_filter_types: number filters are not supported"),
    ({"binary_rules": [{"key": "*"}]}, "binary_rules: binary features are not supported"),
    ({"combination_rules": [{}]}, "combination_rules: combination features are not"),
    ({"hash_max_size": 16}, "hash_max_size: feature hashing is not supported"),
    ({"string_rulez": []}, "converter.string_rulez: unknown key"),
]


@pytest.mark.parametrize(("config", "message"), BAD_CONFIGS)
def test_bad_configs_name_the_path(config: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Converter.from_config(config)


def test_the_unknown_type_message_is_exact() -> None:
    with pytest.raises(ConfigError) as caught:
        Converter.from_config({"string_rules": [string_rule(type_="foo")]})
    assert str(caught.value) == "converter.string_rules[0].type: unknown type 'foo'"


WIRE_CONVERTER = {
    "string_rules": [
        {"key": "*", "type": "space", "sample_weight": "bin", "global_weight": "bin"},
        {"key": "t*", "type": "str", "sample_weight": "tf", "global_weight": "bin"},
    ],
    "num_rules": [{"key": "*", "type": "num"}, {"key": "n*", "type": "log"}],
}
GOOD_WIRE = [
    [[[b"text", b"a b a"], [b"x", b"c"]], [[b"n", 2.5], [b"m", 0]], [[b"blob", b"\x00"]]],
    [[], [], []],
    [[[b"text", b"z"]], [[b"n", -1.0]], []],
]
BAD_WIRE = [
    "not a datum",
    [[], []],
    [[[b"text"]], [], []],
    [[[b"text", "a str"]], [], []],
    [[[b"te$t", b"a"]], [], []],  # a '$' in a key a rule reads
    [[], [[b"n", "1"]], []],
    [[], [[[b"n"], 1.0]], []],  # an unhashable key
    [[], [[b"\xff", 1.0]], []],  # not UTF-8
    [[], [], [[b"blob", 1]]],
]


@pytest.mark.parametrize("bad", BAD_WIRE, ids=repr)
def test_extract_wire_many_is_extract_wire_end_to_end(bad: object) -> None:
    """Features of every datum laid end to end, as extract_wire gives them one by one;
    ValueError where it gives None."""
    converter = Converter.from_config(WIRE_CONVERTER)
    names, values, lengths = converter.extract_wire_many(list(GOOD_WIRE))
    one_by_one = [converter.extract_wire(datum) for datum in GOOD_WIRE]
    assert lengths == [len(one[0]) for one in one_by_one if one is not None]
    assert names == [name for one in one_by_one if one is not None for name in one[0]]
    assert values == [value for one in one_by_one if one is not None for value in one[1]]
    assert converter.extract_wire(bad) is None
    with pytest.raises(ValueError):
        converter.extract_wire_many([*GOOD_WIRE, bad])
    idf = Converter.from_config(
        {
            "string_rules": [
                {"key": "*", "type": "str", "sample_weight": "bin", "global_weight": "idf"}
            ]
        }
    )
    with pytest.raises(ValueError):
        idf.extract_wire_many(list(GOOD_WIRE))


def test_the_string_caches_are_bounded_in_text_as_well_as_entries() -> None:
    """A client's long or ever-new values must not fill the memory: a value past
    CACHED_VALUE_MAX is not kept, and the kept text stays under CACHE_TEXT."""
    from engines.common.converter import CACHE_TEXT, CACHED_VALUE_MAX, StringCache

    cache = StringCache()
    cache.keep("long", ("entry",), CACHED_VALUE_MAX + 1)
    assert "long" not in cache and cache.text == 0
    for i in range(3 * CACHE_TEXT // CACHED_VALUE_MAX):
        cache.keep(i, ("entry",), CACHED_VALUE_MAX)
        assert cache.text <= CACHE_TEXT
    assert 0 < len(cache) <= CACHE_TEXT // CACHED_VALUE_MAX
    # The classifier's converter, over the wire form: long values are converted, not kept.
    converter = Converter.from_config({"string_rules": [string_rule(type_="space")]})
    for i in range(50):
        words = " ".join(f"w{i}_{j}" for j in range(2000)).encode()
        extracted = converter.extract_wire([[[b"t", words]], [], []])
        assert extracted is not None and len(extracted[0]) == 2000
    assert converter._wire_strings.text == 0 and len(converter._wire_strings) == 0
    assert converter.extract_wire([[[b"t", b"short words"]], [], []]) is not None
    assert len(converter._wire_strings) == 1  # a short one is


@pytest.mark.parametrize("idf", [False, True])
def test_numbers_seen_before_give_what_they_gave_the_first_time(idf: bool) -> None:
    """A datum's numbers whose keys each meet one ``num`` rule, seen before, take a
    shortcut: the features (and idf offsets) equal a fresh converter's, and a datum with
    any other number (an int, another rule's key, a refused one) takes the long way,
    refused as before."""
    config = {
        "string_rules": [string_rule(type_="space", glob="idf" if idf else "bin")],
        "num_rules": [
            {"key": "n*", "type": "num"},
            {"key": "l*", "type": "log"},
            {"key": "s*", "type": "str"},
            {"key": "d*", "type": "num"},
        ],
    }
    datums = [
        Datum([("t", "a b")], [("n1", 2.5), ("n2", -1.0)]),
        Datum([], [("n1", 0.5), ("l1", 3.0), ("n2", 4.0)]),  # a log rule's key
        Datum([], [("n2", 3), ("n1", 1.0)]),  # an int (a caller's own datum)
        Datum([("t", "c")], [("s1", 7.0), ("n1", 1.0)]),  # a str rule's key
        Datum([], [("n3", float("nan")), ("n1", 1e300)]),
        Datum([], []),
    ]
    warm = Converter.from_config(config)
    for _ in range(3):  # the first pass learns the keys, the next ones take the shortcut
        for datum in datums:
            fresh = Converter.from_config(config).extract(datum)
            assert repr(warm.extract(datum)) == repr(fresh)  # (repr: nan is not nan)
    assert set(warm._plain_text_numbers) == {"n1", "n2", "n3"}
    for bad in (
        Datum([], [("n1", 1.0), ("d$x", 2.0)]),  # a '$' in a key a rule reads
        Datum([], [("n1", 1.0), ("n2", "2")]),  # type: ignore[list-item]
        Datum([], [("n1", 1.0), ("n2",)]),  # type: ignore[list-item]
    ):
        with pytest.raises(ValueError, match=r"datum|cannot contain"):
            warm.extract(bad)
