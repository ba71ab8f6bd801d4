"""An IDL ``exception`` raised by a service reaches each client as it should: the
generated clients raise the generated class (directly and through a proxy), the official
client sees the message string, and a type error names the method and the argument."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from runtime.errors import RemoteError, TypeMismatch
from runtime.testing import ServerProcess
from tests.compat.oracle import run_script

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.e2e

SERV = '''
from runtime import ServerBase

import tally_types as types


class TallyServ(ServerBase):
    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self.counts: dict[str, int] = {}

    def add(self, key: str, delta: int) -> bool:
        if key == "locked":
            raise types.LockedKey("this key is locked", 0, key)
        total = self.counts.get(key, 0) + delta
        if total < 0:
            raise types.TallyError(f"{key} would go below zero", total)
        self.counts[key] = total
        return True

    def count(self, key: str) -> int:
        if key == "bad":
            raise ValueError("no count for bad")
        return self.counts.get(key, 0)

    def pack(self) -> object:
        return dict(self.counts)

    def unpack(self, payload: object) -> None:
        raise NotImplementedError
'''


@pytest.fixture(scope="module")
def tally_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tally")
    command = [sys.executable, "-m", "jenerator", "-l", "server", "-o", str(out)]
    subprocess.run([*command, str(HERE / "tally.idl")], check=True)
    (out / "tally_serv.py").write_text(SERV)
    (out / "config.json").write_text("{}\n")
    return out


@pytest.fixture(scope="module")
def tally(tally_dir: Path) -> Iterator[tuple[ModuleType, ModuleType]]:
    """The generated ``tally_client`` and ``tally_types`` modules."""
    sys.path.insert(0, str(tally_dir))
    try:
        yield importlib.import_module("tally_client"), importlib.import_module("tally_types")
    finally:
        sys.path.remove(str(tally_dir))
        for name in ("tally_client", "tally_types"):
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def server(tally_dir: Path) -> Iterator[ServerProcess]:
    args = ["--rpc-port", "0", "--configpath", str(tally_dir / "config.json")]
    with ServerProcess(tally_dir / "tally_impl.py", args, cwd=tally_dir) as process:
        yield process


@pytest.fixture(scope="module")
def proxy(tally_dir: Path, server: ServerProcess) -> Iterator[ServerProcess]:
    args = ["--rpc-port", "0", "--servers", f"127.0.0.1:{server.port}"]
    with ServerProcess(tally_dir / "tally_proxy.py", args, cwd=tally_dir) as process:
        yield process


@pytest.mark.parametrize("through", ["server", "proxy"])
def test_a_declared_exception_comes_back_as_its_generated_class(
    tally: tuple[ModuleType, ModuleType],
    server: ServerProcess,
    proxy: ServerProcess,
    through: str,
) -> None:
    client_module, types = tally
    port = server.port if through == "server" else proxy.port
    with client_module.Tally("127.0.0.1", port, "c") as client:
        assert client.add(f"k-{through}", 2) is True
        with pytest.raises(types.TallyError) as raised:
            client.add(f"k-{through}", -5)
        assert raised.value.message == f"k-{through} would go below zero"
        assert raised.value.count == -3
        with pytest.raises(types.LockedKey) as locked:  # a derived exception keeps its class
            client.add("locked", 1)
        assert isinstance(locked.value, types.TallyError)
        assert (locked.value.key, locked.value.count) == ("locked", 0)
        assert client.count(f"k-{through}") == 2  # the failed add changed nothing


@pytest.mark.asyncio
async def test_the_async_client_raises_it_too(
    tally: tuple[ModuleType, ModuleType], server: ServerProcess
) -> None:
    client_module, types = tally
    async with client_module.AsyncTally("127.0.0.1", server.port, "c") as client:
        with pytest.raises(types.TallyError, match=r"message='a would go below zero'"):
            await client.add("a", -1)


def test_an_undeclared_error_stays_a_remote_error(
    tally: tuple[ModuleType, ModuleType], server: ServerProcess
) -> None:
    client_module, types = tally
    with client_module.Tally("127.0.0.1", server.port, "c") as client:
        with pytest.raises(RemoteError) as raised:
            client.count("bad")
        assert raised.value.message == "ValueError: no count for bad"
        assert not isinstance(raised.value, types.TallyError)


@pytest.mark.oracle
def test_the_official_client_sees_the_message_string(server: ServerProcess) -> None:
    calls = [
        {
            "method": "add",
            "args": ["z", -4],
            "arg_types": ["string", ["int", True, 8]],
            "ret_type": "bool",
        }
    ]
    request = {
        "client": "jubatus", "host": "127.0.0.1", "port": server.port, "name": "c",
        "timeout": 5, "calls": calls,
    }  # fmt: skip
    [outcome] = run_script("client_calls.py", request)
    assert "raised" in outcome, outcome
    assert "RPCError" in outcome["repr"]
    assert "TallyError: message='z would go below zero', count=-4" in outcome["repr"]


def test_a_type_error_names_the_method_and_the_idl_argument(
    tally: tuple[ModuleType, ModuleType],
) -> None:
    client_module, _ = tally
    client = client_module.Tally("127.0.0.1", 1, "c")  # never connects: the check is local
    with pytest.raises(TypeMismatch) as raised:
        client.add("a", "5")
    text = str(raised.value)
    assert "add" in text and "argument 1 (delta)" in text and "long" in text, text
    assert "got str" in text, text
