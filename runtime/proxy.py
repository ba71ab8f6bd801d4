"""The proxy's forwarding logic: pick servers by route, call them, fold the answers.

A :class:`Forwarder` serves every cluster name of one service type. For each call it looks
up the method's :class:`~runtime.routing.Route`, asks the cluster's
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
- A server that cannot be reached is reported to the cluster view (``mark_failed``) so
  static membership can skip it for a while; ZooKeeper membership drops it when its
  session ends.

This module does no socket I/O of its own beyond the pool and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtime.aggregators import AGGREGATORS
from runtime.errors import (
    ConnectError,
    ConnectionLost,
    RemoteError,
    RPCError,
    RPCTimeout,
    TypeMismatch,
    UnknownMethod,
)
from runtime.locks import LockMode
from runtime.routing import Route, Routing

log = logging.getLogger(__name__)

#: A server as ``(host, port)``.
Node = tuple[str, int]

_TRANSPORT_ERRORS = (ConnectError, ConnectionLost, RPCTimeout, OSError, asyncio.TimeoutError)


class ClusterView(Protocol):
    """What the proxy needs to know about one cluster."""

    def actives(self) -> list[Node]:
        """Servers whose model is up to date (random and broadcast targets), sorted."""
        ...

    def replicas(self, key: str, count: int) -> list[Node]:
        """The ``count`` distinct servers after ``key`` on the consistent-hash ring."""
        ...

    def mark_failed(self, node: Node) -> None:
        """``node`` could not be reached; skip it for a while if the view can."""
        ...


class Caller(Protocol):
    """The pool the forwarder calls through."""

    async def call(
        self, host: str, port: int, method: str, params: Sequence[object], *, timeout: float
    ) -> object: ...


@dataclass
class ProxyStats:
    """Counters reported by ``get_proxy_status``."""

    started: float = field(default_factory=time.time)
    request_count: int = 0
    forward_count: int = 0
    error_count: int = 0
    failover_count: int = 0


class ForwardError(RPCError):
    """A forwarded call failed; ``wire_error`` is the error value the client receives."""

    def __init__(self, wire_error: object) -> None:
        super().__init__(str(wire_error))
        self.wire_error = wire_error


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


def _wire_error_of(error: BaseException) -> object:
    """The error value to pass on for a single server's error answer."""
    if isinstance(error, UnknownMethod):
        return 1
    if isinstance(error, TypeMismatch):
        return 2
    if isinstance(error, RemoteError):
        return error.message
    return _reason(error)


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

    async def forward(self, method: str, params: list[Any]) -> object:
        """Forward ``method`` with wire ``params`` (cluster name first); returns the folded
        wire result or raises :class:`ForwardError` carrying the error for the client."""
        self.stats.request_count += 1
        route = self.routes[method]
        name = _text(params[0], "cluster name")
        view = await self.clusters(name)
        try:
            if route.routing is Routing.CHT:
                key = _text(params[1], "key") if len(params) > 1 else ""
                nodes = view.replicas(key, route.replicas)
            else:
                nodes = view.actives()
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

    def _shuffled(self, nodes: list[Node]) -> list[Node]:
        order = list(nodes)
        self.rng.shuffle(order)
        return order

    async def _call(self, node: Node, method: str, params: list[Any]) -> object:
        self.stats.forward_count += 1
        return await self.caller.call(node[0], node[1], method, params, timeout=self.timeout)

    async def _one(
        self, route: Route, view: ClusterView, candidates: list[Node], params: list[Any]
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
                raise ForwardError(_wire_error_of(error)) from None
        raise ForwardError(_summary(len(failures), len(tries), failures))

    async def _all(
        self, route: Route, view: ClusterView, nodes: list[Node], params: list[Any]
    ) -> object:
        """Call every node; all must answer, then fold in node order."""
        outcomes = await asyncio.gather(
            *(self._call(node, route.name, params) for node in nodes), return_exceptions=True
        )
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
                raise ForwardError(_wire_error_of(remote[0]))
            raise ForwardError(_summary(len(failures), len(nodes), failures))
        return AGGREGATORS[route.aggregator](results)


def _fails_over(route: Route) -> bool:
    """Only reads that need one answer may be retried elsewhere."""
    return route.lock is LockMode.ANALYSIS and (
        route.routing is Routing.RANDOM or route.aggregator == "pass"
    )


def _summary(failed: int, total: int, failures: list[str]) -> str:
    return f"error occurred in {failed} out of {total} requests: " + "; ".join(failures)


def _text(value: object, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise TypeMismatch(f"{what} is not valid UTF-8") from None
    if isinstance(value, str):
        return value
    raise TypeMismatch(f"{what} must be a string, not {type(value).__name__}")
