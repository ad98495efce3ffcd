"""What an import keeps on disk: the rejects file and the state file it resumes from."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from conveyor.importing.report import RESERVED_COLUMNS, ImportFormat, Record, Reject

_HEAD_BYTES = 64 * 1024


# --------------------------------------------------------------------------- rejects


class RejectsWriter:
    """Bad rows, buffered per batch and appended (and synced) when the batch is done."""

    def __init__(self, path: Path | None, kind: ImportFormat, header: list[str] | None, size: int):
        self.path = path
        self.kind = kind
        self.size = size
        self.pending: list[bytes] = []
        header = header or []
        self.width = len(header)
        # A corrected rejects file imported again has these columns already: write them anew.
        self.columns = [i for i, h in enumerate(header) if h.strip() not in RESERVED_COLUMNS]
        self.header = [*RESERVED_COLUMNS, *(header[i] for i in self.columns)]

    def add(self, record: Record, reject: Reject) -> None:
        if self.path is None:
            return
        head = [str(reject.line), reject.column, reject.reason]
        if self.kind == "csv":
            if self.size == 0 and not self.pending:
                self.pending.append(_csv_line(self.header))
            cells = list(record.original)
            if len(cells) == self.width:
                cells = [cells[i] for i in self.columns]
            self.pending.append(_csv_line([*head, *cells]))
        else:
            meta: dict[str, Any] = {"_line": reject.line, "_column": reject.column}
            meta["_reason"] = reject.reason
            body = json.dumps({**meta, **record.original}, ensure_ascii=False, default=str)
            self.pending.append((body + "\n").encode())

    def flush(self) -> None:
        if self.path is None or not self.pending:
            return
        with self.path.open("ab") as f:
            f.write(b"".join(self.pending))
            f.flush()
            os.fsync(f.fileno())
            self.size = f.tell()
        self.pending = []


def _csv_line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode()


def cut_back(path: Path, size: int) -> bool:
    """Cut a resumed import's rejects file back to its saved length (False: it is shorter)."""
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        return size == 0
    if actual < size:
        return False
    with path.open("r+b") as f:
        f.truncate(size)
    return True


# --------------------------------------------------------------------------- state


class ImportState(BaseModel):
    """An unfinished import's checkpoint, replaced after every batch."""

    kind: Literal["conveyor-import/1"] = "conveyor-import/1"
    file: str
    size: int
    head: str
    """sha256 of the file's first 64 KiB."""
    format: ImportFormat
    pipeline: str
    version: str
    key_column: str | None
    start_paused: bool
    rejects: str | None
    rows: int = 0
    line: int = 0
    offset: int = 0
    """Bytes of whole rows done (CSV, JSON Lines), or array elements done (JSON)."""
    created: int = 0
    existed: int = 0
    rejected: int = 0
    errors: int = 0
    rejects_size: int = 0

    def identity(self) -> dict[str, Any]:
        return self.model_dump(
            include={
                "kind",
                "file",
                "size",
                "head",
                "format",
                "pipeline",
                "version",
                "key_column",
                "start_paused",
                "rejects",
            }
        )


class StateKeeper:
    def __init__(self, path: Path | None):
        self.path = path

    def load(self, fresh: ImportState) -> ImportState:
        """The saved state when it describes this very import, else ``fresh``."""
        if self.path is None:
            return fresh
        try:
            saved = ImportState.model_validate_json(self.path.read_bytes())
        except (FileNotFoundError, ValidationError, ValueError):
            return fresh
        return saved if saved.identity() == fresh.identity() else fresh

    def save(self, state: ImportState) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w") as f:
            f.write(state.model_dump_json(indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def discard(self) -> None:
        if self.path is None:
            return
        for p in (self.path, self.path.with_name(self.path.name + ".tmp")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def head_hash(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.sha256(f.read(_HEAD_BYTES)).hexdigest()
