"""Running a server or proxy process until SIGTERM/SIGINT, shared by both mains.

The first signal stops accepting and lets ``stop`` drain calls in flight and leave the
cluster; a second signal exits at once (status 1).
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from runtime.errors import ConfigError
from runtime.process.collector import tune_collector

log = logging.getLogger(__name__)


async def serve_until_signalled(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> int:
    """``await start()``, wait for SIGTERM or SIGINT, ``await stop()``; returns 0."""
    stopping = asyncio.Event()

    def on_signal() -> None:
        if stopping.is_set():
            log.warning("second signal: exiting at once")
            os._exit(1)
        log.info("signal received: stopping")
        stopping.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    await start()
    try:
        await stopping.wait()
    finally:
        await stop()
    return 0


def report_start_failure(what: str, error: OSError, port: int) -> None:
    """Log why a server or proxy could not start listening. A taken port gets Jubatus's
    own line first, ``server failed to start: any process using port N?`` (toolkits such
    as jubakit read it to try another port), and the system's words on the next line."""
    if error.errno == errno.EADDRINUSE:
        log.error("%s failed to start: any process using port %d?", what, port)
        log.error("(%s)", error)
    else:
        log.error("%s failed to start: %s", what, error)


def log_file_path(logdir: str, prog: str) -> str | None:
    """``<logdir>/<prog>.<pid>.log``, or None when no ``--logdir`` was given."""
    if not logdir:
        return None
    return str(Path(logdir) / f"{Path(prog).stem}.{os.getpid()}.log")


def run_on_event_loop(main: Coroutine[Any, Any, int], event_loop: str) -> int:
    """Run ``main`` on the chosen loop: ``asyncio``, ``uvloop`` (ConfigError when it is not
    installed), or ``auto`` (uvloop when installed, else asyncio), with the garbage
    collector set for serving (:mod:`runtime.process.collector`)."""
    tune_collector()
    if event_loop in ("uvloop", "auto"):
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if event_loop == "uvloop":
                main.close()
                raise ConfigError(
                    "event_loop: uvloop is not installed (pip install 'jubako[uvloop]')"
                ) from None
        else:
            log.info("running on uvloop %s", getattr(uvloop, "__version__", "?"))
            result: int = uvloop.run(main)
            return result
    return asyncio.run(main)
