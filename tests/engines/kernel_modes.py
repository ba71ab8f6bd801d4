"""Test code run with the compiled kernels and with the Python alone (engines.common.kernels)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from engines.common import kernels

T = TypeVar("T")


@contextmanager
def python_only() -> Iterator[None]:
    """``kernels.compiled`` set to None for the block: the fallback, as on a machine with no
    C compiler."""
    built = kernels.compiled
    kernels.compiled = None
    try:
        yield
    finally:
        kernels.compiled = built


def with_and_without(run: Callable[[], T]) -> tuple[T, T]:
    """``run()`` with the kernels (which must be built), then with the Python alone."""
    assert kernels.compiled is not None, "the kernels are not built (make venv builds them)"
    compiled = run()
    with python_only():
        python = run()
    return compiled, python
