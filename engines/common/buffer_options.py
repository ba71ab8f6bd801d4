"""The optional ``"jubako"`` block of an engine's config: how its writer's buffer works.

Jubatus's configs have no such block; Jubako's engines that hold their model the snapshot
way (:class:`~runtime.server.snapshot.SnapshotModel`) accept one and refuse unknown keys
in it, naming them:

- ``"<update method>": "applied" | "queued"``: whether the engine's main update call
  (``train``, ``push``) answers once applied and published (the default, Jubatus's
  meaning) or as soon as it is queued (fire-and-forget);
- ``buffer_size``: how much the buffer holds (examples or values), 4096;
- ``wait_timeout``: seconds a call waits for room before it fails, 10;
- ``publish_interval``: seconds between snapshots while updates keep coming; 0 (the
  default) publishes after every batch;
- ``inline_weight``: an update of at most this weight (examples or values) that comes
  while the writer is idle is applied on the event loop, with no trip to the writer
  thread; 16 by default, 0 sends every update to the writer thread.
"""

from __future__ import annotations

import json
from typing import Any

from runtime import ConfigError

DEFAULTS: dict[str, Any] = {
    "buffer_size": 4096,
    "wait_timeout": 10.0,
    "publish_interval": 0.0,
    "inline_weight": 16,
}


def buffer_options(config: object, update: str) -> tuple[object, dict[str, Any]]:
    """``config`` without its ``jubako`` block, and the block's options (defaults filled
    in, plus ``queued``: whether ``update`` is fire-and-forget); ConfigError on a bad one."""
    options: dict[str, Any] = {**DEFAULTS, "queued": False}
    if not isinstance(config, dict) or "jubako" not in config:
        return config, options
    rest = dict(config)
    block = rest.pop("jubako")
    if not isinstance(block, dict):
        raise ConfigError("jubako: expected an object")
    allowed = (update, *DEFAULTS)
    for key in block:
        if key not in allowed:
            raise ConfigError.unknown_key(f"jubako.{key}", allowed)
    if update in block:
        mode = block[update]
        if mode not in ("applied", "queued"):
            raise ConfigError(f"jubako.{update}: 'applied' or 'queued', not {json.dumps(mode)}")
        options["queued"] = mode == "queued"
    for key, least in (("buffer_size", 1), ("inline_weight", 0)):
        if key in block:
            size = block[key]
            if isinstance(size, bool) or not isinstance(size, int) or size < least:
                kind = "a positive integer" if least else "an integer >= 0"
                raise ConfigError(f"jubako.{key}: {kind}, not {size!r}")
            options[key] = size
    for key in ("wait_timeout", "publish_interval"):
        if key in block:
            seconds = block[key]
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not seconds >= 0  # NaN too (Python's json reads NaN)
            ):
                raise ConfigError(f"jubako.{key}: seconds (a number >= 0), not {seconds!r}")
            options[key] = float(seconds)
    return rest, options
