"""Diagnostics: one problem in an IDL file, printed as ``PATH:LINE:COL: error: MESSAGE``."""

from __future__ import annotations

from dataclasses import dataclass

from jenerator.model import Span


@dataclass(frozen=True, order=True)
class Diagnostic:
    """A problem at ``span``; ``code`` names the rule (for tests and tools)."""

    span: Span
    message: str
    severity: str = "error"
    code: str = ""

    @classmethod
    def error(cls, span: Span, message: str, code: str = "") -> Diagnostic:
        return cls(span, message, "error", code)

    @classmethod
    def at_file(cls, path: str, message: str, code: str = "") -> Diagnostic:
        return cls(Span(path, 1, 1, 1, 1), message, "error", code)

    def __str__(self) -> str:
        return (
            f"{self.span.path}:{self.span.line}:{self.span.column}: {self.severity}: {self.message}"
        )
