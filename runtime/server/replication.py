"""A server's part in keeping the replicas of ``cht`` keys the same: ordered writes, repair.

Proxies send a ``cht`` write to the key's *primary* (the first live replica on the ring)
as ``jubako.replicate``; the primary applies it, then sends it to the other replicas, and
answers once they all have it (or with an error naming those that do not). Writes to one
key are handled one at a time on the primary (a lock per key, held until every replica
answered), so every replica applies a key's writes in the primary's order: replicas that
saw the same writes hold the same rows, however many proxies wrote concurrently.

A server that comes back empty, or joins, is *repaired* by a proxy before it answers reads
for its keys: ``jubako.catch_up`` starts recording the keys written meanwhile,
``jubako.export`` on the other replicas gives the rows it should hold (paged, in key
order), ``jubako.import`` stores them (a key written since catch-up began keeps what the
write left), and ``jubako.catch_up`` again ends it. Export and import are the service's
hooks :meth:`~runtime.server.base.ServerBase.export_rows` and
:meth:`~runtime.server.base.ServerBase.import_rows`; a service without them answers
``jubako.export`` with nil, and its replicas are left as they are. ``jubako.ping`` tells a
proxy the server is alive and which process answers (a new one after a restart).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from runtime.cluster.cht import Ring
from runtime.errors import ProtocolError, TypeMismatch
from runtime.rpc.dispatch import Dispatcher, ErrorReply, Handler, error_of
from runtime.rpc.locks import LockMode
from runtime.rpc.pool import ClientPool
from runtime.server.base import ServerBase
from runtime.wire import types as _t

__all__ = ["INTERNAL_METHODS", "Replication"]

log = logging.getLogger(__name__)

#: The methods this module adds to every server (names no IDL method can have).
INTERNAL_METHODS = (
    "jubako.replicate",
    "jubako.ping",
    "jubako.export",
    "jubako.import",
    "jubako.catch_up",
)
#: Rows one ``jubako.export`` page holds at most.
MAX_PAGE = 10_000
_ANY = _t.Object()


async def _started(handler: Handler, args: list[Any]) -> object:
    """Run a ``start`` row and wait for its wire result (ReplicationFailed on an error)."""
    assert handler.start is not None
    answer: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def done(error: BaseException | None, result: object) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(ReplicationFailed(*error_of(error)))
        else:
            answer.set_result(result)

    try:
        handler.start(args, done)
    except Exception as error:
        done(error, None)
    return await answer


class ReplicationFailed(Exception):
    """A replicated write failed somewhere; ``wire_error`` is what the caller receives."""

    def __init__(self, wire_error: object, wire_result: object = None) -> None:
        super().__init__(str(wire_error))
        self.wire_error = wire_error
        self.wire_result = wire_result


class _KeyLocks:
    """One asyncio lock per key in use; a key's lock goes away when nobody holds it."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    async def __call__(self, key: object) -> _Held:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        await lock.acquire()
        return _Held(self, key, lock)

    def release(self, key: object, lock: asyncio.Lock) -> None:
        lock.release()
        _, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class _Held:
    __slots__ = ("key", "lock", "locks")

    def __init__(self, locks: _KeyLocks, key: object, lock: asyncio.Lock) -> None:
        self.locks, self.key, self.lock = locks, key, lock

    def release(self) -> None:
        self.locks.release(self.key, self.lock)


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
        self._keys = _KeyLocks()
        #: While a proxy repairs this server: the keys written since, and by which methods.
        self._recording: set[object] | None = None
        self._recorded_methods: dict[str, Handler] = {}

    def handlers(self) -> dict[str, Handler]:
        """The dispatch rows of the ``jubako.*`` methods."""
        return {
            "jubako.replicate": Handler(self.replicate, LockMode.NOLOCK, (_ANY, _ANY, _ANY), _ANY),
            "jubako.ping": Handler(self.ping, LockMode.NOLOCK, (), _ANY),
            "jubako.export": Handler(self.export, LockMode.ANALYSIS, (_ANY,) * 7, _ANY),
            "jubako.import": Handler(self.import_, LockMode.UPDATE, (_ANY,), _t.Bool()),
            "jubako.catch_up": Handler(self.catch_up, LockMode.NOLOCK, (_ANY, _ANY), _t.Bool()),
        }

    async def close(self) -> None:
        await self.pool.close()

    # -- ordered writes -------------------------------------------------------------------

    async def replicate(self, method: object, backups: object, params: object) -> object:
        """Apply ``method`` with ``params`` (the call's wire params, the cluster name and
        the key first) here, then on ``backups`` (``"host:port"`` texts), one write per key
        at a time; the method's wire result, or ReplicationFailed naming the replicas that
        did not take it."""
        name = _text(method, "method")
        if name.startswith("jubako.") or not isinstance(params, list) or len(params) < 2:
            raise TypeMismatch(f"jubako.replicate: cannot replicate {name!r} with these params")
        if not isinstance(backups, list):
            raise TypeMismatch("jubako.replicate: backups must be a list of HOST:PORT")
        nodes = [_node(backup) for backup in backups]
        dispatcher = self._dispatcher()
        call_params = params
        key = params[1]
        try:
            hash(key)
        except TypeError:
            raise TypeMismatch("jubako.replicate: the key is not a string") from None
        held = await self._keys(key)
        try:
            result = await self._apply(dispatcher, name, call_params)
            failures = await self._send(name, call_params, nodes)
        finally:
            held.release()
        if failures:
            raise ReplicationFailed(
                f"{name}: applied on {self._self_id()}"
                + "".join(f", {_name(node)}" for node in nodes if node not in failures)
                + "; not on "
                + "; ".join(f"{_name(node)}: {reason}" for node, reason in failures.items()),
                [_name(node) for node in failures],  # for the proxy: repair these
            )
        return result

    async def _apply(self, dispatcher: Dispatcher, name: str, params: list[Any]) -> object:
        """Run ``name`` here as a call from a client would run, and its wire result."""
        prepared = dispatcher.prepare(name, params)
        if isinstance(prepared, ErrorReply):
            raise ReplicationFailed(prepared.error, prepared.result)
        handler = prepared.handler
        if handler.start is not None and not handler.is_async:
            # A snapshot model's update (runtime.server.snapshot): its writer answers the
            # wire result through ``done``, on the loop.
            return await _started(handler, prepared.args)
        if handler.is_async or handler.start is not None:
            raise TypeMismatch(f"jubako.replicate: {name} cannot be replicated")
        try:
            ran, result = dispatcher.try_run_inline(prepared)
            if not ran:
                loop = asyncio.get_running_loop()
                _, result = await loop.run_in_executor(None, dispatcher.run_blocking, prepared)
        except Exception as error:
            wire_error, wire_result = error_of(error)
            raise ReplicationFailed(wire_error, wire_result) from None
        bad, wire = dispatcher.encode(prepared, result)
        if bad is not None:
            raise ReplicationFailed(bad)
        return wire

    async def _send(
        self, name: str, params: list[Any], nodes: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], str]:
        """Send the write to every backup; the ones that failed, with why."""
        if not nodes:
            return {}
        timeout = self.timeout
        calls = (self.pool.call(host, port, name, params, timeout=timeout) for host, port in nodes)
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        return {
            node: f"{type(outcome).__name__}: {outcome}"
            for node, outcome in zip(nodes, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        }

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
        sources: object,
        me: object,
        after: object,
        limit: object,
    ) -> object:
        """Rows ``target`` should hold and this server (``me`` on the ring) is the first
        source for, in key order after ``after``: ``[rows, last key]`` (``last key`` nil at
        the end), or nil when the service cannot export rows.

        A key is ``target``'s when ``target`` is among its ``replicas`` first servers on the
        ring of ``members``; this server is its source when it is the first of them, other
        than ``target``, that is in ``sources`` (the caught-up servers)."""
        if not self.serv.exports_rows:
            return None
        ring = Ring(_texts(members, "members"))
        count = _count(replicas, "replicas")
        want = _text(target, "target")
        live = set(_texts(sources, "sources"))
        me = _text(me, "me")
        page = min(_count(limit, "limit"), MAX_PAGE)

        def owned(key: str) -> bool:
            holders = ring.nodes_for(key, count)
            if want not in holders:
                return False
            return next((h for h in holders if h != want and h in live), None) == me

        start = None if after is None else _text(after, "after")
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
            kept.append((_text(raw_key, "key"), row))
        self.serv.import_rows(kept)
        return True

    def catch_up(self, begin: object, methods: object) -> bool:
        """Begin (record the keys ``methods`` write from now on) or end a repair."""
        dispatcher = self._dispatcher()
        if begin:
            if self._recording is None:
                self._recording = set()
                for name in _texts(methods, "methods"):
                    handler = dispatcher.handlers.get(name)
                    if handler is not None and not handler.passes_args:
                        self._recorded_methods[name] = handler
                        dispatcher.add(name, _recording(handler, self._recording))
                log.info("catching up: a proxy copies this server's keys to it")
            return True
        for name, handler in self._recorded_methods.items():
            dispatcher.add(name, handler)
        self._recorded_methods = {}
        if self._recording is not None:
            log.info("caught up (%d keys were written meanwhile)", len(self._recording))
        self._recording = None
        return True


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


def _text(value: object, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise TypeMismatch(f"{what} is not valid UTF-8") from None
    if isinstance(value, str):
        return value
    raise TypeMismatch(f"{what} must be a string, not {type(value).__name__}")


def _texts(value: object, what: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise TypeMismatch(f"{what} must be a list of strings")
    return [_text(item, what) for item in value]


def _count(value: object, what: str) -> int:
    if type(value) is not int or value < 1:
        raise TypeMismatch(f"{what} must be a positive integer")
    return value


def _node(value: object) -> tuple[str, int]:
    text = _text(value, "backup")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProtocolError(f"backup {text!r} is not HOST:PORT")
    return host, int(port)


def _name(node: tuple[str, int]) -> str:
    return f"{node[0]}:{node[1]}"
