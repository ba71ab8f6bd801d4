"""A job input's arguments as stored (``runtime.http.params``): spliced into a request,
they give the very bytes of the request packed from the decoded arguments, and inputs
stored in the older form (a new-spec array) still run, in a gateway started on them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, strategies as st

from runtime.http import params
from runtime.http.store import NewItem, Store
from runtime.testing import ServerProcess
from tests.http.conftest import Gateway, wait_job

OLD_SPEC = msgpack.Packer(use_bin_type=False).pack

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=20)
    | st.dictionaries(st.text(max_size=5) | st.integers(0, 9), inner, max_size=5),
    max_leaves=30,
)  # fmt: skip


def spliced(name: str, arguments: list[Any]) -> bytes:
    packed = params.with_name(params.pack(arguments), OLD_SPEC(name))
    assert packed is not None
    return packed


@given(st.text(max_size=10), st.lists(values, max_size=4))
def test_spliced_params_are_the_bytes_packed_from_the_values(
    name: str, arguments: list[Any]
) -> None:
    assert spliced(name, arguments) == OLD_SPEC([name, *arguments])
    assert OLD_SPEC(params.unpack(params.pack(arguments))) == OLD_SPEC(arguments)


@pytest.mark.parametrize("count", [0, 1, 14, 15, 16, 65534, 65535, 65536])
def test_every_array_header_takes_one_more(count: int) -> None:
    """fixarray up to 15 elements, array 16 up to 65535, array 32 beyond."""
    arguments = list(range(count))
    assert spliced("c", arguments) == OLD_SPEC(["c", *arguments])


def test_the_older_form_is_read_and_not_spliced() -> None:
    older = msgpack.packb(["k", b"\x00", {"a": 1}], use_bin_type=True)
    assert params.with_name(older, OLD_SPEC("")) is None
    assert params.unpack(older) == ["k", b"\x00", {"a": 1}]
    with pytest.raises(ValueError, match="not an array"):
        params.with_name(params.MARK + b"\x01", OLD_SPEC(""))


def test_a_job_stored_in_the_older_form_runs(
    kvs_server: ServerProcess, gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    datadir = tmp_path / "store"
    store = Store(datadir / "jubako_http_kvs.sqlite3")
    older = [NewItem(n + 1, params=msgpack.packb([f"old{n}", f"v{n}"], use_bin_type=True))
             for n in range(50)]  # fmt: skip
    store.create("0123456789ab", "put", older, {"dedupe": False, "bad_lines": "refuse"})
    store.close()
    gw = gateway("kvs", f"127.0.0.1:{kvs_server.port}", datadir=datadir)
    done = wait_job(gw, "0123456789ab", timeout=30)
    assert done["state"] == "completed" and done["done"] == 50 and done["errors"] == 0
    for n in (0, 49):
        reply = gw.http.post("/v1/get", json={"key": f"old{n}"})
        assert json.loads(reply.text) == {"result": f"v{n}"}
