"""jenerator's exception tree.

    JeneratorError
    ├── IdlError      the IDL has errors; carries every Diagnostic (exit 1)
    ├── InputError    the IDL file cannot be read or is not UTF-8 (exit 2)
    └── OutputError   an output directory or file cannot be written (also OSError; exit 2)

Both are *expected* errors: the CLI reports them without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jenerator.diagnostics import Diagnostic


class JeneratorError(Exception):
    """Base of every error jenerator raises on purpose."""


class IdlError(JeneratorError):
    """The IDL text has errors; ``diagnostics`` lists all of them."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class InputError(JeneratorError):
    """The IDL file cannot be read, or is not UTF-8 text."""


class OutputError(JeneratorError, OSError):
    """A generated file or its directory cannot be written."""
