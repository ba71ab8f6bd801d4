"""Python names for IDL names: every naming decision the templates would otherwise make.

IDL names may be Python keywords (``del``, ``from``) or clash with names the generated code
defines itself; such names get a trailing underscore in Python while the wire name stays as
written. Classes take the CamelCase form of the IDL name (``estimate_result`` →
``EstimateResult``), as the official Jubatus clients do.
"""

from __future__ import annotations

import keyword
import re

#: Names that generated client classes define themselves (ClientBase and friends).
CLIENT_RESERVED: frozenset[str] = frozenset(
    {
        "get_config", "save", "load", "get_status", "do_mix", "get_proxy_status",
        "get_name", "set_name", "get_client", "close", "call", "name", "host", "port",
        "timeout",
    }
)  # fmt: skip

#: Names that generated server classes define themselves (ServerBase hooks).
SERVER_RESERVED: frozenset[str] = frozenset(
    {
        "config", "config_json", "set_config", "status", "pack", "unpack",
        "user_data_version", "get_mixable", "host",
    }
)  # fmt: skip

#: Attribute names generated message classes use for themselves.
MESSAGE_RESERVED: frozenset[str] = frozenset({"WIRE", "to_msgpack", "from_msgpack"})


def python_identifier(name: str, reserved: frozenset[str] = frozenset()) -> str:
    """``name`` as a Python identifier: keywords and ``reserved`` names get a trailing ``_``.

    Soft keywords (``match``, ``type``) are valid identifiers and are kept; they also differ
    between Python versions, and generated code must not.
    """
    if keyword.iskeyword(name) or name in reserved:
        return name + "_"
    return name


def argument_name(name: str) -> str:
    """A method argument name. Builtins such as ``id`` are kept, so keyword calls written
    for the official clients (``similar_row_from_id(id=...)``) keep working."""
    return python_identifier(name, frozenset({"self", "cls"}))


def class_name(name: str) -> str:
    """CamelCase class name: ``nearest_neighbor`` → ``NearestNeighbor``; keeps inner case."""
    parts = [part for part in name.split("_") if part]
    camel = "".join(part[0].upper() + part[1:] for part in parts)
    if not camel:
        camel = "X"
    if camel[0].isdigit():
        camel = "X" + camel
    return python_identifier(camel)


def constant_name(name: str) -> str:
    """UPPER_SNAKE module constant: ``get_labels`` → ``GET_LABELS``."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper().strip("_")
    return snake or "X"


def module_prefix(namespace: str | None) -> str:
    """``"pkg.sub"`` → ``"pkg.sub."``; ``None`` or empty → ``""``."""
    return f"{namespace}." if namespace else ""
