"""What every command-line entry point needs: a Temporal connection, the store, exit codes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from conveyor.client import ConveyorClient
from conveyor.settings import Settings, resolve_data_dir, store_url
from store.db import check_schema, make_engine, safe_url, session_factory

EXIT_OK = 0
EXIT_FAILED = 1
"""The command ran and found a problem it reports (drift, no work to claim), or failed
unexpectedly."""
EXIT_REJECTED = 2
"""The task refused the command (the reason is printed)."""
EXIT_INVALID = 3
"""Bad input: arguments, files, ids or names that do not exist, an out-of-date store schema."""
EXIT_UNAVAILABLE = 4
"""Something the command needs cannot be reached: Temporal, the store, a worker (no answer in
time), or a port ``dev`` needs is taken."""


class CliError(ValueError):
    """A problem with the command line's input or environment; printed without a traceback."""


class Unavailable(CliError):
    """Temporal, the store or a worker cannot be reached (exit code 4)."""


async def connect_conveyor() -> ConveyorClient:
    """A client from ``CONVEYOR_*`` settings, or :class:`Unavailable` saying how to fix it."""
    settings = Settings.from_env()
    try:
        return await ConveyorClient.connect(settings)
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
