"""Request frames recorded from the official jubatus client, replayed against Jubako.

Each frame in ``golden_frames.json`` is sent byte for byte to a real Jubako server of the
interop service over a socket. The reply must carry the frame's msgid, be packed the way
Jubatus packs (old msgpack spec: raw strings, no str8/bin; canonical, so a re-pack gives
the same bytes), and say what the official client accepted when the frames were
recorded: the same result value (types kept apart: 1, 1.0 and true differ), or the
error code 1 / 2, or an error text. Runs in the main venv only; the oracle venv is needed
only to re-record the frames.
"""

from __future__ import annotations

import socket
from typing import Any

import msgpack
import pytest

from tests.compat.interop_service import CLUSTER, RunningServer
from tests.compat.oracle import golden_calls, golden_cluster_name, strict_equal

CALLS = golden_calls()


def exchange(port: int, frame: bytes, replies: int = 1) -> tuple[bytes, list[Any]]:
    """Send ``frame``; the bytes of the next ``replies`` replies and the replies decoded."""
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    received = b""
    messages: list[Any] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame)
        while len(messages) < replies:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("the server closed the connection before replying")
            received += chunk
            unpacker.feed(chunk)
            messages.extend(unpacker)
    return received, messages


def test_golden_file_matches_the_interop_service() -> None:
    assert golden_cluster_name() == CLUSTER
    assert len(CALLS) >= 30
    assert len({c["msgid"] for c in CALLS}) == len(CALLS)


@pytest.mark.parametrize("call", CALLS, ids=[c["name"] for c in CALLS])
def test_reply_to_golden_frame(interop_server: RunningServer, call: dict[str, Any]) -> None:
    frame = bytes.fromhex(call["request_hex"])
    raw, (reply,) = exchange(interop_server.port, frame)
    assert isinstance(reply, list) and len(reply) == 4, reply
    assert reply[0] == 1 and reply[1] == call["msgid"]
    # packed like Jubatus packs: old spec, canonical (re-packing gives the same bytes)
    assert msgpack.packb(reply, use_bin_type=False) == raw
    error, result = reply[2], reply[3]
    expect = call["expect"]
    if "ok" in expect:
        accepted = msgpack.unpackb(
            bytes.fromhex(call["accepted_reply"]["result_hex"]), raw=True, strict_map_key=False
        )
        assert error is None, error
        assert strict_equal(result, accepted), (result, accepted)
    elif expect["raises"].endswith("UnknownMethod"):
        assert error == 1
        assert result == call["method"].encode()  # Jubatus sends the method name too
    elif expect["raises"].endswith("TypeMismatch"):
        assert error == 2
    else:
        assert isinstance(error, bytes), error
        assert expect["message"] in error.decode("utf-8")
        assert result is None


def test_all_golden_frames_pipelined_on_one_connection(interop_server: RunningServer) -> None:
    frames = b"".join(bytes.fromhex(c["request_hex"]) for c in CALLS)
    _, replies = exchange(interop_server.port, frames, replies=len(CALLS))
    by_id = {reply[1]: reply for reply in replies}
    assert sorted(by_id) == sorted(c["msgid"] for c in CALLS)
    for call in CALLS:
        reply = by_id[call["msgid"]]
        assert (reply[2] is None) == ("ok" in call["expect"]), (call["name"], reply)


def test_frame_split_into_single_bytes_is_reassembled(interop_server: RunningServer) -> None:
    call = next(c for c in CALLS if c["name"] == "datum")
    frame = bytes.fromhex(call["request_hex"])
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    with socket.create_connection(("127.0.0.1", interop_server.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(len(frame)):
            sock.sendall(frame[index : index + 1])
        replies: list[Any] = []
        while not replies:
            chunk = sock.recv(65536)
            assert chunk, "closed before replying"
            unpacker.feed(chunk)
            replies.extend(unpacker)
    assert replies[0][1] == call["msgid"] and replies[0][2] is None
