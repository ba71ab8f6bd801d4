"""The server's fast path: calls known to be fast, run on the event loop as they are read.

:class:`Timing` keeps a running estimate of each method's duration; a method under
:data:`FAST_CALL_SECONDS` is *known to be fast*. :class:`InlineTable` gives, per raw method
name, how the fast path runs it (:class:`InlineEntry`, from the dispatcher's
:class:`~runtime.rpc.dispatch.InlinePlan`).

:func:`serve_read` answers what a connection's input holds, up to
:data:`MAX_SERVED_PER_PASS` requests. A well-formed request for a method known to be fast,
with the right argument count and the accepted cluster name, runs right there, with no
record objects, under the model lock the read holds for its whole run of such calls (taken
once; given up when a writer waits, and before any other call, a ``#@nolock`` one included:
it may take the model lock itself, as ``load`` does). Its reply is packed with the others
of the read. A ``start`` handler (the proxy's relay, a snapshot model's update) is started
right there too, after its ``now`` has been tried, when it has one: a call that ``now``
finishes is answered like the calls above. Everything else goes to the connection's
general path, which answers exactly as this one would.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runtime.errors import MessageTooLarge, ProtocolError
from runtime.rpc.dispatch import BAD_ARGUMENTS, NOT_NOW, BadResult, Call, Dispatcher, InlinePlan
from runtime.rpc.locks import LockMode, RWLock
from runtime.rpc.protocol import MSGID_LIMIT
from runtime.wire.types import Bool, Descriptor, EnumType, Float, Int, Nullable, Raw, String

if TYPE_CHECKING:
    from runtime.rpc.connection import Connection

log = logging.getLogger(__name__)

#: A method whose estimated duration is under this runs inline on the event loop.
FAST_CALL_SECONDS = 0.001
#: Inline calls are timed one in this many.
SAMPLE_EVERY = 8
#: Requests one pass over a connection's buffered input answers before the loop runs
#: again (other connections, and a check that this client reads its answers).
MAX_SERVED_PER_PASS = 256
#: A method timed on workers under this may be probed on the loop, one call in PROBE_EVERY.
PROBE_LIMIT_SECONDS = 0.02
PROBE_EVERY = 16
#: Method names (known or not) whose inline entries a server keeps.
_INLINE_CACHE_SIZE = 256
_ANALYSIS, _UPDATE, _NOLOCK = LockMode.ANALYSIS, LockMode.UPDATE, LockMode.NOLOCK
#: How an inline reply counts against the connection's output limit (``InlineEntry.sized``):
#: a scalar result not at all, a string or raw result by its length, anything else is
#: packed at once and measured; a result packed already (``InlinePlan.packed``) is sent
#: as it is, by its length.
_SCALAR, _LENGTH, _PACK, _PACKED = 0, 1, 2, 3
#: Bytes of answers a pass makes before it looks at the room left (and between looks).
OUTPUT_SLACK = 64 * 1024

#: How the fast path takes and gives back a read of the model lock.
ReadOps = tuple[Callable[[], bool], Callable[[], None]]


class Timing:
    """Running estimate of one method's duration."""

    __slots__ = ("entries", "estimate", "fast", "runs")

    def __init__(self) -> None:
        self.estimate = 0.0
        self.runs = 0
        #: Timed at least once and estimated under FAST_CALL_SECONDS: runs inline.
        self.fast = False
        #: The inline entries of this method, told when ``fast`` changes.
        self.entries: list[InlineEntry] = []

    def record(self, seconds: float, *, on_loop: bool = False) -> None:
        """Add one run. A fast run timed on the loop thread sets the estimate: it is exact.
        A worker's time also holds its waits for the GIL (up to the switch interval while
        the loop is busy), so a fast worker run only pulls the estimate down slowly."""
        self.runs += 1
        if seconds > FAST_CALL_SECONDS:
            self.estimate = max(seconds, self.estimate)
        elif on_loop:
            self.estimate = seconds
        else:
            self.estimate = self.estimate * 0.8 + seconds * 0.2
        fast = self.estimate < FAST_CALL_SECONDS
        if fast is not self.fast:
            self.fast = fast
            for entry in self.entries:
                entry.ready_arity = entry.arity if fast else -1

    def should_probe(self) -> bool:
        """Whether a method that looks slow, but not very, should run once on the loop to be
        timed exactly (a trivial method timed on busy workers looks slow for ever)."""
        return 0 < self.runs and self.estimate < PROBE_LIMIT_SECONDS and not self.runs % PROBE_EVERY

    def skip(self) -> None:
        """Count a run that was not timed."""
        self.runs += 1


class InlineEntry:
    """A method's :class:`InlinePlan` with this server's timing of it; without a plan, the
    entry of a name the inline path cannot run (it matches no call: arity -1)."""

    __slots__ = (
        "arity", "lock", "now", "plan", "ready_arity", "run", "sized", "start", "timing",
    )  # fmt: skip

    def __init__(self, plan: InlinePlan | None, timing: Timing) -> None:
        self.plan = plan
        self.timing = timing
        self.lock = LockMode.NOLOCK if plan is None else plan.lock
        self.arity = -1 if plan is None else plan.arity
        #: ``arity`` while the method is known to be fast, else -1 (no call has it): one
        #: comparison checks both on the inline path. Kept by ``timing`` once the table
        #: caches the entry.
        self.ready_arity = self.arity if timing.fast else -1
        self.run = _never_run if plan is None else plan.run
        self.start = None if plan is None else plan.start
        self.now = None if plan is None else plan.now
        #: How a reply counts against the output limit (see ``_SCALAR``).
        if plan is None:
            self.sized = _PACK
        else:
            self.sized = _PACKED if plan.packed else _reply_size_kind(plan.handler.ret_type)

    def call(self, params: list[Any]) -> Call:
        """A record of one call, for the rare replies that need one (errors)."""
        assert self.plan is not None
        return Call(self.plan.name, self.plan.handler, [], params[0])


class InlineTable:
    """Per server: the timing of every method and the inline entry of every raw name."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.timings: dict[str, Timing] = {}
        #: Raw method name → how the inline path runs it (an entry that matches no call
        #: when it cannot), for ``version`` of the dispatcher's table.
        self.entries: dict[bytes, InlineEntry] = {}
        self.version = -1
        #: How the inline path takes and gives back a read of the model lock (set on the
        #: first read, on the loop's thread: see :meth:`claim_read_ops`).
        self.read_ops: ReadOps | None = None

    def timing(self, method: str) -> Timing:
        timing = self.timings.get(method)
        if timing is None:
            timing = self.timings[method] = Timing()
        return timing

    def entry(self, raw_name: object) -> InlineEntry:
        """How the inline path runs the method called ``raw_name`` (an entry matching no
        call when it cannot: a name that is not a string is not cached)."""
        if type(raw_name) is not bytes:
            return InlineEntry(None, Timing())
        try:
            plan = self.dispatcher.inline_plan(raw_name.decode("utf-8"))
        except UnicodeDecodeError:
            plan = None
        if plan is None:
            entry = InlineEntry(None, Timing())
        else:  # start handlers are not timed: they never run inline, only start there
            entry = InlineEntry(plan, Timing() if plan.start else self.timing(plan.name))
        if len(self.entries) < _INLINE_CACHE_SIZE:
            self.entries[raw_name] = entry
            entry.timing.entries.append(entry)
        return entry

    def refresh(self) -> None:
        """Forget the entries if the dispatcher's table changed since they were made."""
        if self.version != self.dispatcher.version:
            self.entries.clear()
            for timing in self.timings.values():
                timing.entries.clear()
            self.version = self.dispatcher.version

    def claim_read_ops(self) -> ReadOps:
        """The loop's reads of the model lock: without its mutex when this thread can claim
        them (``RWLock.claim_loop_reads``), else the ordinary ones."""
        lock = self.dispatcher.model_lock
        if lock.claim_loop_reads():
            self.read_ops = (lock.try_acquire_loop_read, lock.release_loop_read)
        else:
            self.read_ops = (lock.try_acquire_read, lock.release_read)
        return self.read_ops


def serve_read(connection: Connection) -> bool:
    """Answer the messages ``connection``'s input holds, up to :data:`MAX_SERVED_PER_PASS`,
    and while the answers waiting to be sent stay under the connection's output limit;
    True when it stopped early (more may wait). See the module docstring."""
    server = connection.server
    dispatcher = connection.dispatcher
    table = server.inline
    table.refresh()
    entries = table.entries
    lock = dispatcher.model_lock
    try_read, release_read = table.read_ops or table.claim_read_ops()
    decoder = connection.decoder
    tell = decoder.unpacker.tell
    boundary = decoder.boundary
    max_size = decoder.max_message_size
    scheduler = server.scheduler
    # The replies of this read's inline calls, packed together: before any other reply
    # is written (the order is kept) and at the end of the read.
    replies: list[tuple[int, int, None, Any]] = []
    reply = replies.append
    # Answers count against the connection's output limit as they are made: ``spent`` is
    # what this pass's string results and packed answers add up to; once it passes
    # ``checked`` the room left is looked up, and the pass stops when it is used up.
    spent = 0
    checked = OUTPUT_SLACK
    # Refreshed after every call that takes the general path (it may change them).
    inline_ok = not connection.debug and not scheduler.blocked
    accepted = dispatcher.accepted_name
    held: LockMode | None = None  # the model lock this read holds, if any
    analysis, update, nolock, bad_arguments = _ANALYSIS, _UPDATE, _NOLOCK, BAD_ARGUMENTS
    limit = MSGID_LIMIT
    countdown = connection.sample_countdown
    served = 0
    stopped = False
    next_message = decoder.unpacker.__next__
    try:
        # The unpacker is asked for a message only while it holds bytes past the last one:
        # asking an empty one costs a StopIteration, as much as a short call (given is
        # what the decoder has fed the unpacker).
        while served < MAX_SERVED_PER_PASS and boundary != decoder.given:
            try:
                obj = next_message()
            except StopIteration:  # the rest is part of a message
                break
            served += 1
            end = tell()
            size = end - boundary
            boundary = end
            if size > max_size:
                raise MessageTooLarge(f"a message is larger than the limit of {max_size} bytes")
            try:
                try:  # a request is [0, msgid, method, params]
                    kind, msgid, raw_name, params = obj
                except (TypeError, ValueError):  # not a sequence of four
                    kind = None
                if kind == 0 and inline_ok and type(params) is list:
                    try:
                        entry = entries[raw_name]
                    except (KeyError, TypeError):  # new, or not even hashable
                        entry = table.entry(raw_name)
                    result = bad_arguments  # (until a call here answers)
                    if (
                        len(params) == entry.ready_arity  # -1 unless known to be fast
                        and params[0] == accepted
                        and type(msgid) is int
                        and 0 <= msgid < limit
                    ):
                        mode = entry.lock
                        if mode is held:  # a writer waiting makes readers let go
                            runnable = mode is not analysis or not lock.waiting_writers
                        elif mode is nolock and held is None:
                            runnable = True
                        else:
                            held, runnable = _take_lock(
                                connection, lock, mode, held, try_read, release_read
                            )
                        if runnable:
                            countdown -= 1
                            try:
                                if countdown:
                                    result = entry.run(params)
                                else:  # time one inline call in SAMPLE_EVERY
                                    countdown = SAMPLE_EVERY
                                    started = time.perf_counter()
                                    result = entry.run(params)
                                    entry.timing.record(
                                        time.perf_counter() - started, on_loop=True
                                    )
                            except Exception as error:
                                if mode is update and type(error) is BadResult:
                                    connection.updated()  # the method did run
                                if replies:
                                    connection.pack_replies(replies)
                                connection.fail(msgid, entry.call(params), error)
                                continue
                            if result is not bad_arguments and mode is update:
                                connection.updated()
                    elif (
                        entry.start is not None
                        and len(params) == entry.arity
                        and type(msgid) is int
                        and 0 <= msgid < limit
                    ):
                        if held is not None:
                            release(lock, held, release_read)
                            held = None
                        now = entry.now
                        if now is not None:
                            try:
                                result = now(params)
                            except Exception as error:
                                if replies:
                                    connection.pack_replies(replies)
                                connection.fail(msgid, entry.call(params), error)
                                continue
                        if result is bad_arguments or result is NOT_NOW:
                            if replies:
                                connection.pack_replies(replies)
                            _start(connection, entry, msgid, params, decoder.estimate(end, size))
                            continue
                    if result is not bad_arguments:
                        sized = entry.sized
                        if sized != _PACKED:
                            reply((1, msgid, None, result))
                        if sized:  # a result that may be large counts now
                            if sized == _LENGTH:
                                spent += len(result)
                            elif sized == _PACKED:
                                spent += connection.add_packed_reply(replies, msgid, result)
                            else:
                                before = connection.out_bytes
                                connection.pack_replies(replies)
                                spent += connection.out_bytes - before
                            if spent > checked:
                                if connection.output_room() < spent:
                                    stopped = True
                                    break
                                checked = spent + OUTPUT_SLACK
                        continue
                # The general path: give up the lock this read holds first.
                if held is not None:
                    release(lock, held, release_read)
                    held = None
                if replies:
                    connection.pack_replies(replies)
                connection.handle_message(decoder.message(obj), decoder.estimate(end, size))
                inline_ok = not connection.debug and not scheduler.blocked
                accepted = dispatcher.accepted_name
                if connection.out_bytes > OUTPUT_SLACK and connection.output_room() < spent:
                    stopped = True  # it answered at once, and the client reads too little
                    break
            except ProtocolError:
                raise
            except Exception:
                log.exception("internal error answering a message from %s", connection.peer)
    except Exception as error:  # from the unpacker, a malformed message or a limit
        refused: Exception | None = error
    else:
        refused = None
    finally:
        decoder.boundary = boundary
        connection.requests += served
        connection.sample_countdown = countdown
        if held is not None:
            release(lock, held, release_read)
        if replies:
            connection.pack_replies(replies)
    if served and connection.tracks_idle:  # whole requests, not bytes, are activity
        connection.last_activity = time.monotonic()
    if (
        refused is None
        and not stopped
        and served < MAX_SERVED_PER_PASS
        and (decoder.given != boundary or decoder.scanner is not None)
    ):
        try:  # every whole message is answered: what is left is part of the next one
            decoder.settle()
        except ProtocolError as error:
            refused = error
        else:
            if connection.progress_handle is None:
                connection.watch_progress()
    if refused is not None:
        connection.refuse(decoder.stream_error(refused))
        return False
    return stopped or served == MAX_SERVED_PER_PASS


def _take_lock(
    connection: Connection,
    lock: RWLock,
    mode: LockMode,
    held: LockMode | None,
    try_read: Callable[[], bool],
    release_read: Callable[[], None],
) -> tuple[LockMode | None, bool]:
    """For a call whose lock ``mode`` differs from what the read holds (``held``): what
    the read holds afterwards, and whether the call may run now."""
    if mode is _NOLOCK:
        if held is not None:  # it may take the lock itself (load)
            release(lock, held, release_read)
        return None, True
    if held is _UPDATE:  # the write lock covers reads too
        return held, True
    if held is None:
        taken = try_read() if mode is _ANALYSIS else lock.try_acquire_write()
        return (mode if taken else None), taken
    # Held for reading, and an update comes: trade the read for the write lock.
    release_read()
    if lock.try_acquire_write():
        return _UPDATE, True
    return None, False  # the lock is busy: the call takes the general path


def _start(
    connection: Connection, entry: InlineEntry, msgid: int, params: list[Any], held: int
) -> None:
    """Start a ``start`` handler (the proxy's relay) found on the inline path; ``held`` is
    what its arguments cost in memory until it answers."""
    connection.start_pending(held)
    done = functools.partial(connection.started_done, msgid, entry, params, held)
    try:
        assert entry.start is not None
        entry.start(params, done)
    except Exception as error:
        done(error, None)


def release(lock: RWLock, held: LockMode, release_read: Callable[[], None]) -> None:
    """Give up the model lock an inline run holds (``held`` is what it took; a read is
    given back with ``release_read``, the server's way of taking it)."""
    if held is LockMode.ANALYSIS:
        release_read()
    else:
        lock.release_write()


def _reply_size_kind(result: Descriptor[Any] | None) -> int:
    """How the fast path counts a result of this type against the output limit."""
    if isinstance(result, Nullable):
        result = result.inner
    if isinstance(result, Bool | Int | Float | EnumType):
        return _SCALAR
    if isinstance(result, String | Raw):
        return _LENGTH
    return _PACK


def _never_run(params: list[Any]) -> Any:
    raise AssertionError("an entry without a plan matches no call")
