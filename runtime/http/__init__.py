"""The HTTP gateway runtime shared by the apps ``jenerator -l http`` generates.

A generated ``NAME_http.py`` declares pydantic models for its IDL, one
:class:`~runtime.http.spec.MethodSpec` per method and a router of ``POST /v1/METHOD``
endpoints; this package does the rest: forwarding over a bounded pool of async clients
(:mod:`upstream`), errors as HTTP (:mod:`errors`), the built-ins (:mod:`online`), batch
jobs kept in SQLite (:mod:`store`, :mod:`submit`, :mod:`runner`, :mod:`jobs_api`), the web
page (``static/``), the app (:mod:`app`) and the command line (:mod:`main`).
It may import rpc, wire, process, errors and version; never server or proxy.
"""

from runtime.http.app import build_app
from runtime.http.gateway import GatewaySettings
from runtime.http.runner import JobSettings
from runtime.http.spec import ArgSpec, MethodSpec, ServiceSpec

__all__ = ["ArgSpec", "GatewaySettings", "JobSettings", "MethodSpec", "ServiceSpec", "build_app"]
