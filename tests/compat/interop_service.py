"""The small Jubako service the interop tests call, and a way to serve it in a thread.

Its methods mirror the calls recorded in ``golden_frames.json``: echoes of every wire
type (strings, raw bytes, ints of several widths, doubles, bools, nullable, enums,
nested lists and maps, messages, datum, untyped objects), ``train`` (a list of
labeled datums, like the classifier's), ``add``, ``fail`` (raises with a text), ``sleep``
(for timeouts) and fixed answers for ``get_config``/``save``/``load``/``get_status`` so
the official client's built-in methods have something to call.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from runtime.rpc.dispatch import Dispatcher, Handler
from runtime.rpc.locks import LockMode, RWLock
from runtime.rpc.server import RpcServer
from runtime.wire import types as t
from runtime.wire.datum import Datum

CLUSTER = "compat"
CONFIG = '{"method": "echo"}'
SAVED = {"127.0.0.1_0": "/tmp/127.0.0.1_0_compat_m1.jubatus"}
STATUS = {"127.0.0.1_0": {"type": "compat", "uptime": "1"}}


@dataclass(frozen=True)
class Estimate:
    """The official client's ``estimate_result``: (label, score)."""

    label: str
    score: float


@dataclass(frozen=True)
class LabeledDatum:
    """The official client's ``labeled_datum``: (label, data)."""

    label: str
    data: Datum


class Level(enum.IntEnum):
    """An IDL enum with the values 0, 1, 2."""

    LOW = 0
    MIDDLE = 1
    HIGH = 2


ESTIMATE = t.MessageType(Estimate, (("label", t.String()), ("score", t.Float())))
LABELED = t.MessageType(LabeledDatum, (("label", t.String()), ("data", t.DatumType())))
INT = t.Int(True, 4)
LONG = t.Int(True, 8)
UINT = t.Int(False, 4)


class UserFailure(Exception):
    """What ``fail`` raises: a service's own error with a message for the client."""


def _fail(message: str) -> bool:
    raise UserFailure(message)


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


def _train(data: list[object]) -> int:
    for item in data:
        if not isinstance(item, LabeledDatum) or not isinstance(item.data, Datum):
            raise TypeError("train expects labeled datums")
    return len(data)


def _echo(value: Any) -> Any:
    return value


def handlers() -> dict[str, Handler]:
    """The dispatch table of the interop service."""
    read = LockMode.ANALYSIS

    def echo(arg: t.Descriptor[Any]) -> Handler:
        return Handler(_echo, read, (arg,), arg)

    return {
        "get_config": Handler(lambda: CONFIG, read, (), t.String()),
        "save": Handler(
            lambda model_id: SAVED, LockMode.ANALYSIS, (t.String(),), t.Map(t.String(), t.String())
        ),
        "load": Handler(lambda model_id: True, LockMode.UPDATE, (t.String(),), t.Bool()),
        "get_status": Handler(
            lambda: STATUS, read, (), t.Map(t.String(), t.Map(t.String(), t.String()))
        ),
        "echo_string": echo(t.String()),
        "echo_raw": echo(t.Raw()),
        "echo_longs": echo(t.List(LONG)),
        "echo_nested": echo(t.List(t.List(t.String()))),
        "echo_map": echo(t.Map(t.String(), t.List(t.Float()))),
        "echo_estimate": echo(ESTIMATE),
        "echo_estimates": echo(t.List(ESTIMATE)),
        "echo_datum": echo(t.DatumType()),
        "echo_uint": echo(UINT),
        "echo_bool": echo(t.Bool()),
        "echo_double": echo(t.Float()),
        "echo_nullable": echo(t.Nullable(t.String())),
        "echo_enum": echo(t.EnumType(Level)),
        "echo_object": echo(t.Object()),
        "train": Handler(_train, LockMode.UPDATE, (t.List(LABELED),), INT),
        "add": Handler(lambda a, b: a + b, read, (INT, INT), INT),
        "fail": Handler(_fail, read, (t.String(),), t.Bool()),
        "sleep": Handler(_sleep, LockMode.NOLOCK, (t.Float(),), t.Bool()),
    }


@dataclass
class RunningServer:
    """A server running on its own event loop in a background thread."""

    host: str
    port: int


@contextmanager
def serve_in_thread(
    table: Mapping[str, Handler] | None = None, *, threads: int = 2
) -> Iterator[RunningServer]:
    """Serve ``table`` (default: :func:`handlers`) on 127.0.0.1 from a background thread."""
    dispatcher = Dispatcher(dict(table or handlers()), model_lock=RWLock())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []
    holder: list[RpcServer] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            server = RpcServer(dispatcher, "127.0.0.1", 0, threads=threads)
            loop.run_until_complete(server.start())
            holder.append(server)
        except BaseException as error:
            failure.append(error)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="interop-server", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the interop server did not start within 30 s")
    if failure:
        raise failure[0]
    server = holder[0]
    try:
        yield RunningServer("127.0.0.1", server.port)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
