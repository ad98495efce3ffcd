"""What every command-line entry point needs: a Temporal connection and the store."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from conveyor.client import ConveyorClient
from conveyor.settings import Settings
from store.db import check_schema, database_url, make_engine, session_factory


class CliError(ValueError):
    """A problem with the command line's input or environment; printed without a traceback."""


async def connect_conveyor() -> ConveyorClient:
    """A client from ``CONVEYOR_*`` settings, or a :class:`CliError` saying how to fix it."""
    settings = Settings.from_env()
    try:
        client = await settings.connect()
    except Exception as err:
        raise CliError(
            f"cannot reach Temporal at {settings.temporal_address} ({err}); "
            "start it with `python starter.py dev` or set CONVEYOR_TEMPORAL_ADDRESS"
        ) from None
    return ConveyorClient(
        client, settings.task_queue, update_timeout=settings.update_timeout_seconds
    )


def store_sessions() -> sessionmaker[Session]:
    """Sessions on the configured store, once its schema is known to be current."""
    engine = make_engine(database_url())
    check_schema(engine)
    return session_factory(engine)
