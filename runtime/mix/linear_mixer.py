"""The linear mixer: one master per round collects every server's diff, folds them and
puts the result back to all, as Jubatus's ``linear_mixer`` does.

One :class:`LinearMixer` runs in each server of a cluster (``--zookeeper``). Its loop wakes
every 0.5 s, or at once when ``--interval_count`` updates have been counted, and mixes when
a round is due: at least one update since the last round, and ``interval_count`` updates or
``interval_sec`` seconds reached (a 0 turns that trigger off). The server that takes the
ZooKeeper master lock (``…/<name>/master_lock``) runs the round:

1. ``get_diff`` on every member of ``…/nodes`` (itself included) in parallel, each within
   ``--interconnect_timeout``; a member that fails is left out of the round (logged);
2. the diffs are folded with the model's ``mix``;
3. ``put_diff`` of the result on every member; a failure is logged and kept in
   ``mix.last_error`` (``get_status``); when every member fails, the round fails (``do_mix``
   answers False).

A server whose ``put_diff`` was refused (its model is based on another version) is
*obsolete*; so is a server that has just started. An obsolete server takes the master lock,
copies the whole model of an up-to-date peer (``get_model``), then runs a round, whose
``put_diff`` brings it up to date. Only up-to-date servers are in ``…/actives``, which is
where proxies send ``random`` and ``broadcast`` calls; a server alone in its cluster is up
to date at once. Start-up order is therefore listen → register → catch up → active.

Server-to-server RPCs (no cluster name, as in Jubatus): ``get_diff(0) → raw``,
``put_diff(raw) → bool``, ``get_model(0) → [user_data_version, raw]``; the raw values
hold msgpack. Users call ``do_mix(name)`` on a server to run a round now (it waits for the
master lock); ``get_status`` shows the mixer's keys (see :meth:`LinearMixer.status`).

Locks: ``get_diff``/``get_model`` run under the model's read lock, ``put_diff``/``set_model``
under the write lock, on a worker thread, so a round never blocks ``analysis`` calls for
longer than the put takes. The mixer never holds the ZooKeeper lock across rounds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import msgpack

from runtime.cluster.membership import Node
from runtime.errors import JubakoError, MembershipError, RPCError
from runtime.mix.mixable import DiffError, Mixable, fold_diffs
from runtime.rpc.dispatch import Handler
from runtime.rpc.locks import LockMode, RWLock
from runtime.rpc.pool import ClientPool
from runtime.wire import types as _t
from runtime.wire.signature import DO_MIX

__all__ = ["LinearMixer", "MixError", "MixSettings", "standalone_handlers"]

log = logging.getLogger(__name__)

#: How often the loop looks at the triggers (Jubatus: 0.5 s).
TICK_SECONDS = 0.5
#: How often ``do_mix`` retries the master lock while another server holds it.
LOCK_RETRY_SECONDS = 0.05
#: After a failed round the loop waits this long, doubling per failure up to the maximum.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 8.0


class MixError(JubakoError):
    """A mix could not run (no mixer here, a protocol mismatch, a malformed diff)."""


class MasterLock(Protocol):
    """The ZooKeeper master lock (``runtime.cluster.zookeeper.lock.ZkLock``): blocking calls."""

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


class MemberList(Protocol):
    """What the mixer reads from membership, and how it changes ``actives``."""

    def members(self) -> list[Node]: ...

    def actives(self) -> list[Node]: ...

    async def set_active(self, active: bool) -> None: ...


@dataclass(frozen=True)
class MixSettings:
    """The mixer's flags (``--interval_sec``, ``--interval_count``, ...)."""

    interval_sec: float = 16.0
    interval_count: int = 512
    interconnect_timeout: float = 10.0
    #: How long ``do_mix`` waits for the master lock before it gives up (returns false).
    do_mix_lock_timeout: float = 60.0


def _pack(value: object) -> bytes:
    blob: bytes = msgpack.packb(value, use_bin_type=True)
    return blob


def _unpack(blob: bytes, what: str) -> object:
    try:
        return msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
        raise DiffError(f"{what} is not valid msgpack: {error}") from None


def _node_name(node: Node) -> str:
    return f"{node[0]}:{node[1]}"


_INT = _t.Int(signed=True, size=8)
_RAW = _t.Raw()
_GET_DIFF = (_INT,)
_PUT_DIFF = (_RAW,)
_MODEL_REPLY = _t.Tuple(_t.Int(signed=False, size=8), _RAW)


class LinearMixer:
    """The mixer of one server (see the module docstring)."""

    name = "mixer"

    def __init__(
        self,
        mixable: Mixable,
        *,
        model_lock: RWLock,
        members: MemberList,
        master_lock: Callable[[], MasterLock],
        self_node: Callable[[], Node],
        protocol_version: int,
        settings: MixSettings,
        rng: random.Random | None = None,
    ) -> None:
        self.mixable = mixable
        self.model_lock = model_lock
        self.members = members
        self.master_lock = master_lock
        self.self_node = self_node
        self.protocol_version = protocol_version
        self.settings = settings
        self.rng = rng or random.Random()
        self.pool = ClientPool(timeout=settings.interconnect_timeout)
        self._counter_lock = threading.Lock()
        self.counter = 0
        self.ticktime = time.time()
        self.is_obsolete = True
        self.is_active = False
        self.in_round = False
        self.suspended = False
        self.rounds = 0
        self.applied = 0
        self.refused = 0
        self.catch_ups = 0
        self.last_mix_time = 0.0
        self.last_mix_seconds = 0.0
        self.last_mix_servers = 0
        self.last_mix_bytes = 0
        #: How long the last put_diff held the write lock (what readers waited at most).
        self.last_apply_seconds = 0.0
        self.last_error = ""
        self._retry_delay = 0.0
        self._retry_at = 0.0
        self._round_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle (a runtime.process.lifecycle subsystem) ------------------------------

    async def start(self) -> None:
        """Start the loop; its first tick catches up with the cluster."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="linear-mixer")

    async def stop(self) -> None:
        """Stop the loop (a round in progress is abandoned) and close connections."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.pool.close()

    async def suspend(self) -> None:
        """Stop starting rounds (``put_diff`` from other masters is still applied)."""
        self.suspended = True
        log.info("mixer suspended")

    async def resume(self) -> None:
        self.suspended = False
        self._wake.set()
        log.info("mixer resumed")

    # -- triggers ---------------------------------------------------------------------------

    def updated(self) -> None:
        """Count one update; wakes the loop when ``interval_count`` is reached. Any thread."""
        with self._counter_lock:
            self.counter += 1
            reached = self.counter == self.settings.interval_count
        if reached and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _reset_triggers(self) -> None:
        with self._counter_lock:
            self.counter = 0
        self.ticktime = time.time()

    def is_due(self, now: float | None = None) -> bool:
        """Jubatus's rule: some update, and the count or the time trigger reached."""
        if self.counter <= 0:
            return False
        s = self.settings
        if s.interval_count > 0 and self.counter >= s.interval_count:
            return True
        elapsed = (time.time() if now is None else now) - self.ticktime
        return s.interval_sec > 0 and elapsed > s.interval_sec

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            except TimeoutError:
                pass
            self._wake.clear()
            if self.suspended or not (self.is_obsolete or self.is_due()):
                continue
            if time.monotonic() < self._retry_at:
                continue
            try:
                await self._round_if_master(wait_seconds=0.0)
                self._retry_delay = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # one bad round must not stop the mixer
                self.last_error = f"{type(error).__name__}: {error}"
                self._retry_delay = min(
                    max(self._retry_delay * 2, RETRY_FIRST_SECONDS), RETRY_MAX_SECONDS
                )
                self._retry_at = time.monotonic() + self._retry_delay
                log.error(
                    "mix round failed (next try in %gs): %s", self._retry_delay, self.last_error
                )

    # -- rounds -----------------------------------------------------------------------------

    async def do_mix(self) -> bool:
        """Run one round now, waiting for the master lock; False if it could not run."""
        self._reset_triggers()
        try:
            return await self._round_if_master(wait_seconds=self.settings.do_mix_lock_timeout)
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            log.error("do_mix failed: %s", self.last_error)
            return False

    async def _round_if_master(self, *, wait_seconds: float) -> bool:
        """Take the master lock (trying for ``wait_seconds``) and run a round."""
        async with self._round_lock:
            lock = self.master_lock()
            deadline = time.monotonic() + wait_seconds
            while not await asyncio.to_thread(lock.try_acquire):
                if time.monotonic() >= deadline:
                    if wait_seconds > 0:
                        log.warning("do_mix: master lock not taken within %gs", wait_seconds)
                    return False
                await asyncio.sleep(LOCK_RETRY_SECONDS)
            try:
                if self.is_obsolete:
                    await self._catch_up()
                await self._mix()
                return True
            finally:
                await asyncio.to_thread(_release_quietly, lock)

    async def _catch_up(self) -> None:
        """Copy an up-to-date peer's model (a server alone is up to date at once)."""
        me = self.self_node()
        active_peers = [n for n in self.members.actives() if n != me]
        peers = active_peers or [n for n in self.members.members() if n != me]
        if not peers:
            log.info("no other server in the cluster: this model is up to date")
            await self._set_up_to_date(True)
            return
        self.rng.shuffle(peers)
        for peer in peers:
            try:
                reply = await self.pool.call(*peer, "get_model", [0])
                version, blob = _MODEL_REPLY.decode(reply)
            except (RPCError, OSError) as error:
                log.warning("get_model from %s failed: %s", _node_name(peer), error)
                continue
            if version != self.protocol_version:
                raise MixError(
                    f"MIX protocol version mismatch: {_node_name(peer)} runs model version "
                    f"{version}, this server {self.protocol_version}"
                )
            model = await asyncio.to_thread(_unpack, blob, "model")
            await asyncio.to_thread(self._set_model, model)
            self.catch_ups += 1
            log.info("copied the model of %s (%d bytes)", _node_name(peer), len(blob))
            return
        raise MixError("could not copy a model from any other server")

    def _set_model(self, model: object) -> None:
        with self.model_lock.write():
            self.mixable.set_model(model)

    async def _mix(self) -> None:
        started = time.monotonic()
        self.in_round = True
        try:
            members = sorted(self.members.members())
            if not members:
                await self._set_up_to_date(True)
                return
            replies = await asyncio.gather(
                *(self.pool.call(*node, "get_diff", [0]) for node in members),
                return_exceptions=True,
            )
            # Unpacking, folding and packing megabytes stay off the loop: it keeps serving.
            diffs = await asyncio.to_thread(_decode_diffs, members, replies)
            if not diffs:
                raise MixError("mix fails (all get_diffs fail)")
            mixed = await asyncio.to_thread(fold_diffs, self.mixable, diffs)
            blob = await asyncio.to_thread(_pack, mixed)
            puts = await asyncio.gather(
                *(self.pool.call(*node, "put_diff", [blob]) for node in members),
                return_exceptions=True,
            )
            put_ok = 0
            failed: list[str] = []
            for node, put in zip(members, puts, strict=True):
                if isinstance(put, BaseException):
                    log.warning("put_diff to %s failed: %s", _node_name(node), put)
                    failed.append(f"{_node_name(node)}: {type(put).__name__}: {put}")
                else:
                    put_ok += 1
            if not put_ok:
                raise MixError(f"mix fails (all put_diffs fail; {failed[0]})")
            seconds = time.monotonic() - started
            self.rounds += 1
            self.last_mix_time = time.time()
            self.last_mix_seconds = seconds
            self.last_mix_servers = len(diffs)
            self.last_mix_bytes = len(blob)
            # A round some servers refused is done, but not silently: get_status says so.
            self.last_error = (
                f"put_diff failed on {len(failed)} of {len(members)}: {failed[0]}" if failed else ""
            )
            log.info(
                "mixed with %d servers in %.6f secs, %d bytes (serialized data) has been put "
                "to %d of %d",
                len(diffs),
                seconds,
                len(blob),
                put_ok,
                len(members),
            )
        finally:
            self.in_round = False

    async def _set_up_to_date(self, up_to_date: bool) -> None:
        self.is_obsolete = not up_to_date
        if up_to_date != self.is_active:
            await self.members.set_active(up_to_date)
            self.is_active = up_to_date

    # -- server-to-server RPCs --------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """Dispatch rows of ``get_diff``, ``put_diff``, ``get_model`` and ``do_mix``."""
        return {
            "get_diff": Handler(self._rpc_get_diff, LockMode.NOLOCK, _GET_DIFF, _RAW, False),
            "put_diff": Handler(self._rpc_put_diff, LockMode.NOLOCK, _PUT_DIFF, _t.Bool(), False),
            "get_model": Handler(
                self._rpc_get_model, LockMode.NOLOCK, _GET_DIFF, _MODEL_REPLY, False
            ),
            "do_mix": Handler(self.do_mix, LockMode.NOLOCK, DO_MIX.args, DO_MIX.result),
        }

    async def _rpc_get_diff(self, _unused: int) -> bytes:
        return await asyncio.to_thread(self._local_get_diff)

    def _local_get_diff(self) -> bytes:
        with self.model_lock.read():
            return _pack(self.mixable.get_diff())

    async def _rpc_put_diff(self, blob: bytes) -> bool:
        applied = await asyncio.to_thread(self._local_put_diff, blob)
        self._reset_triggers()
        if applied:
            self.applied += 1
            await self._set_up_to_date(True)
        else:
            self.refused += 1
            log.warning("mixed diff refused (model version %d): catching up", self.mixable.version)
            await self._set_up_to_date(False)
            self._wake.set()
        return applied

    def _local_put_diff(self, blob: bytes) -> bool:
        mixed = _unpack(blob, "mixed diff")  # before the lock: only the apply blocks readers
        with self.model_lock.write():
            started = time.perf_counter()
            try:
                return self.mixable.put_diff(mixed)
            finally:
                self.last_apply_seconds = time.perf_counter() - started

    async def _rpc_get_model(self, _unused: int) -> tuple[int, bytes]:
        blob = await asyncio.to_thread(self._local_get_model)
        return (self.protocol_version, blob)

    def _local_get_model(self) -> bytes:
        with self.model_lock.read():
            return _pack(self.mixable.get_model())

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, str]:
        """Jubatus's ``linear_mixer.*`` keys plus round figures and the model version."""
        return {
            "linear_mixer.count": str(self.counter),
            "linear_mixer.ticktime": str(int(self.ticktime)),
            "linear_mixer.is_obsolete": str(int(self.is_obsolete)),
            # Jubatus's: whether the mixer runs at all (1 while the server serves)
            "linear_mixer.is_running": str(int(self._task is not None)),
            "mix.running": str(int(self.in_round)),
            "mix.suspended": str(int(self.suspended)),
            "mix.rounds": str(self.rounds),
            "mix.applied": str(self.applied),
            "mix.refused": str(self.refused),
            "mix.catch_ups": str(self.catch_ups),
            "mix.last_time": str(int(self.last_mix_time)) if self.last_mix_time else "",
            "mix.last_seconds": f"{self.last_mix_seconds:.6f}",
            "mix.last_servers": str(self.last_mix_servers),
            "mix.last_bytes": str(self.last_mix_bytes),
            "mix.last_error": self.last_error,
            "mix.last_apply_seconds": f"{self.last_apply_seconds:.6f}",
            "mix.model_version": str(self.mixable.version),
        }


def _decode_diffs(members: list[Node], replies: list[object]) -> list[object]:
    """The diffs that came back whole; a failed or malformed one is left out (logged)."""
    diffs: list[object] = []
    for node, reply in zip(members, replies, strict=True):
        if isinstance(reply, BaseException):
            log.warning(
                "get_diff from %s failed: left out of this round: %s", _node_name(node), reply
            )
            continue
        try:
            diffs.append(_unpack(_RAW.decode(reply), f"diff of {_node_name(node)}"))
        except (DiffError, RPCError) as error:
            log.warning("bad diff from %s: left out of this round: %s", _node_name(node), error)
    return diffs


def _release_quietly(lock: MasterLock) -> None:
    try:
        lock.release()
    except MembershipError as error:
        log.warning("%s", error)


def standalone_handlers(reason: str) -> dict[str, Handler]:
    """``do_mix`` for a server without a mixer: a clear error saying why."""

    def do_mix() -> bool:
        raise MixError(reason)

    return {
        "do_mix": Handler(do_mix, LockMode.NOLOCK, DO_MIX.args, DO_MIX.result),
    }
