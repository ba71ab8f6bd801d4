"""The official ``jubatus`` 1.1.0 client against a Jubako server.

The client runs in the oracle venv (it needs msgpack 0.5) as a subprocess; the server is
the interop service on 127.0.0.1. Every call recorded in ``golden_frames.json`` is made
through the client's generic ``jubatus_client.call`` (or its built-in methods) and must
return exactly what the client returned when the frames were recorded, or raise the same
exception: ``UnknownMethod`` for error 1, ``TypeMismatch`` for error 2, ``RPCError``
carrying the service's error text. A timeout, long values and many calls on one
connection are checked too.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.compat.interop_service import CLUSTER, RunningServer
from tests.compat.oracle import golden_calls, run_script, strict_equal, tag, untag

pytestmark = pytest.mark.oracle

CALLS = golden_calls()


def client_call(entry: dict[str, Any]) -> dict[str, Any]:
    """The part of a golden entry the client script needs."""
    keys = ("method", "args", "arg_types", "ret_type", "builtin")
    return {k: entry[k] for k in keys if k in entry}


def run_client(
    server: RunningServer, calls: list[dict[str, Any]], *, timeout: int = 5
) -> list[dict[str, Any]]:
    request = {
        "client": "jubatus",
        "host": server.host,
        "port": server.port,
        "name": CLUSTER,
        "timeout": timeout,
        "calls": calls,
    }
    outcomes: list[dict[str, Any]] = run_script("client_calls.py", request, timeout=120)
    assert len(outcomes) == len(calls)
    return outcomes


def raised_type(outcome: dict[str, Any]) -> str:
    assert "raised" in outcome, f"expected an exception, the call returned {outcome}"
    kind: str = outcome["raised"]["$exc"]
    return kind


@pytest.fixture(scope="module")
def golden_outcomes(interop_server: RunningServer) -> list[dict[str, Any]]:
    """Every golden call made once by the official client, in order, on one connection."""
    return run_client(interop_server, [client_call(c) for c in CALLS])


@pytest.mark.parametrize("index", range(len(CALLS)), ids=[c["name"] for c in CALLS])
def test_official_client_gets_what_it_expects(
    golden_outcomes: list[dict[str, Any]], index: int
) -> None:
    call, outcome = CALLS[index], golden_outcomes[index]
    expect = call["expect"]
    if "ok" in expect:
        assert "ok" in outcome, f"{call['name']}: the client raised {outcome.get('repr')}"
        assert strict_equal(outcome["ok"], expect["ok"]), (outcome["ok"], expect["ok"])
        return
    assert raised_type(outcome) == expect["raises"], outcome["repr"]
    if "message" in expect:
        (argument,) = outcome["raised"]["args"]
        text = untag(argument)
        assert isinstance(text, bytes), argument  # the client hands the text over as bytes
        assert expect["message"] in text.decode("utf-8")


def test_timeout_then_the_connection_stays_usable(interop_server: RunningServer) -> None:
    calls: list[dict[str, Any]] = [
        {"method": "sleep", "args": [3.0], "arg_types": ["float"], "ret_type": "bool"},
        {"method": "echo_string", "args": ["after"], "arg_types": ["string"],
         "ret_type": "string"},
    ]  # fmt: skip
    slow, after = run_client(interop_server, calls, timeout=1)
    assert raised_type(slow) == "msgpackrpc.error.RPCError", slow
    (cause,) = slow["raised"]["args"]
    assert cause["$exc"] == "msgpackrpc.error.TimeoutError"
    assert after == {"ok": "after", "elapsed": after["elapsed"]}


def test_long_values_use_raw32_and_round_trip(interop_server: RunningServer) -> None:
    text = "\u00e9" * 40_000  # 80 000 bytes of UTF-8: raw32 on the wire
    blob = bytes(range(256)) * 4096  # 1 MiB, not UTF-8
    calls = [
        {"method": "echo_string", "args": [text], "arg_types": ["string"], "ret_type": "string"},
        {"method": "echo_raw", "args": [tag(blob)], "arg_types": ["raw"], "ret_type": "raw"},
    ]
    long_text, long_blob = run_client(interop_server, calls)
    assert long_text["ok"] == text
    assert untag(long_blob["ok"]) == blob


def test_many_calls_on_one_connection(interop_server: RunningServer) -> None:
    int32 = ["int", True, 4]
    calls = [
        {"method": "add", "args": [i, -2 * i], "arg_types": [int32, int32], "ret_type": int32}
        for i in range(300)  # msgids past 255 take a wider encoding
    ]
    outcomes = run_client(interop_server, calls)
    assert [o.get("ok") for o in outcomes] == [-i for i in range(300)]


def test_server_side_type_errors_reach_the_client_as_type_mismatch(
    interop_server: RunningServer,
) -> None:
    calls = [
        # a string where the server expects a datum
        {"method": "echo_datum", "args": ["x"], "arg_types": ["string"], "ret_type": "datum"},
        # invalid UTF-8 where the server expects a string
        {"method": "echo_string", "args": [tag(b"\xff\xfe")], "arg_types": ["raw"],
         "ret_type": "string"},
        # an out-of-range value for uint32
        {"method": "echo_uint", "args": [-1], "arg_types": [["int", True, 4]],
         "ret_type": ["int", False, 4]},
        # a message with a missing field
        {"method": "echo_estimate", "args": [["only label"]], "arg_types": [["list", "string"]],
         "ret_type": "object"},
    ]  # fmt: skip
    for outcome in run_client(interop_server, calls):
        assert raised_type(outcome) == "jubatus.common.client.TypeMismatch", outcome
