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
