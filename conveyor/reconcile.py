"""``reconcile``: compare the store with the workflows (the truth) and repair drift.

For every task known to either side it first describes the workflow (cheap, and answered by the
server alone): a workflow that is gone is an orphan, and one whose workflow task keeps failing is
*stuck* — reported with when it started failing and the last error in its history, and never
queried, since a query to it would wait for a worker answer that cannot come. The others answer
the ``state`` query (within ``query_timeout``), and the store's task row, node rows, tags and
recent timeline events are compared with it. With ``fix`` it rewrites the store from the
workflow's view (forcing past the newer-only guard, since the store may hold a corrupt, higher
``seq``) and reports what it changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from conveyor.client import ConveyorClient
from store.db import transaction
from store.lazy import not_started
from store.projection import apply_batch, node_values, task_values
from store.reconciling import (
    lazily_created,
    stored_nodes,
    stored_tags,
    stored_task,
    stored_timeline_seqs,
    task_ids,
    unguard_task,
)
from store.repositories import get_pipeline_version
from workflows import engine
from workflows.messages import ProjectionBatch, TaskView
from workflows.task import TaskWorkflow

# Columns compared between store and workflow (the rest is derived or bookkeeping).
_TASK_COLUMNS = ("status", "seq", "data", "current_nodes", "assignees", "tags", "hold_reason")
_NODE_COLUMNS = (
    "status",
    "assignee",
    "claim_token",
    "values",
    "draft",
    "submitted_by",
    "attempts",
    "rework_reason",
    "rework_only",
    "rework_exclude",
    "passes",
    "failures",
    "total_failures",
    "consensus",
    "last_review",
    "error",
    "blocked_contributor",
)


@dataclass
class TaskDrift:
    workflow_id: str
    problems: list[str]
    fixed: bool = False


@dataclass
class StuckTask:
    """A running task whose workflow task keeps failing: no command or query can reach it until
    the cause (usually a bug or a bad input in its history) is fixed and a worker replays it."""

    workflow_id: str
    since: datetime | None
    """When the failing workflow task was first scheduled."""
    attempts: int
    last_error: str | None
    """The failure message of the latest ``WorkflowTaskFailed`` event in its history."""

    def describe(self) -> str:
        since = f"since {self.since:%Y-%m-%d %H:%M:%S} UTC" if self.since else "now"
        error = self.last_error or "no failure recorded in its history yet"
        return (
            f"{self.workflow_id} is stuck {since}: its workflow task failed "
            f"{self.attempts - 1} time(s); last error: {error}"
        )


@dataclass
class ReconcileReport:
    checked: int = 0
    drifted: list[TaskDrift] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    """Store rows whose workflow no longer exists."""
    stuck: list[StuckTask] = field(default_factory=list)
    """Running workflows failing their workflow tasks (not compared: they cannot answer)."""
    unanswered: list[str] = field(default_factory=list)
    """Running workflows that did not answer the ``state`` query in time (no worker?)."""
    untouched: int = 0
    """Tasks created lazily whose workflows have not started: their rows are the tasks (not
    compared, nothing to compare with)."""
    not_started: list[str] = field(default_factory=list)
    """Tasks created lazily whose start was sent but has no workflow yet (the sender stopped
    first): the next command to the task starts it. Not orphans."""

    @property
    def clean(self) -> bool:
        return not self.drifted and not self.orphans and not self.stuck and not self.unanswered


def _blocked(session: Session, view: TaskView) -> dict[str, str]:
    pipeline = get_pipeline_version(session, view.pipeline_hash)
    if pipeline is None:
        return {}
    return engine.self_review_blocked(pipeline, {n.name: n for n in view.nodes})


def diff_task(session: Session, view: TaskView) -> list[str]:
    """What the store has wrong about this task (empty when it matches the workflow)."""
    blocked = _blocked(session, view)
    row = stored_task(session, view.workflow_id)
    if row is None:
        return ["task row missing"]
    problems: list[str] = []
    want = task_values(view)
    for column in _TASK_COLUMNS:
        have = row[column]
        if _norm(have) != _norm(want[column]):
            problems.append(f"{column}: store {have!r}, workflow {want[column]!r}")
    nodes = stored_nodes(session, view.workflow_id)
    for node in view.nodes:
        stored = nodes.get(node.name)
        if stored is None:
            problems.append(f"node {node.name}: row missing")
            continue
        want_node = node_values(view, node, blocked.get(node.name))
        for column in _NODE_COLUMNS:
            have = stored[column]
            if _norm(have) != _norm(want_node[column]):
                problems.append(
                    f"node {node.name} {column}: store {have!r}, workflow {want_node[column]!r}"
                )
    tags = stored_tags(session, view.workflow_id)
    if tags != set(view.tags):
        problems.append(f"tags: store {sorted(tags)}, workflow {sorted(view.tags)}")
    seqs = stored_timeline_seqs(session, view.workflow_id)
    missing = [e.seq for e in view.timeline if e.seq not in seqs]
    if missing:
        problems.append(f"{len(missing)} timeline event(s) missing (seq {_ranges(missing)})")
    return problems


def repair(session: Session, view: TaskView) -> None:
    """Rewrite the store's picture of a task from the workflow's view."""
    # Force past the newer-only guard: the store's seq may be wrong too.
    unguard_task(session, view.workflow_id)
    pipeline = get_pipeline_version(session, view.pipeline_hash)
    nodes = {n.name: n for n in view.nodes}
    batch = ProjectionBatch(
        view=view,
        events=view.timeline,
        blocked=_blocked(session, view),
        people=engine.consensus_people(pipeline, nodes) if pipeline else {},
    )
    apply_batch(session, batch)


async def reconcile(
    conveyor: ConveyorClient,
    sessions: sessionmaker[Session],
    *,
    pipeline: str | None = None,
    fix: bool = False,
    concurrency: int = 20,
    progress: Callable[[int, int], None] | None = None,
    query_timeout: float = 10.0,
) -> ReconcileReport:
    """Check every task of ``pipeline`` (or all), optionally repairing what drifted.

    ``query_timeout``: seconds a healthy-looking running task has to answer its ``state``
    query; one that does not is reported in ``unanswered`` (usually no worker is running).
    """
    with transaction(sessions) as session:
        ids = task_ids(session, pipeline)
        untouched = sum(not_started(session, pipeline).values())
    async for workflow_id, _ in conveyor.list_tasks(pipeline=pipeline):
        ids.add(workflow_id)
    with transaction(sessions) as session:
        lazily = lazily_created(session, ids)
    report = ReconcileReport(untouched=untouched)
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def check(workflow_id: str) -> None:
        nonlocal done
        async with gate:
            view = await _read(conveyor, workflow_id, report, query_timeout, workflow_id in lazily)
            if view is not None:
                drift = await asyncio.to_thread(_check_one, sessions, view, fix)
                if drift is not None:
                    report.drifted.append(drift)
            report.checked += 1
            done += 1
            if progress:
                progress(done, len(ids))

    await asyncio.gather(*(check(i) for i in sorted(ids)))
    report.drifted.sort(key=lambda d: d.workflow_id)
    report.orphans.sort()
    report.stuck.sort(key=lambda t: t.workflow_id)
    report.unanswered.sort()
    report.not_started.sort()
    return report


async def _read(
    conveyor: ConveyorClient,
    workflow_id: str,
    report: ReconcileReport,
    query_timeout: float,
    lazy: bool = False,
) -> TaskView | None:
    """The task's view, or ``None`` with the reason recorded in ``report``."""
    task = conveyor.task(workflow_id)
    try:
        description = await task.handle.describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        (report.not_started if lazy else report.orphans).append(workflow_id)
        return None
    pending = description.raw_description.pending_workflow_task
    running = description.status == WorkflowExecutionStatus.RUNNING
    if running and pending.attempt > 1:
        report.stuck.append(await _stuck(conveyor, workflow_id, pending))
        return None
    try:
        return await task.handle.query(
            TaskWorkflow.state, rpc_timeout=timedelta(seconds=query_timeout)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            report.orphans.append(workflow_id)
        elif err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            report.unanswered.append(workflow_id)
        else:
            raise
        return None


async def stuck_task(conveyor: ConveyorClient, workflow_id: str) -> StuckTask | None:
    """The task's :class:`StuckTask` if its workflow runs but fails its workflow tasks (from
    ``describe``, which the server answers alone: no wait for a worker), else ``None``.

    Raises:
        RPCError: e.g. ``NOT_FOUND`` when the workflow does not exist.
    """
    description = await conveyor.task(workflow_id).handle.describe()
    pending = description.raw_description.pending_workflow_task
    if description.status == WorkflowExecutionStatus.RUNNING and pending.attempt > 1:
        return await _stuck(conveyor, workflow_id, pending)
    return None


async def _stuck(conveyor: ConveyorClient, workflow_id: str, pending: Any) -> StuckTask:
    """Describe a workflow failing its workflow task: since when, and the last error."""
    since = pending.original_scheduled_time
    if not (since.seconds or since.nanos):
        since = pending.scheduled_time
    last_error: str | None = None
    client = conveyor.client
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace, maximum_page_size=100
    )
    request.execution.workflow_id = workflow_id
    # Newest first: the latest failure is near the end of even a long history.
    for _ in range(20):
        page = await client.workflow_service.get_workflow_execution_history_reverse(request)
        for event in page.history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                last_error = event.workflow_task_failed_event_attributes.failure.message
                break
        if last_error is not None or not page.next_page_token:
            break
        request.next_page_token = page.next_page_token
    return StuckTask(
        workflow_id=workflow_id,
        since=since.ToDatetime() if since.seconds or since.nanos else None,
        attempts=pending.attempt,
        last_error=last_error,
    )


def _check_one(sessions: sessionmaker[Session], view: TaskView, fix: bool) -> TaskDrift | None:
    with transaction(sessions) as session:
        problems = diff_task(session, view)
        if not problems:
            return None
        drift = TaskDrift(view.workflow_id, problems)
        if fix:
            repair(session, view)
            drift.fixed = True
        return drift


def _norm(value: Any) -> Any:
    """Compare JSON-ish values the way the database stores them."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def _ranges(numbers: list[int]) -> str:
    numbers = sorted(numbers)
    out: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:]:
        if n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if start != prev else str(start))
        start = prev = n
    out.append(f"{start}-{prev}" if start != prev else str(start))
    return ", ".join(out)
