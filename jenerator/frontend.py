"""IDL text → validated model: parse, transform, validate, in one call."""

from __future__ import annotations

from pathlib import Path

from jenerator.errors import IdlError, InputError
from jenerator.model import Idl
from jenerator.parser import parse
from jenerator.transformer import transform
from jenerator.validate import validate


def load_idl(text: str, path: str) -> Idl:
    """The model of ``text``; raises IdlError carrying every diagnostic."""
    parsed = parse(text, path)
    idl = transform(parsed.tree, path, parsed.comments)
    diagnostics = validate(idl)
    if diagnostics:
        raise IdlError(diagnostics)
    return idl


def load_idl_file(path: str) -> Idl:
    """Read ``path`` (UTF-8) and load it; unreadable files raise InputError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise InputError(f"{path}: {error.strerror or error}") from None
    return load_idl(text, path)
