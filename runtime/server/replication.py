"""A server's part in keeping the replicas of ``cht`` keys the same: ordered writes, repair.

Proxies send a ``cht`` write to the key's *primary* (the first live replica on the ring)
as ``jubako.replicate``; the primary applies it, then sends it to the other replicas, and
answers once they all have it (or with an error naming those that do not). Writes to one
key are handled one at a time on the primary (a lock per key, held until every replica
answered), so every replica applies a key's writes in the primary's order: replicas that
saw the same writes hold the same rows, however many proxies wrote concurrently.

A server that comes back empty, or joins, is *repaired* by a proxy before it answers reads
for its keys: ``jubako.catch_up`` starts recording the keys written meanwhile,
``jubako.export`` on the other servers gives the rows it should hold (paged, in key
order; copies left from an earlier ring first, then the replicas' current ones, which
win), ``jubako.import`` stores them (a key written since catch-up began keeps what the
write left), ``jubako.prune`` removes the rows it still holds that its replicas no longer
have (deleted while it was away; only with the ``delete_rows`` hook, and only when the
ring has not changed since the replicas were last whole), and ``jubako.catch_up`` again
ends it. Export and import are the service's
hooks :meth:`~runtime.server.base.ServerBase.export_rows` and
:meth:`~runtime.server.base.ServerBase.import_rows`; a service without them answers
``jubako.export`` with nil, and its replicas are left as they are. ``jubako.ping`` tells a
proxy the server is alive and which process answers (a new one after a restart).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from runtime.cluster.cht import Ring
from runtime.errors import ClusterError, ProtocolError, TypeMismatch
from runtime.rpc.dispatch import (
    BAD_ARGUMENTS,
    Call,
    Dispatcher,
    Done,
    ErrorReply,
    Handler,
    InlinePlan,
    error_of,
)
from runtime.rpc.locks import LockMode
from runtime.rpc.pool import ClientPool
from runtime.server.base import ServerBase
from runtime.wire import types as _t
from runtime.wire.types import text_param

__all__ = ["INTERNAL_METHODS", "Replication"]

log = logging.getLogger(__name__)

#: The methods this module adds to every server (names no IDL method can have).
INTERNAL_METHODS = (
    "jubako.replicate",
    "jubako.ping",
    "jubako.export",
    "jubako.import",
    "jubako.catch_up",
    "jubako.prune",
)
#: Seconds after which a repair that never ended is forgotten (its proxy went away).
REPAIR_TTL = 600.0
#: Repairs under way at once at most (each a token; any client can begin one).
MAX_REPAIRS = 64
#: Rows one ``jubako.export`` page holds at most.
MAX_PAGE = 10_000
_ANY = _t.Object()


class ReplicationFailed(Exception):
    """A replicated write failed somewhere; ``wire_error`` is what the caller receives."""

    def __init__(self, wire_error: object, wire_result: object = None) -> None:
        super().__init__(str(wire_error))
        self.wire_error = wire_error
        self.wire_result = wire_result


class Replication:
    """The ``jubako.*`` methods of one server (see the module docstring)."""

    def __init__(
        self,
        serv: ServerBase,
        dispatcher: Callable[[], Dispatcher],
        *,
        self_id: Callable[[], str],
        timeout: float,
    ) -> None:
        self.serv = serv
        self._dispatcher = dispatcher
        self._self_id = self_id
        self.pool = ClientPool(timeout=timeout)
        self.timeout = timeout
        #: A new value each time the process starts: a proxy tells a restart by it.
        self.incarnation = secrets.token_hex(8)
        #: Keys whose last write is being replicated, with the writes waiting behind it.
        self._busy_keys: dict[object, collections.deque[_Write]] = {}
        self._backup_lists: dict[tuple[Any, ...], list[tuple[str, int]]] = {}
        self._plans: dict[str, InlinePlan | None] = {}
        #: While a proxy repairs this server: the keys written since, and by which methods.
        self._recording: set[object] | None = None
        self._recorded_methods: dict[str, Handler] = {}
        #: While a proxy repairs this server: the keys it imported.
        self._imported: set[str] = set()
        #: Repairs under way: token -> when it began (``time.monotonic``).
        self._repairers: dict[str, float] = {}

    def handlers(self) -> dict[str, Handler]:
        """The dispatch rows of the ``jubako.*`` methods."""
        return {
            "jubako.replicate": Handler(
                self.replicate,
                LockMode.NOLOCK,
                (_ANY,) * 5,
                _ANY,
                takes_cluster_name=False,
                start=self.start_replicate,
            ),
            "jubako.ping": Handler(self.ping, LockMode.NOLOCK, (), _ANY),
            "jubako.export": Handler(self.export, LockMode.ANALYSIS, (_ANY,) * 7, _ANY),
            "jubako.import": Handler(self.import_, LockMode.UPDATE, (_ANY,), _t.Bool()),
            "jubako.catch_up": Handler(self.catch_up, LockMode.NOLOCK, (_ANY, _ANY), _ANY),
            "jubako.prune": Handler(self.prune, LockMode.UPDATE, (_ANY,) * 4, _t.Int(size=8)),
        }

    async def close(self) -> None:
        await self.pool.close()

    # -- ordered writes -------------------------------------------------------------------

    async def replicate(
        self, cluster: object, method: object, backups: object, params: object, wait: object
    ) -> object:
        """:meth:`start_replicate` awaited (the general path's way to call it)."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        def done(error: BaseException | None, result: object) -> None:
            if not future.done():
                future.set_exception(error) if error is not None else future.set_result(result)

        self.start_replicate([cluster, method, backups, params, wait], done)
        return await future

    def start_replicate(self, args: list[Any], done: Done) -> None:
        """``jubako.replicate(cluster, method, backups, params, wait)``: apply ``method``
        with ``params`` (the call's wire params, the cluster name and the key first) here,
        then on ``backups`` (``"host:port"`` texts), waiting for them ``wait`` seconds at
        most (``--interconnect_timeout`` when nil or longer); ``done`` gets the method's
        wire result, or ReplicationFailed naming the replicas that did not take it.

        A key's writes run one at a time, in the order they arrived: a write to a key
        whose last write is still on its way to the backups waits for it to be answered.
        No task per write: the backups are called over open connections with callbacks.
        """
        _, method, backups, params, wait = args
        name = text_param(method, "method")
        if name.startswith("jubako.") or not isinstance(params, list) or len(params) < 2:
            raise TypeMismatch(f"jubako.replicate: cannot replicate {name!r} with these params")
        if not isinstance(backups, list):
            raise TypeMismatch("jubako.replicate: backups must be a list of HOST:PORT")
        nodes = self._nodes(backups)
        key = params[1]
        try:
            waiting = self._busy_keys.get(key)
        except TypeError:
            raise TypeMismatch("jubako.replicate: the key is not a string") from None
        timeout = self.timeout
        if isinstance(wait, int | float) and 0 < wait < timeout:
            timeout = float(wait)
        write = _Write(self, key, name, nodes, params, done, timeout)
        if waiting is not None:  # this key's last write is still being replicated
            waiting.append(write)
            return
        self._busy_keys[key] = collections.deque()
        write.apply()

    def _nodes(self, backups: list[Any]) -> list[tuple[str, int]]:
        """The backups as ``(host, port)``; the few lists a cluster sends are remembered."""
        try:
            wanted = tuple(backups)
            found = self._backup_lists.get(wanted)
        except TypeError:  # not texts: _node says what they are
            return [_node(backup) for backup in backups]
        if found is None:
            found = [_node(backup) for backup in backups]
            if len(self._backup_lists) >= 256:
                self._backup_lists.clear()
            self._backup_lists[wanted] = found
        return found

    def plan(self, name: str, dispatcher: Dispatcher) -> InlinePlan | None:
        """How ``name`` runs inline (an update method's), remembered; None when it cannot."""
        if name not in self._plans:
            found = dispatcher.inline_plan(name)
            usable = found is not None and found.lock is LockMode.UPDATE and found.start is None
            self._plans[name] = found if usable else None
        return self._plans[name]

    def _next(self, key: object) -> None:
        """A write to ``key`` has been answered: start the next one waiting, if any."""
        waiting = self._busy_keys.get(key)
        if waiting:
            waiting.popleft().apply()
        else:
            self._busy_keys.pop(key, None)

    # -- liveness -------------------------------------------------------------------------

    def ping(self) -> dict[str, str]:
        """``{"incarnation": ..., "repairs": "1" or "0", "catching_up": ...}``."""
        return {
            "incarnation": self.incarnation,
            "repairs": "1" if self.serv.exports_rows else "0",
            "catching_up": "1" if self._recording is not None else "0",
        }

    # -- repair ---------------------------------------------------------------------------

    def export(
        self,
        members: object,
        replicas: object,
        target: object,
        me: object,
        holders: object,
        after: object,
        limit: object,
    ) -> object:
        """Rows this server (``me`` on the ring) holds that ``target`` should hold, in key
        order after ``after``: ``[rows, last key]`` (``last key`` nil at the end), or nil
        when the service cannot export rows.

        A key is ``target``'s when ``target`` is among its ``replicas`` first servers on the
        ring of ``members``. With ``holders`` true, only the keys this server is a replica
        of too (current copies); with it false, only the others (copies left from an
        earlier ring: a repair imports them first, so current copies win)."""
        if not self.serv.exports_rows:
            return None
        ring = Ring(_texts(members, "members"))
        count = _count(replicas, "replicas")
        want = text_param(target, "target")
        me = text_param(me, "me")
        current = bool(holders)
        page = min(_count(limit, "limit"), MAX_PAGE)

        def owned(key: str) -> bool:
            found = ring.nodes_for(key, count)
            return want in found and (me in found) is current

        start = None if after is None else text_param(after, "after")
        rows = self.serv.export_rows(owned, start, page)
        last = rows[-1][0] if len(rows) == page else None
        return [[[key, row] for key, row in rows], last]

    def import_(self, rows: object) -> bool:
        """Store exported rows; keys written since catch-up began keep what was written."""
        if not isinstance(rows, list):
            raise TypeMismatch("jubako.import: rows must be a list of [key, row]")
        written = self._recording or set()
        kept: list[tuple[str, object]] = []
        for entry in rows:
            if not isinstance(entry, list | tuple) or len(entry) != 2:
                raise TypeMismatch("jubako.import: every row must be [key, row]")
            raw_key, row = entry
            if raw_key in written:
                continue
            kept.append((text_param(raw_key, "key"), row))
        self.serv.import_rows(kept)
        if self._recording is not None:
            self._imported.update(key for key, _ in kept)
        return True

    def prune(self, members: object, replicas: object, me: object, sources: object) -> int:
        """At the end of a repair: delete the rows this server (``me``) holds for keys that
        a live replica (``sources``) exported to it nothing for, and that nobody wrote
        since catch-up began (they were deleted while it was away). Keys with no live
        replica besides this one are kept. Returns how many rows went; 0 without the
        service's ``delete_rows`` hook."""
        if self._recording is None or not self.serv.deletes_rows:
            return 0
        ring = Ring(_texts(members, "members"))
        count = _count(replicas, "replicas")
        me = text_param(me, "me")
        live = set(_texts(sources, "sources")) - {me}
        written = self._recording
        imported = self._imported

        def stale(key: str) -> bool:
            if key in imported or key in written or key.encode("utf-8") in written:
                return False
            holders = ring.nodes_for(key, count)
            return me in holders and any(h in live for h in holders)

        gone: list[str] = []
        after: str | None = None
        while True:
            rows = self.serv.export_rows(stale, after, MAX_PAGE)
            gone.extend(key for key, _ in rows)
            if len(rows) < MAX_PAGE:
                break
            after = rows[-1][0]
        if gone:
            self.serv.delete_rows(gone)
            log.info("repair: %d rows deleted elsewhere while this server was away", len(gone))
        return len(gone)

    def catch_up(self, begin: object, what: object) -> object:
        """``catch_up(true, methods)`` begins a repair and returns its token: the keys
        ``methods`` write are recorded from now on (imports leave them be).
        ``catch_up(false, token)`` ends that repair. Recording stops when every repair
        under way has ended (two proxies may repair a server at once), or when the
        unfinished ones are older than :data:`REPAIR_TTL` seconds (their proxy went away)."""
        self._expire_repairs()
        if begin:
            if len(self._repairers) >= MAX_REPAIRS:
                raise ClusterError(
                    f"jubako.catch_up: {MAX_REPAIRS} repairs are under way already; end one "
                    f"(catch_up(false, token)) or wait {REPAIR_TTL:.0f} s for it to expire"
                )
            if self._recording is None:
                self._start_recording(_texts(what, "methods"))
            token = secrets.token_hex(8)
            self._repairers[token] = time.monotonic()
            return token
        self._repairers.pop(text_param(what, "token") if what else "", None)
        if not self._repairers:
            self._stop_recording()
        return True

    def _start_recording(self, methods: list[str]) -> None:
        dispatcher = self._dispatcher()
        self._recording = set()
        for name in methods:
            handler = dispatcher.handlers.get(name)
            if handler is not None and not handler.passes_args:
                self._recorded_methods[name] = handler
                dispatcher.add(name, _recording(handler, self._recording))
        log.info("catching up: a proxy copies this server's keys to it")

    def _stop_recording(self) -> None:
        dispatcher = self._dispatcher()
        for name, handler in self._recorded_methods.items():
            dispatcher.add(name, handler)
        self._recorded_methods = {}
        if self._recording is not None:
            log.info("caught up (%d keys were written meanwhile)", len(self._recording))
        self._recording = None
        self._imported = set()

    def _expire_repairs(self) -> None:
        """Forget repairs begun more than :data:`REPAIR_TTL` seconds ago."""
        if not self._repairers:
            return
        oldest = time.monotonic() - REPAIR_TTL
        for token, began in list(self._repairers.items()):
            if began < oldest:
                log.warning("a repair begun %.0f s ago never ended: forgotten", REPAIR_TTL)
                del self._repairers[token]
        if not self._repairers and self._recording is not None:
            self._stop_recording()


class _Write:
    """One replicated write: applied here, then sent to the backups; answers once."""

    __slots__ = (
        "done", "failures", "key", "left", "name", "nodes", "owner", "params", "timeout", "wire",
    )  # fmt: skip

    def __init__(
        self,
        owner: Replication,
        key: object,
        name: str,
        nodes: list[tuple[str, int]],
        params: list[Any],
        done: Done,
        timeout: float,
    ) -> None:
        self.owner = owner
        self.timeout = timeout
        self.key = key
        self.name = name
        self.nodes = nodes
        self.params = params
        self.done = done
        self.failures: dict[tuple[str, int], str] = {}
        self.left = len(nodes)
        self.wire: object = None

    def apply(self) -> None:
        """Run the method here (inline when the model lock is free, else on a worker)."""
        dispatcher = self.owner._dispatcher()
        plan = self.owner.plan(self.name, dispatcher)
        if (
            plan is not None
            and len(self.params) == plan.arity
            and self._run_inline(plan, dispatcher)
        ):
            return
        prepared = dispatcher.prepare(self.name, self.params)
        if isinstance(prepared, ErrorReply):
            self.finish(ReplicationFailed(prepared.error, prepared.result))
            return
        handler = prepared.handler
        if handler.start is not None and not handler.is_async:
            # A snapshot model's update (runtime.server.snapshot): its writer answers the
            # wire result through ``done``, on the loop.
            def done(error: BaseException | None, result: object) -> None:
                if error is not None:
                    self.finish(ReplicationFailed(*error_of(error)))
                else:
                    self.sent(result)

            try:
                handler.start(prepared.args, done)
            except Exception as error:
                done(error, None)
            return
        if handler.is_async or handler.start is not None:
            self.finish(TypeMismatch(f"jubako.replicate: {self.name} cannot be replicated"))
            return
        try:
            ran, result = dispatcher.try_run_inline(prepared)
        except Exception as error:
            self.finish(ReplicationFailed(*error_of(error)))
            return
        if ran:
            self.applied(dispatcher, prepared, result)
            return
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(None, dispatcher.run_blocking, prepared)
        running.add_done_callback(lambda f: self._ran(dispatcher, prepared, f))

    def _run_inline(self, plan: InlinePlan, dispatcher: Dispatcher) -> bool:
        """The common case, as the server's inline path runs an update: False (nothing
        run) when the model lock is taken or an argument does not decode."""
        lock = dispatcher.model_lock
        if not lock.try_acquire_write():
            return False
        try:
            wire = plan.run(self.params)
            if wire is BAD_ARGUMENTS:
                return False  # the general path says which argument
            if dispatcher.on_update is not None:
                dispatcher.on_update()
        except Exception as error:
            self.finish(ReplicationFailed(*error_of(error)))
            return True
        finally:
            lock.release_write()
        self.sent(wire)
        return True

    def _ran(self, dispatcher: Dispatcher, prepared: Call, running: asyncio.Future[Any]) -> None:
        error = running.exception() if not running.cancelled() else ProtocolError("cancelled")
        if error is not None:
            self.finish(ReplicationFailed(*error_of(error)))
        else:
            self.applied(dispatcher, prepared, running.result()[1])

    def applied(self, dispatcher: Dispatcher, prepared: Call, result: object) -> None:
        bad, wire = dispatcher.encode(prepared, result)
        if bad is not None:
            self.finish(ReplicationFailed(bad))
            return
        self.sent(wire)

    def sent(self, wire: object) -> None:
        """Applied here with wire result ``wire``: now to the backups."""
        self.wire = wire
        if not self.nodes:
            self.finish(None)
            return
        pool, timeout = self.owner.pool, self.timeout
        for node in self.nodes:
            answer = functools.partial(self.answer, node)
            client = pool.client(*node)
            if not client.call_soon(self.name, self.params, answer, timeout=timeout):
                connecting = asyncio.ensure_future(
                    pool.call(*node, self.name, self.params, timeout=timeout)
                )
                connecting.add_done_callback(functools.partial(_settled, answer))

    def answer(self, node: tuple[str, int], error: BaseException | None, result: object) -> None:
        if error is not None:
            self.failures[node] = f"{type(error).__name__}: {error}"
        self.left -= 1
        if self.left == 0:
            self.finish(None)

    def finish(self, error: BaseException | None) -> None:
        owner = self.owner
        if error is None and self.failures:
            error = ReplicationFailed(
                f"{self.name}: applied on {_address(owner._self_id())}"
                + "".join(f", {_name(n)}" for n in self.nodes if n not in self.failures)
                + "; not on "
                + "; ".join(f"{_name(n)}: {why}" for n, why in self.failures.items()),
                [_name(node) for node in self.failures],  # for the proxy: repair these
            )
        try:
            self.done(error, None) if error is not None else self.done(None, self.wire)
        finally:
            owner._next(self.key)


def _settled(
    answer: Callable[[BaseException | None, object], None], call: asyncio.Future[Any]
) -> None:
    """A backup call that had to connect first has ended: pass its outcome on."""
    if call.cancelled():
        answer(ProtocolError("cancelled"), None)
    elif call.exception() is not None:
        answer(call.exception(), None)
    else:
        answer(None, call.result())


def _recording(handler: Handler, written: set[object]) -> Handler:
    """``handler`` noting the key (its first argument) of every call in ``written``."""
    func = handler.func

    def noting(*args: Any) -> Any:
        if args:
            key = args[0]
            written.add(key)
            if isinstance(key, str):  # the wire form too (imports compare raw keys)
                written.add(key.encode("utf-8"))
        return func(*args)

    return Handler(
        noting,
        handler.lock,
        handler.arg_types,
        handler.ret_type,
        handler.takes_cluster_name,
        on_worker=handler.on_worker,
        arg_labels=handler.arg_labels,
    )


def _texts(value: object, what: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise TypeMismatch(f"{what} must be a list of strings")
    return [text_param(item, what) for item in value]


def _count(value: object, what: str) -> int:
    if type(value) is not int or value < 1:
        raise TypeMismatch(f"{what} must be a positive integer")
    return value


def _node(value: object) -> tuple[str, int]:
    text = text_param(value, "backup")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProtocolError(f"backup {text!r} is not HOST:PORT")
    return host, int(port)


def _address(server_id: str) -> str:
    """``127.0.0.1_9199`` (a server id) as ``127.0.0.1:9199``, as the others are named."""
    host, _, port = server_id.rpartition("_")
    return f"{host}:{port}" if host else server_id


def _name(node: tuple[str, int]) -> str:
    return f"{node[0]}:{node[1]}"
