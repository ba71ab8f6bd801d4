"""IDL text → validated model: parse, transform and validate in one call.

This is the front end's whole public surface for the CLI and the code generator. It
raises :class:`~jenerator.errors.IdlError` carrying every diagnostic (a syntax error
alone, since parsing stops there; otherwise every finding of every validation rule) and
:class:`~jenerator.errors.InputError` for a file that cannot be read as UTF-8 text. It
never prints.
"""

from __future__ import annotations

import os
from pathlib import Path

from jenerator.errors import IdlError, InputError
from jenerator.model import Idl
from jenerator.parser import parse
from jenerator.transformer import transform
from jenerator.validate import validate


def load_idl(text: str, path: str) -> Idl:
    """The model of ``text``; ``path`` names the file in the model and in diagnostics.

    Raises IdlError with every diagnostic when the text is not a valid IDL.
    """
    parsed = parse(text, path)
    idl = transform(parsed, path)
    diagnostics = validate(idl)
    if diagnostics:
        raise IdlError(diagnostics)
    return idl


def load_idl_file(path: str | os.PathLike[str]) -> Idl:
    """Read ``path`` as UTF-8 (a leading byte-order mark is allowed) and load it.

    Raises InputError when the file cannot be read or is not UTF-8, IdlError when its
    text is not a valid IDL.
    """
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as error:
        raise InputError(f"{name}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise InputError(
            f"{name}: not UTF-8 text ({error.reason} at line {line}, byte {column} of the line)"
        ) from None
    # Universal newlines, as text mode would give: CRLF and CR become LF.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return load_idl(text, name)
