"""Errors as HTTP: every failure becomes a status and a JSON body a person can act on.

Bodies look like ``{"error": CODE, "message": TEXT}`` plus details where useful:

- 422 ``bad_request``: the body does not fit the IDL; the message names the method, the
  argument (``argument 1 (value)``), where inside it and the IDL type expected there;
- 404 ``not_found``, 405 ``method_not_allowed``, 409 ``conflict``, 413 ``too_large``;
- 502 ``upstream_error`` (the upstream refused or failed; its message is kept),
  ``upstream_unknown_method``, ``upstream_connection_lost``, ``bad_upstream_answer``;
- 503 ``upstream_unreachable``: no connection to the upstream could be made;
  ``store_unavailable``: the job store's file was removed under the gateway;
- 504 ``upstream_timeout``: it did not answer within the timeout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from starlette.responses import Response

from runtime.errors import (
    ConnectError,
    ConnectionLost,
    RemoteError,
    RPCError,
    RPCTimeout,
    TypeMismatch,
    UnknownMethod,
    WireTypeError,
)
from runtime.http.jsontext import dumps, float_text
from runtime.http.shapes import MessageShape, Shape
from runtime.http.spec import MethodSpec


class GatewayError(Exception):
    """An error the gateway answers with ``status`` and a JSON body."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}

    def response(self) -> Response:
        return json_response(self.body(), self.status)


def json_response(
    value: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(dumps(value), status, headers, media_type="application/json")


def upstream_error(error: BaseException, upstream: str, method: str) -> GatewayError:
    """The HTTP error for a failed call of ``method`` to ``upstream`` (``HOST:PORT``)."""
    if isinstance(error, ConnectError):
        return GatewayError(
            503, "upstream_unreachable",
            f"cannot reach the upstream {upstream}: {error}; is the server or proxy running "
            "there (--upstream)?",
        )  # fmt: skip
    if isinstance(error, RPCTimeout):
        return GatewayError(
            504, "upstream_timeout",
            f"the upstream {upstream} did not answer {method} in time ({error}); "
            "raise --timeout if the call is slow",
        )  # fmt: skip
    if isinstance(error, UnknownMethod):
        return GatewayError(
            502, "upstream_unknown_method",
            f"the upstream {upstream} has no method {method} ({error}): is --upstream a "
            "server or proxy of this service?",
        )  # fmt: skip
    if isinstance(error, ConnectionLost):
        return GatewayError(
            502, "upstream_connection_lost",
            f"the upstream {upstream} closed the connection during {method}: {error}",
        )  # fmt: skip
    if isinstance(error, WireTypeError):
        return GatewayError(
            502, "bad_upstream_answer",
            f"the upstream's answer to {method} does not fit the IDL: {error}",
        )  # fmt: skip
    if isinstance(error, TypeMismatch | RemoteError | RPCError):
        return GatewayError(502, "upstream_error", f"{method} failed at the upstream: {error}")
    raise error


# ---------------------------------------------------------------------------------------
# 422: what pydantic found, in IDL terms


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float) and not math.isfinite(value):  # Python's reader takes them
        return f"{float_text(value)} (not a number JSON has)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**1024:
        return "a number past the largest double"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _walk(shape: Shape, loc: Sequence[str | int]) -> tuple[Shape, str, list[str | int]]:
    """The deepest shape ``loc`` reaches from ``shape``, the path text to it, and the
    rest of ``loc``."""
    path = ""
    for index, part in enumerate(loc):
        inner = shape.step(part)
        if inner is None:
            return shape, path, list(loc[index:])
        path += f".{part}" if isinstance(shape, MessageShape) else f"[{part}]"
        shape = inner
    return shape, path, []


_DATUM = 'a datum is {"key": "text" or number, ...} or the three lists'


def _datum_text(where: str, rest: list[str | int], error: Mapping[str, Any]) -> tuple[int, str]:
    """What is wrong with a datum, from one member of its union: ``(rank, text)``; the
    lowest rank of a datum's errors is the one reported."""
    given = _json_kind(error.get("input"))
    if rest and rest[0] == "DatumLists":
        if error.get("type") == "extra_forbidden" or len(rest) == 1:
            return 2, f"{where}: expected datum ({_DATUM}), got {given}"
        inside = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest[1:])
        return 0, f"{where}{inside}: {error.get('msg', '')} (got {given})"
    if len(rest) >= 2:
        return 1, f"{where}: the datum value of {rest[1]!r} must be text or a number, got {given}"
    return 1, f"{where}: expected datum ({_DATUM}), got {given}"


def _problem(spec: MethodSpec, error: Mapping[str, Any]) -> dict[str, Any]:
    """One pydantic error as ``{argument, path, expected, message}``."""
    loc = [p for p in error.get("loc", ()) if p != "body"]
    kind = str(error.get("type", ""))
    given = error.get("input")
    if not loc:
        if kind == "json_invalid":
            detail = str(error.get("ctx", {}).get("error", error.get("msg", "")))
            return {"message": f"the body is not valid JSON ({detail})"}
        if isinstance(given, bytes):  # FastAPI reads a body as JSON only when it says so
            return {
                "message": f"{spec.name}: send the arguments as JSON with the header "
                f"Content-Type: application/json, e.g. {_example(spec)}"
            }
        return {
            "message": f"{spec.name} takes a JSON object of its arguments by name: "
            f"{_example(spec)}; got {_json_kind(given)}"
        }
    if kind == "json_invalid":
        return {"message": f"the body is not valid JSON ({error.get('msg', '')})"}
    name = loc[0]
    arg = spec.find_arg(str(name))
    if arg is None:
        return {
            "argument": str(name),
            "message": f"{spec.name} has no argument {name!r}; its arguments are "
            f"{spec.describe_args()}",
        }
    shape, path, rest = _walk(arg.shape, loc[1:])
    where = f"argument {arg.label}" + (f" at {arg.name}{path}" if path else "")
    rank = 0
    if shape.idl == "datum" and rest:
        rank, text = _datum_text(where, rest, error)
    elif kind == "missing":
        text = f"{where} is missing ({shape.idl})"
    elif kind == "extra_forbidden":
        text = f"{where}: unknown field {loc[-1]!r} in {shape.idl}"
    elif kind.endswith(("less_than_equal", "greater_than_equal", "less_than", "greater_than")):
        text = f"{where}: {given} is out of range for {shape.idl}"
    else:
        text = f"{where}: expected {shape.idl}, got {_json_kind(given)}"
        if shape.idl == "raw":
            text += " (raw is base64 text)"
    return {
        "argument": arg.name,
        "path": arg.name + path,
        "expected": shape.idl,
        "message": f"{spec.name}: {text}",
        "rank": rank,
    }


def _example(spec: MethodSpec) -> str:
    inner = ", ".join(f'"{a.name}": {a.shape.idl}' for a in spec.args)
    return "{" + inner + "}"


def validation_error(spec: MethodSpec, errors: Iterable[Mapping[str, Any]]) -> GatewayError:
    """A 422 for the pydantic ``errors`` of a body of ``spec``, one problem per place."""
    best: dict[str, dict[str, Any]] = {}
    for error in errors:
        problem = _problem(spec, error)
        # One problem per place: the members of a union (a datum's two forms) count once.
        place = problem.get("path") or problem["message"]
        kept = best.get(place)
        if kept is None or problem.get("rank", 0) < kept.get("rank", 0):
            best[place] = problem
    problems = [{k: v for k, v in p.items() if k != "rank"} for p in best.values()]
    message = "; ".join(p["message"] for p in problems[:5])
    if len(problems) > 5:
        message += f"; and {len(problems) - 5} more"
    return GatewayError(422, "bad_request", message, problems=problems)
