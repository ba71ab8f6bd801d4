"""msgpack-rpc-python 0.4.1 and Jubako, both ways.

- ``msgpackrpc.Client`` (oracle venv, subprocess) against a Jubako server: strings and
  bytes come back as raw, nested lists, maps, messages and datum as arrays; error 1 and 2
  arrive as the integers; a service error as its text; a slow call times out.
- Jubako's ``Client`` and ``AsyncClient`` against a ``msgpackrpc.Server`` running in the
  oracle venv: results, the server's string errors as ``RemoteError``, timeouts (and the
  connection still usable afterwards), and many pipelined calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.errors import RemoteError, RPCTimeout
from runtime.rpc.client import AsyncClient, Client
from tests.compat.interop_service import CLUSTER, RunningServer
from tests.compat.oracle import OracleServer, oracle_server, run_script, strict_equal, tag, untag

pytestmark = pytest.mark.oracle


def msgpackrpc_calls(
    server: RunningServer, calls: list[tuple[str, list[Any]]], *, timeout: int = 5
) -> list[dict[str, Any]]:
    request = {
        "client": "msgpackrpc",
        "host": server.host,
        "port": server.port,
        "name": CLUSTER,
        "timeout": timeout,
        "calls": [{"method": m, "params": tag(p)} for m, p in calls],
    }
    outcomes: list[dict[str, Any]] = run_script("client_calls.py", request, timeout=120)
    assert len(outcomes) == len(calls)
    return outcomes


# ------------------------------------------------ msgpackrpc.Client → Jubako server


def test_msgpackrpc_client_values(interop_server: RunningServer) -> None:
    datum = [[[b"k", b"v"]], [[b"n", 1.5]], [[b"b", b"\x00\xff"]]]
    calls: list[tuple[str, list[Any]]] = [
        ("echo_string", [CLUSTER, "h\u00e9llo"]),
        ("echo_raw", [CLUSTER, b"\x00\x01\xff"]),
        ("echo_nested", [CLUSTER, [["a"], [], ["b", "c"]]]),
        ("echo_map", [CLUSTER, {"x": [1.0, -2.5]}]),
        ("echo_estimate", [CLUSTER, ["pos", 0.25]]),
        ("echo_datum", [CLUSTER, datum]),
        ("add", [CLUSTER, 20, 22]),
        ("echo_double", [CLUSTER, 2]),  # an int where a double is declared: sent back as 2.0
        ("echo_nullable", [CLUSTER, None]),
    ]
    expected: list[Any] = [
        "h\u00e9llo".encode(),
        b"\x00\x01\xff",
        [[b"a"], [], [b"b", b"c"]],
        {b"x": [1.0, -2.5]},
        [b"pos", 0.25],
        datum,
        42,
        2.0,
        None,
    ]
    outcomes = msgpackrpc_calls(interop_server, calls)
    for (method, _), outcome, value in zip(calls, outcomes, expected, strict=True):
        assert "ok" in outcome, f"{method}: {outcome.get('repr')}"
        assert strict_equal(untag(outcome["ok"]), value), (method, outcome["ok"])


def test_msgpackrpc_client_errors(interop_server: RunningServer) -> None:
    calls: list[tuple[str, list[Any]]] = [
        ("no_such_method", [CLUSTER]),
        ("add", [CLUSTER, "a", "b"]),
        ("add", [CLUSTER, 1]),
        ("fail", [CLUSTER, "it broke"]),
        ("dummy", []),  # the readiness probe: no cluster name at all
    ]
    unknown, wrong_type, too_few, failed, probe = msgpackrpc_calls(interop_server, calls)
    for outcome, code in ((unknown, 1), (wrong_type, 2), (too_few, 2), (probe, 1)):
        assert outcome["raised"]["$exc"] == "msgpackrpc.error.RPCError", outcome
        assert outcome["raised"]["args"] == [code]
    assert failed["raised"]["$exc"] == "msgpackrpc.error.RPCError"
    (text,) = failed["raised"]["args"]
    assert b"it broke" in untag(text)


def test_msgpackrpc_client_timeout(interop_server: RunningServer) -> None:
    slow, after = msgpackrpc_calls(
        interop_server, [("sleep", [CLUSTER, 3.0]), ("echo_string", [CLUSTER, "ok"])], timeout=1
    )
    assert slow["raised"]["$exc"] == "msgpackrpc.error.TimeoutError", slow
    assert untag(after["ok"]) == b"ok"


# ------------------------------------------------ Jubako clients → msgpackrpc.Server


@pytest.fixture(scope="module")
def msgpackrpc_server() -> Iterator[OracleServer]:
    with oracle_server("msgpackrpc_server.py", "0") as server:
        yield server


def test_jubako_client_values(msgpackrpc_server: OracleServer) -> None:
    with Client("127.0.0.1", msgpackrpc_server.port, timeout=10) as client:
        assert client.call("echo", ["c", "h\u00e9llo"]) == "h\u00e9llo".encode()
        assert client.call("echo", ["c", b"\x00\xff"]) == b"\x00\xff"
        assert client.call("echo", ["c", [1, [2.5, None], {"k": True}]]) == [
            1,
            [2.5, None],
            {b"k": True},
        ]
        assert client.call("add", ["c", 2**40, 2]) == 2**40 + 2
        assert client.call("add", ["c", 0.5, 0.25]) == 0.75
        assert client.call("echo_params", ["c", "x", 3]) == [b"c", b"x", 3]
        sample = client.call("sample", ["c"])
        assert strict_equal(
            sample,
            {
                b"text": "h\u00e9llo".encode(),
                b"blob": b"\x00\x01\xff",
                b"numbers": [1, -2, 3.5, 2**40],
                b"flags": [True, False, None],
                b"nested": {b"k": [[b"a", 1.0]]},
            },
        )


def test_jubako_client_errors(msgpackrpc_server: OracleServer) -> None:
    with Client("127.0.0.1", msgpackrpc_server.port, timeout=10) as client:
        with pytest.raises(RemoteError) as failed:
            client.call("fail", ["c", "boom"])
        assert failed.value.message == "boom"
        # msgpack-rpc-python answers an unknown method with a text, not with error 1
        with pytest.raises(RemoteError, match="'nope' method not found"):
            client.call("nope", ["c"])
        assert client.call("echo", ["c", "still fine"]) == b"still fine"


def test_jubako_client_timeout_keeps_the_connection(msgpackrpc_server: OracleServer) -> None:
    with Client("127.0.0.1", msgpackrpc_server.port, timeout=10) as client:
        with pytest.raises(RPCTimeout):
            client.call("sleep", ["c", 1.5], timeout=0.3)
        # the late reply to the timed-out call is skipped; this call gets its own
        assert client.call("echo", ["c", "next"]) == b"next"


@pytest.mark.asyncio
async def test_async_client_pipelines_many_calls(msgpackrpc_server: OracleServer) -> None:
    async with AsyncClient("127.0.0.1", msgpackrpc_server.port, timeout=20) as client:
        results = await asyncio.gather(*(client.call("add", ["c", i, 1000]) for i in range(500)))
        assert results == [i + 1000 for i in range(500)]
        with pytest.raises(RemoteError, match="boom"):
            await client.call("fail", ["c", "boom"])


@pytest.mark.asyncio
async def test_async_client_timeout(msgpackrpc_server: OracleServer) -> None:
    async with AsyncClient("127.0.0.1", msgpackrpc_server.port, timeout=10) as client:
        with pytest.raises(RPCTimeout):
            await client.call("sleep", ["c", 1.5], timeout=0.3)
        assert await client.call("echo", ["c", "next"]) == b"next"
