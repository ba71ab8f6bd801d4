"""Writing generated files: all or nothing, each file atomically (temp file + rename).

Files get the mode a plain ``open()`` would give them (0666 less the umask), so a copy of
``NAME_serv.tmpl.py`` is as readable as any file the user writes.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jenerator.errors import OutputError


@dataclass(frozen=True)
class OutputFile:
    """One generated file: a path relative to the output directory and its text."""

    relpath: str
    text: str


def write_all(files: Sequence[OutputFile], outdir: Path) -> list[Path]:
    """Write every file under ``outdir``; returns the paths written.

    Every file is first written to a temp file beside its target; only when all of them are
    written are they renamed into place, so an error leaves no half-written output.
    Raises :class:`OutputError` when a directory or file cannot be written.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for output in files:
            target = outdir / output.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = _create_temp(target)
            staged.append((temp, target))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(output.text)
        for temp, target in staged:
            os.replace(temp, target)
    except OSError as error:
        for temp, _ in staged:
            Path(temp).unlink(missing_ok=True)
        raise OutputError(f"cannot write to {outdir}: {error.strerror or error}") from error
    return [target for _, target in staged]


def _create_temp(target: Path) -> tuple[int, str]:
    """A new hidden file beside ``target``, created with mode 0666 (the umask applies)."""
    while True:
        temp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            return os.open(temp, flags, 0o666), str(temp)
        except FileExistsError:
            continue
