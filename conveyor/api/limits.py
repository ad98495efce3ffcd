"""Limits on request bodies, checked before any route reads them.

Every body is read here first, up to its route's limit, so no route (nor FastAPI's JSON
parser, nor Temporal) ever sees one that is too large or too deep:

- **Size** (413 ``too_large``). A body that becomes a workflow's input or a command (creating
  one task, every task command, the web app's forms) may be at most
  :data:`MAX_PAYLOAD_BODY_BYTES`: Temporal warns at 512 KiB per payload and refuses 2 MiB, and
  a task's workflow carries its seed data and submissions in its state. Large field values
  belong in the store. Routes whose body is many payloads (a batch of rows, each its own task's
  input) or a pipeline definition checked by its own rule (:data:`LARGE_BODY_ROUTES`) may send
  up to :data:`MAX_BODY_BYTES`.
- **Shape** (400 ``bad_request``; pipeline definitions: see :data:`DEFINITION_ROUTES`). A JSON
  body may nest at most :data:`MAX_JSON_DEPTH` arrays
  and objects, no number in it may be longer than :data:`MAX_NUMBER_CHARS` characters, and
  ``NaN`` and ``Infinity`` (which Python reads, though they are not JSON) are refused:
  deeper or longer input is never meaningful here, and it costs the parser (Python's ``json``
  refuses integers over 4,300 digits; recursion fails near 1,000 levels) and every layer after
  it.
"""

from __future__ import annotations

import asyncio
import re
from itertools import accumulate

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api.errors import send_error

MAX_PAYLOAD_BODY_BYTES = 512 * 1024
"""Bodies that Temporal carries (a task's creation, a command, a form): 512 KiB."""

MAX_BODY_BYTES = 8 * 1024 * 1024
"""Bodies of :data:`LARGE_BODY_ROUTES`: 8 MiB (5,000 rows of batch creation at ~1.6 KiB)."""

MAX_JSON_DEPTH = 64
"""Arrays and objects nested in one another in a JSON body."""

MAX_NUMBER_CHARS = 100
"""Characters of one number in a JSON body."""

LARGE_BODY_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # a definition (the route refuses more than 2 MiB itself, naming that limit)
    ("POST", re.compile(r"^/api/v1/pipelines(/validate)?$")),
    # up to 5,000 rows; each row is its own task's input (one payload each)
    ("POST", re.compile(r"^/api/v1/pipelines/[^/]+/tasks/batch$")),
    # evaluators given in full
    ("POST", re.compile(r"^/api/v1/bulk/evaluations$")),
)
"""The routes that may take up to :data:`MAX_BODY_BYTES`; every other one takes
:data:`MAX_PAYLOAD_BODY_BYTES`."""

DEFINITION_ROUTES = re.compile(r"^/api/v1/pipelines(/validate)?$")
"""Routes whose body is a pipeline definition: the definition parser checks its shape itself
(stricter, JSON or YAML alike: ``conveyor.pipelines.parse_text``) and answers in the route's own
terms (validate: ``200 {"valid": false, "problems": [...]}``; apply: ``422``)."""

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def body_limit(method: str, path: str) -> int:
    """The most bytes a request's body may have."""
    for route_method, pattern in LARGE_BODY_ROUTES:
        if method == route_method and pattern.match(path):
            return MAX_BODY_BYTES
    return MAX_PAYLOAD_BODY_BYTES


class BodyTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(
            f"the request body is larger than this route's limit of {limit:,} bytes "
            f"({_size(limit)}). Large values belong in the store: send fewer rows per call, "
            "or keep documents outside the task's data and reference them"
        )


class BadShape(Exception):
    pass


def _size(count: int) -> str:
    return f"{count // 1024 // 1024} MiB" if count >= 1024 * 1024 else f"{count // 1024} KiB"


# A JSON string with its escapes; one left open runs to the end. It always matches where it
# starts and never backtracks, so the scan is linear whatever the body.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
# Only from the start of a run, so a body of many shorter runs costs no more than one pass.
_NUMBER_CHAR = rb"[-+0-9.eE]"
_LONG_NUMBER = re.compile(rb"(?<!%s)%s{%d,}" % (_NUMBER_CHAR, _NUMBER_CHAR, MAX_NUMBER_CHARS + 1))
# Python's json reads these, but they are not JSON, and no store column or payload takes them.
_NOT_A_NUMBER = re.compile(rb"NaN|Infinity")
_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def check_json_shape(body: bytes) -> None:
    """Refuse a JSON body nested deeper than :data:`MAX_JSON_DEPTH`, with a number longer than
    :data:`MAX_NUMBER_CHARS` characters, or with ``NaN`` / ``Infinity`` (not JSON). Strings are
    skipped; the body need not be valid JSON (the route's parser says what else is wrong).

    Raises:
        BadShape: with a message naming the limit.
    """
    outside = _STRING.sub(b'""', body)
    special = _NOT_A_NUMBER.search(outside)
    if special is not None:
        raise BadShape(
            f"{special.group().decode()} is not a JSON number; send a finite number (or null)"
        )
    number = _LONG_NUMBER.search(outside)
    if number is not None:
        raise BadShape(
            f"a number in the JSON body is {len(number.group()):,} characters long; at most "
            f"{MAX_NUMBER_CHARS} are accepted (send very long numbers as strings)"
        )
    brackets = outside.translate(None, delete=_BRACKETS)
    if len(brackets) > 2 * MAX_JSON_DEPTH:
        deepest = max(accumulate(_STEP[b] for b in brackets))
        if deepest > MAX_JSON_DEPTH:
            raise BadShape(
                f"the JSON body nests {deepest:,} arrays or objects deep; at most "
                f"{MAX_JSON_DEPTH} levels are accepted"
            )


def _is_json(content_type: str) -> bool:
    # FastAPI reads a body without a content type as JSON too.
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "" or media == "application/json" or media.endswith("+json")


class BodyLimits:
    """ASGI middleware: read each request's body within its limit and check a JSON body's shape
    before the app sees it; see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = body_limit(scope["method"], scope.get("path", ""))
        try:
            declared = headers.get("content-length")
            if declared is not None and declared.strip().isdigit() and int(declared) > limit:
                raise BodyTooLarge(limit)
            body = await _read(receive, limit)
            if body is None:
                return  # the client went away before sending all of it
            definition = scope["method"] == "POST" and DEFINITION_ROUTES.match(scope["path"])
            if _is_json(headers.get("content-type", "")) and not definition:
                if len(body) > 64 * 1024:  # up to ~1 s for 8 MiB: off the event loop
                    await asyncio.to_thread(check_json_shape, body)
                else:
                    check_json_shape(body)
        except BodyTooLarge as err:
            await send_error(scope, send, 413, "too_large", str(err), {"limit_bytes": limit})
            return
        except BadShape as err:
            await send_error(scope, send, 400, "bad_request", str(err))
            return
        await self.app(scope, _replay(body, receive), send)


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body (at most ``limit`` bytes); None if the client disconnected first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body in one message, then the client's own messages (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
