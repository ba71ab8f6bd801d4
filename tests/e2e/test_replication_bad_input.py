"""The servers' cluster-internal methods (``jubako.replicate``, ``jubako.export``,
``jubako.import``, ``jubako.catch_up``, ``jubako.prune``, ``jubako.ping``) fed garbage by a
client: each call gets a clear error, the server keeps serving, and no row is lost.

Any client that can connect may call them (there is no authentication, as in Jubatus):
what they cost is bounded like every other method's (docs/operating.md, Limits).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from runtime.errors import RemoteError, RPCError
from runtime.rpc.client import Client
from runtime.server.replication import MAX_REPAIRS
from runtime.testing import ServerProcess

pytestmark = pytest.mark.e2e

GARBAGE: list[tuple[str, list[object]]] = [
    ("jubako.replicate", ["c"]),  # too few arguments
    ("jubako.replicate", ["c", 7, [], ["c", "k", "v"], None]),  # method not a string
    ("jubako.replicate", ["c", "put", "not a list", ["c", "k", "v"], None]),
    ("jubako.replicate", ["c", "put", [], "not a list", None]),
    ("jubako.replicate", ["c", "put", [], ["c"], None]),  # no key
    ("jubako.replicate", ["c", "put", [], ["c", {"a": 1}, "v"], None]),  # key not a string
    ("jubako.replicate", ["c", "put", ["nohost"], ["c", "k", "v"], None]),
    ("jubako.replicate", ["c", "put", [12], ["c", "k", "v"], None]),
    ("jubako.replicate", ["c", "jubako.prune", [], ["c", "k"], None]),
    ("jubako.replicate", ["c", "no_such_method", [], ["c", "k", "v"], None]),
    ("jubako.export", ["c", "x", 1, "a", "b", True, None, 10]),  # members not a list
    ("jubako.export", ["c", ["a"], "two", "a", "a", True, None, 10]),
    ("jubako.export", ["c", ["a"], 1, ["a"], "a", True, None, 10]),
    ("jubako.export", ["c", ["a"], 1, "a", "a", True, None, -5]),
    ("jubako.import", ["c", "not rows"]),
    ("jubako.import", ["c", [["only a key"]]]),
    ("jubako.import", ["c", [[12, "v"]]]),
    ("jubako.catch_up", ["c", True, "not a list"]),
    ("jubako.ping", ["c", "extra"]),
]


def _server(stack: ExitStack, kvs_dir: Path, datadir: Path) -> ServerProcess:
    args = ["--rpc-port", "0", "--configpath", str(kvs_dir / "config.json")]
    args += ["--datadir", str(datadir)]
    return stack.enter_context(ServerProcess(kvs_dir / "kvs_impl.py", args, cwd=kvs_dir))


def test_garbage_to_the_internal_methods_is_refused_and_loses_nothing(
    kvs_dir: Path, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        server = _server(stack, kvs_dir, tmp_path)
        with Client("127.0.0.1", server.port, timeout=10) as client:
            for i in range(20):
                assert client.call("put", ["c", f"k{i}", f"v{i}"]) is True
            for method, params in GARBAGE:
                with pytest.raises(RPCError) as refused:
                    client.call(method, params)
                text = str(refused.value)
                assert text and len(text) < 1000, (method, params, text)
            # prune does nothing outside a repair (0 rows), and checks its arguments in one.
            assert client.call("jubako.prune", ["c", "x", 1, "a", []]) == 0
            token = client.call("jubako.catch_up", ["c", True, ["put"]])
            with pytest.raises(RPCError, match="members"):
                client.call("jubako.prune", ["c", "x", 1, "a", []])
            assert client.call("jubako.catch_up", ["c", False, token]) is True
            # Still serving, every row as it was.
            assert [client.call("get", ["c", f"k{i}"]) for i in range(20)] == [
                f"v{i}".encode() for i in range(20)
            ]
            assert client.call("get_status", ["c"])
        assert server.returncode is None


def test_repairs_begun_by_clients_are_bounded(kvs_dir: Path, tmp_path: Path) -> None:
    with ExitStack() as stack:
        server = _server(stack, kvs_dir, tmp_path)
        with Client("127.0.0.1", server.port, timeout=10) as client:
            begin = ["c", True, ["put"]]
            tokens = [client.call("jubako.catch_up", begin) for _ in range(MAX_REPAIRS)]
            assert len(set(tokens)) == MAX_REPAIRS
            with pytest.raises(RemoteError, match=f"{MAX_REPAIRS} repairs are under way"):
                client.call("jubako.catch_up", begin)
            # Ending one makes room again; writes are served throughout.
            assert client.call("jubako.catch_up", ["c", False, tokens[0]]) is True
            assert client.call("put", ["c", "k", "v"]) is True
            tokens[0] = client.call("jubako.catch_up", begin)
            for token in tokens:
                assert client.call("jubako.catch_up", ["c", False, token]) is True
            assert client.call("get", ["c", "k"]) == b"v"  # (this client leaves raw as bytes)
