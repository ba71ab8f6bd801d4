"""The proxy's forwarding logic: pick servers by route, call them, fold the answers.

A :class:`Forwarder` serves every cluster name of one service type. For each call it looks
up the method's :class:`~runtime.proxy.routing.Route`, asks the cluster's
:class:`ClusterView` which servers to use, forwards the parameters unchanged (cluster name
included) through a connection pool, and folds the answers with the route's aggregator.

The rules, chosen to be honest and deterministic:

- ``random``: one up-to-date server chosen at random. ``cht(n)``: the ``n`` distinct
  servers after the key (the first argument) on the ring. ``broadcast``: every up-to-date
  server. Answers fold in ring/member order, never arrival order, so ``pass`` is the
  first replica's answer.
- An ``analysis`` call that reaches only one server (``random``, or ``cht`` with ``pass``)
  fails over: when its server cannot be reached or times out, the next replica (or another
  random server) is tried. A server that answers with an error is not retried: the error is
  the answer.
- Everything else (updates, ``nolock`` calls, broadcasts, ``cht`` folds) is all-or-error:
  if any server fails, the client gets an error naming each failed server and why, never
  a partial result reported as success.
- A server that cannot be reached or times out is reported to the cluster view
  (``mark_failed``): for a while, random calls skip it and ``cht`` reads try it last
  (``readers``), so they stop waiting on it; ``pass`` is then the first live replica's
  answer, which failover would have given anyway. Writes still go to it and fail, naming
  it. ZooKeeper membership drops it when its session ends.

Two ways in: ``await forward(...)`` and ``start(..., done)``. ``start`` relays a call that
goes to one server (the failover cases above) without a task or a future when a connection
to that server is open: the request goes out at once and the reply, or the next
candidate's, is handed to ``done``. Anything else runs ``forward`` as a task. Both follow
the same rules.

This module does no socket I/O of its own beyond the pool and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.errors import (
    ConnectError,
    ConnectionLost,
    RemoteError,
    RPCError,
    RPCTimeout,
    TypeMismatch,
    UnknownMethod,
)
from runtime.proxy.aggregators import AGGREGATORS
from runtime.proxy.routing import Route, Routing
from runtime.rpc.client import AsyncClient, ReplyCallback
from runtime.rpc.locks import LockMode
from runtime.wire.types import text_param

log = logging.getLogger(__name__)

#: A server as ``(host, port)``.
Node = tuple[str, int]

#: Cluster names a forwarder remembers their views by, and the longest it remembers.
KNOWN_NAMES = 1024
KNOWN_NAME_BYTES = 256
_CHT = Routing.CHT  # a module constant: an enum member looked up on its class costs more

_TRANSPORT_ERRORS = (ConnectError, ConnectionLost, RPCTimeout, OSError, asyncio.TimeoutError)


class ClusterView(Protocol):
    """What the proxy needs to know about one cluster."""

    def actives(self) -> list[Node]:
        """Servers whose model is up to date (random and broadcast targets), sorted."""
        ...

    def replicas(self, key: str | bytes, count: int) -> Sequence[Node]:
        """The ``count`` distinct servers after ``key`` on the consistent-hash ring.

        ``key`` is as it came off the wire (text, or bytes from old clients); a key that
        is not UTF-8 text raises :class:`TypeMismatch`. The sequence may be shared: do not
        change it."""
        ...

    def readers(self, key: str | bytes, count: int) -> Sequence[Node]:
        """:meth:`replicas` in the order a read tries them: a view may move servers it
        knows to be failing last. Shared like :meth:`replicas`."""
        ...

    def mark_failed(self, node: Node) -> None:
        """``node`` could not be reached; skip it for a while if the view can."""
        ...

    #: Whether cht writes go to the key's primary, which orders them (``jubako.replicate``).
    ordered: bool

    def members(self) -> list[Node]:
        """Every server of the cluster, up or not."""
        ...

    def writers(self, key: str | bytes, count: int) -> tuple[Node | None, list[Node], list[Node]]:
        """``(primary, backups, missing)`` of a write to ``key``: the replica that orders the
        key's writes (None when none is up), the others it passes them to, and the ones a
        write cannot reach (down)."""
        ...

    def not_up(self) -> list[tuple[Node, str]]:
        """The servers that are down or catching up, with their state as shown."""
        ...

    def missed_write(self, node: Node) -> None:
        """A write did not reach ``node``: it needs a repair when it is back."""
        ...


class Caller(Protocol):
    """The pool the forwarder calls through."""

    async def call(
        self, host: str, port: int, method: str, params: Sequence[object], *, timeout: float
    ) -> object: ...

    def client(self, host: str, port: int) -> AsyncClient: ...


#: How :meth:`Forwarder.start` reports: ``done(None, result)`` or ``done(error, None)``,
#: the error being a :class:`ForwardError` (or what ``forward`` raised).
Done = Callable[[BaseException | None, object], None]

#: How calls of one method start: ``starter(params, done)`` (see :meth:`Forwarder.starter`).
Starter = Callable[[list[Any], Done], None]


@dataclass
class ProxyStats:
    """Counters reported by ``get_proxy_status``."""

    started: float = field(default_factory=time.time)
    request_count: int = 0
    forward_count: int = 0
    error_count: int = 0
    failover_count: int = 0


#: The share of the proxy's ``--timeout`` a primary may wait for a write's backups.
BACKUP_SHARE = 0.8

class ForwardError(RPCError):
    """A forwarded call failed; ``wire_error`` is the error value the client receives, and
    ``wire_result`` what the reply carries beside it (a declared exception's fields)."""

    def __init__(self, wire_error: object, wire_result: object = None) -> None:
        super().__init__(str(wire_error))
        self.wire_error = wire_error
        self.wire_result = wire_result


def node_name(node: Node) -> str:
    return f"{node[0]}:{node[1]}"


def _reason(error: BaseException) -> str:
    if isinstance(error, RPCTimeout | asyncio.TimeoutError):
        return "timeout error in proxy"
    if isinstance(error, ConnectError | ConnectionLost | OSError):
        return "connect error in proxy"
    if isinstance(error, UnknownMethod):
        return "unknown method"
    if isinstance(error, TypeMismatch):
        return "type mismatch"
    return str(error)


def _passed_on(error: BaseException) -> ForwardError:
    """A single server's error answer, as the proxy passes it on."""
    if isinstance(error, UnknownMethod):
        return ForwardError(1)
    if isinstance(error, TypeMismatch):
        return ForwardError(2)
    if isinstance(error, RemoteError):
        return ForwardError(error.message, error.result)
    return ForwardError(_reason(error))


class Forwarder:
    """Forwards calls of one service type to the servers of the named cluster."""

    def __init__(
        self,
        routes: Sequence[Route],
        clusters: Callable[[str], Awaitable[ClusterView]],
        caller: Caller,
        *,
        timeout: float,
        rng: random.Random | None = None,
    ) -> None:
        self.routes = {r.name: r for r in routes if r.routing is not Routing.INTERNAL}
        self.clusters = clusters
        self.caller = caller
        self.timeout = timeout
        self.rng = rng or random.Random()
        self.stats = ProxyStats()
        #: Views already resolved, by the cluster name as it came off the wire (``str`` or
        #: ``bytes``): at most :data:`KNOWN_NAMES` names of at most :data:`KNOWN_NAME_BYTES`
        #: bytes (a longer one takes the slow way each time).
        self._known: dict[str | bytes, ClusterView] = {}
        self._on_relay_error = self._relay_failed  # bound once: relays pass it on every call
        #: How each method's calls start (see :meth:`starter`), made once per route.
        self._starters: dict[str, Starter] = {}
        for name, r in self.routes.items():
            if _fails_over(r) or r.routing is Routing.RANDOM:
                self._starters[name] = self._relay_starter(r)
            elif _ordered_write(r):
                self._starters[name] = functools.partial(self._start_ordered, r)
            else:
                self._starters[name] = functools.partial(self._start_fan_out, r)

    def start(self, method: str, params: list[Any], done: Done) -> None:
        """Forward like :meth:`forward`; report through ``done`` (see the module docstring)."""
        self._starters[method](params, done)

    def starter(self, method: str) -> Starter:
        """``start`` for one method, ``starter(method)(params, done)``: what a proxy's
        server calls for every call of ``method``."""
        return self._starters[method]

    def _relay_starter(self, route: Route) -> Starter:
        """How a call of ``route`` (a single-server one) starts: it goes to its first
        candidate over an open connection, with everything each call needs bound here;
        what cannot be relayed so (an unknown cluster name, no server, a key that is not
        text, no open connection) takes the slow way, through ``forward``.

        Nothing is allocated for failing over: the answer goes straight to ``done``, and a
        failure to :meth:`_relay_failed` (one bound method for every call), which works out
        the other candidates only then.
        """
        known, stats, timeout = self._known, self.stats, self.timeout
        client_for, on_error, choice = self.caller.client, self._on_relay_error, self.rng.choice
        method, count, cht = route.name, route.replicas, route.routing is _CHT

        def relay(params: list[Any], done: Done) -> None:
            try:
                view = known[params[0]]
                if cht:  # a read with ``pass``: the first replica
                    first = view.readers(params[1] if len(params) > 1 else "", count)[0]
                else:  # random: any up-to-date server
                    first = choice(view.actives())
            except (LookupError, TypeError):  # no view yet, no server, a name or key not text
                self._start_slowly(method, params, done)
                return
            if client_for(first[0], first[1]).call_soon(
                method, params, done, timeout=timeout, on_error=on_error
            ):
                stats.request_count += 1
                stats.forward_count += 1
            else:  # no open connection: ``forward`` connects
                self._start_slowly(method, params, done)

        return relay

    def _start_fan_out(self, route: Route, params: list[Any], done: Done) -> None:
        """How a call to several servers starts: sent to every target over open
        connections (:class:`_FanOut`), else the slow way."""
        try:
            view = self._known.get(params[0])
        except (IndexError, TypeError):  # no cluster name, or not even hashable
            view = None
        if view is None or not self._fan_out(route, view, params, done):
            self._start_slowly(route.name, params, done)

    def _start_ordered(self, route: Route, params: list[Any], done: Done) -> None:
        """How a cht write starts: to the key's primary over an open connection (it passes
        the write on to the other replicas, in its order), else the slow way; to every
        replica at once when the cluster's servers cannot order writes."""
        try:
            view = self._known.get(params[0])
        except (IndexError, TypeError):  # no cluster name, or not even hashable
            view = None
        if view is None:
            self._start_slowly(route.name, params, done)
            return
        if not view.ordered:
            self._start_fan_out(route, params, done)
            return
        try:
            primary, backups, missing = view.writers(params[1], route.replicas)
        except (IndexError, TypeMismatch):  # no key, or not text: forward explains
            self._start_slowly(route.name, params, done)
            return
        if primary is None:
            self._start_slowly(route.name, params, done)
            return
        client = self.caller.client(*primary)
        write = _OrderedWrite(self, route, view, primary, backups, missing, params, done)
        if not client.call_soon(
            "jubako.replicate", write.request(), write.answer, timeout=self.timeout
        ):
            self._start_slowly(route.name, params, done)
            return
        self.stats.request_count += 1
        self.stats.forward_count += 1

    async def _ordered(self, route: Route, view: ClusterView, params: list[Any]) -> object:
        """A cht write through the key's primary (see :meth:`_start_ordered`)."""
        key = params[1] if len(params) > 1 else ""
        failure: ForwardError | None = None
        tried: list[Node] = []
        while True:
            primary, backups, missing = view.writers(key, route.replicas)
            if failure is not None and (primary is None or primary in tried):
                raise failure
            if primary is None:
                raise ForwardError(
                    f"{route.name}: no replica of this key is up to take it "
                    f"({_states(view.not_up())})"
                )
            tried.append(primary)
            write = _OrderedWrite(self, route, view, primary, backups, missing, params, _ignore)
            self.stats.forward_count += 1
            try:
                host, port = primary
                result = await self.caller.call(
                    host, port, "jubako.replicate", write.request(), timeout=self.timeout
                )
            except UnknownMethod:  # servers that cannot order writes: to every replica
                view.ordered = False
                nodes = view.replicas(params[1], route.replicas)
                return await self._all(route, view, nodes, params)
            except ConnectError as error:
                # Nothing was sent: the primary is marked down and the next replica up
                # takes the key's writes (a primary that died a moment ago, before a probe
                # marked it down).
                failure = write.failure(error)
                continue
            except RPCError as error:
                raise write.failure(error) from None
            write.check_missing()
            return result

    def _start_slowly(self, method: str, params: list[Any], done: Done) -> None:
        """Run :meth:`forward` as a task and report its outcome through ``done``."""
        task = asyncio.ensure_future(self.forward(method, params))
        task.add_done_callback(lambda t: _report(t, done))

    def _targets(self, route: Route, view: ClusterView, params: list[Any]) -> Sequence[Node] | None:
        """The servers of a call as ``forward`` picks them; None to let ``forward`` explain."""
        if route.routing is _CHT:
            find = view.readers if _fails_over(route) else view.replicas
            try:
                nodes = find(params[1] if len(params) > 1 else "", route.replicas)
            except TypeMismatch:  # not a text key
                return None
        else:
            nodes = view.actives()
        return nodes or None

    def _fan_out(self, route: Route, view: ClusterView, params: list[Any], done: Done) -> bool:
        """Send to every target over open connections; False to take the slow way."""
        if route.routing is Routing.BROADCAST:
            if route.name == "save":
                return False  # the slow way says which servers saved and which did not
            try:
                _check_whole(route, view)
            except ForwardError as refused:
                self.stats.request_count += 1
                self.stats.error_count += 1
                done(refused, None)
                return True
        nodes = self._targets(route, view, params)
        if nodes is None:
            return False
        clients = [self.caller.client(*node) for node in nodes]
        if not all(client.connected for client in clients):
            return False
        self.stats.request_count += 1
        _FanOut(self, route, view, nodes, done).send(clients, params)
        return True

    def _relay_failed(
        self,
        error: RPCError,
        node: Node,
        method: str,
        params: Sequence[object],
        callback: ReplyCallback,
    ) -> None:
        """A relayed call's first server failed: the rest of the candidates, as ``forward``
        orders them (the ring's order for cht, a shuffle for random), are tried in turn by
        a :class:`_Relay`; an update sent by ``random`` is not retried."""
        route = self.routes[method]
        wire_params = list(params)
        view = self._known.get(typing.cast(str | bytes, wire_params[0]))
        done = typing.cast(Done, callback)  # what _relay passed: a Done
        if view is None:  # forgotten since the call started: the slow way tries them all
            self._start_slowly(method, wire_params, done)
            return
        others = [n for n in self._targets(route, view, wire_params) or () if n != node]
        if route.routing is not Routing.CHT:
            others = self._shuffled(others) if _fails_over(route) else []
        _Relay(self, route, view, [node, *others], wire_params, done).reply(error, None)

    async def forward(self, method: str, params: list[Any]) -> object:
        """Forward ``method`` with wire ``params`` (cluster name first); returns the folded
        wire result or raises :class:`ForwardError` carrying the error for the client."""
        self.stats.request_count += 1
        route = self.routes[method]
        name = text_param(params[0], "cluster name")
        view = await self.clusters(name)
        self._remember(params[0], view)
        try:
            if route.routing is Routing.CHT:
                key = text_param(params[1], "key") if len(params) > 1 else ""
                if _ordered_write(route) and view.ordered:
                    return await self._ordered(route, view, params)
                find = view.readers if _fails_over(route) else view.replicas
                nodes = find(key, route.replicas)
            else:
                nodes = view.actives()
                if route.routing is Routing.BROADCAST:
                    if route.name == "save":
                        return await self._save(route, view, nodes, params)
                    _check_whole(route, view)
            if not nodes:
                raise ForwardError(f"no server found: {name}")
            if route.routing is Routing.RANDOM:
                return await self._one(route, view, self._shuffled(nodes), params)
            if route.routing is Routing.CHT and _fails_over(route):
                return await self._one(route, view, nodes, params)
            return await self._all(route, view, nodes, params)
        except ForwardError:
            self.stats.error_count += 1
            raise

    def _remember(self, raw_name: str | bytes, view: ClusterView) -> None:
        """Keep ``view`` for calls naming ``raw_name`` (as sent: bytes from old clients)."""
        if len(raw_name) > KNOWN_NAME_BYTES:
            return
        if len(self._known) >= KNOWN_NAMES:
            self._known.clear()  # the views stay; names are found again on the slow way
        self._known[raw_name] = view

    def forget(self) -> None:
        """Drop every remembered name (a view went away)."""
        self._known.clear()

    def _shuffled(self, nodes: Sequence[Node]) -> list[Node]:
        order = list(nodes)
        self.rng.shuffle(order)
        return order

    async def _call(self, node: Node, method: str, params: list[Any]) -> object:
        self.stats.forward_count += 1
        return await self.caller.call(node[0], node[1], method, params, timeout=self.timeout)

    async def _one(
        self, route: Route, view: ClusterView, candidates: Sequence[Node], params: list[Any]
    ) -> object:
        """Call one server; analysis calls fail over to the next candidate on a transport error."""
        tries = candidates if _fails_over(route) else candidates[:1]
        failures: list[str] = []
        for attempt, node in enumerate(tries):
            if attempt:
                self.stats.failover_count += 1
            try:
                return await self._call(node, route.name, params)
            except _TRANSPORT_ERRORS as error:
                view.mark_failed(node)
                failures.append(f"{node_name(node)}: {_reason(error)}")
                log.warning("%s to %s failed: %s", route.name, node_name(node), _reason(error))
            except RPCError as error:
                raise _passed_on(error) from None
        raise ForwardError(_summary(len(failures), len(tries), failures))

    async def _save(
        self, route: Route, view: ClusterView, nodes: Sequence[Node], params: list[Any]
    ) -> object:
        """``save`` on every server that is up; when any did not save (down, catching up,
        or its save failed), ForwardError naming each, with the files written so far as
        the error's result (``{server: path}``)."""
        not_up = dict(view.not_up())
        reached = [node for node in nodes if node not in not_up]
        outcomes = await asyncio.gather(
            *(self._call(node, route.name, params) for node in reached), return_exceptions=True
        )
        saved: list[object] = []
        failures = [f"{node_name(node)}: {state}" for node, state in sorted(not_up.items())]
        for node, outcome in zip(reached, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, _TRANSPORT_ERRORS):
                    view.mark_failed(node)
                failures.append(f"{node_name(node)}: {_reason(outcome)}")
            else:
                saved.append(outcome)
        files = AGGREGATORS[route.aggregator](saved) if saved else {}
        if not failures:
            return files
        where = ", ".join(node_name(node) for node, o in zip(reached, outcomes, strict=True)
                          if not isinstance(o, BaseException)) or "none"  # fmt: skip
        message = f"save: not saved on {'; '.join(failures)} (saved on {where})"
        log.warning("%s", message)
        raise ForwardError(message, files)

    async def _all(
        self, route: Route, view: ClusterView, nodes: Sequence[Node], params: list[Any]
    ) -> object:
        """Call every node; all must answer, then fold in node order."""
        outcomes = await asyncio.gather(
            *(self._call(node, route.name, params) for node in nodes), return_exceptions=True
        )
        return _fold_all(route, view, nodes, outcomes)


def _fold_all(
    route: Route, view: ClusterView, nodes: Sequence[Node], outcomes: Sequence[object]
) -> object:
    """Every answer folded in node order, or ForwardError naming each server that failed."""
    failures: list[str] = []
    remote: list[BaseException] = []
    results: list[object] = []
    for node, outcome in zip(nodes, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if isinstance(outcome, _TRANSPORT_ERRORS):
                view.mark_failed(node)
            else:
                remote.append(outcome)
            failures.append(f"{node_name(node)}: {_reason(outcome)}")
        else:
            results.append(outcome)
    if failures:
        log.warning("%s: %s", route.name, _summary(len(failures), len(nodes), failures))
        if len(nodes) == 1 and remote:
            raise _passed_on(remote[0])
        raise ForwardError(_summary(len(failures), len(nodes), failures))
    return AGGREGATORS[route.aggregator](results)


class _FanOut:
    """One call relayed to several servers: every answer is awaited by a countdown, then
    folded as ``forward`` folds them; reports once through ``done``."""

    __slots__ = ("done", "forwarder", "left", "nodes", "outcomes", "route", "view")

    def __init__(
        self,
        forwarder: Forwarder,
        route: Route,
        view: ClusterView,
        nodes: Sequence[Node],
        done: Done,
    ) -> None:
        self.forwarder = forwarder
        self.route = route
        self.view = view
        self.nodes = nodes
        self.done = done
        self.outcomes: list[object] = [None] * len(nodes)
        self.left = len(nodes)

    def send(self, clients: list[AsyncClient], params: list[Any]) -> None:
        timeout = self.forwarder.timeout
        for index, client in enumerate(clients):
            self.forwarder.stats.forward_count += 1
            answer = functools.partial(self._answer, index)
            if not client.call_soon(self.route.name, params, answer, timeout=timeout):
                answer(ConnectionLost("connection closed"), None)

    def _answer(self, index: int, error: RPCError | None, result: object) -> None:
        self.outcomes[index] = error if error is not None else result
        self.left -= 1
        if self.left:
            return
        try:
            folded = _fold_all(self.route, self.view, self.nodes, self.outcomes)
        except ForwardError as failure:
            self.forwarder.stats.error_count += 1
            self.done(failure, None)
        except Exception as failure:  # an aggregator that cannot fold these answers
            self.forwarder.stats.error_count += 1
            self.done(ForwardError(f"{self.route.name}: cannot fold the answers: {failure}"), None)
        else:
            self.done(None, folded)


class _Relay:
    """One relayed call: tries its candidates in order, reports once through ``done``."""

    __slots__ = ("attempt", "done", "failures", "forwarder", "params", "route", "tries", "view")

    def __init__(
        self,
        forwarder: Forwarder,
        route: Route,
        view: ClusterView,
        tries: list[Node],
        params: list[Any],
        done: Done,
    ) -> None:
        self.forwarder = forwarder
        self.route = route
        self.view = view
        self.tries = tries
        self.params = params
        self.done = done
        self.attempt = 0
        self.failures: list[str] = []

    def send(self, client: AsyncClient) -> None:
        self.forwarder.stats.forward_count += 1
        timeout = self.forwarder.timeout
        if not client.call_soon(self.route.name, self.params, self.reply, timeout=timeout):
            self.reply(ConnectionLost("connection closed"), None)

    def reply(self, error: RPCError | None, result: object) -> None:
        """The current candidate's answer: pass it on, or try the next candidate."""
        if error is None:
            self.done(None, result)
            return
        node = self.tries[self.attempt]
        if not isinstance(error, _TRANSPORT_ERRORS):
            self._fail(_passed_on(error))
            return
        self.view.mark_failed(node)
        self.failures.append(f"{node_name(node)}: {_reason(error)}")
        log.warning("%s to %s failed: %s", self.route.name, node_name(node), _reason(error))
        self.attempt += 1
        if self.attempt >= len(self.tries):
            self._fail(ForwardError(_summary(len(self.failures), len(self.tries), self.failures)))
            return
        self.forwarder.stats.failover_count += 1
        node = self.tries[self.attempt]
        client = self.forwarder.caller.client(*node)
        if client.connected:
            self.send(client)
            return
        # No open connection to the next candidate: connect on the slow path.
        task = asyncio.ensure_future(
            self.forwarder.caller.call(
                node[0], node[1], self.route.name, self.params, timeout=self.forwarder.timeout
            )
        )
        self.forwarder.stats.forward_count += 1
        task.add_done_callback(self._connected_reply)

    def _connected_reply(self, task: asyncio.Future[object]) -> None:
        if task.cancelled():
            self._fail(ForwardError("cancelled: the proxy is shutting down"))
            return
        error = task.exception()
        if error is None:
            self.done(None, task.result())
        elif isinstance(error, RPCError):
            self.reply(error, None)
        else:
            self.reply(ConnectionLost(str(error)), None)

    def _fail(self, error: ForwardError) -> None:
        self.forwarder.stats.error_count += 1
        self.done(error, None)


def _report(task: asyncio.Future[object], done: Done) -> None:
    if task.cancelled():
        done(ForwardError("cancelled: the proxy is shutting down"), None)
        return
    error = task.exception()
    done(error, None) if error is not None else done(None, task.result())


def _ordered_write(route: Route) -> bool:
    """A cht write: it goes to the key's primary, which orders the key's writes."""
    return route.routing is _CHT and route.lock is LockMode.UPDATE


def _check_whole(route: Route, view: ClusterView) -> None:
    """A broadcast that writes (``load`` too) needs every server of the cluster:
    ForwardError naming those down or catching up, and nothing is sent."""
    if route.lock is not LockMode.UPDATE:
        return
    missing = view.not_up()
    if missing:
        raise ForwardError(
            f"{route.name}: not sent: it needs every server of the cluster, and {_states(missing)}"
        )


def _states(nodes: Sequence[tuple[Node, str]]) -> str:
    return "; ".join(f"{node_name(node)} is {state}" for node, state in nodes) or "none is up"


def _ignore(error: BaseException | None, result: object) -> None:
    """A ``done`` that nobody waits for (the slow way raises instead)."""


class _OrderedWrite:
    """One cht write sent to its primary; reports once through ``done``."""

    __slots__ = ("backups", "done", "forwarder", "missing", "params", "primary", "route", "view")

    def __init__(
        self,
        forwarder: Forwarder,
        route: Route,
        view: ClusterView,
        primary: Node,
        backups: list[Node],
        missing: list[Node],
        params: list[Any],
        done: Done,
    ) -> None:
        self.forwarder = forwarder
        self.route = route
        self.view = view
        self.primary = primary
        self.backups = backups
        self.missing = missing
        self.params = params
        self.done = done

    def request(self) -> list[object]:
        """``jubako.replicate``'s params: cluster name, method, backups, the call's params,
        and how long the primary may wait for the backups: less than this proxy waits for
        the primary, so a silent backup is named in the answer (and repaired) instead of
        the primary timing out."""
        backups = [node_name(node) for node in self.backups]
        wait = BACKUP_SHARE * self.forwarder.timeout
        return [self.params[0], self.route.name, backups, self.params, wait]

    def answer(self, error: RPCError | None, result: object) -> None:
        if error is None:
            try:
                self.check_missing()
            except ForwardError as failure:
                self.forwarder.stats.error_count += 1
                self.done(failure, None)
                return
            self.done(None, result)
        elif isinstance(error, UnknownMethod):  # servers that cannot order writes
            self.view.ordered = False
            self.forwarder._start_fan_out(self.route, self.params, self.done)
        else:
            self.forwarder.stats.error_count += 1
            self.done(self.failure(error), None)

    def failure(self, error: RPCError) -> ForwardError:
        """What the client gets when the primary failed or said a replica did not take it."""
        if isinstance(error, _TRANSPORT_ERRORS):
            self.view.mark_failed(self.primary)
            return ForwardError(f"{self.route.name}: {node_name(self.primary)}: {_reason(error)}")
        if isinstance(error, RemoteError) and isinstance(error.result, list):
            for entry in error.result:  # the replicas that did not take it
                text = entry.decode("utf-8", "replace") if isinstance(entry, bytes) else str(entry)
                host, _, port = text.rpartition(":")
                if port.isdigit():
                    self.view.missed_write((host, int(port)))
        return _passed_on(error)

    def check_missing(self) -> None:
        """Applied where it could be: ForwardError when a replica is down (all-or-error),
        and that replica is repaired when it is back."""
        if not self.missing:
            return
        for node in self.missing:
            self.view.missed_write(node)
        reached = ", ".join(node_name(n) for n in (self.primary, *self.backups))
        states = dict(self.view.not_up())
        absent = "; ".join(f"{node_name(n)}: {states.get(n, 'down')}" for n in self.missing)
        raise ForwardError(f"{self.route.name}: applied on {reached}; not on {absent}")


def _fails_over(route: Route) -> bool:
    """Only reads that need one answer may be retried elsewhere."""
    return route.lock is LockMode.ANALYSIS and (
        route.routing is Routing.RANDOM or route.aggregator == "pass"
    )


def _summary(failed: int, total: int, failures: list[str]) -> str:
    return f"error occurred in {failed} out of {total} requests: " + "; ".join(failures)
