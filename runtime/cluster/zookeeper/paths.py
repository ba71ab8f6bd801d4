"""Jubatus's ZooKeeper layout as functions, and the ``ip_port`` node names.

The layout is Jubatus's, byte for byte, so the same tools and habits apply::

    /jubatus
    /jubatus/supervisors/<ip>_<port>                       ephemeral (jubavisor)
    /jubatus/jubaproxies/<type>/<ip>_<port>                ephemeral (proxies)
    /jubatus/config/<type>/<name>                          persistent, the JSON config
    /jubatus/actors/<type>/<name>                          persistent
    /jubatus/actors/<type>/<name>/nodes/<ip>_<port>        ephemeral, every running server
    /jubatus/actors/<type>/<name>/actives/<ip>_<port>      ephemeral, servers up to date
    /jubatus/actors/<type>/<name>/cht/<md5>                ephemeral, 8 per server, data ip_port
    /jubatus/actors/<type>/<name>/master_lock              persistent (mixer election)
    /jubatus/actors/<type>/<name>/config_lock              persistent (config read/write lock)

A node name is ``<ip>_<port>``, split at the first ``_``. Jubatus only ever writes IPv4
addresses there, and so do we; anything else is rejected with a :class:`ValueError` that
names the offending text. Types and names become path segments, so they are checked too
(no ``/``, no control characters, not ``.`` or ``..``).

Pure functions: no ZooKeeper client, no I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Final

__all__ = [
    "ACTORS",
    "CONFIG",
    "JUBAPROXIES",
    "ROOT",
    "SUPERVISORS",
    "VNODES_PER_SERVER",
    "actives_path",
    "actor_path",
    "check_segment",
    "cht_path",
    "cht_vnodes",
    "config_lock_path",
    "config_path",
    "config_type_path",
    "decode_node",
    "encode_node",
    "master_lock_path",
    "nodes_path",
    "persistent_paths",
    "proxies_path",
    "proxy_path",
    "supervisor_path",
]

ROOT: Final = "/jubatus"
SUPERVISORS: Final = f"{ROOT}/supervisors"
JUBAPROXIES: Final = f"{ROOT}/jubaproxies"
ACTORS: Final = f"{ROOT}/actors"
CONFIG: Final = f"{ROOT}/config"
#: Virtual nodes each server puts on the cht ring (Jubatus's ``NUM_VSERV``).
VNODES_PER_SERVER: Final = 8


def check_segment(what: str, value: str) -> str:
    """``value`` if it is safe as one path segment; ValueError naming ``what`` otherwise.

    Used for service types and cluster names: non-empty, no ``/``, no control characters,
    not ``.`` or ``..``.
    """
    if not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    if "/" in value or value in {".", ".."} or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{what} {value!r} cannot be a ZooKeeper path segment")
    return value


def encode_node(host: str, port: int) -> str:
    """``"10.0.0.1", 9199`` → ``"10.0.0.1_9199"``; IPv4 dotted quads and ports 1-65535 only."""
    _check_ipv4(host)
    _check_port(port)
    return f"{host}_{port}"


def decode_node(name: str) -> tuple[str, int]:
    """``"10.0.0.1_9199"`` → ``("10.0.0.1", 9199)``, split at the first ``_``.

    Raises ValueError on anything that is not exactly an IPv4 address and a port.
    """
    host, sep, port_text = name.partition("_")
    if not sep:
        raise ValueError(f"node name {name!r} is not <ip>_<port>")
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise ValueError(f"node name {name!r}: port {port_text!r} is not a number")
    _check_ipv4(host, context=f"node name {name!r}: ")
    port = int(port_text)
    _check_port(port, context=f"node name {name!r}: ")
    return host, port


def _check_ipv4(host: str, context: str = "") -> None:
    try:
        address = ipaddress.IPv4Address(host)
    except (ipaddress.AddressValueError, TypeError, ValueError):
        raise ValueError(f"{context}{host!r} is not an IPv4 address") from None
    if str(address) != host:  # IPv4Address accepts nothing looser today; keep it that way
        raise ValueError(f"{context}{host!r} is not a canonical IPv4 address")


def _check_port(port: int, context: str = "") -> None:
    if type(port) is not int or not 1 <= port <= 65535:  # bool is not a port
        raise ValueError(f"{context}port {port!r} is not in 1..65535")


def actor_path(service_type: str, name: str) -> str:
    """``/jubatus/actors/<type>/<name>``."""
    return f"{ACTORS}/{check_segment('type', service_type)}/{check_segment('name', name)}"


def nodes_path(service_type: str, name: str) -> str:
    return f"{actor_path(service_type, name)}/nodes"


def actives_path(service_type: str, name: str) -> str:
    return f"{actor_path(service_type, name)}/actives"


def cht_path(service_type: str, name: str) -> str:
    return f"{actor_path(service_type, name)}/cht"


def master_lock_path(service_type: str, name: str) -> str:
    return f"{actor_path(service_type, name)}/master_lock"


def config_lock_path(service_type: str, name: str) -> str:
    return f"{actor_path(service_type, name)}/config_lock"


def config_type_path(service_type: str) -> str:
    """``/jubatus/config/<type>``."""
    return f"{CONFIG}/{check_segment('type', service_type)}"


def config_path(service_type: str, name: str) -> str:
    """``/jubatus/config/<type>/<name>``: the cluster's JSON config."""
    return f"{config_type_path(service_type)}/{check_segment('name', name)}"


def proxies_path(service_type: str) -> str:
    """``/jubatus/jubaproxies/<type>``."""
    return f"{JUBAPROXIES}/{check_segment('type', service_type)}"


def proxy_path(service_type: str, host: str, port: int) -> str:
    return f"{proxies_path(service_type)}/{encode_node(host, port)}"


def supervisor_path(host: str, port: int) -> str:
    return f"{SUPERVISORS}/{encode_node(host, port)}"


def cht_vnodes(host: str, port: int) -> list[tuple[str, str]]:
    """The 8 ``(md5 hex, data)`` vnodes of a server: md5 of ``ip_port``, ``ip_port_1`` ... ``_7``.

    The data of every vnode is ``ip_port``.
    """
    node = encode_node(host, port)
    locations = [node] + [f"{node}_{i}" for i in range(1, VNODES_PER_SERVER)]
    return [
        (hashlib.md5(loc.encode("ascii"), usedforsecurity=False).hexdigest(), node)
        for loc in locations
    ]


def persistent_paths(service_type: str, name: str | None = None) -> list[str]:
    """The persistent znodes a server (or, with no name, a proxy) prepares, parents first.

    Jubatus's start-up creates these; ``nodes``, ``actives`` and ``cht`` are added here
    too so watches can be set before any server registers.
    """
    paths = [
        ROOT,
        SUPERVISORS,
        JUBAPROXIES,
        ACTORS,
        CONFIG,
        f"{ACTORS}/{check_segment('type', service_type)}",
        config_type_path(service_type),
        proxies_path(service_type),
    ]
    if name:
        paths += [
            actor_path(service_type, name),
            config_lock_path(service_type, name),
            master_lock_path(service_type, name),
            nodes_path(service_type, name),
            actives_path(service_type, name),
            cht_path(service_type, name),
        ]
    return paths
