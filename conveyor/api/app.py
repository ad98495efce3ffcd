"""The FastAPI application: what it depends on, and how it is put together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from sqlalchemy.orm import Session, sessionmaker

from conveyor.api import errors
from conveyor.client import ConveyorClient


@dataclass
class ApiDeps:
    """Everything a route needs, made once per process: the Temporal client library and
    sessions on the store. Tests build it from their own dev server and database."""

    conveyor: ConveyorClient
    sessions: sessionmaker[Session]


def deps_of(request: Request) -> ApiDeps:
    deps: ApiDeps | None = getattr(request.app.state, "deps", None)
    if deps is None:
        raise RuntimeError("the API was started without its dependencies (create_app(deps))")
    return deps


def create_app(deps: ApiDeps | None = None) -> FastAPI:
    """The API (under ``/api``) and the web app; ``deps=None`` connects from ``CONVEYOR_*``
    settings when the server starts."""

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
        lifespan=lifespan,
        responses={
            401: {"model": errors.ErrorResponse, "description": "no live API key"},
            403: {"model": errors.ErrorResponse, "description": "the role does not allow it"},
            422: {"model": errors.ErrorResponse, "description": "invalid input"},
        },
    )
    app.state.deps = deps
    errors.install(app)
    from conveyor import web

    web.mount(app)
    return app
