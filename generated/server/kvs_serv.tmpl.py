"""The ``kvs`` service: its model and its methods.

Started from ``kvs_serv.tmpl.py``, which jenerator writes from kvs.idl:
copy it to ``kvs_serv.py``, fill in the methods, and run
``python kvs_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

from runtime import ServerBase


class KvsServ(ServerBase):
    """A key-value store: the canonical Jubako service. Keys are spread over the cluster by
    consistent hashing; each key lives on two servers."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def put(self, key: str, value: str) -> bool:
        """Store ``value`` under ``key``, replacing any earlier value."""
        raise NotImplementedError("kvs.put")

    def get(self, key: str) -> str:
        """The value stored under ``key``; the empty string when there is none."""
        raise NotImplementedError("kvs.get")

    def del_(self, key: str) -> bool:
        """Remove ``key``; false when it was not there."""
        raise NotImplementedError("kvs.del")

    def clear(self) -> bool:
        """Remove every key on every server."""
        raise NotImplementedError("kvs.clear")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("kvs: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("kvs: load")

    # Optional: implement export_rows, import_rows and delete_rows (runtime.ServerBase) and
    # proxies copy a replica's keys back to it when it restarts empty or joins, and hand
    # a departed server's keys on (docs/operating.md, "Replicas").
