"""Jubatus's whole converter (:class:`~engines.common.fv_converter.FeatureConverter`) behind
the interface the linear classifier reads its fast converter through
(:class:`~engines.common.converter.Converter`): for the configs the fast one refuses.

:func:`pick_converter` keeps the fast converter for every config it takes (their answers
stay what they were) and takes this one for a config with string or number filters,
combination features, ``hash_max_size``, or the ``bm25`` or ``weight`` global weight (and
any other part only the whole converter has, such as the ``regexp`` string type).

What the classifier's model needs from a converter, and how this one gives it:

- ``extract(datum)`` / ``extract_wire(wire datum)``: a datum's features before the global
  weights, as :data:`~engines.common.converter.Extracted` (names, values, and a list of
  offsets when the model must count the datum's features as a document: here every
  feature is counted, as Jubatus's ``weight_manager`` counts them, for ``idf`` and
  ``bm25``); ``extract_wire`` is None for a datum it leaves to the decoded path (always
  with filters);
- ``extract_wire_many``: refused (``ValueError``): datums are scored one by one, since
  their weights need the document counts;
- ``counts_documents``: whether training counts documents;
- :meth:`FullConverter.vector`: the feature vector the model scores and trains with, from
  the extracted features and the model's counts: the global weights (``bin``, ``idf``,
  ``idf1``, ``bm25``, ``weight``) exactly as :meth:`WeightManager.weigh
  <engines.common.fv_converter.WeightManager.weigh>` computes them, then combinations and
  hashing (:meth:`FeatureConverter.combine
  <engines.common.fv_converter.FeatureConverter.combine>`), then zeros left out and a
  feature produced twice summed (as :func:`~engines.common.converter.weigh` does).

The document counts stay where the model keeps them for the fast converter (per feature
row, master and diff, mixed by adding up, saved in the file's ``weight_manager``); ``bm25``
adds, per group (``key@rule#sample/bm25``), the documents holding it and their summed
lengths (:meth:`FullConverter.count_groups`), kept, mixed and saved beside them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from engines.common.converter import Converter, DatumLike, Extracted, weigh
from engines.common.fv_converter import (
    FeatureConverter,
    Features,
    bm25,
    group_key,
    group_lengths,
)
from runtime.errors import ConfigError

#: Per group: (documents holding it, their summed lengths).
Groups = dict[str, tuple[float, float]]


class FullConverter:
    """:class:`FeatureConverter` with the linear classifier's converter interface (see the
    module docstring)."""

    def __init__(self, inner: FeatureConverter) -> None:
        self.inner = inner
        #: Whether training counts a datum's features as a document (idf, bm25).
        self.counts_documents = inner.uses_idf or inner.uses_bm25
        #: Whether it also counts the groups' documents and lengths (bm25).
        self.counts_groups = inner.uses_bm25
        self._weighs = inner.weighs_globally

    @classmethod
    def from_config(cls, converter_json: object, path: str = "converter") -> FullConverter:
        return cls(FeatureConverter.from_config(converter_json, path))

    # -- before the weights ----------------------------------------------------------------

    def _extracted(self, features: Features) -> Extracted:
        names = [name for name, _ in features]
        values = [value for _, value in features]
        return names, values, [0.0] * len(names) if self.counts_documents else None

    def extract(self, datum: DatumLike) -> Extracted:
        """The datum's unweighted features; ``ValueError`` for a datum it refuses."""
        self.inner.check(datum)
        return self._extracted(self.inner.unweighted(datum))

    def extract_wire(self, datum: object) -> Extracted | None:
        """:meth:`extract` of a wire datum, or None: decode it and call :meth:`extract`."""
        converted = self.inner.wire_datum(datum)
        if converted is None:
            return None
        return self._extracted(converted.features)

    def extract_wire_many(self, data: list[object]) -> tuple[list[str], list[float], list[int]]:
        raise ValueError("extract one by one")

    # -- the vector -------------------------------------------------------------------------

    def vector(
        self,
        extracted: Extracted,
        frequency: Callable[[str], int],
        documents: int,
        groups: Callable[[str], float],
    ) -> tuple[list[str], list[float]]:
        """The vector of extracted features with the counts ``frequency(name)`` of
        ``documents`` and the average length ``groups(group)`` (see the module docstring).
        ``extracted`` is not changed."""
        names, values, _ = extracted
        features = list(zip(names, values, strict=True))
        if self._weighs:
            features = weigh_features(features, frequency, documents, groups)
        else:
            features = [feature for feature in features if feature[1] != 0.0]
        features = self.inner.combine(features)
        return weigh(([name for name, _ in features], [v for _, v in features], None), _no, 0)

    @staticmethod
    def count_groups(extracted: Extracted, groups: Groups) -> None:
        """Count a trained datum into ``groups`` (as Jubatus's ``keyword_weights`` counts
        ``group_frequencies`` and ``group_total_lengths``)."""
        names, values, _ = extracted
        seen: dict[str, None] = {}
        lengths: dict[str, float] = {}
        for name, value in zip(names, values, strict=True):
            group = group_key(name)
            if group:
                seen[group] = None
                lengths[group] = lengths.get(group, groups.get(group, (0.0, 0.0))[1]) + value
        for group in seen:
            frequency = groups.get(group, (0.0, 0.0))[0]
            groups[group] = (frequency + 1.0, lengths[group])


def _no(name: str) -> int:
    return 0


def weigh_features(
    features: Features,
    frequency: Callable[[str], int],
    documents: int,
    average_length: Callable[[str], float],
) -> Features:
    """The global weights by each feature's suffix, features weighing 0 left out: the
    expressions of :meth:`~engines.common.fv_converter.WeightManager.weigh`, over the
    classifier's counts."""
    weighed: Features = []
    lengths: dict[str, float] | None = None
    count = float(documents)
    log = math.log
    for name, value in features:
        slash = name.rfind("/")
        kind = name[slash + 1 :] if slash >= 0 else ""
        if kind == "idf" or kind == "idf1":
            df = float(frequency(name))
            value = (log((count + 1) / (df + 1)) + (kind == "idf1")) * value
        elif kind == "bm25":
            if lengths is None:
                lengths = group_lengths(features)
            group = group_key(name)
            value = bm25(
                value, count, float(frequency(name)), lengths.get(group, 0.0), average_length(group)
            )
        elif kind == "weight":
            value = 0.0  # user weights: Jubatus has no call that sets them
        if value != 0.0:
            weighed.append((name, value))
    return weighed


def average_length(master: Groups, diff: Groups, group: str) -> float:
    """A group's average length over master and diff counts (0 when no document has it)."""
    m_f, m_l = master.get(group, (0.0, 0.0))
    d_f, d_l = diff.get(group, (0.0, 0.0))
    frequency = m_f + d_f
    if frequency == 0:
        return 0.0
    return (m_l + d_l) / frequency


def pick_converter(converter_json: object) -> Converter | FullConverter:
    """The fast converter when it takes the config; else the whole one (whose error, naming
    the key, is raised when it refuses the config too)."""
    try:
        return Converter.from_config(converter_json)
    except ConfigError:
        pass
    return FullConverter.from_config(converter_json)


__all__ = ["FullConverter", "Groups", "average_length", "pick_converter", "weigh_features"]
