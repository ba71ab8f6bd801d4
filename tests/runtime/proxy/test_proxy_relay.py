"""The proxy's relay path (``Forwarder.start``) and ``AsyncClient.call_soon``, against real
RPC servers on 127.0.0.1: same answers and failover rules as ``forward``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from runtime.errors import ConnectionLost, RemoteError, RPCError, RPCTimeout
from runtime.proxy.forwarder import Forwarder, ForwardError, Node
from runtime.proxy.routing import Route, Routing
from runtime.rpc.client import AsyncClient
from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.locks import LockMode
from runtime.rpc.pool import ClientPool
from runtime.rpc.server import RpcServer
from runtime.wire import types as t
from runtime.wire.signature import Signature

GET = Signature("get", (t.String(),), t.String())
PUT = Signature("put", (t.String(), t.String()), t.Bool())
SLEEP = Signature("sleep", (t.Float(),), t.Bool())
LOOKUP = Signature("lookup", (t.String(),), t.String())
STORE = Signature("store", (t.String(), t.String()), t.Bool())
WHOAMI = Signature("whoami", (), t.List(t.String()))


class Store:
    def __init__(self, name: str) -> None:
        self.name = name
        self.puts = 0
        self.replicated: list[object] = []

    def get(self, key: str) -> str:
        if key == "boom":
            raise KeyError(key)
        return f"{self.name}:{key}"

    def put(self, key: str, value: str) -> bool:
        if key == "boom" and self.name == "b":
            raise KeyError(key)
        self.puts += 1
        return True

    def whoami(self) -> list[str]:
        return [self.name]

    def replicate(
        self, cluster: object, method: object, backups: object, params: object, wait: object
    ) -> bool:
        """``jubako.replicate`` as a primary takes it (the backups are not called here)."""
        self.replicated.append(method)
        return True

    async def lookup(self, key: str) -> str:
        """Slow on server a: its replica b answers first."""
        if self.name == "a":
            await asyncio.sleep(2)
        return f"{self.name}:{key}"

    async def sleep(self, seconds: float) -> bool:
        await asyncio.sleep(seconds)
        return True


def _server(store: Store) -> RpcServer:
    handlers = {
        "get": Handler(store.get, LockMode.ANALYSIS, GET.args, GET.result),
        "put": Handler(store.put, LockMode.UPDATE, PUT.args, PUT.result),
        "sleep": Handler(store.sleep, LockMode.NOLOCK, SLEEP.args, SLEEP.result),
        "lookup": Handler(store.lookup, LockMode.NOLOCK, LOOKUP.args, LOOKUP.result),
        "store": Handler(store.put, LockMode.UPDATE, STORE.args, STORE.result),
        "whoami": Handler(store.whoami, LockMode.ANALYSIS, WHOAMI.args, WHOAMI.result),
        "jubako.replicate": Handler(
            store.replicate, LockMode.NOLOCK, (t.Object(),) * 5, t.Object(),
            takes_cluster_name=False,
        ),
    }
    return RpcServer(Dispatcher(handlers), "127.0.0.1", 0)


class FixedView:
    """A cluster whose ring order is the list given."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.failed: list[Node] = []

    def actives(self) -> list[Node]:
        return list(self.nodes)

    def replicas(self, key: str | bytes, count: int) -> list[Node]:
        return self.nodes[:count]

    def readers(self, key: str | bytes, count: int) -> list[Node]:
        return self.nodes[:count]

    def mark_failed(self, node: Node) -> None:
        self.failed.append(node)

    #: Plain fan-out writes: these test servers have no ``jubako.replicate``.
    ordered = False

    def members(self) -> list[Node]:
        return list(self.nodes)

    def writers(self, key: str | bytes, count: int) -> tuple[Node | None, list[Node], list[Node]]:
        chosen = self.nodes[:count]
        return chosen[0], chosen[1:], []

    def not_up(self) -> list[tuple[Node, str]]:
        return []

    def missed_write(self, node: Node) -> None:
        pass


class OrderedView(FixedView):
    """Cht writes go to the first replica not marked failed, which orders them."""

    ordered = True

    def writers(self, key: str | bytes, count: int) -> tuple[Node | None, list[Node], list[Node]]:
        chosen = self.nodes[:count]
        up = [node for node in chosen if node not in self.failed]
        missing = [node for node in chosen if node in self.failed]
        return (up[0] if up else None), up[1:], missing


Cluster = tuple[list[RpcServer], list[Store], FixedView, Forwarder, ClientPool]


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[Cluster]:
    stores = [Store("a"), Store("b")]
    servers = [_server(s) for s in stores]
    for server in servers:
        await server.start()
    view = FixedView([("127.0.0.1", s.port) for s in servers])
    pool = ClientPool(timeout=5)
    routes = [
        Route(GET, Routing.CHT, LockMode.ANALYSIS, "pass", replicas=2),
        Route(PUT, Routing.RANDOM, LockMode.UPDATE, "pass"),
        Route(SLEEP, Routing.RANDOM, LockMode.ANALYSIS, "pass"),
        Route(LOOKUP, Routing.CHT, LockMode.ANALYSIS, "pass", replicas=2),
        Route(STORE, Routing.CHT, LockMode.UPDATE, "all_and", replicas=2),
        Route(WHOAMI, Routing.BROADCAST, LockMode.ANALYSIS, "concat"),
    ]

    async def clusters(name: str) -> FixedView:
        return view

    forwarder = Forwarder(routes, clusters, pool, timeout=0.5)
    yield servers, stores, view, forwarder, pool
    await pool.close()
    for server in servers:
        await server.close()


async def _start(forwarder: Forwarder, method: str, params: list[object]) -> object:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def done(error: BaseException | None, result: object) -> None:
        assert not future.done(), "done is called once"
        future.set_exception(error) if error is not None else future.set_result(result)

    forwarder.start(method, params, done)
    return await future


@pytest.mark.asyncio
async def test_relay_answers_like_forward_and_fails_over(cluster: Cluster) -> None:
    servers, _, view, forwarder, _ = cluster
    first = await _start(forwarder, "get", ["c", "k"])  # first call: the slow path connects
    assert first == b"a:k"
    assert await _start(forwarder, "get", ["c", "k"]) == b"a:k"
    relayed = forwarder.stats.forward_count
    await servers[0].close()
    assert await _start(forwarder, "get", ["c", "k"]) == b"b:k", "fails over to replica 2"
    assert view.failed == [view.nodes[0]]
    assert forwarder.stats.failover_count == 1
    assert forwarder.stats.forward_count == relayed + 2


@pytest.mark.asyncio
async def test_a_relayed_read_that_times_out_goes_to_the_next_replica(cluster: Cluster) -> None:
    _, _, view, forwarder, pool = cluster
    await _start(forwarder, "get", ["c", "k"])  # learn the view
    for host, port in view.nodes:  # open both connections: the relay path only
        await pool.call(host, port, "get", ["c", "warm"])
    relayed = forwarder.stats.request_count
    assert await _start(forwarder, "lookup", ["c", "k"]) == b"b:k"
    assert forwarder.stats.failover_count == 1 and view.failed == [view.nodes[0]]
    assert forwarder.stats.request_count == relayed + 1


@pytest.mark.asyncio
async def test_relay_passes_remote_errors_without_retrying(cluster: Cluster) -> None:
    _, _, view, forwarder, _ = cluster
    await _start(forwarder, "get", ["c", "k"])
    with pytest.raises(ForwardError) as caught:
        await _start(forwarder, "get", ["c", "boom"])
    assert "KeyError" in str(caught.value.wire_error)
    assert view.failed == [] and forwarder.stats.failover_count == 0


@pytest.mark.asyncio
async def test_relayed_updates_are_not_retried(cluster: Cluster) -> None:
    servers, stores, _, forwarder, _ = cluster
    await _start(forwarder, "put", ["c", "k", "v"])
    for server in servers:
        await server.close()
    with pytest.raises(ForwardError, match="connect error in proxy"):
        await _start(forwarder, "put", ["c", "k", "v"])
    assert sum(s.puts for s in stores) == 1


@pytest.mark.asyncio
async def test_call_soon_needs_a_connection_and_reports_every_outcome(cluster: Cluster) -> None:
    servers, _, _, _, _ = cluster
    client = AsyncClient("127.0.0.1", servers[0].port, timeout=5)
    outcomes: list[tuple[RPCError | None, object]] = []
    assert client.call_soon("get", ["c", "k"], lambda e, r: outcomes.append((e, r))) is False
    assert await client.call("get", ["c", "k"]) == b"a:k"
    got = asyncio.Event()

    def record(error: RPCError | None, result: object) -> None:
        outcomes.append((error, result))
        got.set()

    for method, params, timeout in (
        ("get", ["c", "k"], 5.0),
        ("get", ["c", "boom"], 5.0),
        ("sleep", ["c", 1.0], 0.05),
    ):
        got.clear()
        assert client.call_soon(method, params, record, timeout=timeout) is True
        await asyncio.wait_for(got.wait(), 5)
    assert outcomes[0] == (None, b"a:k")
    assert isinstance(outcomes[1][0], RemoteError)
    assert isinstance(outcomes[2][0], RPCTimeout)
    got.clear()
    assert client.call_soon("sleep", ["c", 1.0], record, timeout=5) is True
    await servers[0].close(drain_timeout=0)
    await asyncio.wait_for(got.wait(), 5)
    assert isinstance(outcomes[3][0], ConnectionLost)
    await client.close()


@pytest.mark.asyncio
async def test_call_soon_keeps_nothing_per_answered_call(cluster: Cluster) -> None:
    """Under steady load the client holds the calls in flight and one timer, not every call
    of the last ``timeout`` seconds; and the timer still fires for a call that times out."""
    servers, _, _, _, _ = cluster
    client = AsyncClient("127.0.0.1", servers[0].port, timeout=30)
    await client.call("get", ["c", "k"])
    outcomes: list[tuple[RPCError | None, object]] = []
    wave_done = asyncio.Event()

    def record(error: RPCError | None, result: object) -> None:
        outcomes.append((error, result))
        if len(outcomes) % 40 == 0:
            wave_done.set()

    for _ in range(50):  # 50 waves of 40 calls, each wave answered before the next
        wave_done.clear()
        for _ in range(40):
            assert client.call_soon("get", ["c", "k"], record)
        await asyncio.wait_for(wave_done.wait(), 5)
    assert outcomes == [(None, b"a:k")] * 2000
    assert client._pending == {}
    timers = [h for h in asyncio.get_running_loop()._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert len([h for h in timers if getattr(h, "_callback", None) == client._sweep]) == 1
    # A call with a shorter timeout than those before it still times out on time.
    late: list[tuple[RPCError | None, object]] = []
    started = time.monotonic()
    assert client.call_soon("sleep", ["c", 1.0], lambda e, r: late.append((e, r)), timeout=0.1)
    while not late:
        await asyncio.sleep(0.01)
    assert isinstance(late[0][0], RPCTimeout)
    assert time.monotonic() - started < 0.5
    await client.close()


@pytest.mark.asyncio
async def test_call_soon_joining_a_batch_that_call_started_gets_its_whole_timeout(
    cluster: Cluster,
) -> None:
    """``call`` and ``call_soon`` in one loop iteration share a write; the deadline of the
    ``call_soon`` counts from that batch, not from an older one (it used to count from the
    connection's last ``call_soon`` batch, or from 0: the call timed out at once)."""
    servers, _, _, _, _ = cluster
    client = AsyncClient("127.0.0.1", servers[0].port, timeout=30)
    await client.call("get", ["c", "k"])  # connected; no call_soon yet
    outcomes: list[tuple[RPCError | None, object]] = []
    for _ in range(2):  # a connection that never saw call_soon, then one that did
        slow = asyncio.ensure_future(client.call("sleep", ["c", 0.2]))
        await asyncio.sleep(0)  # ``call`` has queued its request: the batch is open
        assert client.outbox, "the call's request waits for this iteration's write"
        record = lambda e, r: outcomes.append((e, r))  # noqa: E731
        assert client.call_soon("get", ["c", "k"], record, timeout=0.25)
        await slow
        while len(outcomes) < 1:
            await asyncio.sleep(0.01)
        assert outcomes.pop() == (None, b"a:k")
        await asyncio.sleep(0.3)  # the next batch starts over a timeout after this one
    await client.close()


@pytest.mark.asyncio
async def test_fan_out_folds_every_answer_in_node_order(cluster: Cluster) -> None:
    _, stores, view, forwarder, pool = cluster
    await _start(forwarder, "get", ["c", "k"])  # learn the view
    for host, port in view.nodes:
        await pool.call(host, port, "get", ["c", "warm"])
    before = forwarder.stats.forward_count
    assert await _start(forwarder, "whoami", ["c"]) == [b"a", b"b"]
    assert await _start(forwarder, "store", ["c", "k", "v"]) is True
    assert [s.puts for s in stores] == [1, 1], "an update reaches both replicas"
    assert forwarder.stats.forward_count == before + 4
    with pytest.raises(ForwardError) as caught:
        await _start(forwarder, "store", ["c", "boom", "v"])
    message = str(caught.value.wire_error)
    assert message.startswith("error occurred in 1 out of 2 requests: ")
    assert f"127.0.0.1:{view.nodes[1][1]}: KeyError" in message
    assert view.failed == [], "an error answer is not a dead server"


@pytest.mark.asyncio
async def test_fan_out_with_a_dead_member_names_it_and_reports_no_success(
    cluster: Cluster,
) -> None:
    servers, _, view, forwarder, pool = cluster
    await _start(forwarder, "get", ["c", "k"])
    for host, port in view.nodes:
        await pool.call(host, port, "get", ["c", "warm"])
    await servers[1].close()
    await asyncio.sleep(0.05)  # the pool's connection to b sees the close
    with pytest.raises(ForwardError) as caught:
        await _start(forwarder, "store", ["c", "k", "v"])
    assert f"127.0.0.1:{view.nodes[1][1]}" in str(caught.value.wire_error)
    assert "error occurred in 1 out of 2 requests" in str(caught.value.wire_error)
    assert view.failed == [view.nodes[1]]


@pytest.mark.asyncio
async def test_an_ordered_write_whose_primary_refuses_connections_goes_to_the_next_replica(
    cluster: Cluster,
) -> None:
    """The key's primary died a moment ago and no probe has marked it down yet: nothing
    was sent to it, so the next replica takes the write, and the answer names the replica
    it missed (all-or-error) instead of a bare connect error with the write applied nowhere."""
    servers, stores, fixed, forwarder, _ = cluster
    view = OrderedView(fixed.nodes)

    async def clusters(name: str) -> OrderedView:
        return view

    forwarder.clusters = clusters
    await servers[0].close()
    with pytest.raises(ForwardError) as caught:
        await _start(forwarder, "store", ["c", "k", "v"])
    a, b = (f"127.0.0.1:{port}" for _, port in view.nodes)
    assert str(caught.value.wire_error) == f"store: applied on {b}; not on {a}: down"
    assert view.failed == [view.nodes[0]]
    assert stores[1].replicated == [b"store"] and stores[0].replicated == []
    await servers[1].close()
    with pytest.raises(ForwardError, match="connect error in proxy"):  # none left to try
        await _start(forwarder, "store", ["c", "k", "v"])
    assert stores[1].replicated == [b"store"]


@pytest.mark.asyncio
async def test_closing_the_pool_under_a_relay_that_fails_over_connects_nothing(
    cluster: Cluster,
) -> None:
    """The pool closes with a relayed read in flight to server a; its failover to b (a
    server the pool has no client for) neither changes the pool under ``close`` nor opens
    a connection: the call ends with an error and no connection stays open."""
    servers, _, view, forwarder, pool = cluster
    forwarder._known["c"] = view
    a = view.nodes[0]
    await pool.call(*a, "get", ["c", "warm"])  # a connected pool client for a only
    outcome: asyncio.Future[tuple[BaseException | None, object]] = (
        asyncio.get_running_loop().create_future()
    )
    forwarder.start("lookup", ["c", "k"], lambda e, r: outcome.set_result((e, r)))
    await asyncio.sleep(0.05)  # relayed to a, which takes 2 s
    await pool.close()
    error, result = await asyncio.wait_for(outcome, 3)
    assert isinstance(error, ForwardError) and result is None
    await asyncio.sleep(0.1)
    assert len(servers[1].connections) == 0
    # a's end of the closed connection stays until a has answered the call it runs.
    deadline = time.monotonic() + 3
    while servers[0].connections and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(servers[0].connections) == 0
