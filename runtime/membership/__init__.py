"""Where the servers of a cluster are: a fixed list, or ZooKeeper (Jubatus's layout).

``base`` holds the :class:`Membership` protocol; ``static`` and ``zookeeper`` implement it;
``paths`` is the znode layout. ``zookeeper`` imports kazoo, so it is not imported here.
"""

from runtime.membership.base import ChangeCallback, DownList, Membership, Node, Snapshot, Watchers
from runtime.membership.static import StaticMembership, parse_servers

__all__ = [
    "ChangeCallback",
    "DownList",
    "Membership",
    "Node",
    "Snapshot",
    "StaticMembership",
    "Watchers",
    "parse_servers",
]
