"""The web app: contributor pages and the Data Explorer, served beside the API.

Server-rendered pages (Jinja2 templates in ``templates/``, plain CSS and a little vanilla
JavaScript in ``static/``; no build step). Every page goes through the same client library and
store queries as the CLI and the HTTP API.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from conveyor.web.common import HERE, PageError, SignInRequired, render


def mount(app: FastAPI) -> None:
    """Add the web app's pages and static files to ``app``."""
    from conveyor.web import agreement, contributor, explorer, signin

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(signin.router)
    app.include_router(contributor.router)
    app.include_router(explorer.router)
    app.include_router(agreement.router)

    @app.exception_handler(SignInRequired)
    async def _sign_in(_: Request, err: SignInRequired) -> Response:
        params = {"next": err.next_url}
        if err.message:
            params["reason"] = err.message
        return RedirectResponse("/signin?" + urlencode(params), status_code=303)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, err: PageError) -> Response:
        from conveyor.web.common import page_user

        try:
            user = await page_user(request)
        except SignInRequired:
            user = None
        return render(
            request,
            "error.html",
            {"title": err.title, "message": err.message, "status": err.status},
            user=user,
            status=err.status,
        )
