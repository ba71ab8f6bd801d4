"""A gateway mounted in a user's own ASGI app, served by uvicorn in this process."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from runtime.http import GatewaySettings
from runtime.testing import ServerProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _kvs_http() -> object:
    spec = importlib.util.spec_from_file_location(
        "_mount_kvs_http", REPO / "generated/http/kvs_http.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def mounted_app(upstream_port: int, datadir: Path) -> Iterator[str]:
    """The app of docs/http.md: a FastAPI app of the user's with the kvs gateway under
    /kvs, its lifespan run by the outer app's; yields the outer app's URL."""
    kvs_http = _kvs_http()
    settings = GatewaySettings(upstream=f"127.0.0.1:{upstream_port}", datadir=datadir)
    gateway = kvs_http.create_app(settings)  # type: ignore[attr-defined]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with gateway.router.lifespan_context(gateway):
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    app.mount("/kvs", gateway)
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_mounted_in_another_app(kvs_server: ServerProcess, tmp_path: Path) -> None:
    with mounted_app(kvs_server.port, tmp_path) as url, httpx.Client(base_url=url) as http:
        assert http.get("/hello").json() == {"hello": "world"}
        assert http.post("/kvs/v1/put", json={"key": "m", "value": "ounted"}).json() == {
            "result": True
        }
        assert http.post("/kvs/v1/get", json={"key": "m"}).json() == {"result": "ounted"}
        reply = http.post("/kvs/v1/jobs/get", content=b'{"key": "m"}\n')
        assert reply.status_code == 202
        assert reply.json()["status_url"].startswith(f"{url}/kvs/v1/jobs/")
        job = reply.json()["job"]
        deadline = time.monotonic() + 10
        while http.get(f"/kvs/v1/jobs/{job}").json()["state"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert http.get(f"/kvs/v1/jobs/{job}/results").text == '{"line":1,"result":"ounted"}\n'
        docs = http.get("/kvs/docs")
        assert docs.status_code == 200 and "/kvs/openapi.json" in docs.text
        assert http.get("/kvs/openapi.json").json()["info"]["title"] == "kvs gateway"
        assert http.get("/kvs/nope").json()["error"] == "not_found"
    assert (tmp_path / "jubako_http_kvs.sqlite3").is_file()
