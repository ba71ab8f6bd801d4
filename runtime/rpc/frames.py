"""Whole requests answered from their bytes: a service's :class:`FrameAnswerer`.

A service may answer one method's plain calls straight from the bytes a read brings
(the classifier's ``classify``, in compiled code): no objects for the request, none for
the reply. :func:`serve_frames` offers it a read when the read starts at a message
boundary with nothing held back, and the fast path (:func:`~runtime.rpc.inline.serve_read`)
would run the method right there: known to be fast, taking no model lock (it reads a
snapshot), no call waiting for a lock, no debug logging (as of the connection's last
pass). The answerer answers every request the read holds or none: anything else it meets
(part of a request, another method, another cluster name, an argument it does not take)
leaves the whole read to the usual path, which answers it exactly as the answerer would
have. So a frame answerer changes how fast calls are answered, never what.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.rpc.inline import MAX_SERVED_PER_PASS, OUTPUT_SLACK, SAMPLE_EVERY
from runtime.rpc.locks import LockMode

if TYPE_CHECKING:
    from runtime.rpc.connection import Connection

log = logging.getLogger(__name__)

#: ``answer(data, cluster, max_count, max_reply)``: the replies to the requests ``data``
#: holds, packed one after the other, and how many; or None, having changed nothing.
#: ``cluster`` is the cluster name the server accepts, as clients send it (bytes).
Answer = Callable[[bytes, bytes, int, int], "tuple[bytes, int] | None"]


@dataclass(frozen=True, slots=True)
class FrameAnswerer:
    """One method's plain calls answered from their bytes (see the module docstring).

    ``answer`` takes ``(data, cluster, max_count, max_reply)``: it answers None unless
    ``data`` is nothing but whole requests ``[0, msgid, method, [cluster, argument]]``,
    at most ``max_count`` of them, with msgids under
    :data:`~runtime.rpc.protocol.MSGID_LIMIT` and arguments it takes, whose replies
    (``[1, msgid, nil, result]`` each, packed as the connection's packer packs them) come
    to at most ``max_reply`` bytes; then it answers those replies and their count.
    """

    method: str
    answer: Answer

    @property
    def raw_method(self) -> bytes:
        return self.method.encode("utf-8")


def serve_frames(connection: Connection, data: bytes | memoryview) -> bool:
    """Answer ``data`` with the server's frame answerer, when it may and does; False,
    having done nothing, for the usual path to read it."""
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
        return False
    table = server.inline
    entry = table.entries.get(server.frame_method)
    if entry is None or entry.ready_arity < 0 or entry.lock is not LockMode.NOLOCK:
        return False  # not run inline yet, or not known to be fast
    cluster = server.dispatcher.accepted_name
    if type(cluster) is not bytes or table.version != server.dispatcher.version:
        return False  # no call accepted yet, or the table changed since
    countdown = connection.sample_countdown
    try:
        if countdown > 1:
            answered = frames.answer(data, cluster, MAX_SERVED_PER_PASS, OUTPUT_SLACK)
        else:  # timed, as the fast path times one call in SAMPLE_EVERY
            started = time.perf_counter()
            answered = frames.answer(data, cluster, MAX_SERVED_PER_PASS, OUTPUT_SLACK)
            if answered is not None:
                seconds = (time.perf_counter() - started) / answered[1]
                entry.timing.record(seconds, on_loop=True)
                countdown = SAMPLE_EVERY + answered[1]
    except Exception:
        log.exception("internal error answering whole requests from %s", connection.peer)
        return False
    if answered is None:
        return False
    replies, count = answered
    connection.sample_countdown = countdown - count if countdown > count else 1
    decoder.fed += len(data)
    connection.requests += count
    if connection.tracks_idle:
        connection.last_activity = time.monotonic()
    connection.out.append(replies)
    connection.out_bytes += len(replies)
    connection.send_answers()
    return True
