"""Logging set-up for server and proxy mains: timestamps with milliseconds, level, pid.

Every line is also cut to :data:`MAX_LINE` characters (its length noted): the places that
log a client's text cut it themselves, and this is the net under them, so no request can
write a line as long as itself.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s [%(process)d] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The longest message a line carries (a traceback after it is kept whole).
MAX_LINE = 2000


class _CutLongMessages(logging.Filter):
    """Cut a record's message to :data:`MAX_LINE` characters."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > MAX_LINE:
            record.msg = f"{message[:MAX_LINE]}... (a message of {len(message)} characters)"
            record.args = None
        return True


def setup_logging(level: str = "INFO", logfile: str | None = None) -> None:
    """Log to stderr (and ``logfile`` when given) at ``level``."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        handlers.append(logging.FileHandler(logfile, encoding="utf-8"))
    cut = _CutLongMessages()
    for handler in handlers:
        handler.addFilter(cut)
    logging.basicConfig(
        level=level.upper(), format=FORMAT, datefmt=DATE_FORMAT, handlers=handlers, force=True
    )
