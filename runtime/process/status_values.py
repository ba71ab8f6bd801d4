"""Values of ``get_status`` keys every Jubatus process shows, written as Jubatus writes them.

Servers (:mod:`runtime.server.host`) and proxies (:mod:`runtime.proxy.main`) share them:
numbers of seconds without a ``.0`` (``10``, not ``10.0``), flags as ``1``/``0``, the
process's memory in KiB from ``/proc`` (``VIRT``, ``RSS``, ``SHR``) and its user.
"""

from __future__ import annotations

import getpass
import os
import resource
import time
from pathlib import Path

#: How often the memory figures are read again, seconds.
MEMORY_EVERY = 1.0


def number_text(value: float) -> str:
    """A number of seconds as Jubatus prints it: ``10``, ``0.5``."""
    return str(int(value)) if float(value).is_integer() else str(value)


def flag_text(value: bool) -> str:
    return "1" if value else "0"


def user_name() -> str:
    """Who runs the process (its uid when the name cannot be found)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def memory_kib() -> tuple[str, str, str]:
    """VIRT, RSS and SHR of this process in KiB, from /proc (zeros where unavailable)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
        page_kib = resource.getpagesize() // 1024
        virt, rss, shared = (int(f) * page_kib for f in fields[:3])
    except (OSError, ValueError, IndexError):
        return ("0", "0", "0")
    return (str(virt), str(rss), str(shared))


class MemoryFigures:
    """``VIRT``, ``RSS`` and ``SHR``, read from /proc at most every :data:`MEMORY_EVERY`."""

    def __init__(self) -> None:
        self._figures = ("0", "0", "0")
        self._read = -MEMORY_EVERY

    def due(self) -> bool:
        """Whether :meth:`status` reads the figures again."""
        return time.monotonic() - self._read >= MEMORY_EVERY

    def status(self) -> dict[str, str]:
        now = time.monotonic()
        if now - self._read >= MEMORY_EVERY:
            self._figures = memory_kib()
            self._read = now
        virt, rss, shr = self._figures
        return {"VIRT": virt, "RSS": rss, "SHR": shr}
