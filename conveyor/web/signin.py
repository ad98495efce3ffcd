"""Signing in and out: the key a person pastes is checked like any API key and then kept in
an HTTP-only, SameSite=Strict cookie (scripts cannot read it; other sites cannot send it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from conveyor.http_common import COOKIE
from conveyor.web.common import PageRoute, in_store, page_user, redirect, render
from conveyor.web.contributor import role_home
from store.users import authenticate

router = APIRouter(include_in_schema=False, route_class=PageRoute)

COOKIE_MAX_AGE = 14 * 24 * 3600


def _safe_next(target: str | None) -> str | None:
    # Only paths on this site: never redirect a sign-in to another origin.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return None


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    user = await page_user(request)
    return RedirectResponse(role_home(user), status_code=303)


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(
    request: Request,
    next: Annotated[str | None, Query()] = None,
    reason: Annotated[str | None, Query()] = None,
) -> Response:
    return render(
        request,
        "signin.html",
        {"next": _safe_next(next) or "", "error": None, "reason": reason},
        user=None,
    )


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await request.form()
    key = str(form.get("key", "")).strip()
    target = _safe_next(str(form.get("next", "")))
    user = await in_store(request, lambda s: authenticate(s, key)) if key else None
    if user is None:
        return render(
            request,
            "signin.html",
            {
                "next": target or "",
                "error": "That key is unknown, revoked or belongs to a disabled user.",
                "reason": None,
            },
            user=None,
            status=401,
        )
    response = redirect(target or role_home(user), notice=f"signed in as {user.name}")
    response.set_cookie(
        COOKIE,
        key,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    response = redirect("/signin", notice="signed out")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
