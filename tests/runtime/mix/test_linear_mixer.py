"""The linear mixer in one process: real RPC servers on 127.0.0.1, a counting model, an
in-memory member list and master lock (the ZooKeeper ones are tested end to end in
``tests/e2e/test_classifier_mix.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator

import msgpack
import pytest
import pytest_asyncio

from runtime.cluster.membership import Node
from runtime.errors import RemoteError
from runtime.mix.linear_mixer import LinearMixer, MixError, MixSettings, standalone_handlers
from runtime.mix.mixable import DiffError, read_fields, read_int
from runtime.rpc.client import AsyncClient
from runtime.rpc.dispatch import Dispatcher
from runtime.rpc.locks import RWLock
from runtime.rpc.server import RpcServer


class CountingModel:
    """Mixable: a total; each server's diff is what it added since the last mix."""

    def __init__(self) -> None:
        self.master = 0
        self.local = 0
        self._sent = 0
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def add(self, n: int) -> None:
        self.local += n

    def get_diff(self) -> object:
        self._sent = self.local
        return {"version": self._version, "sum": self.local}

    def mix(self, lhs: object, rhs: object) -> object:
        left = read_fields(lhs, "lhs", ("version", "sum"))
        right = read_fields(rhs, "rhs", ("version", "sum"))
        if left["version"] != right["version"]:
            return max((left, right), key=lambda d: read_int(d["version"], "version"))
        return {"version": left["version"], "sum": read_int(left["sum"], "sum", minimum=-(2**62))
                + read_int(right["sum"], "sum", minimum=-(2**62))}  # fmt: skip

    def put_diff(self, mixed: object) -> bool:
        diff = read_fields(mixed, "diff", ("version", "sum"))
        if read_int(diff["version"], "version") != self._version:
            return False
        self.master += read_int(diff["sum"], "sum", minimum=-(2**62))
        self.local -= self._sent
        self._sent = 0
        self._version += 1
        return True

    def get_model(self) -> object:
        return {"version": self._version, "master": self.master}

    def set_model(self, model: object) -> None:
        fields = read_fields(model, "model", ("version", "master"))
        self._version = read_int(fields["version"], "version")
        self.master = read_int(fields["master"], "master")
        self.local = 0
        self._sent = 0

    @property
    def total(self) -> int:
        return self.master + self.local


class Members:
    """An in-memory cluster: the nodes, the actives, one master lock."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.active: set[Node] = set()
        self.lock = threading.Lock()

    def view(self, me: list[Node]) -> MemberView:
        return MemberView(self, me)


class MemberView:
    def __init__(self, cluster: Members, me: list[Node]) -> None:
        self.cluster = cluster
        self.me = me

    def members(self) -> list[Node]:
        return list(self.cluster.nodes)

    def actives(self) -> list[Node]:
        return sorted(self.cluster.active)

    async def set_active(self, active: bool) -> None:
        if active:
            self.cluster.active.add(self.me[0])
        else:
            self.cluster.active.discard(self.me[0])


class LocalLock:
    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.held = False

    def try_acquire(self) -> bool:
        self.held = self.lock.acquire(blocking=False)
        return self.held

    def release(self) -> None:
        if self.held:
            self.held = False
            self.lock.release()


class Server:
    def __init__(self, cluster: Members, *, protocol_version: int = 1) -> None:
        self.model = CountingModel()
        self.node: list[Node] = []
        self.mixer = LinearMixer(
            self.model,
            model_lock=RWLock(),
            members=cluster.view(self.node),
            master_lock=lambda: LocalLock(cluster.lock),
            self_node=lambda: self.node[0],
            protocol_version=protocol_version,
            settings=MixSettings(interval_sec=0, interval_count=0, interconnect_timeout=5),
        )
        self.rpc = RpcServer(Dispatcher(self.mixer.handlers()), "127.0.0.1", 0)

    async def start(self, cluster: Members) -> None:
        await self.rpc.start()
        self.node.append(("127.0.0.1", self.rpc.port))
        cluster.nodes.append(self.node[0])
        await self.mixer.start()

    async def stop(self) -> None:
        await self.mixer.stop()
        await self.rpc.close()


async def wait_until(condition: object, timeout: float = 10.0) -> None:
    import asyncio

    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[tuple[Members, list[Server]]]:
    members = Members()
    servers = [Server(members) for _ in range(3)]
    for server in servers:
        await server.start(members)
    await wait_until(lambda: all(not s.mixer.is_obsolete for s in servers))
    yield members, servers
    for server in servers:
        await server.stop()


@pytest.mark.asyncio
async def test_servers_join_then_a_round_sums_every_diff(
    cluster: tuple[Members, list[Server]],
) -> None:
    members, servers = cluster
    assert members.active == {s.node[0] for s in servers}
    for i, server in enumerate(servers):
        server.model.add(10 * (i + 1))
    assert await servers[1].mixer.do_mix() is True
    assert [s.model.total for s in servers] == [60, 60, 60]
    assert len({s.model.version for s in servers}) == 1
    status = servers[1].mixer.status()
    assert status["mix.last_servers"] == "3" and status["mix.rounds"] == "1"
    assert status["linear_mixer.is_obsolete"] == "0"


@pytest.mark.asyncio
async def test_a_dead_member_is_left_out_of_the_round(
    cluster: tuple[Members, list[Server]],
) -> None:
    _, servers = cluster
    for server in servers:
        server.model.add(1)
    await servers[2].rpc.close()  # still listed as a member
    assert await servers[0].mixer.do_mix() is True
    assert servers[0].mixer.status()["mix.last_servers"] == "2"
    assert [s.model.total for s in servers[:2]] == [2, 2]


@pytest.mark.asyncio
async def test_a_refused_diff_makes_the_server_obsolete_and_it_catches_up(
    cluster: tuple[Members, list[Server]],
) -> None:
    members, servers = cluster
    lagging = servers[2]
    lagging.model._version -= 1  # its model is based on an older version
    servers[0].model.add(7)
    assert await servers[0].mixer.do_mix() is True
    # The lagging server refused the round's diff; its loop copies a peer's model.
    await wait_until(lambda: not lagging.mixer.is_obsolete and lagging.mixer.catch_ups == 1)
    assert lagging.node[0] in members.active
    assert lagging.model.total == servers[0].model.total == 7
    assert lagging.model.version == servers[0].model.version


@pytest.mark.asyncio
async def test_malformed_mix_rpcs_get_errors_and_change_nothing(
    cluster: tuple[Members, list[Server]],
) -> None:
    _, servers = cluster
    server = servers[0]
    server.model.add(3)
    async with AsyncClient(*server.node[0], timeout=5) as client:
        with pytest.raises(RemoteError, match="not valid msgpack"):
            await client.call("put_diff", [b"\xc1"])
        with pytest.raises(RemoteError, match="DiffError"):
            await client.call("put_diff", [msgpack.packb({"version": 0})])
        reply = await client.call("get_model", [0])
        assert reply[0] == 1 and isinstance(reply[1], bytes)
    assert server.model.total == 3 and not server.mixer.is_obsolete


def test_diff_error_is_a_value_error() -> None:
    assert issubclass(DiffError, ValueError)


@pytest.mark.asyncio
async def test_protocol_version_mismatch_stops_the_catch_up() -> None:
    members = Members()
    old = Server(members, protocol_version=1)
    await old.start(members)
    await wait_until(lambda: not old.mixer.is_obsolete)
    new = Server(members, protocol_version=2)
    await new.start(members)
    try:
        await wait_until(lambda: "protocol version mismatch" in new.mixer.last_error)
        assert new.mixer.is_obsolete and new.node[0] not in members.active
    finally:
        await new.stop()
        await old.stop()


def test_triggers_follow_jubatus() -> None:
    mixer = Server(Members()).mixer
    now = time.time()
    mixer.settings = MixSettings(interval_sec=16, interval_count=512)
    mixer.ticktime = now - 100
    assert not mixer.is_due(now), "no update since the last mix: never due"
    mixer.updated()
    assert mixer.is_due(now), "time trigger"
    mixer.ticktime = now
    assert not mixer.is_due(now)
    for _ in range(511):
        mixer.updated()
    assert mixer.counter == 512 and mixer.is_due(now), "count trigger"
    mixer.settings = MixSettings(interval_sec=0, interval_count=0)
    mixer.ticktime = now - 10_000
    assert not mixer.is_due(now), "both triggers off"


def test_updates_from_many_threads_are_all_counted() -> None:
    mixer = Server(Members()).mixer

    def hammer() -> None:
        for _ in range(1000):
            mixer.updated()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mixer.counter == 4000


@pytest.mark.asyncio
async def test_standalone_do_mix_says_there_is_no_mixer() -> None:
    rpc = RpcServer(Dispatcher(standalone_handlers("standalone: no mixer")), "127.0.0.1", 0)
    await rpc.start()
    try:
        async with AsyncClient("127.0.0.1", rpc.port, timeout=5) as client:
            with pytest.raises(RemoteError, match="MixError: standalone: no mixer"):
                await client.call("do_mix", ["c"])
    finally:
        await rpc.close()
    assert MixError.__name__ == "MixError"


def _refuse_diffs(server: Server) -> None:
    """Make ``server``'s model fail every put_diff, as a model that cannot take a diff."""

    def refuse(mixed: object) -> bool:
        raise DiffError("diff.sum: cannot be taken here")

    server.model.put_diff = refuse  # type: ignore[method-assign]


@pytest.mark.asyncio
async def test_a_failed_put_diff_is_reported_and_all_failing_fails_the_round(
    cluster: tuple[Members, list[Server]],
) -> None:
    _, servers = cluster
    servers[0].model.add(5)
    _refuse_diffs(servers[2])
    assert await servers[0].mixer.do_mix() is True  # two of three took it
    error = servers[0].mixer.status()["mix.last_error"]
    assert error.startswith(f"put_diff failed on 1 of 3: 127.0.0.1:{servers[2].node[0][1]}: ")
    assert "cannot be taken here" in error
    assert [s.model.total for s in servers[:2]] == [5, 5]
    for server in servers[:2]:
        _refuse_diffs(server)
    rounds = servers[0].mixer.status()["mix.rounds"]
    assert await servers[0].mixer.do_mix() is False  # nobody took it: not a round
    assert "all put_diffs fail" in servers[0].mixer.status()["mix.last_error"]
    assert servers[0].mixer.status()["mix.rounds"] == rounds
