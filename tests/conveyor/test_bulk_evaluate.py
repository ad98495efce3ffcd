"""Bulk evaluation on SQLite and PostgreSQL, with real workers on the dev server.

The store is seeded with thousands of tasks in assorted states (``project_fast``); only tasks
whose ``label`` node has a submission can be evaluated, the others are skipped with a reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer, Worker

from activities.evaluate import JUDGE_ATTEMPTS, EvaluateActivities
from activities.llm import LlmSettings
from conveyor.bulk_evaluation import check_evaluators, evaluators_by_name, start_bulk_evaluation
from conveyor.cli.common import CliError
from conveyor.cli.evaluate import load_evaluator_file, register
from store.db import transaction
from store.explorer import TaskFilter, task_detail
from store.models import EvaluationResultRow, LlmCallRow
from store.repositories import ensure_pipeline_version, set_current_version
from tests.support.explorer_data import build_tasks, clone, pipeline_for, project_fast, rename
from worker import build_worker
from workflows.bulk_evaluate import BulkEvaluateWorkflow
from workflows.bulk_evaluate_messages import (
    BulkEvaluateInput,
    BulkEvaluateProgress,
    BulkState,
    ChunkResult,
    EvaluateChunk,
    NodeEvaluator,
)
from workflows.graph import EvaluatorKind, EvaluatorSpec, JudgeOutput, JudgeSpec, Pipeline
from workflows.messages import EvaluationKind, EvaluationRecord, JudgeRequest, ProjectionBatch
from workflows.options import BULK_EVALUATE_ACTIVITY

HAS_LABEL = NodeEvaluator(
    node="label",
    evaluator=EvaluatorSpec(
        name="has_label",
        kind=EvaluatorKind.REGEX,
        fields=["label"],
        pattern="^(positive|negative)$",
    ),
)
SHORT_TEXT = NodeEvaluator(
    node="label",
    evaluator=EvaluatorSpec(
        name="short_text", kind=EvaluatorKind.LENGTH, fields=["text"], max_length=18
    ),
)
JUDGE = NodeEvaluator(
    node="label",
    evaluator=EvaluatorSpec(
        name="fair_label",
        kind=EvaluatorKind.LLM_JUDGE,
        fields=["label"],
        judge=JudgeSpec(
            model="conveyor/offline",
            prompt="Is '{{ label }}' a fair label for: {{ text }}?",
            output=JudgeOutput.BOOLEAN,
        ),
    ),
)


# --------------------------------------------------------------------------- fixtures


class Seeded:
    """A fresh pipeline with ``n`` tasks in the store."""

    def __init__(self, batches: Sequence[ProjectionBatch]):
        self.pipeline = batches[0].view.pipeline
        self.ids = [b.view.workflow_id for b in batches]
        self.submitted = {
            b.view.workflow_id
            for b in batches
            if any(n.name == "label" and n.submitted_at is not None for n in b.view.nodes)
        }
        self.with_events = [b.view.workflow_id for b in batches if b.events]
        self.finished = [b.view.workflow_id for b in batches if b.view.status == "Finished"]


def seed(sessions: sessionmaker[Session], n: int) -> Seeded:
    """Nine tasks through the engine (one per scenario, with events) and clones of them."""
    name = f"eval-{uuid.uuid4().hex[:8]}"
    base = rename(build_tasks("bulk-evaluate-base", 9), name)
    batches = [*base, *(clone(base[i % 9], i, pad=0) for i in range(n - len(base)))]
    project_fast(sessions, batches)
    return Seeded(batches)


@pytest.fixture
def task_queue() -> str:
    return f"bulk-eval-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def worker(
    client: Client, sessions: sessionmaker[Session], task_queue: str
) -> AsyncIterator[Worker]:
    """The production worker (every workflow and activity) on a fresh task queue."""
    async with build_worker(client, task_queue, sessions=sessions, llm=LlmSettings()) as w:
        yield w


def slow_worker(
    client: Client, task_queue: str, sessions: sessionmaker[Session], delay: float
) -> Worker:
    """A worker whose chunks first wait ``delay`` seconds (the real activity, then)."""
    acts = EvaluateActivities(sessions, LlmSettings())

    @activity.defn(name=BULK_EVALUATE_ACTIVITY)
    async def evaluate_chunk(request: EvaluateChunk) -> ChunkResult:
        await asyncio.sleep(delay)
        return await acts.evaluate_chunk(request)

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BulkEvaluateWorkflow],
        activities=[acts.select_tasks, evaluate_chunk],
        graceful_shutdown_timeout=timedelta(0),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
    )


async def start(
    client: Client,
    task_queue: str,
    pipeline: str,
    evaluators: list[NodeEvaluator],
    *,
    criteria: TaskFilter | None = None,
    **options: Any,
) -> WorkflowHandle[Any, BulkEvaluateProgress]:
    request = BulkEvaluateInput(
        pipeline=pipeline,
        filter=(criteria or TaskFilter()).model_dump(mode="json", exclude_defaults=True),
        evaluators=evaluators,
        **options,
    )
    return await start_bulk_evaluation(
        client, task_queue, request, f"bulk-evaluate/{pipeline}/{uuid.uuid4().hex[:8]}"
    )


async def progress_reaches(
    handle: WorkflowHandle[Any, BulkEvaluateProgress], chunks: int, timeout: float = 30
) -> BulkEvaluateProgress:
    async with asyncio.timeout(timeout):
        while True:
            progress = await handle.query(BulkEvaluateWorkflow.progress)
            if progress.chunks_done >= chunks:
                return progress
            await asyncio.sleep(0.05)


def bulk_rows(sessions: sessionmaker[Session], pipeline: str) -> list[tuple[str, str, str, str]]:
    with transaction(sessions) as session:
        return [
            (r.workflow_id, r.node, r.criterion, r.criterion_version)
            for r in session.execute(
                select(
                    EvaluationResultRow.workflow_id,
                    EvaluationResultRow.node,
                    EvaluationResultRow.criterion,
                    EvaluationResultRow.criterion_version,
                ).where(
                    EvaluationResultRow.pipeline_name == pipeline,
                    EvaluationResultRow.source == "bulk",
                )
            )
        ]


async def replay(handle: WorkflowHandle[Any, BulkEvaluateProgress]) -> None:
    """The last run's history replays on the current code (the workflow is deterministic)."""
    replayer = Replayer(workflows=[BulkEvaluateWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await handle.fetch_history())


def assert_consistent(progress: BulkEvaluateProgress, evaluators: int) -> None:
    assert progress.evaluations_seen == progress.tasks_seen * evaluators
    assert progress.skipped_no_submission == sum(progress.skip_reasons.values())


# --------------------------------------------------------------------------- tests


async def test_survives_a_worker_restart_and_evaluates_each_task_once(
    client: Client, sessions: sessionmaker[Session], task_queue: str
) -> None:
    data = seed(sessions, 2500)
    evaluators = [HAS_LABEL, SHORT_TEXT]
    async with slow_worker(client, task_queue, sessions, delay=0.2):
        handle = await start(
            client,
            task_queue,
            data.pipeline,
            evaluators,
            chunk_size=50,
            concurrency=4,
            chunks_per_run=8,
        )
        before = await progress_reaches(handle, 10)
    # The first worker is gone mid-way, chunks in flight with it; a new one takes over.
    assert 0 < before.tasks_seen < len(data.ids)
    async with build_worker(client, task_queue, sessions=sessions, llm=LlmSettings()):
        async with asyncio.timeout(60):
            summary = await handle.result()

    assert summary.state == BulkState.FINISHED
    assert summary.runs > 1  # it continued-as-new, carrying cursor and counters
    await replay(handle)
    assert summary.tasks_total == summary.tasks_seen == len(data.ids)
    assert summary.chunks_done == len(data.ids) // 50
    assert summary.errors == 0 and summary.skipped_done == 0
    assert summary.evaluated == 2 * len(data.submitted)
    assert summary.skipped_no_submission == 2 * (len(data.ids) - len(data.submitted))
    assert summary.skip_reasons == {
        "label: not submitted yet": 2 * (len(data.ids) - len(data.submitted))
    }
    assert_consistent(summary, 2)

    rows = bulk_rows(sessions, data.pipeline)
    assert len(rows) == len(set(rows)) == summary.evaluated
    assert {r[0] for r in rows} == data.submitted
    per_criterion = {c: sum(1 for r in rows if r[2] == c) for c in ("has_label", "short_text")}
    assert per_criterion == {"has_label": len(data.submitted), "short_text": len(data.submitted)}


async def test_idempotent_per_criterion_version(
    client: Client, sessions: sessionmaker[Session], task_queue: str, worker: Worker
) -> None:
    data = seed(sessions, 300)
    first = await (await start(client, task_queue, data.pipeline, [HAS_LABEL])).result()
    assert first.evaluated == len(data.submitted)

    # The same evaluator version again: everything is already done.
    again = await (await start(client, task_queue, data.pipeline, [HAS_LABEL])).result()
    assert (again.evaluated, again.skipped_done) == (0, len(data.submitted))
    assert_consistent(again, 1)

    # A changed evaluator is a new version: every task is evaluated again, the old rows stay.
    changed = HAS_LABEL.model_copy(
        update={"evaluator": HAS_LABEL.evaluator.model_copy(update={"pattern": "^positive$"})}
    )
    assert changed.evaluator.version != HAS_LABEL.evaluator.version
    third = await (await start(client, task_queue, data.pipeline, [changed, HAS_LABEL])).result()
    assert (third.evaluated, third.skipped_done) == (len(data.submitted), len(data.submitted))
    rows = bulk_rows(sessions, data.pipeline)
    assert len(rows) == len(set(rows)) == 2 * len(data.submitted)
    with transaction(sessions) as session:
        passed = session.scalar(
            select(func.count()).where(
                EvaluationResultRow.pipeline_name == data.pipeline,
                EvaluationResultRow.criterion_version == changed.evaluator.version,
                EvaluationResultRow.passed.is_(True),
            )
        )
    assert 0 < (passed or 0) < len(data.submitted)


async def test_cancel_stops_with_a_cancelled_summary(
    client: Client, sessions: sessionmaker[Session], task_queue: str
) -> None:
    data = seed(sessions, 400)
    async with slow_worker(client, task_queue, sessions, delay=0.3):
        handle = await start(
            client, task_queue, data.pipeline, [HAS_LABEL], chunk_size=10, concurrency=2
        )
        await progress_reaches(handle, 2)
        await handle.cancel()
        async with asyncio.timeout(20):
            summary = await handle.result()
    assert summary.state == BulkState.CANCELLED and summary.finished_at is not None
    await replay(handle)
    assert 2 <= summary.chunks_done < 40 and summary.chunks_running == 0
    assert summary.tasks_seen == 10 * summary.chunks_done < len(data.ids)
    assert_consistent(summary, 1)
    # Chunks running at the cancellation finished: every count is backed by a row.
    assert len(bulk_rows(sessions, data.pipeline)) == summary.evaluated > 0


async def test_explicit_ids_judges_and_the_task_timeline(
    client: Client, sessions: sessionmaker[Session], task_queue: str, worker: Worker
) -> None:
    data = seed(sessions, 40)
    other = seed(sessions, 9)
    chosen = [*data.with_events, *data.ids[20:25]]
    ids = [*chosen, f"{data.pipeline}/missing", other.ids[4]]
    handle = await start(
        client,
        task_queue,
        data.pipeline,
        [HAS_LABEL, JUDGE],
        criteria=TaskFilter(workflow_ids=ids),
    )
    summary = await handle.result()
    judged = [i for i in chosen if i in data.submitted]
    assert (summary.tasks_total, summary.tasks_seen, summary.tasks_not_found) == (
        len(chosen),
        len(chosen),
        2,
    )
    assert summary.evaluated == 2 * len(judged) and summary.errors == 0
    rows = bulk_rows(sessions, data.pipeline)
    assert {r[0] for r in rows} == set(judged)
    assert bulk_rows(sessions, other.pipeline) == []

    with transaction(sessions) as session:
        kinds = {
            criterion: actor
            for criterion, actor in session.execute(
                select(EvaluationResultRow.criterion, EvaluationResultRow.actor).where(
                    EvaluationResultRow.pipeline_name == data.pipeline
                )
            )
        }
        calls = session.scalar(
            select(func.count()).where(
                LlmCallRow.workflow_id.in_(judged), LlmCallRow.purpose == "judge"
            )
        )
        finished = next(i for i in data.with_events if i in data.submitted)
        detail = task_detail(session, finished)
    assert kinds == {"has_label": None, "fair_label": "llm:conveyor/offline"}
    assert calls == len(judged)

    # The results show in the task's timeline, after the task's own events, in time order.
    bulk = [e for e in detail.timeline if e.data.get("source") == "bulk"]
    assert sorted(e.data["criterion"] for e in bulk) == ["fair_label", "has_label"]
    assert all(e.kind == "evaluated" and e.seq == 0 and e.node == "label" for e in bulk)
    assert detail.timeline[-2:] == bulk
    assert [e.at for e in detail.timeline] == sorted(e.at for e in detail.timeline)
    assert [e.seq for e in detail.timeline if e.seq] == list(range(1, len(detail.timeline) - 1))
    assert any("has_label on label: " in e.message for e in bulk)


async def test_chunk_records_judge_failures_and_retries_nothing_twice(
    sessions: sessionmaker[Session],
) -> None:
    data = seed(sessions, 27)
    calls: list[str] = []

    async def judge(request: JudgeRequest, attempt: int) -> EvaluationRecord:
        calls.append(request.workflow_id)
        if request.workflow_id.endswith("3"):  # a broken template: recorded with its error
            raise ApplicationError("bad template", type="InvalidPromptTemplate", non_retryable=True)
        if request.workflow_id.endswith("4"):  # the provider keeps failing: nothing written
            raise ApplicationError(
                "rate limited", type="RateLimitError", next_retry_delay=timedelta(milliseconds=1)
            )
        return EvaluationRecord(
            criterion=request.evaluator.name,
            version=request.evaluator.version,
            kind=EvaluationKind.LLM_JUDGE,
            evaluator="llm_judge",
            node=request.node,
            fields=request.evaluator.fields,
            score=1.0,
            passed=True,
            actor="llm:fake",
        )

    acts = EvaluateActivities(sessions, judge=judge)
    chunk = EvaluateChunk(
        pipeline=data.pipeline,
        workflow_ids=[*data.ids, f"{data.pipeline}/gone"],
        evaluators=[JUDGE, HAS_LABEL],
    )
    env = ActivityEnvironment()
    first = await env.run(acts.evaluate_chunk, chunk)
    judged = sorted(data.submitted)
    broken = [i for i in judged if i.endswith("3")]
    failing = [i for i in judged if i.endswith("4")]
    assert broken and failing
    assert first.tasks == len(data.ids) + 1
    assert first.errors == len(failing) and len(first.error_messages) == min(5, len(failing))
    assert first.evaluated == 2 * len(judged) - len(failing)
    assert first.evaluated_with_error == len(broken)
    assert first.skip_reasons["label: the task is no longer in the store"] == 2
    assert calls.count(failing[0]) == JUDGE_ATTEMPTS

    calls.clear()
    second = await env.run(acts.evaluate_chunk, chunk)
    assert second.evaluated == 0 and second.errors == len(failing)
    assert second.skipped_done == 2 * len(judged) - len(failing)
    assert sorted(set(calls)) == failing  # only what has no result is judged again


# --------------------------------------------------------------------------- command line


def with_evaluators(pipeline: Pipeline, *evaluators: NodeEvaluator) -> Pipeline:
    raw = pipeline.model_dump(mode="json")
    for node in raw["nodes"]:
        node["evaluators"] += [
            e.evaluator.model_dump(mode="json") for e in evaluators if e.node == node["name"]
        ]
    return Pipeline.model_validate(raw)


def test_evaluators_by_name_and_from_a_file(tmp_path: Path) -> None:
    pipeline = with_evaluators(pipeline_for("cli-eval"), HAS_LABEL)
    assert evaluators_by_name(pipeline, ["label.has_label"]) == [HAS_LABEL]
    with pytest.raises(CliError, match=r"'label.nope'.*one of: label.has_label"):
        evaluators_by_name(pipeline, ["label.nope"])

    good = tmp_path / "good.yaml"
    good.write_text(
        "- node: label\n"
        "  evaluator: {name: short_text, kind: length, fields: [text], max_length: 18}\n"
    )
    assert load_evaluator_file(good) == [SHORT_TEXT]
    check_evaluators(pipeline, [SHORT_TEXT])

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- node: label\n"
        "  evaluator: {name: x, kind: regexp, fields: [label]}\n"
        "- evaluator: {name: y, kind: regex, fields: [label], pattern: a}\n"
    )
    with pytest.raises(CliError) as err:
        load_evaluator_file(bad)
    text = str(err.value)
    assert "2 problem(s)" in text
    assert "entry 1 (node 'label'): evaluator.kind:" in text and "entry 2: node:" in text

    wrong = [
        NodeEvaluator(node="lable", evaluator=HAS_LABEL.evaluator),
        NodeEvaluator(node="start", evaluator=HAS_LABEL.evaluator),
    ]
    with pytest.raises(CliError) as err:
        check_evaluators(pipeline, wrong)
    assert "node 'lable' is not in pipeline" in str(err.value)
    assert "node 'start' is a start node" in str(err.value)
    unknown_field = NodeEvaluator(
        node="label", evaluator=HAS_LABEL.evaluator.model_copy(update={"fields": ["lable"]})
    )
    with pytest.raises(CliError, match="'lable', which is not a field"):
        check_evaluators(pipeline, [unknown_field])


async def test_command_line(
    client: Client,
    sessions: sessionmaker[Session],
    db_url: str,
    task_queue: str,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    data = seed(sessions, 60)
    with transaction(sessions) as session:
        current = with_evaluators(pipeline_for(data.pipeline), HAS_LABEL)
        ensure_pipeline_version(session, current)
        set_current_version(session, data.pipeline, current.content_hash())
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", db_url)
    monkeypatch.setenv("CONVEYOR_TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setenv("CONVEYOR_TASK_QUEUE", task_queue)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="group", required=True))

    async def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(list(argv))
        code = await args.handler(args)
        return code, capsys.readouterr().out

    wid = f"bulk-evaluate/{data.pipeline}/cli"
    code, out = await run(
        "evaluate", "start", "--pipeline", data.pipeline, "--evaluator", "label.has_label",
        "--status", "Finished", "--id", wid, "--wait", "--json",
    )  # fmt: skip
    summary = json.loads(out)
    assert code == 0 and summary["workflow_id"] == wid and summary["state"] == "finished"
    finished = len(data.finished)
    assert summary["tasks_seen"] == finished == summary["evaluated"]

    code, out = await run("evaluate", "status", wid)
    assert code == 0 and out.startswith(f"{wid}: {finished} / {finished} tasks (finished)")

    evaluators = tmp_path / "evaluators.json"
    evaluators.write_text(json.dumps([SHORT_TEXT.model_dump(mode="json")]))
    code, out = await run(
        "evaluate", "start", "--pipeline", data.pipeline, "--file", str(evaluators), "--ids",
        *data.ids[:5], "--id", wid, "--wait",
    )  # fmt: skip
    assert code == 0 and "5 / 5 tasks (finished)" in out

    with pytest.raises(CliError, match=r"no evaluator 'label\.nope'"):
        await run("evaluate", "start", "--pipeline", data.pipeline, "--evaluator", "label.nope")
    with pytest.raises(CliError, match="not in the store"):
        await run("evaluate", "start", "--pipeline", "nope", "--evaluator", "label.has_label")
    with pytest.raises(CliError, match="no bulk evaluation"):
        await run("evaluate", "status", "bulk-evaluate/nope")
