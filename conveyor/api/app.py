"""The API's FastAPI application and how it is put together (what it needs:
:class:`conveyor.http_common.ApiDeps`); :mod:`conveyor.server` serves it with the web app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from conveyor.api import errors
from conveyor.http_common import ApiDeps

API_PREFIX = "/api/v1"


def create_api(deps: ApiDeps | None = None) -> FastAPI:
    """The API (under ``/api/v1``); ``deps=None`` connects from ``CONVEYOR_*`` settings when the
    server starts. :func:`conveyor.server.create_app` adds the web app to it."""
    from conveyor.api.docs import mount_docs
    from conveyor.api.exports import ExportJobs
    from conveyor.api.limits import BodyLimits
    from conveyor.api.origin import SameOriginWrites
    from conveyor.api.routes import routers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "deps", None) is None:
            from conveyor.connect import connect_conveyor, store_sessions

            app.state.deps = ApiDeps(
                conveyor=await connect_conveyor(store=False), sessions=store_sessions()
            )
        yield

    app = FastAPI(
        title="Conveyor API",
        version="1",
        summary="Durable human + LLM work pipelines on Temporal",
        description=(
            "Authenticate with an API key (`starter.py user create NAME --role ROLE`): "
            "`Authorization: Bearer <key>` or `X-API-Key: <key>`. Errors are JSON: "
            '`{"error": {"code": "...", "message": "...", "details": ...}}`.'
        ),
        lifespan=lifespan,
        docs_url=None,  # served from installed files, not a CDN: see conveyor.api.docs
        redoc_url=None,
        responses={
            400: {"model": errors.ErrorResponse, "description": "the body cannot be read"},
            401: {"model": errors.ErrorResponse, "description": "no live API key"},
            403: {"model": errors.ErrorResponse, "description": "the role does not allow it"},
            413: {"model": errors.ErrorResponse, "description": "the body is too large"},
            422: {"model": errors.ErrorResponse, "description": "invalid input"},
        },
    )
    app.state.deps = deps
    app.state.export_jobs = ExportJobs()
    # The last added runs first: refuse a cross-site write before reading its body.
    app.add_middleware(BodyLimits)
    app.add_middleware(SameOriginWrites)
    mount_docs(app)
    errors.install(app)
    for router in routers():
        app.include_router(router, prefix=API_PREFIX)
    return app
