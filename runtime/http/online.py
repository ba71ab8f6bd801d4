"""Online calls: a validated body → one upstream call → ``{"result": ...}``; the built-ins.

Generated endpoints call :func:`forward`. The built-ins every service has are served here
for all: ``GET /v1/get_status``, ``GET /v1/get_config``, ``GET /v1/get_proxy_status``
(reads) and ``POST /v1/save``, ``POST /v1/load``, ``POST /v1/do_mix``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
from fastapi import APIRouter, Request, Response

from runtime.errors import WireTypeError
from runtime.http import shapes as s
from runtime.http.errors import GatewayError, json_response, upstream_error
from runtime.http.gateway import gateway_of
from runtime.http.jsontypes import String
from runtime.http.spec import MethodSpec, arg


async def forward(request: Request, spec: MethodSpec, body: pydantic.BaseModel | None) -> Response:
    """Call ``spec`` upstream with ``body``; the JSON response, or a GatewayError."""
    if body is None and request.method == "POST":
        await _check_no_arguments(request, spec)
    gateway = await gateway_of(request)
    wire = await gateway.upstream.call(spec.name, spec.encode(body))
    try:
        text = spec.result_text(wire)
    except WireTypeError as error:
        raise upstream_error(error, gateway.upstream.address, spec.name) from None
    return Response('{"result":' + text + "}", media_type="application/json")


_NO_ARGUMENTS = pydantic.TypeAdapter(dict[str, Any])


async def _check_no_arguments(request: Request, spec: MethodSpec) -> None:
    """A method without arguments takes no body, or ``{}``: 422 for anything else (what
    was meant for another method is not silently dropped)."""
    raw = await request.body()
    if not raw.strip():
        return
    try:
        given = _NO_ARGUMENTS.validate_json(raw)
    except pydantic.ValidationError:
        given = None
    if given != {}:
        raise GatewayError(
            422, "bad_request", f"{spec.name} takes no argument; send no body or {{}}"
        )


class IdArgs(pydantic.BaseModel):
    """The argument of ``save`` and ``load``."""

    model_config = pydantic.ConfigDict(extra="forbid", use_attribute_docstrings=True)

    id: String
    """The model's name: files are ``<datadir>/<ip>_<port>_<type>_<id>.jubatus``."""


class StatusResult(pydantic.BaseModel):
    result: dict[str, dict[str, str]]
    """Every server's status, keyed ``ip_port``."""


class TextResult(pydantic.BaseModel):
    result: str


class BoolResult(pydantic.BaseModel):
    result: bool


class PathsResult(pydantic.BaseModel):
    result: dict[str, str]
    """Where each server saved the model, keyed ``ip_port``."""


_STATUS = s.MapShape(s.STRING, s.MapShape(s.STRING, s.STRING))
GET_STATUS = MethodSpec("get_status", None, (), _STATUS)
GET_PROXY_STATUS = MethodSpec("get_proxy_status", None, (), _STATUS)
GET_CONFIG = MethodSpec("get_config", None, (), s.STRING)
DO_MIX = MethodSpec("do_mix", None, (), s.BOOL, lock="update")
_ID = (arg(0, "id", "id", s.STRING),)
SAVE = MethodSpec("save", IdArgs, _ID, s.MapShape(s.STRING, s.STRING))
LOAD = MethodSpec("load", IdArgs, _ID, s.BOOL, lock="update")
BUILTINS = (GET_STATUS, GET_PROXY_STATUS, GET_CONFIG, DO_MIX, SAVE, LOAD)

builtins = APIRouter(tags=["built-in"])


@builtins.get("/v1/get_status", response_model=StatusResult, operation_id="get_status")
async def get_status(request: Request) -> Response:
    """The status of every server behind the upstream (``get_status``)."""
    return await forward(request, GET_STATUS, None)


@builtins.get("/v1/get_proxy_status", response_model=StatusResult, operation_id="get_proxy_status")
async def get_proxy_status(request: Request) -> Response:
    """The status of the upstream when it is a proxy (502 when it is a server)."""
    return await forward(request, GET_PROXY_STATUS, None)


@builtins.get("/v1/get_config", response_model=TextResult, operation_id="get_config")
async def get_config(request: Request) -> Response:
    """The servers' JSON config text."""
    return await forward(request, GET_CONFIG, None)


@builtins.post("/v1/save", response_model=PathsResult, operation_id="save")
async def save(args: IdArgs, request: Request) -> Response:
    """Save the model as ``id`` on every server."""
    return await forward(request, SAVE, args)


@builtins.post("/v1/load", response_model=BoolResult, operation_id="load")
async def load(args: IdArgs, request: Request) -> Response:
    """Load the model saved as ``id``; the running model is untouched on failure."""
    return await forward(request, LOAD, args)


@builtins.post("/v1/do_mix", response_model=BoolResult, operation_id="do_mix")
async def do_mix(request: Request) -> Response:
    """Mix the models of the cluster now (servers in a ZooKeeper cluster)."""
    return await forward(request, DO_MIX, None)


@builtins.get("/v1/upstream", operation_id="upstream", tags=["gateway"])
async def upstream(request: Request) -> Response:
    """Where the gateway forwards, whether it answers, and what it says about its servers
    (``get_status``, and ``get_proxy_status`` when it is a proxy): what the web page shows."""
    gateway = await gateway_of(request)
    out: dict[str, Any] = {
        "service": gateway.service.name,
        "upstream": gateway.upstream.address,
        "name": gateway.upstream.name,
    }
    status: Any
    proxy: Any
    status, proxy = await asyncio.gather(
        gateway.upstream.call("get_status", [], timeout=3.0),
        gateway.upstream.call("get_proxy_status", [], timeout=3.0),
        return_exceptions=True,
    )
    if isinstance(status, GatewayError):
        out.update(reachable=False, error=status.message, servers={}, proxy=None)
        return json_response(out)
    if isinstance(status, BaseException):
        raise status
    try:
        servers = _STATUS.to_json(status)
        proxy = None if isinstance(proxy, BaseException) else _STATUS.to_json(proxy)
    except WireTypeError as error:  # an upstream of another kind, or a broken one
        raise upstream_error(error, gateway.upstream.address, "get_status") from None
    out.update(reachable=True, error=None, servers=servers, proxy=proxy)
    out["kind"] = "proxy" if out["proxy"] is not None else "server"
    return json_response(out)
