"""Diagnostics: one problem found in an IDL file, printed ``PATH:LINE:COL: error: MESSAGE``.

Diagnostics are values: the parser and the validator return them, :class:`IdlError`
carries them, and only the CLI prints them. This module must never print or log.
"""

from __future__ import annotations

from dataclasses import dataclass

from jenerator.model import Span

ERROR = "error"


@dataclass(frozen=True)
class Diagnostic:
    """A problem at ``span``; ``code`` names the rule that found it (for tests and tools)."""

    severity: str
    span: Span
    message: str
    code: str = ""

    @classmethod
    def error(cls, span: Span, message: str, code: str = "") -> Diagnostic:
        return cls(ERROR, span, message, code)

    @classmethod
    def at_file(cls, path: str, message: str, code: str = "") -> Diagnostic:
        """An error about the file as a whole, placed at line 1, column 1."""
        return cls(ERROR, Span(path, 1, 1, 1, 1), message, code)

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        """Order of presentation: by file, line, column, then message."""
        return (self.span.path, self.span.line, self.span.column, self.message)

    def __str__(self) -> str:
        span = self.span
        return f"{span.path}:{span.line}:{span.column}: {self.severity}: {self.message}"
