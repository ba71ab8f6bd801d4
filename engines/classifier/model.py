"""The classifier engine's model: a Jubatus classifier config turned into a trainable,
mixable linear classifier, held for one writer and any number of readers.

``ClassifierModel(config)`` takes Jubatus's config (``method``, ``parameter``,
``converter``) and offers the classifier service's calls (``train``, ``classify``,
``get_labels``, ``set_label``, ``delete_label``, ``clear``), ``pack``/``unpack`` for save
and load, and the mix (``get_diff``, ``mix``, ``put_diff``, ``get_model``, ``set_model``).
Used from one thread it is a plain model. Held in a
:class:`~runtime.server.snapshot.SnapshotModel`, the writer thread calls those methods and
:meth:`ClassifierModel.snapshot` after each batch; readers call the published
:class:`ClassifierSnapshot` (``classify``, ``get_labels``, ``get_status``, ``pack``,
``get_diff``, ``get_model``) from any thread, with no lock.

**How the numbers are held.** Per label (a column) and feature (a row), weights and
variances as master + diff in :class:`~engines.common.storage.WeightArrays`; feature names
get row ids in a :class:`~engines.common.storage.FeatureIndex`; document counts for
``idf`` per row; labels with their training counts (total and since the last mix). There
are two copies of all this (:mod:`engines.common.readers`): readers read the published
one; the writer changes the other, publishes it by swapping the two, and brings the copy
readers left up to date (the rows that changed) before it changes it in turn. Publishing
copies nothing; a batch of updates costs its rows twice. Long reads (``save``, the mix's
``get_diff`` and ``get_model``) copy what they need first and read the copy, so the writer
never waits for them longer than that copy takes. One exception: a ``train`` of one
example whose label and words the model knows may be learnt straight into the published
copy (:meth:`ClassifierModel.train_at_once`), by one C call that first finds no thread
registered as a reader and then runs no Python code; the rows it changes are added to
those the other copy owes. The one read that does not register, ``classify_wire``'s C
call, runs no Python code either: it sees such a write whole or not at all.

**The same answers as before.** Scores are summed in the order of the datum's features
(as the dict-based engine summed them), with 64-bit floats, and every update computes the
same expressions in the same order, so scores, labels and models are the same to the bit
as the engine's before it moved onto arrays (``tests/engines/classifier/reference`` keeps
that engine; the equivalence tests compare them). The compiled kernels
(:mod:`engines.common.kernels`), when built, score wire datums and weighed vectors, make
the vector a wire datum trains, take the training steps and copy rows between the two
copies, to the same bits; the Python here does it where they are not built, and for every
case they leave to it.

**The mix** (one linear-mixer round). Each server's diff holds what it learned since the
last mix: weight and variance changes, label counts, idf document counts, the number of
examples trained (``count``) and the model version it is based on. Two diffs with the
same version combine as follows: weights are averaged, each diff weighted by its
``count``, a weight a diff lacks counting as 0 there; variances take the minimum, a
missing one counting as 1; label and document counts add up; counts add up. Jubatus uses
the same averaging with every count fixed at 1 (so its mix is the plain mean over
servers); weighting by examples gives the same result when servers train equally, and
keeps a server that trained nothing from halving what the others learned. Diffs with
different versions do not combine: the one with the higher version wins, as in Jubatus.
``put_diff`` refuses a diff whose version is not this model's; otherwise it adds the mixed
diff to the master part of the model, takes out of the local diff exactly what
``get_diff`` sent (updates made while the round ran are kept for the next one), and
increments the version. Servers that trained nothing during the round hold identical
models afterwards. A diff travels as arrays: feature names in msgpack-packed chunks and the
numbers as raw little-endian arrays, so that unpacking a large one holds the interpreter
for short steps only (:func:`_pack_diff`).

Labels are known from training, ``set_label`` or a mix. ``classify`` scores every known
label, sorted by name, and training breaks ties between equal scores in the same order, so
servers holding the same model answer alike whatever order they learned their labels in
(Jubatus's order is its hash table's). Nothing here does I/O.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from threading import get_ident
from typing import Any

import msgpack
import numpy as np

from engines.classifier import classifier_types as types
from engines.classifier.full_converter import FullConverter, Groups, average_length, pick_converter
from engines.common import kernels
from engines.common.converter import Converter, DatumLike, Extracted, read_counts, weigh
from engines.common.fv_converter import keyword_status
from engines.common.linear import LinearMethod, create_method, squared_norm
from engines.common.readers import Readers
from engines.common.storage import (
    FeatureIndex,
    FloatArray,
    Table,
    WeightArrays,
    check_finite,
    read_table,
    storage_status,
)
from runtime.errors import ConfigError, ModelFileError, TypeMismatch, WireTypeError
from runtime.mix.mixable import (
    DiffError,
    read_fields,
    read_float,
    read_int,
    read_list,
    read_map,
)
from runtime.rpc.frames import FrameAnswer
from runtime.rpc.protocol import MSGID_LIMIT

logger = logging.getLogger(__name__)

_CONFIG_KEYS = ("method", "parameter", "converter")
_PACK_FIELDS = ("version", "count", "weights", "variances", "labels", "documents")
_DIFF_FIELDS = (
    "version",
    "count",
    "labels",
    "features",
    "weights",
    "variances",
    "label_counts",
    "documents",
    "frequencies",
)
_MODEL_FIELDS = (
    "version",
    "labels",
    "features",
    "weights",
    "variances",
    "label_counts",
    "documents",
    "frequencies",
)
#: A weighed feature vector: its names, and their values.
Vector = tuple[list[str], list[float]]
#: Feature names per packed chunk of a diff.
NAMES_PER_CHUNK = 4096
#: Datums a classify scores one by one in Python; more are scored as one numpy product.
BATCH_FROM = 8
#: Labels up to which a few datums are scored by code made for their slots (:func:`_adder`).
UNROLL_LABELS = 8
#: Those functions kept (one per label order and stride seen) before starting again.
ADDERS_KEPT = 256
#: Rows a bulk change (a mix, a load) handles per step: each step holds the interpreter a
#: millisecond or so, and threads reading a snapshot run between steps.
CHUNK = 8192
#: How long the writer steps aside between the steps of a bulk change, seconds.
PAUSE_SECONDS = 0.0001

#: The wire types of the arguments of classify and train (for the errors of bad input).
_DATA = types.CLASSIFIER_CLASSIFY.args[0]
_LABELED = types.CLASSIFIER_TRAIN.args[0]


# -- one copy of the model ----------------------------------------------------------------


class Replica:
    """One copy of everything the model holds (see the module docstring)."""

    __slots__ = (
        "DC",
        "DFD",
        "DFM",
        "all_features",
        "arrays",
        "counts",
        "diff_counts",
        "diff_features",
        "documents_diff",
        "documents_master",
        "epochs",
        "full",
        "generation",
        "groups_diff",
        "groups_master",
        "index",
        "labels",
        "master_features",
        "order",
        "order_labels",
        "order_slots",
        "retired",
        "rows",
        "slots",
        "trained",
        "version",
    )

    def __init__(self) -> None:
        self.index = FeatureIndex()
        #: Rows (feature ids) this copy holds; the unknown feature (row 0) included.
        self.rows = 1
        self.arrays = WeightArrays()
        self.DFM = array("q", [0]) * self.arrays.capacity
        self.DFD = array("q", [0]) * self.arrays.capacity
        #: Per row, how many labels have a diff weight there (for num_features_diff).
        self.DC = array("l", [0]) * self.arrays.capacity
        #: Label of each slot (None: free), and slot of each label.
        self.labels: list[str | None] = []
        self.slots: dict[str, int] = {}
        #: Label -> deletions so far: a diff sent before a label was deleted is not taken
        #: out of the label that comes back under the same name.
        self.epochs: dict[str, int] = {}
        #: Training counts per label (what get_labels shows) and their part since the mix.
        self.counts: dict[str, int] = {}
        self.diff_counts: dict[str, int] = {}
        #: The known labels, sorted, with their slots (and the two apart, for scoring).
        self.order: tuple[tuple[str, int], ...] = ()
        self.order_labels: list[str] = []
        self.order_slots: list[int] = []
        self.documents_master = 0
        self.documents_diff = 0
        #: The whole converter (None: the fast one), and bm25's counts per group.
        self.full: FullConverter | None = None
        self.groups_master: Groups = {}
        self.groups_diff: Groups = {}
        self.version = 0
        self.trained = 0
        #: Bumped by clear, load and a copied model: a diff sent before is not taken out.
        self.generation = 0
        self.master_features = 0
        self.diff_features = 0
        #: Rows with a weight in the master or the diff (a standalone server's num_features).
        self.all_features = 0
        self.retired = False

    # -- reading ----------------------------------------------------------------------------

    def frequency(self, name: str) -> int:
        fid = self.index.ids.get(name)
        if fid is None or fid >= self.rows:
            return 0
        return self.DFM[fid] + self.DFD[fid]

    def fids(self, names: Sequence[str]) -> list[int]:
        """Row ids of ``names``; 0 (the unknown feature) for names this copy lacks."""
        out = list(map(self.index.ids.get, names, repeat(0)))
        rows = self.rows
        if out and max(out) >= rows:  # named since this copy was made
            out = [fid if fid < rows else 0 for fid in out]
        return out

    def documents(self) -> int:
        return self.documents_master + self.documents_diff

    def average_length(self, group: str) -> float:
        return average_length(self.groups_master, self.groups_diff, group)

    def vector(self, extracted: Extracted) -> tuple[list[str], list[float]]:
        """The feature vector of ``extracted`` with this copy's document counts (the lists
        given may be reused)."""
        full = self.full
        if full is None:
            return weigh(extracted, self.frequency, self.documents())
        return full.vector(extracted, self.frequency, self.documents(), self.average_length)

    # -- structure --------------------------------------------------------------------------

    def ensure_rows(self, rows: int) -> None:
        arrays = self.arrays
        before = arrays.capacity
        arrays.ensure_rows(rows)
        extra = arrays.capacity - before
        if extra:
            self.DFM.extend(array("q", [0]) * extra)
            self.DFD.extend(array("q", [0]) * extra)
            self.DC.extend(array("l", [0]) * extra)

    def intern(self, name: str) -> int:
        fid = self.index.intern(name)
        if fid >= self.rows:
            self.rows = fid + 1
            if fid >= self.arrays.capacity:
                self.ensure_rows(fid + 1)
        return fid

    def slot(self, label: str) -> int:
        """The slot of ``label``, given a free one (a new column) if it has none."""
        slot = self.slots.get(label)
        if slot is None:
            try:
                slot = self.labels.index(None)
            except ValueError:
                slot = len(self.labels)
                self.labels.append(None)
                self.arrays.ensure_slots(slot + 1)
            self.labels[slot] = label
            self.slots[label] = slot
        return slot

    def sort_labels(self) -> None:
        self.order = tuple((label, self.slot(label)) for label in sorted(self.counts))
        self.order_labels = [label for label, _ in self.order]
        self.order_slots = [slot for _, slot in self.order]

    def add_label(self, label: str) -> bool:
        if label in self.counts:
            return False
        self.counts[label] = 0
        self.diff_counts[label] = 0
        self.slot(label)
        self.sort_labels()
        return True

    def count_label(self, label: str) -> None:
        known = label in self.counts
        self.counts[label] = self.counts.get(label, 0) + 1
        self.diff_counts[label] = self.diff_counts.get(label, 0) + 1
        if not known:
            self.slot(label)
            self.sort_labels()

    def recount(self) -> None:
        """The feature counts of get_status, and the per-row diff counts, from the arrays
        (:data:`CHUNK` rows at a time)."""
        views = self.arrays.views()
        master = diff_features = every = 0
        for low in range(1, self.rows, CHUNK):
            high = min(low + CHUNK, self.rows)
            in_master = (~np.isnan(views["WM"][low:high])).any(axis=1)
            master += int(in_master.sum())
            diff = (~np.isnan(views["WD"][low:high])).sum(axis=1)
            self.DC[low:high] = array("l", diff.tolist())
            diff_features += int((diff > 0).sum())
            every += int((in_master | (diff > 0)).sum())
        self.master_features = master
        self.diff_features = diff_features
        self.all_features = every

    def copy(self) -> Replica:
        """A copy sharing nothing mutable but the (append-only) feature index."""
        other = Replica.__new__(Replica)
        other.index = self.index
        other.rows = self.rows
        other.arrays = self.arrays.copy()
        other.DFM = array("q", self.DFM)
        other.DFD = array("q", self.DFD)
        other.DC = array("l", self.DC)
        other.copy_small_state(self)
        other.retired = True
        return other

    def copy_small_state(self, source: Replica) -> None:
        self.index = source.index
        self.rows = source.rows
        self.labels = list(source.labels)
        self.slots = dict(source.slots)
        self.epochs = dict(source.epochs)
        self.counts = dict(source.counts)
        self.diff_counts = dict(source.diff_counts)
        self.order = source.order
        self.order_labels = source.order_labels
        self.order_slots = source.order_slots
        self.documents_master = source.documents_master
        self.documents_diff = source.documents_diff
        self.full = source.full
        self.groups_master = dict(source.groups_master)
        self.groups_diff = dict(source.groups_diff)
        self.version = source.version
        self.trained = source.trained
        self.generation = source.generation
        self.master_features = source.master_features
        self.diff_features = source.diff_features
        self.all_features = source.all_features

    def catch_up(self, source: Replica, rows: Iterable[int] | None) -> None:
        """Become equal to ``source``: ``rows`` are the rows that differ (None: maybe all)."""
        same_shape = (
            rows is not None
            and source.index is self.index
            and source.arrays.stride == self.arrays.stride
        )
        if not same_shape:
            self.arrays = source.arrays.copy()
            self.DFM = array("q", source.DFM)
            self.DFD = array("q", source.DFD)
            self.DC = array("l", source.DC)
        else:
            assert rows is not None
            if source.arrays.capacity > self.arrays.capacity:
                self.ensure_rows(source.arrays.capacity)
            self.arrays.copy_rows_from(
                source.arrays,
                rows,
                [(self.DFM, source.DFM, 1), (self.DFD, source.DFD, 1), (self.DC, source.DC, 1)],
            )
        self.copy_small_state(source)

    # -- what the snapshot and the mix read -------------------------------------------------

    def score(self, extracted: Sequence[Extracted]) -> list[list[tuple[str, float]]]:
        """Every known label (sorted) with its score, per datum."""
        if self.full is None:
            frequency = self.frequency
            documents = self.documents_master + self.documents_diff
            vectors = [weigh(e, frequency, documents) for e in extracted]
        else:
            vectors = [self.vector(e) for e in extracted]
        compiled = kernels.compiled
        if compiled is not None:
            scored: list[list[tuple[str, float]]] | None = compiled.score_vectors(vectors, self)
            if scored is not None:
                return scored
        if len(vectors) >= BATCH_FROM and self.order:
            return self._score_batch(vectors)
        labels = self.order_labels
        slots = self.order_slots
        weights = self.arrays.W
        stride = self.arrays.stride
        get = self.index.ids.get
        rows = self.rows
        add_up = _adder((stride, *slots)) if 0 < len(slots) <= UNROLL_LABELS else None
        out = []
        for names, values in vectors:
            if add_up is not None:
                scores = add_up(get, rows, weights, names, values)
            else:
                fids = list(map(get, names, repeat(0)))
                if fids and max(fids) >= rows:  # named since this copy was made: unknown here
                    fids = [fid if fid < rows else 0 for fid in fids]
                bases = [fid * stride for fid in fids]
                scores = []
                for slot in slots:
                    total = 0.0
                    for base, value in zip(bases, values):  # noqa: B905 (one length)
                        total += weights[base + slot] * value
                    scores.append(total)
            if not all(map(math.isfinite, values)):
                scores = self._without_rows(scores, slots)
            out.append(list(zip(labels, scores)))  # noqa: B905 (one length)
        return out

    def _score_batch(
        self, vectors: list[tuple[list[str], list[float]]]
    ) -> list[list[tuple[str, float]]]:
        """Many datums at once: the products gathered into one array, summed feature after
        feature (cumsum: the order a Python loop sums in, so the same bits). Each datum's
        features are padded at the end with the unknown feature times 0."""
        order = self.order
        labels = [label for label, _ in order]
        slots = np.fromiter((slot for _, slot in order), dtype=np.intp, count=len(order))
        names: list[str] = []
        values: list[float] = []
        lengths: list[int] = []
        for vector_names, vector_values in vectors:
            names.extend(vector_names)
            values.extend(vector_values)
            lengths.append(len(vector_names))
        total = len(names)
        fids = np.fromiter(map(self.index.ids.get, names, repeat(0)), dtype=np.intp, count=total)
        fids[fids >= self.rows] = 0
        factors_flat = np.array(values, dtype=np.float64)
        index, factors = _padded(fids, factors_flat, lengths)
        gathered = self.arrays.views()["W"][index][:, :, slots]
        with np.errstate(all="ignore"):  # inf and NaN values give what Python gives
            sums = np.cumsum(gathered * factors[:, :, None], axis=1)[:, -1, :] + 0.0
        finite = bool(np.isfinite(factors_flat).all())
        out = []
        for (_, vector_values), row in zip(vectors, sums.tolist(), strict=True):
            if not finite and not all(map(math.isfinite, vector_values)):
                row = self._without_rows(row, slots.tolist())
            out.append(list(zip(labels, row, strict=True)))
        return out

    def score_flat(
        self, names: list[str], values: list[float], lengths: list[int]
    ) -> list[list[tuple[str, float]]] | None:
        """:meth:`score` of datums whose features (not weighted by idf) are laid end to end,
        ``lengths[i]`` of them for datum ``i``, as one numpy gather summed feature after
        feature (see :meth:`_score_batch`); None when that might not give the same bits as
        :meth:`score` (a value or a weight that is not finite, a feature twice in a datum):
        the caller then scores them the usual way. A 0 value, which :func:`weigh` leaves
        out, is summed here: 0 times a finite weight adds nothing to a sum but the sign of
        a zero, and ``+ 0.0`` at the end makes every zero positive, as a Python sum from
        ``0.0`` has it."""
        count = len(lengths)
        order = self.order
        if not order:
            return [[] for _ in lengths]
        factors_flat = np.array(values, dtype=np.float64)
        if not np.isfinite(factors_flat).all():
            return None
        total = len(names)
        fids = np.fromiter(map(self.index.ids.get, names, repeat(0)), dtype=np.intp, count=total)
        fids[fids >= self.rows] = 0
        index, factors = _padded(fids, factors_flat, lengths)
        if index.shape[1] > 1:
            # A known feature twice in a datum (weigh sums its values first); the unknown
            # feature (0: padding, names this copy lacks) weighs 0 however often it comes.
            ordered = np.sort(index, axis=1)
            if ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != 0)).any():
                return None
        gathered = self.arrays.views()["W"][index][:, :, self.order_slots]
        if not np.isfinite(gathered).all():
            return None
        sums = np.cumsum(gathered * factors[:, :, None], axis=1)[:, -1, :] + 0.0
        labels = self.order_labels
        step = len(labels)
        pairs = list(zip(labels * count, sums.ravel().tolist(), strict=True))
        return [pairs[at : at + step] for at in range(0, len(pairs), step)]

    def _without_rows(self, scores: list[float], slots: Sequence[int]) -> list[float]:
        """Scores with 0 for the labels that have no weights at all (the dict-based engine
        did not sum over them: a non-finite value times nothing stayed 0)."""
        views = self.arrays.views()
        rows = self.rows
        out = []
        for score, slot in zip(scores, slots, strict=True):
            present = (~np.isnan(views["WM"][:rows, slot])).any() or (
                ~np.isnan(views["WD"][:rows, slot])
            ).any()
            out.append(score if present else 0.0)
        return out

    def status(self, method: str, standalone: bool = False) -> dict[str, str]:
        """Jubatus's keys: its storage's (``local_storage`` on a standalone server, as
        Jubatus picks it, ``local_storage_mixture`` in a cluster) and its weight manager's."""
        status = {
            "method": method,
            "num_classes": str(len(self.counts)),
            **storage_status(
                standalone,
                every=self.all_features,
                master=self.master_features,
                diff=self.diff_features,
                version=self.version,
            ),
            "weight_manager_version": str(self.version),
        }
        for prefix, documents, frequencies, groups in (
            ("diff", self.documents_diff, self.DFD, self.groups_diff),
            ("master", self.documents_master, self.DFM, self.groups_master),
        ):
            counted = np.frombuffer(frequencies, dtype=np.int64, count=self.rows)[1:]
            status |= keyword_status(
                prefix,
                documents=documents,
                frequencies=int(np.count_nonzero(counted)),
                groups=len(groups),
                group_lengths=len(groups),
            )
        return status


#: What sums one datum's products for the label slots of a key (the stride, then the
#: slots): ``add_up(get, rows, weights, names, values) -> [score per slot]``, ``get`` the
#: feature index's ``ids.get`` and ``rows`` the rows of the copy read.
Adder = Callable[
    [Callable[[str, int], int], int, "array[float]", list[str], list[float]], list[float]
]
_ADDERS: dict[tuple[int, ...], Adder] = {}


def _adder(key: tuple[int, ...]) -> Adder:
    """The :data:`Adder` of ``key``, made once (Python code written for those slots, the
    stride and slots as constants) and kept. It sums every label in one pass over the
    features; each label's sum takes the same products in the same order as a loop per
    label, from ``0.0``, so the same bits, for a third less bytecode per product."""
    adder = _ADDERS.get(key)
    if adder is None:
        stride, *slots = key
        totals = [f"t{i}" for i in range(len(slots))]
        source = "\n".join(
            [
                "def add_up(get, rows, weights, names, values):",
                f"    {' = '.join(totals)} = 0.0",
                "    for name, value in zip(names, values):",
                "        base = get(name, 0)",
                "        if base >= rows:  # named since this copy was made: unknown here",
                "            base = 0",
                f"        base *= {stride}",
                *(
                    f"        {total} += weights[base + {slot}] * value"
                    for total, slot in zip(totals, slots, strict=True)
                ),
                f"    return [{', '.join(totals)}]",
            ]
        )
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<scores of slots {slots}>", "exec"), namespace)
        adder = namespace["add_up"]
        if len(_ADDERS) >= ADDERS_KEPT:
            _ADDERS.clear()
        _ADDERS[key] = adder
    return adder


def _padded(
    fids: np.ndarray[Any, np.dtype[np.intp]], factors: FloatArray, lengths: list[int]
) -> tuple[np.ndarray[Any, np.dtype[np.intp]], FloatArray]:
    """Features laid end to end, ``lengths[i]`` for datum ``i``, as one row per datum,
    padded at the end with the unknown feature (0) times 0."""
    count = len(lengths)
    width = max(lengths)
    if width == min(lengths) and width:
        return fids.reshape(count, width), factors.reshape(count, width)
    width = max(width, 1)
    sizes = np.array(lengths, dtype=np.intp)
    shift = np.arange(0, count * width, width) - (np.cumsum(sizes) - sizes)
    at = np.arange(len(fids)) + np.repeat(shift, sizes)
    index = np.zeros(count * width, dtype=np.intp)
    index[at] = fids
    padded = np.zeros(count * width, dtype=np.float64)
    padded[at] = factors
    return index.reshape(count, width), padded.reshape(count, width)


# -- the model (the writer's side) ---------------------------------------------------------


class _Sent:
    """What a ``get_diff`` sent: taken out of the local diff when the round's result comes."""

    __slots__ = ("count", "diff", "epochs", "generation")

    def __init__(self, diff: _Diff, replica: Replica) -> None:
        self.diff = diff
        self.count = diff.count
        self.generation = replica.generation
        self.epochs = dict(replica.epochs)


class ClassifierModel:
    """A Jubatus-compatible linear classifier (see the module docstring)."""

    def __init__(self, config: object) -> None:
        if not isinstance(config, dict):
            raise ConfigError("config: expected an object with method, parameter and converter")
        for key in config:
            if key not in _CONFIG_KEYS:
                raise ConfigError.unknown_key(str(key), _CONFIG_KEYS)
        if "method" not in config:
            raise ConfigError("method: required")
        if "converter" not in config:
            raise ConfigError("converter: required")
        self.method: LinearMethod = create_method(config["method"], config.get("parameter"))
        #: The fast converter, or Jubatus's whole one for a config only it takes.
        self.converter: Converter | FullConverter = pick_converter(config["converter"])
        self._full = self.converter if isinstance(self.converter, FullConverter) else None
        #: What the compiled kernel reads of the converter (None: it takes no case).
        self.wire_caches = (
            self.converter.wire_caches() if isinstance(self.converter, Converter) else None
        )
        #: The copy the writer changes.
        self._work = Replica()
        self._work.full = self._full
        #: Once snapshots are taken: the other copy, the published one, and its readers.
        self._other: Replica | None = None
        self._readers: Readers | None = None
        self._published: ClassifierSnapshot | None = None
        #: Rows changed since the last publish (None: maybe every row).
        self._dirty: set[int] | None = set()
        self._changed = False
        #: What the writer's copy still lacks of the published one: the rows, or None.
        self._owed: set[int] | None = None
        self._owes = False
        #: The diff this model's own get_diff sent (for put_diff without ``sent``).
        self._sent: _Sent | None = None

    # -- snapshots --------------------------------------------------------------------------

    def snapshot(self) -> ClassifierSnapshot:
        """Publish what the writer has done (see the module docstring): the snapshot readers
        get. Called on the writer thread; returns the previous one when nothing changed."""
        if self._published is not None and not self._changed:
            return self._published
        work = self._work
        if self._other is None:  # the first snapshot: make the second copy
            self._other = work.copy()
            self._readers = Readers(work)
            self._owes = False
        else:
            self._owed = self._dirty
            self._owes = True
        assert self._readers is not None
        work.retired = False
        self._readers.current = work
        other = self._other
        other.retired = True  # from now on a reader that finds it retired moves on
        self._other, self._work = work, other
        self._dirty = set()
        self._changed = False
        self._published = ClassifierSnapshot(self, work, self._readers)
        return self._published

    def writable_now(self) -> bool:
        """Whether a change would start at once: no reader is still on the copy the next
        change brings up to date first (the writer would wait for it)."""
        if not self._owes or self._readers is None or not self._readers.slots:
            return True
        work = self._work
        return not any(held is work for held in list(self._readers.slots.values()))

    def _current(self) -> Replica:
        """The writer's copy, brought up to date first if a publish left it behind."""
        work = self._work
        if self._owes:
            assert self._readers is not None and self._other is not None
            self._readers.wait_until_free(work)
            work.catch_up(self._other, self._owed)
            self._owes = False
            self._owed = None
        return work

    def _writable(self) -> Replica:
        """:meth:`_current`, about to change (the next snapshot publishes it)."""
        self._changed = True
        return self._current()

    def _touch(self, rows: Iterable[int] | None) -> None:
        """Mark rows changed (None: maybe all)."""
        dirty = self._dirty
        if dirty is None:
            return
        if rows is None:
            self._dirty = None
            return
        dirty.update(rows)
        self._bound_dirty()

    def _bound_dirty(self) -> None:
        """Forget the rows changed once there are so many that a whole copy is cheaper."""
        self._dirty = _bounded_rows(self._dirty, self._work.rows)

    # -- the service's calls ---------------------------------------------------------------

    def train(self, pairs: Sequence[tuple[str, DatumLike]]) -> int:
        """Learn each ``(label, datum)`` in order; returns how many were trained.

        Every pair is checked before anything is learned: a bad label or datum raises
        ``ValueError`` and leaves the model unchanged.
        """
        converter = self.converter
        checked: list[tuple[str, Extracted]] = []
        unchecked: Sequence[object] = pairs
        for i, pair in enumerate(unchecked):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValueError(f"train[{i}]: expected a (label, datum) pair")
            label, datum = pair
            if not isinstance(label, str) or not label:
                raise ValueError(f"train[{i}]: the label must be a non-empty string")
            try:
                extracted = converter.extract(datum)
            except (ValueError, AttributeError, TypeError) as error:
                raise ValueError(f"train[{i}]: {error}") from None
            checked.append((label, extracted))
        return self._train_checked(checked)

    def train_wire(self, data: object) -> int:
        """:meth:`train` of the wire value of ``train``'s argument (``[[label, datum]...]``,
        strings as bytes); a value that does not fit raises ``TypeMismatch`` as the
        dispatcher would."""
        if type(data) is not list:
            return self._train_decoded(data)
        converter = self.converter
        caches = self.wire_caches
        compiled = kernels.compiled
        vectorize = strings = numbers = None
        if compiled is not None and caches is not None:
            vectorize = compiled.train_vector
            strings, numbers = caches
            if len(data) == 1 and not converter.counts_documents:
                learnt = self._train_one_known(data[0], compiled, caches)
                if learnt:
                    return learnt
        checked: list[tuple[str, Extracted]] = []
        ready: list[Vector | None] = []
        for pair in data:
            if type(pair) is not list or len(pair) != 2:
                return self._train_decoded(data)
            label, datum = pair
            if type(label) is not bytes or not label:
                return self._train_decoded(data)
            vector: Vector | None = (
                vectorize(datum, strings, numbers) if vectorize is not None else None
            )
            if vector is not None:
                extracted: Extracted = (*vector, None)
            else:
                found = converter.extract_wire(datum)
                if found is None:
                    return self._train_decoded(data)
                extracted = found
            try:
                checked.append((label.decode("utf-8"), extracted))
            except UnicodeDecodeError:
                return self._train_decoded(data)
            ready.append(vector)
        return self._train_checked(checked, ready)

    def _train_one_known(self, pair: object, compiled: Any, caches: tuple[Any, Any]) -> int:
        """One wire example learnt by the kernel alone (``train_known``: train_vector's
        vector, learnt at once): 1, or 0 having changed nothing when it does not take it (a
        new label or feature, a datum the Python must read) and the general path must."""
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not bytes:
            return 0
        work = self._current()
        method = self.method
        try:
            learnt = compiled.train_known(
                pair[1], *caches, method.kernel_code, method.c, method.kernel_extra,
                work, pair[0], self._dirty, None,
            )  # fmt: skip
        except BaseException:
            self._changed = True  # a step that fails part way has changed the copy
            raise
        if learnt is None:
            return 0
        self._changed = True
        self._bound_dirty()
        return 1

    def train_at_once(self, data: object) -> int | None:
        """``train`` of one wire example learnt straight into the published copy, for
        :class:`~runtime.server.snapshot.SnapshotModel`'s ``at_once``: 1, or None having
        changed nothing. The kernel (``train_known`` given the readers) learns it only
        when no reader is registered on any copy, in one step no reader can see half of;
        the rows it changes are added to those the writer's copy owes. None for all it does
        not take (as :meth:`_train_one_known`), and while the writer's copy holds
        unpublished changes. An error part way (out of memory) leaves the example partly
        learnt in the published copy, as the writer's path would publish it, and the
        writer's copy owing every row."""
        ready = self._ready_at_once()
        if ready is None or type(data) is not list or len(data) != 1:
            return None
        compiled, caches = ready
        pair = data[0]
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not bytes:
            return None
        # (Published: the first snapshot made the other copy and the readers' table.)
        assert self._readers is not None and self._other is not None
        owed = self._owed if self._owes else set()
        method = self.method
        try:
            learnt = compiled.train_known(
                pair[1], *caches, method.kernel_code, method.c, method.kernel_extra,
                self._other, pair[0], owed, self._readers.slots,
            )  # fmt: skip
        except BaseException:
            self._owed = None  # a step that fails part way: the writer's copy takes all
            self._owes = True
            raise
        if learnt is None:
            return None
        self._owes = True
        self._owed = _bounded_rows(owed, self._work.rows)
        return 1

    def _ready_at_once(self) -> tuple[Any, tuple[Any, Any]] | None:
        """The compiled kernels and the converter's caches, when an example may be learnt
        into the published copy at once now: a copy is published, the writer's holds no
        unpublished changes, and the converter weighs nothing by document counts."""
        compiled = kernels.compiled
        caches = self.wire_caches
        if (
            self._published is None
            or self._changed
            or compiled is None
            or caches is None
            or self.converter.counts_documents
        ):
            return None
        return compiled, caches

    def train_frames(
        self,
        data: bytes,
        cluster: bytes | None,
        reads: ClassifierSnapshot | None,
        max_count: int,
        max_reply: int,
    ) -> tuple[FrameAnswer, int, BaseException | None] | None:
        """The plain ``train`` calls ``data`` starts with, each of one example
        :meth:`train_at_once` would learn, learnt at once and answered from their bytes,
        with the plain ``classify`` calls among them when ``reads`` (the published
        snapshot) is given, from ``cluster`` (trains from any name when None), for
        :meth:`SnapshotModel.apply_many_at_once`: ``(answer, examples learnt, error)``, or
        None where it cannot learn at once now (as :meth:`train_at_once`). The writer's
        copy owes the rows changed. A train whose learning fails once begun (a step's
        arithmetic, or memory) stays partly learnt, as :meth:`train_at_once` leaves it, and
        is not run again: ``answer`` names it as failed, with ``error``, for the server to
        answer as it answers a train that raised, and the writer's copy owes every row."""
        ready = self._ready_at_once()
        if ready is None:
            return None
        compiled, caches = ready
        assert self._readers is not None and self._other is not None
        owed = self._owed if self._owes else set()
        method = self.method
        train = (
            method.kernel_code, method.c, method.kernel_extra, self._other, owed,
            self._readers.slots,
        )  # fmt: skip
        try:
            answered = compiled.classifier_frames(
                data, cluster, MSGID_LIMIT, max_count, max_reply, *caches,
                None if reads is None else reads._replica, train,
            )  # fmt: skip
        except BaseException:
            self._owed = None  # (out of memory once it had learnt): the writer's copy takes all
            self._owes = True
            raise
        if answered is None:
            return None
        replies, count, consumed, trained, failed = answered
        error = None
        if failed is not None:  # a train that failed part way: taken, answered as an error
            msgid, error = failed
            self._owed = None  # the writer's copy takes all
            self._owes = True
            failed = (msgid, "train", error)
        elif trained:
            self._owes = True
            self._owed = _bounded_rows(owed, self._work.rows)
        return (replies, count, consumed, failed), trained, error

    def _train_decoded(self, data: object) -> int:
        try:
            decoded = _LABELED.decode(data)
        except WireTypeError as error:
            raise TypeMismatch(
                f"train: argument {types.CLASSIFIER_TRAIN.labels[0]}: {error}"
            ) from None
        return self.train([(example.label, example.data) for example in decoded])

    def _train_checked(
        self, checked: list[tuple[str, Extracted]], ready: list[Vector | None] | None = None
    ) -> int:
        """Check every example's vector, then learn them in order. ``ready`` has, per
        example, the vector the compiled kernel made already (checked and sorted by name:
        ``train_vector``, for a converter that weighs nothing by idf), or None."""
        if ready is None:
            ready = [None] * len(checked)
        work = self._current()
        counts_documents = self.converter.counts_documents
        full = self._full
        frequency = work.frequency
        documents = work.documents()
        vectors = []
        for i, ((_, extracted), made) in enumerate(zip(checked, ready, strict=True)):
            if made is not None:
                vectors.append(made)
                continue
            if full is None:
                names, values = weigh(_copy(extracted), frequency, documents)
            else:
                names, values = work.vector(_copy(extracted))
            if not all(map(math.isfinite, values)) or not math.isfinite(squared_norm(values)):
                raise ValueError(f"train[{i}]: the datum gives a feature too large or not finite")
            vectors.append((names, values))
        if not checked:
            return 0
        self._changed = True  # (``work`` is the writer's copy, brought up to date above)
        method = self.method
        ids = work.index.ids
        compiled = kernels.compiled
        # The kernel learns a ready example whose label and features the copy knows.
        learn_known = None if compiled is None or counts_documents else compiled.learn_known
        for (label, extracted), (names, values), made in zip(checked, vectors, ready, strict=True):
            if made is not None and learn_known is not None:
                learnt = learn_known(
                    method.kernel_code, method.c, method.kernel_extra,
                    work, label, names, values, self._dirty,
                )  # fmt: skip
                if learnt is not None:
                    continue
            if counts_documents:  # counted first: the document's own counts weigh it
                if full is None:
                    self._count_document(work, extracted)
                else:
                    self._count_every_feature(work, extracted, full.counts_groups)
                names, values = work.vector(_copy(extracted))
            known = work.order_slots  # (a new label replaces the list)
            work.count_label(label)
            slot = work.slots[label]
            # Jubatus sorts (and merges) a training vector by feature name.
            if len(names) > 1 and made is None:
                ranked = sorted(zip(names, values, strict=True))
                names = [name for name, _ in ranked]
                values = [value for _, value in ranked]
            fids = list(map(ids.get, names))
            if None in fids:
                fids = [work.intern(name) for name in names]
            stride = work.arrays.stride
            fresh: list[int] = []
            if method.learn(
                work.arrays,
                [fid * stride for fid in fids],  # type: ignore[operator]
                values,
                slot,
                known,
                fresh,
            ):
                dirty = self._dirty
                if dirty is not None:
                    dirty.update(fids)  # type: ignore[arg-type]
                if fresh:
                    self._count_fresh(work, fresh)
            work.trained += 1
        self._bound_dirty()
        return len(checked)

    def _count_document(self, work: Replica, extracted: Extracted) -> None:
        names, _, offsets = extracted
        work.documents_diff += 1
        if offsets is None:
            return
        counted = dict.fromkeys(
            name for name, offset in zip(names, offsets, strict=True) if offset is not None
        )
        rows = [work.intern(name) for name in counted]
        for fid in rows:
            work.DFD[fid] += 1
        self._touch(rows)

    def _count_every_feature(self, work: Replica, extracted: Extracted, groups: bool) -> None:
        """Count a document as Jubatus's ``weight_manager`` does (the whole converter's
        way): every feature, each time it comes; with ``groups``, bm25's group counts."""
        work.documents_diff += 1
        rows = [work.intern(name) for name in extracted[0]]
        for fid in rows:
            work.DFD[fid] += 1
        self._touch(rows)
        if groups:
            FullConverter.count_groups(extracted, work.groups_diff)

    @staticmethod
    def _count_fresh(work: Replica, fresh: list[int]) -> None:
        stride = work.arrays.stride
        counts = work.DC
        master = work.arrays.WM
        for position in fresh:
            fid = position // stride
            if counts[fid] == 0:
                work.diff_features += 1
                base = fid * stride
                if all(m != m for m in master[base : base + stride]):  # new to the table
                    work.all_features += 1
            counts[fid] += 1

    def classify(self, data: Sequence[DatumLike]) -> list[list[tuple[str, float]]]:
        """Every known label (sorted) with its score, per datum; ``ValueError`` on a bad
        datum. Reads the writer's copy: for a model used from one thread."""
        return self._current().score(_extract_all(self.converter, data))

    def get_labels(self) -> dict[str, int]:
        """Training count per known label."""
        return dict(self._current().counts)

    def set_label(self, label: str) -> bool:
        """Make ``label`` known (count 0); False if it already was."""
        name: object = label
        if not isinstance(name, str) or not name:
            raise ValueError("the label must be a non-empty string")
        if label in self._current().counts:
            return False
        return self._writable().add_label(label)

    def delete_label(self, label: str) -> bool:
        """Forget ``label`` and its weights; False if it was not known."""
        work = self._current()
        known = label in work.counts
        slot = work.slots.get(label)
        had_weights = False
        if slot is not None:
            views = work.arrays.views()
            rows = work.rows
            had_weights = any(
                bool((~np.isnan(views[name][:rows, slot])).any())
                for name in ("WM", "WD", "VM", "VD")
            )
        sent = self._sent
        if sent is not None and sent.generation == work.generation:
            had_weights = had_weights or sent.diff.has_rows(label)
        if not known and slot is None:
            return had_weights
        work = self._writable()
        work.counts.pop(label, None)
        work.diff_counts.pop(label, None)
        work.epochs[label] = work.epochs.get(label, 0) + 1
        if slot is not None:
            work.arrays.reset_slot(slot)
            work.labels[slot] = None
            del work.slots[label]
            work.recount()
        work.sort_labels()
        self._touch(None)
        return known or had_weights

    def clear(self) -> bool:
        """Forget everything learned (the version stays, as in Jubatus)."""
        work = self._writable()
        fresh = Replica()
        fresh.version = work.version
        fresh.generation = work.generation + 1
        self._replace(fresh)
        self._sent = None
        return True

    def get_status(self, standalone: bool = False) -> dict[str, str]:
        """Jubatus's status keys for a linear classifier (a standalone server's, or a
        cluster member's)."""
        return self._current().status(self.method.name, standalone)

    def _replace(self, replica: Replica) -> None:
        """Swap the writer's copy for ``replica`` (a load, a copied model, a clear)."""
        work = self._writable()
        replica.retired = work.retired
        replica.full = self._full
        self._work = replica
        self._touch(None)

    # -- save and load ---------------------------------------------------------------------

    def pack(self) -> object:
        """The whole model (master and unmixed parts) as plain msgpack-able data."""
        return pack_replica(self._current())

    def unpack(self, payload: object) -> None:
        """Replace the model with :meth:`pack`'s output; ``ModelFileError`` leaves it as it was."""
        try:
            replica = unpack_replica(payload)
        except DiffError as error:
            raise ModelFileError(f"classifier model does not fit: {error}") from None
        replica.generation = self._current().generation + 1
        self._replace(replica)
        self._sent = None

    # -- the mix ----------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._current().version

    def get_diff(self) -> object:
        """What was learned since the last mix (see the module docstring)."""
        work = self._current()
        diff = _Diff.of(work)
        self._sent = _Sent(diff, work)
        return diff.plain()

    def mix(self, lhs: object, rhs: object) -> object:
        """Two diffs combined (same version: averaged/summed; else the newer one)."""
        return mix_diffs(lhs, rhs)

    def put_diff(self, mixed: object, sent: object = "own") -> bool:
        """Apply a folded diff; False (no change) when it is based on another version.

        ``sent`` is the snapshot whose ``get_diff`` this server sent in the round (None: it
        sent none); by default, what this model's own :meth:`get_diff` sent."""
        diff = _Diff.read(mixed, "diff")
        if sent == "own":
            took: _Sent | None = self._sent
        elif isinstance(sent, ClassifierSnapshot):
            took = sent.sent
        else:
            took = None
        self._sent = None
        work = self._current()
        if diff.version != work.version:
            logger.info(
                "mixed diff refused: based on version %d, this model is at %d",
                diff.version,
                work.version,
            )
            return False
        work = self._writable()
        if took is not None and took.generation != work.generation:
            took = None
        touched = _apply_mixed(work, diff, took)
        work.version += 1
        self._touch(touched)
        return True

    def get_model(self) -> object:
        """The mixed state (no local diff) and its version, for a joining server."""
        return _model_of(self._current())

    def set_model(self, model: object) -> None:
        """Become a copy of a peer's :meth:`get_model`; local unmixed learning is dropped."""
        replica = read_model(model)
        replica.generation = self._current().generation + 1
        self._replace(replica)
        self._sent = None


def _bounded_rows(rows: set[int] | None, count: int) -> set[int] | None:
    """``rows`` (changed, of ``count``), or None (maybe all) once there are so many that a
    whole copy is cheaper than copying them one by one."""
    if rows is not None and len(rows) > 4096 and len(rows) * 4 > count:
        return None
    return rows


def _copy(extracted: Extracted) -> Extracted:
    names, values, offsets = extracted
    return names, list(values), offsets


def _extract_all(
    converter: Converter | FullConverter, data: Sequence[DatumLike]
) -> list[Extracted]:
    out = []
    for i, datum in enumerate(data):
        try:
            out.append(converter.extract(datum))
        except (ValueError, AttributeError, TypeError) as error:
            raise ValueError(f"classify[{i}]: {error}") from None
    return out


# -- the published side --------------------------------------------------------------------


#: Numbers for the snapshots made (``ClassifierSnapshot.serial``).
_SNAPSHOT_SERIALS = itertools.count()


class ClassifierSnapshot:
    """A published, read-only view of a :class:`ClassifierModel`: callable from any thread,
    with no lock (see the module docstring)."""

    __slots__ = (
        "_readers",
        "_replica",
        "_statuses",
        "_wire_caches",
        "converter",
        "method_name",
        "sent",
        "serial",
    )

    def __init__(self, model: ClassifierModel, replica: Replica, readers: Readers) -> None:
        #: Which snapshot of the process this is (each one made gets the next number).
        self.serial = next(_SNAPSHOT_SERIALS)
        self.converter = model.converter
        #: What the compiled kernel reads of the converter (None: it takes no case).
        self._wire_caches = model.wire_caches
        self.method_name = model.method.name
        self._replica = replica
        self._readers = readers
        #: What get_diff on this snapshot sent (the writer takes it out at put_diff).
        self.sent: _Sent | None = None
        #: get_status's model keys (a standalone server's, a member's), made once per
        #: snapshot and examples trained: the numbers they show change while it is
        #: published only by :meth:`ClassifierModel.train_at_once`, which counts one more.
        self._statuses: dict[bool, tuple[int, dict[str, str]]] = {}

    def _read(self, read: Callable[[Replica], Any]) -> Any:
        readers = self._readers
        me = get_ident()
        replica = readers.enter(self._replica, me)
        try:
            return read(replica)
        finally:
            readers.leave(me)

    def classify(self, data: Sequence[DatumLike]) -> list[list[tuple[str, float]]]:
        extracted = _extract_all(self.converter, data)
        result: list[list[tuple[str, float]]] = self._read(lambda r: r.score(extracted))
        return result

    def classify_wire(self, data: object) -> object:
        """:meth:`classify` of the wire value of ``classify``'s argument, answering the wire
        value (``[[[label, score]...]...]``); ``TypeMismatch`` as the dispatcher words it for
        a value that does not fit. The compiled kernel answers the plain cases, when built
        (:mod:`engines.common.kernels`); the Python below answers the rest, the same."""
        compiled = kernels.compiled
        caches = self._wire_caches
        if compiled is not None and caches is not None:
            scored = compiled.classify_wire(data, *caches, self._replica)
            if scored is not None:
                return scored
        if type(data) is list:
            if len(data) >= BATCH_FROM and not self.converter.counts_documents:
                try:
                    names, values, lengths = self.converter.extract_wire_many(data)
                except ValueError:
                    pass  # one by one, below
                else:
                    readers = self._readers
                    me = get_ident()
                    replica = readers.enter(self._replica, me)
                    try:
                        scored = replica.score_flat(names, values, lengths)
                    finally:
                        readers.leave(me)
                    if scored is not None:
                        return scored
            extract = self.converter.extract_wire
            extracted = []
            for datum in data:
                one = extract(datum)
                if one is None:
                    break
                extracted.append(one)
            else:
                readers = self._readers
                me = get_ident()
                replica = readers.enter(self._replica, me)
                try:
                    return replica.score(extracted)
                finally:
                    readers.leave(me)
        try:
            decoded = _DATA.decode(data)
        except WireTypeError as error:
            raise TypeMismatch(
                f"classify: argument {types.CLASSIFIER_CLASSIFY.labels[0]}: {error}"
            ) from None
        return self.classify(decoded)

    def classify_frames(
        self, data: bytes, cluster: bytes, max_count: int, max_reply: int
    ) -> FrameAnswer | None:
        """The replies to the plain ``classify`` calls ``data`` starts with, from their
        bytes: the replies, how many, the bytes they took, and None (nothing failed:
        :class:`runtime.FrameAnswerer`); None where the compiled kernel takes none. The
        usual path answers the rest the same (``classify_wire``)."""
        compiled = kernels.compiled
        caches = self._wire_caches
        if compiled is None or caches is None:
            return None
        answered = compiled.classifier_frames(
            data, cluster, MSGID_LIMIT, max_count, max_reply, *caches, self._replica, None
        )
        if answered is None:
            return None
        replies, count, consumed, _, _ = answered
        return replies, count, consumed, None

    def get_labels(self) -> dict[str, int]:
        counts: dict[str, int] = self._read(lambda r: dict(r.counts))
        return counts

    def status_key(self) -> tuple[int, int]:
        """What :meth:`get_status` is made from: this snapshot, and the examples trained
        into it."""
        return self.serial, self._replica.trained

    def get_status(self, standalone: bool = False) -> dict[str, str]:
        made = self._statuses.get(standalone)
        if made is None or made[0] != self._replica.trained:  # (train_at_once adds to it)
            made = self._read(lambda r: (r.trained, r.status(self.method_name, standalone)))
            self._statuses[standalone] = made
        return dict(made[1])

    def frozen(self) -> Replica:
        """A private copy of this snapshot's numbers (for long reads)."""
        copy: Replica = self._read(lambda r: r.copy())
        return copy

    def pack(self) -> object:
        return pack_replica(self.frozen())

    @property
    def version(self) -> int:
        return self._replica.version

    def get_diff(self) -> object:
        sent: _Sent = self._read(lambda r: _Sent(_Diff.of(r), r))
        self.sent = sent
        return sent.diff.plain()

    def mix(self, lhs: object, rhs: object) -> object:
        return mix_diffs(lhs, rhs)

    def get_model(self) -> object:
        return _model_of(self.frozen())


# -- diffs ---------------------------------------------------------------------------------


class _Diff:
    """A diff (or a mixed one, or a model's master part) as arrays: ``labels`` are the
    columns, ``names`` the rows; NaN where a value is missing."""

    __slots__ = (
        "count",
        "documents",
        "frequencies",
        "groups",
        "label_counts",
        "labels",
        "names",
        "variances",
        "version",
        "weights",
    )

    def __init__(
        self,
        version: int,
        count: int,
        labels: list[str],
        names: list[str],
        weights: FloatArray,
        variances: FloatArray,
        label_counts: dict[str, int],
        documents: int,
        frequencies: npt_int,
    ) -> None:
        self.version = version
        self.count = count
        self.labels = labels
        self.names = names
        self.weights = weights
        self.variances = variances
        self.label_counts = label_counts
        self.documents = documents
        self.frequencies = frequencies
        #: bm25's counts per group (the whole converter's; empty for the fast one).
        self.groups: Groups = {}

    @classmethod
    def of(cls, replica: Replica) -> _Diff:
        """The local diff of ``replica`` (copied: it outlives the read)."""
        diff = _parts_of(replica, ("WD", "VD"), replica.DFD, replica.documents_diff, cls, True)
        diff.groups = dict(replica.groups_diff)
        return diff

    def has_rows(self, label: str) -> bool:
        if label not in self.labels:
            return False
        column = self.labels.index(label)
        return bool(
            (~np.isnan(self.weights[:, column])).any()
            or (~np.isnan(self.variances[:, column])).any()
        )

    def plain(self) -> dict[str, object]:
        plain: dict[str, object] = {
            "version": self.version,
            "count": self.count,
            "labels": list(self.labels),
            "features": _pack_names(self.names),
            "weights": self.weights.astype("<f8").tobytes(),
            "variances": self.variances.astype("<f8").tobytes(),
            "label_counts": dict(self.label_counts),
            "documents": self.documents,
            "frequencies": self.frequencies.astype("<i8").tobytes(),
        }
        if self.groups:
            plain["groups"] = plain_groups(self.groups)
        return plain

    @classmethod
    def read(cls, value: object, path: str) -> _Diff:
        fields, groups = _without_groups(value, path)
        fields = read_fields(fields, path, _DIFF_FIELDS)
        version = read_int(fields["version"], f"{path}.version")
        count = read_int(fields["count"], f"{path}.count")
        labels, names, weights, variances, frequencies = _read_arrays(fields, path)
        label_counts = _read_label_counts(fields["label_counts"], f"{path}.label_counts")
        documents = read_int(fields["documents"], f"{path}.documents")
        diff = cls(
            version,
            count,
            labels,
            names,
            weights,
            variances,
            label_counts,
            documents,
            frequencies,
        )
        diff.groups = groups
        return diff


def plain_groups(groups: Groups) -> dict[str, list[float]]:
    return {group: [frequency, length] for group, (frequency, length) in groups.items()}


def read_groups(value: object, path: str) -> Groups:
    """bm25's counts per group (``{group: [documents, summed length]}``), checked."""
    groups: Groups = {}
    for group, pair in read_map(value, path).items():
        where = f"{path}[{group!r}]"
        items = read_list(pair, where)
        if len(items) != 2:
            raise DiffError(f"{where}: expected [documents, length]")
        groups[group] = (read_float(items[0], where), read_float(items[1], where))
    return groups


def _without_groups(value: object, path: str) -> tuple[dict[str, object], Groups]:
    """A map's fields less the optional ``groups``, and those read."""
    fields = dict(read_map(value, path))
    if "groups" not in fields:
        return fields, {}
    return fields, read_groups(fields.pop("groups"), f"{path}.groups")


def add_groups(into: Groups, other: Mapping[str, tuple[float, float]]) -> None:
    """``into += other``, group by group (as Jubatus's ``keyword_weights`` merge)."""
    for group, (frequency, length) in other.items():
        mine = into.get(group, (0.0, 0.0))
        into[group] = (mine[0] + frequency, mine[1] + length)


def take_groups(into: Groups, sent: Mapping[str, tuple[float, float]]) -> None:
    """``into -= sent``; a group left at 0 is dropped."""
    for group, (frequency, length) in sent.items():
        mine = into.get(group, (0.0, 0.0))
        rest = (mine[0] - frequency, mine[1] - length)
        if rest == (0.0, 0.0):
            into.pop(group, None)
        else:
            into[group] = rest


npt_int = Any  # an int64 numpy array (kept loose: numpy's typing of int arrays is verbose)


def _parts_of(
    replica: Replica,
    tables: tuple[str, str],
    frequencies: array[int],
    documents: int,
    cls: type[_Diff],
    diff: bool,
) -> _Diff:
    """The rows and labels of ``replica`` that hold something in ``tables`` (weights,
    variances) or ``frequencies``, as a :class:`_Diff`."""
    views = replica.arrays.views()
    rows = replica.rows
    slots = [slot for slot, label in enumerate(replica.labels) if label is not None]
    labels = [replica.labels[slot] for slot in slots]
    weights = views[tables[0]][:rows, slots]
    variances = views[tables[1]][:rows, slots]
    counted = np.frombuffer(frequencies, dtype=np.int64)[:rows]
    keep = (~np.isnan(weights)).any(axis=1) | (~np.isnan(variances)).any(axis=1) | (counted > 0)
    keep[0] = False
    picked = np.flatnonzero(keep)
    names = replica.index.names
    if diff:
        label_counts = dict(replica.diff_counts)
        count = replica.trained
    else:
        label_counts = {
            label: n - replica.diff_counts.get(label, 0) for label, n in replica.counts.items()
        }
        count = 0
    return cls(
        replica.version,
        count,
        [label for label in labels if label is not None],
        [names[i] for i in picked.tolist()],
        weights[picked].copy(),
        variances[picked].copy(),
        label_counts,
        documents,
        counted[picked].copy(),
    )


def _pack_names(names: list[str]) -> list[bytes]:
    """Feature names in chunks, each packed by itself: unpacking one holds the interpreter
    for a short step only."""
    return [
        msgpack.packb(names[start : start + NAMES_PER_CHUNK], use_bin_type=True)
        for start in range(0, len(names), NAMES_PER_CHUNK)
    ]


def _read_names(value: object, path: str) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for i, chunk in enumerate(read_list(value, path)):
        if type(chunk) is not bytes:
            raise DiffError(f"{path}[{i}]: expected packed names (bin)")
        try:
            part = msgpack.unpackb(chunk, raw=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            raise DiffError(f"{path}[{i}]: not valid msgpack") from None
        if type(part) is not list or not all(type(name) is str for name in part):
            raise DiffError(f"{path}[{i}]: expected a list of names")
        seen.update(part)  # a chunk at a time: no step holds the interpreter long
        names.extend(part)
        if len(seen) != len(names):
            raise DiffError(f"{path}: a feature appears twice")
    return names


def _read_arrays(
    fields: Mapping[str, object], path: str
) -> tuple[list[str], list[str], FloatArray, FloatArray, npt_int]:
    labels: list[str] = []
    for i, label in enumerate(read_list(fields["labels"], f"{path}.labels")):
        if type(label) is not str or not label:
            raise DiffError(f"{path}.labels[{i}]: expected a label")
        labels.append(label)
    if len(set(labels)) != len(labels):
        raise DiffError(f"{path}.labels: a label appears twice")
    names = _read_names(fields["features"], f"{path}.features")
    shape = (len(names), len(labels))
    weights = _read_floats(fields["weights"], shape, f"{path}.weights")
    variances = _read_floats(fields["variances"], shape, f"{path}.variances")
    blob = fields["frequencies"]
    if type(blob) is not bytes or len(blob) != 8 * len(names):
        raise DiffError(f"{path}.frequencies: expected {len(names)} counts")
    frequencies = np.frombuffer(blob, dtype="<i8").astype(np.int64)
    if (frequencies < 0).any():
        raise DiffError(f"{path}.frequencies: counts must be >= 0")
    return labels, names, weights, variances, frequencies


def _read_floats(value: object, shape: tuple[int, int], path: str) -> FloatArray:
    if type(value) is not bytes or len(value) != 8 * shape[0] * shape[1]:
        raise DiffError(f"{path}: expected {shape[0]} x {shape[1]} numbers")
    floats = np.frombuffer(value, dtype="<f8").astype(np.float64).reshape(shape)
    check_finite(floats, path)
    return floats


def _read_label_counts(value: object, path: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for label, n in read_map(value, path).items():
        if not label:
            raise DiffError(f"{path}: empty label")
        counts[label] = read_int(n, f"{path}[{label!r}]")
    return counts


def mix_diffs(lhs: object, rhs: object) -> object:
    """Two diffs combined (see the module docstring); neither argument changes."""
    left = _Diff.read(lhs, "lhs")
    right = _Diff.read(rhs, "rhs")
    if left.version != right.version:
        return (left if left.version > right.version else right).plain()
    labels = list(dict.fromkeys([*left.labels, *right.labels]))
    rows = dict.fromkeys(left.names)
    rows.update(dict.fromkeys(right.names))
    names = list(rows)
    position = dict(zip(names, range(len(names)), strict=True))
    columns = {label: j for j, label in enumerate(labels)}
    shape = (len(names), len(labels))

    def spread(diff: _Diff, values: FloatArray) -> FloatArray:
        out = np.full(shape, np.nan)
        if diff.names and diff.labels:
            rows_at = np.array(list(map(position.__getitem__, diff.names)), dtype=np.intp)
            cols_at = np.array([columns[label] for label in diff.labels], dtype=np.intp)
            out[np.ix_(rows_at, cols_at)] = values
        return out

    lw, rw = spread(left, left.weights), spread(right, right.weights)
    lv, rv = spread(left, left.variances), spread(right, right.variances)
    total = left.count + right.count
    if total > 0:
        present = ~np.isnan(lw) | ~np.isnan(rw)
        averaged = (
            left.count * np.where(np.isnan(lw), 0.0, lw)
            + right.count * np.where(np.isnan(rw), 0.0, rw)
        ) / total
        weights = np.where(present, averaged, np.nan)
    else:
        weights = np.full(shape, np.nan)
    present = ~np.isnan(lv) | ~np.isnan(rv)
    lv1 = np.where(np.isnan(lv), 1.0, lv)
    rv1 = np.where(np.isnan(rv), 1.0, rv)
    variances = np.where(present, np.where(rv1 < lv1, rv1, lv1), np.nan)
    label_counts = dict(left.label_counts)
    for label, n in right.label_counts.items():
        label_counts[label] = label_counts.get(label, 0) + n
    frequencies = np.zeros(len(names), dtype=np.int64)
    for diff in (left, right):
        if diff.names:
            at = np.array(list(map(position.__getitem__, diff.names)), dtype=np.intp)
            frequencies[at] += diff.frequencies
    mixed = _Diff(
        left.version,
        total,
        labels,
        names,
        weights,
        variances,
        label_counts,
        left.documents + right.documents,
        frequencies,
    )
    mixed.groups = dict(left.groups)
    add_groups(mixed.groups, right.groups)
    return mixed.plain()


def _apply_mixed(work: Replica, diff: _Diff, sent: _Sent | None) -> set[int] | None:
    """put_diff's changes to ``work`` (see the module docstring); the rows touched (None:
    maybe all). Done :data:`CHUNK` rows at a time: no single step holds the interpreter
    long (readers on other threads go on between the steps)."""
    # Every label this diff names gets its slot first (a new slot lays the rows out again).
    slots = [work.slot(label) for label in diff.labels]
    for label in diff.label_counts:
        work.slot(label)
    fids = _intern_all(work, diff.names)
    arrays = work.arrays
    columns = np.array(slots, dtype=np.intp)
    for start in range(0, len(fids) if slots else 0, CHUNK):
        _pause()
        rows = np.array(fids[start : start + CHUNK], dtype=np.intp)
        views = arrays.views()
        at = np.ix_(rows, columns)
        for table, values in (("WM", diff.weights), ("VM", diff.variances)):
            part = values[start : start + CHUNK]
            current = views[table][at]
            present = ~np.isnan(part)
            views[table][at] = np.where(
                present,
                np.where(np.isnan(current), 0.0, current) + np.where(present, part, 0.0),
                current,
            )
        arrays.refresh(rows)
    for start in range(0, len(fids), CHUNK):
        counted = np.frombuffer(work.DFM, dtype=np.int64)
        counted[np.array(fids[start : start + CHUNK], dtype=np.intp)] += diff.frequencies[
            start : start + CHUNK
        ]
        del counted
    touched: set[int] | None = set(fids) if len(fids) * 4 < work.rows else None
    documents_sent = 0
    sent_labels: dict[str, int] = {}
    if sent is not None:
        took = sent.diff
        documents_sent = took.documents
        same = [
            (j, work.slots[label])
            for j, label in enumerate(took.labels)
            if label in work.slots and sent.epochs.get(label, 0) == work.epochs.get(label, 0)
        ]
        sent_labels = {
            label: n
            for label, n in took.label_counts.items()
            if sent.epochs.get(label, 0) == work.epochs.get(label, 0)
        }
        taken_columns = np.array([j for j, _ in same], dtype=np.intp)
        live_columns = np.array([slot for _, slot in same], dtype=np.intp)
        for start in range(0, len(took.names), CHUNK):
            _pause()
            found = np.array(work.fids(took.names[start : start + CHUNK]), dtype=np.intp)
            known = found > 0  # (names this model forgot since, on a clear, are not found)
            rows = found[known]
            if touched is not None:
                touched.update(rows.tolist())
            if same:
                views = arrays.views()
                at = np.ix_(rows, live_columns)
                for table, values in (("WD", took.weights), ("VD", took.variances)):
                    taken = values[start : start + CHUNK][known][:, taken_columns]
                    current = views[table][at]
                    both = ~np.isnan(taken) & ~np.isnan(current)
                    rest = np.where(both, current - np.where(both, taken, 0.0), current)
                    views[table][at] = np.where(both & (rest == 0.0), np.nan, rest)
                arrays.refresh(rows)
            # document frequencies: the local counts less what was sent
            counted = np.frombuffer(work.DFD, dtype=np.int64)
            rest_counts = counted[rows] - took.frequencies[start : start + CHUNK][known]
            counted[rows] = np.maximum(rest_counts, 0)
            del counted
        if touched is not None and len(touched) * 4 >= work.rows:
            touched = None
    work.documents_master += diff.documents
    add_groups(work.groups_master, diff.groups)
    if sent is not None:
        work.documents_diff = max(work.documents_diff - documents_sent, 0)
        take_groups(work.groups_diff, sent.diff.groups)
        work.trained = max(work.trained - sent.count, 0)
    _apply_label_counts(work, diff.label_counts, sent_labels)
    for j, label in enumerate(diff.labels):
        if (~np.isnan(diff.weights[:, j])).any() or (~np.isnan(diff.variances[:, j])).any():
            work.counts.setdefault(label, 0)
    work.sort_labels()
    work.recount()
    return touched


def _intern_all(work: Replica, names: list[str]) -> list[int]:
    """Row ids of ``names`` in ``work``, new names given new ones (a chunk at a time)."""
    ids = work.index.ids
    fids: list[int] = []
    for start in range(0, len(names), CHUNK):
        part = names[start : start + CHUNK]
        found = list(map(ids.get, part))
        if None in found:
            found = [work.intern(name) for name in part]
        fids.extend(found)  # type: ignore[arg-type]
    return fids


def _pause() -> None:
    """Between the steps of a bulk change: let a reader waiting for the interpreter run
    (a sleep releases it; a thread that only switches holds it again at once)."""
    time.sleep(PAUSE_SECONDS)


def _apply_label_counts(work: Replica, mixed: Mapping[str, int], sent: Mapping[str, int]) -> None:
    """counts += mixed - sent; diff -= sent (exact: these are integers)."""
    counts, diff = work.counts, work.diff_counts
    for label, n in mixed.items():
        counts[label] = max(counts.get(label, 0) + n - sent.get(label, 0), 0)
    for label, n in sent.items():
        if label not in mixed and label in counts:
            counts[label] = max(counts[label] - n, 0)
        if label in diff:
            rest = diff[label] - n
            if rest > 0:
                diff[label] = rest
            else:
                del diff[label]
    for label in counts:
        work.slot(label)


def describe_diff(value: object) -> dict[str, object]:
    """A diff (from ``get_diff`` or ``mix``) as plain tables, to read or compare:
    ``version``, ``count``, ``weights`` and ``variances`` (``label -> feature -> value``,
    only the values there are), ``labels`` (counts), ``documents``, ``frequencies``."""
    diff = _Diff.read(value, "diff")

    def table(values: FloatArray) -> Table:
        out: Table = {}
        for j, label in enumerate(diff.labels):
            column = values[:, j]
            present = np.flatnonzero(~np.isnan(column)).tolist()
            if present:
                out[label] = {diff.names[i]: float(column[i]) for i in present}
        return out

    return {
        "version": diff.version,
        "count": diff.count,
        "weights": table(diff.weights),
        "variances": table(diff.variances),
        "labels": dict(diff.label_counts),
        "documents": diff.documents,
        "frequencies": {
            name: int(n) for name, n in zip(diff.names, diff.frequencies.tolist(), strict=True) if n
        },
    }


def _model_of(replica: Replica) -> dict[str, object]:
    master = _parts_of(replica, ("WM", "VM"), replica.DFM, replica.documents_master, _Diff, False)
    model: dict[str, object] = {
        "version": master.version,
        "labels": master.labels,
        "features": _pack_names(master.names),
        "weights": master.weights.astype("<f8").tobytes(),
        "variances": master.variances.astype("<f8").tobytes(),
        "label_counts": master.label_counts,
        "documents": master.documents,
        "frequencies": master.frequencies.astype("<i8").tobytes(),
    }
    if replica.groups_master:
        model["groups"] = plain_groups(replica.groups_master)
    return model


def read_model(model: object) -> Replica:
    """A replica holding a peer's :meth:`ClassifierModel.get_model` (no local diff)."""
    fields, groups = _without_groups(model, "model")
    fields = read_fields(fields, "model", _MODEL_FIELDS)
    version = read_int(fields["version"], "model.version")
    labels, names, weights, variances, frequencies = _read_arrays(fields, "model")
    counts = _read_label_counts(fields["label_counts"], "model.label_counts")
    documents = read_int(fields["documents"], "model.documents")
    replica = Replica()
    _fill(replica, labels, names, weights, variances, master=True)
    if names:
        fids = np.array(replica.fids(names), dtype=np.intp)
        np.frombuffer(replica.DFM, dtype=np.int64)[fids] = frequencies
    replica.counts = counts
    replica.diff_counts = {}
    for label in counts:
        replica.slot(label)
    replica.sort_labels()
    replica.documents_master = documents
    replica.groups_master = groups
    replica.version = version
    replica.recount()
    return replica


def _fill(
    replica: Replica,
    labels: Sequence[str],
    names: Sequence[str],
    weights: FloatArray,
    variances: FloatArray,
    *,
    master: bool,
) -> None:
    """Write a (names x labels) block into the master (or diff) part of ``replica``."""
    slots = [replica.slot(label) for label in labels]
    fids = [replica.intern(name) for name in names]
    if not fids or not slots:
        return
    views = replica.arrays.views()
    at = np.ix_(np.array(fids, dtype=np.intp), np.array(slots, dtype=np.intp))
    views["WM" if master else "WD"][at] = weights
    views["VM" if master else "VD"][at] = variances
    replica.arrays.refresh(np.array(fids, dtype=np.intp))


# -- model files (today's layout: a separate conversion over the arrays) --------------------


def pack_replica(replica: Replica) -> dict[str, object]:
    """The model in the layout of the files ``save`` writes (user data version 2): master and
    unmixed parts of weights and variances as ``label -> feature -> value`` maps, label
    counts, document counts (and bm25's counts per group, when there are any)."""
    packed: dict[str, object] = {
        "version": replica.version,
        "count": replica.trained,
        "weights": {"master": _table(replica, "WM"), "diff": _table(replica, "WD")},
        "variances": {"master": _table(replica, "VM"), "diff": _table(replica, "VD")},
        "labels": {"counts": dict(replica.counts), "diff": dict(replica.diff_counts)},
        "documents": {
            "master": {
                "documents": replica.documents_master,
                "frequencies": _frequencies(replica, replica.DFM),
            },
            "diff": {
                "documents": replica.documents_diff,
                "frequencies": _frequencies(replica, replica.DFD),
            },
        },
    }
    if replica.groups_master or replica.groups_diff:
        packed["groups"] = {
            "master": plain_groups(replica.groups_master),
            "diff": plain_groups(replica.groups_diff),
        }
    return packed


def _table(replica: Replica, name: str) -> Table:
    values = replica.arrays.views()[name]
    rows = replica.rows
    names = replica.index.names
    table: Table = {}
    for slot, label in enumerate(replica.labels):
        if label is None:
            continue
        column = values[:rows, slot]
        present = np.flatnonzero(~np.isnan(column))
        present = present[present > 0]
        if present.size:
            table[label] = dict(
                zip([names[i] for i in present.tolist()], column[present].tolist(), strict=True)
            )
    return table


def _frequencies(replica: Replica, counts: array[int]) -> dict[str, int]:
    values = np.frombuffer(counts, dtype=np.int64)[: replica.rows]
    present = np.flatnonzero(values > 0)
    names = replica.index.names
    return dict(zip([names[i] for i in present.tolist()], values[present].tolist(), strict=True))


def unpack_replica(payload: object) -> Replica:
    """A replica from :func:`pack_replica`'s layout; raises :class:`DiffError`."""
    fields = dict(read_map(payload, "model"))
    groups = read_fields(
        fields.pop("groups", {"master": {}, "diff": {}}), "model.groups", ("master", "diff")
    )
    fields = read_fields(fields, "model", _PACK_FIELDS)
    version = read_int(fields["version"], "model.version")
    trained = read_int(fields["count"], "model.count")
    weights = read_fields(fields["weights"], "model.weights", ("master", "diff"))
    variances = read_fields(fields["variances"], "model.variances", ("master", "diff"))
    tables = {
        "WM": read_table(weights["master"], "model.weights.master"),
        "WD": read_table(weights["diff"], "model.weights.diff"),
        "VM": read_table(variances["master"], "model.variances.master"),
        "VD": read_table(variances["diff"], "model.variances.diff"),
    }
    label_fields = read_fields(fields["labels"], "model.labels", ("counts", "diff"))
    counts = _read_label_counts(label_fields["counts"], "model.labels.counts")
    diff_counts = _read_label_counts(label_fields["diff"], "model.labels.diff")
    documents = read_fields(fields["documents"], "model.documents", ("master", "diff"))
    master_docs, master_freq = read_counts(documents["master"], "model.documents.master")
    diff_docs, diff_freq = read_counts(documents["diff"], "model.documents.diff")
    replica = Replica()
    for table in tables.values():
        for label, row in table.items():
            replica.slot(label)
            for name in row:
                replica.intern(name)
    for label in counts:
        replica.slot(label)
    views = replica.arrays.views()
    ids = replica.index.ids
    for name, table in tables.items():
        for label, row in table.items():
            if row:
                rows_at = np.fromiter((ids[f] for f in row), dtype=np.intp, count=len(row))
                views[name][rows_at, replica.slots[label]] = np.fromiter(
                    row.values(), dtype=np.float64, count=len(row)
                )
    replica.arrays.refresh(slice(1, replica.rows))
    del views
    for frequencies, target in ((master_freq, replica.DFM), (diff_freq, replica.DFD)):
        for feature, n in frequencies.items():
            target[replica.intern(feature)] = n
    replica.counts = counts
    replica.diff_counts = diff_counts
    replica.sort_labels()
    replica.documents_master = master_docs
    replica.documents_diff = diff_docs
    replica.groups_master = read_groups(groups["master"], "model.groups.master")
    replica.groups_diff = read_groups(groups["diff"], "model.groups.diff")
    replica.version = version
    replica.trained = trained
    replica.recount()
    return replica
