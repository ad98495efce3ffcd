"""Refuse writes that another site makes a signed-in browser send (cross-site request forgery),
and sign-ins it starts (login CSRF: signing the browser in as someone else).

The web app keeps the API key in a ``SameSite=Strict`` cookie, which modern browsers already
hold back from requests other sites start. This guard is the second lock, for browsers that do
not. A request that changes something (any method but GET, HEAD, OPTIONS) is refused with 403
``cross_site`` when the browser says another site started it (``Sec-Fetch-Site: cross-site``,
or an ``Origin`` that is not this server's), if it either

- carries the web app's cookie, whatever other headers it carries (an ``Authorization`` or
  ``X-API-Key`` header does not exempt it: the check never depends on an unrelated header), or
- posts to a web page rather than the API (``/signin`` above all: its form takes a key).

Clients that send no ``Origin`` (scripts, curl) are not affected: only browsers send it, and
they always do on cross-site writes. Nor are API calls that carry their key in a header and no
cookie: another site cannot make a browser add those headers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.api.errors import send_error
from conveyor.http_common import COOKIE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SameOriginWrites:
    """ASGI middleware: see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            reason = cross_site(
                Headers(scope=scope), scope.get("scheme", "http"), scope.get("path", "")
            )
            if reason is not None:
                await _refuse(scope, send, reason)
                return
        await self.app(scope, receive, send)


def cross_site(headers: Headers, scheme: str, path: str = "/") -> str | None:
    """Why a write must be refused, or None when it may go on."""
    with_cookie = f"{COOKIE}=" in headers.get("cookie", "")
    if not with_cookie and path.startswith("/api/"):
        return None  # its key, if any, is in a header another site cannot make a browser send
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
        "the API key in an Authorization header (and no cookie)"
    )
    await send_error(scope, send, 403, "cross_site", message)
