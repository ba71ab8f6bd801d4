"""The FastAPI app of a generated gateway: its routes, the built-ins, jobs, page, errors.

:func:`build_app` takes what the generated ``NAME_http.py`` declares (the service and the
router of its methods) and the settings, and gives an ASGI app to run with uvicorn or to
mount in another app. ``/docs`` and ``/redoc`` serve their assets from the package
(``fastapi-offline``): they work with no internet.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from runtime.http import jobs_api, online
from runtime.http.errors import GatewayError, json_response, validation_error
from runtime.http.gateway import Gateway, GatewaySettings
from runtime.http.limits import OnlineBodyLimit
from runtime.http.spec import MethodSpec, ServiceSpec
from runtime.version import __version__

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


def build_app(service: ServiceSpec, router: APIRouter, settings: GatewaySettings) -> FastAPI:
    """The gateway app of ``service`` forwarding to ``settings.upstream``."""
    gateway = Gateway(service, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPIOffline(
        title=f"{service.name} gateway",
        description=(
            f"{service.doc}\n\nJubako's HTTP gateway of `{service.name}`: `POST /v1/METHOD` "
            "runs one call online; `POST /v1/jobs/METHOD` with JSON Lines runs a batch job."
        ),
        version=__version__,
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.add_middleware(OnlineBodyLimit, limit=settings.max_request)
    specs: dict[str, MethodSpec] = {
        f"/v1/{m.name}": m for m in (*service.methods, *online.BUILTINS)
    }
    app.include_router(router, tags=["methods"])
    app.include_router(online.builtins)
    app.include_router(jobs_api.router)
    app.mount("/assets", StaticFiles(directory=STATIC), name="assets")

    @app.get("/", include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(html.replace("{{root}}", root).replace("{{service}}", service.name))

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> Response:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> Response:
        route = request.scope.get("route")
        spec = specs.get(getattr(route, "path", ""))
        errors = list(error.errors())
        if spec is not None and all(e.get("loc", ("",))[0] == "body" for e in errors):
            return validation_error(spec, errors).response()
        text = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors
        )
        return json_response({"error": "bad_request", "message": text}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        return _http_error(request, error, service)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        text = f"internal error: {error!r}; the gateway's log has the details"
        return json_response({"error": "internal", "message": text}, 500)

    return app


def _http_error(request: Request, error: HTTPException, service: ServiceSpec) -> Response:
    where = f"{request.method} {request.url.path}"
    headers: dict[str, Any] = dict(error.headers or {})
    if error.status_code == 404:
        names = ", ".join(m.name for m in service.methods)
        text = (
            f"no such path: {where}; the methods of {service.name} are POST /v1/METHOD for "
            f"{names}, jobs are under /v1/jobs, and /docs describes them all"
        )
        return json_response({"error": "not_found", "message": text}, 404, headers)
    if error.status_code == 400:  # a body FastAPI's JSON reader or form parser gave up on
        detail = str(error.detail)
        if detail == "There was an error parsing the body":
            detail = "the body could not be read (not UTF-8 text, or JSON nested too deep)"
        text = f"{where}: {detail}"
        return json_response({"error": "bad_request", "message": text}, 422, headers)
    if error.status_code == 413:
        return json_response({"error": "too_large", "message": str(error.detail)}, 413, headers)
    if error.status_code == 405:
        allowed = headers.get("allow", headers.get("Allow", ""))
        text = f"{where} is not allowed; use {allowed or 'another method'}"
        return json_response({"error": "method_not_allowed", "message": text}, 405, headers)
    return json_response(
        {"error": "http_error", "message": str(error.detail)}, error.status_code, headers
    )
