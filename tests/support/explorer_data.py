"""Many tasks, fast: driven through the pure engine and written as projection rows.

``build_tasks`` drives each task through the engine (every state but Failed, rework, tags,
formula-looking values, LIKE wildcards) and returns its final :class:`ProjectionBatch`.
``project`` writes them with ``store.projection.apply_batch`` (full fidelity: events,
submissions, reviews); ``project_fast`` writes the same task / node / tag / event rows with one
executemany per table, since ``apply_batch`` compiles its multi-row statements anew for each
task (~20 ms a task), too slow for thousands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.models import NodeRow, TaskRow, TaskTagRow, TimelineEventRow
from store.projection import apply_batch, node_values, task_values
from store.repositories import ensure_pipeline_version
from tests.support.pipelines import label_review
from workflows import engine
from workflows.graph import Pipeline
from workflows.messages import (
    Claim,
    Command,
    Escalate,
    Pause,
    ProjectionBatch,
    Review,
    Submit,
    Tag,
    TaskState,
    TaskView,
    Verdict,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIE = 7
"""Tasks are created in groups of this many with the same ``created_at`` (sort ties)."""

NOTES = ["=SUM(A1)", "+1", "-2", "@cmd", "\tTab", "\rCR", "plain", "100 percent"]


def view_of(state: TaskState, workflow_id: str) -> TaskView:
    return engine.task_view(state, workflow_id)


@dataclass
class _Driver:
    pipeline: Pipeline
    state: TaskState
    now: datetime
    events: list[Any]
    n: int = 0

    def send(self, command: Command) -> str | None:
        self.n += 1
        self.now += timedelta(seconds=1)
        ctx = engine.Context(now=self.now, token=f"tok-{self.n}")
        out = engine.apply(self.pipeline, self.state, command, ctx)
        assert out.accepted, out.result.message
        self.state = out.state
        self.events += out.events
        return out.result.token


def scenario(i: int) -> str:
    return [
        "pending",
        "available",
        "claimed",
        "submitted",
        "finished",
        "rework",
        "paused",
        "escalated",
        "quarantined",
    ][i % 9]


def pipeline_for(name: str) -> Pipeline:
    confidence = {"name": "confidence", "type": "rating", "min": 1, "max": 5, "required": False}
    return label_review(name=name, max_rereviews=1, fields=[confidence])


def build_task(pipeline: Pipeline, i: int) -> ProjectionBatch:
    """Task ``k{i:05d}`` of ``pipeline`` in scenario ``scenario(i)``."""
    key = f"k{i:05d}"
    workflow_id = f"{pipeline.name}/{key}"
    kind = scenario(i)
    created = T0 + timedelta(minutes=i // TIE)
    text = "50% off_sale" if i == 3 else "50x offXsale" if i == 12 else f"Text number {i}"
    start = engine.start_task(
        pipeline, key, {"text": text}, engine.Context(created), start_pending=kind == "pending"
    )
    d = _Driver(pipeline, start.state, created, list(start.events))
    who, reviewer = f"c{(i // 9) % 3}", f"r{i % 2}"

    def rid() -> str:
        return f"{key}-{d.n}"

    def label() -> None:
        token = d.send(Claim(request_id=rid(), contributor=who, roles=["labeler"], node="label"))
        values: dict[str, Any] = {"label": ["positive", "negative", "neutral"][i % 3]}
        if i % 2 == 0:
            values["notes"] = NOTES[(i // 2) % len(NOTES)]
        d.send(
            Submit(
                request_id=rid(), contributor=who, node="label", token=token or "", values=values
            )
        )

    def review(verdict: Verdict) -> None:
        token = d.send(
            Claim(request_id=rid(), contributor=reviewer, roles=["reviewer"], node="check")
        )
        d.send(
            Review(
                request_id=rid(),
                contributor=reviewer,
                node="check",
                token=token or "",
                verdict=verdict,
                reason=None if verdict == Verdict.PASS else "wrong label",
                values={"confidence": i % 5 + 1} if verdict == Verdict.PASS else {},
            )
        )

    if kind == "claimed":
        d.send(Claim(request_id=rid(), contributor=who, roles=["labeler"], node="label"))
    elif kind == "submitted":
        label()
    elif kind == "finished":
        label()
        review(Verdict.PASS)
    elif kind == "rework":
        label()
        review(Verdict.FAIL)
    elif kind == "paused":
        d.send(Pause(request_id=rid(), by="admin", reason="hold on"))
    elif kind == "escalated":
        d.send(Escalate(request_id=rid(), admin="admin", reason="look at this"))
    elif kind == "quarantined":
        for _ in range(2):
            label()
            review(Verdict.FAIL)
    if i % 5 == 0:
        d.send(
            Tag(request_id=rid(), by="admin", tags=["audit", "gold"] if i % 10 == 0 else ["audit"])
        )
    return ProjectionBatch(
        view=view_of(d.state, workflow_id),
        events=d.events,
        pipeline=pipeline,
        blocked=engine.self_review_blocked(pipeline, d.state.nodes),
    )


@cache
def build_tasks(name: str, n: int) -> tuple[ProjectionBatch, ...]:
    pipeline = pipeline_for(name)
    return tuple(build_task(pipeline, i) for i in range(n))


def project(sessions: sessionmaker[Session], batches: Sequence[ProjectionBatch]) -> None:
    """Write batches exactly as the workers do (``apply_batch``)."""
    with transaction(sessions) as session:
        for batch in batches:
            apply_batch(session, batch)


def project_fast(
    sessions: sessionmaker[Session], batches: Sequence[ProjectionBatch], *, events: bool = True
) -> None:
    """The same task, node, tag and timeline rows as ``apply_batch``, one executemany each."""
    with transaction(sessions) as session:
        for pipeline in {
            b.pipeline.content_hash(): b.pipeline for b in batches if b.pipeline
        }.values():
            ensure_pipeline_version(session, pipeline)
        for start in range(0, len(batches), 2000):
            _insert(session, batches[start : start + 2000], events)


def _insert(session: Session, batches: Sequence[ProjectionBatch], events: bool) -> None:
    session.execute(insert(_table(TaskRow)), [task_values(b.view) for b in batches])
    session.execute(
        insert(_table(NodeRow)),
        [node_values(b.view, n, b.blocked.get(n.name)) for b in batches for n in b.view.nodes],
    )
    tags = [{"workflow_id": b.view.workflow_id, "tag": t} for b in batches for t in b.view.tags]
    if tags:
        session.execute(insert(_table(TaskTagRow)), tags)
    rows = [
        {
            "workflow_id": b.view.workflow_id,
            "seq": e.seq,
            "at": e.at,
            "kind": e.kind,
            "actor": e.actor,
            "node": e.node,
            "message": e.message,
            "data": e.data,
        }
        for b in batches
        for e in b.events
    ]
    if events and rows:
        session.execute(insert(_table(TimelineEventRow)), rows)


def rename(batches: Sequence[ProjectionBatch], name: str) -> list[ProjectionBatch]:
    """The same tasks under another pipeline name (a fresh pipeline per test)."""
    first = batches[0].pipeline
    assert first is not None
    pipeline = first.model_copy(update={"name": name})
    content_hash = pipeline.content_hash()
    out = []
    for batch in batches:
        view = batch.view.model_copy(
            update={
                "workflow_id": f"{name}/{batch.view.task_key}",
                "pipeline": name,
                "pipeline_hash": content_hash,
            }
        )
        out.append(batch.model_copy(update={"view": view, "pipeline": pipeline}))
    return out


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def clone(batch: ProjectionBatch, i: int, pad: int = 200) -> ProjectionBatch:
    """A copy of ``batch`` as another task (key ``x{i:06d}``), for volume tests."""
    view = batch.view
    key = f"x{i:06d}"
    return ProjectionBatch(
        view=view.model_copy(
            update={
                "workflow_id": f"{view.pipeline}/{key}",
                "task_key": key,
                "created_at": view.created_at + timedelta(seconds=i),
                "data": {"text": f"{view.data.get('text')} copy {i} " + "x" * pad},
            }
        ),
        events=[],
        pipeline=None,
        blocked=batch.blocked,
    )
