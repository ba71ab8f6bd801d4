"""The dispatch table: method name → handler, with arity, types, cluster name and locks.

A :class:`Dispatcher` turns a :class:`~runtime.rpc.protocol.Request` into either an
immediate error reply or a prepared :class:`Call`, and runs calls under the lock their
method names. Error replies follow Jubatus:

- unknown method → error ``1`` with the method name as the result (also for a call with
  empty params, such as the readiness probe ``dummy``);
- wrong argument count or type, or a cluster name that is not a string → error ``2``
  with a text result;
- a cluster name other than the server's ``--name`` is served anyway, as Jubatus serves it
  (tools call a member with ``""``); the first calls with each other name are logged once;
- an exception in the method → the error is ``"<ExceptionClass>: <message>"``, result nil.
  An exception carrying a ``wire_error`` attribute (the proxy's forwarded errors) sends
  that value as it is.

This module decides *what* to run; :mod:`runtime.rpc.server` decides *where* (inline or
on a worker thread). No sockets here.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import (
    ARGUMENT_ERROR,
    NO_METHOD_ERROR,
    TypeMismatch,
    UnknownMethod,
    WireTypeError,
)
from runtime.rpc.locks import LockMode, RWLock
from runtime.rpc.logbounds import Throttle, shown
from runtime.wire.types import Descriptor, MessageType, Object

log = logging.getLogger(__name__)


#: Other cluster names a server logs (once each) before it stops noting them.
OTHER_NAMES_LOGGED = 16


#: How a ``start`` handler reports: ``done(None, result)`` or ``done(exception, None)``.
Done = Callable[[BaseException | None, Any], None]


@dataclass(frozen=True, slots=True)
class Handler:
    """One method: ``func`` gets the decoded arguments (without the cluster name).

    ``start``, when given, is used instead of ``func``: ``start(args, done)`` begins the
    call on the loop and reports through ``done`` exactly once (the proxy's relay: no
    task per call). It must not block. ``now``, with ``start``, is tried first on the
    server's inline path: ``now(params)``, with the same params (the cluster name first),
    finishes the call at once and returns its wire result, or returns :data:`NOT_NOW`
    having done nothing, and ``start`` takes the call (errors are raised as ``start``
    would report them).
    """

    func: Callable[..., Any]
    lock: LockMode
    arg_types: tuple[Descriptor[Any], ...]
    ret_type: Descriptor[Any] | None
    takes_cluster_name: bool = True
    start: Callable[[list[Any], Done], None] | None = None
    #: Always run on a worker thread, however fast it has been (a method that may wait
    #: for a lock of its own or for I/O, such as ``load``).
    on_worker: bool = False
    #: How errors name each argument (``Signature.labels``: ``1 (delta)``); positions
    #: counted from 0 after the cluster name when empty.
    arg_labels: tuple[str, ...] = ()
    now: Callable[[list[Any]], Any] | None = None
    #: For a method of no arguments, its result already packed as the connection's
    #: packer packs it (``get_status``'s, kept between changes): what the inline path
    #: sends instead of packing ``func``'s result. ``func`` still answers every other way.
    packed: Callable[[], bytes] | None = None
    is_async: bool = field(init=False, default=False)
    #: Every argument is ``object``: the wire values are the arguments (the proxy's rows).
    passes_args: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.func))
        passes = all(type(t) is Object for t in self.arg_types)
        object.__setattr__(self, "passes_args", passes)


@dataclass(slots=True)
class Call:
    """A request ready to run."""

    name: str
    handler: Handler
    args: list[Any]
    #: The cluster name the call was sent with (as sent), for log lines.
    cluster: Any = None
    #: ``time.perf_counter()`` when the request arrived; set only when debug logging is on.
    started: float = 0.0
    #: How long the method itself ran on a worker (set even when it raised).
    ran_seconds: float = 0.0
    #: What the request costs in memory (decoded, at most) until it is answered: it
    #: counts against its connection's limit meanwhile.
    held: int = 0


#: What :attr:`InlinePlan.run` returns when an argument does not decode (the method
#: did not run; the general path then builds the error reply).
BAD_ARGUMENTS: Any = object()
#: What a handler's ``now`` returns when the call cannot finish at once (``start`` runs).
NOT_NOW: Any = object()


class BadResult(Exception):
    """A method returned a value that does not fit its declared type."""

    def __init__(self, method: str, error: WireTypeError) -> None:
        super().__init__(f"{method} returned a bad value: {error}")
        #: Sent as the error, as :meth:`Dispatcher.encode` does.
        self.wire_error = f"TypeError: {self}"


@dataclass(frozen=True, slots=True)
class InlinePlan:
    """A method as the server's inline path runs it, with no :class:`Call` per call.

    ``run(params)`` decodes the arguments after the cluster name, calls the method and
    encodes its result for the wire; it returns :data:`BAD_ARGUMENTS` without calling the
    method when an argument does not decode, and raises :class:`BadResult` when the result
    does not fit its type (or what the method raises). The caller has checked that
    ``len(params) == arity`` and that ``params[0]`` is the accepted cluster name, and
    takes the lock ``lock`` itself.
    """

    name: str
    handler: Handler
    lock: LockMode
    arity: int
    run: Callable[[list[Any]], Any]
    #: For a ``start`` handler whose arguments are the wire values (the proxy's rows):
    #: ``start(params, done)`` with every param, the cluster name first; ``run`` unused.
    start: Callable[[list[Any], Done], None] | None = None
    #: The handler's ``now``, tried before ``start`` (see :class:`Handler`).
    now: Callable[[list[Any]], Any] | None = None
    #: ``run`` answers the result already packed (the handler's ``packed``).
    packed: bool = False


_DECODE_ARGUMENT = """\
    a{i} = params[{n}]
    if type(a{i}) is not as_is{i}:
        try:
            a{i} = decode{i}(a{i})
        except WireTypeError:
            return BAD_ARGUMENTS
"""
_ENCODE_RESULT = """\
    if type(result) is result_as_is:
        return result
    try:
        return encode(result)
    except WireTypeError as error:
        throttle.log(40, name, "%s returned a value that does not fit its type: %s", name, error)
        raise BadResult(name, error) from None
"""


class _Never:
    """A type no wire value has: for descriptors that convert every value."""


def _unused(params: list[Any]) -> Any:
    raise AssertionError("a start handler is started, not run")


def _runner(name: str, handler: Handler, throttle: Throttle) -> Callable[[list[Any]], Any]:
    """Compile ``params -> wire result`` for one method: straight-line code with one
    decoder call per argument and the return type's encoder, each skipped for a value of
    the type the descriptor passes as it is (``Descriptor.as_is``: bytes for ``raw``...)
    and for ``object``, so a call pays for no loops, lists or ``*args``."""
    namespace: dict[str, Any] = {
        "func": handler.func,
        "name": name,
        "throttle": throttle,
        "WireTypeError": WireTypeError,
        "BAD_ARGUMENTS": BAD_ARGUMENTS,
        "BadResult": BadResult,
    }
    lines = ["def run(params):"]
    arguments: list[str] = []
    for index, descriptor in enumerate(handler.arg_types):
        if type(descriptor) is Object:
            arguments.append(f"params[{index + 1}]")
            continue
        namespace[f"decode{index}"] = descriptor.decode
        namespace[f"as_is{index}"] = descriptor.as_is or _Never
        lines.append(_DECODE_ARGUMENT.format(i=index, n=index + 1))
        arguments.append(f"a{index}")
    lines.append(f"    result = func({', '.join(arguments)})")
    ret = handler.ret_type
    if ret is None or type(ret) is Object:
        lines.append("    return result")
    else:
        namespace["encode"] = ret.encode
        namespace["result_as_is"] = ret.as_is or _Never
        lines.append(_ENCODE_RESULT)
    source = "\n".join(lines)
    exec(compile(source, f"<run {name}>", "exec"), namespace)
    run: Callable[[list[Any]], Any] = namespace["run"]
    return run


def _packed_runner(packed: Callable[[], bytes]) -> Callable[[list[Any]], bytes]:
    """``params -> packed result`` for a method of no arguments (the cluster name only)."""

    def run(params: list[Any]) -> bytes:
        return packed()

    return run


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A request answered without running anything."""

    error: Any
    result: Any


def error_of(exception: BaseException) -> tuple[Any, Any]:
    """The ``(error, result)`` pair a failed call sends.

    An exception the IDL declares (a generated class with a ``WIRE`` descriptor) sends
    ``"ClassName: fields"`` as the error, as any exception does, and its fields as the
    result, so a generated client can raise the same class again.
    """
    wire_error = getattr(exception, "wire_error", None)
    if wire_error is not None:
        return wire_error, getattr(exception, "wire_result", None)
    wire = getattr(type(exception), "WIRE", None)
    if isinstance(wire, MessageType):
        try:
            fields = wire.encode(exception)
        except WireTypeError as error:
            log.error("%s does not fit its IDL declaration: %s", type(exception).__name__, error)
        else:
            return f"{type(exception).__name__}: {exception}", fields
    if isinstance(exception, UnknownMethod):
        return NO_METHOD_ERROR, str(exception)
    if isinstance(exception, TypeMismatch):
        return ARGUMENT_ERROR, str(exception)
    return f"{type(exception).__name__}: {exception}", None


class Dispatcher:
    """Method table plus the policy every call goes through."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        cluster_name: str | None = None,
        model_lock: RWLock | None = None,
        on_update: Callable[[], None] | None = None,
    ) -> None:
        self.handlers: dict[str, Handler] = dict(handlers)
        self.cluster_name = cluster_name
        self.model_lock = model_lock or RWLock()
        self.on_update = on_update
        #: The cluster name of the last good call, as sent: equal names skip the check.
        #: A fresh object until then, equal to nothing a client can send (not even nil).
        self.accepted_name: object = object()
        #: Bumped when the table changes (inline plans built before are stale).
        self.version = 0
        #: Lines a client's calls can cause (a result that does not fit), one a second.
        self.throttle = Throttle(log)
        #: Other cluster names calls came with, each logged once (at most
        #: :data:`OTHER_NAMES_LOGGED` of them: a client cannot grow this).
        self._other_names: set[str] = set()

    def _note_other_name(self, name: str) -> None:
        if name in self._other_names or len(self._other_names) > OTHER_NAMES_LOGGED:
            return
        self._other_names.add(name)
        if len(self._other_names) > OTHER_NAMES_LOGGED:
            log.warning("calls name more cluster names: no longer logged")
            return
        log.warning(
            "a call names cluster %s; this server serves %r (served anyway, as Jubatus does)",
            shown(name), self.cluster_name,
        )  # fmt: skip

    def add(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler
        self.version += 1

    def inline_plan(self, method: str) -> InlinePlan | None:
        """How the inline path runs ``method``; None when it cannot (unknown method,
        ``async`` handlers, and all but ``start`` handlers without a cluster name): such
        calls take :meth:`prepare`."""
        handler = self.handlers.get(method)
        if handler is None:
            return None
        if handler.start is not None:  # used instead of func, which may be async
            if handler.takes_cluster_name or not handler.passes_args:
                return None
            arity = len(handler.arg_types)
            return InlinePlan(
                method, handler, handler.lock, arity, _unused, handler.start, handler.now
            )
        if handler.is_async or handler.on_worker or not handler.takes_cluster_name:
            return None
        arity = len(handler.arg_types) + 1
        packed = handler.packed
        if packed is not None and arity == 1:
            return InlinePlan(method, handler, handler.lock, 1, _packed_runner(packed), packed=True)
        plan = _runner(method, handler, self.throttle)
        return InlinePlan(method, handler, handler.lock, arity, plan)

    def prepare(self, method: str, params: list[Any]) -> Call | ErrorReply:
        """Look up and decode; an ErrorReply when the call cannot run."""
        handler = self.handlers.get(method)
        if handler is None:
            return ErrorReply(NO_METHOD_ERROR, method)
        types = handler.arg_types
        if handler.takes_cluster_name:
            if len(params) != len(types) + 1:
                return ErrorReply(
                    ARGUMENT_ERROR,
                    f"{method} takes {len(types)} argument(s) after the cluster name, "
                    f"got {max(len(params) - 1, 0)}",
                )
            name = params[0]
            if name != self.accepted_name:  # else: the name of the last good call, as sent
                if type(name) is bytes:
                    try:
                        name = name.decode("utf-8")
                    except UnicodeDecodeError:
                        return ErrorReply(ARGUMENT_ERROR, "cluster name is not valid UTF-8")
                elif type(name) is not str:
                    return ErrorReply(
                        ARGUMENT_ERROR, "the first argument (cluster name) must be a string"
                    )
                if self.cluster_name is not None and name != self.cluster_name:
                    self._note_other_name(name)
                self.accepted_name = params[0]
            raw_args = params[1:]
        else:
            if len(params) != len(types):
                return ErrorReply(
                    ARGUMENT_ERROR, f"{method} takes {len(types)} argument(s), got {len(params)}"
                )
            raw_args = params
        if handler.passes_args:
            return Call(method, handler, raw_args, params[0] if params else None)
        try:
            args = [t.decode(v) for t, v in zip(types, raw_args, strict=True)]
        except WireTypeError:
            return ErrorReply(ARGUMENT_ERROR, _which_argument(method, handler, raw_args))
        return Call(method, handler, args, params[0] if handler.takes_cluster_name else None)

    def encode(self, call: Call, result: Any) -> tuple[Any, Any]:
        """``(None, wire result)``, or an error pair if the result does not fit its type."""
        ret = call.handler.ret_type
        if ret is None or type(ret) is Object:
            return None, result
        try:
            return None, ret.encode(result)
        except WireTypeError as error:
            self.throttle.log(
                logging.ERROR,
                call.name,
                "%s returned a value that does not fit its type: %s",
                call.name,
                error,
            )
            return f"TypeError: {call.name} returned a bad value: {error}", None

    def try_run_inline(self, call: Call) -> tuple[bool, Any]:
        """Run ``call`` now if its lock is free without waiting: ``(ran, result)``.

        Raises what the method raises. Never blocks on the lock.
        """
        mode = call.handler.lock
        lock = self.model_lock
        if mode is LockMode.NOLOCK:
            return True, call.handler.func(*call.args)
        if mode is LockMode.ANALYSIS:
            if not lock.try_acquire_read():
                return False, None
            try:
                return True, call.handler.func(*call.args)
            finally:
                lock.release_read()
        if not lock.try_acquire_write():
            return False, None
        try:
            result = call.handler.func(*call.args)
            if self.on_update is not None:
                self.on_update()
            return True, result
        finally:
            lock.release_write()

    def run_blocking(self, call: Call) -> tuple[float, Any]:
        """Run ``call`` on a worker thread, waiting for its lock as long as it takes.

        Returns the seconds the method itself ran (not the wait for the lock: that says
        nothing about the method) and its result; the seconds are in ``call.ran_seconds``
        too, also when the method raised.
        """
        mode = call.handler.lock
        if mode is LockMode.NOLOCK:
            return _timed(call)
        if mode is LockMode.ANALYSIS:
            with self.model_lock.read():
                return _timed(call)
        with self.model_lock.write():
            outcome = _timed(call)
            if self.on_update is not None:
                self.on_update()
            return outcome


def _which_argument(method: str, handler: Handler, values: list[Any]) -> str:
    """``add: argument 1 (delta): expected long, got string``: the first argument that
    does not decode, numbered as the IDL numbers it (the cluster name is not counted)."""
    labels = handler.arg_labels or tuple(str(i) for i in range(len(values)))
    for label, descriptor, value in zip(labels, handler.arg_types, values, strict=True):
        try:
            descriptor.decode(value)
        except WireTypeError as error:
            return f"{method}: argument {label}: {error}"
    return f"{method}: bad arguments"


def _timed(call: Call) -> tuple[float, Any]:
    started = time.perf_counter()
    try:
        result = call.handler.func(*call.args)
    finally:
        call.ran_seconds = time.perf_counter() - started
    return call.ran_seconds, result
