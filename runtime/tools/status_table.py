"""``get_status`` maps as a readable table: one column per server, one row per key.

``{server_id: {key: value}}`` from a server, a proxy or a whole cluster becomes a text
table with the keys sorted and a ``-`` where a server lacks a key; long values are cut to
``max_width`` characters with ``…`` (``--json`` in the command shows them whole). Through
a proxy, :func:`with_states` gives every server the proxy knows a column with its state,
down ones included. Pure formatting: no I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

Status = Mapping[str, Mapping[str, str]]

MISSING = "-"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def render_table(status: Status, *, max_width: int = 32, title: str = "") -> str:
    """The status as aligned text columns (servers sorted by id)."""
    servers = sorted(status)
    if not servers:
        return f"{title}\n(no servers)\n" if title else "(no servers)\n"
    keys = sorted({key for values in status.values() for key in values})
    header = ["key", *servers]
    rows = [
        [key, *(_cut(status[server].get(key, MISSING), max_width) for server in servers)]
        for key in keys
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(header)).rstrip())
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines) + "\n"


def render_json(sections: Mapping[str, Status]) -> str:
    """Every section (``get_status``, ``get_proxy_status``) as one JSON object."""
    return json.dumps(sections, indent=2, sort_keys=True) + "\n"


def text_status(wire: object) -> dict[str, dict[str, str]]:
    """A ``get_status`` reply as text (old clients' replies carry bytes); ValueError if it
    is not a map of maps."""
    if not isinstance(wire, dict):
        raise ValueError(f"expected a map of servers, got {type(wire).__name__}")
    out: dict[str, dict[str, str]] = {}
    for server, values in wire.items():
        if not isinstance(values, dict):
            raise ValueError(f"expected a map of keys for {server!r}")
        out[_text(server)] = {_text(k): _text(v) for k, v in values.items()}
    return out


#: The row that shows each server's state as its proxy sees it.
STATE_ROW = "(state)"
#: How a proxy's ``get_proxy_status`` names a server's state: ``server.<ip>_<port>``.
STATE_PREFIX = "server."


def with_states(status: dict[str, dict[str, str]], proxy: Status) -> None:
    """Add a :data:`STATE_ROW` to ``status`` (a cluster's ``get_status`` through a proxy)
    from the proxy's ``get_proxy_status``: every server it knows gets its state ("up",
    "down since ..."), and one that did not answer gets a column of its own."""
    for values in proxy.values():
        for key, state in values.items():
            if key.startswith(STATE_PREFIX):
                status.setdefault(key[len(STATE_PREFIX) :], {})[STATE_ROW] = state


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
