"""Every method of kvs and the classifier over HTTP, the built-ins, and every error status,
against real servers and gateways on uvicorn."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from runtime.testing import ServerProcess
from tests.http.conftest import KVS_DIR, Gateway, start_server

pytestmark = pytest.mark.e2e


def test_every_kvs_method_and_the_builtins(kvs_gateway: Gateway, kvs_server: ServerProcess) -> None:
    http = kvs_gateway.http
    assert http.post("/v1/put", json={"key": "apple", "value": "red"}).json() == {"result": True}
    assert http.post("/v1/put", json={"key": "pear", "value": "green"}).json() == {"result": True}
    assert http.post("/v1/get", json={"key": "apple"}).json() == {"result": "red"}
    assert http.post("/v1/get", json={"key": "missing"}).json() == {"result": ""}
    assert http.post("/v1/del", json={"key": "pear"}).json() == {"result": True}  # a keyword
    assert http.post("/v1/del", json={"key": "pear"}).json() == {"result": False}
    server_id = f"127.0.0.1_{kvs_server.port}"
    status = http.get("/v1/get_status").json()["result"]
    assert status[server_id]["type"] == "kvs" and status[server_id]["num_keys"] == "1"
    assert http.get("/v1/get_config").json() == {"result": '{"note": "http"}\n'}
    saved = http.post("/v1/save", json={"id": "snap"}).json()["result"]
    assert Path(saved[server_id]).is_file()
    assert http.post("/v1/clear").json() == {"result": True}
    assert http.post("/v1/get", json={"key": "apple"}).json() == {"result": ""}
    assert http.post("/v1/load", json={"id": "snap"}).json() == {"result": True}
    assert http.post("/v1/get", json={"key": "apple"}).json() == {"result": "red"}
    # A standalone server is no proxy, and cannot mix: the upstream's refusal is a 502.
    proxy = http.get("/v1/get_proxy_status")
    assert proxy.status_code == 502 and proxy.json()["error"] == "upstream_unknown_method"
    assert "get_proxy_status" in proxy.json()["message"]
    missing = http.post("/v1/load", json={"id": "no-such-model"})
    assert missing.status_code == 502 and missing.json()["error"] == "upstream_error"
    assert "no-such-model" in missing.json()["message"]  # the server's own message, kept


def test_every_classifier_method(classifier_gateway: Gateway) -> None:
    http = classifier_gateway.http
    train = [
        {"label": "big", "data": {"size": 10.0, "kind": "elephant"}},
        {"label": "small", "data": {"size": 0.1, "kind": "mouse"}},
        # Jubatus's three lists work as well as the flat shorthand.
        {
            "label": "big",
            "data": {"string_values": [["kind", "whale"]], "num_values": [["size", 30]]},
        },
    ]
    assert http.post("/v1/set_label", json={"new_label": "medium"}).json() == {"result": True}
    assert http.post("/v1/train", json={"data": train}).json() == {"result": 3}
    labels = http.post("/v1/get_labels").json()["result"]
    assert labels == {"big": 2, "small": 1, "medium": 0}
    scores = http.post("/v1/classify", json={"data": [{"size": 12.0, "kind": "elephant"}]})
    [row] = scores.json()["result"]
    assert {r["label"] for r in row} == {"big", "small", "medium"}
    assert max(row, key=lambda r: r["score"])["label"] == "big"
    assert all(isinstance(r["score"], float) for r in row)
    assert http.post("/v1/delete_label", json={"target_label": "medium"}).json() == {"result": True}
    assert "medium" not in http.post("/v1/get_labels").json()["result"]
    assert http.post("/v1/clear").json() == {"result": True}
    assert http.post("/v1/get_labels").json() == {"result": {}}


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/put", {"key": "a", "value": 5}, 422,
         ["argument 1 (value)", "expected string", "number"]),
        ("/v1/put", {"key": "a"}, 422, ["argument 1 (value) is missing", "string"]),
        ("/v1/put", {"key": "a", "value": "b", "colour": "red"}, 422,
         ["no argument 'colour'", "key (string), value (string)"]),
        ("/v1/put", [1, 2], 422, ["JSON object of its arguments", '"key": string']),
        ("/v1/get", None, 422, ["JSON object"]),
    ],
)  # fmt: skip
def test_bad_kvs_bodies(
    kvs_gateway: Gateway, path: str, body: object, status: int, words: list[str]
) -> None:
    reply = kvs_gateway.http.post(path, json=body)
    assert reply.status_code == status
    assert reply.json()["error"] == "bad_request"
    for word in words:
        assert word in reply.json()["message"]


def test_bad_classifier_bodies_name_the_idl_type_where_they_fail(
    classifier_gateway: Gateway,
) -> None:
    http = classifier_gateway.http
    reply = http.post("/v1/train", json={"data": [{"label": "x", "data": {"a": True}}]})
    assert reply.status_code == 422
    [problem] = reply.json()["problems"]
    assert problem["path"] == "data[0].data" and problem["expected"] == "datum"
    assert problem["message"] == (
        "train: argument 0 (data) at data[0].data: the datum value of 'a' must be text or a "
        "number, got boolean"
    )
    reply = http.post("/v1/train", json={"data": [{"label": 7, "data": {}}]})
    assert reply.json()["problems"][0]["path"] == "data[0].label"
    assert "expected string, got number" in reply.json()["message"]
    reply = http.post("/v1/classify", json={"data": "not a list"})
    assert "expected list<datum>, got string" in reply.json()["message"]
    for raw, words in [(b"{not json", "not valid JSON"), (b'{"data": []}', "Content-Type")]:
        headers = {} if words == "Content-Type" else {"content-type": "application/json"}
        reply = http.post("/v1/classify", content=raw, headers=headers)
        assert reply.status_code == 422 and words in reply.json()["message"]


def test_unknown_paths_and_methods_are_json_errors(kvs_gateway: Gateway) -> None:
    reply = kvs_gateway.http.post("/v1/increment", json={})
    assert reply.status_code == 404
    assert reply.json()["error"] == "not_found"
    assert "put, get, del, clear" in reply.json()["message"]
    reply = kvs_gateway.http.get("/v1/put")
    assert reply.status_code == 405 and "use POST" in reply.json()["message"]
    assert kvs_gateway.http.get("/v1/jobs/nope").status_code == 404


def test_upstream_of_another_service_is_a_502(
    kvs_server: ServerProcess, gateway: Callable[..., Gateway]
) -> None:
    gw = gateway("classifier", f"127.0.0.1:{kvs_server.port}")
    reply = gw.http.post("/v1/get_labels")
    assert reply.status_code == 502
    assert reply.json()["error"] == "upstream_unknown_method"
    assert "is --upstream a server or proxy of this service" in reply.json()["message"]


def test_upstream_down_and_back(gateway: Callable[..., Gateway], tmp_path: Path) -> None:
    server = start_server(KVS_DIR / "kvs_impl.py", tmp_path, "{}", cwd=KVS_DIR)
    port = server.port
    gw = gateway("kvs", f"127.0.0.1:{port}")
    try:
        assert gw.http.post("/v1/put", json={"key": "k", "value": "v"}).json() == {"result": True}
        server.kill()
        down = gw.http.post("/v1/get", json={"key": "k"})
        assert down.status_code in (502, 503)  # the open connection drops, then none is made
        down = gw.http.post("/v1/get", json={"key": "k"})
        assert down.status_code == 503, down.text
        assert down.json()["error"] == "upstream_unreachable"
        assert f"127.0.0.1:{port}" in down.json()["message"]
        page = gw.http.get("/v1/upstream").json()
        assert page["reachable"] is False and page["error"]
        # The same port again: the gateway serves as soon as the server is back.
        args = [
            "--rpc-port",
            str(port),
            "--configpath",
            str(tmp_path / "config.json"),
            "--datadir",
            str(tmp_path),
        ]
        server = ServerProcess(KVS_DIR / "kvs_impl.py", args, cwd=KVS_DIR).start()
        assert gw.http.post("/v1/put", json={"key": "k", "value": "w"}).json() == {"result": True}
        assert gw.http.post("/v1/get", json={"key": "k"}).json() == {"result": "w"}
    finally:
        server.stop()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts and reads, and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_upstream_timeout_is_a_504(silent_server: int, gateway: Callable[..., Gateway]) -> None:
    gw = gateway("kvs", f"127.0.0.1:{silent_server}", "--timeout", "0.5")
    reply = gw.http.post("/v1/get", json={"key": "k"})
    assert reply.status_code == 504
    assert reply.json()["error"] == "upstream_timeout" and "--timeout" in reply.json()["message"]
    # The gateway keeps serving.
    assert gw.http.get("/v1/jobs").status_code == 200


def test_docs_work_offline_and_openapi_holds_together(kvs_gateway: Gateway) -> None:
    docs = kvs_gateway.http.get("/docs")
    assert docs.status_code == 200
    assets = [part.split('"')[0] for part in docs.text.split('src="')[1:]]
    assets += [part.split('"')[0] for part in docs.text.split('href="')[1:]]
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    for asset in assets:
        assert kvs_gateway.http.get(asset).status_code == 200, asset
    spec = kvs_gateway.http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/v1/put", "/v1/get", "/v1/del", "/v1/clear", "/v1/jobs/{method}"):
        assert path in spec["paths"]
    assert "get" in spec["paths"]["/v1/get_status"] and "post" in spec["paths"]["/v1/save"]
    put = spec["paths"]["/v1/put"]["post"]
    assert put["description"] == "Store ``value`` under ``key``, replacing any earlier value."
    schemas = spec["components"]["schemas"]
    assert schemas["PutArgs"]["required"] == ["key", "value"]
    # Every reference resolves, and every operation has a unique id.
    refs = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    validate(spec)  # the OpenAPI 3 schema itself: raises on any invalid part
