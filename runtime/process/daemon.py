"""``-D/--daemon``: run a server or proxy in the background, as Jubatus's ``-D`` does.

The flags and the config are checked first, in the foreground, so a mistake is still
reported on the terminal; then the process detaches (fork, a new session, fork again;
standard input and output to ``/dev/null``), the command returns 0, and the log goes to
``<logdir>/<prog>.<pid>.log`` (the daemon's pid). Without ``--logdir`` the log is lost,
and a warning says so before detaching.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def daemonize(logdir: str) -> None:
    """Detach from the terminal; returns in the background process only."""
    if not logdir:
        log.warning("--daemon without --logdir: the log of the background process is lost")
    elif not os.access(logdir, os.W_OK):
        raise OSError(f"can't use logdir: {logdir} is not a writable directory")
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
