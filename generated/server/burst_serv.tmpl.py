"""The ``burst`` service: its model and its methods.

Started from ``burst_serv.tmpl.py``, which jenerator writes from burst.idl:
copy it to ``burst_serv.py``, fill in the methods, and run
``python burst_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import burst_types as types
from runtime import ServerBase


class BurstServ(ServerBase):
    """Burst detection: finds the stretches of time in which a keyword shows up unusually
    often in a stream of documents."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def add_documents(self, data: list[types.Document]) -> int:
        """Add documents; returns how many were added."""
        raise NotImplementedError("burst.add_documents")

    def get_result(self, keyword: str) -> types.Window:
        """The latest window of ``keyword``."""
        raise NotImplementedError("burst.get_result")

    def get_result_at(self, keyword: str, pos: float) -> types.Window:
        """The window of ``keyword`` that holds position ``pos``."""
        raise NotImplementedError("burst.get_result_at")

    def get_all_bursted_results(self) -> dict[str, types.Window]:
        """The latest window of every keyword that is bursting now."""
        raise NotImplementedError("burst.get_all_bursted_results")

    def get_all_bursted_results_at(self, pos: float) -> dict[str, types.Window]:
        """The window at ``pos`` of every keyword that was bursting then."""
        raise NotImplementedError("burst.get_all_bursted_results_at")

    def get_all_keywords(self) -> list[types.KeywordWithParams]:
        """Every watched keyword with its parameters."""
        raise NotImplementedError("burst.get_all_keywords")

    def add_keyword(self, keyword: types.KeywordWithParams) -> bool:
        """Start watching a keyword."""
        raise NotImplementedError("burst.add_keyword")

    def remove_keyword(self, keyword: str) -> bool:
        """Stop watching ``keyword``."""
        raise NotImplementedError("burst.remove_keyword")

    def remove_all_keywords(self) -> bool:
        """Stop watching every keyword."""
        raise NotImplementedError("burst.remove_all_keywords")

    def clear(self) -> bool:
        """Forget every document and keyword."""
        raise NotImplementedError("burst.clear")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("burst: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("burst: load")

    # Optional: implement export_rows, import_rows and delete_rows (runtime.ServerBase) and
    # proxies copy a replica's keys back to it when it restarts empty or joins, and hand
    # a departed server's keys on (docs/operating.md, "Replicas").
