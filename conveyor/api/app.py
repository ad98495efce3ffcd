"""The FastAPI application: what it depends on, and how it is put together."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from sqlalchemy.orm import Session, sessionmaker

from conveyor.api import errors
from conveyor.client import ConveyorClient

API_PREFIX = "/api/v1"


@dataclass
class ApiDeps:
    """Everything a route needs, made once per process: the Temporal client library and
    sessions on the store. Tests build it from their own dev server and database.

    ``data_dir``: where export jobs write their files (``<data_dir>/exports``); by default
    ``CONVEYOR_DATA_DIR`` (else ``data``), as for the store's SQLite file.
    """

    conveyor: ConveyorClient
    sessions: sessionmaker[Session]
    data_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("CONVEYOR_DATA_DIR") or "data")
    )


def deps_of(request: Request) -> ApiDeps:
    deps: ApiDeps | None = getattr(request.app.state, "deps", None)
    if deps is None:
        raise RuntimeError("the API was started without its dependencies (create_app(deps))")
    return deps


def create_app(deps: ApiDeps | None = None) -> FastAPI:
    """The API (under ``/api/v1``) and the web app; ``deps=None`` connects from ``CONVEYOR_*``
    settings when the server starts."""
    from conveyor.api.docs import mount_docs
    from conveyor.api.exports import ExportJobs
    from conveyor.api.limits import BodyLimits
    from conveyor.api.origin import SameOriginWrites
    from conveyor.api.routes import routers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "deps", None) is None:
            from conveyor.cli_common import connect_conveyor, store_sessions

            app.state.deps = ApiDeps(conveyor=await connect_conveyor(), sessions=store_sessions())
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
    from conveyor import web

    web.mount(app)
    return app
