"""The size limit of an online request's body (``--max-request``): jobs have their own.

An online body is parsed whole into Python objects (JSON, then pydantic models, then wire
values), some 25 times its size in memory at the peak; so a body past the limit is refused
with a 413 before it is read when it says its length, and as soon as it has sent more than
the limit when it does not.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.http.errors import GatewayError

#: The default limit: 8 MiB, some 200 MiB of memory while one such call is parsed.
DEFAULT_MAX_REQUEST = 8 << 20


def _too_large(limit: int) -> str:
    return (
        f"the request body is larger than {limit} bytes (--max-request; send many inputs "
        "as a job: POST /v1/jobs/METHOD)"
    )


class BodyTooLarge(HTTPException):
    """An online request's body grew past ``--max-request`` while it was read (raised in
    the app's read of the body, which lets an HTTPException through: a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit))


class OnlineBodyLimit:
    """ASGI middleware: refuses online request bodies over ``limit`` bytes (413)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")[len(scope.get("root_path", "")) :]
        if scope["type"] != "http" or path.startswith("/v1/jobs"):
            await self.app(scope, receive, send)
            return
        limit = self.limit
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                refusal = GatewayError(413, "too_large", _too_large(limit)).response()
                await refusal(scope, receive, send)
                return
        await self.app(scope, limited(receive, limit, lambda: BodyTooLarge(limit)), send)


def limited(receive: Receive, limit: int, too_large: Callable[[], Exception]) -> Receive:
    """``receive`` that raises ``too_large()`` once the body has brought more than
    ``limit`` bytes."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large()
        return message

    return counted
