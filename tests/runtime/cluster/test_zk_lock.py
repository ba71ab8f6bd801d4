"""Jubatus-style ZooKeeper locks (master_lock, config_lock) against a real ZooKeeper."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from runtime.cluster.zookeeper import paths
from runtime.cluster.zookeeper.lock import ZkLock, config_read_lock, config_write_lock, master_lock
from runtime.errors import MembershipError
from runtime.testing import ManagedZooKeeper, TcpRelay, wait_until

pytestmark = pytest.mark.zookeeper

TYPE, NAME = "classifier", "c1"
MASTER = paths.master_lock_path(TYPE, NAME)
CONFIG = paths.config_lock_path(TYPE, NAME)


@pytest.fixture
def new_client(zk_hosts: str) -> Iterator[Callable[[], KazooClient]]:
    """Clients with sessions of their own (a lock excludes other sessions/processes)."""
    clients: list[KazooClient] = []

    def make() -> KazooClient:
        client = KazooClient(hosts=zk_hosts)
        client.start(timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()
        client.close()


def test_master_lock_is_exclusive_and_uses_jubatus_names(new_client, zk_client) -> None:
    first, second = master_lock(new_client(), TYPE, NAME), master_lock(new_client(), TYPE, NAME)
    assert first.path == MASTER
    assert first.try_acquire()
    assert [first.held, second.held] == [True, False]
    assert first.try_acquire()  # already held: still true, no second node
    children = zk_client.get_children(MASTER)
    assert len(children) == 1 and children[0].startswith("wlock_")
    assert len(children[0]) == len("wlock_") + 10

    assert not second.try_acquire()
    assert not second.held
    assert zk_client.get_children(MASTER) == children  # the failed try cleaned up after itself

    first.release()
    assert not first.held
    assert zk_client.get_children(MASTER) == []
    assert second.try_acquire()
    second.release()
    first.release()  # not held: nothing happens


def test_readers_share_and_exclude_writers(new_client, zk_client) -> None:
    reader1 = config_read_lock(new_client(), TYPE, NAME)
    reader2 = config_read_lock(new_client(), TYPE, NAME)
    writer = config_write_lock(new_client(), TYPE, NAME)
    assert reader1.path == CONFIG
    assert reader1.try_acquire() and reader2.try_acquire()
    assert sorted(c[:6] for c in zk_client.get_children(CONFIG)) == ["rlock_", "rlock_"]
    assert not writer.try_acquire()
    reader1.release()
    assert not writer.try_acquire()
    reader2.release()
    assert writer.try_acquire()
    late_reader = config_read_lock(new_client(), TYPE, NAME)
    assert not late_reader.try_acquire()
    writer.release()
    assert late_reader.try_acquire()
    late_reader.release()


def test_a_foreign_jubatus_holder_is_respected(new_client) -> None:
    # What a C++ Jubatus mixer does to hold master_lock: an ephemeral sequential wlock_.
    jubatus = new_client()
    jubatus.create(f"{MASTER}/wlock_", ephemeral=True, sequence=True, makepath=True)
    ours = master_lock(new_client(), TYPE, NAME)
    assert not ours.try_acquire()
    jubatus.stop()  # the holder's session ends: its node and the lock go with it
    assert ours.try_acquire()
    ours.release()


def test_a_holder_whose_session_ends_frees_the_lock(new_client) -> None:
    holder_client = new_client()
    assert master_lock(holder_client, TYPE, NAME).try_acquire()
    waiting = master_lock(new_client(), TYPE, NAME)
    assert not waiting.try_acquire()
    holder_client.stop()
    assert waiting.try_acquire()


def test_acquire_waits_with_a_bound(new_client) -> None:
    holder = master_lock(new_client(), TYPE, NAME)
    assert holder.try_acquire()
    waiter = master_lock(new_client(), TYPE, NAME)
    started = time.monotonic()
    assert not waiter.acquire(timeout=0.3, retry_interval=0.05)
    assert time.monotonic() - started >= 0.2

    release = threading.Timer(0.2, holder.release)
    release.start()
    assert waiter.acquire(timeout=10, retry_interval=0.05)
    release.join()
    waiter.release()


def test_release_after_the_node_was_deleted_by_hand(new_client, zk_client) -> None:
    lock = ZkLock(new_client(), "/some/lock")
    assert lock.try_acquire()
    for child in zk_client.get_children("/some/lock"):
        zk_client.delete(f"/some/lock/{child}")
    lock.release()
    assert not lock.held


def test_unrelated_children_of_a_lock_node_are_ignored(new_client, zk_client) -> None:
    zk_client.create(f"{MASTER}/not-a-lock", makepath=True)
    lock = master_lock(new_client(), TYPE, NAME)
    assert lock.try_acquire()
    lock.release()
    assert zk_client.get_children(MASTER) == ["not-a-lock"]


def test_a_create_whose_reply_was_lost_leaves_no_stuck_lock(
    zookeeper: ManagedZooKeeper, zk_hosts: str, new_client
) -> None:
    """A try that times out while the link is down may still create its node later."""
    chroot = zk_hosts[len(zookeeper.hosts) :]
    with TcpRelay("127.0.0.1", zookeeper.port) as relay:
        client = KazooClient(hosts=f"{relay.hosts}{chroot}", timeout=10.0)
        client.start(timeout=10)
        try:
            lock = ZkLock(client, MASTER, op_timeout=0.3)
            assert lock.try_acquire()
            lock.release()

            relay.cut()
            wait_until(lambda: not client.connected, 5, what="client notices the cut")
            with pytest.raises(MembershipError, match="cannot take lock"):
                lock.try_acquire()  # the create waits in kazoo's queue
            relay.restore()
            observer = new_client()
            # Sent after reconnecting, in the same session: a node nobody knows about.
            wait_until(lambda: observer.get_children(MASTER), 10, what="orphan appears")
            assert not master_lock(observer, TYPE, NAME).try_acquire()  # it blocks others

            assert lock.try_acquire()  # sweeps the orphan first
            assert len(observer.get_children(MASTER)) == 1
            lock.release()
            assert observer.get_children(MASTER) == []
        finally:
            client.stop()
            client.close()
