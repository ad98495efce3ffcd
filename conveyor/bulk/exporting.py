"""Export: a selection of a pipeline's tasks to CSV, JSON, JSON Lines or a ZIP (see
:mod:`conveyor.bulk`), page by page, in the wide shape (a row per task) or the long one (a row
per consensus answer, :mod:`conveyor.bulk.consensus`); on PostgreSQL a wide CSV export is one
``COPY`` (:mod:`store.export_csv`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session, sessionmaker

from conveyor.bulk.consensus import (
    EXPORT_SHAPES,
    ExportShape,
    long_records,
    wide_columns,
    wide_values,
)
from conveyor.bulk.export_state import (
    ExportFiles,
    ExportReport,
    ExportState,
    check_resumable,
    filter_json,
    load_state,
    manifest,
    reopen,
    save_state,
    sync,
    write_zip,
    writing,
)
from conveyor.bulk.records import (
    EXPORT_FORMATS,
    ExportFormat,
    Part,
    csv_cell,
    csv_line,
    export_record,
    parts_of,
)
from conveyor.bulk.selection import Progress
from store.db import transaction
from store.explorer import TaskFilter, TaskSummary, count_tasks, data_columns, page
from store.export_consensus import (
    ConsensusItem,
    consensus_items,
    consensus_nodes,
    parse_item,
)
from store.export_csv import EXPORT_SORT, CsvCopy, CsvPage, copy_supported
from workflows.errors import Invalid

EXPORT_PAGE_SIZE = 5000
_REFETCH = 1000
"""Flagged rows of a ``COPY`` are read again this many at a time, to format them in Python."""


class NoConsensusNodes(Invalid, ValueError):
    """A long export of a pipeline none of whose versions has a consensus node."""

    code = "no_consensus_nodes"

    def __init__(self, pipeline: str):
        super().__init__(
            f"pipeline {pipeline!r} has no consensus node, so it has no answers to export one "
            "per row; export it in the wide shape (the default), one row per task"
        )


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
    shape: ExportShape = "wide",
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
        on_resume: called with the number of tasks an earlier run exported (when it exported
            any), before continuing it.
        shape: ``wide``, one row per task (consensus nodes add their columns after the usual
            ones), or ``long``, one row per answer of a consensus node (see
            :mod:`conveyor.bulk.consensus`). Progress counts tasks in both.

    Returns:
        What was written: the task count (and a long export's answer count), the columns and
        the pipeline versions seen.

    Raises:
        ExportStateMismatch: an unfinished export to the same path was started with another
            format, shape, pipeline or filter (or its part file is gone); pass
            ``restart=True`` to discard it.
        NoConsensusNodes: a long export of a pipeline without consensus nodes (nothing is
            written).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if shape not in EXPORT_SHAPES:
        raise ValueError(f"unknown export shape {shape!r}; use one of {', '.join(EXPORT_SHAPES)}")
    criteria = criteria or TaskFilter()
    if isinstance(out, str | os.PathLike):
        return _export_to_path(
            sessions,
            pipeline,
            criteria,
            fmt,
            shape,
            Path(out),
            progress,
            page_size,
            restart,
            on_resume,
        )
    state = _new_state(sessions, pipeline, criteria, fmt, shape)
    total = _count(sessions, pipeline, criteria)
    _export_to_stream(sessions, criteria, state, total, out, progress, page_size)
    return state.report(None, 0)


def _export_to_path(
    sessions: sessionmaker[Session],
    pipeline: str,
    criteria: TaskFilter,
    fmt: ExportFormat,
    shape: ExportShape,
    target: Path,
    progress: Progress | None,
    page_size: int,
    restart: bool,
    on_resume: Callable[[int], None] | None,
) -> ExportReport:
    """Write the export to ``target``, or continue the unfinished one."""
    files = ExportFiles(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with writing(files):
        return _export_locked(
            sessions,
            pipeline,
            criteria,
            fmt,
            shape,
            files,
            progress,
            page_size,
            restart,
            on_resume,
        )


def _export_locked(
    sessions: sessionmaker[Session],
    pipeline: str,
    criteria: TaskFilter,
    fmt: ExportFormat,
    shape: ExportShape,
    files: ExportFiles,
    progress: Progress | None,
    page_size: int,
    restart: bool,
    on_resume: Callable[[int], None] | None,
) -> ExportReport:
    target = files.out
    if restart:
        files.discard()
    state = load_state(files)
    resumed = state is not None
    if state is None:
        state = _new_state(sessions, pipeline, criteria, fmt, shape)
    parts = parts_of(fmt, state.names())
    paths = [files.part(p.suffix) for p in parts]
    if resumed:
        check_resumable(files, state, fmt, shape, pipeline, criteria, parts)
    resumed_rows = state.rows if resumed else 0
    if resumed_rows and on_resume is not None:
        on_resume(resumed_rows)
    total = _count(sessions, pipeline, criteria)

    with ExitStack() as stack:
        streams = [
            stack.enter_context(reopen(path, state.sizes[p.suffix]) if resumed else path.open("wb"))
            for p, path in zip(parts, paths, strict=True)
        ]

        def checkpoint() -> None:
            for stream in streams:
                sync(stream)
            state.sizes = {p.suffix: s.tell() for p, s in zip(parts, streams, strict=True)}
            save_state(files, state)

        if not resumed:
            for part, stream in zip(parts, streams, strict=True):
                stream.write(part.header)
            checkpoint()
        _write_rows(
            sessions, criteria, state, parts, streams, total, progress, page_size, checkpoint
        )
        if fmt != "zip":
            streams[0].write(parts[0].footer)
            sync(streams[0])
    if fmt == "zip":
        # Assembly is redone from the data parts if it is interrupted.
        with ExitStack() as stack:
            sources = [stack.enter_context(path.open("rb")) for path in paths]
            archive = stack.enter_context(files.part().open("wb"))
            write_zip(archive, sources, manifest(criteria, state), state.shape)
            sync(archive)
    # The state goes before the rename: a crash in between leaves a part without a state, which
    # the next run writes afresh (the other order could leave a state whose part is gone).
    files.state.unlink()
    os.replace(files.part(), target)
    files.discard()  # a ZIP's data parts, a stale state temp file
    return state.report(target, resumed_rows)


def _export_to_stream(
    sessions: sessionmaker[Session],
    criteria: TaskFilter,
    state: ExportState,
    total: int,
    out: IO[bytes],
    progress: Progress | None,
    page_size: int,
) -> None:
    parts = parts_of(state.format, state.names())
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
        write_zip(out, spools, manifest(criteria, state), state.shape)


def _write_rows(
    sessions: sessionmaker[Session],
    criteria: TaskFilter,
    state: ExportState,
    parts: list[Part],
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
        if state.shape == "long":
            state.answers += chunk.records
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

    copy = state.format == "csv" and state.shape == "wide"
    if copy and not state.complete and _copy_supported(sessions):
        _copy_csv(sessions, criteria, state, page_size, save)
    while not state.complete:
        with transaction(sessions) as session:
            chunk = _page_chunk(session, criteria, state, parts, page_size)
        save(chunk)
    if progress is not None and (pages == 0 or state.rows != total):
        progress(state.rows, state.rows)


@dataclass(frozen=True)
class _Chunk:
    """One page of an export, formatted: the bytes for each part, and what the state needs."""

    data: list[bytes]
    rows: int
    """The tasks of the page."""
    hashes: list[str]
    """Each row's pipeline version, in order."""
    next_cursor: str | None
    records: int = 0
    """The records written for the page: its tasks (wide), or their answers (long)."""


def _page_chunk(
    session: Session,
    criteria: TaskFilter,
    state: ExportState,
    parts: list[Part],
    page_size: int,
) -> _Chunk:
    """A page formatted in Python (every format and shape, every store)."""
    long = state.shape == "long"
    current = page(
        session,
        state.pipeline,
        criteria,
        EXPORT_SORT,
        limit=page_size,
        after=state.cursor,
        with_data=not long,
        columns=state.columns,
    )
    items = _items(session, state, [r.workflow_id for r in current.rows], with_values=long)
    if long:
        records = (
            record
            for row in current.rows
            for record in long_records(row, state.consensus, items.get(row.workflow_id, {}))
        )
        start = state.answers
    else:
        names = wide_columns(state.consensus)
        records = (_wide_record(row, state, names, items) for row in current.rows)
        start = state.rows
    data: list[list[bytes]] = [[] for _ in parts]
    count = 0
    for index, record in enumerate(records, start=start):
        count += 1
        for out, part in zip(data, parts, strict=True):
            out.append(part.row(record, index))
    return _Chunk(
        data=[b"".join(d) for d in data],
        rows=len(current.rows),
        hashes=[r.pipeline_hash for r in current.rows],
        next_cursor=current.next_cursor,
        records=count,
    )


def _items(
    session: Session, state: ExportState, ids: list[str], *, with_values: bool = False
) -> dict[str, dict[str, ConsensusItem]]:
    """The page's consensus items (none to read for a pipeline without consensus nodes)."""
    nodes = [n.name for n in state.consensus]
    return consensus_items(session, ids, nodes, with_values=with_values)


def _wide_record(
    row: TaskSummary,
    state: ExportState,
    names: list[str],
    items: dict[str, dict[str, ConsensusItem]],
) -> dict[str, Any]:
    """A task's wide record: its usual columns, then its consensus nodes' (``names``)."""
    record = export_record(row, state.columns)
    if names:
        found = items.get(row.workflow_id, {})
        record.update(zip(names, wide_values(state.consensus, found), strict=True))
    return record


# --------------------------------------------------------------------------- CSV in SQL


def _copy_supported(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return copy_supported(session)


def _copy_csv(
    sessions: sessionmaker[Session],
    criteria: TaskFilter,
    state: ExportState,
    page_size: int,
    save: Callable[[_Chunk], None],
) -> None:
    """Stream the CSV rows after ``state.cursor`` with one ``COPY`` (one transaction for the
    whole export), handing each page to ``save``."""
    copy = CsvCopy(state.pipeline, criteria, state.columns, [n.name for n in state.consensus])

    def on_page(copied: CsvPage) -> None:
        save(_copy_chunk(sessions, state, copied))

    with transaction(sessions) as session:
        last = copy.stream(session, state.cursor, page_size, on_page)
    save(_copy_chunk(sessions, state, last))


def _copy_chunk(sessions: sessionmaker[Session], state: ExportState, copied: CsvPage) -> _Chunk:
    """A page of the ``COPY``, its flagged rows formatted by the Python path (read again on
    another connection), so the file is byte-identical to the paged export's.

    The ``COPY`` hands over each consensus node's item as JSON text: its cells are formatted
    here, in Python, and appended to the line (they are the last columns)."""
    extra = wide_columns(state.consensus)

    def sql_line(i: int) -> bytes:
        """Row ``i``'s line from the ``COPY``, its consensus cells appended."""
        if not extra:
            return copied.lines[i]
        found = {
            node.name: parse_item(text)
            for node, text in zip(state.consensus, copied.consensus[i], strict=True)
            if text is not None
        }
        cells = [csv_cell(v) for v in wide_values(state.consensus, found)]
        return copied.lines[i][:-2] + b"," + csv_line(cells)

    flagged = {i for i, _ in copied.flagged}
    lines = [b"" if i in flagged else sql_line(i) for i in range(len(copied.lines))]
    if copied.flagged:
        names = state.names()
        ids = [workflow_id for _, workflow_id in copied.flagged]
        by_id: dict[str, TaskSummary] = {}
        items: dict[str, dict[str, ConsensusItem]] = {}
        with transaction(sessions) as session:
            for start in range(0, len(ids), _REFETCH):
                chunk = ids[start : start + _REFETCH]
                again = page(
                    session,
                    state.pipeline,
                    TaskFilter(workflow_ids=chunk),
                    EXPORT_SORT,
                    limit=_REFETCH,
                    with_data=True,
                    columns=state.columns,
                )
                by_id.update((r.workflow_id, r) for r in again.rows)
                items.update(_items(session, state, chunk))
        for i, workflow_id in copied.flagged:
            row = by_id.get(workflow_id)
            if row is None:  # deleted since the COPY began: its SQL line it is
                lines[i] = sql_line(i)
            else:
                record = _wide_record(row, state, extra, items)
                lines[i] = csv_line([csv_cell(record[n]) for n in names])
    return _Chunk(
        data=[b"".join(lines)],
        rows=len(lines),
        hashes=copied.hashes,
        next_cursor=copied.next_cursor,
        records=len(lines),
    )


def _new_state(
    sessions: sessionmaker[Session],
    pipeline: str,
    criteria: TaskFilter,
    fmt: ExportFormat,
    shape: ExportShape,
) -> ExportState:
    with transaction(sessions) as session:
        columns = data_columns(session, pipeline)
        consensus = consensus_nodes(session, pipeline)
    if shape == "long" and not consensus:
        raise NoConsensusNodes(pipeline)
    return ExportState(
        format=fmt,
        pipeline=pipeline,
        filter=filter_json(criteria),
        columns=columns,
        shape=shape,
        consensus=consensus,
    )


def check_shape(session: Session, pipeline: str, shape: ExportShape) -> None:
    """Refuse at once an export that :func:`export` would refuse for its shape (a long one
    of a pipeline without consensus nodes), before a job is started for it.

    Raises:
        NoConsensusNodes: ``shape`` is long and no version of ``pipeline`` has a consensus
            node.
    """
    if shape == "long" and not consensus_nodes(session, pipeline):
        raise NoConsensusNodes(pipeline)


def _count(sessions: sessionmaker[Session], pipeline: str, criteria: TaskFilter) -> int:
    with transaction(sessions) as session:
        return count_tasks(session, pipeline, criteria)
