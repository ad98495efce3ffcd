"""What every page shares: who is signed in, templates, flash messages, store access.

Pages authenticate with the same API keys as the HTTP API (``conveyor.api.auth``): the key a
person pastes on the sign-in page is kept in an HTTP-only, SameSite=Strict cookie, so the
browser sends it with every request from these pages and never to another site's forms.
Without a live key a page redirects to the sign-in page; a page the role does not allow
answers 403 with a page saying so.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy.orm import Session

from conveyor.http_common import COOKIE, ApiDeps, ApiError, deps_of, user_of_key
from store.db import transaction
from store.users import Role, User
from store.workqueue import projected_seq

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

FLASH_COOKIE = "conveyor_flash"

T = TypeVar("T")


class SignInRequired(Exception):
    """No live key: the page redirects to the sign-in page (and back afterwards)."""

    def __init__(self, next_url: str, message: str | None = None):
        super().__init__(message or "sign in to continue")
        self.next_url = next_url
        self.message = message


class PageError(Exception):
    """A page that cannot be shown: rendered as an error page with ``status``."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def failure(err: Exception) -> PageError | None:
    """What a page says about an error of the library (a refused command, a workflow that has
    ended, no worker answering...); None for errors it does not know."""
    from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from conveyor.client import CommandRejected, NoWorkerResponded
    from store.explorer import InvalidCursor, TaskNotFound

    if isinstance(err, CommandRejected):
        detail = "; ".join(err.result.field_errors.values())
        return PageError(409, "Refused", err.result.message + (f": {detail}" if detail else ""))
    if isinstance(err, NoWorkerResponded):
        return PageError(503, "No worker answered", str(err))
    if isinstance(err, TaskNotFound):
        return PageError(404, "Not found", str(err))
    if isinstance(err, InvalidCursor):
        return PageError(400, "Bad page", str(err))
    if isinstance(err, WorkflowUpdateFailedError):
        return PageError(409, "Refused", f"the task refused the command: {err.cause}")
    if isinstance(err, WorkflowQueryFailedError):
        return PageError(409, "No answer", f"the task could not answer: {err.message}")
    if isinstance(err, RPCError):
        if err.status == RPCStatusCode.NOT_FOUND:
            return PageError(
                404,
                "Not found",
                "the task's workflow does not exist, or it has ended (a Finished task takes no "
                "more commands)",
            )
        return PageError(503, "Temporal did not answer", f"{err.status.name}: {err.message}")
    if isinstance(err, RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in err.errors()
        )
        return PageError(400, "Bad request", problems)
    return None


class PageRoute(APIRoute):
    """A page's route: errors of the library become error pages (HTML, not the API's JSON)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response: Response = await original(request)
            except (SignInRequired, PageError):
                raise
            except Exception as err:
                page = failure(err)
                if page is None:
                    raise
                raise page from err
            return response

        return handler


def forbidden(message: str) -> PageError:
    return PageError(403, "Not allowed", message)


def pipeline_url(name: str, **params: Any) -> str:
    """A Data Explorer pipeline page (``params``: its query; empty values left out)."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")}, doseq=True)
    return f"/explorer/pipelines/{name}" + (f"?{query}" if query else "")


def task_url(workflow_id: str, view: str | None = None) -> str:
    """A task's page in the Data Explorer."""
    params = {"id": workflow_id, **({"view": view} if view else {})}
    return "/explorer/task?" + urlencode(params)


def not_found(message: str) -> PageError:
    return PageError(404, "Not found", message)


async def page_user(request: Request) -> User:
    """The signed-in user (the API's own key check, on the cookie alone: pages are for the
    signed-in browser), or :class:`SignInRequired`."""
    try:
        return await user_of_key(request, request.cookies.get(COOKIE))
    except ApiError as err:
        if err.status == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            had_key = bool(request.cookies.get(COOKIE))
            raise SignInRequired(
                target, "your key is no longer valid; sign in again" if had_key else None
            ) from None
        raise


def require_reader(user: User) -> None:
    """Admins and viewers: the Data Explorer. Contributors see only their own work."""
    if user.role is Role.CONTRIBUTOR:
        raise forbidden(
            f"{user.name} is a contributor: contributors see the work queue and their own work, "
            "not the Data Explorer"
        )


def require_admin(user: User) -> None:
    if user.role is not Role.ADMIN:
        raise forbidden(f"{user.name} is {user.role.value}; this needs an admin")


def require_worker(user: User) -> None:
    """Contributors (and admins, trying a pipeline by hand) use the work queue."""
    if user.role is Role.VIEWER:
        raise forbidden(f"{user.name} is a viewer: viewers can read but not claim or submit work")


def deps(request: Request) -> ApiDeps:
    return deps_of(request)


async def in_store(request: Request, fn: Callable[[Session], T]) -> T:
    """Run ``fn(session)`` in one transaction on a worker thread (the store is synchronous)."""
    sessions = deps_of(request).sessions

    def run() -> T:
        with transaction(sessions) as session:
            return fn(session)

    return await asyncio.to_thread(run)


async def wait_projected(
    request: Request, workflow_id: str, seq: int, timeout: float = 3.0
) -> None:
    """Wait (briefly) until the store shows the task at ``seq`` or later, so the page that
    follows an action shows its effect. The projection usually lags by milliseconds."""
    if seq <= 0:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def current(session: Session) -> int:
        return projected_seq(session, workflow_id)

    while loop.time() < deadline:
        if await in_store(request, current) >= seq:
            return
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- flash messages


def redirect(url: str, *, notice: str | None = None, error: str | None = None) -> Response:
    """A 303 to ``url`` carrying a one-time message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if notice or error:
        value = json.dumps({"notice": notice, "error": error})
        response.set_cookie(
            FLASH_COOKIE, quote(value), max_age=60, httponly=True, samesite="strict", path="/"
        )
    return response


def _take_flash(request: Request) -> dict[str, str | None]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return {}
    try:
        value = json.loads(unquote(raw))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    user: User | None,
    status: int = 200,
    nav: str = "",
) -> HTMLResponse:
    """Render a page, with the signed-in user, the navigation and any flash message."""
    flash = _take_flash(request)
    response = templates.TemplateResponse(
        request,
        template,
        {"user": user, "nav": nav, "flash": flash, **context},
        status_code=status,
    )
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


# --------------------------------------------------------------------------- template filters


def fmt_time(value: datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        parsed = value
    return f"{parsed.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def fmt_ago(value: datetime | None) -> str:
    if value is None:
        return ""
    seconds = (datetime.now(UTC) - value.astimezone(UTC)).total_seconds()
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return ""  # pragma: no cover


def fmt_number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, float) and not math.isfinite(value):
        return "\u2013"
    return f"{value:,.{digits}f}"


def fmt_cost(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def fmt_percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{value * 100:.0f}%"


def fmt_value(value: Any) -> str:
    """A field value as text for a table cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def status_class(value: Any) -> str:
    """The CSS class of a task or node state badge: ``st-in-progress``, ``st-n-a``."""
    text = str(getattr(value, "value", value) or "").lower()
    return "st-" + "".join(c if c.isalnum() else "-" for c in text).strip("-")


def url_with(request: Request, **changes: Any) -> str:
    """The current page's URL with some query parameters changed (None removes one)."""
    params: list[tuple[str, str]] = [
        (k, v) for k, v in request.query_params.multi_items() if k not in changes
    ]
    for key, value in changes.items():
        if value is None or value == "":
            continue
        if isinstance(value, list | tuple):
            params += [(key, str(v)) for v in value]
        else:
            params.append((key, str(value)))
    query = urlencode(params)
    return request.url.path + (f"?{query}" if query else "")


def json_pretty(value: Any) -> Markup:
    return Markup.escape(json.dumps(value, ensure_ascii=False, indent=2, default=str))


templates.env.filters.update(
    {
        "time": fmt_time,
        "ago": fmt_ago,
        "num": fmt_number,
        "cost": fmt_cost,
        "pct": fmt_percent,
        "value": fmt_value,
        "st": status_class,
        "pretty": json_pretty,
    }
)
templates.env.globals.update({"url_with": url_with, "Role": Role})
