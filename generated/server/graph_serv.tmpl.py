"""The ``graph`` service: its model and its methods.

Started from ``graph_serv.tmpl.py``, which jenerator writes from graph.idl:
copy it to ``graph_serv.py``, fill in the methods, and run
``python graph_impl.py --rpc-port 9199``. Each method runs under the lock its
IDL annotation names (``#@analysis`` shared, ``#@update`` exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

import graph_types as types
from runtime import ServerBase


class GraphServ(ServerBase):
    """A distributed graph of nodes and edges with properties, with centrality and shortest
    paths over preset queries."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        # Build the model from self.config (the parsed JSON config) here.

    def create_node(self) -> str:
        """Create a node; returns its id, chosen by the cluster."""
        raise NotImplementedError("graph.create_node")

    def remove_node(self, node_id: str) -> bool:
        """Remove the node ``node_id``."""
        raise NotImplementedError("graph.remove_node")

    def update_node(self, node_id: str, property: dict[str, str]) -> bool:
        """Replace the properties of the node ``node_id``."""
        raise NotImplementedError("graph.update_node")

    def create_edge(self, node_id: str, e: types.Edge) -> int:
        """Create an edge starting at ``node_id``; returns its id."""
        raise NotImplementedError("graph.create_edge")

    def update_edge(self, node_id: str, edge_id: int, e: types.Edge) -> bool:
        """Replace the edge ``edge_id`` that starts at ``node_id``."""
        raise NotImplementedError("graph.update_edge")

    def remove_edge(self, node_id: str, edge_id: int) -> bool:
        """Remove the edge ``edge_id`` that starts at ``node_id``."""
        raise NotImplementedError("graph.remove_edge")

    def get_centrality(self, node_id: str, centrality_type: int, query: types.PresetQuery) -> float:
        """The centrality of the node among what ``query`` selects (0: PageRank)."""
        raise NotImplementedError("graph.get_centrality")

    def add_centrality_query(self, query: types.PresetQuery) -> bool:
        """Start keeping centrality for a preset query."""
        raise NotImplementedError("graph.add_centrality_query")

    def add_shortest_path_query(self, query: types.PresetQuery) -> bool:
        """Start keeping shortest paths for a preset query."""
        raise NotImplementedError("graph.add_shortest_path_query")

    def remove_centrality_query(self, query: types.PresetQuery) -> bool:
        """Stop keeping centrality for a preset query."""
        raise NotImplementedError("graph.remove_centrality_query")

    def remove_shortest_path_query(self, query: types.PresetQuery) -> bool:
        """Stop keeping shortest paths for a preset query."""
        raise NotImplementedError("graph.remove_shortest_path_query")

    def get_shortest_path(self, query: types.ShortestPathQuery) -> list[str]:
        """The node ids along a shortest path, ends included."""
        raise NotImplementedError("graph.get_shortest_path")

    def update_index(self) -> bool:
        """Recompute centrality and shortest-path indexes now."""
        raise NotImplementedError("graph.update_index")

    def clear(self) -> bool:
        """Forget every node and edge."""
        raise NotImplementedError("graph.clear")

    def get_node(self, node_id: str) -> types.Node:
        """The node ``node_id``."""
        raise NotImplementedError("graph.get_node")

    def get_edge(self, node_id: str, edge_id: int) -> types.Edge:
        """The edge ``edge_id`` that starts at ``node_id``."""
        raise NotImplementedError("graph.get_edge")

    def create_node_here(self, node_id: str) -> bool:
        """Server to server: keep a replica of the node ``node_id`` here."""
        raise NotImplementedError("graph.create_node_here")

    def remove_global_node(self, node_id: str) -> bool:
        """Server to server: drop this server's copy of a removed node."""
        raise NotImplementedError("graph.remove_global_node")

    def create_edge_here(self, edge_id: int, e: types.Edge) -> bool:
        """Server to server: keep a replica of the edge ``edge_id`` here."""
        raise NotImplementedError("graph.create_edge_here")

    # Hooks the framework calls; see runtime.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {}

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        raise NotImplementedError("graph: save")

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        raise NotImplementedError("graph: load")

    # Optional: implement export_rows, import_rows and delete_rows (runtime.ServerBase) and
    # proxies copy a replica's keys back to it when it restarts empty or joins, and hand
    # a departed server's keys on (docs/operating.md, "Replicas").
