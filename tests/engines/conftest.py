"""Fixtures of the engines' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engines import kernel_modes


@pytest.fixture
def python_only() -> Iterator[None]:
    """The test runs with the Python alone (no compiled kernels)."""
    with kernel_modes.python_only():
        yield
