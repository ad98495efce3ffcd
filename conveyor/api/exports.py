"""Export jobs: ``conveyor.bulk.export`` run in a worker thread, with progress to poll.

A job writes ``<data_dir>/exports/<job id>.<format>`` (through the export's own ``.part`` files,
so a file under its final name is always complete). Jobs live in the API process: their
records are lost when it restarts (the finished files stay in the directory until deleted),
and a job running at that moment stops. At most :data:`MAX_RUNNING` exports run at once per
process; later ones wait their turn in state ``queued``.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from conveyor.bulk import ExportFormat, export
from store.db import transaction
from store.explorer import TaskFilter, count_tasks

MAX_RUNNING = 2

MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "zip": "application/zip",
}


class ExportState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ExportJobView(BaseModel):
    """An export job's progress, as the API shows it."""

    id: str
    owner: str
    pipeline: str
    format: ExportFormat
    filter: TaskFilter
    state: ExportState
    rows_done: int
    rows_total: int | None
    """How many tasks the selection had when the export started (None until counted)."""
    error: str | None
    size_bytes: int | None
    """The finished file's size."""
    created_at: datetime
    finished_at: datetime | None
    download: str | None
    """Where to download the file, once ``state`` is ``done``."""


class _Cancelled(Exception):
    """Raised from the progress callback to stop an export after its current page."""


@dataclass
class ExportJob:
    id: str
    owner: str
    pipeline: str
    format: ExportFormat
    filter: TaskFilter
    path: Path
    state: ExportState = ExportState.QUEUED
    rows_done: int = 0
    rows_total: int | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    forget: bool = False
    """Remove the record once the thread has stopped (the job was deleted while running)."""

    def view(self, download_url: str | None) -> ExportJobView:
        size = None
        if self.state is ExportState.DONE:
            try:
                size = self.path.stat().st_size
            except OSError:  # removed behind the API's back
                size = None
        return ExportJobView(
            id=self.id,
            owner=self.owner,
            pipeline=self.pipeline,
            format=self.format,
            filter=self.filter,
            state=self.state,
            rows_done=self.rows_done,
            rows_total=self.rows_total,
            error=self.error,
            size_bytes=size,
            created_at=self.created_at,
            finished_at=self.finished_at,
            download=download_url if self.state is ExportState.DONE else None,
        )

    @property
    def filename(self) -> str:
        """What a download is called: ``<pipeline>-<job id>.<format>``."""
        return f"{self.pipeline}-{self.id}.{self.format}"


class ExportJobs:
    """The export jobs of one API process."""

    def __init__(self, max_running: int = MAX_RUNNING):
        self._jobs: dict[str, ExportJob] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_running)

    def start(
        self,
        sessions: sessionmaker[Session],
        directory: Path,
        owner: str,
        pipeline: str,
        fmt: ExportFormat,
        criteria: TaskFilter,
    ) -> ExportJob:
        """Create a job and start its thread; returns at once."""
        job_id = uuid.uuid4().hex
        directory.mkdir(parents=True, exist_ok=True)
        job = ExportJob(
            id=job_id,
            owner=owner,
            pipeline=pipeline,
            format=fmt,
            filter=criteria,
            path=directory / f"{job_id}.{fmt}",
        )
        with self._lock:
            self._jobs[job_id] = job
        threading.Thread(
            target=self._run, args=(sessions, job), name=f"export-{job_id[:8]}", daemon=True
        ).start()
        return job

    def get(self, job_id: str) -> ExportJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[ExportJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def delete(self, job: ExportJob) -> None:
        """Cancel a running job, or remove a finished one and its file."""
        job.cancel.set()
        with self._lock:
            if job.state in (ExportState.QUEUED, ExportState.RUNNING):
                job.forget = True  # the thread removes it when it stops
                return
            self._jobs.pop(job.id, None)
        job.path.unlink(missing_ok=True)

    def _run(self, sessions: sessionmaker[Session], job: ExportJob) -> None:
        with self._slots:
            if not job.cancel.is_set():
                job.state = ExportState.RUNNING
                self._export(sessions, job)
            else:
                job.state = ExportState.CANCELLED
        job.finished_at = datetime.now(UTC)
        if job.state is not ExportState.DONE:
            for part in job.path.parent.glob(f"{job.path.name}.part*"):
                part.unlink(missing_ok=True)
        if job.forget:
            with self._lock:
                self._jobs.pop(job.id, None)
            job.path.unlink(missing_ok=True)

    def _export(self, sessions: sessionmaker[Session], job: ExportJob) -> None:
        def progress(done: int, total: int) -> None:
            job.rows_done, job.rows_total = done, total
            if job.cancel.is_set():
                raise _Cancelled

        try:
            with transaction(sessions) as session:
                job.rows_total = count_tasks(session, job.pipeline, job.filter)
            report = export(sessions, job.pipeline, job.filter, job.format, job.path, progress)
        except _Cancelled:
            job.state = ExportState.CANCELLED
            return
        except Exception as err:  # reported on the job; the API process carries on
            job.state = ExportState.FAILED
            job.error = f"{type(err).__name__}: {err}"
            return
        job.rows_done = report.rows
        job.rows_total = max(job.rows_total or 0, report.rows)
        job.state = ExportState.DONE
