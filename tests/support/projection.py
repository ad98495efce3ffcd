"""Projection batches made by driving a task through the engine, with no Temporal: for the
store's projection tests and ``bench/projection_batch.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows import engine
from workflows.graph import Pipeline
from workflows.messages import (
    Claim,
    Command,
    ProjectionBatch,
    Release,
    Review,
    SaveDraft,
    Submit,
    Tag,
    TaskState,
    TaskView,
    Verdict,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def view_of(state: TaskState, workflow_id: str) -> TaskView:
    return engine.task_view(state, workflow_id)


def run_task(pipeline: Pipeline, workflow_id: str) -> list[ProjectionBatch]:
    """Drive a task through rework and a pass; one batch per accepted command."""
    clock = iter(T0 + timedelta(minutes=i) for i in range(1000))
    created = engine.start_task(pipeline, workflow_id, {"text": "hi"}, engine.Context(next(clock)))
    state = created.state
    batches = [
        ProjectionBatch(
            view=view_of(state, workflow_id),
            events=created.events,
            pipeline=pipeline,
            blocked=engine.self_review_blocked(pipeline, state.nodes),
        )
    ]
    tokens: dict[str, str] = {}

    def send(command: Command) -> None:
        nonlocal state
        ctx = engine.Context(now=next(clock), token=f"tok-{len(batches)}")
        out = engine.apply(pipeline, state, command, ctx)
        assert out.accepted, out.result.message
        if out.result.token:
            tokens[out.result.node or ""] = out.result.token
        state = out.state
        batches.append(
            ProjectionBatch(
                view=view_of(state, workflow_id),
                events=out.events,
                blocked=engine.self_review_blocked(pipeline, state.nodes),
            )
        )

    def rid() -> str:
        return f"r{len(batches)}"

    send(Claim(request_id=rid(), contributor="ana", roles=["labeler"]))
    send(
        SaveDraft(
            request_id=rid(),
            contributor="ana",
            node="label",
            token=tokens["label"],
            values={"label": "neutral"},
        )
    )
    send(Release(request_id=rid(), contributor="ana", node="label", token=tokens["label"]))
    send(Claim(request_id=rid(), contributor="ana", roles=["labeler"]))
    send(
        Submit(
            request_id=rid(),
            contributor="ana",
            node="label",
            token=tokens["label"],
            values={"label": "positive", "notes": "=SUM(A1)"},
        )
    )
    send(Claim(request_id=rid(), contributor="bo", roles=["reviewer"]))
    send(
        Review(
            request_id=rid(),
            contributor="bo",
            node="check",
            token=tokens["check"],
            verdict=Verdict.FAIL,
            reason="no",
        )
    )
    send(Tag(request_id=rid(), by="root", tags=["audit"]))
    send(Claim(request_id=rid(), contributor="ana", roles=["labeler"]))
    send(
        Submit(
            request_id=rid(),
            contributor="ana",
            node="label",
            token=tokens["label"],
            values={"label": "negative"},
        )
    )
    return batches
