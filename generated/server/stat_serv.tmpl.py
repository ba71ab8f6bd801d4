"""The ``stat`` service: its model and its methods.

Started from ``stat_serv.tmpl.py``, which jenerator writes from stat.idl:
copy it to ``stat_serv.py``, fill in the methods, and run
``python stat_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

from runtime import ServerBase


class StatServ(ServerBase):
    """Statistics over a sliding window of values per key."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def push(self, key: str, value: float) -> bool:
        """Add ``value`` to the window of ``key``."""
        raise NotImplementedError("stat.push")

    def sum(self, key: str) -> float:
        """The sum of the values of ``key``."""
        raise NotImplementedError("stat.sum")

    def stddev(self, key: str) -> float:
        """The standard deviation of the values of ``key``."""
        raise NotImplementedError("stat.stddev")

    def max(self, key: str) -> float:
        """The largest value of ``key``."""
        raise NotImplementedError("stat.max")

    def min(self, key: str) -> float:
        """The smallest value of ``key``."""
        raise NotImplementedError("stat.min")

    def entropy(self, key: str) -> float:
        """The entropy of the values of ``key``."""
        raise NotImplementedError("stat.entropy")

    def moment(self, key: str, degree: int, center: float) -> float:
        """The ``degree``-th moment of the values of ``key`` about ``center``."""
        raise NotImplementedError("stat.moment")

    def clear(self) -> bool:
        """Forget every window."""
        raise NotImplementedError("stat.clear")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("stat: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("stat: load")

    # Optional: implement export_rows, import_rows and delete_rows (runtime.ServerBase) and
    # proxies copy a replica's keys back to it when it restarts empty or joins, and hand
    # a departed server's keys on (docs/operating.md, "Replicas").
