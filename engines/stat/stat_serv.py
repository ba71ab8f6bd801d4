"""The stat service: :class:`~engines.stat.model.StatModel` behind the generated server.

Run it as ``jubastat --rpc-port 9199 --configpath stat.json`` (config ``{"window_size":
128}``), or in a cluster (``--zookeeper``, ``--name``) behind ``jubastat_proxy``, where the
servers mix their per-key totals for ``entropy`` as Jubatus's stat does.

The model is held the snapshot way (:class:`~runtime.server.snapshot.SnapshotModel`):
``push``, ``clear``, ``load`` and the mix's ``put_diff`` are applied by one writer
thread, in arrival order; ``sum``, ``stddev``, ``max``, ``min``, ``entropy``, ``moment``,
``save`` and the mix's ``get_diff`` read the published snapshot with no lock. ``push``
answers once its value is in the window and published, or, with ``"jubako": {"push":
"queued"}`` in the config, as soon as it is in the writer's buffer
(:mod:`engines.common.buffer_options` lists the block's keys).
"""

from __future__ import annotations

from engines.common.buffer_options import buffer_options
from engines.stat.jubatus_file import from_jubatus, to_jubatus
from engines.stat.model import StatModel, StatSnapshot
from runtime import Mixable, ServerBase, SnapshotModel, text_weight
from runtime.errors import ModelFileError
from runtime.mix.mixable import DiffError


class StatServ(ServerBase):
    """Sliding-window statistics per key."""

    #: 1: Jubatus's layout (:mod:`engines.stat.jubatus_file`); files of Jubako's older
    #: layout (2: a map of the window, the mixed totals and the version) still load.
    user_data_version = 1
    older_user_data_versions = (2,)

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        config, options = buffer_options(self.config, "push")
        self.model = StatModel(config)
        self.holder: SnapshotModel[StatModel, StatSnapshot] = SnapshotModel(
            self.model,
            StatModel.snapshot,
            buffer_size=options["buffer_size"],
            wait_timeout=options["wait_timeout"],
            publish_interval=options["publish_interval"],
            queued={"push": _pushed} if options["queued"] else None,
            weigh={"push": lambda key, value: text_weight(1, key)} if options["queued"] else None,
            inline_weight=options["inline_weight"],
        )

    def snapshot_model(self) -> SnapshotModel[StatModel, StatSnapshot]:
        return self.holder

    def push(self, key: str, value: float) -> bool:
        return self.holder.write(lambda model: model.push(key, value), name="push")

    def sum(self, key: str) -> float:
        return self.holder.snapshot.sum(key)

    def stddev(self, key: str) -> float:
        return self.holder.snapshot.stddev(key)

    def max(self, key: str) -> float:
        return self.holder.snapshot.max(key)

    def min(self, key: str) -> float:
        return self.holder.snapshot.min(key)

    def entropy(self, key: str) -> float:
        return self.holder.snapshot.entropy(key)

    def moment(self, key: str, degree: int, center: float) -> float:
        return self.holder.snapshot.moment(key, degree, center)

    def clear(self) -> bool:
        return self.holder.write(lambda model: model.clear(), name="clear")

    def get_status(self) -> dict[str, str]:
        # Jubatus's stat server shows only its model's type as "storage".
        return {"storage": "stat", "window_size": str(self.model.window_size)}

    def status_key(self) -> int:
        """What :meth:`get_status` shows: the window's size only."""
        return self.model.window_size

    def pack(self) -> object:
        return to_jubatus(self.holder.snapshot.pack())

    def unpack(self, payload: object) -> None:
        if isinstance(payload, list):  # Jubatus's layout (a map: the older one)
            try:
                payload = from_jubatus(payload)
            except DiffError as error:
                raise ModelFileError(f"stat model does not fit: {error}") from None
        self.model.unpack(payload)  # on the writer: load goes through it

    def mixable(self) -> Mixable:
        return self.holder.mixable()


def _pushed(key: str, value: float) -> bool:
    """What a queued ``push`` answers (a NaN is refused now: the writer would refuse it)."""
    if value != value:
        raise ValueError("push: the value must be a number, not NaN")
    return True
