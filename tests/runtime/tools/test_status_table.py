"""Status maps rendered for people (``jubako status``)."""

from __future__ import annotations

import json

import pytest

from runtime.tools.status_table import (
    STATE_ROW,
    render_json,
    render_table,
    text_status,
    with_states,
)


def test_columns_per_server_rows_per_key_sorted_and_aligned() -> None:
    status = {
        "10.0.0.2_9199": {"uptime": "5", "pid": "22"},
        "10.0.0.1_9199": {"pid": "11", "only_here": "x"},
    }
    lines = render_table(status, title="== get_status").splitlines()
    assert lines[0] == "== get_status"
    assert lines[1].split() == ["key", "10.0.0.1_9199", "10.0.0.2_9199"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert list(rows) == ["only_here", "pid", "uptime"]
    assert rows["pid"] == ["11", "22"]
    assert rows["only_here"] == ["x", "-"] and rows["uptime"] == ["-", "5"]
    column = lines[1].index("10.0.0.2_9199")
    assert lines[3 + 2][column:] == "5", "values start under their server's header"
    assert lines[2].split() == ["-" * len("only_here"), "-" * 13, "-" * 13]


def test_long_values_are_cut_and_empty_status_says_so() -> None:
    table = render_table({"s": {"path": "x" * 100}}, max_width=10)
    assert "xxxxxxxxx…" in table and "x" * 11 not in table
    assert render_table({}) == "(no servers)\n"


def test_wire_bytes_become_text_and_json_is_sorted() -> None:
    wire = {b"s1": {b"k": b"v", b"n": 3}}
    status = text_status(wire)
    assert status == {"s1": {"k": "v", "n": "3"}}
    assert json.loads(render_json({"get_status": status})) == {"get_status": status}
    with pytest.raises(ValueError, match="map of servers"):
        text_status([1, 2])
    with pytest.raises(ValueError, match="map of keys"):
        text_status({b"s": 5})


def test_a_proxy_shows_every_server_with_its_state_down_ones_too() -> None:
    status = {"10.0.0.1_9199": {"pid": "11"}, "10.0.0.2_9199": {"pid": "22"}}
    proxy = {
        "10.0.0.9_9198": {
            "pid": "99",
            "server.10.0.0.1_9199": "up",
            "server.10.0.0.2_9199": "catching up since 2026-12-04T10:00:00",
            "server.10.0.0.3_9199": "down since 2026-12-04T10:00:00 (no answer to a probe)",
        }
    }
    with_states(status, proxy)
    assert sorted(status) == ["10.0.0.1_9199", "10.0.0.2_9199", "10.0.0.3_9199"]
    assert status["10.0.0.3_9199"] == {STATE_ROW: proxy["10.0.0.9_9198"]["server.10.0.0.3_9199"]}
    assert status["10.0.0.1_9199"] == {"pid": "11", STATE_ROW: "up"}
    table = render_table(status, max_width=60)
    state_line = next(line for line in table.splitlines() if line.startswith(STATE_ROW))
    assert "down since" in state_line and "catching up" in state_line
