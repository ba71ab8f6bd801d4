"""Where a bench's client and servers run: pinned to CPUs, or left to the scheduler.

On a VM, a call whose client and server sleep on different CPUs pays two cross-CPU
wake-ups (tens of microseconds each on these machines), so a client that waits for each
answer measures that more than either server; and a server with threads on both CPUs
(Jubatus's, 2 by default) often has one on the client's. Pinning puts every server in the
same place: ``same`` runs the client and the server on CPU 0, ``apart`` the client on CPU
0 and the server on CPU 1; ``free`` pins nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Placement → (the server's CPUs, the client's CPUs, how a table names it); None: any CPU.
PLACEMENTS: dict[str, tuple[set[int] | None, set[int] | None, str]] = {
    "free": (None, None, ""),
    "same": ({0}, {0}, "one CPU"),
    "apart": ({1}, {0}, "CPUs apart"),
}


def all_cpus() -> set[int]:
    return set(range(os.cpu_count() or 1))


def pin(pid: int, cpus: set[int] | None) -> None:
    """Every thread of process ``pid`` on ``cpus`` (None: any CPU); threads it starts
    later inherit it from the thread that starts them."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus or all_cpus())
        except ProcessLookupError:  # a thread that just ended
            pass


def pin_self(cpus: set[int] | None) -> None:
    """The calling thread on ``cpus`` (None: any CPU)."""
    os.sched_setaffinity(0, cpus or all_cpus())


def check(placements: list[str]) -> str | None:
    """Why ``placements`` cannot run here, or None."""
    unknown = set(placements) - set(PLACEMENTS)
    if unknown:
        return f"unknown placement(s) {', '.join(sorted(unknown))}: of {', '.join(PLACEMENTS)}"
    if placements != ["free"] and (os.cpu_count() or 1) < 2:
        return "the placements same and apart need 2 CPUs"
    return None
