"""Fixtures of the interop tests: a Jubako server of the interop service, per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compat.interop_service import RunningServer, serve_in_thread


@pytest.fixture(scope="module")
def interop_server() -> Iterator[RunningServer]:
    """The interop service on 127.0.0.1, served from a background thread."""
    with serve_in_thread() as server:
        yield server
