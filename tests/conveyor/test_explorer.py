"""The Data Explorer's queries on SQLite and PostgreSQL: counts, filters, sorts, keyset pages,
Task Data columns and the task detail views."""

from __future__ import annotations

import argparse
import base64
import csv
import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session, sessionmaker

from conveyor.cli.explorer import register
from store.db import transaction
from store.explorer import (
    InvalidCursor,
    Sort,
    SortField,
    TaskFilter,
    TaskNotFound,
    data_columns,
    header_counts,
    page,
    task_detail,
)
from store.models import EvaluationResultRow, TaskRow
from tests.support.explorer_data import T0, TIE, build_tasks, project, project_fast, rename
from workflows import engine
from workflows.messages import NodeStatus, ProjectionBatch, TaskStatus, TaskView

N = 200


@pytest.fixture
def dataset(sessions: sessionmaker[Session]) -> tuple[str, list[TaskView]]:
    """N tasks of a fresh pipeline: the first nine (one per scenario) through apply_batch, the
    rest bulk-written."""
    name = f"ex-{uuid.uuid4().hex[:8]}"
    batches = rename(build_tasks("explorer", N), name)
    project(sessions, batches[:9])
    project_fast(sessions, batches[9:])
    return name, [b.view for b in batches]


def walk(
    sessions: sessionmaker[Session],
    pipeline: str,
    criteria: TaskFilter | None = None,
    sort: Sort | None = None,
    limit: int = 13,
) -> list[str]:
    """Every workflow id of a selection, page by page (each page its own transaction)."""
    ids: list[str] = []
    after = None
    columns = None
    for _ in range(10_000):
        with transaction(sessions) as session:
            result = page(
                session, pipeline, criteria, sort, limit=limit, after=after, columns=columns
            )
        columns = result.columns
        assert len(result.rows) <= limit
        ids += [r.workflow_id for r in result.rows]
        if result.next_cursor is None:
            return ids
        assert len(result.rows) == limit
        after = result.next_cursor
    raise AssertionError("pagination never ended")


def _nodes(view: TaskView) -> dict[str, Any]:
    return {n.name: n for n in view.nodes}


# --------------------------------------------------------------------------- counts


def test_header_counts(
    sessions: sessionmaker[Session], dataset: tuple[str, list[TaskView]]
) -> None:
    name, views = dataset
    with transaction(sessions) as session:
        counts = header_counts(session, name)
        empty = header_counts(session, "no-such-pipeline")
    expected = Counter(v.status for v in views)
    assert list(counts.counts) == list(TaskStatus)  # all seven, in the product's order
    assert counts.counts == {s: expected.get(s, 0) for s in TaskStatus}
    assert counts.count(TaskStatus.FAILED) == 0
    assert counts.total == N
    finished = expected[TaskStatus.FINISHED]
    assert counts.finished_text() == f"{finished:,} / {N:,} finished"
    assert empty.total == 0 and set(empty.counts.values()) == {0}
    assert empty.finished_text() == "0 / 0 finished"


# --------------------------------------------------------------------------- filters


FILTERS: list[tuple[str, TaskFilter, Callable[[TaskView], bool]]] = [
    (
        "status",
        TaskFilter(status=[TaskStatus.FINISHED, TaskStatus.PAUSED]),
        lambda v: v.status in (TaskStatus.FINISHED, TaskStatus.PAUSED),
    ),
    (
        "node in status",
        TaskFilter(node="check", node_status=NodeStatus.AVAILABLE),
        lambda v: _nodes(v)["check"].status == NodeStatus.AVAILABLE,
    ),
    (
        "node is current",
        TaskFilter(node="label"),
        lambda v: "label" in engine.current_nodes(v.nodes),
    ),
    (
        "any node in status",
        TaskFilter(node_status=NodeStatus.CLAIMED),
        lambda v: any(n.status == NodeStatus.CLAIMED for n in v.nodes),
    ),
    (
        "assignee",
        TaskFilter(assignee="c1"),
        lambda v: any(n.claim is not None and n.claim.holder == "c1" for n in v.nodes),
    ),
    ("tag", TaskFilter(tag="gold"), lambda v: "gold" in v.tags),
    (
        "created range",
        TaskFilter(
            created_from=T0 + timedelta(minutes=3),
            created_to=(T0 + timedelta(minutes=10)).replace(tzinfo=None),  # naive means UTC
        ),
        lambda v: T0 + timedelta(minutes=3) <= v.created_at < T0 + timedelta(minutes=10),
    ),
    (
        "text, case-insensitive",
        TaskFilter(text="TEXT NUMBER 1"),
        lambda v: "text number 1" in str(v.data["text"]).lower(),
    ),
    ("text, wildcards are literal", TaskFilter(text="50% OFF_"), lambda v: v.task_key == "k00003"),
    ("text, lone underscore", TaskFilter(text="_"), lambda v: v.task_key == "k00003"),
    ("text in node values", TaskFilter(text="=sum(a1)"), lambda v: _note(v) == "=SUM(A1)"),
    (
        "combined",
        TaskFilter(status=[TaskStatus.IN_PROGRESS], tag="audit", assignee="c2"),
        lambda v: (
            v.status == TaskStatus.IN_PROGRESS
            and "audit" in v.tags
            and any(n.claim is not None and n.claim.holder == "c2" for n in v.nodes)
        ),
    ),
    ("no ids", TaskFilter(workflow_ids=[]), lambda v: False),
]


def _note(view: TaskView) -> Any:
    return _nodes(view)["label"].values.get("notes")


def test_filters(sessions: sessionmaker[Session], dataset: tuple[str, list[TaskView]]) -> None:
    name, views = dataset
    for what, criteria, expect in FILTERS:
        wanted = sorted(v.workflow_id for v in views if expect(v))
        assert wanted or what == "no ids", f"the dataset must exercise the filter: {what}"
        assert sorted(walk(sessions, name, criteria)) == wanted, what
    chosen = [views[5].workflow_id, views[77].workflow_id, "elsewhere/k1"]
    assert sorted(walk(sessions, name, TaskFilter(workflow_ids=chosen))) == sorted(chosen[:2])
    assert walk(sessions, "another-pipeline") == []


# --------------------------------------------------------------------------- sorting and pages


def _key(view: TaskView, field: SortField) -> Any:
    value = getattr(view, field.value)
    return value.value if isinstance(value, TaskStatus) else value


def test_sorting_and_keyset_pages_walk_every_row_once(
    sessions: sessionmaker[Session], dataset: tuple[str, list[TaskView]]
) -> None:
    name, views = dataset
    assert max(Counter(v.created_at for v in views).values()) == TIE  # ties are real
    assert sum(v.finished_at is None for v in views) > 0
    for field in SortField:
        for descending in (False, True):
            sort = Sort(field=field, descending=descending)
            # NULL sorts as the largest value; workflow_id breaks ties in the same direction.
            present = sorted(
                (v for v in views if _key(v, field) is not None),
                key=lambda v: (_key(v, field), v.workflow_id),
                reverse=descending,
            )
            missing = sorted(
                (v for v in views if _key(v, field) is None),
                key=lambda v: v.workflow_id,
                reverse=descending,
            )
            expected = missing + present if descending else present + missing
            # TIE tasks share each created_at: pages of 11 split groups of equal values.
            got = walk(sessions, name, sort=sort, limit=11)
            assert len(got) == len(set(got)) == N, sort
            assert got == [v.workflow_id for v in expected], sort


def test_keyset_pages_survive_inserts_and_deletes_between_pages(
    sessions: sessionmaker[Session], dataset: tuple[str, list[TaskView]]
) -> None:
    name, views = dataset
    order = [v.workflow_id for v in sorted(views, key=lambda v: (v.created_at, v.workflow_id))]
    with transaction(sessions) as session:
        first = page(session, name, limit=10)
    assert [r.workflow_id for r in first.rows] == order[:10]
    # The first page's rows vanish and an older task appears: the next page is unaffected.
    with transaction(sessions) as session:
        session.execute(delete(TaskRow).where(TaskRow.workflow_id.in_(order[:10])))
    late = views[0].model_copy(update={"workflow_id": f"{name}/late", "task_key": "late"})
    project_fast(sessions, [ProjectionBatch(view=late, events=[])])
    with transaction(sessions) as session:
        second = page(session, name, limit=10, after=first.next_cursor)
    assert [r.workflow_id for r in second.rows] == order[10:20]


def test_cursors_are_checked(
    sessions: sessionmaker[Session], dataset: tuple[str, list[TaskView]]
) -> None:
    name, _ = dataset
    with transaction(sessions) as session:
        first = page(session, name, sort=Sort.parse("-updated_at"), limit=3)
        assert first.next_cursor is not None
        with pytest.raises(InvalidCursor, match="made for sort '-updated_at'"):
            page(session, name, sort=Sort.parse("updated_at"), after=first.next_cursor)
        with pytest.raises(InvalidCursor, match="omit --after"):
            page(session, name, after="not-a-cursor!")
        # well-formed, but with values of the wrong type for the sort: refused, not sent to SQL
        forgeries: list[tuple[str, object]] = [
            ("task_key", 7),
            ("task_key", None),
            ("created_at", [1]),
            ("status", {}),
        ]
        for sort, value in forgeries:
            forged = base64.urlsafe_b64encode(
                json.dumps({"s": sort, "v": value, "w": f"{name}/x"}).encode()
            ).decode()
            with pytest.raises(InvalidCursor, match=f"cursor's {sort} value"):
                page(session, name, sort=Sort.parse(sort), after=forged)
    with pytest.raises(ValueError, match="cannot sort by 'colour'"):
        Sort.parse("colour")
    assert str(Sort.parse("-finished_at")) == "-finished_at"


# --------------------------------------------------------------------------- rows


def test_metadata_and_data_rows(
    sessions: sessionmaker[Session], dataset: tuple[str, list[TaskView]]
) -> None:
    name, views = dataset
    by_id = {v.workflow_id: v for v in views}
    at = datetime(2026, 3, 1, tzinfo=UTC)
    graded = [views[4].workflow_id, views[13].workflow_id]
    with transaction(sessions) as session:
        session.execute(
            insert(EvaluationResultRow),
            [
                _evaluation(graded[0], name, "fluency", 0.2, False, at),
                _evaluation(graded[0], name, "fluency", 0.9, True, at + timedelta(hours=1), "v2"),
                _evaluation(graded[1], name, "accuracy", 1.0, True, at),
            ],
        )
    with transaction(sessions) as session:
        columns = data_columns(session, name)
        assert columns.nodes == ["label", "check"]
        assert columns.field_names == [
            "label.text",
            "label.label",
            "label.notes",
            "check.confidence",
        ]
        assert columns.evaluations == [
            "eval.accuracy.score",
            "eval.accuracy.passed",
            "eval.fluency.score",
            "eval.fluency.passed",
        ]
        result = page(session, name, limit=N, with_data=True)
    assert len(result.rows) == N and result.next_cursor is None
    for row in result.rows:
        view = by_id[row.workflow_id]
        nodes = _nodes(view)
        assert row.status == view.status and row.task_key == view.task_key
        assert row.current_nodes == engine.current_nodes(view.nodes)
        assert row.assignees == engine.assignees(view.nodes)
        assert row.tags == view.tags and row.hold_reason == view.hold_reason
        assert (row.created_at, row.updated_at) == (view.created_at, view.updated_at)
        assert row.finished_at == view.finished_at
        assert row.node_statuses == {n.name: n.status for n in view.nodes}
        expected: dict[str, Any] = {"label.text": view.data["text"]}
        expected |= {f"label.{k}": v for k, v in nodes["label"].values.items()}
        expected |= {f"check.{k}": v for k, v in nodes["check"].values.items()}
        if row.workflow_id == graded[0]:
            expected |= {"eval.fluency.score": 0.9, "eval.fluency.passed": True}  # latest wins
        if row.workflow_id == graded[1]:
            expected |= {"eval.accuracy.score": 1.0, "eval.accuracy.passed": True}
        assert row.values == expected
    with transaction(sessions) as session:
        plain = page(session, name, limit=2)
    assert plain.rows[0].values is None


def _evaluation(
    workflow_id: str,
    pipeline: str,
    criterion: str,
    score: float,
    passed: bool,
    at: datetime,
    version: str = "v1",
) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "pipeline_name": pipeline,
        "node": "label",
        "criterion": criterion,
        "criterion_version": version,
        "target_fields": ["label"],
        "score": score,
        "passed": passed,
        "at": at,
    }


# --------------------------------------------------------------------------- task detail


def test_task_detail_nodes_and_timeline(
    sessions: sessionmaker[Session], dataset: tuple[str, list[TaskView]]
) -> None:
    name, views = dataset
    quarantined = next(v for v in views[:9] if v.status == TaskStatus.QUARANTINED)
    with transaction(sessions) as session:
        detail = task_detail(session, quarantined.workflow_id)
        with pytest.raises(TaskNotFound, match="no task 'nope/x'"):
            task_detail(session, "nope/x")
    assert detail.status == TaskStatus.QUARANTINED and detail.hold_reason
    assert [n.name for n in detail.nodes] == ["start", "label", "check", "end"]
    nodes = {n.name: n for n in detail.nodes}
    want = _nodes(quarantined)
    label, check = nodes["label"], nodes["check"]
    assert [f.name for f in label.fields] == ["text", "label", "notes"]
    assert [f.name for f in check.fields] == ["confidence"]
    assert label.values == want["label"].values and label.attempts == 2
    assert [s.kind for s in label.submissions] == ["submit", "submit"]
    assert [r.verdict for r in check.reviews] == ["fail", "fail"]
    assert check.status == NodeStatus.QUARANTINED
    assert check.last_review is not None and check.last_review.reason == "wrong label"
    assert (check.failures, check.total_failures) == (2, 2)
    # The timeline is every event, in order, with who and when.
    assert [e.seq for e in detail.timeline] == list(range(1, quarantined.seq + 1))
    assert [(e.kind, e.actor, e.message) for e in detail.timeline] == [
        (e.kind, e.actor, e.message) for e in quarantined.timeline
    ]
    assert name in detail.workflow_id


# --------------------------------------------------------------------------- command line


async def test_command_line(
    sessions: sessionmaker[Session],
    dataset: tuple[str, list[TaskView]],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    name, views = dataset
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", db_url)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="group", required=True))

    async def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(list(argv))
        code = await args.handler(args)
        return code, capsys.readouterr().out

    code, out = await run("explore", "counts", "--pipeline", name)
    assert code == 0 and out.startswith(f"{name}: ")
    assert "finished" in out.splitlines()[0] and "Quarantined" in out

    code, out = await run(
        "explore",
        "tasks",
        "--pipeline",
        name,
        "--status",
        "Finished",
        "--limit",
        "3",
        "--sort=-created_at",
    )
    finished = sorted(
        (v for v in views if v.status == TaskStatus.FINISHED),
        key=lambda v: (v.created_at, v.workflow_id),
        reverse=True,
    )
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["workflow_id", "status"] and "check" in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == [v.workflow_id for v in finished[:3]]
    cursor = lines[-1].split("--after ")[1]
    code, out = await run(
        "explore",
        "tasks",
        "--pipeline",
        name,
        "--status",
        "Finished",
        "--limit",
        "3",
        "--sort=-created_at",
        "--after",
        cursor,
        "--data",
    )
    lines = out.splitlines()
    assert "label.label" in lines[0] and "check.confidence" in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == [v.workflow_id for v in finished[3:6]]

    code, out = await run("explore", "task", views[8].workflow_id)
    assert code == 0 and "\nNodes\n" in out and "\nTimeline\n" in out
    assert "  label (subtask): " in out and "  check (review): " in out
    code, _ = await run("explore", "task", f"{name}/missing")
    assert code == 1

    out_file = tmp_path / "out.csv"
    code, out = await run(
        "export", "--pipeline", name, "--format", "csv", "--out", str(out_file), "--tag", "gold"
    )
    gold = [v for v in views if "gold" in v.tags]
    assert code == 0 and f"exported {len(gold)} task(s)" in out
    with out_file.open(newline="") as f:
        assert len(list(csv.reader(f))) == len(gold) + 1
