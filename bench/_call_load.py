"""Load generator for ``bench.vs_jubatus``: a lean closed-loop msgpack-rpc client.

``python -m bench._call_load --port P --call NAME [--connections N] [--depth D]
[--seconds S] [--warmup W] [--server-pid PID]`` keeps ``depth`` calls of ``NAME`` (one of
:data:`CALLS`) in flight on each of ``connections`` connections (closed loop: every reply
sends the next request, written in one batch per read), warms up, then measures. Requests
are packed in the old msgpack spec (``use_bin_type=False``), as Jubatus's own clients and
servers speak it, so the same bytes go to Jubako's server and Jubatus's C++ one; replies
are decoded in full (the client's decoding is part of a call) and counted only when their
error is nil. It prints one JSON object: calls/s, p50/p99 latency, server and client CPU
per call.

The data is fixed and shared with ``bench.vs_jubatus``: :func:`datum` builds one datum of
one string (three words for a ``space`` rule) and three numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time

import msgpack

from bench._load import LoadConnection, Window, measure

CLUSTER = "bench"
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")
LABELS = ("pos", "neg", "neutral")
#: Distinct request bodies each call cycles through (train moves the model, classify
#: sees different datums).
VARIANTS = 64
CALLS = ("get_status", "classify", "train", "classify100")


def datum(i: int) -> list[list[list[object]]]:
    """The wire datum number ``i``: one string of three words and three numbers."""
    words = " ".join(WORDS[(i * k + k) % len(WORDS)] for k in (1, 2, 3))
    numbers = [[f"x{d}", float((i * 7 + d * 13) % 17) / 4.0] for d in range(3)]
    return [[["text", words]], numbers, []]


def labeled(i: int) -> list[object]:
    return [LABELS[i % len(LABELS)], datum(i)]


def params(call: str, i: int) -> list[object]:
    """The parameters (cluster name first) of request variant ``i`` of ``call``."""
    if call == "get_status":
        return [CLUSTER]
    if call == "classify":
        return [CLUSTER, [datum(i)]]
    if call == "classify100":
        return [CLUSTER, [datum(i * 100 + k) for k in range(100)]]
    if call == "train":
        return [CLUSTER, [labeled(i)]]
    raise ValueError(call)


def method(call: str) -> str:
    return "classify" if call == "classify100" else call


def bodies(call: str) -> list[bytes]:
    """Each request variant packed, without its ``[0, msgid`` head."""
    name = msgpack.packb(method(call), use_bin_type=False)
    count = 1 if call == "get_status" else VARIANTS
    return [name + msgpack.packb(params(call, i), use_bin_type=False) for i in range(count)]


class CallConnection(LoadConnection):
    """A :class:`~bench._load.LoadConnection` cycling over request variants, replies
    decoded in full and the first error kept."""

    def __init__(self, bodies: list[bytes], depth: int, window: Window, offset: int) -> None:
        super().__init__(bodies[0], 0, depth, window)
        self.bodies = bodies
        self.turn = offset
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=64 * 1024 * 1024)

    def _request(self, now: int) -> bytes:
        msgid = self.next_id
        self.next_id = (msgid + 1) & 0xFFFFFFFF
        self.sent_at[msgid] = now
        self.turn = (self.turn + 1) % len(self.bodies)
        return b"\x94\x00" + struct.pack(">BI", 0xCE, msgid) + self.bodies[self.turn]

    def data_received(self, data: bytes) -> None:
        self.unpacker.feed(data)
        window = self.window
        now = time.perf_counter_ns()
        replies = 0
        for message in self.unpacker:
            replies += 1
            sent = self.sent_at.pop(message[1], None)
            if window.measuring:
                if message[2] is None and sent is not None:
                    window.calls += 1
                    window.latencies_ns.append(now - sent)
                else:
                    window.errors += 1
                    if window.first_error is None:
                        window.first_error = message[2]
        if replies and not window.stopping and self.transport is not None:
            self.transport.write(b"".join(self._request(now) for _ in range(replies)))


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    window = Window()
    packed = bodies(args.call)
    connections: list[CallConnection] = []
    for n in range(args.connections):
        _, protocol = await loop.create_connection(
            lambda n=n: CallConnection(packed, args.depth, window, n * 7),  # type: ignore[misc]
            args.host,
            args.port,
        )
        connections.append(protocol)
    return await measure(connections, window, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--call", choices=CALLS, required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--server-pid", type=int, default=0)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
