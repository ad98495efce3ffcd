"""What an import reports: its counts, its rejects, and the errors that stop it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from conveyor.errors import Invalid

ImportFormat = Literal["csv", "json", "jsonl"]
IMPORT_FORMATS: tuple[ImportFormat, ...] = ("csv", "json", "jsonl")
RESERVED_COLUMNS = ("_line", "_column", "_reason")
"""The columns a rejects file adds; an import ignores them."""
REJECTS_KEPT = 1000
"""How many rejects an :class:`ImportReport` lists (the rejects file has all of them)."""


class HeaderMismatch(Invalid, ValueError):
    """A CSV header that does not fit the pipeline; nothing was imported."""

    def __init__(
        self,
        missing: list[str],
        unknown: list[str],
        expected: list[str],
        duplicated: list[str] | None = None,
    ):
        self.missing = missing
        self.unknown = unknown
        self.duplicated = duplicated or []
        self.expected = expected
        parts = []
        if missing:
            parts.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown columns: {', '.join(n or '(empty)' for n in unknown)}")
        if self.duplicated:
            parts.append(f"repeated columns: {', '.join(self.duplicated)}")
        super().__init__(
            f"the CSV header does not fit the pipeline ({'; '.join(parts)}); "
            f"the columns are: {', '.join(expected)} "
            "(print a template with `python starter.py task template --pipeline ...`)"
        )


class CreationFailed(RuntimeError):
    """Every task start of a batch failed (usually Temporal is unreachable); the import stopped.

    The batches before it are done (and saved in the state file, if any): run it again.
    """


@dataclass(frozen=True)
class Reject:
    """A row that was not imported."""

    line: int
    """The line the row starts on (for JSON, the line its object starts on)."""
    column: str
    """The bad column(s), comma-separated; empty when the whole row is unreadable or failed
    to start."""
    reason: str
    errors: dict[str, str] = field(default_factory=dict)
    """One message per bad column."""
    key: str | None = None


@dataclass
class ImportReport:
    """What an import did, counting an earlier, interrupted run's batches too."""

    path: Path
    format: ImportFormat
    rows: int = 0
    """Rows read (blank lines are not rows)."""
    created: int = 0
    existed: int = 0
    """Rows whose task was already there (imported before, or repeated in the file)."""
    rejected: int = 0
    """Rows that do not fit the pipeline, or cannot be read."""
    errors: int = 0
    """Rows whose task failed to start; importing again retries them."""
    rejects: list[Reject] = field(default_factory=list)
    """This run's first :data:`REJECTS_KEPT` rejects (the rejects file has all of them)."""
    rejects_path: Path | None = None
    """The rejects file, when it holds any row."""
    resumed_rows: int = 0
    """Rows an earlier, interrupted run had done (0 for a fresh import)."""
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Every row was imported (or, for a dry run, is valid)."""
        return self.rejected == 0 and self.errors == 0

    @property
    def valid(self) -> int:
        """Rows that fit the pipeline."""
        return self.rows - self.rejected


@dataclass
class Record:
    """One row of the file as read: its first line, its columns, and what it looked like."""

    line: int
    row: dict[str, Any] | None
    """The row's columns (reserved ones removed); None when it cannot be read."""
    original: Any
    """CSV: the cells; JSON: the object, or ``{"_raw": ...}`` when it is not one."""
    problem: tuple[str, str] | None = None
    """For an unreadable row: (column, reason)."""
