"""HTTP guards in front of every variant's routes: the request-body size limit, and 405s that list every method."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def body_too_large(max_bytes: int) -> str:
    return f"request body larger than {max_bytes} bytes"


class BodySizeLimit:
    """Refuse request bodies above `max_bytes` with 413, before the route parses them.

    A declared Content-Length is checked once, up front, and the body then passes through untouched; only a body
    without one (chunked) is counted as it arrives. Either way the body is read once, by the route."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_headers(scope)
        if declared is None and not chunked:
            # No length and not chunked: HTTP/1.1 says there is no body (every GET of the load): nothing to count.
            await self.app(scope, receive, send)
        elif declared is None:
            await self.app(scope, self._counting(receive), send)
        elif declared > self.max_bytes:
            # Answered without reading the body; the server discards what the client still sends.
            await JSONResponse({"detail": body_too_large(self.max_bytes)}, status_code=413)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI lets an HTTPException raised while it reads the body through as that response.
                raise HTTPException(status_code=413, detail=body_too_large(self.max_bytes))
            return message

        return counted


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None when absent or unreadable: then counted as it arrives, like a chunked
    body) and whether a Transfer-Encoding is given; one pass over the headers, since every request pays it."""
    declared, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = None
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """Starlette's 405 names only the methods of the first route matching the path; HTTP wants all of them."""
    allowed: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL:  # the path matches, the method does not
            allowed |= getattr(route, "methods", None) or set()
    detail = exc.detail if isinstance(exc, HTTPException) else "Method Not Allowed"
    return JSONResponse({"detail": detail}, status_code=405, headers={"Allow": ", ".join(sorted(allowed))})
