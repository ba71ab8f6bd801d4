"""Child processes of the runtime: a free port, polling with a deadline, stopping a child.

Used by the private ZooKeeper (:mod:`runtime.cluster.zookeeper.server`), the ``jubako``
command and :mod:`runtime.testing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

LOCALHOST: Final = "127.0.0.1"


class StartError(RuntimeError):
    """A child process could not be brought up (the message says why, with a log tail)."""

    __test__ = False  # not a test class, whatever pytest's collection patterns say


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that was free a moment ago. Use it only where a program cannot bind 0.

    Binding port 0 and reading the bound port is the only race-free way to get a port, and
    every Jubako server does that. ZooKeeper cannot: it takes ``clientPort`` from its config
    and neither accepts 0 nor reports what it bound. So :class:`ManagedZooKeeper` is the one
    place that picks a port ahead, and it retries with another port when ZooKeeper finds the
    port taken by the time it binds. Do not use this for anything that can bind 0.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> float:
    """Poll ``predicate`` until it is truthy; the seconds it took. TimeoutError past ``timeout``.

    A bounded poll instead of a fixed sleep: fast when the condition comes quickly, and a
    clear failure (naming ``what``) when it never does.
    """
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not true within {timeout:g}s: {what or predicate!r}")
        time.sleep(interval)
    return time.monotonic() - start


async def wait_until_async(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> float:
    """:func:`wait_until` for event-loop code: sleeps with ``asyncio.sleep`` between polls."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not true within {timeout:g}s: {what or predicate!r}")
        await asyncio.sleep(interval)
    return time.monotonic() - start


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def read_text(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def terminate(process: subprocess.Popen[bytes], sig: int, timeout: float) -> int:
    """Send ``sig`` to ``process``, wait ``timeout`` seconds, then SIGKILL it if needed."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored signal %d for %.1fs: killing it", process.pid, sig, timeout)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    return process.wait()
