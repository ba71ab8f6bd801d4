"""Code-generation targets: ``server``, ``python`` and ``http``.

``generate(idl, target, options)`` turns a validated model into a list of
:class:`~jenerator.writer.OutputFile`; nothing is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

from jenerator.model import Idl
from jenerator.writer import OutputFile

#: Names accepted by ``jenerator -l``.
TARGETS: tuple[str, ...] = ("server", "python", "http")


@dataclass(frozen=True)
class Options:
    """What the command line says about the output.

    ``source_name`` is the IDL file name as it appears in headers (no directory), and
    ``namespace`` the package generated modules live in and import each other from.
    """

    source_name: str
    namespace: str | None = None
    template: bool = False


def generate(idl: Idl, target: str, options: Options) -> list[OutputFile]:
    """Render every file of ``target`` for ``idl`` (which must have passed validation)."""
    if target == "server":
        from jenerator.targets import server

        return server.build(idl, options)
    if target == "python":
        from jenerator.targets import python

        return python.build(idl, options)
    if target == "http":
        from jenerator.targets import http

        return http.build(idl, options)
    raise ValueError(f"unknown target {target!r}")
