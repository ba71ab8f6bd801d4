"""The classifier service: :class:`~engines.classifier.model.ClassifierModel` behind the
generated server.

Run it as ``jubaclassifier --rpc-port 9199 --configpath classifier.json`` with a Jubatus
classifier config (``method``, ``parameter``, ``converter``), or in a cluster with
``--zookeeper HOST:PORT --name NAME`` behind ``jubaclassifier_proxy``, where the servers mix
their models.

The linear methods hold their model the snapshot way
(:class:`~runtime.server.snapshot.SnapshotModel`): ``train``, ``set_label``, ``clear``,
``delete_label``, ``load`` and the mix's ``put_diff`` are applied by one writer thread, in
arrival order, and ``classify``, ``get_labels``, ``get_status``, ``save`` and the mix's
``get_diff`` read the published snapshot with no lock: a ``classify`` never waits for a
``train`` or a mix. ``train`` answers once its examples are learned and published (a
``classify`` sent after the answer sees them), or, with ``"jubako": {"train": "queued"}``
in the config, as soon as they are in the writer's buffer (the number queued).

The IDL declares every method ``#@nolock``, as Jubatus does, so clients and proxies see
what they see with Jubatus; ``model_lock_for`` says which methods update the model and
which read it. ``train`` and ``classify`` are served on the wire values
(``wire_methods``): a datum becomes feature ids without a ``Datum`` per datum, and scores
go out as ``[label, score]`` pairs without an object per pair. With the compiled kernels,
plain ``classify`` calls, and ``train`` calls of one example learnt at once, are answered
straight from the requests' bytes (``frame_answerer``: no objects for the request or the
reply).

The ``NN``, ``cosine`` and ``euclidean`` methods keep the framework's read/write lock
(:class:`~engines.common.neighbor_classifier.NeighborClassifierModel`).

The optional ``"jubako"`` block of the config (Jubako's own; Jubatus has none):
``train`` (``"applied"``, the default, or ``"queued"``), ``buffer_size`` (examples the
buffer holds, 4096), ``wait_timeout`` (seconds a ``train`` waits for room before it fails,
10) and ``publish_interval`` (seconds between snapshots while training goes on; 0, the
default, publishes after every batch).
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping
from typing import ClassVar

from engines.classifier import classifier_types as types
from engines.classifier.jubatus_file import (
    linear_from_jubatus,
    linear_to_jubatus,
    neighbor_from_jubatus,
    neighbor_to_jubatus,
)
from engines.classifier.model import ClassifierModel, ClassifierSnapshot
from engines.common import kernels
from engines.common.buffer_options import buffer_options
from engines.common.jubatus_file import from_file
from engines.common.neighbor_classifier import NEIGHBOR_METHODS, NeighborClassifierModel
from engines.common.wire import decode_argument
from runtime import (
    ConfigError,
    Datum,
    FrameAnswerer,
    LockMode,
    Mixable,
    ServerBase,
    SnapshotModel,
    text_weight,
)
from runtime.rpc.frames import FrameAnswer
from runtime.server.snapshot import TEXT_UNIT


class ClassifierServ(ServerBase):
    """A Jubatus-compatible classifier."""

    #: 1: Jubatus's layout (:mod:`engines.classifier.jubatus_file`); files of Jubako's
    #: older layout (2: master and unmixed parts as tables) still load.
    user_data_version = 1
    older_user_data_versions = (2,)
    model_lock_for: ClassVar[Mapping[str, LockMode]] = {
        "train": LockMode.UPDATE,
        "classify": LockMode.ANALYSIS,
        "get_labels": LockMode.ANALYSIS,
        "set_label": LockMode.UPDATE,
        "clear": LockMode.UPDATE,
        "delete_label": LockMode.UPDATE,
    }
    wire_methods: ClassVar[Mapping[str, str]] = {
        "train": "train_wire",
        "classify": "classify_wire",
    }

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        config, options = buffer_options(self.config, "train")
        self.model: ClassifierModel | NeighborClassifierModel
        #: The linear methods' model, held the snapshot way (None for the neighbour ones).
        self.holder: SnapshotModel[ClassifierModel, ClassifierSnapshot] | None = None
        if isinstance(config, dict) and config.get("method") in NEIGHBOR_METHODS:
            if config is not self.config:
                raise ConfigError("jubako: the NN, cosine and euclidean methods have no buffer")
            self.model = NeighborClassifierModel(config)  # NN, cosine, euclidean
            return
        model = ClassifierModel(config)
        self.model = model
        self.holder = SnapshotModel(
            model,
            ClassifierModel.snapshot,
            buffer_size=options["buffer_size"],
            wait_timeout=options["wait_timeout"],
            publish_interval=options["publish_interval"],
            queued={"train": _queued_examples} if options["queued"] else None,
            weigh={"train": _queued_weight if options["queued"] else _examples},
            inline_weight=options["inline_weight"],
            inline_ready=ClassifierModel.writable_now,
            wire_updates={"train": ClassifierModel.train_wire},
            at_once={"train": ClassifierModel.train_at_once},
        )

    def snapshot_model(self) -> SnapshotModel[ClassifierModel, ClassifierSnapshot] | None:
        return self.holder

    # -- the IDL's methods (typed: for callers in this process) -------------------------------

    def train(self, data: list[types.LabeledDatum]) -> int:
        pairs = [(example.label, example.data) for example in data]
        if self.holder is None:
            return self.model.train(pairs)
        return self.holder.write(lambda model: model.train(pairs), name="train")

    def classify(self, data: list[Datum]) -> list[list[types.EstimateResult]]:
        if self.holder is None:
            results = self.model.classify(data)
        else:
            results = self.holder.snapshot.classify(data)
        return [[types.EstimateResult(label, score) for label, score in row] for row in results]

    def get_labels(self) -> dict[str, int]:
        if self.holder is None:
            return self.model.get_labels()
        return self.holder.snapshot.get_labels()

    def set_label(self, new_label: str) -> bool:
        if self.holder is None:
            return self.model.set_label(new_label)
        return self.holder.write(lambda model: model.set_label(new_label), name="set_label")

    def clear(self) -> bool:
        if self.holder is None:
            return self.model.clear()
        return self.holder.write(lambda model: model.clear(), name="clear")

    def delete_label(self, target_label: str) -> bool:
        if self.holder is None:
            return self.model.delete_label(target_label)
        return self.holder.write(
            lambda model: model.delete_label(target_label), name="delete_label"
        )

    # -- on the wire ------------------------------------------------------------------------

    def train_wire(self, data: object) -> int:
        """``train`` on its wire argument (run on the writer, for the linear methods)."""
        if self.holder is None:
            return self.train(decode_argument(types.CLASSIFIER_TRAIN, data))
        return self.holder.write(lambda model: model.train_wire(data), name="train")

    def classify_wire(self, data: object) -> object:
        """``classify`` on its wire argument, answering ``[[[label, score]...]...]``."""
        if self.holder is None:
            return self.model.classify(decode_argument(types.CLASSIFIER_CLASSIFY, data))
        return self.holder.snapshot.classify_wire(data)

    def answer_frames(
        self, data: bytes, cluster: bytes | None, allowed: int, max_count: int, max_reply: int
    ) -> FrameAnswer | None:
        """The plain ``classify`` and ``train`` calls a read starts with, answered from their
        bytes (:meth:`frame_answerer`; ``allowed``: bit 0 classify, bit 1 train; a train
        may name any cluster, as ``train`` at once takes any): trains are learnt at once
        when the writer can be claimed now, else classify calls alone are answered."""
        holder = self.holder
        assert holder is not None
        snapshot = holder.snapshot
        reads = snapshot if allowed & _CLASSIFY_BIT else None
        if allowed & _TRAIN_BIT and _TRAIN in data:
            answered = holder.apply_many_at_once(
                _train_frames, "train", data, cluster, reads, max_count, max_reply
            )
            if answered is not None:
                result: FrameAnswer = answered
                return result
        if reads is None or cluster is None:
            return None
        return snapshot.classify_frames(data, cluster, max_count, max_reply)

    # -- the framework's hooks ----------------------------------------------------------------

    def frame_answerer(self) -> FrameAnswerer | None:
        """The linear methods answer plain ``classify`` and ``train`` calls from their
        bytes with the compiled kernels (built at start; tests that turn them off later
        get None from each call)."""
        compiled = kernels.compiled
        if self.holder is None or not hasattr(compiled, "classifier_frames"):
            return None  # (no kernels, or a build older than this code)
        return FrameAnswerer(("classify", "train"), self.answer_frames)

    def get_status(self) -> dict[str, str]:
        if self.holder is None:
            return {**self.model.get_status(), **kernels.status()}
        return {**self.holder.snapshot.get_status(self.standalone), **kernels.status()}

    def status_key(self) -> Hashable | None:
        """The published snapshot's (the linear methods'), and whether kernels serve."""
        if self.holder is None:
            return None
        return self.holder.snapshot.status_key(), kernels.compiled is None

    def pack(self) -> object:
        if self.holder is None:
            # A deep copy: the model may change while the framework writes the file.
            assert isinstance(self.model, NeighborClassifierModel)
            return copy.deepcopy(neighbor_to_jubatus(self.model))
        # A copy of the snapshot (nothing waits on it), in Jubatus's layout.
        assert isinstance(self.model, ClassifierModel)
        return linear_to_jubatus(self.holder.snapshot.pack(), self.model.method.uses_variance)

    def unpack(self, payload: object) -> None:
        # On the writer (load goes through it) for the linear methods.
        model = self.model
        if isinstance(model, ClassifierModel):
            uses_variance = model.method.uses_variance
            model.unpack(
                from_file(payload, "classifier", lambda v: linear_from_jubatus(v, uses_variance))
            )
        else:  # (a map: the older layout)
            model.unpack(
                from_file(payload, "classifier", lambda v: neighbor_from_jubatus(v, model))
            )

    def mixable(self) -> Mixable:
        if self.holder is None:
            return self.model  # the mixer calls it under the framework's model lock
        return self.holder.mixable()


_train_frames = ClassifierModel.train_frames
#: Bits of ``answer_frames``'s ``allowed``, and how a read that may hold a train looks.
_CLASSIFY_BIT, _TRAIN_BIT = 1, 2
_TRAIN = b"\xa5train"


def _examples(data: object) -> int:
    """How much of the buffer a ``train`` takes: its examples."""
    return len(data) if type(data) is list else 1


def _queued_weight(data: object) -> int:
    """How much of the buffer a queued ``train`` takes: its examples, or one unit per KiB
    of its text if that is more (it is answered before it is applied): ``text_weight``,
    its walk of the text done by the compiled kernel when built."""
    compiled = kernels.compiled
    if compiled is None:
        return text_weight(_examples(data), data)
    text: int = compiled.wire_text_bytes(data)
    return max(_examples(data), text // TEXT_UNIT, 1)


def _queued_examples(data: object) -> int:
    """What a queued ``train`` answers: how many examples it queued. Its shape is checked
    here (a refusal is the caller's answer); the writer checks the rest and logs what it
    refuses then (``writer.failed`` counts it)."""
    if type(data) is list:
        for pair in data:  # (a loop, not all() over a generator: one call a train)
            if (
                type(pair) is not list
                or len(pair) != 2
                or type(pair[0]) is not bytes
                or type(pair[1]) is not list
            ):
                break
        else:
            return len(data)
    decode_argument(types.CLASSIFIER_TRAIN, data)  # raises the dispatcher's error, if any
    return len(data)  # type: ignore[arg-type]
