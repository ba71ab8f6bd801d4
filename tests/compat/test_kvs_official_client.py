"""The official ``jubatus`` client (own venv) against the generated kvs server.

Built-ins through ``ClientBase`` (``get_status``, ``get_config``, ``save``, ``load``) and
the kvs methods through its generic ``jubatus_client.call`` must give answers of the
types the client checks.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from runtime.testing import ServerProcess
from tests.compat.oracle import run_script, untag

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "kvs"

pytestmark = pytest.mark.oracle


def call(method: str, args: list[Any], arg_types: list[Any], ret_type: Any) -> dict[str, Any]:
    return {"method": method, "args": args, "arg_types": arg_types, "ret_type": ret_type}


def builtin(method: str, *args: Any) -> dict[str, Any]:
    return {"method": method, "args": list(args), "builtin": True}


def test_official_client_drives_the_kvs_server(tmp_path: Path) -> None:
    args = [
        "--rpc-port",
        "0",
        "--configpath",
        str(EXAMPLE / "config.json"),
        "--datadir",
        str(tmp_path),
    ]
    with ServerProcess(EXAMPLE / "kvs_impl.py", args, cwd=EXAMPLE) as server:
        calls = [
            call("put", ["apple", "red"], ["string", "string"], "bool"),
            call("get", ["apple"], ["string"], "string"),
            call("del", ["apple"], ["string"], "bool"),
            call("put", ["pear", "green"], ["string", "string"], "bool"),
            builtin("get_config"),
            builtin("save", "snap"),
            call("clear", [], [], "bool"),
            builtin("load", "snap"),
            call("get", ["pear"], ["string"], "string"),
            builtin("get_status"),
            call("no_such_method", [], [], "bool"),
            call("put", [1, "x"], ["object", "string"], "bool"),
        ]
        request = {
            "client": "jubatus", "host": "127.0.0.1", "port": server.port,
            "name": "kvs-cluster", "timeout": 5, "calls": calls,
        }  # fmt: skip
        outcomes = run_script("client_calls.py", request, timeout=120)
    ok: list[Any] = [untag(o["ok"]) if "ok" in o else None for o in outcomes]
    assert ok[0] is True
    assert ok[1] == "red"
    assert ok[2] is True
    assert ok[4] == "{}\n"
    server_id = f"127.0.0.1_{server.port}"
    assert ok[5] == {server_id: str(tmp_path / f"{server_id}_kvs_snap.jubatus")}
    assert ok[7] is True
    assert ok[8] == "green"
    status = ok[9][server_id]
    assert status["type"] == "kvs" and status["num_keys"] == "1"
    assert all(isinstance(v, str) for v in status.values())
    assert outcomes[10]["raised"]["$exc"].endswith("UnknownMethod")
    assert outcomes[11]["raised"]["$exc"].endswith("TypeMismatch")


def test_official_client_through_a_proxy(tmp_path: Path) -> None:
    args = [
        "--rpc-port",
        "0",
        "--configpath",
        str(EXAMPLE / "config.json"),
        "--datadir",
        str(tmp_path),
    ]
    with ExitStack() as stack:
        servers = [
            stack.enter_context(ServerProcess(EXAMPLE / "kvs_impl.py", args, cwd=EXAMPLE))
            for _ in range(2)
        ]
        members = ",".join(f"127.0.0.1:{s.port}" for s in servers)
        proxy = stack.enter_context(
            ServerProcess(
                EXAMPLE / "kvs_proxy.py", ["--rpc-port", "0", "--servers", members], cwd=EXAMPLE
            )
        )
        calls = [
            call("put", ["apple", "red"], ["string", "string"], "bool"),
            call("get", ["apple"], ["string"], "string"),
            builtin("get_status"),
            builtin("get_proxy_status"),
            builtin("save", "snap"),
            builtin("load", "snap"),
            builtin("get_config"),
        ]
        request = {
            "client": "jubatus", "host": "127.0.0.1", "port": proxy.port,
            "name": "kvs-cluster", "timeout": 5, "calls": calls,
        }  # fmt: skip
        outcomes = run_script("client_calls.py", request, timeout=120)
    ok: list[Any] = [untag(o["ok"]) if "ok" in o else o for o in outcomes]
    assert ok[0] is True and ok[1] == "red"
    assert sorted(ok[2]) == sorted(f"127.0.0.1_{s.port}" for s in servers)
    assert sum(int(v["num_keys"]) for v in ok[2].values()) == 2
    [(proxy_id, proxy_status)] = ok[3].items()
    assert proxy_id == f"127.0.0.1_{proxy.port}" and int(proxy_status["request_count"]) >= 4
    assert len(ok[4]) == 2 and ok[5] is True
    assert ok[6] == "{}\n"
