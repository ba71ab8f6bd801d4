"""Log lines a client can cause: its text cut short, and at most one line a second per kind.

A client decides what it sends: a method name of 10 MB, a flood of calls to a method that
raises, a thousand connections a second. Every line such input causes goes through here:

- :func:`shown` quotes a client's text for a log line, cut to :data:`SHOWN_CHARACTERS`
  with its length noted;
- :class:`Throttle` writes the first line of a kind at once, then at most one line per
  :data:`INTERVAL` seconds for that kind, saying how many it left out.
"""

from __future__ import annotations

import logging
import time
from typing import Final

#: The longest piece of a client's text a log line shows.
SHOWN_CHARACTERS: Final = 200
#: Seconds between two lines of one kind.
INTERVAL: Final = 1.0
#: Kinds a throttle keeps apart; more are logged under one shared kind.
_MAX_KINDS: Final = 64


def shown(text: object) -> str:
    """A client's text for a log line: quoted, cut to :data:`SHOWN_CHARACTERS` characters
    with its length noted (bytes are decoded, invalid UTF-8 replaced)."""
    head, length = _head(text)
    if length <= SHOWN_CHARACTERS:
        return repr(head)
    return f"{head!r}... ({length} characters)"


def cut(text: object) -> str:
    """:func:`shown` without the quotes, for names that read better bare."""
    head, length = _head(text)
    return head if length <= SHOWN_CHARACTERS else f"{head}... ({length} characters)"


def _head(text: object) -> tuple[str, int]:
    """The first :data:`SHOWN_CHARACTERS` characters of ``text`` and its whole length."""
    if isinstance(text, bytes | bytearray):
        length = len(text)
        text = bytes(text[: SHOWN_CHARACTERS * 4]).decode("utf-8", "replace")
    elif isinstance(text, str):
        length = len(text)
    else:
        text = repr(text)
        length = len(text)
    return text[:SHOWN_CHARACTERS], length


class Throttle:
    """Log lines of each kind at most once per ``interval`` seconds, counting the rest."""

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        #: kind → (time of the last line written, lines left out since)
        self._kinds: dict[str, tuple[float, int]] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> None:
        """Log ``message % args`` unless a line of ``kind`` went out less than
        ``interval`` seconds ago; the next line written says how many were left out."""
        if not self.logger.isEnabledFor(level):
            return
        now = time.monotonic()
        kinds = self._kinds
        if kind not in kinds and len(kinds) >= _MAX_KINDS:
            kind = "(other kinds)"
        last, skipped = kinds.get(kind, (-self.interval, 0))
        if now - last < self.interval:
            kinds[kind] = (last, skipped + 1)
            return
        kinds[kind] = (now, 0)
        if skipped:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, skipped, now - last)
        self.logger.log(level, message, *args)
