"""Jubatus's whole datum converter and its weight manager, as the engines other than the
classifier use them (regression, weight, nearest_neighbor, recommender, anomaly), and the
classifier's neighbour methods; its linear methods use the converter (not the weight
manager: they keep the counts themselves) for the configs their fast converter refuses
(:mod:`engines.classifier.full_converter`).

:class:`FeatureConverter` reads a Jubatus ``converter`` config and turns a datum into the
same *list* of ``(feature, value)`` pairs Jubatus's ``datum_to_fv_converter`` builds, in
the same order and with the same names, duplicates kept (an engine that wants a map merges
them; ``weight`` sorts and merges, as Jubatus's ``sort_and_merge`` does):

1. string filters (``regexp``: every match replaced, ``\\0``-``\\9`` name groups) and number
   filters (``add``, ``linear_normalization``, ``gaussian_normalization``,
   ``sigmoid_normalization``) add values under ``KEY + suffix``, each rule also filtering
   what earlier rules produced;
2. string rules (types ``str``, ``space``, ``ngram``, ``regexp``, ``split``) give
   ``KEY$TOKEN@TYPE#SAMPLE/GLOBAL`` with the sample weight (``bin``, ``tf``, ``log_tf``),
   first for the datum's own strings then for the filtered ones; number rules (``num``,
   ``log``, ``str``) give ``KEY@TYPE`` (``KEY@str$VALUE``);
3. the global weights by the key's suffix: ``bin``, ``idf`` (``log((N+1)/(df+1))``),
   ``idf1`` (idf + 1), ``bm25`` (k1 = 1.2, b = 0.75 over the key's group) and ``weight``
   (user weights: Jubatus offers no call that sets them, so such features weigh 0); a
   feature that weighs 0 is dropped;
4. combination rules (``add``, ``mul``) over every pair of the weighted features, named
   ``LEFT&RIGHT/TYPE``;
5. ``hash_max_size``: every name becomes ``FNV-1(name) % size`` in decimal.

Counting documents (``convert_and_update``, what Jubatus's training calls do) happens before
weighing, for every feature of the document, when a rule weighs by idf or bm25, exactly as
Jubatus's ``weight_manager`` counts; the counts live in :class:`WeightManager` as master
(mixed) plus diff (local) and mix by adding up.

Two things differ from Jubatus on purpose or by necessity: tokens of one value come out in
order of first occurrence (Jubatus's order is its hash table's), and plugins (``dynamic``
types, MeCab, binary features) are refused with an error naming the key. Every config
error is a :class:`~runtime.errors.ConfigError` naming its path.
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from engines.common import kernels
from engines.common.config import json_type
from engines.common.converter import DatumLike, KeyMatcher, StringCache, key_matcher
from engines.common.hashing import fnv1_64
from runtime.errors import ConfigError
from runtime.mix.mixable import DiffError, read_fields, read_float, read_int, read_map
from runtime.wire.datum import Datum

#: A sparse feature vector in Jubatus's order (duplicates possible).
Features = list[tuple[str, float]]

SPACES = " \t\f\n\r\v"
BM25_K1 = 1.2
BM25_B = 0.75

_CONFIG_KEYS = (
    "string_filter_types",
    "string_filter_rules",
    "num_filter_types",
    "num_filter_rules",
    "string_types",
    "string_rules",
    "num_types",
    "num_rules",
    "binary_types",
    "binary_rules",
    "combination_types",
    "combination_rules",
    "hash_max_size",
)
_SAMPLE_WEIGHTS = ("bin", "tf", "log_tf")
_GLOBAL_WEIGHTS = ("bin", "idf", "idf1", "bm25", "weight")


# -- config reading ------------------------------------------------------------------------


def _object(value: object, path: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected an object, got {json_type(value)}")
    return {str(k): v for k, v in value.items()}


def _optional_object(value: object, path: str) -> dict[str, object]:
    return {} if value is None else _object(value, path)


def _list(value: object, path: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected an array, got {json_type(value)}")
    return value


def _text(fields: Mapping[str, object], name: str, path: str) -> str:
    if name not in fields:
        raise ConfigError(f"{path}.{name}: required")
    value = fields[name]
    if not isinstance(value, str):
        raise ConfigError(f"{path}.{name}: expected a string, got {json_type(value)}")
    return value


def _param(fields: Mapping[str, object], name: str, path: str, default: str | None = None) -> str:
    """A type parameter: Jubatus's are strings; numbers are taken as their text."""
    if name not in fields:
        if default is not None:
            return default
        raise ConfigError(f"{path}.{name}: required")
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{path}.{name}: expected a string, got {json_type(value)}")
    return value if isinstance(value, str) else repr(value)


def _number_param(
    fields: Mapping[str, object], name: str, path: str, default: str | None = None
) -> float:
    text = _param(fields, name, path, default)
    try:
        number = float(text.strip())
    except ValueError:
        raise ConfigError(f"{path}.{name}: must be a number, got {text!r}") from None
    if math.isnan(number):
        raise ConfigError(f"{path}.{name}: must be a number, got {text!r}")
    return number


def _int_param(
    fields: Mapping[str, object], name: str, path: str, default: str | None = None
) -> int:
    text = _param(fields, name, path, default)
    try:
        return int(text.strip())
    except ValueError:
        raise ConfigError(f"{path}.{name}: must be an integer, got {text!r}") from None


def _only(fields: Mapping[str, object], allowed: Sequence[str], path: str) -> None:
    for name in fields:
        if name not in allowed:
            raise ConfigError.unknown_key(f"{path}.{name}", allowed)


def _regex(pattern: str, path: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ConfigError(f"{path}: bad regular expression {pattern!r}: {error}") from None


def _matcher(fields: Mapping[str, object], key: str, exclude: str, path: str) -> KeyMatcher:
    matcher = key_matcher(_text(fields, key, path), f"{path}.{key}")
    if fields.get(exclude) is None:
        return matcher
    excluded = key_matcher(_text(fields, exclude, path), f"{path}.{exclude}")
    return KeyMatcher(lambda k: matcher(k) and not excluded(k), matcher.pattern)


# -- string splitters and filters ----------------------------------------------------------

#: token -> score, in order of first occurrence
Splitter = Callable[[str], list[str]]

_SPACE_TOKENS = re.compile(f"[^{re.escape(SPACES)}]+")


def _whole(value: str) -> list[str]:
    return [value]


def _split_spaces(value: str) -> list[str]:
    return _SPACE_TOKENS.findall(value)


def _ngrams(size: int) -> Splitter:
    if size == 2:  # the usual bigrams: each character added to the next, in C
        return lambda value: list(map(operator.add, value, value[1:]))

    def split(value: str) -> list[str]:
        return [value[i : i + size] for i in range(len(value) - size + 1)]

    return split


def _char_splitter(separators: str) -> Splitter:
    if not separators:
        return lambda value: [value] if value else []
    return re.compile(f"[^{re.escape(separators)}]+").findall


def _regexp_splitter(pattern: re.Pattern[str], group: int) -> Splitter:
    def split(value: str) -> list[str]:
        tokens: list[str] = []
        position = 0
        while position < len(value):
            found = pattern.match(value, position)
            if found is None:
                position += 1
                continue
            begin, end = found.span(group)
            tokens.append(value[begin:end] if begin >= 0 else "")
            position += max(end - begin, 1) if begin >= 0 else 1
        return tokens

    return split


def _string_type(name: str, params: object, path: str) -> Splitter:
    fields = _object(params, path)
    method = _text(fields, "method", path)
    if method == "ngram":
        _only(fields, ("method", "char_num"), path)
        size = _int_param(fields, "char_num", path)
        if size <= 0:
            raise ConfigError(f"{path}.char_num: must be a positive integer, got {size}")
        return _ngrams(size)
    if method == "split":
        _only(fields, ("method", "separators"), path)
        return _char_splitter(_param(fields, "separators", path))
    if method == "regexp":
        _only(fields, ("method", "pattern", "group"), path)
        pattern = _regex(_param(fields, "pattern", path), f"{path}.pattern")
        group = _int_param(fields, "group", path, "0")
        if group < 0 or group > pattern.groups:
            raise ConfigError(f"{path}.group: the pattern has {pattern.groups} groups, got {group}")
        return _regexp_splitter(pattern, group)
    if method == "dynamic":
        raise ConfigError(f"{path}.method: plugins ('dynamic') are not supported")
    raise ConfigError(f"{path}.method: unknown method {method!r} (known: ngram, regexp, split)")


_REPLACEMENT = re.compile(r"\\(.)|([^\\]+)", re.S)


def _regexp_filter(pattern: re.Pattern[str], replace: str, path: str) -> Callable[[str], str]:
    parts: list[str | int] = []
    i = 0
    while i < len(replace):
        char = replace[i]
        if char != "\\":
            parts.append(char)
            i += 1
            continue
        if i + 1 >= len(replace):
            raise ConfigError(f"{path}.replace: a '\\' must be followed by 0-9 or '\\'")
        char = replace[i + 1]
        if char == "\\":
            parts.append("\\")
        elif char.isdigit() and char.isascii():
            group = int(char)
            if group > pattern.groups:
                raise ConfigError(f"{path}.replace: no capture group {group} in the pattern")
            parts.append(group)
        else:
            raise ConfigError(f"{path}.replace: a '\\' must be followed by 0-9 or '\\'")
        i += 2

    def apply(value: str) -> str:
        out: list[str] = []
        position = 0
        end = len(value)
        while position <= end:
            found = pattern.match(value, position)
            if found is not None:
                for part in parts:
                    out.append(part if isinstance(part, str) else (found.group(part) or ""))
                length = found.end() - position
                position += length
                if length > 0:
                    continue
            if position < end:
                out.append(value[position])
            position += 1
        return "".join(out)

    return apply


def _string_filter(params: object, path: str) -> Callable[[str], str]:
    fields = _object(params, path)
    method = _text(fields, "method", path)
    if method == "regexp":
        _only(fields, ("method", "pattern", "replace"), path)
        pattern = _regex(_param(fields, "pattern", path), f"{path}.pattern")
        return _regexp_filter(pattern, _param(fields, "replace", path), path)
    if method == "dynamic":
        raise ConfigError(f"{path}.method: plugins ('dynamic') are not supported")
    raise ConfigError(f"{path}.method: unknown filter {method!r} (known: regexp)")


def _num_filter(params: object, path: str) -> Callable[[float], float]:
    fields = _object(params, path)
    method = _text(fields, "method", path)
    if method == "add":
        _only(fields, ("method", "value"), path)
        amount = _number_param(fields, "value", path)
        return lambda v: v + amount
    if method == "linear_normalization":
        _only(fields, ("method", "min", "max", "truncate"), path)
        low = _number_param(fields, "min", path)
        high = _number_param(fields, "max", path)
        truncate = _param(fields, "truncate", path, "True") == "True"
        if high <= low:
            raise ConfigError(f"{path}.max: must be bigger than min ({low}), got {high}")

        def linear(v: float) -> float:
            if truncate:
                if high < v:
                    return 1.0
                if v < low:
                    return 0.0
            return (v - low) / (high - low)

        return linear
    if method == "gaussian_normalization":
        _only(fields, ("method", "average", "standard_deviation"), path)
        average = _number_param(fields, "average", path)
        deviation = _number_param(fields, "standard_deviation", path)
        if deviation < 0:
            raise ConfigError(f"{path}.standard_deviation: must not be negative")

        def gaussian(v: float) -> float:
            try:
                return (v - average) / deviation
            except ZeroDivisionError:
                return math.copysign(math.inf, v - average) if v != average else math.nan

        return gaussian
    if method == "sigmoid_normalization":
        _only(fields, ("method", "gain", "bias"), path)
        gain = _number_param(fields, "gain", path, "1")
        bias = _number_param(fields, "bias", path, "0")
        if gain == 0.0:
            raise ConfigError(f"{path}.gain: must not be zero")

        def sigmoid(v: float) -> float:
            exponent = -gain * (v - bias)
            if exponent > 700.0:
                return 0.0
            return 1.0 / (1.0 + math.exp(exponent))

        return sigmoid
    if method == "dynamic":
        raise ConfigError(f"{path}.method: plugins ('dynamic') are not supported")
    raise ConfigError(
        f"{path}.method: unknown filter {method!r} "
        "(known: add, linear_normalization, gaussian_normalization, sigmoid_normalization)"
    )


# -- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FilterRule:
    matcher: KeyMatcher
    apply: Callable[[object], object]
    suffix: str


@dataclass(frozen=True)
class _StringRule:
    matcher: KeyMatcher
    type_name: str
    splitter: Splitter
    sample_weight: str
    global_weight: str


@dataclass(frozen=True)
class _NumRule:
    matcher: KeyMatcher
    type_name: str


@dataclass(frozen=True)
class _CombinationRule:
    left: KeyMatcher
    right: KeyMatcher
    type_name: str


def format_number(value: float) -> str:
    """A number as C++'s ``ostream << double`` prints it (``%g``): ``KEY@str$VALUE``."""
    text = format(value, "g")
    return text


# -- the weight manager --------------------------------------------------------------------


@dataclass
class KeywordWeights:
    """One part (master or diff) of Jubatus's ``keyword_weights``."""

    document_count: int = 0
    document_frequencies: dict[str, float] = field(default_factory=dict)
    group_frequencies: dict[str, float] = field(default_factory=dict)
    group_total_lengths: dict[str, float] = field(default_factory=dict)

    def count(self, features: Features, groups: bool) -> None:
        self.document_count += 1
        frequencies = self.document_frequencies
        seen_groups: dict[str, None] = {}
        for name, value in features:
            frequencies[name] = frequencies.get(name, 0.0) + 1.0
            if groups:
                group = group_key(name)
                if group:
                    seen_groups[group] = None
                    lengths = self.group_total_lengths
                    lengths[group] = lengths.get(group, 0.0) + value
        if groups:
            for group in seen_groups:
                self.group_frequencies[group] = self.group_frequencies.get(group, 0.0) + 1.0

    def merge(self, other: KeywordWeights) -> None:
        self.document_count += other.document_count
        for mine, theirs in (
            (self.document_frequencies, other.document_frequencies),
            (self.group_frequencies, other.group_frequencies),
            (self.group_total_lengths, other.group_total_lengths),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0.0) + value

    def subtract(self, other: KeywordWeights) -> None:
        self.document_count = max(self.document_count - other.document_count, 0)
        for mine, theirs in (
            (self.document_frequencies, other.document_frequencies),
            (self.group_frequencies, other.group_frequencies),
            (self.group_total_lengths, other.group_total_lengths),
        ):
            for key, value in theirs.items():
                rest = mine.get(key, 0.0) - value
                if rest != 0.0:
                    mine[key] = rest
                else:
                    mine.pop(key, None)

    def copy(self) -> KeywordWeights:
        return KeywordWeights(
            self.document_count,
            dict(self.document_frequencies),
            dict(self.group_frequencies),
            dict(self.group_total_lengths),
        )

    def status(self, prefix: str) -> dict[str, str]:
        return keyword_status(
            prefix,
            documents=self.document_count,
            frequencies=len(self.document_frequencies),
            groups=len(self.group_frequencies),
            group_lengths=len(self.group_total_lengths),
        )

    def to_plain(self) -> dict[str, object]:
        return {
            "document_count": self.document_count,
            "document_frequencies": dict(self.document_frequencies),
            "group_frequencies": dict(self.group_frequencies),
            "group_total_lengths": dict(self.group_total_lengths),
        }

    @classmethod
    def from_plain(cls, value: object, path: str) -> KeywordWeights:
        fields = read_fields(
            value,
            path,
            ("document_count", "document_frequencies", "group_frequencies", "group_total_lengths"),
        )

        def table(name: str) -> dict[str, float]:
            where = f"{path}.{name}"
            return {
                key: read_float(number, f"{where}[{key!r}]")
                for key, number in read_map(fields[name], where).items()
            }

        return cls(
            read_int(fields["document_count"], f"{path}.document_count"),
            table("document_frequencies"),
            table("group_frequencies"),
            table("group_total_lengths"),
        )


def group_key(name: str) -> str:
    """``key$value@rule#sw/gw`` → ``key@rule#sw/gw``; ``""`` for number features."""
    at = name.rfind("@")
    if at < 0:
        return ""
    dollar = name.find("$")
    if dollar < 0:
        return ""
    return name[:dollar] + name[at:]


def group_lengths(features: Features) -> dict[str, float]:
    """Each string group's length in one datum: the sum of its features' values (bm25)."""
    lengths: dict[str, float] = {}
    for name, amount in features:
        group = group_key(name)
        if group:
            lengths[group] = lengths.get(group, 0.0) + amount
    return lengths


def bm25(value: float, count: float, frequency: float, length: float, average: float) -> float:
    """Jubatus's bm25 weight of a feature of ``value`` seen in ``frequency`` of ``count``
    documents, its group ``length`` long in this datum and ``average`` long on average."""
    try:
        ratio = length / average
    except ZeroDivisionError:
        ratio = math.inf if length else math.nan
    try:
        idf = math.log((count - frequency + 0.5) / (frequency + 0.5))
    except ValueError:
        idf = math.nan
    return idf * ((value * (BM25_K1 + 1)) / (value + BM25_K1 * (1 - BM25_B + BM25_B * ratio)))


class WeightManager:
    """Document counts for idf and bm25, master (mixed) plus diff (local), as Jubatus's
    ``weight_manager`` keeps them; mixes by adding the diffs up."""

    def __init__(self) -> None:
        self.master = KeywordWeights()
        self.diff = KeywordWeights()
        self._sent: KeywordWeights | None = None

    # -- weighing --------------------------------------------------------------------------

    @property
    def document_count(self) -> int:
        return self.master.document_count + self.diff.document_count

    def document_frequency(self, name: str) -> float:
        return self.master.document_frequencies.get(name, 0.0) + self.diff.document_frequencies.get(
            name, 0.0
        )

    def average_group_length(self, group: str) -> float:
        frequency = self.master.group_frequencies.get(group, 0.0) + self.diff.group_frequencies.get(
            group, 0.0
        )
        if frequency == 0:
            return 0.0
        total = self.master.group_total_lengths.get(group, 0.0) + self.diff.group_total_lengths.get(
            group, 0.0
        )
        return total / frequency

    def update(self, features: Features, idf: bool, bm25: bool) -> None:
        if idf or bm25:
            self.diff.count(features, bm25)

    def weigh(self, features: Features) -> Features:
        """Apply the global weights by each key's suffix; features weighing 0 are dropped."""
        compiled = kernels.compiled
        if compiled is not None:  # idf and idf1 in C (the same bits); bm25 here
            in_c: Features | None = compiled.weigh_idf(
                features,
                self.master.document_frequencies,
                self.diff.document_frequencies,
                float(self.document_count),
            )
            if in_c is not None:
                return in_c
        weighed: Features = []
        lengths: dict[str, float] | None = None
        count: float | None = None  # the document count, read once
        master = self.master.document_frequencies
        diff = self.diff.document_frequencies
        log = math.log
        for name, value in features:
            slash = name.rfind("/")
            kind = name[slash + 1 :] if slash >= 0 else ""
            if kind == "idf" or kind == "idf1":
                if count is None:
                    count = float(self.document_count)
                frequency = master.get(name, 0.0) + diff.get(name, 0.0)  # document_frequency
                value = (log((count + 1) / (frequency + 1)) + (kind == "idf1")) * value
            elif kind == "bm25":
                if lengths is None:
                    lengths = group_lengths(features)
                group = group_key(name)
                value = bm25(
                    value,
                    float(self.document_count),
                    self.document_frequency(name),
                    lengths.get(group, 0.0),
                    self.average_group_length(group),
                )
            elif kind == "weight":
                value = 0.0  # user weights: Jubatus has no call that sets them
            if value != 0.0:
                weighed.append((name, value))
        return weighed

    # -- state -----------------------------------------------------------------------------

    def clear(self) -> None:
        self.master = KeywordWeights()
        self.diff = KeywordWeights()
        self._sent = None

    def status(self) -> dict[str, str]:
        return {**self.diff.status("diff"), **self.master.status("master")}

    def take_diff(self) -> dict[str, object]:
        self._sent = self.diff.copy()
        return self.diff.to_plain()

    def apply_mixed(self, mixed: KeywordWeights) -> None:
        self.master.merge(mixed)
        if self._sent is not None:
            self.diff.subtract(self._sent)
        else:
            self.diff = KeywordWeights()
        self._sent = None

    def pack(self) -> dict[str, object]:
        return {"master": self.master.to_plain(), "diff": self.diff.to_plain()}

    @classmethod
    def unpack(cls, value: object, path: str) -> WeightManager:
        """A manager from :meth:`pack`; raises :class:`DiffError`."""
        fields = read_fields(value, path, ("master", "diff"))
        manager = cls()
        manager.master = KeywordWeights.from_plain(fields["master"], f"{path}.master")
        manager.diff = KeywordWeights.from_plain(fields["diff"], f"{path}.diff")
        return manager

    def model(self) -> dict[str, object]:
        """Master and diff together (what a joining server copies)."""
        merged = self.master.copy()
        merged.merge(self.diff)
        return merged.to_plain()


def mix_keyword_weights(lhs: object, rhs: object, path: str) -> dict[str, object]:
    """Two plain :class:`KeywordWeights` diffs added up (plain in, plain out)."""
    left = KeywordWeights.from_plain(lhs, f"{path}.lhs")
    left.merge(KeywordWeights.from_plain(rhs, f"{path}.rhs"))
    return left.to_plain()


# -- the converter -------------------------------------------------------------------------


class ConvertedDatum:
    """A datum the wire carried, already turned into its unweighted features by
    :meth:`FeatureConverter.wire_datum` (checked, filters none): the converter's
    :meth:`~FeatureConverter.check` passes it and :meth:`~FeatureConverter.unweighted`
    gives its features, so an engine's calls take it where they take a datum. Its values
    are not kept (the three lists are empty): only the converter that made it reads it."""

    __slots__ = ("features",)

    def __init__(self, features: Features) -> None:
        #: The unweighted features, a list of this datum's own (never changed by a reader).
        self.features = features

    @property
    def string_values(self) -> Sequence[tuple[str, str]]:
        return ()

    @property
    def num_values(self) -> Sequence[tuple[str, float]]:
        return ()

    @property
    def binary_values(self) -> Sequence[tuple[str, bytes]]:
        return ()


#: What one ``[key, value]`` string pair of the wire gives: per string rule, its features.
_StringEntry = tuple[tuple[tuple[str, float], ...], ...]


class FeatureConverter:
    """A Jubatus ``converter`` config turned into a function from datums to features."""

    def __init__(
        self,
        string_filters: list[_FilterRule],
        num_filters: list[_FilterRule],
        string_rules: list[_StringRule],
        num_rules: list[_NumRule],
        combinations: list[_CombinationRule],
        hash_max_size: int | None,
    ) -> None:
        self._string_filters = string_filters
        self._num_filters = num_filters
        self._string_rules = string_rules
        self._num_rules = num_rules
        self._combinations = combinations
        self._hash_max_size = hash_max_size
        self.uses_idf = any(r.global_weight in ("idf", "idf1") for r in string_rules)
        self.uses_bm25 = any(r.global_weight == "bm25" for r in string_rules)
        #: Whether weighing looks at anything but the values (then rows must be re-weighed).
        self.weighs_globally = any(r.global_weight != "bin" for r in string_rules)
        self.weights = WeightManager()
        self._num_plans = StringCache()
        #: The wire's (key, value) string pairs → what they give; number keys → plans
        #: (bounded in entries and in text: see :class:`~engines.common.converter.StringCache`).
        self._wire_strings = StringCache()
        self._wire_num_plans = StringCache()
        #: Whether :meth:`wire_datum` serves (filters make features of several values).
        self._wire_ok = not string_filters and not num_filters

    @classmethod
    def from_config(cls, converter_json: object, path: str = "converter") -> FeatureConverter:
        """Build from an engine config's ``converter``; ``ConfigError`` naming the path."""
        config = _object(converter_json, path)
        for key in config:
            if key not in _CONFIG_KEYS:
                raise ConfigError.unknown_key(f"{path}.{key}", _CONFIG_KEYS)

        size = config.get("hash_max_size")
        hash_max_size: int | None = None
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int):
                raise ConfigError(f"{path}.hash_max_size: expected an integer, got {size!r}")
            if size <= 0:
                raise ConfigError(f"{path}.hash_max_size: must be positive, got {size}")
            hash_max_size = size

        string_filter_types = {
            name: _string_filter(params, f"{path}.string_filter_types.{name}")
            for name, params in _optional_object(
                config.get("string_filter_types"), f"{path}.string_filter_types"
            ).items()
        }
        num_filter_types = {
            name: _num_filter(params, f"{path}.num_filter_types.{name}")
            for name, params in _optional_object(
                config.get("num_filter_types"), f"{path}.num_filter_types"
            ).items()
        }
        splitters: dict[str, Splitter] = {"str": _whole, "space": _split_spaces}
        for name, params in _optional_object(
            config.get("string_types"), f"{path}.string_types"
        ).items():
            splitters[name] = _string_type(name, params, f"{path}.string_types.{name}")
        for name, params in _optional_object(config.get("num_types"), f"{path}.num_types").items():
            where = f"{path}.num_types.{name}"
            method = _text(_object(params, where), "method", where)
            raise ConfigError(f"{where}.method: {method!r}: number types need plugins")
        for name in _optional_object(config.get("binary_types"), f"{path}.binary_types"):
            raise ConfigError(f"{path}.binary_types.{name}: binary features need plugins")
        for name in _optional_object(config.get("combination_types"), f"{path}.combination_types"):
            raise ConfigError(
                f"{path}.combination_types.{name}: combination types other than add and "
                "mul need plugins"
            )

        def filter_rules(key: str, types: Mapping[str, Callable[..., object]]) -> list[_FilterRule]:
            rules = []
            for i, rule in enumerate(_list(config.get(key), f"{path}.{key}")):
                where = f"{path}.{key}[{i}]"
                fields = _object(rule, where)
                _only(fields, ("key", "except", "type", "suffix"), where)
                type_name = _text(fields, "type", where)
                if type_name not in types:
                    raise ConfigError(f"{where}.type: unknown type {type_name!r}")
                rules.append(
                    _FilterRule(
                        _matcher(fields, "key", "except", where),
                        types[type_name],
                        _text(fields, "suffix", where),
                    )
                )
            return rules

        string_filters = filter_rules("string_filter_rules", string_filter_types)
        num_filters = filter_rules("num_filter_rules", num_filter_types)

        string_rules = []
        for i, rule in enumerate(_list(config.get("string_rules"), f"{path}.string_rules")):
            where = f"{path}.string_rules[{i}]"
            fields = _object(rule, where)
            _only(fields, ("key", "except", "type", "sample_weight", "global_weight"), where)
            matcher = _matcher(fields, "key", "except", where)
            type_name = _text(fields, "type", where)
            if type_name not in splitters:
                raise ConfigError(f"{where}.type: unknown type {type_name!r}")
            sample = _text(fields, "sample_weight", where)
            if sample not in _SAMPLE_WEIGHTS:
                raise ConfigError(
                    f"{where}.sample_weight: unknown sample weight {sample!r} "
                    f"(known: {', '.join(_SAMPLE_WEIGHTS)})"
                )
            glob = _text(fields, "global_weight", where)
            if glob not in _GLOBAL_WEIGHTS:
                raise ConfigError(
                    f"{where}.global_weight: unknown global weight {glob!r} "
                    f"(known: {', '.join(_GLOBAL_WEIGHTS)})"
                )
            string_rules.append(_StringRule(matcher, type_name, splitters[type_name], sample, glob))

        num_rules = []
        for i, rule in enumerate(_list(config.get("num_rules"), f"{path}.num_rules")):
            where = f"{path}.num_rules[{i}]"
            fields = _object(rule, where)
            _only(fields, ("key", "except", "type"), where)
            matcher = _matcher(fields, "key", "except", where)
            type_name = _text(fields, "type", where)
            if type_name not in ("num", "log", "str"):
                raise ConfigError(
                    f"{where}.type: unknown type {type_name!r} (known: num, log, str)"
                )
            num_rules.append(_NumRule(matcher, type_name))

        for i, rule in enumerate(_list(config.get("binary_rules"), f"{path}.binary_rules")):
            where = f"{path}.binary_rules[{i}]"
            type_name = _text(_object(rule, where), "type", where)
            raise ConfigError(
                f"{where}.type: unknown type {type_name!r} (binary types need plugins)"
            )

        combinations = []
        for i, rule in enumerate(
            _list(config.get("combination_rules"), f"{path}.combination_rules")
        ):
            where = f"{path}.combination_rules[{i}]"
            fields = _object(rule, where)
            _only(
                fields,
                ("key_left", "except_left", "key_right", "except_right", "type"),
                where,
            )
            type_name = _text(fields, "type", where)
            if type_name not in ("add", "mul"):
                raise ConfigError(f"{where}.type: unknown type {type_name!r} (known: add, mul)")
            combinations.append(
                _CombinationRule(
                    _matcher(fields, "key_left", "except_left", where),
                    _matcher(fields, "key_right", "except_right", where),
                    type_name,
                )
            )
        return cls(
            string_filters, num_filters, string_rules, num_rules, combinations, hash_max_size
        )

    # -- conversion ------------------------------------------------------------------------

    @staticmethod
    def check_storable(datum: DatumLike) -> None:
        """``ValueError`` when a datum's numbers cannot go into a model: one is not finite,
        or their squares add up past the largest double (a row's norm would be infinite, a
        file or a mix could not carry it). Update calls check this before they change
        anything; queries take any number, as Jubatus does."""
        pairs = datum.features if type(datum) is ConvertedDatum else datum.num_values
        values = [value for _, value in pairs]
        try:
            total = sum(map(operator.mul, values, values), 0.0)
        except (OverflowError, TypeError):
            total = math.inf
        if not math.isfinite(total):
            raise ValueError("the datum gives a feature too large or not finite")

    def check(self, datum: DatumLike) -> None:
        """``ValueError`` when the datum cannot be converted (bad shapes, ``$`` in a key)."""
        if type(datum) is ConvertedDatum:  # checked when it was made
            return
        if type(datum) is Datum:  # its methods (and the wire) checked every value's type
            for key, _ in datum.num_values:
                if "$" in key:
                    self.unweighted(datum)  # raises for a '$' in a key a rule would use
            for key, _ in datum.string_values:
                if "$" in key:
                    self.unweighted(datum)
            return
        for what, values, ok in (
            ("string_values", datum.string_values, lambda v: isinstance(v, str)),
            ("num_values", datum.num_values, _is_number),
            ("binary_values", datum.binary_values, lambda v: isinstance(v, bytes)),
        ):
            pairs: Sequence[object] = values
            for i, pair in enumerate(pairs):
                if not isinstance(pair, tuple | list) or len(pair) != 2:
                    raise ValueError(f"datum {what}[{i}]: expected a (key, value) pair")
                key, value = pair
                if not isinstance(key, str):
                    raise ValueError(f"datum {what}[{i}]: the key must be a string")
                if not ok(value):
                    raise ValueError(f"datum {what}[{i}] ({key!r}): wrong value type")
        if any("$" in key for key, _ in (*datum.string_values, *datum.num_values)):
            self.unweighted(datum)  # raises for a '$' in a key a rule would use

    def unweighted(self, datum: DatumLike) -> Features:
        """Filters, then string and number rules: Jubatus's ``convert_unweighted``."""
        if type(datum) is ConvertedDatum:
            return datum.features
        features: Features = []
        strings = datum.string_values
        if self._string_filters:
            filtered_strings: list[tuple[str, str]] = []
            for rule in self._string_filters:
                update = [
                    (key + rule.suffix, str(rule.apply(value)))
                    for key, value in (*strings, *filtered_strings)
                    if rule.matcher(key)
                ]
                filtered_strings.extend(update)
            self._strings(strings, features)
            self._strings(filtered_strings, features)
        elif strings:
            self._strings(strings, features)

        nums = datum.num_values
        if self._num_filters:
            nums = [(key, float(value)) for key, value in nums]
            filtered_nums: list[tuple[str, float]] = []
            for rule in self._num_filters:
                update_nums = [
                    (key + rule.suffix, float(rule.apply(value)))  # type: ignore[arg-type]
                    for key, value in (*nums, *filtered_nums)
                    if rule.matcher(key)
                ]
                filtered_nums.extend(update_nums)
            self._nums(nums, features)
            self._nums(filtered_nums, features)
        else:
            self._nums(nums, features)
        return features

    def _strings(
        self,
        values: Sequence[tuple[str, str]],
        out: Features,
        rules: Sequence[_StringRule] | None = None,
    ) -> None:
        for rule in self._string_rules if rules is None else rules:
            suffix = f"@{rule.type_name}#{rule.sample_weight}/{rule.global_weight}"
            sample = rule.sample_weight
            for key, value in values:
                if not rule.matcher(key):
                    continue
                _check_key(key)
                # Occurrences in order of first occurrence; every weight is above 0.
                counts = Counter(rule.splitter(value))
                prefix = f"{key}$"
                if sample == "bin":
                    out.extend([(f"{prefix}{token}{suffix}", 1.0) for token in counts])
                elif sample == "tf":
                    out.extend(
                        [(f"{prefix}{token}{suffix}", float(n)) for token, n in counts.items()]
                    )
                else:
                    out.extend(
                        [
                            (f"{prefix}{token}{suffix}", math.log(1.0 + n))
                            for token, n in counts.items()
                        ]
                    )

    def _num_plan(self, key: str) -> NumPlan:
        """The ``(feature name, type)`` a number under ``key`` gives, by rule (cached); just
        the feature's name when that is one ``num`` feature (the value as it is)."""
        plan: NumPlan | None = self._num_plans.get(key)
        if plan is None:
            steps = []
            for rule in self._num_rules:
                if rule.matcher(key):
                    _check_key(key)
                    steps.append((f"{key}@{rule.type_name}", rule.type_name))
            plan = steps[0][0] if len(steps) == 1 and steps[0][1] == "num" else steps
            self._num_plans.keep(key, plan, len(key))
        return plan

    def _nums(self, values: Sequence[tuple[str, float]], out: Features) -> None:
        plans = self._num_plans
        for key, value in values:
            plan = plans.get(key)
            if plan is None:
                plan = self._num_plan(key)
            if isinstance(plan, str):
                out.append((plan, value))
                continue
            for name, type_name in plan:
                if type_name == "num":
                    out.append((name, value))
                elif type_name == "log":
                    out.append((name, math.log(max(1.0, value))))
                else:
                    out.append((f"{name}${format_number(value)}", 1.0))

    # -- from the wire ---------------------------------------------------------------------

    def wire_datum(self, datum: object) -> ConvertedDatum | None:
        """The datum as the wire carries it (``[[[k, v]...], [[k, n]...], [[k, b]...]]``,
        strings as UTF-8 ``bytes``), converted without a :class:`Datum`: what
        :meth:`unweighted` gives for it, from caches (what one string pair gives, what
        rules a number's key meets). None when it is not well formed in the usual way, the
        converter refuses it (a ``$`` in a key a rule reads) or the config has filters: the
        caller then decodes it properly, which names what is wrong."""
        if not self._wire_ok or type(datum) is not list or len(datum) != 3:
            return None
        strings, numbers, binaries = datum
        if type(strings) is not list or type(numbers) is not list or type(binaries) is not list:
            return None
        features: Features = []
        if strings:
            cache = self._wire_strings
            entries: list[_StringEntry] = []
            for pair in strings:
                if type(pair) is not list or len(pair) != 2:
                    return None
                key, value = pair
                if type(key) is not bytes or type(value) is not bytes:
                    return None
                token = (key, value)
                entry = cache.get(token)
                if entry is None:
                    entry = self._wire_string_entry(key, value)
                    if entry is None:
                        return None
                    cache.keep(token, entry, len(value))
                entries.append(entry)
            for index in range(len(self._string_rules)):  # rule by rule, as unweighted
                for entry in entries:
                    features.extend(entry[index])
        if numbers:
            plans = self._wire_num_plans
            for pair in numbers:
                if type(pair) is not list or len(pair) != 2:
                    return None
                key, value = pair
                if type(value) is not float:
                    if type(value) is not int:
                        return None
                    value = float(value)
                if type(key) is not bytes:
                    return None
                plan = plans.get(key)
                if plan is None:
                    try:
                        plan = self._num_plan(key.decode("utf-8"))
                    except (UnicodeDecodeError, ValueError):
                        return None
                    plans.keep(key, plan, len(key))
                if isinstance(plan, str):
                    features.append((plan, value))
                    continue
                for name, type_name in plan:
                    if type_name == "num":
                        features.append((name, value))
                    elif type_name == "log":
                        features.append((name, math.log(max(1.0, value))))
                    else:
                        features.append((f"{name}${format_number(value)}", 1.0))
        for pair in binaries:
            if type(pair) is not list or len(pair) != 2:
                return None
            if type(pair[0]) is not bytes or type(pair[1]) is not bytes:
                return None
        return ConvertedDatum(features)

    def _wire_string_entry(self, key_bytes: bytes, value_bytes: bytes) -> _StringEntry | None:
        """Per string rule, the features one string pair gives (as :meth:`_strings`); None
        for text that is not UTF-8 or a ``$`` in a key a rule reads."""
        try:
            key = key_bytes.decode("utf-8")
            value = value_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return None
        per_rule: list[tuple[tuple[str, float], ...]] = []
        for rule in self._string_rules:
            if not rule.matcher(key):
                per_rule.append(())
                continue
            if "$" in key:
                return None
            out: Features = []
            self._strings([(key, value)], out, [rule])
            per_rule.append(tuple(out))
        return tuple(per_rule)

    def _finish(self, features: Features) -> Features:
        if self.weighs_globally:
            features = self.weights.weigh(features)
        else:
            features = [feature for feature in features if feature[1] != 0.0]
        return self.combine(features)

    def combine(self, features: Features) -> Features:
        """Weighed features with the combination features added, then hashed by
        ``hash_max_size``: the steps of Jubatus's converter after the global weights.
        ``features`` may be extended in place."""
        if self._combinations and len(features) >= 2:
            size = len(features)
            for rule in self._combinations:
                mul = rule.type_name == "mul"
                for j in range(size - 1):
                    left_name, left_value = features[j]
                    left_l = rule.left(left_name)
                    left_r = rule.right(left_name)
                    if not (left_l or left_r):
                        continue
                    for m in range(j + 1, size):
                        right_name, right_value = features[m]
                        if (left_l and rule.right(right_name)) or (
                            left_r and rule.left(right_name)
                        ):
                            features.append(
                                (
                                    f"{left_name}&{right_name}/{rule.type_name}",
                                    left_value * right_value if mul else left_value + right_value,
                                )
                            )
        if self._hash_max_size is not None:
            size = self._hash_max_size
            features = [(str(fnv1_64(name) % size), value) for name, value in features]
        return features

    def convert(self, datum: DatumLike) -> Features:
        """The datum's features with the current counts (nothing changes)."""
        self.check(datum)
        return self._finish(self.unweighted(datum))

    def convert_and_update(self, datum: DatumLike, *, checked: bool = False) -> Features:
        """As :meth:`convert`, counting the datum as a document first (training calls);
        ``checked``: the caller ran :meth:`check` on it already."""
        if not checked:
            self.check(datum)
        features = self.unweighted(datum)
        self.weights.update(features, self.uses_idf, self.uses_bm25)
        return self._finish(features)


def keyword_status(
    prefix: str, *, documents: int, frequencies: int, groups: int, group_lengths: int
) -> dict[str, str]:
    """Jubatus's ``keyword_weights`` status keys for its ``diff`` or ``master`` part: the
    documents counted, and how many features and groups have counts."""
    return {
        f"{prefix}_document_count": str(documents),
        f"{prefix}_num_document_frequencies": str(frequencies),
        f"{prefix}_num_group_frequencies": str(groups),
        f"{prefix}_num_group_total_lengths": str(group_lengths),
        f"{prefix}_num_weights": "0",
    }


#: What a number under a key gives (see ``FeatureConverter._num_plan``).
NumPlan = str | list[tuple[str, str]]


def _check_key(key: str) -> None:
    if "$" in key:
        raise ValueError(f"feature key cannot contain '$': {key!r}")


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def sort_and_merge(features: Features) -> Features:
    """Sorted by name, equal names summed (Jubatus's ``sort_and_merge``): by the compiled
    kernel when it is built (the same bits)."""
    compiled = kernels.compiled
    if compiled is not None:
        done: Features | None = compiled.sort_and_merge(features)
        if done is not None:
            return done
    merged: dict[str, float] = {}
    get = merged.get
    for name, value in features:
        merged[name] = get(name, 0.0) + value
    return sorted(merged.items())


def revert(
    features: Sequence[tuple[str, float]],
) -> tuple[list[tuple[str, str]], list[tuple[str, float]]]:
    """Features back into datum values, as Jubatus's ``revert_feature``: ``KEY@num`` and
    ``KEY@str$V`` become numbers, ``KEY$VALUE@str#...`` strings; anything else is dropped."""
    strings: list[tuple[str, str]] = []
    nums: list[tuple[str, float]] = []
    for name, value in features:
        at = name.rfind("@")
        if at >= 0:
            kind = name[at + 1 :]
            if kind == "num":
                nums.append((name[:at], value))
                continue
            if kind.startswith("str$"):
                try:
                    nums.append((name[:at], float(kind[4:])))
                    continue
                except ValueError:
                    pass
        sharp = name.rfind("#")
        if sharp < 0:
            continue
        at = name.rfind("@", 0, sharp)
        dollar = name.find("$")
        if at < 0 or dollar < 0 or name[at + 1 : sharp] != "str":
            continue
        strings.append((name[:dollar], name[dollar + 1 : at]))
    return strings, nums


def read_weight_manager(value: object, path: str) -> WeightManager:
    """:meth:`WeightManager.unpack`, raising :class:`DiffError`."""
    try:
        return WeightManager.unpack(value, path)
    except DiffError:
        raise
