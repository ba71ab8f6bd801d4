"""The ``graph`` service: its model and its methods.

Started from ``graph_serv.tmpl.py``, which jenerator writes from graph.idl:
copy it to ``graph_serv.py``, fill in the methods, and run
``python graph_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import graph_types as types
from runtime.server_base import ServerBase


class GraphServ(ServerBase):
    """A distributed graph of nodes and edges with properties."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def create_node(self) -> str:
        """The ``create_node`` method of ``graph``."""
        raise NotImplementedError("graph.create_node")

    def remove_node(self, node_id: str) -> bool:
        """The ``remove_node`` method of ``graph``."""
        raise NotImplementedError("graph.remove_node")

    def update_node(self, node_id: str, property: dict[str, str]) -> bool:
        """The ``update_node`` method of ``graph``."""
        raise NotImplementedError("graph.update_node")

    def create_edge(self, node_id: str, e: types.Edge) -> int:
        """The ``create_edge`` method of ``graph``."""
        raise NotImplementedError("graph.create_edge")

    def update_edge(self, node_id: str, edge_id: int, e: types.Edge) -> bool:
        """The ``update_edge`` method of ``graph``."""
        raise NotImplementedError("graph.update_edge")

    def remove_edge(self, node_id: str, edge_id: int) -> bool:
        """The ``remove_edge`` method of ``graph``."""
        raise NotImplementedError("graph.remove_edge")

    def get_centrality(self, node_id: str, centrality_type: int, query: types.PresetQuery) -> float:
        """The ``get_centrality`` method of ``graph``."""
        raise NotImplementedError("graph.get_centrality")

    def add_centrality_query(self, query: types.PresetQuery) -> bool:
        """The ``add_centrality_query`` method of ``graph``."""
        raise NotImplementedError("graph.add_centrality_query")

    def add_shortest_path_query(self, query: types.PresetQuery) -> bool:
        """The ``add_shortest_path_query`` method of ``graph``."""
        raise NotImplementedError("graph.add_shortest_path_query")

    def remove_centrality_query(self, query: types.PresetQuery) -> bool:
        """The ``remove_centrality_query`` method of ``graph``."""
        raise NotImplementedError("graph.remove_centrality_query")

    def remove_shortest_path_query(self, query: types.PresetQuery) -> bool:
        """The ``remove_shortest_path_query`` method of ``graph``."""
        raise NotImplementedError("graph.remove_shortest_path_query")

    def get_shortest_path(self, query: types.ShortestPathQuery) -> list[str]:
        """The ``get_shortest_path`` method of ``graph``."""
        raise NotImplementedError("graph.get_shortest_path")

    def update_index(self) -> bool:
        """The ``update_index`` method of ``graph``."""
        raise NotImplementedError("graph.update_index")

    def clear(self) -> bool:
        """The ``clear`` method of ``graph``."""
        raise NotImplementedError("graph.clear")

    def get_node(self, node_id: str) -> types.Node:
        """The ``get_node`` method of ``graph``."""
        raise NotImplementedError("graph.get_node")

    def get_edge(self, node_id: str, edge_id: int) -> types.Edge:
        """The ``get_edge`` method of ``graph``."""
        raise NotImplementedError("graph.get_edge")

    def create_node_here(self, node_id: str) -> bool:
        """The ``create_node_here`` method of ``graph``."""
        raise NotImplementedError("graph.create_node_here")

    def remove_global_node(self, node_id: str) -> bool:
        """The ``remove_global_node`` method of ``graph``."""
        raise NotImplementedError("graph.remove_global_node")

    def create_edge_here(self, edge_id: int, e: types.Edge) -> bool:
        """The ``create_edge_here`` method of ``graph``."""
        raise NotImplementedError("graph.create_edge_here")

    # Hooks the framework calls; see runtime.server_base.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("graph: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("graph: load")
