"""Export jobs: ``conveyor.bulk.export`` run in a worker thread, with progress to poll.

A job writes ``<data_dir>/exports/<job id>.<format>`` (through the export's own ``.part`` files,
so a file under its final name is always complete) and keeps its record beside it, in
``<job id>.job.json``, rewritten (atomically) whenever its state changes. A restarted API process
reads the records back: finished jobs stay listed and downloadable until deleted; a job that was
queued or running when the process stopped shows ``failed`` with the reason (start it again).
At most :data:`MAX_RUNNING` exports run at once per process; later ones wait their turn in state
``queued``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from conveyor.bulk import ExportFormat, ExportShape, export
from store.db import transaction
from store.explorer import TaskFilter, count_tasks

log = logging.getLogger("conveyor.api")

MAX_RUNNING = 2
RECORD_SUFFIX = ".job.json"
INTERRUPTED = "the API process stopped while this export ran; start it again"

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
    shape: ExportShape
    """``wide`` (a row per task) or ``long`` (a row per consensus answer)."""
    filter: TaskFilter
    state: ExportState
    rows_done: int
    """The tasks exported so far."""
    rows_total: int | None
    """How many tasks the selection had when the export started (None until counted)."""
    answers: int | None = None
    """A finished long export: the rows in its file (one per answer)."""
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
    shape: ExportShape = "wide"
    state: ExportState = ExportState.QUEUED
    rows_done: int = 0
    rows_total: int | None = None
    error: str | None = None
    answers: int | None = None
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
            shape=self.shape,
            filter=self.filter,
            state=self.state,
            rows_done=self.rows_done,
            rows_total=self.rows_total,
            answers=self.answers,
            error=self.error,
            size_bytes=size,
            created_at=self.created_at,
            finished_at=self.finished_at,
            download=download_url if self.state is ExportState.DONE else None,
        )

    @property
    def record_path(self) -> Path:
        return self.path.with_name(self.id + RECORD_SUFFIX)

    def save(self) -> None:
        """Write the job's record beside its file (atomically: a reader never sees half)."""
        record = {
            "id": self.id,
            "owner": self.owner,
            "pipeline": self.pipeline,
            "format": self.format,
            "shape": self.shape,
            "filter": self.filter.model_dump(mode="json"),
            "state": self.state.value,
            "rows_done": self.rows_done,
            "rows_total": self.rows_total,
            "answers": self.answers,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }
        scratch = self.record_path.with_name(self.record_path.name + ".tmp")
        scratch.write_text(json.dumps(record), encoding="utf-8")
        os.replace(scratch, self.record_path)

    @classmethod
    def load(cls, record_path: Path) -> ExportJob:
        """A job from its record; one that was queued or running is marked failed."""
        record = json.loads(record_path.read_text(encoding="utf-8"))
        job = cls(
            id=record["id"],
            owner=record["owner"],
            pipeline=record["pipeline"],
            format=record["format"],
            filter=TaskFilter.model_validate(record["filter"]),
            path=record_path.with_name(f"{record['id']}.{record['format']}"),
            shape=record.get("shape", "wide"),  # records written before shapes: wide
            state=ExportState(record["state"]),
            rows_done=int(record["rows_done"]),
            rows_total=record["rows_total"],
            answers=record.get("answers"),
            error=record["error"],
            created_at=datetime.fromisoformat(record["created_at"]),
            finished_at=(
                datetime.fromisoformat(record["finished_at"]) if record["finished_at"] else None
            ),
        )
        if job.state in (ExportState.QUEUED, ExportState.RUNNING):
            job.state, job.error = ExportState.FAILED, INTERRUPTED
            job.finished_at = job.finished_at or datetime.now(UTC)
            job.discard_parts()
            job.save()
        return job

    def discard_parts(self) -> None:
        """Remove what an export that did not finish left behind (its ``.part`` files)."""
        for part in self.path.parent.glob(f"{self.path.name}.part*"):
            part.unlink(missing_ok=True)

    @property
    def filename(self) -> str:
        """What a download is called: ``<pipeline>-<job id>.<format>``, or
        ``<pipeline>-answers-<job id>.<format>`` for a long export."""
        shape = "-answers" if self.shape == "long" else ""
        return f"{self.pipeline}{shape}-{self.id}.{self.format}"


class ExportJobs:
    """The export jobs of one API process."""

    def __init__(self, max_running: int = MAX_RUNNING):
        self._jobs: dict[str, ExportJob] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_running)
        self._read: set[Path] = set()

    def read_records(self, directory: Path) -> None:
        """Take in the jobs recorded in ``directory`` by earlier processes (once per directory).

        A record that cannot be read is logged and left alone."""
        with self._lock:
            if directory in self._read:
                return
            self._read.add(directory)
            for record_path in sorted(directory.glob(f"*{RECORD_SUFFIX}")):
                try:
                    job = ExportJob.load(record_path)
                except (OSError, ValueError, KeyError, TypeError) as err:
                    log.warning("cannot read export job record %s: %s", record_path, err)
                    continue
                self._jobs.setdefault(job.id, job)

    def start(
        self,
        sessions: sessionmaker[Session],
        directory: Path,
        owner: str,
        pipeline: str,
        fmt: ExportFormat,
        criteria: TaskFilter,
        shape: ExportShape = "wide",
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
            shape=shape,
        )
        job.save()
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
        job.record_path.unlink(missing_ok=True)

    def _run(self, sessions: sessionmaker[Session], job: ExportJob) -> None:
        with self._slots:
            if not job.cancel.is_set():
                job.state = ExportState.RUNNING
                job.save()
                self._export(sessions, job)
            else:
                job.state = ExportState.CANCELLED
        job.finished_at = datetime.now(UTC)
        if job.state is not ExportState.DONE:
            job.discard_parts()
        if job.forget:
            with self._lock:
                self._jobs.pop(job.id, None)
            job.path.unlink(missing_ok=True)
            job.record_path.unlink(missing_ok=True)
        else:
            job.save()

    def _export(self, sessions: sessionmaker[Session], job: ExportJob) -> None:
        def progress(done: int, total: int) -> None:
            job.rows_done, job.rows_total = done, total
            if job.cancel.is_set():
                raise _Cancelled

        try:
            with transaction(sessions) as session:
                job.rows_total = count_tasks(session, job.pipeline, job.filter)
            report = export(
                sessions,
                job.pipeline,
                job.filter,
                job.format,
                job.path,
                progress,
                shape=job.shape,
            )
        except _Cancelled:
            job.state = ExportState.CANCELLED
            return
        except Exception as err:  # reported on the job; the API process carries on
            job.state = ExportState.FAILED
            job.error = f"{type(err).__name__}: {err}"
            return
        job.rows_done = report.rows
        job.rows_total = max(job.rows_total or 0, report.rows)
        job.answers = report.answers
        job.state = ExportState.DONE
