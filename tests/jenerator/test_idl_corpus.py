"""The service IDLs we ship in ``idl/``: each loads cleanly and states the Jubatus API.

``SIGNATURES`` is the published interface of each Jubatus service (and of the kvs
example service): its messages and, per method, the ``#@`` annotations, return type,
name and arguments. Any edit to an IDL that changes what goes over the wire or how a
proxy routes a call shows up here. The cluster name every call carries is implicit and
is never declared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jenerator import model as m
from jenerator.frontend import load_idl_file
from jenerator.printer import print_type

IDL_DIR = Path(__file__).resolve().parents[2] / "idl"

SIGNATURES: dict[str, tuple[str, ...]] = {
    "anomaly": (
        "message id_with_score { 0: string id 1: double score }",
        "#@cht #@update #@all_and bool clear_row(0: string id)",
        "#@random #@nolock #@pass id_with_score add(0: datum row)",
        "#@random #@nolock #@pass list<string> add_bulk(0: list<datum> data)",
        "#@cht #@update #@pass double update(0: string id, 1: datum row)",
        "#@cht #@update #@pass double overwrite(0: string id, 1: datum row)",
        "#@broadcast #@update #@all_and bool clear()",
        "#@random #@analysis #@pass double calc_score(0: datum row)",
        "#@random #@analysis #@pass list<string> get_all_rows()",
    ),
    "bandit": (
        "message arm_info { 0: int trial_count 1: double weight }",
        "#@broadcast #@update #@all_and bool register_arm(0: string arm_id)",
        "#@broadcast #@update #@all_and bool delete_arm(0: string arm_id)",
        "#@cht(1) #@update #@pass string select_arm(0: string player_id)",
        "#@cht(1) #@update #@all_and bool register_reward(0: string player_id, 1: string arm_id, "
        "2: double reward)",
        "#@cht(1) #@analysis #@pass map<string, arm_info> get_arm_info(0: string player_id)",
        "#@broadcast #@update #@all_or bool reset(0: string player_id)",
        "#@broadcast #@update #@all_and bool clear()",
    ),
    "burst": (
        "message keyword_with_params { 0: string keyword 1: double scaling_param 2: double gamma }",
        "message batch { 0: int all_data_count 1: int relevant_data_count 2: double burst_weight }",
        "message window { 0: double start_pos 1: list<batch> batches }",
        "message document { 0: double pos 1: string text }",
        "#@broadcast #@update #@pass int add_documents(0: list<document> data)",
        "#@cht #@analysis #@pass window get_result(0: string keyword)",
        "#@cht #@analysis #@pass window get_result_at(0: string keyword, 1: double pos)",
        "#@broadcast #@analysis #@merge map<string, window> get_all_bursted_results()",
        "#@broadcast #@analysis #@merge map<string, window> get_all_bursted_results_at(0: double "
        "pos)",
        "#@random #@analysis #@pass list<keyword_with_params> get_all_keywords()",
        "#@broadcast #@update #@all_and bool add_keyword(0: keyword_with_params keyword)",
        "#@broadcast #@update #@all_and bool remove_keyword(0: string keyword)",
        "#@broadcast #@update #@all_and bool remove_all_keywords()",
        "#@broadcast #@update #@all_and bool clear()",
    ),
    "classifier": (
        "message estimate_result { 0: string label 1: double score }",
        "message labeled_datum { 0: string label 1: datum data }",
        "#@random #@nolock #@pass int train(0: list<labeled_datum> data)",
        "#@random #@nolock #@pass list<list<estimate_result>> classify(0: list<datum> data)",
        "#@random #@nolock #@pass map<string, ulong> get_labels()",
        "#@broadcast #@nolock #@all_and bool set_label(0: string new_label)",
        "#@broadcast #@nolock #@all_and bool clear()",
        "#@broadcast #@nolock #@all_or bool delete_label(0: string target_label)",
    ),
    "clustering": (
        "message weighted_datum { 0: double weight 1: datum point }",
        "message indexed_point { 0: string id 1: datum point }",
        "message weighted_index { 0: double weight 1: string id }",
        "#@random #@update #@pass bool push(0: list<indexed_point> points)",
        "#@random #@analysis #@pass uint get_revision()",
        "#@random #@analysis #@pass list<list<weighted_datum>> get_core_members()",
        "#@random #@analysis #@pass list<list<weighted_index>> get_core_members_light()",
        "#@random #@analysis #@pass list<datum> get_k_center()",
        "#@random #@analysis #@pass datum get_nearest_center(0: datum point)",
        "#@random #@analysis #@pass list<weighted_datum> get_nearest_members(0: datum point)",
        "#@random #@analysis #@pass list<weighted_index> get_nearest_members_light(0: datum point)",
        "#@broadcast #@update #@all_and bool clear()",
    ),
    "graph": (
        "message node { 0: map<string, string> property 1: list<ulong> in_edges 2: list<ulong> "
        "out_edges }",
        "message query { 0: string from_id 1: string to_id }",
        "message preset_query { 0: list<query> edge_query 1: list<query> node_query }",
        "message edge { 0: map<string, string> property 1: string source 2: string target }",
        "message shortest_path_query { 0: string source 1: string target 2: uint max_hop 3: "
        "preset_query query }",
        "#@random #@nolock #@pass string create_node()",
        "#@cht(2) #@nolock #@pass bool remove_node(0: string node_id)",
        "#@cht #@update #@all_and bool update_node(0: string node_id, 1: map<string, string> "
        "property)",
        "#@cht(1) #@nolock #@pass ulong create_edge(0: string node_id, 1: edge e)",
        "#@cht #@update #@all_and bool update_edge(0: string node_id, 1: ulong edge_id, 2: edge e)",
        "#@cht #@update #@all_and bool remove_edge(0: string node_id, 1: ulong edge_id)",
        "#@random #@analysis #@pass double get_centrality(0: string node_id, 1: int "
        "centrality_type, 2: preset_query query)",
        "#@broadcast #@update #@all_and bool add_centrality_query(0: preset_query query)",
        "#@broadcast #@update #@all_and bool add_shortest_path_query(0: preset_query query)",
        "#@broadcast #@update #@all_and bool remove_centrality_query(0: preset_query query)",
        "#@broadcast #@update #@all_and bool remove_shortest_path_query(0: preset_query query)",
        "#@random #@analysis #@pass list<string> get_shortest_path(0: shortest_path_query query)",
        "#@broadcast #@update #@all_and bool update_index()",
        "#@broadcast #@update #@all_and bool clear()",
        "#@cht #@analysis #@pass node get_node(0: string node_id)",
        "#@cht #@analysis #@pass edge get_edge(0: string node_id, 1: ulong edge_id)",
        "#@internal #@update #@pass bool create_node_here(0: string node_id)",
        "#@internal #@update #@pass bool remove_global_node(0: string node_id)",
        "#@internal #@update #@pass bool create_edge_here(0: ulong edge_id, 1: edge e)",
    ),
    "kvs": (
        "#@cht #@update #@all_and bool put(0: string key, 1: string value)",
        "#@cht #@analysis #@pass string get(0: string key)",
        "#@cht #@update #@all_and bool del(0: string key)",
        "#@broadcast #@update #@all_and bool clear()",
    ),
    "nearest_neighbor": (
        "message id_with_score { 0: string id 1: double score }",
        "#@broadcast #@update #@all_and bool clear()",
        "#@cht(1) #@update #@pass bool set_row(0: string id, 1: datum d)",
        "#@random #@nolock #@pass list<id_with_score> neighbor_row_from_id(0: string id, 1: uint "
        "size)",
        "#@random #@nolock #@pass list<id_with_score> neighbor_row_from_datum(0: datum query, 1: "
        "uint size)",
        "#@random #@nolock #@pass list<id_with_score> similar_row_from_id(0: string id, 1: uint "
        "ret_num)",
        "#@random #@nolock #@pass list<id_with_score> similar_row_from_datum(0: datum query, 1: "
        "uint ret_num)",
        "#@random #@nolock #@pass list<string> get_all_rows()",
    ),
    "recommender": (
        "message id_with_score { 0: string id 1: double score }",
        "#@cht #@update #@all_and bool clear_row(0: string id)",
        "#@cht #@update #@all_and bool update_row(0: string id, 1: datum row)",
        "#@broadcast #@update #@all_and bool clear()",
        "#@cht #@analysis #@pass datum complete_row_from_id(0: string id)",
        "#@random #@analysis #@pass datum complete_row_from_datum(0: datum row)",
        "#@cht #@analysis #@pass list<id_with_score> similar_row_from_id(0: string id, 1: uint "
        "size)",
        "#@cht #@analysis #@pass list<id_with_score> similar_row_from_id_and_score(0: string id, "
        "1: double score)",
        "#@cht #@analysis #@pass list<id_with_score> similar_row_from_id_and_rate(0: string id, "
        "1: float rate)",
        "#@random #@analysis #@pass list<id_with_score> similar_row_from_datum(0: datum row, 1: "
        "uint size)",
        "#@random #@analysis #@pass list<id_with_score> similar_row_from_datum_and_score(0: "
        "datum row, 1: double score)",
        "#@random #@analysis #@pass list<id_with_score> similar_row_from_datum_and_rate(0: datum "
        "row, 1: float rate)",
        "#@cht #@analysis #@pass datum decode_row(0: string id)",
        "#@random #@analysis #@pass list<string> get_all_rows()",
        "#@random #@analysis #@pass double calc_similarity(0: datum lhs, 1: datum rhs)",
        "#@random #@analysis #@pass double calc_l2norm(0: datum row)",
    ),
    "regression": (
        "message scored_datum { 0: double score 1: datum data }",
        "#@random #@update #@pass int train(0: list<scored_datum> train_data)",
        "#@random #@analysis #@pass list<double> estimate(0: list<datum> estimate_data)",
        "#@broadcast #@update #@all_and bool clear()",
    ),
    "stat": (
        "#@cht(1) #@update #@all_and bool push(0: string key, 1: double value)",
        "#@cht(1) #@analysis #@pass double sum(0: string key)",
        "#@cht(1) #@analysis #@pass double stddev(0: string key)",
        "#@cht(1) #@analysis #@pass double max(0: string key)",
        "#@cht(1) #@analysis #@pass double min(0: string key)",
        "#@cht(1) #@analysis #@pass double entropy(0: string key)",
        "#@cht(1) #@analysis #@pass double moment(0: string key, 1: int degree, 2: double center)",
        "#@broadcast #@update #@all_and bool clear()",
    ),
    "weight": (
        "message feature { 0: string key 1: double value }",
        "#@random #@nolock #@pass list<feature> update(0: datum d)",
        "#@random #@nolock #@pass list<feature> calc_weight(0: datum d)",
        "#@broadcast #@nolock #@all_and bool clear()",
    ),
}


def summary(idl: m.Idl) -> tuple[str, ...]:
    lines = [
        f"message {msg.name} {{ "
        + " ".join(f"{f.id}: {print_type(f.type)} {f.name}" for f in msg.fields)
        + " }"
        for msg in idl.messages
    ]
    (service,) = idl.services
    for method in service.methods:
        annotations = " ".join(
            f"#@{a.name}" + (f"({a.argument})" if a.argument is not None else "")
            for a in method.annotations
        )
        args = ", ".join(f"{a.id}: {print_type(a.type)} {a.name}" for a in method.args)
        lines.append(f"{annotations} {print_type(method.return_type)} {method.name}({args})")
    return tuple(lines)


def test_every_shipped_idl_is_listed() -> None:
    assert sorted(p.stem for p in IDL_DIR.glob("*.idl")) == sorted(SIGNATURES)


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_idl_states_the_service_interface(name: str) -> None:
    idl = load_idl_file(IDL_DIR / f"{name}.idl")  # raises on any diagnostic
    assert [s.name for s in idl.services] == [name]
    assert summary(idl) == SIGNATURES[name]


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_every_service_and_method_is_documented(name: str) -> None:
    idl = load_idl_file(IDL_DIR / f"{name}.idl")
    (service,) = idl.services
    assert service.doc
    assert [method.name for method in service.methods if not method.doc] == []


def test_kvs_is_the_four_method_key_value_service() -> None:
    idl = load_idl_file(IDL_DIR / "kvs.idl")
    methods = {method.name: method for method in idl.services[0].methods}
    assert list(methods) == ["put", "get", "del", "clear"]
    for name in ("put", "get", "del"):
        assert methods[name].routing is m.Routing.CHT
        assert methods[name].cht_replicas == 2
        assert methods[name].args[0] == m.Arg(0, m.PrimitiveType("string"), "key")
    assert methods["clear"].routing is m.Routing.BROADCAST
    assert methods["clear"].args == ()
    assert {n: methods[n].lock for n in methods} == {
        "put": m.Lock.UPDATE, "get": m.Lock.ANALYSIS, "del": m.Lock.UPDATE,
        "clear": m.Lock.UPDATE,
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_no_method_declares_the_cluster_name(name: str) -> None:
    idl = load_idl_file(IDL_DIR / f"{name}.idl")
    for method in idl.services[0].methods:
        assert "name" not in [a.name for a in method.args], method.name
