"""Importing seed data from a CSV, JSON or JSON Lines file: one task per row.

:func:`import_file` streams the file (memory stays constant whatever its size), validates every
row, reports each bad row with its line number, column and reason (and writes it to a rejects
file), and creates the good rows' tasks in batches through :func:`conveyor.creation.create_tasks`'s
machinery. Keys and value conversion are those of :mod:`conveyor.creation`: a key column, or a
hash of the row's data, so importing the same file again creates nothing new.

**CSV.** The first line is the header: the pipeline's dataset fields (its ``predefined``
fields), plus the key column when one is named. A header that does not fit (a required field or
the key column missing, a column the pipeline does not know, a repeated column) is reported
once, before any row, with both lists (:class:`HeaderMismatch`). Optional fields may be left out.
Lines are numbered as a text editor shows them (the header is line 1; a record with a quoted
line break is reported at the line it starts on). Files are UTF-8, with or without a BOM.

**JSON Lines** (``.jsonl``): one object per line, the keys being the columns; blank lines are
skipped. **JSON** (``.json``): one array of objects, read incrementally, so its size is not
limited by memory; one element may be at most :data:`activities.rows.MAX_JSON_ITEM_CHARS`
characters. A syntax error inside the array stops the import there (:class:`UnreadableFile`),
since the rest of the array cannot be found reliably; JSON Lines has no such problem: a bad line
is one reject. The file is read by :mod:`activities.rows`, the reader the seeder's file source
shares.

**Rejects.** Each bad row goes to the rejects file with ``_line``, ``_column`` and ``_reason``
first, then the row as it was: a CSV for CSV input, JSON Lines (the object plus those three
keys; ``_raw`` for a line that is not an object) for JSON and JSON Lines input. Rows that
failed to start (Temporal refused or was unreachable) go there too, with an empty ``_column``.
Those three columns are ignored when a file is imported, so a corrected rejects file can be
imported as it is. Duplicate keys are compared within a batch only (see
:mod:`conveyor.creation`); a later batch's row with a key seen before reads as ``exists``.

**Resuming.** With a state file, progress is saved after each batch: the file's identity (path,
size and a hash of its first 64 KiB), the pipeline's name and version, the options, the rows
done and the byte offset (the element count for JSON), the counts so far and the rejects file's
length. The state is written to a temporary file and renamed over the old one, after the
batch's rejects are on disk. Run the same import again after an interruption and it continues
after the last saved batch, cutting the rejects file back to its recorded length; a state file
that describes another file, pipeline version or options is ignored and replaced. Creation is
idempotent, so a batch done twice creates nothing twice: the state file only saves time. It is
removed when the import completes without errors; after a row failed to start it stays at the
last batch before the failure, so the next run retries from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from activities.rows import (
    CsvRows,
    JsonArrayRows,
    JsonLinesRows,
    Position,
    UnreadableFile,
)
from conveyor.creation import (
    DEFAULT_CONCURRENCY,
    MAX_ROWS_PER_CALL,
    PreparedRow,
    RowOutcome,
    RowResult,
    SeedRows,
    plan,
    start_prepared,
)
from workflows.forms import DEFAULT_RATING_MAX, DEFAULT_RATING_MIN
from workflows.graph import FieldSpec, FieldType, Pipeline

if TYPE_CHECKING:
    from conveyor.client import ConveyorClient

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "IMPORT_FORMATS",
    "RESERVED_COLUMNS",
    "CreationFailed",
    "HeaderMismatch",
    "ImportFormat",
    "ImportReport",
    "Reject",
    "UnreadableFile",
    "csv_template",
    "detect_format",
    "import_file",
]

ImportFormat = Literal["csv", "json", "jsonl"]
IMPORT_FORMATS: tuple[ImportFormat, ...] = ("csv", "json", "jsonl")
Progress = Callable[[int, int], None]
"""``progress(done, total)`` in bytes of the file, called after each batch."""

DEFAULT_BATCH_SIZE = 1000
RESERVED_COLUMNS = ("_line", "_column", "_reason")
"""The columns a rejects file adds; an import ignores them."""
REJECTS_KEPT = 1000
"""How many rejects an :class:`ImportReport` lists (the rejects file has all of them)."""
_HEAD_BYTES = 64 * 1024


class HeaderMismatch(ValueError):
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


# --------------------------------------------------------------------------- template


def csv_template(pipeline: Pipeline, key_column: str | None = None) -> str:
    """A CSV with the import header and one example row built from the fields' types.

    The example row is valid: importing the template creates one task.
    """
    checker = SeedRows(pipeline, key_column)
    columns = checker.columns()
    example = {name: _example(spec) for name, spec in checker.fields.items()}
    if key_column is not None and not checker.key_is_field:
        example[key_column] = "row-1"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerow([example[name] for name in columns])
    return out.getvalue()


def _example(spec: FieldSpec) -> str:
    options = spec.options or []
    match spec.type:
        case FieldType.SHORT_TEXT | FieldType.LONG_TEXT | FieldType.CODE:
            sample = {
                FieldType.SHORT_TEXT: "example",
                FieldType.LONG_TEXT: "Some text to work on.",
                FieldType.CODE: "print('hello')",
            }[spec.type]
            if spec.min_length is not None and len(sample) < spec.min_length:
                sample = (sample + " ") * math.ceil(spec.min_length / (len(sample) + 1))
            return sample[: spec.max_length] if spec.max_length else sample
        case FieldType.URL:
            return "https://example.com/item/1"
        case FieldType.BOOLEAN:
            return "true"
        case FieldType.NUMBER:
            number = min(max(1.5, spec.min if spec.min is not None else -math.inf), spec.max or 1.5)
            return _number_text(number)
        case FieldType.INTEGER:
            low = math.ceil(spec.min) if spec.min is not None else None
            high = math.floor(spec.max) if spec.max is not None else None
            whole = 3 if low is None else max(3, low)
            return str(whole if high is None else min(whole, high))
        case FieldType.RATING:
            low = DEFAULT_RATING_MIN if spec.min is None else math.ceil(spec.min)
            high = DEFAULT_RATING_MAX if spec.max is None else math.floor(spec.max)
            return str((low + high + 1) // 2)
        case FieldType.DATETIME:
            return "2024-05-01T09:30:00+00:00"
        case FieldType.SELECT | FieldType.PAIRWISE:
            return options[0] if options else ""
        case FieldType.MULTI_SELECT:
            count = max(1, math.ceil(spec.min or 1))
            if spec.max is not None:
                count = min(count, math.floor(spec.max))
            return "|".join(options[:count])
        case FieldType.RANKING:
            return "|".join(options)
    return ""  # pragma: no cover - every FieldType is matched above


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --------------------------------------------------------------------------- import


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> ImportFormat:
    """``fmt`` when given, else the file's ending: ``.csv``, ``.json`` or ``.jsonl``."""
    chosen = (fmt or Path(path).suffix.lstrip(".")).lower()
    if chosen == "ndjson":
        chosen = "jsonl"
    for known in IMPORT_FORMATS:
        if chosen == known:
            return known
    raise ValueError(
        f"cannot tell the format of {os.fspath(path)!r}; name it .csv, .json or .jsonl, "
        "or give the format (--format csv|json|jsonl)"
    )


async def import_file(
    conveyor: ConveyorClient | None,
    pipeline: Pipeline,
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    key_column: str | None = None,
    start_paused: bool = False,
    rejects: str | os.PathLike[str] | None = None,
    state_file: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    dry_run: bool = False,
    on_resume: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Create one task of ``pipeline`` per row of a CSV, JSON or JSON Lines file.

    Args:
        conveyor: The client to start tasks with (may be None for a dry run).
        pipeline: The pipeline (version) the tasks run.
        path: The file to import.
        fmt: ``csv``, ``json`` or ``jsonl``; by default from the file's ending.
        key_column: The column holding each task's key (else a hash of the row's data).
        start_paused: Start the tasks Paused.
        rejects: Where bad rows are written (see the module docstring); None writes none.
            A fresh import replaces the file; a resumed one continues it.
        state_file: Where progress is saved after each batch, so that running the same import
            again continues after the last saved batch.
        progress: ``progress(done, total)`` in bytes after each batch. It may raise to stop
            the import: the batch it reports is saved.
        batch_size: Rows per batch (1 to 5,000).
        concurrency: Task starts in flight at once.
        dry_run: Only validate: nothing is started and no state is saved; rejects are written.
        on_resume: Called with the rows and lines an earlier run had done, before continuing.

    Returns:
        The counts, this run's first rejects and the rejects file.

    Raises:
        HeaderMismatch: the CSV header does not fit the pipeline (nothing was imported).
        UnreadableFile: the file stops making sense at some point (nothing after it was read).
        CreationFailed: every start of a batch failed; the import stopped there.
    """
    source = Path(path)
    kind = detect_format(source, fmt)
    if not 1 <= batch_size <= MAX_ROWS_PER_CALL:
        raise ValueError(f"batch_size must be 1 to {MAX_ROWS_PER_CALL:,}, not {batch_size}")
    if conveyor is None and not dry_run:
        raise ValueError("a client is needed to create tasks (or pass dry_run=True)")
    checker = SeedRows(pipeline, key_column)
    rejects_path = Path(rejects) if rejects is not None else None
    state_path = Path(state_file) if state_file is not None and not dry_run else None
    total = source.stat().st_size
    report = ImportReport(path=source, format=kind, dry_run=dry_run)

    identity = _ImportState(
        file=str(source.resolve()),
        size=total,
        head=await asyncio.to_thread(_head_hash, source),
        format=kind,
        pipeline=pipeline.name,
        version=pipeline.content_hash(),
        key_column=key_column,
        start_paused=start_paused,
        rejects=str(rejects_path.resolve()) if rejects_path is not None else None,
    )
    keeper = _StateKeeper(state_path)
    state = keeper.load(identity)
    resumed = state.rows > 0
    if resumed and rejects_path is not None and not _cut_back(rejects_path, state.rejects_size):
        state, resumed = identity, False  # the rejects file does not match: start over
    if resumed:
        report.resumed_rows = state.rows
        for name in ("rows", "created", "existed", "rejected", "errors"):
            setattr(report, name, getattr(state, name))
        if on_resume is not None:
            on_resume(state.rows, state.line)

    with source.open("rb") as fb:
        reader = _open_reader(kind, fb, checker, state)  # a CSV header is checked here
        if not resumed and rejects_path is not None:
            rejects_path.unlink(missing_ok=True)  # a fresh import starts a fresh file
        writer = _RejectsWriter(rejects_path, kind, reader.header, state.rejects_size)
        clean = True
        while True:
            batch = await asyncio.to_thread(_read_batch, reader, checker, batch_size)
            if not batch:
                break
            outcome = await _run_batch(
                conveyor, pipeline, key_column, batch, start_paused, concurrency, dry_run
            )
            for record, result in outcome:
                _count(report, record, result, writer)
            await asyncio.to_thread(writer.flush)
            position = reader.position()
            report.rows += len(batch)
            if clean and any(r is not None and r.outcome == RowOutcome.ERROR for _, r in outcome):
                clean = False  # later batches are not saved: a rerun retries from here
            if clean:
                state = state.model_copy(
                    update={
                        "rows": report.rows,
                        "line": position.line,
                        "offset": position.offset,
                        "created": report.created,
                        "existed": report.existed,
                        "rejected": report.rejected,
                        "errors": report.errors,
                        "rejects_size": writer.size,
                    }
                )
                await asyncio.to_thread(keeper.save, state)
            if progress is not None:
                progress(position.bytes_read, total)
    if writer.size > 0:
        report.rejects_path = rejects_path
    if clean:
        keeper.discard()
    return report


async def _run_batch(
    conveyor: ConveyorClient | None,
    pipeline: Pipeline,
    key_column: str | None,
    batch: list[tuple[_Record, PreparedRow | None]],
    start_paused: bool,
    concurrency: int,
    dry_run: bool,
) -> list[tuple[_Record, RowResult | None]]:
    """Each record with its result (None for a record that could not even be read)."""
    readable = [(record, row) for record, row in batch if row is not None]
    prepared = [row for _, row in readable]
    results: list[RowResult]
    if not prepared:
        results = []
    elif dry_run:
        planned, _ = plan(prepared, key_column)
        results = [
            r or RowResult(i, prepared[i].key, None, RowOutcome.CREATED)
            for i, r in enumerate(planned)
        ]
    else:
        assert conveyor is not None
        results = await start_prepared(
            conveyor,
            pipeline,
            prepared,
            key_column=key_column,
            start_paused=start_paused,
            concurrency=concurrency,
        )
        started = [r for r in results if r.outcome != RowOutcome.INVALID]
        if started and all(r.outcome == RowOutcome.ERROR for r in started):
            raise CreationFailed(
                f"every task start of the batch from line {batch[0][0].line} failed "
                f"({started[0].message}); nothing from that line on was imported. Check that "
                "Temporal is reachable and run the import again: finished batches are kept"
            )
    by_record = iter(results)
    return [(record, next(by_record) if row is not None else None) for record, row in batch]


def _count(
    report: ImportReport, record: _Record, result: RowResult | None, writer: _RejectsWriter
) -> None:
    if result is None:
        column, reason = record.problem or ("", "unreadable")
        reject = Reject(record.line, column, reason)
        report.rejected += 1
    elif result.outcome == RowOutcome.INVALID:
        reject = Reject(
            record.line,
            ", ".join(result.errors),
            "; ".join(result.errors.values()),
            dict(result.errors),
            result.key,
        )
        report.rejected += 1
    elif result.outcome == RowOutcome.ERROR:
        reject = Reject(record.line, "", result.message, key=result.key)
        report.errors += 1
    else:
        if result.outcome == RowOutcome.CREATED and not report.dry_run:
            report.created += 1
        elif result.outcome == RowOutcome.EXISTS:
            report.existed += 1
        return
    if len(report.rejects) < REJECTS_KEPT:
        report.rejects.append(reject)
    writer.add(record, reject)


# --------------------------------------------------------------------------- reading


@dataclass
class _Record:
    """One row of the file as read: its first line, its columns, and what it looked like."""

    line: int
    row: dict[str, Any] | None
    """The row's columns (reserved ones removed); None when it cannot be read."""
    original: Any
    """CSV: the cells; JSON: the object, or ``{"_raw": ...}`` when it is not one."""
    problem: tuple[str, str] | None = None
    """For an unreadable row: (column, reason)."""


class _Reader:
    header: list[str] | None = None
    failure: UnreadableFile | None = None
    """Where the file stopped making sense, raised once the rows before it are done."""

    def records(self) -> Iterator[_Record]:
        raise NotImplementedError

    def position(self) -> Position:
        raise NotImplementedError


def _open_reader(
    kind: ImportFormat, fb: IO[bytes], checker: SeedRows, state: _ImportState
) -> _Reader:
    if kind == "csv":
        return _CsvReader(fb, checker, state)
    if kind == "jsonl":
        return _JsonLinesReader(fb, checker, state)
    return _JsonArrayReader(fb, checker, state)


def _ignored(checker: SeedRows) -> set[str]:
    known = set(checker.columns())
    return {c for c in RESERVED_COLUMNS if c not in known}


def _read_batch(
    reader: _Reader, checker: SeedRows, size: int
) -> list[tuple[_Record, PreparedRow | None]]:
    if reader.failure is not None:
        raise reader.failure
    batch: list[tuple[_Record, PreparedRow | None]] = []
    try:
        for record in reader.records():
            prepared = checker.prepare(record.row) if record.row is not None else None
            batch.append((record, prepared))
            if len(batch) >= size:
                break
    except UnreadableFile as err:
        if not batch:
            raise
        reader.failure = err  # the rows before it are imported first
    return batch


class _CsvReader(_Reader):
    def __init__(self, fb: IO[bytes], checker: SeedRows, state: _ImportState):
        rows = CsvRows(fb)
        header: list[str] | None = None
        for raw in rows:
            if raw.error is not None:
                raise raw.error
            if raw.value:
                header = raw.value
                break
        if header is None:
            raise UnreadableFile(
                "the file is empty; its first line must be the header: "
                + ",".join(checker.columns())
            )
        self.header = header
        names = [h.strip() for h in header]
        _check_header(names, checker)
        ignored = _ignored(checker)
        self.keep = [(i, name) for i, name in enumerate(names) if name not in ignored]
        if state.rows > 0:  # resume after the last saved batch
            rows = CsvRows(fb, state.offset, state.line)
        self.rows = rows
        self._iter = self._records()

    def records(self) -> Iterator[_Record]:
        return self._iter

    def position(self) -> Position:
        return self.rows.position()

    def _records(self) -> Iterator[_Record]:
        assert self.header is not None
        width = len(self.header)
        for raw in self.rows:
            cells: list[str] = raw.value
            if raw.error is not None:
                yield _Record(raw.line, None, [], ("", f"not valid CSV: {raw.error}"))
                continue
            if not cells:
                continue  # a blank line
            if len(cells) != width:
                problem = f"{len(cells)} cells, but the header has {width} columns"
                yield _Record(raw.line, None, cells, ("", problem))
                continue
            row = {name: cells[i] for i, name in self.keep}
            yield _Record(raw.line, row, cells)


def _required(checker: SeedRows) -> list[str]:
    missing = [name for name, spec in checker.fields.items() if spec.required]
    if checker.key_column is not None and not checker.key_is_field:
        missing.insert(0, checker.key_column)
    return missing


def _check_header(names: list[str], checker: SeedRows) -> None:
    known = checker.columns()
    ignored = _ignored(checker)
    present = set(names)
    missing = [name for name in _required(checker) if name not in present]
    if checker.key_column is not None and checker.key_column not in present:
        missing = list(dict.fromkeys([checker.key_column, *missing]))
    unknown = [n for n in dict.fromkeys(names) if n not in known and n not in ignored]
    duplicated = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    if missing or unknown or duplicated:
        raise HeaderMismatch(missing, unknown, known, duplicated)


class _JsonLinesReader(_Reader):
    def __init__(self, fb: IO[bytes], checker: SeedRows, state: _ImportState):
        self.rows = JsonLinesRows(fb, state.offset, state.line)
        self.ignored = _ignored(checker)
        self._iter = self._records()

    def records(self) -> Iterator[_Record]:
        return self._iter

    def position(self) -> Position:
        return self.rows.position()

    def _records(self) -> Iterator[_Record]:
        for raw in self.rows:
            err = raw.error
            if isinstance(err, json.JSONDecodeError):
                problem = f"not valid JSON ({err.msg} at column {err.colno})"
                yield _Record(raw.line, None, {"_raw": raw.value}, ("", problem))
                continue
            yield _json_record(raw.line, raw.value, self.ignored)


def _json_record(line: int, value: Any, ignored: set[str]) -> _Record:
    if not isinstance(value, dict):
        problem = f'a JSON {type(value).__name__}, not an object like {{"column": value}}'
        return _Record(line, None, {"_raw": value}, ("", problem))
    row = {k: v for k, v in value.items() if k not in ignored}
    return _Record(line, row, row)


class _JsonArrayReader(_Reader):
    """Elements of a JSON array, decoded one at a time (:class:`~activities.rows.JsonArrayRows`)."""

    def __init__(self, fb: IO[bytes], checker: SeedRows, state: _ImportState):
        self.rows = JsonArrayRows(fb, skip=state.rows)
        ignored = _ignored(checker)
        self._iter = (_json_record(raw.line, raw.value, ignored) for raw in self.rows)

    def records(self) -> Iterator[_Record]:
        return self._iter

    def position(self) -> Position:
        return self.rows.position()


# --------------------------------------------------------------------------- rejects


class _RejectsWriter:
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

    def add(self, record: _Record, reject: Reject) -> None:
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


def _cut_back(path: Path, size: int) -> bool:
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


class _ImportState(BaseModel):
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


class _StateKeeper:
    def __init__(self, path: Path | None):
        self.path = path

    def load(self, fresh: _ImportState) -> _ImportState:
        """The saved state when it describes this very import, else ``fresh``."""
        if self.path is None:
            return fresh
        try:
            saved = _ImportState.model_validate_json(self.path.read_bytes())
        except (FileNotFoundError, ValidationError, ValueError):
            return fresh
        return saved if saved.identity() == fresh.identity() else fresh

    def save(self, state: _ImportState) -> None:
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


def _head_hash(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.sha256(f.read(_HEAD_BYTES)).hexdigest()
