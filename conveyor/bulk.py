"""Bulk actions on a selection of tasks: export and delete.

A selection is explicit workflow ids, a :class:`~store.explorer.TaskFilter`, or a whole
pipeline (an empty filter). Both actions walk the selection in keyset pages
(``store.explorer``), each page in its own short transaction, so memory stays constant and no
long transaction holds the store. The exception is a CSV export on PostgreSQL: one ``COPY``
streams the whole selection, formatted by the database, in one transaction (see
:class:`_SqlCsv`); it is still written and checkpointed page by page.

**Export** writes CSV, JSON (one array), JSON Lines or a ZIP (``tasks.csv`` + ``tasks.jsonl`` +
``manifest.json``), streamed row by row. Rows are read in ``created_at`` order, which never
changes, so every selected task appears exactly once even while tasks change during the export
(tasks created meanwhile may or may not be included).

An export to a path ``out`` is chunked and resumable. Rows go to ``out.part`` (a ZIP's to
``out.part.csv`` and ``out.part.jsonl``); after each page the part files are synced to disk and
``out.part.state`` records the rows written, the keyset cursor, each part's length, the columns
and the pipeline versions seen. Run the same export again after a crash or an interruption and
it continues after the last saved page: each part is cut back to its recorded length, so a
half-written page is written again, never twice, and the columns (and CSV header) stay those
the export started with. When every page is written the file is finished (JSON's closing
bracket; the ZIP is assembled from its parts) and renamed to ``out``, so ``out`` never holds a
half file. A state file left by other options (format, pipeline, filter) is refused, and
nothing is overwritten; ``restart=True`` (``--restart``) discards it. An export to a stream is
written in one go and cannot be resumed.

CSV cells are made safe for spreadsheets: a text cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return (which Excel, LibreOffice and Google Sheets would run as a
formula) is prefixed with a single quote ``'``. Numbers are written as numbers (a leading ``-``
is a sign, not a formula). JSON and JSONL exports are for programs and are written unchanged.

**Delete** removes each task's Temporal execution (every run of it) and then its store rows, in
chunks with bounded concurrency, and reports each task's outcome. It refuses to run without
``confirm=True`` (``--yes`` on the command line). With a state file it is resumable: finished
chunks are appended to the file, and a rerun with the same file and selection skips them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import (
    DateTime,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    not_,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased, sessionmaker
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError, RPCStatusCode

from conveyor.client import ConveyorClient
from store.db import transaction
from store.explorer import (
    DataColumns,
    Sort,
    SortField,
    TaskFilter,
    TaskSummary,
    count_tasks,
    data_columns,
    decode_cursor,
    encode_cursor,
    filter_clauses,
    page,
    page_ids,
)
from store.models import ClaimReservationRow, EvaluationResultRow, LlmCallRow, NodeRow, TaskRow
from workflows.graph import FieldSource

ExportFormat = Literal["csv", "json", "jsonl", "zip"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "json", "jsonl", "zip")
Progress = Callable[[int, int], None]
"""``progress(done, total)``, called after each page or chunk."""

EXPORT_PAGE_SIZE = 5000
DELETE_CHUNK_SIZE = 100
DELETE_CONCURRENCY = 10

# Creation order never changes: a task cannot move between pages while an export runs.
_STABLE_SORT = Sort(field=SortField.CREATED_AT)

METADATA_COLUMNS = (
    "workflow_id",
    "task_key",
    "pipeline_hash",
    "status",
    "hold_reason",
    "current_nodes",
    "assignees",
    "created_at",
    "updated_at",
    "finished_at",
)
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class Selection(BaseModel):
    """Which tasks a bulk action applies to.

    Explicit ids (``filter.workflow_ids`` and nothing else) are taken as given, so a task whose
    workflow exists but whose store rows do not can still be deleted. Anything else is resolved
    in the store: ``pipeline``'s tasks matching ``filter`` (all of them for an empty filter).
    """

    model_config = ConfigDict(frozen=True)

    pipeline: str | None = None
    filter: TaskFilter = Field(default_factory=TaskFilter)

    @model_validator(mode="after")
    def _needs_a_pipeline(self) -> Selection:
        if self.pipeline is None and not self.filter.is_explicit_only():
            raise ValueError("a selection needs a pipeline unless it is a list of workflow ids")
        return self

    @classmethod
    def of_ids(cls, workflow_ids: Sequence[str], pipeline: str | None = None) -> Selection:
        return cls(pipeline=pipeline, filter=TaskFilter(workflow_ids=list(workflow_ids)))


# --------------------------------------------------------------------------- progress bar


class ProgressBar:
    """``progress(done, total)`` that draws e.g. ``exported 12,000 / 50,000 rows`` on stderr.

    Draws only when the stream is a terminal, at most ten times a second (and always the
    last update); :meth:`close` ends the line. Usable as a context manager.
    """

    def __init__(self, verb: str, unit: str = "rows", stream: TextIO | None = None):
        self.verb = verb
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._drawn = False
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        percent = f" ({100 * done // total}%)" if total else ""
        line = f"\r{self.verb} {done:,} / {total:,} {self.unit}{percent}"
        self.stream.write(line + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- export


class ExportStateMismatch(ValueError):
    """An unfinished export to this path was started with other options, or cannot go on."""


class ExportBusy(ExportStateMismatch):
    """Another export (another process, or another thread) is writing to this path now."""


@dataclass(frozen=True)
class ExportReport:
    format: ExportFormat
    rows: int
    """The rows in the file, including those an earlier, interrupted run wrote."""
    columns: list[str]
    versions: list[str]
    """The pipeline version hashes of the exported tasks."""
    path: Path | None
    resumed_rows: int = 0
    """The rows an earlier, interrupted run had written (0 for a fresh export)."""


def export_columns(columns: DataColumns) -> list[str]:
    """Every column of an export, in order: metadata, node statuses, fields, evals, tags."""
    return [
        *METADATA_COLUMNS,
        *(f"node_status.{n}" for n in columns.nodes),
        *columns.field_names,
        *columns.evaluations,
        "tags",
    ]


def export_record(row: TaskSummary, columns: DataColumns) -> dict[str, Any]:
    """One task as a flat, JSON-ready record keyed by :func:`export_columns`.

    Missing values are None; timestamps are ISO 8601 in UTC; lists and dicts stay nested.
    """
    values = row.values or {}
    record: dict[str, Any] = {
        "workflow_id": row.workflow_id,
        "task_key": row.task_key,
        "pipeline_hash": row.pipeline_hash,
        "status": row.status.value,
        "hold_reason": row.hold_reason,
        "current_nodes": row.current_nodes,
        "assignees": row.assignees,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "finished_at": _iso(row.finished_at),
    }
    for node in columns.nodes:
        status = row.node_statuses.get(node)
        record[f"node_status.{node}"] = status.value if status is not None else None
    for name in (*columns.field_names, *columns.evaluations):
        record[name] = values.get(name)
    record["tags"] = row.tags
    return record


def csv_cell(value: Any) -> str:
    """A value as CSV text: nested values as compact JSON (sorted keys), formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        return _iso(value) or ""
    text = _compact_json(value) if isinstance(value, list | dict) else str(value)
    return neutralise_formula(text)


def neutralise_formula(text: str) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def export(
    sessions: sessionmaker[Session],
    pipeline: str,
    criteria: TaskFilter | None,
    fmt: ExportFormat,
    out: str | os.PathLike[str] | IO[bytes],
    progress: Progress | None = None,
    *,
    page_size: int = EXPORT_PAGE_SIZE,
    restart: bool = False,
    on_resume: Callable[[int], None] | None = None,
) -> ExportReport:
    """Export the selected tasks of ``pipeline`` to ``out`` (a path, or a binary stream).

    Memory stays constant whatever the number of tasks: rows are read ``page_size`` at a time
    and written as they come. An export to a path checkpoints after every page and resumes
    after a crash or an interruption: call it again with the same arguments (see the module
    docstring). An export to a stream is written in one go (a ZIP's two data parts are
    spooled to temporary files first) and cannot be resumed.

    Args:
        progress: ``progress(done, total)`` after each page, ``done`` counting the rows of an
            earlier run too. It may raise to stop the export: the page it reports is saved,
            so a rerun continues after it.
        restart: discard an unfinished export to the same path and start over.
        on_resume: called with the number of rows an earlier run wrote (when it wrote any),
            before continuing it.

    Returns:
        What was written: the row count, the columns and the pipeline versions seen.

    Raises:
        ExportStateMismatch: an unfinished export to the same path was started with another
            format, pipeline or filter (or its part file is gone); pass ``restart=True`` to
            discard it.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    criteria = criteria or TaskFilter()
    if isinstance(out, str | os.PathLike):
        return _export_to_path(
            sessions, pipeline, criteria, fmt, Path(out), progress, page_size, restart, on_resume
        )
    state = _new_state(sessions, pipeline, criteria, fmt)
    total = _count(sessions, pipeline, criteria)
    _export_to_stream(sessions, criteria, state, total, out, progress, page_size)
    return state.report(None, 0)


class _ExportState(BaseModel):
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
    rows: int = 0
    cursor: str | None = None
    """The keyset cursor after the last written page; None before the first page."""
    complete: bool = False
    """Every page is written; only the end of the file (or the ZIP) remains to do."""
    sizes: dict[str, int] = Field(default_factory=dict)
    """Each part file's length in bytes, by suffix (see :class:`_ExportFiles`)."""
    versions: list[str] = Field(default_factory=list)

    def report(self, path: Path | None, resumed_rows: int) -> ExportReport:
        columns = export_columns(self.columns)
        return ExportReport(self.format, self.rows, columns, self.versions, path, resumed_rows)


@dataclass(frozen=True)
class _ExportFiles:
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


@dataclass(frozen=True)
class _Part:
    """One data file of an export: its header, each row's bytes (given the row's index), end."""

    suffix: str
    header: bytes
    row: Callable[[dict[str, Any], int], bytes]
    footer: bytes = b""


def _parts(fmt: ExportFormat, names: list[str]) -> list[_Part]:
    def csv_row(record: dict[str, Any], _: int) -> bytes:
        return _csv_line([csv_cell(record[name]) for name in names])

    def jsonl_row(record: dict[str, Any], _: int) -> bytes:
        return (_json_line(record) + "\n").encode()

    def json_row(record: dict[str, Any], index: int) -> bytes:
        # The separator goes before a record, so a file cut back to a checkpoint stays valid.
        return (("\n" if index == 0 else ",\n") + _json_line(record)).encode()

    if fmt == "csv":
        return [_Part("", _csv_line(names), csv_row)]
    if fmt == "jsonl":
        return [_Part("", b"", jsonl_row)]
    if fmt == "json":
        return [_Part("", b"[", json_row, b"\n]\n")]
    # A ZIP is written one member at a time: its data parts are separate files until the end.
    return [_Part(".csv", _csv_line(names), csv_row), _Part(".jsonl", b"", jsonl_row)]


def _export_to_path(
    sessions: sessionmaker[Session],
    pipeline: str,
    criteria: TaskFilter,
    fmt: ExportFormat,
    target: Path,
    progress: Progress | None,
    page_size: int,
    restart: bool,
    on_resume: Callable[[int], None] | None,
) -> ExportReport:
    """Write the export to ``target``, or continue the unfinished one."""
    files = _ExportFiles(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _writing(files):
        return _export_locked(
            sessions, pipeline, criteria, fmt, files, progress, page_size, restart, on_resume
        )


@contextmanager
def _writing(files: _ExportFiles) -> Iterator[None]:
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


def _export_locked(
    sessions: sessionmaker[Session],
    pipeline: str,
    criteria: TaskFilter,
    fmt: ExportFormat,
    files: _ExportFiles,
    progress: Progress | None,
    page_size: int,
    restart: bool,
    on_resume: Callable[[int], None] | None,
) -> ExportReport:
    target = files.out
    if restart:
        files.discard()
    state = _load_state(files)
    resumed = state is not None
    if state is None:
        state = _new_state(sessions, pipeline, criteria, fmt)
    parts = _parts(fmt, export_columns(state.columns))
    paths = [files.part(p.suffix) for p in parts]
    if resumed:
        _check_resumable(files, state, fmt, pipeline, criteria, parts)
    resumed_rows = state.rows if resumed else 0
    if resumed_rows and on_resume is not None:
        on_resume(resumed_rows)
    total = _count(sessions, pipeline, criteria)

    with ExitStack() as stack:
        streams = [
            stack.enter_context(
                _reopen(path, state.sizes[p.suffix]) if resumed else path.open("wb")
            )
            for p, path in zip(parts, paths, strict=True)
        ]

        def checkpoint() -> None:
            for stream in streams:
                _sync(stream)
            state.sizes = {p.suffix: s.tell() for p, s in zip(parts, streams, strict=True)}
            _save_state(files, state)

        if not resumed:
            for part, stream in zip(parts, streams, strict=True):
                stream.write(part.header)
            checkpoint()
        _write_rows(
            sessions, criteria, state, parts, streams, total, progress, page_size, checkpoint
        )
        if fmt != "zip":
            streams[0].write(parts[0].footer)
            _sync(streams[0])
    if fmt == "zip":
        # Assembly is redone from the data parts if it is interrupted.
        with ExitStack() as stack:
            sources = [stack.enter_context(path.open("rb")) for path in paths]
            archive = stack.enter_context(files.part().open("wb"))
            _write_zip(archive, sources, _manifest(criteria, state))
            _sync(archive)
    # The state goes before the rename: a crash in between leaves a part without a state, which
    # the next run writes afresh (the other order could leave a state whose part is gone).
    files.state.unlink()
    os.replace(files.part(), target)
    files.discard()  # a ZIP's data parts, a stale state temp file
    return state.report(target, resumed_rows)


def _export_to_stream(
    sessions: sessionmaker[Session],
    criteria: TaskFilter,
    state: _ExportState,
    total: int,
    out: IO[bytes],
    progress: Progress | None,
    page_size: int,
) -> None:
    parts = _parts(state.format, export_columns(state.columns))
    if state.format != "zip":
        out.write(parts[0].header)
        _write_rows(sessions, criteria, state, parts, [out], total, progress, page_size, None)
        out.write(parts[0].footer)
        return
    with tempfile.TemporaryFile() as csv_spool, tempfile.TemporaryFile() as jsonl_spool:
        spools: list[IO[bytes]] = [csv_spool, jsonl_spool]
        for part, spool in zip(parts, spools, strict=True):
            spool.write(part.header)
        _write_rows(sessions, criteria, state, parts, spools, total, progress, page_size, None)
        _write_zip(out, spools, _manifest(criteria, state))


def _write_rows(
    sessions: sessionmaker[Session],
    criteria: TaskFilter,
    state: _ExportState,
    parts: list[_Part],
    streams: list[IO[bytes]],
    total: int,
    progress: Progress | None,
    page_size: int,
    checkpoint: Callable[[], None] | None,
) -> None:
    """Append the pages after ``state.cursor`` to ``streams``, checkpointing after each one."""
    pages = 0

    def save(chunk: _Chunk) -> None:
        nonlocal pages
        for data, stream in zip(chunk.data, streams, strict=True):
            stream.write(data)
        state.rows += chunk.rows
        for content_hash in dict.fromkeys(chunk.hashes):
            if content_hash not in state.versions:
                state.versions.append(content_hash)
        state.cursor = chunk.next_cursor
        state.complete = chunk.next_cursor is None
        pages += 1
        if checkpoint is not None:
            checkpoint()
        if progress is not None:
            progress(state.rows, max(total, state.rows))

    if state.format == "csv" and not state.complete and _dialect(sessions) == "postgresql":
        _SqlCsv(state.pipeline, criteria, state.columns).write(sessions, state, page_size, save)
    while not state.complete:
        with transaction(sessions) as session:
            chunk = _page_chunk(session, criteria, state, parts, page_size)
        save(chunk)
    if progress is not None and (pages == 0 or state.rows != total):
        progress(state.rows, state.rows)


def _dialect(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        return session.get_bind().dialect.name


@dataclass(frozen=True)
class _Chunk:
    """One page of an export, formatted: the bytes for each part, and what the state needs."""

    data: list[bytes]
    rows: int
    hashes: list[str]
    """Each row's pipeline version, in order."""
    next_cursor: str | None


def _page_chunk(
    session: Session,
    criteria: TaskFilter,
    state: _ExportState,
    parts: list[_Part],
    page_size: int,
) -> _Chunk:
    """A page formatted in Python (every format, every store)."""
    current = page(
        session,
        state.pipeline,
        criteria,
        _STABLE_SORT,
        limit=page_size,
        after=state.cursor,
        with_data=True,
        columns=state.columns,
    )
    data: list[list[bytes]] = [[] for _ in parts]
    for index, row in enumerate(current.rows, start=state.rows):
        record = export_record(row, state.columns)
        for out, part in zip(data, parts, strict=True):
            out.append(part.row(record, index))
    return _Chunk(
        data=[b"".join(d) for d in data],
        rows=len(current.rows),
        hashes=[r.pipeline_hash for r in current.rows],
        next_cursor=current.next_cursor,
    )


# --------------------------------------------------------------------------- CSV in SQL


_QUOTED = ('"', ",", "\r", "\n")
"""What makes ``csv.writer`` (QUOTE_MINIMAL, CRLF) quote a field: a comma, a quote, CR, LF."""
_FORMULA_CODES = tuple(ord(p) for p in _FORMULA_PREFIXES)
"""``ascii()`` of the first characters ``neutralise_formula`` prefixes."""
_SIMPLE_LIST = r'^\[("[^"\\]*"(, "[^"\\]*")*)?\]$'
"""A jsonb list of strings without escapes, as PostgreSQL prints it: ``["a", "b"]``."""
_PLAIN_INT = "^(0|-?[1-9][0-9]*)$"


class _SqlCsv:
    """A CSV export formatted by PostgreSQL and streamed with ``COPY``, byte-identical to the
    Python path.

    Per-row Python work was the export's bottleneck (building models, records and cells;
    about 170 us a row with the page queries), and so were the per-page queries (each task's
    node rows looked up by index, page after page). On PostgreSQL the whole selection is one
    ``COPY (SELECT ...) TO STDOUT (FORMAT binary)``: the planner joins the node rows in bulk
    (hash joins) or by index for small selections, each row's CSV line (``csv_cell`` rules,
    ``csv.writer`` QUOTE_MINIMAL quoting, CRLF) is built by the query, and Python only joins
    the lines. Where SQL could render a value differently from Python by a byte (numbers other
    than plain integers, nested values, JSON lists whose text needs escaping, evaluation
    scores), the row is flagged and formatted by the Python path (on another connection).

    The stream is cut into pages of ``page_size`` rows, each written and checkpointed as in the
    paged path, so an interrupted export resumes after its last saved page (the query then
    starts after that row). The ``COPY`` runs in one transaction for the whole export: one
    consistent snapshot, held for as long as the export takes.
    """

    def __init__(self, pipeline: str, criteria: TaskFilter, columns: DataColumns):
        self.pipeline = pipeline
        self.columns = columns
        # One join per node: the planner hashes node_instances for a big selection and looks
        # nodes up by index for a small one.
        names = dict.fromkeys([*columns.nodes, *(f.node for f in columns.fields)])
        nodes = {name: aliased(NodeRow, name=f"n{i}") for i, name in enumerate(names)}

        # The page: raw values, each computed once (the outer query formats them).
        raw: list[Any] = [
            type_coerce(TaskRow.created_at, DateTime(timezone=True)).label("created_at"),
            TaskRow.workflow_id.label("workflow_id"),
            TaskRow.pipeline_hash.label("pipeline_hash"),
            TaskRow.task_key.label("task_key"),
            TaskRow.status.label("status"),
            TaskRow.hold_reason.label("hold_reason"),
            _utc_text(TaskRow.created_at).label("created_text"),
            _utc_text(TaskRow.updated_at).label("updated_text"),
            _utc_text(TaskRow.finished_at).label("finished_text"),
            cast(TaskRow.current_nodes, Text).label("current_nodes"),
            cast(TaskRow.assignees, Text).label("assignees"),
            cast(TaskRow.tags, Text).label("tags"),
        ]
        raw += [nodes[n].status.label(f"s{i}") for i, n in enumerate(columns.nodes)]
        sources: dict[str, Any] = {}
        for i, spec in enumerate(columns.fields):
            source: Any
            if spec.source == FieldSource.PREDEFINED:
                source = TaskRow.data
            else:
                source = nodes[spec.node].values
            sources.setdefault(str(source), source)
            raw += [
                func.jsonb_typeof(func.jsonb_extract_path(source, spec.field)).label(f"k{i}"),
                func.jsonb_extract_path_text(source, spec.field).label(f"v{i}"),
            ]
        odd = [func.jsonb_typeof(s) != "object" for s in sources.values()]
        if columns.evaluations:
            # Evaluation scores are floats: rows with results take the Python path.
            odd.append(
                select(EvaluationResultRow.id)
                .where(
                    EvaluationResultRow.workflow_id == TaskRow.workflow_id,
                    EvaluationResultRow.pipeline_name == pipeline,
                )
                .exists()
            )
        raw.append(or_(false(), *odd).label("odd"))
        inner = select(*raw).select_from(TaskRow)
        for name, node in nodes.items():
            inner = inner.outerjoin(
                node, and_(node.workflow_id == TaskRow.workflow_id, node.node == name)
            )
        inner = inner.where(*filter_clauses(pipeline, criteria))
        order = (TaskRow.created_at, TaskRow.workflow_id)  # _STABLE_SORT, workflow_id last
        after = tuple_(*order) > tuple_(
            bindparam("after_at", type_=TaskRow.created_at.type),
            bindparam("after_id", type_=TaskRow.workflow_id.type),
        )
        # OFFSET 0 keeps the page a subquery of its own: flattened into the outer query, each
        # raw value would be computed again for every use the formatting makes of it.
        self.first = self._format(inner.order_by(*order).offset(0).subquery("page"))
        self.next = self._format(inner.where(after).order_by(*order).offset(0).subquery("page"))

    def _format(self, page: Any) -> Select[Any]:
        c = page.c
        cells: list[Any] = [
            _sql_text(c.workflow_id),
            _sql_text(c.task_key),
            _sql_text(c.pipeline_hash),
            func.coalesce(c.status, ""),  # a TaskStatus value: never quoted or prefixed
            _sql_text(c.hold_reason),
            _sql_list(c.current_nodes),
            _sql_list(c.assignees),
            _sql_iso(c.created_text),
            _sql_iso(c.updated_text),
            _sql_iso(c.finished_text),
        ]
        cells += [func.coalesce(c[f"s{i}"], "") for i in range(len(self.columns.nodes))]
        unsafe = [c.odd]
        for i in range(len(self.columns.fields)):
            kind, value = c[f"k{i}"], c[f"v{i}"]
            cells.append(
                case(
                    (kind == "string", _sql_text(value)),
                    (kind.in_(("boolean", "number")), value),
                    else_="",
                )
            )
            unsafe.append(
                or_(
                    kind.in_(("array", "object")),
                    and_(kind == "number", not_(value.regexp_match(_PLAIN_INT))),
                )
            )
        cells += ["" for _ in self.columns.evaluations]
        cells.append(_sql_list(c.tags))
        unsafe += [
            not_(or_(func.coalesce(c[n], "[]") == "[]", c[n].regexp_match(_SIMPLE_LIST)))
            for n in _LISTS
        ]
        line = func.concat(
            func.array_to_string(postgresql.array([cast(x, Text) for x in cells]), ","), "\r\n"
        )
        flagged = func.coalesce(or_(*unsafe), false())
        return select(line, flagged, c.created_at, c.workflow_id, c.pipeline_hash).order_by(
            c.created_at, c.workflow_id
        )

    def write(
        self,
        sessions: sessionmaker[Session],
        state: _ExportState,
        page_size: int,
        save: Callable[[_Chunk], None],
    ) -> None:
        """Stream the rows after ``state.cursor``, handing each page to ``save``."""
        if state.cursor is None:
            statement, params = self.first, {}
        else:
            at, workflow_id = decode_cursor(state.cursor, _STABLE_SORT)
            statement, params = self.next, {"after_at": at, "after_id": workflow_id}
        with transaction(sessions) as session:
            # The timestamps' text form (see _utc_text) depends on DateStyle: pin it.
            session.execute(text("SET LOCAL datestyle = 'ISO, MDY'"))
            # COPY takes no bound parameters: psycopg merges them into the statement.
            compiled = statement.compile(dialect=session.get_bind().dialect)
            expanded = compiled.construct_expanded_state(params)
            driver = session.connection().connection.driver_connection
            assert driver is not None
            pending: list[Any] = []
            with (
                driver.cursor() as cursor,
                cursor.copy(
                    f"COPY ({expanded.statement}) TO STDOUT (FORMAT binary)", expanded.parameters
                ) as copy,
            ):
                # The line as bytea: its UTF-8 bytes as they come (no decoding, no encoding).
                copy.set_types(["bytea", "bool", "timestamptz", "text", "text"])
                for row in copy.rows():
                    pending.append(row)
                    if len(pending) > page_size:  # one more row: there is a next page
                        save(self._chunk(sessions, pending[:page_size], more=True))
                        del pending[:page_size]
        save(self._chunk(sessions, pending, more=False))

    def _chunk(self, sessions: sessionmaker[Session], rows: list[Any], more: bool) -> _Chunk:
        lines: list[bytes] = [r[0] for r in rows]
        flagged = [i for i, r in enumerate(rows) if r[1]]
        if flagged:
            names = export_columns(self.columns)
            ids = [rows[i][3] for i in flagged]
            by_id: dict[str, TaskSummary] = {}
            with transaction(sessions) as session:
                for start in range(0, len(ids), _REFETCH):
                    again = page(
                        session,
                        self.pipeline,
                        TaskFilter(workflow_ids=ids[start : start + _REFETCH]),
                        _STABLE_SORT,
                        limit=_REFETCH,
                        with_data=True,
                        columns=self.columns,
                    )
                    by_id.update((r.workflow_id, r) for r in again.rows)
            for i, workflow_id in zip(flagged, ids, strict=True):
                row = by_id.get(workflow_id)
                if row is not None:  # else deleted since the COPY began: keep its SQL line
                    record = export_record(row, self.columns)
                    lines[i] = _csv_line([csv_cell(record[n]) for n in names])
        next_cursor = None
        if more:
            next_cursor = encode_cursor(_STABLE_SORT, rows[-1][2], rows[-1][3])
        return _Chunk(
            data=[b"".join(lines)],
            rows=len(rows),
            hashes=[r[4] for r in rows],
            next_cursor=next_cursor,
        )


_LISTS = ("current_nodes", "assignees", "tags")
_REFETCH = 1000
"""Flagged rows formatted by the Python path are read this many at a time."""


def _sql_text(text: Any) -> Any:
    """``csv_cell`` of a text (NULL: empty) as one CSV field: formulas neutralised, quoted
    when it holds a comma, a quote, CR or LF. (``strpos`` and ``ascii`` rather than regular
    expressions: PostgreSQL converts a whole text to wide characters for every match.)"""
    prefix = case((func.ascii(text).in_(_FORMULA_CODES), "'"))
    return case(
        (
            or_(*(func.strpos(text, char) > 0 for char in _QUOTED)),
            func.concat('"', prefix, func.replace(text, '"', '""'), '"'),
        ),
        else_=func.concat(prefix, text),
    )


def _sql_list(text: Any) -> Any:
    """A JSON list of strings (jsonb text; NULL: ``[]``) as compact JSON in one CSV field
    (rows where it is not :data:`_SIMPLE_LIST` are flagged)."""
    compact = func.replace(func.replace(text, '", "', '","'), '"', '""')
    return case(
        (func.coalesce(text, "[]") == "[]", "[]"),
        else_=func.concat('"', compact, '"'),
    )


def _utc_text(stamp: Any) -> Any:
    """A timestamp as PostgreSQL prints it in UTC (DateStyle ISO): ``2026-01-02 03:04:05.5``."""
    return cast(func.timezone("UTC", stamp), Text)


def _sql_iso(text: Any) -> Any:
    """``_iso`` from :func:`_utc_text`: ``T`` between date and time, the fraction padded to
    microseconds (PostgreSQL trims its trailing zeros; none at all when it is zero), ``+00:00``.
    (``to_char`` would cost about as much as the rest of the row.)"""
    padded = case((func.length(text) == 19, text), else_=func.rpad(text, 26, "0"))
    return case(
        (text.is_not(None), func.concat(func.replace(padded, " ", "T"), "+00:00")),
        else_="",
    )


def _new_state(
    sessions: sessionmaker[Session], pipeline: str, criteria: TaskFilter, fmt: ExportFormat
) -> _ExportState:
    with transaction(sessions) as session:
        columns = data_columns(session, pipeline)
    return _ExportState(
        format=fmt, pipeline=pipeline, filter=_filter_json(criteria), columns=columns
    )


def _load_state(files: _ExportFiles) -> _ExportState | None:
    try:
        text = files.state.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return _ExportState.model_validate_json(text)
    except ValidationError:
        raise ExportStateMismatch(
            f"{files.state} is not the state file of an export; move it away, or pass "
            "--restart (restart=True) to discard it"
        ) from None


def _check_resumable(
    files: _ExportFiles,
    state: _ExportState,
    fmt: ExportFormat,
    pipeline: str,
    criteria: TaskFilter,
    parts: list[_Part],
) -> None:
    if (state.format, state.pipeline, state.filter) != (fmt, pipeline, _filter_json(criteria)):
        raise ExportStateMismatch(
            f"{files.state} belongs to an unfinished {state.format} export of "
            f"{state.pipeline!r} with filter {_compact_json(state.filter)}: rerun with the same "
            "options to continue it, or pass --restart (restart=True) to discard it"
        )
    for part in parts:
        path, size = files.part(part.suffix), state.sizes.get(part.suffix)
        if size is None or not path.exists() or path.stat().st_size < size:
            raise ExportStateMismatch(
                f"{path} is missing or shorter than {files.state} records, so the unfinished "
                "export cannot be continued; pass --restart (restart=True) to start over"
            )


def _save_state(files: _ExportFiles, state: _ExportState) -> None:
    """Replace the state file atomically: a crash leaves the old state or the new one."""
    with files.state_tmp.open("wb") as stream:
        stream.write(state.model_dump_json().encode())
        _sync(stream)
    os.replace(files.state_tmp, files.state)


@contextmanager
def _reopen(path: Path, size: int) -> Iterator[IO[bytes]]:
    """A part file cut back to its last checkpoint, positioned at its end."""
    with path.open("r+b") as stream:
        stream.truncate(size)
        stream.seek(size)
        yield stream


def _sync(stream: IO[bytes]) -> None:
    stream.flush()
    os.fsync(stream.fileno())


def _count(sessions: sessionmaker[Session], pipeline: str, criteria: TaskFilter) -> int:
    with transaction(sessions) as session:
        return count_tasks(session, pipeline, criteria)


def _filter_json(criteria: TaskFilter) -> dict[str, Any]:
    return criteria.model_dump(mode="json", exclude_defaults=True)


def _manifest(criteria: TaskFilter, state: _ExportState) -> dict[str, Any]:
    return {
        "format": "conveyor-export/1",
        "pipeline": state.pipeline,
        "versions": state.versions,
        "filter": _filter_json(criteria),
        "sort": str(_STABLE_SORT),
        "rows": state.rows,
        "columns": export_columns(state.columns),
        "files": {"tasks.csv": "CSV, formulas neutralised", "tasks.jsonl": "one task per line"},
        "created_at": _iso(datetime.now(UTC)),
    }


def _write_zip(stream: IO[bytes], sources: Sequence[IO[bytes]], manifest: dict[str, Any]) -> None:
    """``tasks.csv`` and ``tasks.jsonl`` (the two data parts, in order), ``manifest.json``."""
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, source in zip(("tasks.csv", "tasks.jsonl"), sources, strict=True):
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


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def _csv_line(cells: list[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow(cells)
    return text.getvalue().encode()


# --------------------------------------------------------------------------- delete


class ConfirmationRequired(ValueError):
    """A destructive bulk action was asked for without confirmation."""


class StateFileMismatch(ValueError):
    """The state file belongs to another selection."""


class DeleteOutcome(StrEnum):
    DELETED = "deleted"
    """The store rows were deleted, or Temporal accepted the workflow's deletion, or both.
    Temporal removes a running workflow at once (terminating it) and a closed one
    asynchronously (seconds to a minute later)."""
    ALREADY_GONE = "already gone"
    """Neither the workflow nor store rows existed."""
    ERROR = "error"
    """Not deleted (see ``reason``); a rerun tries again."""


@dataclass(frozen=True)
class DeleteResult:
    workflow_id: str
    outcome: DeleteOutcome
    reason: str | None = None


@dataclass
class DeleteReport:
    results: list[DeleteResult] = field(default_factory=list)
    """This run's per-task outcomes, in the order they finished."""
    skipped: int = 0
    """Tasks a previous run (same state file) already finished."""

    def ids(self, outcome: DeleteOutcome) -> list[str]:
        return [r.workflow_id for r in self.results if r.outcome == outcome]

    @property
    def deleted(self) -> int:
        return len(self.ids(DeleteOutcome.DELETED))

    @property
    def already_gone(self) -> int:
        return len(self.ids(DeleteOutcome.ALREADY_GONE))

    @property
    def errors(self) -> list[DeleteResult]:
        return [r for r in self.results if r.outcome == DeleteOutcome.ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors


class DeleteState:
    """A delete's progress file (JSON Lines, appended, so it grows in O(n)).

    The first line is ``{"kind": "conveyor-delete", "selection": {...}}``; each finished
    chunk appends ``{"done": [workflow ids]}``. A torn last line (a crash mid-write) is ignored.
    """

    KIND = "conveyor-delete"

    def __init__(self, path: Path | None, selection: Selection):
        self.path = path
        self.done: set[str] = set()
        if path is None:
            return
        wanted = selection.model_dump(mode="json")
        if path.exists() and path.stat().st_size > 0:
            lines = path.read_text(encoding="utf-8").splitlines()
            header = self._parse(lines[0]) if lines else None
            if header is None or header.get("kind") != self.KIND:
                raise StateFileMismatch(f"{path} is not a delete state file; choose another path")
            if header.get("selection") != wanted:
                raise StateFileMismatch(
                    f"{path} records a different selection ({header.get('selection')}); rerun "
                    "with the same pipeline and filters, or use a new --state-file"
                )
            for line in lines[1:]:
                entry = self._parse(line)
                if entry is not None:
                    self.done.update(entry.get("done", []))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"kind": self.KIND, "selection": wanted})

    @staticmethod
    def _parse(line: str) -> dict[str, Any] | None:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def record(self, workflow_ids: Sequence[str]) -> None:
        self.done.update(workflow_ids)
        if self.path is not None and workflow_ids:
            self._append({"done": list(workflow_ids)})

    def _append(self, entry: dict[str, Any]) -> None:
        assert self.path is not None
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())


async def delete_tasks(
    conveyor: ConveyorClient,
    sessions: sessionmaker[Session],
    selection: Selection,
    *,
    confirm: bool,
    progress: Progress | None = None,
    state_file: Path | None = None,
    chunk_size: int = DELETE_CHUNK_SIZE,
    concurrency: int = DELETE_CONCURRENCY,
) -> DeleteReport:
    """Delete the selected tasks: each one's Temporal execution first, then its store rows.

    Deleting the workflow first means a crash between the two leaves only store rows, which a
    rerun deletes (the workflow then reads as already gone). A task whose projection activity
    is in flight at the moment of deletion can leave its row behind; ``reconcile`` reports it
    as an orphan. Tasks that fail are reported and not recorded as done, so a rerun retries
    them.

    Args:
        confirm: must be True: deletion cannot be undone.
        progress: ``progress(done, total)`` after each chunk (done includes earlier runs).
        state_file: where progress is recorded; rerun with the same file and selection to
            continue after a crash or an interruption.

    Raises:
        ConfirmationRequired: ``confirm`` is not True.
        StateFileMismatch: ``state_file`` records another selection.
    """
    if confirm is not True:
        raise ConfirmationRequired(
            "deleting tasks cannot be undone: confirm it (pass --yes on the command line, "
            "or confirm=True)"
        )
    state = await asyncio.to_thread(DeleteState, state_file, selection)
    report = DeleteReport()
    remaining = await asyncio.to_thread(_count_remaining, sessions, selection, state.done)
    total = len(state.done) + remaining
    gate = asyncio.Semaphore(concurrency)

    async def delete_one(workflow_id: str) -> tuple[str, bool | str]:
        async with gate:
            try:
                return workflow_id, await delete_workflow(conveyor, workflow_id)
            except RPCError as err:
                return workflow_id, f"Temporal refused: {err.message} ({err.status.name})"

    async for chunk in _chunks(sessions, selection, state.done, chunk_size):
        outcomes = dict(await asyncio.gather(*(delete_one(i) for i in chunk)))
        deletable = [i for i in chunk if not isinstance(outcomes[i], str)]
        try:
            in_store = await asyncio.to_thread(delete_store_rows, sessions, deletable)
        except Exception as err:  # the store is down: report the chunk, retry it next run
            in_store, deletable = set(), []
            reason = f"store: {type(err).__name__}: {err}"
            outcomes = {i: outcomes[i] if isinstance(outcomes[i], str) else reason for i in chunk}
        for workflow_id in chunk:
            outcome = outcomes[workflow_id]
            if isinstance(outcome, str):
                report.results.append(DeleteResult(workflow_id, DeleteOutcome.ERROR, outcome))
            elif outcome or workflow_id in in_store:
                report.results.append(DeleteResult(workflow_id, DeleteOutcome.DELETED))
            else:
                report.results.append(DeleteResult(workflow_id, DeleteOutcome.ALREADY_GONE))
        await asyncio.to_thread(state.record, deletable)
        if progress is not None:
            progress(len(state.done), total)
    report.skipped = total - remaining
    return report


async def delete_workflow(conveyor: ConveyorClient, workflow_id: str) -> bool:
    """Delete every run of a task's workflow; False when none existed.

    ``DeleteWorkflowExecution`` without a run id removes the latest run (terminating it if
    running); earlier runs of a continued-as-new task are found through visibility and removed
    by run id. NOT_FOUND is "already deleted".
    """
    client = conveyor.client
    deleted = await _delete_run(conveyor, workflow_id, "")
    query = f"WorkflowId = '{_quote(workflow_id)}'"
    async for run in client.list_workflows(query):
        deleted = await _delete_run(conveyor, workflow_id, run.run_id) or deleted
    return deleted


async def _delete_run(conveyor: ConveyorClient, workflow_id: str, run_id: str) -> bool:
    client = conveyor.client
    request = DeleteWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
    )
    try:
        await client.workflow_service.delete_workflow_execution(request)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def delete_store_rows(sessions: sessionmaker[Session], workflow_ids: Sequence[str]) -> set[str]:
    """Delete tasks' store rows in one transaction; returns the ids that had a task row.

    Node instances, timeline events, submissions, reviews and tags go with the task row
    (``ON DELETE CASCADE``; SQLite enforces it because ``store.db`` turns foreign keys on).
    LLM calls, evaluation results and claim reservations have no foreign key and are deleted
    explicitly.
    """
    if not workflow_ids:
        return set()
    ids = list(workflow_ids)
    with transaction(sessions) as session:
        for table in (LlmCallRow, EvaluationResultRow, ClaimReservationRow):
            session.execute(delete(table).where(table.workflow_id.in_(ids)))
        gone = session.scalars(
            delete(TaskRow).where(TaskRow.workflow_id.in_(ids)).returning(TaskRow.workflow_id)
        )
        return set(gone)


def _count_remaining(sessions: sessionmaker[Session], selection: Selection, done: set[str]) -> int:
    if selection.filter.is_explicit_only():
        return len(set(selection.filter.workflow_ids or []) - done)
    assert selection.pipeline is not None
    with transaction(sessions) as session:
        # Done tasks have no store rows any more (their rows go before they are recorded).
        return count_tasks(session, selection.pipeline, selection.filter)


async def _chunks(
    sessions: sessionmaker[Session], selection: Selection, done: set[str], size: int
) -> Any:
    """Chunks of not-yet-done workflow ids of the selection, read lazily."""
    if selection.filter.is_explicit_only():
        ids = [i for i in dict.fromkeys(selection.filter.workflow_ids or []) if i not in done]
        if selection.pipeline is not None:
            await asyncio.to_thread(_check_pipeline, sessions, selection.pipeline, ids)
        for start in range(0, len(ids), size):
            yield ids[start : start + size]
        return
    assert selection.pipeline is not None
    after: str | None = None
    while True:
        ids, after = await asyncio.to_thread(
            _id_page, sessions, selection.pipeline, selection.filter, size, after
        )
        todo = [i for i in ids if i not in done]
        if todo:
            yield todo
        if after is None:
            return


def _id_page(
    sessions: sessionmaker[Session],
    pipeline: str,
    criteria: TaskFilter,
    size: int,
    after: str | None,
) -> tuple[list[str], str | None]:
    with transaction(sessions) as session:
        return page_ids(session, pipeline, criteria, _STABLE_SORT, limit=size, after=after)


def _check_pipeline(sessions: sessionmaker[Session], pipeline: str, ids: list[str]) -> None:
    """Refuse explicit ids the store knows under another pipeline."""
    with transaction(sessions) as session:
        others: list[str] = []
        for start in range(0, len(ids), 1000):
            others += session.scalars(
                select(TaskRow.workflow_id).where(
                    TaskRow.workflow_id.in_(ids[start : start + 1000]),
                    TaskRow.pipeline_name != pipeline,
                )
            )
    if others:
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        raise ValueError(
            f"{len(others)} of the ids belong to another pipeline than {pipeline!r}: {shown}"
        )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
