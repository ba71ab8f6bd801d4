"""What small or read-only requests can cost an engine server in memory.

- A 16 KB ``add_bulk`` of 4000 empty rows to ``light_lof`` asks every row's neighbours among
  4000 rows at once: the distances are computed in passes of a bounded size (2 MiB arrays),
  not as one 4000 x 4000 matrix and its temporaries (+234 MB of peak memory before, kept by
  the allocator).
- ``classify`` calls of long, ever-new texts: the converter's caches keep no value past
  4096 characters and at most 4 Mi characters in all (before: +6 MB kept per 400 KB call,
  766 MB after 120 calls, for good).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from runtime.rpc.client import Client
from runtime.testing import ServerProcess, peak_mib, rss_mib

LIGHT_LOF = {
    "method": "light_lof",
    "parameter": {
        "nearest_neighbor_num": 10,
        "reverse_nearest_neighbor_num": 30,
        "method": "euclid_lsh",
        "parameter": {"hash_num": 64},
    },
    "converter": {"num_rules": [{"key": "*", "type": "num"}]},
}
BOUND_MIB = 80


def test_a_bulk_add_of_empty_rows_costs_bounded_memory(tmp_path: Path) -> None:
    found = shutil.which("jubaanomaly", path=str(Path(sys.executable).parent))
    assert found is not None
    config = tmp_path / "config.json"
    config.write_text(json.dumps(LIGHT_LOF))
    args = ["--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp_path)]
    with (
        ServerProcess(Path(found), args, log_path=tmp_path / "server.log") as server,
        Client("127.0.0.1", server.port, timeout=120) as client,
    ):
        assert client.call("get_status", ["c"])
        before = peak_mib(server.pid)
        ids = client.call("add_bulk", ["c", [[[], [], []]] * 4000])
        assert len(ids) == 4000
        grown = peak_mib(server.pid) - before
        assert grown < BOUND_MIB, f"{grown:.0f} MiB for a 16 KB request"
        assert isinstance(client.call("calc_score", ["c", [[], [], []]]), float)


def test_classify_calls_of_long_new_texts_leave_memory_where_it_was(tmp_path: Path) -> None:
    found = shutil.which("jubaclassifier", path=str(Path(sys.executable).parent))
    assert found is not None
    config = tmp_path / "config.json"
    rule = {"key": "*", "type": "space", "sample_weight": "bin", "global_weight": "bin"}
    config.write_text(json.dumps({"method": "AROW", "parameter": {"regularization_weight": 1.0},
                                  "converter": {"string_rules": [rule]}}))  # fmt: skip
    args = ["--rpc-port", "0", "--configpath", str(config), "--datadir", str(tmp_path)]
    words = " ".join(f"w{i}" for i in range(50_000))  # 340 KB
    with (
        ServerProcess(Path(found), args, log_path=tmp_path / "server.log") as server,
        Client("127.0.0.1", server.port, timeout=60) as client,
    ):
        assert client.call("train", ["c", [["a", [[["t", "hello"]], [], []]]]]) == 1
        before = rss_mib(server.pid)
        for i in range(30):
            scores = client.call("classify", ["c", [[[["t", f"{words} u{i}"]], [], []]]])
            assert len(scores) == 1
        grown = rss_mib(server.pid) - before
    assert grown < 60, f"{grown:.0f} MiB kept after 30 classify calls of 340 KB"
