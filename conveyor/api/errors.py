"""Errors as JSON: ``{"error": {"code": "...", "message": "...", "details": ...}}``.

``code`` is stable (clients branch on it); ``message`` is for people and says what to fix;
``details`` carries structured data when there is any (per-field errors, a pipeline's problems,
the refused command's result).

The library's exceptions map here by kind (``workflows.errors``: not found 404, invalid 422,
conflict 409, unavailable 503), each with its own stable code, so every route answers the same
way for the same problem:

=========================  ======  ==============================================================
code                       status  raised when
=========================  ======  ==============================================================
``unauthenticated``        401     no key, an unknown or revoked key, a disabled user; an
                                   ``Authorization`` that is not ``Bearer <key>`` or an empty
                                   ``X-API-Key`` (a header that is there is never passed over
                                   for the cookie)
``forbidden``              403     the user's role does not allow the route (or the claim is
                                   someone else's)
``cross_site``             403     a write carrying the web app's cookie (whatever other headers
                                   it carries), or a sign-in, that the browser says another site
                                   started (see ``conveyor.api.origin``)
``not_found``              404     no such route; or a workflow that does not exist, or has
                                   ended (a Finished task takes no more commands)
``unknown_pipeline``       404     the pipeline was never applied (or the store never saw it)
``task_not_found``         404     no such task in the store, or not a task's workflow id
``no_work``                404     ``queue/next``: nothing the contributor may claim
``no_claim``               404     ``queue/claims/{id}``: the caller holds no claim on the task
``no_job``                 404     no export job of that id that the caller may see
``method_not_allowed``     405     the route exists, not with this method
``rejected``               409     the task refused the command (``details``: the result)
``claim_limit``            409     the contributor holds as many claims as the pipeline allows
``pipeline_rejected``      409     the pipeline refused a status change or a definition
``pipeline_not_accepting`` 409     the pipeline takes no new tasks in its status
``not_ready``              409     an export's download before the export is done
``conflict``               409     other state conflicts
``bad_request``            400     a body that cannot be read at all, or a JSON body nested
                                   deeper than 64 levels, with a number over 100 characters, or
                                   with NaN / Infinity (``conveyor.api.limits``)
``too_large``              413     a body over its route's limit: 512 KiB for what Temporal
                                   carries, 8 MiB for batches and definitions (a definition
                                   itself at most 2 MiB); ``details``: ``limit_bytes``
``invalid_input``          422     the request does not fit the route's schema
``invalid_values``         422     a form's values do not fit its fields (``details``: per field)
``invalid_pipeline``       422     a definition with problems (``details``: every problem)
``invalid_seed_data``      422     seed data that does not fit the pipeline (``details``: per field)
``invalid_cursor``         422     a page cursor the explorer did not make, or for another sort
``confirmation_required``  422     a destructive action without ``confirm: true``
``no_worker``              503     no worker answered the command in time
``temporal_unavailable``   503     Temporal could not be reached
``internal_error``         500     a bug: nothing a client sent should cause it
=========================  ======  ==============================================================
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope, Send

# Shared with the web app; routes keep importing them from here.
from conveyor.http_common import ApiError as ApiError
from conveyor.http_common import unauthenticated as unauthenticated
from workflows.errors import Conflict, ConveyorError, Invalid, NotFound, Unavailable

log = logging.getLogger("conveyor.api")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(what: str, code: str = "not_found") -> ApiError:
    return ApiError(404, code, what)


def conflict(message: str, code: str = "conflict", details: Any = None) -> ApiError:
    return ApiError(409, code, message, details)


def invalid(message: str, code: str = "invalid_input", details: Any = None) -> ApiError:
    return ApiError(422, code, message, details)


def error_json(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


async def send_error(
    scope: Scope, send: Send, status: int, code: str, message: str, details: Any = None
) -> None:
    """Answer from ASGI middleware, before any route runs: the JSON shape above under
    ``/api/``, a short page for the web app's pages."""
    path: str = scope.get("path", "")
    if path.startswith("/api/"):
        body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
        data = json.dumps(body.model_dump(mode="json")).encode()
        content_type = b"application/json"
    else:
        text = html.escape(message)
        data = f"<!doctype html><title>{status}</title><h1>Refused</h1><p>{text}</p>".encode()
        content_type = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(data))],
        }
    )
    await send({"type": "http.response.body", "body": data})


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
}


def _problems(errors: list[Any]) -> list[dict[str, str]]:
    return [
        {
            "at": ".".join(str(p) for p in e.get("loc", ())),
            "problem": e.get("msg", ""),
        }
        for e in errors
    ]


def _invalid_input(errors: list[Any]) -> ApiError:
    problems = _problems(errors)
    summary = "; ".join(f"{p['at']}: {p['problem']}" for p in problems[:5])
    return ApiError(422, "invalid_input", f"invalid request: {summary}", problems)


_STATUS_OF_KIND: dict[type[ConveyorError], int] = {
    NotFound: 404,
    Invalid: 422,
    Conflict: 409,
    Unavailable: 503,
}
"""The HTTP status of each kind of :class:`~workflows.errors.ConveyorError`; the code is the
error's own (``err.code``), the message ``str(err)``, the details ``err.details``."""


def library_error(err: Exception) -> ApiError | None:
    """The :class:`ApiError` a library exception stands for, or None if it is not one of
    the exceptions the API knows (which then answers 500 ``internal_error``)."""
    for kind, build in _library_mapping():
        if isinstance(err, kind):
            return build(err)
    return None


def _by_kind(err: ConveyorError) -> ApiError:
    # The first kind in the error's MRO decides (connect.Unavailable is Unavailable first).
    status = next((_STATUS_OF_KIND[c] for c in type(err).__mro__ if c in _STATUS_OF_KIND), 500)
    return ApiError(status, err.code, str(err), err.details)


def _library_mapping() -> list[tuple[type[Exception], Callable[[Any], ApiError]]]:
    # Imported here: errors.py is imported by auth.py, which the web app imports early.
    from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from conveyor.errors import CommandRejected

    def rejected(err: CommandRejected) -> ApiError:
        # A form's values that do not fit its fields are the caller's input: 422, not 409.
        result = err.result
        if result.field_errors:
            fields = "; ".join(f"{k}: {v}" for k, v in result.field_errors.items())
            return ApiError(422, "invalid_values", f"{result.message} ({fields})", err.details)
        return ApiError(409, err.code, result.message, err.details)

    def rpc(err: RPCError) -> ApiError:
        if err.status == RPCStatusCode.NOT_FOUND:
            return ApiError(
                404,
                "not_found",
                f"{err.message}: the workflow does not exist, or it has ended and takes no "
                "more commands",
            )
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            return ApiError(422, "invalid_input", f"Temporal refused the request: {err.message}")
        if err.status == RPCStatusCode.ALREADY_EXISTS:
            return ApiError(409, "conflict", err.message)
        return ApiError(
            503,
            "temporal_unavailable",
            f"Temporal did not answer ({err.status.name}: {err.message}); try again shortly",
        )

    return [
        # Ours: by kind, except a command refused over its form's values (message differs too).
        (CommandRejected, rejected),
        (ConveyorError, _by_kind),
        # Temporal's and pydantic's, for what reaches the API unwrapped.
        (
            WorkflowUpdateFailedError,
            lambda e: ApiError(409, "rejected", f"the workflow refused the command: {e.cause}"),
        ),
        (
            WorkflowQueryFailedError,
            lambda e: ApiError(409, "conflict", f"the workflow could not answer: {e.message}"),
        ),
        (RPCError, rpc),
        (ValidationError, lambda e: _invalid_input(e.errors())),
    ]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the JSON shape above."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return error_json(err.status, err.code, err.message, err.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        found = _invalid_input(list(err.errors()))
        return error_json(found.status, found.code, found.message, found.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(err.status_code, "http_error")
        return error_json(err.status_code, code, str(err.detail))

    async def _library(_: Request, err: Exception) -> JSONResponse:
        found = library_error(err)
        if found is None:  # a subclass registered for another reason; cannot happen today
            raise err
        return error_json(found.status, found.code, found.message, found.details)

    # One handler per library exception (Starlette picks the most specific class). They run
    # inside the app, unlike a handler for Exception, which Starlette runs after re-raising.
    for kind, _build in _library_mapping():
        app.add_exception_handler(kind, _library)

    @app.exception_handler(Exception)
    async def _other(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_json(
            500,
            "internal_error",
            f"internal error ({type(err).__name__}); the server log has the details",
        )
