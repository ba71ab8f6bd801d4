"""Jubatus's datum-to-feature-vector converter: the ``converter`` block of an engine config.

A datum's string values become features named ``KEY$TOKEN@TYPE#SAMPLE/GLOBAL`` and its
numbers ``KEY@TYPE`` (``KEY@str$VALUE`` for the ``str`` number type), as Jubatus names
them, so weights and config carry over. Supported, with Jubatus's meaning:

- key patterns: ``*`` or empty (every key), ``abc*`` (prefix), ``*abc`` (suffix),
  ``/re/`` (the whole key matches the regular expression), anything else (exact);
  ``except`` takes a pattern of the same kinds;
- string types ``str`` (the whole value), ``space`` (split on spaces, tabs and line
  breaks), and in ``string_types`` the methods ``ngram`` (``char_num`` characters) and
  ``split`` (on any of ``separators``);
- sample weights ``bin`` (1), ``tf`` (occurrences in the value), ``log_tf``
  (``log(1 + tf)``); global weights ``bin`` (1), ``idf`` (``log((N + 1) / (df + 1))``) and
  ``idf1`` (idf + 1), where ``N`` counts the trained documents and ``df`` those holding the
  feature, both counted when a document is trained, including that document;
- number types ``num`` (the value), ``log`` (``log(max(1, value))``), ``str``
  (``KEY@str$VALUE`` with weight 1, the value printed like C's ``%g``).

Features whose value ends up 0 are left out, and a feature produced twice is summed.
Filters, combinations, binary features (Jubatus's need plugins), ``bm25``/``weight``
global weights and ``hash_max_size`` are refused with a clear error rather than ignored
(the classifier then runs on Jubatus's whole converter:
:mod:`engines.classifier.full_converter`).
Every config error is a :class:`~runtime.errors.ConfigError` naming its path, e.g.
``converter.string_rules[0].type: unknown type 'foo'``.

The document counts behind ``idf`` live in :class:`DocumentFrequencies`, kept as master
plus local diff so the classifier can mix them (counts add up across servers). This
module never changes anything but those counts, and only in
:meth:`Converter.convert_and_count`.

:meth:`Converter.extract` and :meth:`Converter.extract_wire` give a datum's features
*before* the global weight (a model that keeps its document counts elsewhere weighs them
itself: see :func:`weigh`), from caches: what one string value of one key gives, and what
rules a number's key meets, are worked out once and kept (up to :data:`CACHE_SIZE`
entries and :data:`CACHE_TEXT` characters each, values up to :data:`CACHED_VALUE_MAX`
characters; then the cache starts again), so a value seen before costs a dict lookup.
``extract_wire`` reads the wire form of a datum (strings as UTF-8 ``bytes``) without
building a :class:`~runtime.wire.datum.Datum`; ``extract_wire_many`` reads a list of them
into one run of features (for a batch scored at once, when nothing is weighed by idf).
They give the features in the order :meth:`Converter.convert` does (string rules first,
each over the datum's strings in order, then each number), which is the order scores are
summed in. The caches are shared by every thread (the writer and the readers of a
snapshot model): entries only depend on the config, so whoever computes one first stores
the same value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engines.common.config import json_type
from runtime.errors import ConfigError
from runtime.mix.mixable import read_fields, read_int, read_map

#: Characters the ``space`` type splits on (Jubatus's set).
SPACES = " \t\f\n\r\v"

_SAMPLE_WEIGHTS = ("bin", "tf", "log_tf")
_GLOBAL_WEIGHTS = ("bin", "idf", "idf1")
_UNSUPPORTED_GLOBAL_WEIGHTS = ("bm25", "weight")
_NUM_TYPES = ("num", "log", "str")
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
#: Parts Jubatus has that Jubako refuses unless they are empty (or null).
_UNSUPPORTED_PARTS = {
    "string_filter_types": "string filters",
    "string_filter_rules": "string filters",
    "num_filter_types": "number filters",
    "num_filter_rules": "number filters",
    "binary_types": "binary features",
    "binary_rules": "binary features",
    "combination_types": "combination features",
    "combination_rules": "combination features",
}


class DatumLike(Protocol):
    """What the converter reads from a datum (``runtime.wire.datum.Datum`` has exactly this)."""

    @property
    def string_values(self) -> Sequence[tuple[str, str]]: ...

    @property
    def num_values(self) -> Sequence[tuple[str, float]]: ...

    @property
    def binary_values(self) -> Sequence[tuple[str, bytes]]: ...


# -- key patterns --------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyMatcher:
    """A Jubatus key pattern (and optionally an ``except`` pattern)."""

    test: Callable[[str], bool]
    pattern: str

    def __call__(self, key: str) -> bool:
        return self.test(key)


def key_matcher(pattern: str, path: str) -> KeyMatcher:
    """The matcher for a ``key``/``except`` pattern, in Jubatus's order of forms."""
    if pattern in ("", "*"):
        return KeyMatcher(lambda key: True, pattern)
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return KeyMatcher(lambda key: key.endswith(suffix), pattern)
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return KeyMatcher(lambda key: key.startswith(prefix), pattern)
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        try:
            regex = re.compile(pattern[1:-1])
        except re.error as error:
            raise ConfigError(f"{path}: bad regular expression {pattern!r}: {error}") from None
        return KeyMatcher(lambda key: regex.fullmatch(key) is not None, pattern)
    return KeyMatcher(lambda key: key == pattern, pattern)


def _rule_matcher(rule: Mapping[str, object], path: str) -> KeyMatcher:
    key = _text(rule, "key", path)
    matcher = key_matcher(key, f"{path}.key")
    if rule.get("except") is None:
        return matcher
    excluded = key_matcher(_text(rule, "except", path), f"{path}.except")
    return KeyMatcher(lambda k: matcher(k) and not excluded(k), f"{key} except {excluded.pattern}")


# -- string splitters ----------------------------------------------------------------------


Splitter = Callable[[str], list[str]]


def _whole(value: str) -> list[str]:
    return [value]


_SPACE_TOKENS = re.compile(f"[^{re.escape(SPACES)}]+")


def _split_spaces(value: str) -> list[str]:
    return _SPACE_TOKENS.findall(value)


def _ngrams(size: int) -> Splitter:
    def split(value: str) -> list[str]:
        return [value[i : i + size] for i in range(len(value) - size + 1)]

    return split


def _separators(chars: str) -> Splitter:
    if not chars:
        return lambda value: [value] if value else []
    tokens = re.compile(f"[^{re.escape(chars)}]+")
    return tokens.findall


def _int_param(params: Mapping[str, object], name: str, path: str) -> int:
    if name not in params:
        raise ConfigError(f"{path}.{name}: required")
    value = params[name]
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(f"{path}.{name}: must be an integer, got {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{path}.{name}: must be an integer, got {value!r}")


def _string_type(params: object, path: str) -> Splitter:
    fields = _object(params, path)
    method = _text(fields, "method", path)
    if method == "ngram":
        _only(fields, {"method", "char_num"}, path)
        size = _int_param(fields, "char_num", path)
        if size <= 0:
            raise ConfigError(f"{path}.char_num: must be a positive integer, got {size}")
        return _ngrams(size)
    if method == "split":
        _only(fields, {"method", "separators"}, path)
        return _separators(_text(fields, "separators", path))
    raise ConfigError(f"{path}.method: unknown method {method!r} (known: ngram, split)")


# -- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StringRule:
    matcher: KeyMatcher
    type_name: str
    splitter: Splitter
    sample_weight: str
    global_weight: str


@dataclass(frozen=True)
class NumRule:
    matcher: KeyMatcher
    type_name: str


def _sample_weight(kind: str, count: float) -> float:
    if kind == "bin":
        return 1.0
    if kind == "tf":
        return count
    return math.log(1.0 + count)  # log_tf


def _format_number(value: float) -> str:
    """A number as C++'s ``ostream << double`` prints it (``%g``, 6 significant digits)."""
    return format(value, "g")


@dataclass
class DocumentFrequencies:
    """Trained-document counts for ``idf``: how many documents, and per feature how many
    held it; kept as master (mixed) plus diff (local), like the weights."""

    master_documents: int = 0
    master_frequencies: dict[str, int] = field(default_factory=dict)
    diff_documents: int = 0
    diff_frequencies: dict[str, int] = field(default_factory=dict)
    _sent: tuple[int, dict[str, int]] | None = None

    @property
    def documents(self) -> int:
        return self.master_documents + self.diff_documents

    def frequency(self, feature: str) -> int:
        return self.master_frequencies.get(feature, 0) + self.diff_frequencies.get(feature, 0)

    def count(self, features: Iterable[str]) -> None:
        """Count one more document holding ``features``."""
        self.diff_documents += 1
        for feature in features:
            self.diff_frequencies[feature] = self.diff_frequencies.get(feature, 0) + 1

    def take_diff(self) -> dict[str, object]:
        """The local counts as plain data, remembered as sent in the current mix round."""
        self._sent = (self.diff_documents, dict(self.diff_frequencies))
        return {"documents": self.diff_documents, "frequencies": dict(self.diff_frequencies)}

    def apply_mixed(self, documents: int, frequencies: Mapping[str, int]) -> None:
        """Add mixed counts to the master; take what was sent out of the diff."""
        self.master_documents += documents
        for feature, n in frequencies.items():
            self.master_frequencies[feature] = self.master_frequencies.get(feature, 0) + n
        if self._sent is not None:
            sent_documents, sent_frequencies = self._sent
            self.diff_documents = max(self.diff_documents - sent_documents, 0)
            for feature, n in sent_frequencies.items():
                rest = self.diff_frequencies.get(feature, 0) - n
                if rest > 0:
                    self.diff_frequencies[feature] = rest
                else:
                    self.diff_frequencies.pop(feature, None)
        self._sent = None

    def clear(self) -> None:
        self.master_documents = self.diff_documents = 0
        self.master_frequencies, self.diff_frequencies = {}, {}
        self._sent = None

    def pack(self) -> dict[str, object]:
        return {
            "master": {"documents": self.master_documents, "frequencies": self.master_frequencies},
            "diff": {"documents": self.diff_documents, "frequencies": self.diff_frequencies},
        }

    @classmethod
    def unpack(cls, value: object, path: str) -> DocumentFrequencies:
        """Counts from :meth:`pack`; raises :class:`~runtime.mix.mixable.DiffError`."""
        fields = read_fields(value, path, ("master", "diff"))
        master = read_counts(fields["master"], f"{path}.master")
        diff = read_counts(fields["diff"], f"{path}.diff")
        return cls(master[0], master[1], diff[0], diff[1])


def read_counts(value: object, path: str) -> tuple[int, dict[str, int]]:
    """``{"documents": n, "frequencies": {feature: n}}``, checked."""
    fields = read_fields(value, path, ("documents", "frequencies"))
    documents = read_int(fields["documents"], f"{path}.documents")
    frequencies = {
        feature: read_int(n, f"{path}.frequencies[{feature!r}]")
        for feature, n in read_map(fields["frequencies"], f"{path}.frequencies").items()
    }
    return documents, frequencies


#: Entries each cache of a converter keeps before it starts again.
CACHE_SIZE = 1 << 16
#: Characters of string values a string cache keeps before it starts again (what the
#: entries built from them hold is some 15 times that: about 60 MiB), and the longest
#: value it keeps at all: a client's long or ever-new texts must not fill the memory.
CACHE_TEXT = 4 << 20
CACHED_VALUE_MAX = 4096


class StringCache(dict[Any, Any]):
    """What one string value of one key gives, bounded in entries and in text."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        super().__init__()
        self.text = 0

    def keep(self, token: object, entry: object, size: int) -> None:
        """Remember ``entry`` for ``token`` (a value of ``size`` characters), starting
        again when the cache is full; a value past :data:`CACHED_VALUE_MAX` is not kept."""
        if size > CACHED_VALUE_MAX:
            return
        if len(self) >= CACHE_SIZE or self.text + size > CACHE_TEXT:
            self.clear()
            self.text = 0
        self[token] = entry
        self.text += size


#: Features of a datum before the global weight: names, sample-weighted values, and per
#: feature the idf offset (None: not idf-weighted), or None when no feature is.
Extracted = tuple[list[str], list[float], list[float | None] | None]

#: How a number rule turns a value into a feature: the value, its log, or a name per value.
_NUM, _LOG, _STR = 0, 1, 2
#: What one string value of one key gives, per string rule: its feature names and sample
#: weights; or the text of the error when the converter refuses the key.
StringEntry = tuple[tuple[tuple[str, ...], tuple[float, ...]], ...] | str
#: The rules a number's key meets: ``(name, kind)``s; or the error text.
NumberEntry = tuple[tuple[str, int], ...] | str


class DatumError(ValueError):
    """A datum the converter refuses (a ``$`` in a key a rule reads, a malformed pair)."""


class Converter:
    """Turns datums into sparse feature vectors by a Jubatus ``converter`` config."""

    def __init__(self, string_rules: list[StringRule], num_rules: list[NumRule]) -> None:
        self.string_rules = string_rules
        self.num_rules = num_rules
        #: Whether any rule weighs by idf (then training counts documents).
        self.counts_documents = any(r.global_weight != "bin" for r in string_rules)
        self.frequencies = DocumentFrequencies()
        #: Per rule: (idf offset or None, name suffix).
        self._string_rule_parts = [
            (
                _IDF_OFFSETS.get(r.global_weight),
                f"@{r.type_name}#{r.sample_weight}/{r.global_weight}",
            )
            for r in string_rules
        ]
        #: (key, value) → what the pair gives; number key → the rules it meets.
        self._strings = StringCache()
        self._wire_strings = StringCache()
        self._numbers = StringCache()
        #: Wire number key → its feature's name, for a key that meets one ``num`` rule.
        self._plain_numbers = StringCache()
        #: The same for a datum's (str) number keys.
        self._plain_text_numbers = StringCache()

    @classmethod
    def from_config(cls, converter_json: object, path: str = "converter") -> Converter:
        """Build from the ``converter`` object of an engine config; ``ConfigError`` if bad."""
        config = _object(converter_json, path)
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if unknown:
            raise ConfigError.unknown_key(f"{path}.{unknown[0]}", _CONFIG_KEYS)
        for key, what in _UNSUPPORTED_PARTS.items():
            if config.get(key):
                raise ConfigError(f"{path}.{key}: {what} are not supported")
        if config.get("hash_max_size") is not None:
            raise ConfigError(f"{path}.hash_max_size: feature hashing is not supported")

        splitters: dict[str, Splitter] = {"str": _whole, "space": _split_spaces}
        string_types = config.get("string_types")
        if string_types is not None:
            for name, params in _object(string_types, f"{path}.string_types").items():
                splitters[name] = _string_type(params, f"{path}.string_types.{name}")
        string_rules = [
            _string_rule(rule, splitters, f"{path}.string_rules[{i}]")
            for i, rule in enumerate(_list(config.get("string_rules"), f"{path}.string_rules"))
        ]

        num_types = config.get("num_types")
        if num_types is not None:
            for name, params in _object(num_types, f"{path}.num_types").items():
                where = f"{path}.num_types.{name}"
                method = _text(_object(params, where), "method", where)
                raise ConfigError(f"{where}.method: unknown method {method!r}")
        num_rules = [
            _num_rule(rule, f"{path}.num_rules[{i}]")
            for i, rule in enumerate(_list(config.get("num_rules"), f"{path}.num_rules"))
        ]
        return cls(string_rules, num_rules)

    # -- conversion ------------------------------------------------------------------------

    def check(self, datum: DatumLike) -> None:
        """Raise ``ValueError`` if ``datum`` cannot be converted (bad shapes, ``$`` in a key)."""
        for what, values, value_ok in (
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
                    raise ValueError(f"datum {what}[{i}]: key must be a string")
                if not value_ok(value):
                    raise ValueError(f"datum {what}[{i}] ({key!r}): wrong value type")
        for key, _ in datum.string_values:
            if "$" in key and any(rule.matcher(key) for rule in self.string_rules):
                raise ValueError(f"feature key cannot contain '$': {key!r}")
        for key, _ in datum.num_values:
            if "$" in key and any(rule.matcher(key) for rule in self.num_rules):
                raise ValueError(f"feature key cannot contain '$': {key!r}")

    def convert(self, datum: DatumLike) -> dict[str, float]:
        """The feature vector of ``datum`` with the current document counts (no change)."""
        self.check(datum)
        return self._weigh(self._unweighted(datum))

    def convert_and_count(self, datum: DatumLike) -> dict[str, float]:
        """As :meth:`convert`, counting ``datum`` as a trained document first (for idf)."""
        self.check(datum)
        features = self._unweighted(datum)
        if self.counts_documents:
            self.frequencies.count(dict.fromkeys(f for f, _, idf in features if idf is not None))
        return self._weigh(features)

    def _unweighted(self, datum: DatumLike) -> list[tuple[str, float, float | None]]:
        """``(name, value, idf offset)``: the offset is None for features not idf-weighted."""
        features: list[tuple[str, float, float | None]] = []
        for rule in self.string_rules:
            offset = _IDF_OFFSETS.get(rule.global_weight)
            suffix = f"@{rule.type_name}#{rule.sample_weight}/{rule.global_weight}"
            for key, value in datum.string_values:
                if not rule.matcher(key):
                    continue
                counts: dict[str, float] = {}
                for token in rule.splitter(value):
                    counts[token] = counts.get(token, 0.0) + 1.0
                for token, count in counts.items():
                    weight = _sample_weight(rule.sample_weight, count)
                    if weight != 0.0:
                        features.append((f"{key}${token}{suffix}", weight, offset))
        for key, number in datum.num_values:
            amount = float(number)
            for num_rule in self.num_rules:
                if not num_rule.matcher(key):
                    continue
                name = f"{key}@{num_rule.type_name}"
                if num_rule.type_name == "num":
                    features.append((name, amount, None))
                elif num_rule.type_name == "log":
                    features.append((name, math.log(max(1.0, amount)), None))
                else:
                    features.append((f"{name}${_format_number(amount)}", 1.0, None))
        return features

    # -- cached extraction -----------------------------------------------------------------

    def extract(self, datum: DatumLike) -> Extracted:
        """The features of ``datum`` before the global weight (see the module docstring);
        ``ValueError`` as :meth:`check` raises it for a datum it refuses."""
        # The datum may hold anything (a caller's lists): look at its pairs as objects.
        strings: Sequence[object] = datum.string_values
        numbers: Sequence[object] = datum.num_values
        binaries: Sequence[object] = datum.binary_values
        cache = self._strings
        entries: list[StringEntry] = []
        for pair in strings:
            entry = cache.get(pair) if type(pair) is tuple else None
            if entry is None:
                if not isinstance(pair, tuple | list) or len(pair) != 2:
                    self.check(datum)  # raises
                    raise AssertionError
                text, value = pair
                if type(text) is not str or type(value) is not str:
                    self.check(datum)
                    raise AssertionError
                entry = self._string_entry(text, value)
                cache.keep((text, value), entry, len(value))
            entries.append(entry)
        plain = self._plain_numbers_of(numbers)
        if plain is None:
            for pair in numbers:  # types first: check() reports them before any '$'
                if not isinstance(pair, tuple | list) or len(pair) != 2:
                    self.check(datum)
                    raise AssertionError
                key, number = pair
                if type(key) is not str or not (type(number) is float or _is_number(number)):
                    self.check(datum)
        for pair in binaries:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                self.check(datum)
                raise AssertionError
            key, blob = pair
            if type(key) is not str or type(blob) is not bytes:
                self.check(datum)
        for entry in entries:
            if type(entry) is str:
                raise DatumError(entry)
        names: list[str] = []
        values: list[float] = []
        offsets: list[float | None] | None = [] if self.counts_documents else None
        if entries:
            self._assemble(entries, names, values, offsets)
        if plain is not None:
            names += plain[0]
            values += plain[1]
            if offsets is not None:
                offsets += [None] * len(plain[0])
        else:
            for key, number in datum.num_values:
                self._number(key, float(number), names, values, offsets)
        return names, values, offsets

    def _plain_numbers_of(self, numbers: Sequence[object]) -> tuple[list[str], list[float]] | None:
        """The features of a datum's numbers when each is a ``(str, float)`` pair whose key
        meets one ``num`` rule, as seen before (names, values); else None (the caller
        checks and converts them one by one)."""
        plain = self._plain_text_numbers
        names: list[str] = []
        values: list[float] = []
        for pair in numbers:
            if type(pair) is not tuple or len(pair) != 2:
                return None
            key, number = pair
            if type(number) is not float:
                return None
            name = plain.get(key) if type(key) is str else None
            if name is None:
                return None
            names.append(name)
            values.append(number)
        return names, values

    def extract_wire(self, datum: object) -> Extracted | None:
        """:meth:`extract` of a datum as the wire carries it (``[[[k, v]...], [[k, n]...],
        [[k, b]...]]``, strings as UTF-8 ``bytes``); None when it is not well formed in the
        usual way or the converter refuses it: the caller then decodes it properly, which
        names what is wrong."""
        if type(datum) is not list or len(datum) != 3:
            return None
        strings, numbers, binaries = datum
        if type(strings) is not list or type(numbers) is not list or type(binaries) is not list:
            return None
        cache = self._wire_strings
        entries: list[StringEntry] = []
        for pair in strings:
            if type(pair) is not list or len(pair) != 2:
                return None
            key, value = pair
            if type(key) is not bytes or type(value) is not bytes:
                return None
            token = (key, value)
            entry = cache.get(token)
            if entry is None:
                try:
                    entry = self._string_entry(key.decode("utf-8"), value.decode("utf-8"))
                except UnicodeDecodeError:
                    return None
                cache.keep(token, entry, len(value))
            if type(entry) is str:
                return None
            entries.append(entry)
        for pair in binaries:
            if type(pair) is not list or len(pair) != 2:
                return None
            if type(pair[0]) is not bytes or type(pair[1]) is not bytes:
                return None
        names: list[str] = []
        values: list[float] = []
        offsets: list[float | None] | None = [] if self.counts_documents else None
        if entries:
            if len(entries) == 1 and offsets is None and len(self._string_rule_parts) == 1:
                entry = entries[0]
                assert type(entry) is tuple  # refused keys have returned above
                rule_names, weights = entry[0]
                names.extend(rule_names)
                values.extend(weights)
            else:
                self._assemble(entries, names, values, offsets)
        rules_of = self._numbers
        plain = self._plain_numbers
        for pair in numbers:
            if type(pair) is not list or len(pair) != 2:
                return None
            key, number = pair
            if type(number) is not float:
                if type(number) is not int:
                    return None
                number = float(number)
            if type(key) is not bytes:
                return None
            name = plain.get(key)
            if name is not None:
                names.append(name)
                values.append(number)
                if offsets is not None:
                    offsets.append(None)
                continue
            rules = rules_of.get(key)
            if rules is None:
                try:
                    rules = self._number_rules(key.decode("utf-8"))
                except UnicodeDecodeError:
                    return None
                rules_of.keep(key, rules, len(key))
            if type(rules) is not tuple:
                return None
            self._note_plain(key, rules)
            for name, kind in rules:
                if kind == _NUM:
                    names.append(name)
                    values.append(number)
                else:
                    self._number_feature(name, kind, number, names, values)
                if offsets is not None:
                    offsets.append(None)
        return names, values, offsets

    def wire_caches(self) -> tuple[StringCache, StringCache] | None:
        """What :meth:`extract_wire` has learnt of wire datums, for the compiled kernels
        (:mod:`engines.common.kernels`): ``(key, value)`` bytes → the string entry, and a
        number's key → its feature's name (a key that meets one ``num`` rule); None when a
        rule weighs by idf (the features then need more than these)."""
        if self.counts_documents:
            return None
        return self._wire_strings, self._plain_numbers

    def _note_plain(self, key: bytes, rules: tuple[tuple[str, int], ...]) -> None:
        """Keep the feature name of a wire number key that meets one ``num`` rule."""
        if len(rules) == 1 and rules[0][1] == _NUM:
            plain = self._plain_numbers
            plain.keep(key, rules[0][0], len(key))

    def extract_wire_many(self, data: list[object]) -> tuple[list[str], list[float], list[int]]:
        """:meth:`extract_wire` of every datum of ``data``, their features laid end to end
        (names, values) with each datum's count; for a converter that weighs nothing by idf
        (``counts_documents`` false). ``ValueError`` where :meth:`extract_wire` gives None:
        the caller then takes the datums one by one, which says what is wrong."""
        if self.counts_documents:
            raise ValueError("idf: extract one by one")
        names: list[str] = []
        values: list[float] = []
        lengths: list[int] = []
        add_names = names.extend
        add_values = values.extend
        add_name = names.append
        add_value = values.append
        count = lengths.append
        cache = self._wire_strings
        rules_of = self._numbers
        plain = self._plain_numbers
        one_rule = len(self._string_rule_parts) == 1
        # A value of the wrong type fails a check or a lookup (TypeError: an unhashable
        # key; ValueError: a pair of the wrong length); only bytes keys are ever cached.
        try:
            for datum in data:
                if type(datum) is not list:
                    raise ValueError
                strings, numbers, binaries = datum
                if type(strings) is not list or type(numbers) is not list:
                    raise ValueError
                if type(binaries) is not list:
                    raise ValueError
                start = len(names)
                if strings:
                    entries: list[StringEntry] = []
                    for pair in strings:
                        if type(pair) is not list:
                            raise ValueError
                        key, value = pair
                        entry = cache.get((key, value))
                        if entry is None:
                            if type(key) is not bytes or type(value) is not bytes:
                                raise ValueError
                            entry = self._string_entry(key.decode("utf-8"), value.decode("utf-8"))
                            cache.keep((key, value), entry, len(value))
                        if type(entry) is not tuple:  # the error text of a refused key
                            raise ValueError
                        if one_rule:
                            rule_names, weights = entry[0]
                            add_names(rule_names)
                            add_values(weights)
                        else:
                            entries.append(entry)
                    if entries:
                        self._assemble(entries, names, values, None)
                for pair in binaries:
                    if type(pair) is not list:
                        raise ValueError
                    key, blob = pair
                    if type(key) is not bytes or type(blob) is not bytes:
                        raise ValueError
                for pair in numbers:
                    if type(pair) is not list:
                        raise ValueError
                    key, number = pair
                    if type(number) is not float:
                        if type(number) is not int:
                            raise ValueError
                        number = float(number)
                    name = plain.get(key)
                    if name is not None:
                        add_name(name)
                        add_value(number)
                        continue
                    rules = rules_of.get(key)
                    if rules is None:
                        if type(key) is not bytes:
                            raise ValueError
                        rules = self._number_rules(key.decode("utf-8"))
                        rules_of.keep(key, rules, len(key))
                    if type(rules) is not tuple:
                        raise ValueError
                    if type(key) is bytes:
                        self._note_plain(key, rules)
                    for name, kind in rules:
                        if kind == _NUM:
                            add_name(name)
                            add_value(number)
                        else:
                            self._number_feature(name, kind, number, names, values)
                count(len(names) - start)
        except (TypeError, ValueError):  # UnicodeDecodeError is a ValueError
            raise ValueError("not well formed: extract one by one") from None
        return names, values, lengths

    def _string_entry(self, key: str, value: str) -> StringEntry:
        """Per string rule, the features ``key: value`` gives; the error text instead when a
        rule reads ``key`` and it holds a ``$``."""
        rules = self.string_rules
        if "$" in key and any(rule.matcher(key) for rule in rules):
            return f"feature key cannot contain '$': {key!r}"
        per_rule: list[tuple[tuple[str, ...], tuple[float, ...]]] = []
        for rule, (_, suffix) in zip(rules, self._string_rule_parts, strict=True):
            if not rule.matcher(key):
                per_rule.append(((), ()))
                continue
            counts: dict[str, float] = {}
            for token in rule.splitter(value):
                counts[token] = counts.get(token, 0.0) + 1.0
            names: list[str] = []
            weights: list[float] = []
            for token, count in counts.items():
                weight = _sample_weight(rule.sample_weight, count)
                if weight != 0.0:
                    names.append(f"{key}${token}{suffix}")
                    weights.append(weight)
            per_rule.append((tuple(names), tuple(weights)))
        return tuple(per_rule)

    def _assemble(
        self,
        entries: list[StringEntry],
        names: list[str],
        values: list[float],
        offsets: list[float | None] | None,
    ) -> None:
        """Append the string features of a datum, rule by rule then pair by pair (with their
        idf offsets when some rule weighs by idf)."""
        for index, (offset, _) in enumerate(self._string_rule_parts):
            for entry in entries:
                assert type(entry) is tuple  # refused keys raise before
                rule_names, weights = entry[index]
                names.extend(rule_names)
                values.extend(weights)
                if offsets is not None:
                    offsets.extend([offset] * len(rule_names))

    def _number(
        self,
        key: str,
        amount: float,
        names: list[str],
        values: list[float],
        offsets: list[float | None] | None,
    ) -> None:
        """Append the features of one number (``DatumError`` for a ``$`` a rule reads)."""
        rules = self._numbers.get(key)
        if rules is None:
            rules = self._number_rules(key)
            self._numbers.keep(key, rules, len(key))
        if type(rules) is str:
            raise DatumError(rules)
        assert type(rules) is tuple
        if len(rules) == 1 and rules[0][1] == _NUM and key not in self._plain_text_numbers:
            self._plain_text_numbers.keep(key, rules[0][0], len(key))
        for name, kind in rules:
            self._number_feature(name, kind, amount, names, values)
            if offsets is not None:
                offsets.append(None)

    @staticmethod
    def _number_feature(
        name: str, kind: int, amount: float, names: list[str], values: list[float]
    ) -> None:
        if kind == _NUM:
            names.append(name)
            values.append(amount)
        elif kind == _LOG:
            names.append(name)
            values.append(math.log(max(1.0, amount)))
        else:
            names.append(f"{name}${_format_number(amount)}")
            values.append(1.0)

    def _number_rules(self, key: str) -> NumberEntry:
        if "$" in key and any(rule.matcher(key) for rule in self.num_rules):
            return f"feature key cannot contain '$': {key!r}"
        kinds = {"num": _NUM, "log": _LOG, "str": _STR}
        return tuple(
            (f"{key}@{rule.type_name}", kinds[rule.type_name])
            for rule in self.num_rules
            if rule.matcher(key)
        )

    def _weigh(self, features: list[tuple[str, float, float | None]]) -> dict[str, float]:
        vector: dict[str, float] = {}
        documents = self.frequencies.documents
        for name, value, offset in features:
            if offset is not None:
                idf = math.log((documents + 1) / (self.frequencies.frequency(name) + 1))
                value = (idf + offset) * value
            if value != 0.0:
                vector[name] = vector.get(name, 0.0) + value
        return vector


#: Global weights that scale by idf, and what they add to it.
_IDF_OFFSETS = {"idf": 0.0, "idf1": 1.0}


def weigh(
    extracted: Extracted,
    frequency: Callable[[str], int],
    documents: int,
) -> tuple[list[str], list[float]]:
    """The feature vector of extracted features, as :meth:`Converter.convert` makes it:
    idf-weighted by ``frequency(name)`` of ``documents``, zeros left out, a feature
    produced twice summed (at its first place). The lists given may be reused."""
    names, values, offsets = extracted
    if offsets is not None:
        log = math.log
        for i, offset in enumerate(offsets):
            if offset is not None:
                idf = log((documents + 1) / (frequency(names[i]) + 1))
                values[i] = (idf + offset) * values[i]
    if 0.0 not in values and len(set(names)) == len(names):
        return names, values
    vector: dict[str, float] = {}
    for name, value in zip(names, values, strict=True):
        if value != 0.0:
            vector[name] = vector.get(name, 0.0) + value
    return list(vector), list(vector.values())


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _string_rule(rule: object, splitters: Mapping[str, Splitter], path: str) -> StringRule:
    fields = _object(rule, path)
    _only(fields, {"key", "except", "type", "sample_weight", "global_weight"}, path)
    matcher = _rule_matcher(fields, path)
    type_name = _text(fields, "type", path)
    splitter = splitters.get(type_name)
    if splitter is None:
        raise ConfigError(f"{path}.type: unknown type {type_name!r}")
    sample = _text(fields, "sample_weight", path)
    if sample not in _SAMPLE_WEIGHTS:
        raise ConfigError(
            f"{path}.sample_weight: unknown sample weight {sample!r} "
            f"(known: {', '.join(_SAMPLE_WEIGHTS)})"
        )
    glob = _text(fields, "global_weight", path)
    if glob in _UNSUPPORTED_GLOBAL_WEIGHTS:
        raise ConfigError(f"{path}.global_weight: {glob!r} is not supported")
    if glob not in _GLOBAL_WEIGHTS:
        raise ConfigError(
            f"{path}.global_weight: unknown global weight {glob!r} "
            f"(known: {', '.join(_GLOBAL_WEIGHTS)})"
        )
    return StringRule(matcher, type_name, splitter, sample, glob)


def _num_rule(rule: object, path: str) -> NumRule:
    fields = _object(rule, path)
    _only(fields, {"key", "except", "type"}, path)
    matcher = _rule_matcher(fields, path)
    type_name = _text(fields, "type", path)
    if type_name not in _NUM_TYPES:
        raise ConfigError(
            f"{path}.type: unknown type {type_name!r} (known: {', '.join(_NUM_TYPES)})"
        )
    return NumRule(matcher, type_name)


# -- config reading ------------------------------------------------------------------------


def _object(value: object, path: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected an object, got {json_type(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: keys must be strings, got {key!r}")
    return value


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


def _only(fields: Mapping[str, object], allowed: set[str], path: str) -> None:
    for name in fields:
        if name not in allowed:
            raise ConfigError.unknown_key(f"{path}.{name}", allowed)
