"""Reaching Temporal and the store from ``CONVEYOR_*`` settings, for every entry point.

The CLI, the HTTP API and ``dev`` connect the same way and report the same errors:
:class:`CliError` is bad input or environment (the CLI exits 3, the API answers 422), and
:class:`Unavailable` something that cannot be reached (the CLI exits 4).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from conveyor import errors
from conveyor.client import ConveyorClient
from conveyor.errors import Invalid
from conveyor.settings import Settings, resolve_data_dir, store_url
from store.db import check_schema, make_engine, safe_url, session_factory


class CliError(Invalid, ValueError):
    """A problem with the caller's input or environment: the CLI prints it without a traceback
    (exit 3), the HTTP API answers 422 ``invalid_input``."""


class Unavailable(errors.Unavailable, CliError):
    """Temporal, the store or a worker cannot be reached (exit code 4)."""


async def connect_conveyor(*, store: bool = True) -> ConveyorClient:
    """A client from ``CONVEYOR_*`` settings, or :class:`Unavailable` saying how to fix it.

    With ``store`` the client uses the configured store, when there is one, for lazy start
    (:meth:`ConveyorClient.attach_store`): tasks of ``task_start: lazy`` pipelines are created
    as rows there, and commands start their workflows.
    """
    settings = Settings.from_env()
    try:
        conveyor = await ConveyorClient.connect(settings)
    except ValueError:
        raise
    except Exception as err:
        text = str(err)
        # The SDK's message nests the transport's; its innermost message is the useful part.
        found = re.findall(r'message: "([^"]+)"', text)
        reason = found[-1] if found else (text.splitlines()[0] if text else type(err).__name__)
        raise Unavailable(
            f"cannot reach Temporal at {settings.temporal_address} ({reason}); "
            "start it with `./scripts/dev` or set CONVEYOR_TEMPORAL_ADDRESS"
        ) from None
    if store:
        # No store (or one not upgraded): no task of it can be waiting for its start.
        with contextlib.suppress(CliError):
            conveyor.attach_store(store_sessions())
    return conveyor


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def describe_store() -> str:
    """Which store the CLI uses and why, for messages."""
    if os.environ.get("CONVEYOR_DATABASE_URL"):
        return f"{safe_url(store_url())} (set by CONVEYOR_DATABASE_URL)"
    folder, why = resolve_data_dir()
    return f"{folder / 'conveyor.db'} (data directory {folder}: {why})"


def store_sessions() -> sessionmaker[Session]:
    """Sessions on the configured store, once its schema is known to be current.

    A SQLite store that does not exist is not created (this is for commands that read): the
    error says which file was looked for and why there.
    """
    url = store_url()
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise Unavailable(
            f"no store at {describe_store()}; start `./scripts/dev` (it creates one), run "
            "`starter.py db upgrade` to create an empty one, or point CONVEYOR_DATA_DIR or "
            "CONVEYOR_DATABASE_URL at an existing store"
        )
    engine = make_engine(url)
    check_schema(engine)
    return session_factory(engine)
