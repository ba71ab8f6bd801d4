"""Jubatus's ZooKeeper locks (zkmutex): the mixer's master lock and the config lock.

A lock is a persistent znode; a holder is an ephemeral-sequential child ``wlock_<seq>``
(exclusive) or ``rlock_<seq>`` (shared). To try the lock, create the child, list the
siblings, and compare sequence numbers: a writer holds the lock when no sibling has a
smaller number, a reader when no *writer* has. Otherwise the child is deleted and the try
fails. There is no queue and no watch: a caller who wants to wait tries again (Jubatus
retries every second). The node names are Jubatus's, so a Jubako mixer and a C++ Jubatus
server exclude each other on the same ``master_lock``, and jubaconfig's write lock
excludes Jubako servers holding their config read lock.

A holder's child is ephemeral, so a crashed holder frees the lock when its session ends.
A create whose reply was lost (connection loss) may leave a child nobody knows about; the
next try deletes such children of our own session before creating a new one.

Every method blocks on ZooKeeper (bounded by ``op_timeout``): from asyncio code, call them
through ``asyncio.to_thread``. A lock object is used by one thread at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Final

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError, OperationTimeoutError

from runtime.cluster.zookeeper import paths
from runtime.errors import MembershipError

__all__ = ["ZkLock", "config_read_lock", "config_write_lock", "master_lock"]

log = logging.getLogger(__name__)

WRITE_PREFIX: Final = "wlock_"
READ_PREFIX: Final = "rlock_"

# Lock children this process holds right now, so an orphan sweep never deletes them.
_held_lock = threading.Lock()
_held: set[str] = set()


def _sequence(child: str) -> tuple[str, int] | None:
    """``"wlock_0000000007"`` → ``("wlock_", 7)``; None for anything else."""
    for prefix in (WRITE_PREFIX, READ_PREFIX):
        if child.startswith(prefix):
            digits = child[len(prefix) :]
            if digits.isascii() and digits.isdigit():
                return prefix, int(digits)
    return None


class ZkLock:
    """One Jubatus-style lock on ``path``: exclusive (default) or shared (``shared=True``)."""

    def __init__(
        self, client: KazooClient, path: str, *, shared: bool = False, op_timeout: float = 10.0
    ) -> None:
        self.client = client
        self.path = path
        self.shared = shared
        self.op_timeout = op_timeout
        self._prefix = READ_PREFIX if shared else WRITE_PREFIX
        self._node: str | None = None
        self._maybe_orphan = False
        self._path_ready = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (as far as it knows: a lost session frees it)."""
        return self._node is not None

    def try_acquire(self) -> bool:
        """Try once; True if the lock is now held. Raises MembershipError if ZooKeeper fails."""
        if self._node is not None:
            return True
        try:
            return self._try_once()
        except KazooException as error:
            # The reply to our create may be what was lost: sweep before the next try.
            self._maybe_orphan = True
            raise MembershipError(f"cannot take lock {self.path}: {error!r}") from None

    def acquire(self, timeout: float | None = None, retry_interval: float = 1.0) -> bool:
        """Try every ``retry_interval`` seconds until held or ``timeout`` seconds passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.try_acquire():
                return True
            if deadline is not None and time.monotonic() + retry_interval > deadline:
                return False
            time.sleep(retry_interval)

    def release(self) -> None:
        """Give the lock up (fine if not held, or if its node is already gone)."""
        node, self._node = self._node, None
        if node is None:
            return
        with _held_lock:
            _held.discard(node)
        try:
            self._wait(self.client.delete_async(node))
        except NoNodeError:
            pass
        except KazooException as error:
            raise MembershipError(
                f"cannot release {node} (it goes when the session ends): {error!r}"
            ) from None
        log.debug("released %s", node)

    def _try_once(self) -> bool:
        if not self._path_ready:
            self._wait(self.client.ensure_path_async(self.path))
            self._path_ready = True
        if self._maybe_orphan:
            self._sweep_orphans()
        node: str = self._wait(
            self.client.create_async(
                f"{self.path}/{self._prefix}", b"", ephemeral=True, sequence=True
            )
        )
        mine = _sequence(node.rsplit("/", 1)[-1])
        if mine is None:  # ZooKeeper always appends ten digits
            raise MembershipError(f"unexpected lock node name {node}")
        children: list[str] = self._wait(self.client.get_children_async(self.path))
        for child in children:
            other = _sequence(child)
            if other is None or other[1] >= mine[1]:
                continue
            if not self.shared or other[0] == WRITE_PREFIX:
                log.debug("%s is taken (%s before %s)", self.path, child, node)
                try:
                    self._wait(self.client.delete_async(node))
                except NoNodeError:
                    pass
                return False
        self._node = node
        with _held_lock:
            _held.add(node)
        log.debug("acquired %s", node)
        return True

    def _sweep_orphans(self) -> None:
        """Delete children of our session that no lock object holds (lost create replies)."""
        session = self.client.client_id[0] if self.client.client_id else None
        children: list[str] = self._wait(self.client.get_children_async(self.path))
        for child in children:
            full = f"{self.path}/{child}"
            with _held_lock:
                if full in _held:
                    continue
            stat = self._wait(self.client.exists_async(full))
            if stat is not None and stat.ephemeralOwner == session:
                log.warning("deleting orphaned lock node %s", full)
                try:
                    self._wait(self.client.delete_async(full))
                except NoNodeError:
                    pass
        self._maybe_orphan = False

    def _wait(self, result: Any) -> Any:
        try:
            return result.get(timeout=self.op_timeout)
        except self.client.handler.timeout_exception:
            raise OperationTimeoutError(
                f"ZooKeeper did not answer within {self.op_timeout:g}s"
            ) from None


def master_lock(client: KazooClient, service_type: str, name: str) -> ZkLock:
    """The mixer's master election lock, ``…/<name>/master_lock`` (exclusive)."""
    return ZkLock(client, paths.master_lock_path(service_type, name))


def config_read_lock(client: KazooClient, service_type: str, name: str) -> ZkLock:
    """The shared lock a server holds on ``…/<name>/config_lock`` while it runs."""
    return ZkLock(client, paths.config_lock_path(service_type, name), shared=True)


def config_write_lock(client: KazooClient, service_type: str, name: str) -> ZkLock:
    """The exclusive lock a config writer takes on ``…/<name>/config_lock``."""
    return ZkLock(client, paths.config_lock_path(service_type, name))
