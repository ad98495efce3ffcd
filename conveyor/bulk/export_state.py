"""An export to a path, resumable: its part and state files, its lock, the finished ZIP.

Rows go to ``out.part`` (a ZIP's to ``out.part.csv`` and ``out.part.jsonl``); after each page
the part files are synced to disk and ``out.part.state`` records the rows written, the keyset
cursor, each part's length, the columns and the pipeline versions seen (see
:mod:`conveyor.bulk`).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from conveyor.bulk.consensus import ExportShape, long_columns, wide_columns
from conveyor.bulk.records import ExportFormat, Part, compact_json, export_columns, iso
from conveyor.errors import Conflict
from store.explorer import DataColumns, TaskFilter
from store.export_consensus import ConsensusNode
from store.export_csv import EXPORT_SORT


class ExportStateMismatch(Conflict, ValueError):
    """An unfinished export to this path was started with other options, or cannot go on."""


class ExportBusy(ExportStateMismatch):
    """Another export (another process, or another thread) is writing to this path now."""


@dataclass(frozen=True)
class ExportReport:
    format: ExportFormat
    rows: int
    """The tasks exported, including those an earlier, interrupted run wrote: the rows in the
    file of a wide export."""
    columns: list[str]
    versions: list[str]
    """The pipeline version hashes of the exported tasks."""
    path: Path | None
    resumed_rows: int = 0
    """The tasks an earlier, interrupted run had exported (0 for a fresh export)."""
    shape: ExportShape = "wide"
    answers: int | None = None
    """A long export: the rows in the file (one per answer); None for a wide one."""


class ExportState(BaseModel):
    """An unfinished export's checkpoint, ``<out>.part.state``, replaced after every page.

    Part files are synced to disk before the state that describes them is written, so the
    state never gets ahead of them: a part file can be longer than its recorded size (a page
    was being written when the process died), never shorter. Resuming cuts it back to the size.
    """

    kind: Literal["conveyor-export/1"] = "conveyor-export/1"
    format: ExportFormat
    pipeline: str
    filter: dict[str, Any]
    columns: DataColumns
    """The columns the export started with: a resumed export keeps them and its header."""
    shape: ExportShape = "wide"
    consensus: list[ConsensusNode] = Field(default_factory=list)
    """The pipeline's consensus nodes when the export started (their columns, like
    ``columns``, stay those the export started with)."""
    rows: int = 0
    """The tasks read and written so far."""
    answers: int = 0
    """A long export: the answer rows written so far."""
    cursor: str | None = None
    """The keyset cursor after the last written page; None before the first page."""
    complete: bool = False
    """Every page is written; only the end of the file (or the ZIP) remains to do."""
    sizes: dict[str, int] = Field(default_factory=dict)
    """Each part file's length in bytes, by suffix (see :class:`ExportFiles`)."""
    versions: list[str] = Field(default_factory=list)

    def names(self) -> list[str]:
        """The export's columns (its CSV header), by shape."""
        if self.shape == "long":
            return long_columns(self.consensus)
        return export_columns(self.columns) + wide_columns(self.consensus)

    def report(self, path: Path | None, resumed_rows: int) -> ExportReport:
        return ExportReport(
            self.format,
            self.rows,
            self.names(),
            self.versions,
            path,
            resumed_rows,
            self.shape,
            self.answers if self.shape == "long" else None,
        )


@dataclass(frozen=True)
class ExportFiles:
    """Where an export to ``out`` keeps its work until it is complete."""

    out: Path

    def part(self, suffix: str = "") -> Path:
        """``<out>.part`` (CSV, JSON, JSONL, or the ZIP being assembled), ``<out>.part.csv``..."""
        return self.out.with_name(f"{self.out.name}.part{suffix}")

    @property
    def state(self) -> Path:
        return self.part(".state")

    @property
    def state_tmp(self) -> Path:
        return self.part(".state.tmp")

    def discard(self) -> None:
        """Remove what an unfinished export left behind (never ``out`` itself)."""
        for suffix in ("", ".csv", ".jsonl", ".state", ".state.tmp"):
            self.part(suffix).unlink(missing_ok=True)


@contextmanager
def writing(files: ExportFiles) -> Iterator[None]:
    """Hold ``<out>.part.lock`` (an advisory ``flock``) while an export writes ``out``.

    Two exports to the same path would interleave their rows and checkpoints. The lock is the
    operating system's, so it goes with a process that dies; the file is removed by the holder
    when it is done, and a lock taken on a file that was removed meanwhile is taken again.

    Raises:
        ExportBusy: another export holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): exports to one path must not overlap there
        yield
        return
    path = files.part(".lock")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ExportBusy(
                f"another export is writing {files.out} right now ({path} is locked); wait "
                "for it to finish, or export to another path"
            ) from None
        try:
            if os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except OSError:
            pass
        os.close(fd)  # the holder before us removed the file after we opened it: again
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def load_state(files: ExportFiles) -> ExportState | None:
    try:
        text = files.state.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return ExportState.model_validate_json(text)
    except ValidationError:
        raise ExportStateMismatch(
            f"{files.state} is not the state file of an export; move it away, or pass "
            "--restart (restart=True) to discard it"
        ) from None


def check_resumable(
    files: ExportFiles,
    state: ExportState,
    fmt: ExportFormat,
    shape: ExportShape,
    pipeline: str,
    criteria: TaskFilter,
    parts: list[Part],
) -> None:
    wanted = (fmt, shape, pipeline, filter_json(criteria))
    if (state.format, state.shape, state.pipeline, state.filter) != wanted:
        shaped = (
            f"{state.format} export" if state.shape == "wide" else f"{state.format} long export"
        )
        raise ExportStateMismatch(
            f"{files.state} belongs to an unfinished {shaped} of "
            f"{state.pipeline!r} with filter {compact_json(state.filter)}: rerun with the same "
            "options to continue it, or pass --restart (restart=True) to discard it"
        )
    for part in parts:
        path, size = files.part(part.suffix), state.sizes.get(part.suffix)
        if size is None or not path.exists() or path.stat().st_size < size:
            raise ExportStateMismatch(
                f"{path} is missing or shorter than {files.state} records, so the unfinished "
                "export cannot be continued; pass --restart (restart=True) to start over"
            )


def save_state(files: ExportFiles, state: ExportState) -> None:
    """Replace the state file atomically: a crash leaves the old state or the new one."""
    with files.state_tmp.open("wb") as stream:
        stream.write(state.model_dump_json().encode())
        sync(stream)
    os.replace(files.state_tmp, files.state)


@contextmanager
def reopen(path: Path, size: int) -> Iterator[IO[bytes]]:
    """A part file cut back to its last checkpoint, positioned at its end."""
    with path.open("r+b") as stream:
        stream.truncate(size)
        stream.seek(size)
        yield stream


def sync(stream: IO[bytes]) -> None:
    stream.flush()
    os.fsync(stream.fileno())


def filter_json(criteria: TaskFilter) -> dict[str, Any]:
    return criteria.model_dump(mode="json", exclude_defaults=True)


def zip_members(shape: ExportShape) -> tuple[str, str]:
    """A ZIP's two data members: ``tasks.*`` (wide) or ``answers.*`` (long)."""
    stem = "answers" if shape == "long" else "tasks"
    return f"{stem}.csv", f"{stem}.jsonl"


def manifest(criteria: TaskFilter, state: ExportState) -> dict[str, Any]:
    csv_name, jsonl_name = zip_members(state.shape)
    one = "answer" if state.shape == "long" else "task"
    return {
        "format": "conveyor-export/1",
        "shape": state.shape,
        "pipeline": state.pipeline,
        "versions": state.versions,
        "filter": filter_json(criteria),
        "sort": str(EXPORT_SORT),
        "rows": state.answers if state.shape == "long" else state.rows,
        "tasks": state.rows,
        "columns": state.names(),
        "files": {csv_name: "CSV, formulas neutralised", jsonl_name: f"one {one} per line"},
        "created_at": iso(datetime.now(UTC)),
    }


def write_zip(
    stream: IO[bytes],
    sources: Sequence[IO[bytes]],
    manifest: dict[str, Any],
    shape: ExportShape = "wide",
) -> None:
    """The two data parts as ``tasks.csv`` and ``tasks.jsonl`` (``answers.*`` for a long
    export), in order, then ``manifest.json``."""
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, source in zip(zip_members(shape), sources, strict=True):
            source.seek(0)
            with archive.open(_member(name), "w", force_zip64=True) as member:
                shutil.copyfileobj(source, member, 1024 * 1024)
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        archive.writestr(_member("manifest.json"), text)


def _member(name: str) -> zipfile.ZipInfo:
    """A compressed ZIP member stamped now (``ZipFile.open(name, "w")`` would say 1980)."""
    info = zipfile.ZipInfo(name, date_time=datetime.now().timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info
