"""Whole requests answered from their bytes: a service's :class:`FrameAnswerer`.

A service may answer some methods' plain calls straight from the bytes a read brings
(the classifier's ``classify`` and ``train``, in compiled code): no objects for the
requests, none for the replies. :func:`serve_frames` offers it a read that starts at a
message boundary with nothing held back, telling it which of its methods the fast path
(:func:`~runtime.rpc.inline.serve_read`) would run right there now: a method known to be
fast that takes no model lock (it reads a snapshot), or one whose ``now`` the fast path
tries (a snapshot model's update applied at once); none while a call waits for a lock or
debug logging is on (as of the connection's last pass). The answerer answers the read's
first requests, as many as it takes in a row, and the usual path reads the rest, as it
would have read them all. So a frame answerer changes how fast calls are answered, never
what.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.rpc.dispatch import Call
from runtime.rpc.inline import MAX_SERVED_PER_PASS, OUTPUT_SLACK, SAMPLE_EVERY, InlineEntry
from runtime.rpc.locks import LockMode

if TYPE_CHECKING:
    from runtime.rpc.connection import Connection

log = logging.getLogger(__name__)

_NOLOCK = LockMode.NOLOCK

#: A request the answerer took but that failed once it had begun to change the model
#: (:class:`FrameAnswerer`): its msgid, its method, the error.
Failed = tuple[int, str, BaseException]
#: What the answerer answers: the replies, how many, the bytes taken, a failed request.
FrameAnswer = tuple[bytes, int, int, Failed | None]
#: ``answer(data, cluster, allowed, max_count, max_reply)``: see :class:`FrameAnswerer`.
Answer = Callable[[bytes, bytes | None, int, int, int], FrameAnswer | None]


@dataclass(frozen=True, slots=True)
class FrameAnswerer:
    """Some methods' plain calls answered from their bytes (see the module docstring).

    ``answer(data, cluster, allowed, max_count, max_reply)`` reads the whole requests at
    the start of ``data``, in order, while each is ``[0, msgid, method, [cluster,
    argument]]`` for a method of ``methods`` whose bit is set in ``allowed`` (bit ``i``
    for ``methods[i]``), with a msgid under :data:`~runtime.rpc.protocol.MSGID_LIMIT` and
    an argument it takes, up to ``max_count`` requests and ``max_reply`` bytes of replies.

    It answers ``(replies, count, consumed, failed)``: the replies to those ``count``
    requests (``[1, msgid, nil, result]`` each, packed as the connection's packer packs
    them, one after the other), the bytes of ``data`` they took, and ``failed``; or None
    when it takes none. It answers each as the usual path would, and changes nothing for
    a request it does not take. One exception: a request that fails once it has begun to
    change the model must not run again, so it is taken (counted in ``consumed``) but
    not answered, and ``failed`` is ``(msgid, method, error)`` for the server to answer
    as the fast path answers a call that raised; else ``failed`` is None. ``answer``
    raises only having changed nothing.

    ``cluster`` is the cluster name the server accepts, as clients send it (bytes), for
    the methods the dispatcher checks the name of; a method whose ``now`` checks it (a
    ``start`` row) takes any name its ``now`` would. None before a name is accepted: then
    only such methods are allowed.
    """

    methods: tuple[str, ...]
    answer: Answer

    @property
    def raw_methods(self) -> tuple[bytes, ...]:
        return tuple(method.encode("utf-8") for method in self.methods)


def serve_frames(connection: Connection, data: bytes | memoryview) -> bytes | memoryview:
    """Answer what it can of ``data`` with the server's frame answerer; what is left for
    the usual path to read (``data`` itself when nothing was answered, empty when all)."""
    server = connection.server
    frames = server.frames
    decoder = connection.decoder
    if (
        frames is None
        or type(data) is not bytes
        or decoder.given != decoder.boundary  # part of a message is held
        or decoder.scanner is not None
        or connection.backlog
        or connection.debug
        or len(data) > server.max_message_size
        or server.scheduler.blocked
    ):
        return data
    table = server.inline
    if table.version != server.dispatcher.version:
        return data  # the table changed since the entries were made
    cluster = server.dispatcher.accepted_name
    if type(cluster) is not bytes:
        cluster = None  # no name accepted yet: only methods that check it themselves
    entries = table.entries
    allowed = timed_bits = 0  # the methods offered, and those of them the samples time
    timed: list[InlineEntry] = []
    bit = 1
    for raw in server.frame_methods:
        entry = entries.get(raw)
        if entry is not None:
            if entry.now is not None:  # tried at once (it checks the cluster name)
                allowed |= bit
            elif entry.ready_arity >= 0 and entry.lock is _NOLOCK and cluster is not None:
                allowed |= bit  # known fast, no lock
                timed_bits |= bit
                timed.append(entry)
        bit <<= 1
    if not allowed:
        return data
    countdown = connection.sample_countdown
    try:
        if countdown > 1 or not timed:
            answered = frames.answer(data, cluster, allowed, MAX_SERVED_PER_PASS, OUTPUT_SLACK)
        else:  # timed, as the fast path times one call in SAMPLE_EVERY: those methods only
            started = time.perf_counter()
            answered = frames.answer(data, cluster, timed_bits, MAX_SERVED_PER_PASS, OUTPUT_SLACK)
            if answered is not None and answered[1]:
                seconds = (time.perf_counter() - started) / answered[1]
                for entry in timed:
                    entry.timing.record(seconds, on_loop=True)
                countdown = SAMPLE_EVERY + answered[1]
            else:  # no timed call to sample at its head: the next sample comes later
                countdown = SAMPLE_EVERY
                answered = frames.answer(data, cluster, allowed, MAX_SERVED_PER_PASS, OUTPUT_SLACK)
    except Exception as error:
        server.throttle.log(
            logging.ERROR, "frames", "internal error answering whole requests from %s: %s: %s",
            connection.peer, type(error).__name__, error,
        )  # fmt: skip
        return data
    if answered is None:
        return data
    replies, count, consumed, failed = answered
    connection.sample_countdown = countdown - count if countdown > count else 1
    decoder.fed += consumed
    connection.requests += count
    if connection.tracks_idle:
        connection.last_activity = time.monotonic()
    if replies:
        connection.out.append(replies)
        connection.out_bytes += len(replies)
    if failed is not None:
        _answer_failed(connection, failed)
    if consumed < len(data):
        return memoryview(data)[consumed:]  # the usual pass sends these replies with its own
    if connection.out:
        connection.send_answers()
    return b""


def _answer_failed(connection: Connection, failed: Failed) -> None:
    """Answer a request the answerer took but that failed, as the fast path answers a call
    that raised (its error reply, one warning line a second)."""
    msgid, method, error = failed
    connection.requests += 1
    handler = connection.server.dispatcher.handlers[method]
    connection.in_read = True  # (the answer waits with the others of the read)
    try:
        connection.fail(msgid, Call(method, handler, []), error)
    finally:
        connection.in_read = False
