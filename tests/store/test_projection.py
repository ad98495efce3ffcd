"""Projection batches applied to the store: duplicates, reordering and gaps cannot corrupt it."""

from __future__ import annotations

import random

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from conveyor.reconcile import diff_task, repair
from store.db import transaction
from store.models import NodeRow, ReviewRow, SubmissionRow, TaskRow, TaskTagRow, TimelineEventRow
from store.projection import apply_batch
from tests.support.pipelines import label_review
from tests.support.projection import T0, run_task, view_of
from workflows import engine
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    ProjectionBatch,
)


def apply_all(sessions: sessionmaker[Session], batches: list[ProjectionBatch]) -> None:
    for batch in batches:
        with transaction(sessions) as session:
            apply_batch(session, batch)


def test_in_order_batches_give_the_latest_snapshot(sessions: sessionmaker[Session]) -> None:
    batches = run_task(label_review(), "label-review/a")
    apply_all(sessions, batches)
    last = batches[-1].view
    with transaction(sessions) as session:
        assert diff_task(session, last) == []
        task = session.get(TaskRow, "label-review/a")
        assert task is not None
        assert task.status == "In Progress" and task.seq == last.seq
        assert task.current_nodes == ["check"] and task.tags == ["audit"]
        kinds = session.scalars(
            select(SubmissionRow.kind)
            .where(SubmissionRow.workflow_id == "label-review/a")
            .order_by(SubmissionRow.seq)
        ).all()
        assert kinds == ["draft", "submit", "submit"]
        review = session.scalars(select(ReviewRow)).one()
        assert (review.reviewer, review.verdict, review.reason) == ("bo", "fail", "no")
        check = session.get(NodeRow, ("label-review/a", "check"))
        assert check is not None and check.blocked_contributor == "ana"
        events = session.scalar(select(func.count()).select_from(TimelineEventRow))
        assert events == last.seq


def test_duplicates_and_reordering_change_nothing(sessions: sessionmaker[Session]) -> None:
    batches = run_task(label_review(), "label-review/b")
    shuffled = batches + batches[3:7] + batches[:2]
    random.Random(7).shuffle(shuffled)
    apply_all(sessions, shuffled)
    with transaction(sessions) as session:
        assert diff_task(session, batches[-1].view) == []
        assert session.scalar(select(func.count()).select_from(SubmissionRow)) == 3
        assert session.scalar(select(func.count()).select_from(TaskTagRow)) == 1


def test_an_older_batch_after_a_newer_one_is_ignored(sessions: sessionmaker[Session]) -> None:
    batches = run_task(label_review(), "label-review/c")
    apply_all(sessions, batches)
    apply_all(sessions, [batches[2], batches[0]])
    with transaction(sessions) as session:
        assert diff_task(session, batches[-1].view) == []


def test_reconcile_repairs_lost_batches_and_a_corrupt_seq(
    sessions: sessionmaker[Session],
) -> None:
    batches = run_task(label_review(), "label-review/d")
    apply_all(sessions, batches[:4])  # the rest never arrived
    last = batches[-1].view
    with transaction(sessions) as session:
        session.get(TaskRow, "label-review/d").seq = 10_000  # type: ignore[union-attr]
    with transaction(sessions) as session:
        problems = diff_task(session, last)
        assert any(p.startswith("status") or p.startswith("seq") for p in problems)
        assert any("timeline event(s) missing" in p for p in problems)
        repair(session, last)
    with transaction(sessions) as session:
        assert diff_task(session, last) == []


def test_a_task_with_hundreds_of_nodes(
    sessions: sessionmaker[Session],
) -> None:
    # start -> step0 .. step449 -> end
    steps = [f"step{i}" for i in range(450)]
    nodes: list[dict[str, object]] = [{"name": "start", "kind": "start", "next": [steps[0]]}]
    for i, step in enumerate(steps):
        nodes.append(
            {
                "name": step,
                "kind": "subtask",
                "fields": [{"name": f"answer{i}", "type": "short_text"}],
                "next": [steps[i + 1] if i + 1 < len(steps) else "end"],
            }
        )
    nodes.append({"name": "end", "kind": "end"})
    pipeline = validate_pipeline({"name": "long", "nodes": nodes})
    created = engine.start_task(pipeline, "long/1", {}, engine.Context(T0))
    batch = ProjectionBatch(
        view=view_of(created.state, "long/1"), events=created.events, pipeline=pipeline
    )
    apply_all(sessions, [batch])
    with transaction(sessions) as session:
        stored = dict(
            session.execute(
                select(NodeRow.node, NodeRow.status).where(NodeRow.workflow_id == "long/1")
            ).all()
        )
    assert len(stored) == len(pipeline.nodes) == 452
    assert stored == {name: node.status.value for name, node in created.state.nodes.items()}
