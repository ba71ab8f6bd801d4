"""ServiceHost.get_status: Jubatus's keys, the service's own (a number it gives becomes a
string, as on the wire every value is one) and the framework's providers."""

from __future__ import annotations

from pathlib import Path

from runtime.process.cli import parse_server_args
from runtime.rpc.locks import RWLock
from runtime.server.base import ServerBase
from runtime.server.host import ServiceHost


class Counting(ServerBase):
    """A hand-written service whose status gives numbers, not strings."""

    def __init__(self) -> None:
        super().__init__("{}")
        self.calls = 0

    def get_status(self) -> dict[str, str]:
        self.calls += 1
        return {"calls": self.calls, 7: 1.5}  # type: ignore[dict-item]

    def pack(self) -> object:
        return None

    def unpack(self, payload: object) -> None:
        pass

    def clear(self) -> bool:
        return True


def test_a_services_numbers_become_strings_and_the_providers_keys_follow(
    tmp_path: Path,
) -> None:
    settings = parse_server_args("x", ["--rpc-port", "9199", "--datadir", str(tmp_path)])
    host = ServiceHost(
        Counting(),
        service_type="counting",
        settings=settings,
        model_lock=RWLock(),
        prog="x",
        configpath_label="",
        use_cht=False,
    )
    phase = {"now": "one"}
    host.status_providers.append(lambda: {"phase": phase["now"]})
    first = host.get_status()["127.0.0.1_9199"]
    assert first["calls"] == "1" and first["7"] == "1.5"
    assert first["phase"] == "one" and first["type"] == "counting"
    assert all(type(k) is str and type(v) is str for k, v in first.items())
    phase["now"] = "two"
    second = host.get_status()["127.0.0.1_9199"]
    assert second["calls"] == "2" and second["phase"] == "two"
