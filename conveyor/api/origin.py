"""Refuse writes that another site makes a signed-in browser send (cross-site request forgery).

The web app keeps the API key in a ``SameSite=Strict`` cookie, which modern browsers already
hold back from requests other sites start. This guard is the second lock, for browsers that do
not: a request that changes something (any method but GET, HEAD, OPTIONS) and is authenticated
by the cookie alone is refused with 403 ``cross_site`` when the browser says it comes from
another site (``Sec-Fetch-Site: cross-site``, or an ``Origin`` that is not this server's).

Requests that carry their key in ``Authorization`` or ``X-API-Key`` are not affected: another
site cannot make a browser add those headers. Neither are clients that send no ``Origin``
(scripts, curl): only browsers send it, and they always do on cross-site writes.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.api.auth import COOKIE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SameOriginWrites:
    """ASGI middleware: see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            reason = cross_site(Headers(scope=scope), scope.get("scheme", "http"))
            if reason is not None:
                await _refuse(scope, send, reason)
                return
        await self.app(scope, receive, send)


def cross_site(headers: Headers, scheme: str) -> str | None:
    """Why a cookie-authenticated write must be refused, or None when it may go on."""
    if headers.get("authorization") or headers.get("x-api-key"):
        return None
    if f"{COOKIE}=" not in headers.get("cookie", ""):
        return None  # no key at all: the route answers 401 or sends the browser to sign in
    if headers.get("sec-fetch-site") == "cross-site":
        return "the browser says this request comes from another site"
    origin = headers.get("origin")
    if origin is None:
        return None
    host = headers.get("x-forwarded-host") or headers.get("host", "")
    parts = urlsplit(origin)
    if origin == "null" or parts.netloc.lower() != host.lower():
        return f"the request comes from {origin}, not from this server ({scheme}://{host})"
    return None


async def _refuse(scope: Scope, send: Send, reason: str) -> None:
    message = (
        f"refused a write from another site: {reason}. Use the pages of this server, or send "
        "the API key in an Authorization header"
    )
    path: str = scope.get("path", "")
    if path.startswith("/api/"):
        body = json.dumps({"error": {"code": "cross_site", "message": message, "details": None}})
        content_type = b"application/json"
    else:
        body = f"<!doctype html><title>Refused</title><h1>Refused</h1><p>{_escape(message)}</p>"
        content_type = b"text/html; charset=utf-8"
    data = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(data))],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
