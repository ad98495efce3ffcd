"""What the HTTP API and the web app share: the process's dependencies, API-key sign-in, the
error both answer with, and CSV downloads.

One FastAPI application serves both (``conveyor.server.create_app``); neither package imports the
other, so what they share lives here, below both.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker

from conveyor.client import ConveyorClient
from store.db import transaction
from store.users import User, authenticate

COOKIE = "conveyor_key"
"""The web app's cookie carrying the signed-in person's API key."""


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

    def __post_init__(self) -> None:
        # Tasks are created, and started on first use, in this store (lazy start).
        if self.conveyor.untouched is None:
            self.conveyor.attach_store(self.sessions)


def deps_of(request: Request) -> ApiDeps:
    deps: ApiDeps | None = getattr(request.app.state, "deps", None)
    if deps is None:
        raise RuntimeError("the API was started without its dependencies (create_app(deps))")
    return deps


class ApiError(Exception):
    """Raise from a route to answer ``status`` with a stable ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def unauthenticated(message: str = "missing or invalid API key") -> ApiError:
    return ApiError(
        401,
        "unauthenticated",
        f"{message}: send it as 'Authorization: Bearer <key>' (make one with "
        "`starter.py user create`)",
    )


async def user_of_key(request: Request, key: str | None) -> User:
    """The live user holding ``key``.

    Raises:
        ApiError: 401 for no key, or an unknown or revoked key, or a disabled user.
    """
    if not key:
        raise unauthenticated("no API key")
    deps = deps_of(request)

    def check() -> User | None:
        with transaction(deps.sessions) as session:
            return authenticate(session, key)

    user = await asyncio.to_thread(check)  # the store is synchronous: keep the loop free
    if user is None:
        raise unauthenticated("unknown, revoked or disabled API key")
    return user


def csv_download(write: Callable[[TextIO], None], filename: str) -> Response:
    """A CSV attachment named ``filename``, written by ``write(out)``."""
    out = io.StringIO()
    write(out)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
