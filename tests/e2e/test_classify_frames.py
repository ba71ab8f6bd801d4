"""A real jubaclassifier answers plain ``classify`` calls from their bytes (the frame
answerer) exactly as its usual path answers them, and sees each newly published model.

A request written alone is taken from its bytes once ``classify`` is known to be fast; the
same request written together with part of the next one is not (the answerer takes whole
reads only), so the usual path answers it: the two replies must be the same bytes.
"""

from __future__ import annotations

import json
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import msgpack
import pytest

from engines.classifier import classifier_types as types
from runtime.testing import ServerProcess
from runtime.wire.datum import Datum
from tests.e2e.classifier_cluster import IMPL, client

pytestmark = [pytest.mark.e2e]

CONFIG = {
    "method": "AROW",
    "parameter": {"regularization_weight": 1.0},
    "converter": {
        "string_rules": [
            {"key": "*", "type": "space", "sample_weight": "bin", "global_weight": "bin"}
        ],
        "num_rules": [{"key": "*", "type": "num"}],
    },
}


def wire_datum(words: str, x: float) -> list[Any]:
    return [[["text", words]], [["x", x], ["y", 2]], []]


def classify_request(msgid: int, data: list[Any]) -> bytes:
    packed: bytes = msgpack.packb([0, msgid, "classify", ["m", data]], use_bin_type=False)
    return packed


class Raw:
    """One connection: write bytes, read the replies they bring, each as its bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.unpacker = msgpack.Unpacker(raw=True)

    def replies(self, count: int) -> list[bytes]:
        out: list[bytes] = []
        while len(out) < count:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.unpacker.feed(data)
            for message in self.unpacker:
                out.append(msgpack.packb(message, use_bin_type=False))
        return out

    def call(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        (reply,) = self.replies(1)
        return reply


def test_replies_from_the_bytes_are_the_usual_paths(tmp_path: Path) -> None:
    path = tmp_path / "classifier.json"
    path.write_text(json.dumps(CONFIG))
    args = ["--rpc-port", "0", "--configpath", str(path), "--datadir", str(tmp_path)]
    with ExitStack() as stack:
        server = stack.enter_context(ServerProcess(IMPL, args, log_path=tmp_path / "server.log"))
        with client(server) as c:
            examples = [
                types.LabeledDatum(
                    "spam" if i % 3 else "ham",
                    Datum({"text": "cheap pills now" if i % 3 else "lunch at noon", "x": i / 7}),
                )
                for i in range(60)
            ]
            assert c.train(examples) == 60
        raw = Raw(server.port)
        data = [wire_datum("cheap lunch", 0.5), wire_datum("pills", -1.25), wire_datum("", 3)]
        for msgid in range(40):  # the first calls run on workers, then inline
            raw.call(classify_request(msgid, data))
        alone = raw.call(classify_request(100, data))
        following = classify_request(101, data)
        raw.sock.sendall(classify_request(100, data) + following[:9])
        (together,) = raw.replies(1)
        raw.sock.sendall(following[9:])
        (rest,) = raw.replies(1)
        assert alone == together
        assert msgpack.unpackb(rest)[3] == msgpack.unpackb(alone)[3]
        labels = {label for label, _ in msgpack.unpackb(alone, raw=False)[3][0]}
        assert labels == {"spam", "ham"}

        # A new label, trained and published, is in the next answer from the bytes.
        with client(server) as c:
            assert c.train([types.LabeledDatum("eggs", Datum({"text": "boiled eggs"}))]) == 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            newer = raw.call(classify_request(200, data))
            if len(msgpack.unpackb(newer)[3][0]) == 3:
                break
        labels = {label for label, _ in msgpack.unpackb(newer, raw=False)[3][0]}
        assert labels == {"spam", "ham", "eggs"}
        raw.sock.sendall(classify_request(200, data) + following[:9])
        assert raw.replies(1) == [newer]
        raw.sock.close()


def _server(stack: ExitStack, tmp_path: Path, name: str) -> ServerProcess:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(CONFIG))
    args = ["--rpc-port", "0", "--configpath", str(path), "--datadir", str(tmp_path)]
    return stack.enter_context(ServerProcess(IMPL, args, log_path=tmp_path / f"{name}.log"))


def test_trains_answered_from_their_bytes_learn_as_the_usual_path(tmp_path: Path) -> None:
    """Server A reads each train alone (from its bytes, learnt at once); server B reads each
    after a get_status in the same write (the usual path): same replies, same model."""

    def train_request(msgid: int, label: str, datum: list[Any]) -> bytes:
        packed: bytes = msgpack.packb(
            [0, msgid, "train", ["m", [[label, datum]]]], use_bin_type=False
        )
        return packed

    status = msgpack.packb([0, 0, "get_status", ["m"]], use_bin_type=False)
    with ExitStack() as stack:
        servers = [_server(stack, tmp_path, name) for name in ("a", "b")]
        for server in servers:  # every label and word known: trains can be learnt at once
            with client(server) as c:
                seed = [
                    types.LabeledDatum(label, Datum({"text": words, "x": 1.0, "y": 2.0}))
                    for label in ("spam", "ham")
                    for words in ("cheap pills now", "lunch at noon", "cheap lunch", "pills")
                ]
                assert c.train(seed) == 8
        a, b = (Raw(server.port) for server in servers)
        a.call(status)  # a name accepted: from now on A reads its trains from their bytes
        for msgid in range(1, 200):
            words = ("cheap lunch", "pills", "lunch at noon", "cheap pills now")[msgid % 4]
            request = train_request(
                msgid, "spam" if msgid % 3 else "ham", wire_datum(words, msgid / 9)
            )
            replied = a.call(request)
            b.sock.sendall(status + request)
            assert [r for r in b.replies(2) if msgpack.unpackb(r)[1] == msgid] == [replied]
        probe = [wire_datum("cheap lunch", 0.5), wire_datum("pills", -1.25)]
        answers = []
        for raw in (a, b):
            raw.sock.sendall(status + classify_request(500, probe))  # the usual path
            answers += [r for r in raw.replies(2) if msgpack.unpackb(r)[1] == 500]
        assert answers[0] == answers[1]
        labels = {label for label, _ in msgpack.unpackb(answers[0], raw=False)[3][0]}
        assert labels == {"spam", "ham"}
        a.sock.close()
        b.sock.close()
