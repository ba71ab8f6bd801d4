"""ZooKeeper membership against a real ZooKeeper, plus the znode layout it writes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from kazoo.client import KazooClient

from runtime.cluster.membership import Membership, Snapshot
from runtime.cluster.zookeeper import paths
from runtime.cluster.zookeeper.membership import ZooKeeperMembership
from runtime.errors import MembershipError
from runtime.testing import ManagedZooKeeper, TcpRelay, wait_until_async

log = logging.getLogger(__name__)

TYPE, NAME = "classifier", "cluster1"
ACTOR = f"/jubatus/actors/{TYPE}/{NAME}"
SERVER = ("127.0.0.1", 9199)
SERVER_NODE = "127.0.0.1_9199"


# -- the layout (no ZooKeeper needed) ---------------------------------------------------------


def test_paths_follow_jubatus() -> None:
    assert paths.actor_path("classifier", "c") == "/jubatus/actors/classifier/c"
    assert paths.nodes_path("t", "n") == "/jubatus/actors/t/n/nodes"
    assert paths.actives_path("t", "n") == "/jubatus/actors/t/n/actives"
    assert paths.cht_path("t", "n") == "/jubatus/actors/t/n/cht"
    assert paths.master_lock_path("t", "n") == "/jubatus/actors/t/n/master_lock"
    assert paths.config_lock_path("t", "n") == "/jubatus/actors/t/n/config_lock"
    assert paths.config_path("t", "n") == "/jubatus/config/t/n"
    assert paths.proxy_path("t", "10.0.0.1", 9198) == "/jubatus/jubaproxies/t/10.0.0.1_9198"
    assert paths.supervisor_path("10.0.0.1", 9198) == "/jubatus/supervisors/10.0.0.1_9198"
    assert paths.persistent_paths("t") == [
        "/jubatus",
        "/jubatus/supervisors",
        "/jubatus/jubaproxies",
        "/jubatus/actors",
        "/jubatus/config",
        "/jubatus/actors/t",
        "/jubatus/config/t",
        "/jubatus/jubaproxies/t",
    ]
    assert paths.persistent_paths("t", "n")[-6:] == [
        "/jubatus/actors/t/n",
        "/jubatus/actors/t/n/config_lock",
        "/jubatus/actors/t/n/master_lock",
        "/jubatus/actors/t/n/nodes",
        "/jubatus/actors/t/n/actives",
        "/jubatus/actors/t/n/cht",
    ]


@pytest.mark.parametrize("bad", ["", "a/b", ".", "..", "tab\there", "nul\x00", "del\x7f"])
def test_types_and_names_must_be_path_segments(bad: str) -> None:
    with pytest.raises(ValueError, match=r"type|name"):
        paths.actor_path(bad, "n")
    with pytest.raises(ValueError, match="name"):
        paths.config_path("t", bad)


def test_node_names_round_trip() -> None:
    assert paths.encode_node("10.0.0.1", 9199) == "10.0.0.1_9199"
    assert paths.decode_node("10.0.0.1_9199") == ("10.0.0.1", 9199)
    assert paths.decode_node("255.255.255.255_65535") == ("255.255.255.255", 65535)


@pytest.mark.parametrize(
    "name",
    [
        "10.0.0.1",
        "10.0.0.1_",
        "_9199",
        "10.0.0.1_9199_1",  # split at the first "_": the port would be "9199_1"
        "10.0.0.1_0",
        "10.0.0.1_65536",
        "10.0.0.1_+1",
        "10.0.0.1_\uff11\uff12",  # full-width digits
        "10.0.0_9199",
        "010.0.0.1_9199",
        "256.0.0.1_9199",
        "::1_9199",
        "localhost_9199",
        "garbage",
    ],
)
def test_bad_node_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        paths.decode_node(name)


@pytest.mark.parametrize(("host", "port"), [("localhost", 1), ("::1", 1), ("1.2.3.4", 0)])
def test_bad_node_addresses_are_rejected(host: str, port: int) -> None:
    with pytest.raises(ValueError):
        paths.encode_node(host, port)


def test_cht_vnodes_are_jubatus_md5_names() -> None:
    vnodes = paths.cht_vnodes("10.0.0.1", 9199)
    assert len(vnodes) == 8
    assert vnodes[0] == (hashlib.md5(b"10.0.0.1_9199").hexdigest(), "10.0.0.1_9199")
    assert vnodes[7] == (hashlib.md5(b"10.0.0.1_9199_7").hexdigest(), "10.0.0.1_9199")
    assert len({name for name, _ in vnodes}) == 8


# -- against ZooKeeper ------------------------------------------------------------------------

Factory = Callable[..., ZooKeeperMembership]


@pytest_asyncio.fixture
async def make_membership(zk_hosts: str) -> AsyncIterator[Factory]:
    """``make_membership(**options)``: a membership for TYPE/NAME in this test's chroot."""
    made: list[ZooKeeperMembership] = []

    def make(
        zk: str | KazooClient | None = None,
        *,
        use_cht: bool = False,
        session_timeout: float = 5.0,
        retry_interval: float = 10.0,
    ) -> ZooKeeperMembership:
        membership = ZooKeeperMembership(
            zk or zk_hosts,
            TYPE,
            NAME,
            use_cht=use_cht,
            session_timeout=session_timeout,
            retry_interval=retry_interval,
        )
        made.append(membership)
        return membership

    yield make
    for membership in made:
        await membership.stop()


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_register_creates_jubatus_znodes_and_stop_removes_them(
    make_membership: Factory, zk_client: KazooClient
) -> None:
    server = make_membership(use_cht=True)
    assert isinstance(server, Membership)
    await server.start()
    for path in paths.persistent_paths(TYPE, NAME):
        assert zk_client.exists(path) is not None, path

    await server.register_node(*SERVER)
    session = server.client.client_id[0]
    stat = zk_client.exists(f"{ACTOR}/nodes/{SERVER_NODE}")
    assert stat is not None and stat.ephemeralOwner == session
    vnodes = sorted(zk_client.get_children(f"{ACTOR}/cht"))
    assert vnodes == sorted(name for name, _ in paths.cht_vnodes(*SERVER))
    for vnode in vnodes:
        data, stat = zk_client.get(f"{ACTOR}/cht/{vnode}")
        assert (data, stat.ephemeralOwner) == (SERVER_NODE.encode(), session)
    await wait_until_async(lambda: server.members() == [SERVER], 5, what="own watch")
    await wait_until_async(lambda: server.cht_members() == [SERVER], 5, what="cht")
    assert server.actives() == []

    await server.set_active(True)
    assert zk_client.exists(f"{ACTOR}/actives/{SERVER_NODE}") is not None
    await wait_until_async(lambda: server.actives() == [SERVER], 5, what="actives")
    await server.set_active(True)  # again: still one node, no error
    await server.set_active(False)
    assert zk_client.get_children(f"{ACTOR}/actives") == []
    await server.set_active(False)
    await server.set_active(True)

    await server.register_proxy("127.0.0.1", 9198)
    assert zk_client.get_children(f"/jubatus/jubaproxies/{TYPE}") == ["127.0.0.1_9198"]
    assert server.registered_paths == sorted(
        [f"{ACTOR}/nodes/{SERVER_NODE}", f"{ACTOR}/actives/{SERVER_NODE}"]
        + [f"{ACTOR}/cht/{name}" for name, _ in paths.cht_vnodes(*SERVER)]
        + [f"/jubatus/jubaproxies/{TYPE}/127.0.0.1_9198"]
    )

    await server.stop()
    await server.stop()  # idempotent
    for child in ("nodes", "actives", "cht"):
        assert zk_client.get_children(f"{ACTOR}/{child}") == [], child
    assert zk_client.get_children(f"/jubatus/jubaproxies/{TYPE}") == []
    assert not server.connected


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_another_process_sees_a_server_come_and_go(make_membership: Factory) -> None:
    watcher = make_membership()
    await watcher.start()
    snapshots: list[Snapshot] = []
    threads: set[int] = set()
    changed = asyncio.Event()

    def on_change(snapshot: Snapshot) -> None:
        snapshots.append(snapshot)
        threads.add(threading.get_ident())
        changed.set()

    watcher.watch(on_change)
    server = make_membership(use_cht=True)
    await server.start()
    started = time.monotonic()
    await server.register_node(*SERVER)
    await server.set_active(True)
    await wait_until_async(
        lambda: watcher.snapshot() == Snapshot((SERVER,), (SERVER,), (SERVER,)), 5, what="join"
    )
    log.info("a join was seen %.1f ms after register_node", (time.monotonic() - started) * 1e3)
    assert watcher.members() == [SERVER] and watcher.actives() == [SERVER]
    # The view changes on kazoo's thread; callbacks follow on the loop, a moment later.
    await wait_until_async(
        lambda: bool(snapshots) and snapshots[-1] == watcher.snapshot(), 5, what="callback"
    )
    assert threads == {threading.get_ident()}  # callbacks ran on this loop's thread

    changed.clear()
    await server.stop()
    await wait_until_async(lambda: watcher.snapshot() == Snapshot(), 5, what="leave")
    assert changed.is_set()


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_ephemeral_nodes_vanish_when_the_owning_client_closes(
    make_membership: Factory, zk_hosts: str, zk_client: KazooClient
) -> None:
    shared = KazooClient(hosts=zk_hosts)
    shared.start(timeout=10)
    server = make_membership(shared)
    await server.start()
    await server.register_node(*SERVER)
    watcher = make_membership()
    await watcher.start()
    await wait_until_async(lambda: watcher.members() == [SERVER], 5, what="join")

    await asyncio.to_thread(shared.stop)  # the process's session ends without stop()
    await wait_until_async(lambda: watcher.members() == [], 5, what="vanish")
    assert zk_client.get_children(f"{ACTOR}/nodes") == []
    await server.stop()  # not connected any more: nothing left to do, no error
    shared.close()


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_stop_on_a_shared_client_removes_only_its_own_nodes(
    make_membership: Factory, zk_hosts: str
) -> None:
    shared = KazooClient(hosts=zk_hosts)
    shared.start(timeout=10)
    try:
        shared.create("/other-ephemeral", ephemeral=True)
        server = make_membership(shared)
        await server.start()
        await server.register_node(*SERVER)
        await server.stop()
        assert shared.connected
        assert shared.get_children(f"{ACTOR}/nodes") == []
        assert shared.exists("/other-ephemeral") is not None
    finally:
        shared.stop()
        shared.close()


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_misuse_is_refused_clearly(make_membership: Factory, zk_hosts: str) -> None:
    membership = make_membership()
    with pytest.raises(MembershipError, match="not running"):
        await membership.register_node(*SERVER)
    await membership.start()
    with pytest.raises(MembershipError, match="already started"):
        await membership.start()
    with pytest.raises(MembershipError, match="before register_node"):
        await membership.set_active(True)
    with pytest.raises(MembershipError, match="reachable address"):
        await membership.register_node("0.0.0.0", 9199)
    with pytest.raises(ValueError, match="not an IPv4 address"):
        await membership.register_node("localhost", 9199)
    await membership.register_node(*SERVER)
    with pytest.raises(MembershipError, match=re.escape("already registered as 127.0.0.1:9199")):
        await membership.register_node("127.0.0.1", 9200)
    await membership.stop()
    with pytest.raises(MembershipError, match="was stopped"):
        await membership.start()
    with pytest.raises(MembershipError, match="not running"):
        await membership.set_active(True)

    unstarted = KazooClient(hosts=zk_hosts)
    with pytest.raises(MembershipError, match="not connected"):
        await make_membership(unstarted).start()
    unstarted.close()
    with pytest.raises(ValueError, match="name"):
        ZooKeeperMembership(zk_hosts, TYPE, "a/b")


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_unreachable_zookeeper_fails_start_within_the_timeout(
    make_membership: Factory,
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        hosts = f"127.0.0.1:{closed.getsockname()[1]}"
        membership = make_membership(hosts, session_timeout=1.0)
        with pytest.raises(MembershipError, match=rf"cannot connect zk in 1 sec: {hosts}"):
            await membership.start()


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_a_stale_node_is_waited_out(make_membership: Factory, zk_client: KazooClient) -> None:
    # An earlier process on the same address left its node; its session ends soon.
    zk_client.ensure_path(f"{ACTOR}/nodes")
    zk_client.create(f"{ACTOR}/nodes/{SERVER_NODE}", ephemeral=True)
    timer = threading.Timer(0.3, zk_client.delete, args=(f"{ACTOR}/nodes/{SERVER_NODE}",))
    timer.start()
    server = make_membership(session_timeout=5.0)
    await server.start()
    await server.register_node(*SERVER)
    timer.join()
    stat = zk_client.exists(f"{ACTOR}/nodes/{SERVER_NODE}")
    assert stat is not None and stat.ephemeralOwner == server.client.client_id[0]


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_a_node_held_by_a_live_session_is_an_error(
    make_membership: Factory, zk_client: KazooClient
) -> None:
    zk_client.ensure_path(f"{ACTOR}/nodes")
    zk_client.create(f"{ACTOR}/nodes/{SERVER_NODE}", ephemeral=True)
    server = make_membership(session_timeout=0.8)
    await server.start()
    with pytest.raises(MembershipError, match="held by another ZooKeeper session"):
        await server.register_node(*SERVER)


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_garbage_in_zookeeper_is_ignored(
    make_membership: Factory, zk_client: KazooClient
) -> None:
    for path in paths.persistent_paths(TYPE, NAME):
        zk_client.ensure_path(path)
    for child in ("garbage", "10.0.0.1_port", "10.0.0.1_9199"):
        zk_client.create(f"{ACTOR}/nodes/{child}")
    zk_client.create(f"{ACTOR}/cht/{'0' * 32}", b"not a node")
    zk_client.create(f"{ACTOR}/cht/{'1' * 32}", b"10.0.0.2_9199")
    watcher = make_membership()
    await watcher.start()
    assert watcher.members() == [("10.0.0.1", 9199)]
    assert watcher.cht_members() == [("10.0.0.2", 9199)]


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_mark_down_filters_actives(make_membership: Factory) -> None:
    server = make_membership(retry_interval=60.0)
    await server.start()
    await server.register_node(*SERVER)
    await server.set_active(True)
    await wait_until_async(lambda: server.actives() == [SERVER], 5)
    other = ("127.0.0.1", 9300)
    second = make_membership()
    await second.start()
    await second.register_node(*other)
    await second.set_active(True)
    await wait_until_async(lambda: server.actives() == [SERVER, other], 5)
    server.mark_down(*other)
    assert server.actives() == [SERVER]
    assert server.snapshot().actives == (SERVER, other)
    server.mark_up(*other)
    assert server.actives() == [SERVER, other]


# -- outages ----------------------------------------------------------------------------------


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_zookeeper_restart_keeps_membership_and_the_registration(
    private_zookeeper: ManagedZooKeeper,
) -> None:
    """While ZooKeeper is down the last lists are served; after a restart the node is back.

    A standalone ZooKeeper restores sessions from its data dir and restarts their timers,
    so a client that reconnects within its timeout after the restart resumes its session;
    one that takes longer (a connect attempt caught in ZooKeeper's start-up) finds it
    expired and registers again. Either way the node must be there, owned by the server's
    current session.
    """
    hosts = private_zookeeper.hosts
    server = ZooKeeperMembership(hosts, TYPE, NAME, session_timeout=2.0)
    watcher = ZooKeeperMembership(hosts, TYPE, NAME, session_timeout=2.0)
    probe = KazooClient(hosts=hosts)
    try:
        await server.start()
        await server.register_node(*SERVER)
        await server.set_active(True)
        await watcher.start()
        await wait_until_async(lambda: watcher.actives() == [SERVER], 5)
        session = server.client.client_id[0]

        await asyncio.to_thread(private_zookeeper.stop)
        await wait_until_async(lambda: not watcher.connected and not server.connected, 5)
        await asyncio.sleep(2.5)  # the outage itself: longer than the session timeout
        assert watcher.members() == [SERVER]  # last known lists are still served
        assert watcher.actives() == [SERVER]
        assert server.members() == [SERVER]

        restarted = time.monotonic()
        await asyncio.to_thread(private_zookeeper.restart)
        await asyncio.to_thread(probe.start, 10)

        def registered() -> bool:
            stat = probe.exists(f"{ACTOR}/nodes/{SERVER_NODE}")
            active = probe.exists(f"{ACTOR}/actives/{SERVER_NODE}")
            owner = server.client.client_id[0] if server.connected else None
            return (
                stat is not None
                and active is not None
                and stat.ephemeralOwner == active.ephemeralOwner == owner
            )

        await wait_until_async(registered, 15, interval=0.05, what="node back after restart")
        await wait_until_async(lambda: watcher.connected, 10)
        resumed = server.client.client_id[0] == session
        log.info(
            "registration back %.2fs after ZooKeeper answered (%s)",
            time.monotonic() - restarted,
            "session resumed" if resumed else "session expired, registered again",
        )
        assert server.reregistrations == (0 if resumed else 1)
        await wait_until_async(lambda: watcher.actives() == [SERVER], 5)
    finally:
        await server.stop()
        await watcher.stop()
        probe.stop()
        probe.close()


@pytest.mark.zookeeper
@pytest.mark.asyncio
async def test_session_expiry_during_a_partition_re_registers_everything(
    zookeeper: ManagedZooKeeper, zk_hosts: str, zk_client: KazooClient
) -> None:
    """Cut a server off longer than its session: its znodes expire; on reconnection they return."""
    chroot = zk_hosts[len(zookeeper.hosts) :]
    with TcpRelay("127.0.0.1", zookeeper.port) as relay:
        server = ZooKeeperMembership(
            f"{relay.hosts}{chroot}", TYPE, NAME, use_cht=True, session_timeout=1.5
        )
        watcher = ZooKeeperMembership(zk_hosts, TYPE, NAME, session_timeout=5.0)
        everything = Snapshot((SERVER,), (SERVER,), (SERVER,))
        try:
            await server.start()
            await server.register_node(*SERVER)
            await server.set_active(True)
            await server.register_proxy("127.0.0.1", 9198)
            await watcher.start()
            await wait_until_async(lambda: watcher.snapshot() == everything, 5)
            await wait_until_async(lambda: server.snapshot() == everything, 5)
            old_session = server.client.client_id[0]

            relay.cut()
            cut_at = time.monotonic()
            await wait_until_async(lambda: watcher.snapshot() == Snapshot(), 15, what="expiry")
            log.info("server's znodes expired %.2fs after the cut", time.monotonic() - cut_at)
            assert server.snapshot() == everything  # the cut-off side keeps its last lists
            assert server.members() == [SERVER]

            relay.restore()
            restored_at = time.monotonic()
            await wait_until_async(lambda: server.reregistrations == 1, 15, what="re-register")
            await wait_until_async(lambda: watcher.snapshot() == everything, 5)
            log.info(
                "re-registered %.3fs after the new session connected; the watcher saw the "
                "server again %.2fs after the link came back",
                server.last_reregistration_seconds,
                time.monotonic() - restored_at,
            )
            new_session = server.client.client_id[0]
            assert new_session != old_session
            expected = [
                f"{ACTOR}/nodes/{SERVER_NODE}",
                f"{ACTOR}/actives/{SERVER_NODE}",
                f"/jubatus/jubaproxies/{TYPE}/127.0.0.1_9198",
            ] + [f"{ACTOR}/cht/{name}" for name, _ in paths.cht_vnodes(*SERVER)]
            for path in expected:
                stat = zk_client.exists(path)
                assert stat is not None and stat.ephemeralOwner == new_session, path
        finally:
            await server.stop()
            await watcher.stop()
