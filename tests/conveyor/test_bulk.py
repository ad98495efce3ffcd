"""Bulk export and delete on SQLite and PostgreSQL, against real workflows on the dev server."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import os
import subprocess
import sys
import tracemalloc
import uuid
import zipfile
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.llm import LlmSettings
from conveyor.bulk import (
    EXPORT_FORMATS,
    ConfirmationRequired,
    DeleteOutcome,
    ExportBusy,
    ExportFormat,
    ExportStateMismatch,
    Progress,
    Selection,
    StateFileMismatch,
    csv_cell,
    delete_tasks,
    deleting,
    export,
    export_state,
)
from conveyor.client import ConveyorClient
from store.db import transaction
from store.explorer import TaskFilter
from store.models import (
    EvaluationResultRow,
    NodeRow,
    ReviewRow,
    SubmissionRow,
    TaskRow,
    TaskTagRow,
    TimelineEventRow,
)
from tests.support.actors import claim, label_and_review, rid, submit
from tests.support.explorer_data import (
    build_tasks,
    clone,
    pipeline_for,
    project_fast,
    rename,
)
from worker import build_worker
from workflows import engine
from workflows.messages import Pause, Tag, TaskStatus, TaskView

COLUMNS = [
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
    "node_status.label",
    "node_status.check",
    "label.text",
    "label.label",
    "label.notes",
    "check.confidence",
    "tags",
]


@pytest.fixture
async def conveyor(
    client: Client, sessions: sessionmaker[Session]
) -> AsyncIterator[ConveyorClient]:
    task_queue = f"bulk-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue, sessions=sessions, llm=LlmSettings()):
        yield ConveyorClient(client, task_queue, update_timeout=20)


def fresh_name() -> str:
    return f"bulk-{uuid.uuid4().hex[:8]}"


async def real_tasks(
    conveyor: ConveyorClient, name: str, n: int, *, finish: bool = True
) -> list[str]:
    """``n`` tasks through the worker, in assorted states (finished, claimed, reworked...).

    Temporal deletes closed workflows asynchronously (the dev server takes ~30 s), so delete
    tests use running ones (``finish=False``) to see describe answer NOT_FOUND at once.
    """
    pipeline = pipeline_for(name)

    async def one(i: int) -> str:
        created = await conveyor.create_task(
            pipeline, f"real-{i}", {"text": f'Real {i}: =1+1, "quoted"\nnew line'}
        )
        task = conveyor.task(created.workflow_id)
        kind = i % 5
        if kind == 0:
            verdict = "pass" if finish else "fail"
            await label_and_review(task, verdict, labeler=f"l{i}", reviewer=f"r{i}")
        elif kind == 1:
            await claim(task, f"l{i}", ["labeler"], "label")
        elif kind == 2:
            await label_and_review(task, "fail", labeler=f"l{i}", reviewer=f"r{i}")
        elif kind == 3:
            token = await claim(task, f"l{i}", ["labeler"], "label")
            await submit(task, f"l{i}", "label", token, {"label": "neutral", "notes": "-1+2"})
            await task.send(Tag(request_id=rid(), by="root", tags=["audit", "real"]))
        else:
            await task.send(Pause(request_id=rid(), by="root", reason="later"))
        return created.workflow_id

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def settled(
    conveyor: ConveyorClient, sessions: sessionmaker[Session], ids: list[str]
) -> list[TaskView]:
    """The workflows' views, once the store holds each one's latest snapshot."""
    views = []
    for workflow_id in ids:
        view = await conveyor.task(workflow_id).state()
        for _ in range(200):
            with transaction(sessions) as session:
                seq = session.scalar(select(TaskRow.seq).where(TaskRow.workflow_id == workflow_id))
            if seq == view.seq:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the store never caught up with {workflow_id}")
        views.append(view)
    return views


def expected_record(view: TaskView) -> dict[str, Any]:
    """What an export must say about a task, derived from the workflow's own view."""
    nodes = {n.name: n for n in view.nodes}

    def iso(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value is not None else None

    record: dict[str, Any] = {
        "workflow_id": view.workflow_id,
        "task_key": view.task_key,
        "pipeline_hash": view.pipeline_hash,
        "status": view.status.value,
        "hold_reason": view.hold_reason,
        "current_nodes": engine.current_nodes(view.nodes),
        "assignees": engine.assignees(view.nodes),
        "created_at": iso(view.created_at),
        "updated_at": iso(view.updated_at),
        "finished_at": iso(view.finished_at),
        "node_status.label": nodes["label"].status.value,
        "node_status.check": nodes["check"].status.value,
        "label.text": view.data.get("text"),
        "label.label": nodes["label"].values.get("label"),
        "label.notes": nodes["label"].values.get("notes"),
        "check.confidence": nodes["check"].values.get("confidence"),
        "tags": view.tags,
    }
    return record


def expected_cell(value: Any) -> str:
    """The CSV text of a value, spelled out independently of the code under test."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return str(value)


# --------------------------------------------------------------------------- export


async def test_exports_in_every_format_match_the_workflows(
    conveyor: ConveyorClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    name = fresh_name()
    synthetic = rename(build_tasks("bulk", 2000), name)
    project_fast(sessions, synthetic, events=False)
    real_ids = await real_tasks(conveyor, name, 5)
    views = {b.view.workflow_id: b.view for b in synthetic}
    views |= {v.workflow_id: v for v in await settled(conveyor, sessions, real_ids)}
    assert len(views) == 2005
    expected = {i: expected_record(v) for i, v in views.items()}

    calls: list[tuple[int, int]] = []
    paths = {}
    for fmt in ("csv", "json", "jsonl", "zip"):
        paths[fmt] = tmp_path / f"tasks.{fmt}"
        report = await asyncio.to_thread(
            export,
            sessions,
            name,
            None,
            fmt,
            paths[fmt],
            lambda done, total: calls.append((done, total)),
        )
        assert report.rows == 2005 and report.columns == COLUMNS
        assert report.versions == [synthetic[0].view.pipeline_hash]
    assert calls[-1] == (2005, 2005)
    assert all(done <= total for done, total in calls)

    with paths["csv"].open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        assert next(reader) == COLUMNS
        csv_rows = [dict(zip(COLUMNS, row, strict=True)) for row in reader]
    json_rows = json.loads(paths["json"].read_text(encoding="utf-8"))
    jsonl_rows = [json.loads(line) for line in paths["jsonl"].read_text().splitlines()]
    for rows in (csv_rows, json_rows, jsonl_rows):
        ids = [r["workflow_id"] for r in rows]
        assert len(ids) == len(set(ids)) == 2005
        assert set(ids) == set(expected)
    for row in json_rows + jsonl_rows:
        assert row == expected[row["workflow_id"]], row["workflow_id"]
    for row in csv_rows:
        want = expected[row["workflow_id"]]
        assert row == {k: expected_cell(v) for k, v in want.items()}, row["workflow_id"]

    # Formula-looking text is neutralised in CSV and kept as is in JSON.
    by_notes = {r["label.notes"] for r in csv_rows}
    assert {"'=SUM(A1)", "'+1", "'-2", "'@cmd", "'\tTab", "'\rCR", "plain"} <= by_notes
    assert "'-1+2" in by_notes  # from a real task
    assert "=SUM(A1)" in {r["label.notes"] for r in json_rows}

    with zipfile.ZipFile(paths["zip"]) as archive:
        assert archive.namelist() == ["tasks.csv", "tasks.jsonl", "manifest.json"]
        assert archive.read("tasks.csv") == paths["csv"].read_bytes()
        assert archive.read("tasks.jsonl") == paths["jsonl"].read_bytes()
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["pipeline"] == name and manifest["rows"] == 2005
    assert manifest["versions"] == [synthetic[0].view.pipeline_hash]
    assert manifest["filter"] == {} and manifest["columns"] == COLUMNS
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None

    # A filtered export, and one of explicit ids, to a stream.
    criteria = TaskFilter(status=[TaskStatus.IN_PROGRESS], tag="audit")
    buffer = io.BytesIO()
    report = export(sessions, name, criteria, "jsonl", buffer)
    got = [json.loads(line)["workflow_id"] for line in buffer.getvalue().splitlines()]
    matching = [
        i for i, v in views.items() if v.status == TaskStatus.IN_PROGRESS and "audit" in v.tags
    ]
    assert sorted(got) == sorted(matching) and report.rows == len(matching) and report.path is None
    buffer = io.BytesIO()
    export(sessions, name, TaskFilter(workflow_ids=real_ids), "json", buffer)
    assert sorted(r["workflow_id"] for r in json.loads(buffer.getvalue())) == sorted(real_ids)


def test_csv_cells() -> None:
    for prefix in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_cell(f"{prefix}HYPERLINK(1)") == f"'{prefix}HYPERLINK(1)"
    assert csv_cell("a=b") == "a=b" and csv_cell("") == ""
    assert csv_cell(-3) == "-3" and csv_cell(2.5) == "2.5"  # numbers are numbers
    assert csv_cell(True) == "true" and csv_cell(None) == ""
    assert csv_cell({"b": [1, "=x"], "a": None}) == '{"a":null,"b":[1,"=x"]}'
    assert csv_cell(["-x"]) == '["-x"]'
    assert csv_cell(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05+00:00"


def test_export_memory_stays_constant(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    name = fresh_name()
    templates = rename(build_tasks("bulk", 9), name)
    rows = 2_000
    clones = [clone(templates[i % 9], i, pad=6500) for i in range(1, rows)]
    project_fast(sessions, templates[:1] + clones, events=False)
    out = tmp_path / "big.csv"
    tracemalloc.start()
    try:
        report = export(sessions, name, None, "csv", out, page_size=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.rows == rows
    size = out.stat().st_size
    # Holding every row would take more than the file's size (the text alone is 13 MB).
    assert size > 13_000_000
    assert peak < 4_000_000, f"peak {peak:,} bytes for a {size:,}-byte export"


class Crash(Exception):
    pass


PAGE = 150
ROOT = Path(__file__).resolve().parents[2]


def stored_tasks(sessions: sessionmaker[Session], n: int) -> tuple[str, list[str]]:
    """A fresh pipeline with ``n`` synthetic tasks in the store: its name and the task ids."""
    name = fresh_name()
    batches = rename(build_tasks("bulk", 2000)[:n], name)
    project_fast(sessions, batches, events=False)
    return name, [b.view.workflow_id for b in batches]


def crash_at(rows: int) -> Progress:
    """A progress callback that kills the export once ``rows`` rows are saved."""

    def progress(done: int, total: int) -> None:
        if done >= rows:
            raise Crash(f"killed at {done}/{total}")

    return progress


def exported_ids(fmt: ExportFormat, content: bytes) -> list[str]:
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            content = archive.read("tasks.jsonl")
    if fmt in ("zip", "jsonl"):
        return [json.loads(line)["workflow_id"] for line in content.splitlines()]
    if fmt == "json":
        return [r["workflow_id"] for r in json.loads(content)]
    header, *rows = csv.reader(io.StringIO(content.decode(), newline=""))
    assert header[0] == "workflow_id"
    return [r[0] for r in rows]


def assert_same_export(fmt: ExportFormat, got: bytes, want: bytes) -> None:
    """Byte for byte; a ZIP member by member (its manifest says when it was made)."""
    if fmt != "zip":
        assert got == want
        return
    with zipfile.ZipFile(io.BytesIO(got)) as a, zipfile.ZipFile(io.BytesIO(want)) as b:
        assert a.namelist() == b.namelist() == ["tasks.csv", "tasks.jsonl", "manifest.json"]
        for member in ("tasks.csv", "tasks.jsonl"):
            assert a.read(member) == b.read(member), member
        manifests = [json.loads(z.read("manifest.json")) for z in (a, b)]
    for manifest in manifests:
        assert manifest.pop("created_at")
    assert manifests[0] == manifests[1]


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def add_evaluation(sessions: sessionmaker[Session], name: str, workflow_id: str) -> None:
    """A first evaluation result: the pipeline's export columns gain ``eval.late.*``."""
    with transaction(sessions) as session:
        session.execute(
            insert(EvaluationResultRow),
            {
                "workflow_id": workflow_id,
                "pipeline_name": name,
                "node": "label",
                "criterion": "late",
                "criterion_version": "1",
                "target_fields": ["label"],
                "score": 1.0,
                "at": datetime.now(UTC),
            },
        )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty folder for export files (a SQLite store lives in ``tmp_path``)."""
    path = tmp_path / "exports"
    path.mkdir()
    return path


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_an_interrupted_export_continues_where_it_stopped(
    sessions: sessionmaker[Session], folder: Path, fmt: ExportFormat
) -> None:
    name, ids = stored_tasks(sessions, 1000)
    fresh = export(sessions, name, None, fmt, folder / f"fresh.{fmt}", page_size=PAGE)
    assert fresh.rows == 1000 and fresh.resumed_rows == 0
    want = (folder / f"fresh.{fmt}").read_bytes()
    assert sorted(exported_ids(fmt, want)) == sorted(ids)
    parts = [".part.csv", ".part.jsonl"] if fmt == "zip" else [".part"]

    # Killed after the second page; and another export killed after its last page, before
    # its file was finished (JSON's closing bracket, the ZIP).
    out, late = folder / f"tasks.{fmt}", folder / f"late.{fmt}"
    with pytest.raises(Crash, match="killed at 300/1000"):
        export(sessions, name, None, fmt, out, crash_at(300), page_size=PAGE)
    with pytest.raises(Crash, match="killed at 1000/1000"):
        export(sessions, name, None, fmt, late, crash_at(1000), page_size=PAGE)
    leftovers = {f"{o.name}{s}" for o in (out, late) for s in [*parts, ".part.state"]}
    assert set(files_in(folder)) == {f"fresh.{fmt}", *leftovers}, "no file at out yet"
    state = json.loads(out.with_name(f"{out.name}.part.state").read_text())
    assert (state["rows"], state["format"], state["pipeline"]) == (300, fmt, name)

    # The crash came half-way through a page and through replacing the state file; and the
    # pipeline gains columns meanwhile, which the unfinished exports do not take up.
    for written, suffix in itertools.product((out, late), parts):
        with written.with_name(written.name + suffix).open("ab") as f:
            f.write(b'{"workflow_id": "half a page')
    out.with_name(f"{out.name}.part.state.tmp").write_text('{"kind": "conveyor-exp')
    add_evaluation(sessions, name, ids[500])
    assert "eval.late.score" in export(sessions, name, None, "jsonl", io.BytesIO()).columns

    resumed: list[int] = []
    calls: list[tuple[int, int]] = []
    report = export(
        sessions,
        name,
        None,
        fmt,
        out,
        lambda done, total: calls.append((done, total)),
        page_size=PAGE,
        on_resume=resumed.append,
    )
    assert (report.rows, report.resumed_rows, report.path) == (1000, 300, out)
    assert report.columns == fresh.columns == COLUMNS and report.versions == fresh.versions
    assert resumed == [300] and calls[0] == (450, 1000) and calls[-1] == (1000, 1000)
    got = out.read_bytes()
    ids_out = exported_ids(fmt, got)
    assert len(ids_out) == len(set(ids_out)) == 1000 and set(ids_out) == set(ids)
    assert_same_export(fmt, got, want)

    calls.clear()
    report = export(
        sessions, name, None, fmt, late, lambda d, t: calls.append((d, t)), page_size=PAGE
    )
    assert (report.rows, report.resumed_rows) == (1000, 1000) and calls == [(1000, 1000)]
    assert_same_export(fmt, late.read_bytes(), want)
    assert set(files_in(folder)) == {f"fresh.{fmt}", out.name, late.name}

    # To a stream: written in one go, no files.
    buffer = io.BytesIO()
    export(sessions, name, TaskFilter(workflow_ids=ids), fmt, buffer, page_size=PAGE)
    assert set(files_in(folder)) == {f"fresh.{fmt}", out.name, late.name}
    assert sorted(exported_ids(fmt, buffer.getvalue())) == sorted(ids)


def test_two_exports_to_one_path_never_write_at_once(
    sessions: sessionmaker[Session], folder: Path
) -> None:
    name, ids = stored_tasks(sessions, 120)
    out = folder / "tasks.csv"
    seen: list[str] = []

    def meanwhile(done: int, total: int) -> None:
        # a second export to the same path, while the first is between two pages
        with pytest.raises(ExportBusy, match="another export is writing"):
            export(sessions, name, None, "csv", out, page_size=50)
        seen.append(f"{done}/{total}")

    report = export(sessions, name, None, "csv", out, meanwhile, page_size=50)
    assert seen == ["50/120", "100/120", "120/120"] and report.rows == 120
    assert sorted(r["workflow_id"] for r in csv.DictReader(io.StringIO(out.read_text()))) == sorted(
        ids
    )
    assert list(files_in(folder)) == ["tasks.csv"], "the lock file goes with the export"
    # a lock left by a process that died is no lock: the operating system released it
    (folder / "tasks.csv.part.lock").write_text("")
    assert export(sessions, name, None, "csv", out, restart=True).rows == 120


def test_an_unfinished_export_continues_only_with_the_same_options(
    sessions: sessionmaker[Session], folder: Path
) -> None:
    name, ids = stored_tasks(sessions, 600)
    out = folder / "tasks.csv"
    out.write_bytes(b"an earlier export\r\n")
    state = folder / "tasks.csv.part.state"
    audit = TaskFilter(tag="audit")
    with pytest.raises(Crash):
        export(sessions, name, audit, "csv", out, crash_at(50), page_size=50)
    before = files_in(folder)
    assert set(before) == {"tasks.csv", "tasks.csv.part", "tasks.csv.part.state"}

    others: list[tuple[str, TaskFilter | None, ExportFormat]] = [
        (name, audit, "json"),
        (name, None, "csv"),
        (name, TaskFilter(tag="gold"), "csv"),
        (fresh_name(), audit, "csv"),
    ]
    for pipeline, criteria, fmt in others:
        with pytest.raises(ExportStateMismatch) as refused:
            export(sessions, pipeline, criteria, fmt, out, page_size=PAGE)
        message = str(refused.value)
        assert f"{state} belongs to an unfinished csv export of {name!r}" in message
        assert '{"tag":"audit"}' in message
        assert "rerun with the same options" in message and "--restart" in message
    assert files_in(folder) == before, "a refused export changes nothing"

    part = folder / "tasks.csv.part"
    part.write_bytes(part.read_bytes()[:10])
    with pytest.raises(ExportStateMismatch, match=r"shorter than .* --restart"):
        export(sessions, name, audit, "csv", out, page_size=PAGE)
    state.write_text('{"kind": "conveyor-delete"}')
    with pytest.raises(ExportStateMismatch, match="not the state file of an export"):
        export(sessions, name, audit, "csv", out, page_size=PAGE)
    assert out.read_bytes() == b"an earlier export\r\n"

    report = export(sessions, name, None, "csv", out, page_size=PAGE, restart=True)
    assert (report.rows, report.resumed_rows) == (600, 0)
    assert sorted(exported_ids("csv", out.read_bytes())) == sorted(ids)
    assert set(files_in(folder)) == {"tasks.csv"}

    # restart=True also discards an unfinished export with the same options.
    with pytest.raises(Crash):
        export(sessions, name, audit, "zip", out, crash_at(50), page_size=50)
    report = export(sessions, name, audit, "zip", out, page_size=PAGE, restart=True)
    assert (report.rows, report.resumed_rows) == (120, 0)
    assert set(files_in(folder)) == {"tasks.csv"}


def test_a_zip_interrupted_while_assembled_is_assembled_again(
    sessions: sessionmaker[Session], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = stored_tasks(sessions, 400)
    want = io.BytesIO()
    export(sessions, name, None, "zip", want)
    out = folder / "tasks.zip"
    real_member = export_state._member

    def member(name: str) -> zipfile.ZipInfo:
        if name == "manifest.json":
            raise Crash("killed while assembling")
        return real_member(name)

    monkeypatch.setattr(export_state, "_member", member)
    with pytest.raises(Crash):
        export(sessions, name, None, "zip", out, page_size=PAGE)
    assert set(files_in(folder)) == {
        "tasks.zip.part",
        "tasks.zip.part.csv",
        "tasks.zip.part.jsonl",
        "tasks.zip.part.state",
    }
    monkeypatch.undo()
    report = export(sessions, name, None, "zip", out, page_size=PAGE)
    assert (report.rows, report.resumed_rows) == (400, 400)
    assert_same_export("zip", out.read_bytes(), want.getvalue())
    assert set(files_in(folder)) == {"tasks.zip"}


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), *args],
        cwd=ROOT,
        env={**os.environ, "CONVEYOR_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_export_command_resumes_refuses_and_restarts(
    store_sessions: sessionmaker[Session], folder: Path
) -> None:
    url = store_sessions.kw["bind"].url.render_as_string(hide_password=False)
    name, ids = stored_tasks(store_sessions, 450)
    want = io.BytesIO()
    export(store_sessions, name, None, "csv", want)
    out = folder / "tasks.csv"
    with pytest.raises(Crash):
        export(store_sessions, name, None, "csv", out, crash_at(PAGE), page_size=PAGE)

    refused = run_cli("export", "--pipeline", name, "--format", "json", "--out", str(out), url=url)
    assert refused.returncode == 3, refused.stderr
    assert f"error: {out}.part.state belongs to an unfinished csv export" in refused.stderr
    assert "--restart" in refused.stderr and not out.exists()

    done = run_cli("export", "--pipeline", name, "--out", str(out), url=url)
    assert done.returncode == 0, done.stderr
    assert "resuming export at row 151 (150 written by an earlier run)" in done.stdout
    assert f"exported 450 task(s) of {name} to {out} (csv), 150 of them by an earlier run" in (
        done.stdout
    )
    assert out.read_bytes() == want.getvalue()

    with pytest.raises(Crash):
        export(store_sessions, name, None, "csv", out, crash_at(PAGE), page_size=PAGE)
    args = ["export", "--pipeline", name, "--format", "jsonl", "--out", str(out), "--restart"]
    restarted = run_cli(*args, url=url)
    assert restarted.returncode == 0, restarted.stderr
    assert "resuming" not in restarted.stdout and "exported 450 task(s)" in restarted.stdout
    assert sorted(exported_ids("jsonl", out.read_bytes())) == sorted(ids)
    assert set(files_in(folder)) == {"tasks.csv"}


# --------------------------------------------------------------------------- delete


async def gone_from_temporal(conveyor: ConveyorClient, workflow_id: str) -> bool:
    for _ in range(100):
        try:
            await conveyor.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return True
            raise
        await asyncio.sleep(0.05)
    return False


def store_rows(sessions: sessionmaker[Session], ids: list[str]) -> dict[str, int]:
    with transaction(sessions) as session:
        return {
            table.__tablename__: session.scalar(
                select(func.count()).select_from(table).where(table.workflow_id.in_(ids))
            )
            or 0
            for table in (
                TaskRow,
                NodeRow,
                TimelineEventRow,
                SubmissionRow,
                ReviewRow,
                TaskTagRow,
                EvaluationResultRow,
            )
        }


async def test_delete_removes_workflows_and_store_rows(
    conveyor: ConveyorClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    name = fresh_name()
    real_ids = await real_tasks(conveyor, name, 5, finish=False)
    await settled(conveyor, sessions, real_ids)
    synthetic = rename(build_tasks("bulk", 30), name)
    project_fast(sessions, synthetic)
    other = rename(build_tasks("bulk", 3), fresh_name())
    project_fast(sessions, other)
    with transaction(sessions) as session:
        session.execute(
            insert(EvaluationResultRow),
            {
                "workflow_id": real_ids[0],
                "pipeline_name": name,
                "node": "label",
                "criterion": "c",
                "criterion_version": "1",
                "target_fields": ["label"],
                "score": 1.0,
                "at": datetime.now(UTC),
            },
        )
    ids = real_ids + [b.view.workflow_id for b in synthetic]
    before = store_rows(sessions, ids)
    assert all(before[t] > 0 for t in ("tasks", "node_instances", "timeline_events", "reviews"))

    with pytest.raises(ConfirmationRequired, match="--yes"):
        await delete_tasks(conveyor, sessions, Selection(pipeline=name), confirm=False)
    assert store_rows(sessions, ids) == before

    seen: list[tuple[int, int]] = []
    report = await delete_tasks(
        conveyor,
        sessions,
        Selection(pipeline=name),
        confirm=True,
        progress=lambda done, total: seen.append((done, total)),
        chunk_size=7,
    )
    assert report.ok and report.skipped == 0
    assert sorted(report.ids(DeleteOutcome.DELETED)) == sorted(ids)
    assert seen[-1] == (35, 35)
    assert set(store_rows(sessions, ids).values()) == {0}
    for workflow_id in real_ids:
        assert await gone_from_temporal(conveyor, workflow_id), workflow_id
    # Other pipelines are untouched; deleting again finds nothing.
    assert store_rows(sessions, [b.view.workflow_id for b in other])["tasks"] == 3
    again = await delete_tasks(
        conveyor, sessions, Selection.of_ids(real_ids, pipeline=name), confirm=True
    )
    assert Counter(r.outcome for r in again.results) == {DeleteOutcome.ALREADY_GONE: 5}


async def test_delete_resumes_after_a_crash(
    conveyor: ConveyorClient,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = fresh_name()
    real_ids = await real_tasks(conveyor, name, 10, finish=False)
    await settled(conveyor, sessions, real_ids)
    synthetic = rename(build_tasks("bulk", 50), name)
    project_fast(sessions, synthetic)
    ids = real_ids + [b.view.workflow_id for b in synthetic]

    calls: Counter[str] = Counter()
    real_delete = deleting.delete_workflow

    async def counting(client: ConveyorClient, workflow_id: str) -> bool:
        calls[workflow_id] += 1
        return await real_delete(client, workflow_id)

    monkeypatch.setattr(deleting, "delete_workflow", counting)
    state = tmp_path / "delete.state"
    selection = Selection(pipeline=name)

    def crash_midway(done: int, total: int) -> None:
        if done >= 30:
            raise Crash(f"killed at {done}/{total}")

    with pytest.raises(Crash, match="killed at 30/60"):
        await delete_tasks(
            conveyor,
            sessions,
            selection,
            confirm=True,
            progress=crash_midway,
            state_file=state,
            chunk_size=10,
        )
    lines = [json.loads(line) for line in state.read_text().splitlines()]
    assert lines[0]["selection"]["pipeline"] == name
    first_run = {i for line in lines[1:] for i in line["done"]}
    assert len(first_run) == 30

    with pytest.raises(StateFileMismatch, match="different selection"):
        await delete_tasks(
            conveyor,
            sessions,
            Selection(pipeline=name, filter=TaskFilter(tag="audit")),
            confirm=True,
            state_file=state,
        )

    report = await delete_tasks(
        conveyor, sessions, selection, confirm=True, state_file=state, chunk_size=10
    )
    assert report.ok and report.skipped == 30
    second_run = set(report.ids(DeleteOutcome.DELETED))
    assert first_run.isdisjoint(second_run) and first_run | second_run == set(ids)
    assert calls == dict.fromkeys(ids, 1), "every task deleted exactly once"
    assert store_rows(sessions, ids)["tasks"] == 0
    for workflow_id in real_ids:
        assert await gone_from_temporal(conveyor, workflow_id), workflow_id
