"""The stat service's status says what it is made from (``status_key``), so a server
sends the status it packed last until something it shows changes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgpack

from engines.stat.stat_serv import StatServ
from runtime.process.cli import parse_server_args
from runtime.rpc.locks import RWLock
from runtime.server.host import ServiceHost


def test_a_stat_servers_status_is_kept_between_changes(tmp_path: Path) -> None:
    serv = StatServ(json.dumps({"window_size": 7}))
    assert serv.status_key() == 7
    settings = parse_server_args("x", ["--rpc-port", "9199", "--datadir", str(tmp_path)])
    host = ServiceHost(
        serv, service_type="stat", settings=settings, model_lock=RWLock(), prog="x",
        configpath_label="", use_cht=False,
    )  # fmt: skip
    host.packed_status()  # (the first reads the memory figures: not kept)
    for _ in range(5):  # (a second's boundary between the calls makes it again)
        second = int(time.time())
        first = host.packed_status()
        kept = host.packed_status() is first
        if int(time.time()) == second:
            break
    assert kept
    status = msgpack.unpackb(first, raw=False)["127.0.0.1_9199"]
    assert status["storage"] == "stat" and status["window_size"] == "7"
    host.on_update()
    assert msgpack.unpackb(host.packed_status(), raw=False)["127.0.0.1_9199"]["update_count"] == "1"
