"""Logging set-up for server and proxy mains: timestamps with milliseconds, level, pid."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s [%(process)d] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def setup_logging(level: str = "INFO", logfile: str | None = None) -> None:
    """Log to stderr (and ``logfile`` when given) at ``level``."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        handlers.append(logging.FileHandler(logfile, encoding="utf-8"))
    logging.basicConfig(
        level=level.upper(), format=FORMAT, datefmt=DATE_FORMAT, handlers=handlers, force=True
    )
