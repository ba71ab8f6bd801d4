"""Compiled hot paths, with the Python they replace as the fallback.

``engines/common/kernels_c/`` (one C file per concern) is built by ``pip install``
(``setup.py``; optional: where no C compiler is at hand the install goes on without it).
:data:`compiled` is the built module, or None: then, and whenever a kernel answers None (a
case it does not take), the callers run their Python, which gives the same answers to the
bit. The tests run both.

Kernels:

- ``classify_wire(data, strings, numbers, replica)``: a linear classifier's scores of
  ``classify``'s wire argument against one copy of its model
  (:meth:`engines.classifier.model.ClassifierSnapshot.classify_wire`), and
  ``classifier_frames(data, cluster, msgid_limit, max_count, max_reply, strings, numbers,
  replica, train)``: the whole ``classify`` and one-example ``train`` requests a read
  starts with, answered from their bytes, trains learnt at once
  (:meth:`engines.classifier.model.ClassifierSnapshot.classify_frames`,
  :meth:`engines.classifier.model.ClassifierModel.train_frames`: the classifier's
  :class:`runtime.FrameAnswerer`);
- ``score_vectors(vectors, replica)``: the same sums for feature vectors already weighed
  (:meth:`engines.classifier.model.Replica.score`: ``classify`` called in process);
- ``train_vector(datum, strings, numbers)``: the vector a linear classifier learns from
  one wire datum, merged and sorted by name
  (:meth:`engines.classifier.model.ClassifierModel.train_wire`);
- ``train_linear(method, c, extra, arrays, bases, values, label, known, fresh)``: one
  example learnt by a linear method (:meth:`engines.common.linear.LinearMethod.learn`);
- ``learn_known(method, c, extra, replica, label, names, values, dirty)``: one example
  learnt into a linear classifier's copy, its label and features known to it: the label
  counted, the step, the rows changed and the fresh weights counted
  (:meth:`engines.classifier.model.ClassifierModel.train_wire`), and
  ``train_known(datum, strings, numbers, method, c, extra, replica, label, dirty,
  readers)``: the two in one call, from a wire datum (a ``train`` of one example), into
  the published copy itself when given its ``readers`` and none is reading
  (:meth:`engines.classifier.model.ClassifierModel.train_at_once`);
- ``copy_rows(pairs, ids)``: rows copied between the two copies of a model held the
  snapshot way (:meth:`engines.common.storage.WeightArrays.copy_rows_from`);
- ``wire_text_bytes(value)``: the text in a wire value
  (:func:`runtime.server.snapshot.wire_text_bytes`: a fire-and-forget ``train``'s weight in
  the classifier's update buffer);
- ``project(matrix, values, projection, words)``: lsh's and euclid_lsh's random
  projection and its sign bits (:func:`engines.common.hashing.random_projection`,
  :func:`engines.common.hashing.projection_bits`);
- ``nearest_by_hamming(matrix, size, words, count)``: the rows nearest a bit vector, ties
  by position (lsh and minhash queries of
  :class:`engines.common.nearest_neighbor.NearestNeighborIndex`), and
  ``nearest_by_euclid_lsh(...)``: euclid_lsh's, by the distance it estimates from the
  Hamming distance and the norms (:class:`engines.common.nearest_neighbor.EuclidLsh`);
- ``dense_query(...)`` and ``postings_query(...)``: the inverted index's euclid and cosine
  queries (:meth:`engines.common.inverted_index.InvertedIndex.euclid` and ``cosine``: the
  recommender's ``inverted_index`` and ``inverted_index_euclid``, lof over them, the NN
  classifier's cosine and euclidean methods) over its dense copy or its postings;
- ``weigh_idf(features, master, diff, count)``: the converter's idf and idf1 global weights
  (:meth:`engines.common.fv_converter.WeightManager.weigh`; bm25 stays in Python), and
  ``sort_and_merge(features)``: features sorted by name, a name's values summed
  (:func:`engines.common.fv_converter.sort_and_merge`: weight's answers, the NN
  classifier's training vectors, the recommender's completed rows).
"""

from __future__ import annotations

import logging
from types import ModuleType

log = logging.getLogger(__name__)


def _load() -> ModuleType | None:
    try:
        from engines.common import _kernels  # type: ignore[attr-defined]
    except ImportError as error:
        log.debug("compiled kernels not built (%s): Python only", error)
        return None
    module: ModuleType = _kernels
    return module


#: The compiled kernels, or None (Python only). Tests set it to None to run the fallback.
compiled: ModuleType | None = _load()


def status() -> dict[str, str]:
    """The ``get_status`` key of the engines that have kernels: ``kernels`` is ``compiled``
    when they serve, ``python`` when they were not built (Jubako's own key)."""
    return {"kernels": "python" if compiled is None else "compiled"}
