"""What every command-line entry point needs: a Temporal connection, the store, exit codes.

Connecting and its errors live in :mod:`conveyor.connect` (the HTTP API shares them); they are
re-exported here for the commands.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from conveyor.connect import CliError as CliError
from conveyor.connect import Unavailable as Unavailable
from conveyor.connect import connect_conveyor as connect_conveyor
from conveyor.connect import describe_store as describe_store
from conveyor.connect import sqlite_path as sqlite_path
from conveyor.connect import store_sessions as store_sessions

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


# --------------------------------------------------------------------------- argument types


def timestamp(text: str) -> datetime:
    """An ISO date or time argument (UTC when it names no zone)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or time, e.g. 2026-01-31 or 2026-01-31T12:00:00+00:00"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def positive(text: str) -> int:
    """A whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


# --------------------------------------------------------------------------- tables


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(
    headers: list[str],
    rows: list[list[str]],
    left: int,
    indent: str = "",
    text_columns: tuple[int, ...] = (),
) -> None:
    """Aligned columns: the first ``left`` and those in ``text_columns`` are text
    (left-aligned), the rest numbers."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        text = "  ".join(
            c.ljust(w) if i < left or i in text_columns else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return (indent + text).rstrip()

    print(line(headers))
    for row in rows:
        print(line(row))
