"""What every route of the API and every page of the web app depends on, made once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from conveyor.client import ConveyorClient


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
