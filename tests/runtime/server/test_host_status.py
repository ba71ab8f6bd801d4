"""ServiceHost.get_status: Jubatus's keys, the service's own (a number it gives becomes a
string, as on the wire every value is one) and the framework's providers; and
``packed_status``, the same packed, made again only when what it is made from changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgpack

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


class Versioned(Counting):
    """A service whose status says what it is made from."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def get_status(self) -> dict[str, str]:
        self.calls += 1
        return {"version": str(self.version)}

    def status_key(self) -> int:
        return self.version


def host_of(serv: ServerBase, tmp_path: Path) -> ServiceHost:
    settings = parse_server_args("x", ["--rpc-port", "9199", "--datadir", str(tmp_path)])
    return ServiceHost(
        serv,
        service_type="counting",
        settings=settings,
        model_lock=RWLock(),
        prog="x",
        configpath_label="",
        use_cht=False,
    )


def test_a_services_numbers_become_strings_and_the_providers_keys_follow(
    tmp_path: Path,
) -> None:
    host = host_of(Counting(), tmp_path)
    phase = {"now": "one"}
    host.add_status(lambda: {"phase": phase["now"]})
    first = host.get_status()["127.0.0.1_9199"]
    assert first["calls"] == "1" and first["7"] == "1.5"
    assert first["phase"] == "one" and first["type"] == "counting"
    assert all(type(k) is str and type(v) is str for k, v in first.items())
    phase["now"] = "two"
    second = host.get_status()["127.0.0.1_9199"]
    assert second["calls"] == "2" and second["phase"] == "two"


def within_a_second(check: Callable[[], bool]) -> None:
    """Run ``check`` until one run falls within one second of the clock (the status shows
    the second: a change of it between two calls makes the status again)."""
    for _ in range(5):
        second = int(time.time())
        if check() and int(time.time()) == second:
            return
    raise AssertionError("never the same answer within one second")


def shown(packed: bytes) -> dict[str, str]:
    status: dict[str, dict[str, str]] = msgpack.unpackb(packed, raw=False)
    return status["127.0.0.1_9199"]


def test_packed_status_is_kept_until_what_it_shows_may_have_changed(tmp_path: Path) -> None:
    serv = Versioned()
    host = host_of(serv, tmp_path)
    phase = {"now": "one"}
    host.add_status(lambda: {"phase": phase["now"]}, lambda: phase["now"])
    host.packed_status()  # (the first reads the memory figures: not kept)

    def kept() -> bool:
        first = host.packed_status()
        made = serv.calls
        return host.packed_status() is first and serv.calls == made

    within_a_second(kept)
    packed = host.packed_status()
    assert packed == msgpack.packb(host.get_status(), use_bin_type=False)
    changes: list[tuple[Callable[[], None], str, str]] = [
        (lambda: setattr(serv, "version", 1), "version", "1"),
        (lambda: phase.update(now="two"), "phase", "two"),
        (host.on_update, "update_count", "1"),
        (lambda: setattr(host, "last_saved_path", "/m/a"), "last_saved_path", "/m/a"),
        (lambda: setattr(host, "last_loaded", "17"), "last_loaded", "17"),
    ]
    for change, key, value in changes:
        before = host.packed_status()
        change()
        after = host.packed_status()
        assert shown(after)[key] == value and shown(before)[key] != value
        within_a_second(kept)


def test_a_part_that_cannot_say_what_its_status_is_made_of_makes_it_every_call(
    tmp_path: Path,
) -> None:
    serv = Versioned()
    host = host_of(serv, tmp_path)
    host.add_status(lambda: {"phase": "one"})  # no key
    calls = serv.calls
    for _ in range(3):
        assert shown(host.packed_status())["phase"] == "one"
    assert serv.calls == calls + 3
    plain = host_of(Counting(), tmp_path)  # a service with no status_key
    assert [shown(plain.packed_status())["calls"] for _ in range(3)] == ["1", "2", "3"]
