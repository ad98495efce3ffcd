"""The import: rows read in batches, validated, their tasks created (see the package)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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
from conveyor.importing.checkpoint import (
    ImportState,
    RejectsWriter,
    StateKeeper,
    cut_back,
    head_hash,
)
from conveyor.importing.reading import Record, open_reader, read_batch
from conveyor.importing.report import (
    IMPORT_FORMATS,
    REJECTS_KEPT,
    CreationFailed,
    ImportFormat,
    ImportReport,
    Reject,
)
from workflows.graph import Pipeline

if TYPE_CHECKING:
    from conveyor.client import ConveyorClient

Progress = Callable[[int, int], None]
"""``progress(done, total)`` in bytes of the file, called after each batch."""

DEFAULT_BATCH_SIZE = 1000


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

    identity = ImportState(
        file=str(source.resolve()),
        size=total,
        head=await asyncio.to_thread(head_hash, source),
        format=kind,
        pipeline=pipeline.name,
        version=pipeline.content_hash(),
        key_column=key_column,
        start_paused=start_paused,
        rejects=str(rejects_path.resolve()) if rejects_path is not None else None,
    )
    keeper = StateKeeper(state_path)
    state = keeper.load(identity)
    resumed = state.rows > 0
    if resumed and rejects_path is not None and not cut_back(rejects_path, state.rejects_size):
        state, resumed = identity, False  # the rejects file does not match: start over
    if resumed:
        report.resumed_rows = state.rows
        for name in ("rows", "created", "existed", "rejected", "errors"):
            setattr(report, name, getattr(state, name))
        if on_resume is not None:
            on_resume(state.rows, state.line)

    with source.open("rb") as fb:
        reader = open_reader(kind, fb, checker, state)  # a CSV header is checked here
        if not resumed and rejects_path is not None:
            rejects_path.unlink(missing_ok=True)  # a fresh import starts a fresh file
        writer = RejectsWriter(rejects_path, kind, reader.header, state.rejects_size)
        clean = True
        while True:
            batch = await asyncio.to_thread(read_batch, reader, checker, batch_size)
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
    batch: list[tuple[Record, PreparedRow | None]],
    start_paused: bool,
    concurrency: int,
    dry_run: bool,
) -> list[tuple[Record, RowResult | None]]:
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
    report: ImportReport, record: Record, result: RowResult | None, writer: RejectsWriter
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
