"""Per-method routing rows that generated proxies hand to :mod:`runtime.proxy.forwarder`.

A :class:`Route` says how a proxy forwards one method: to one random server, to every
server (``broadcast``), or to the ``replicas`` servers of the key on the consistent-hash
ring (``cht``; the key is the first argument after the cluster name), and how the answers
fold (the aggregator's name in :data:`runtime.proxy.aggregators.AGGREGATORS`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from runtime.rpc.locks import LockMode
from runtime.wire.signature import Signature


class Routing(enum.Enum):
    RANDOM = "random"  #: one live server chosen at random
    BROADCAST = "broadcast"  #: every live server; results folded by the aggregator
    CHT = "cht"  #: the key's replicas on the consistent-hash ring
    INTERNAL = "internal"  #: server-to-server only; never exposed by a proxy


@dataclass(frozen=True)
class Route:
    """How a proxy forwards one method."""

    signature: Signature[Any]
    routing: Routing
    lock: LockMode
    aggregator: str
    replicas: int = 0
    #: The method's name (the signature's; a field: a proxy reads it for every call).
    name: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.signature.name)
