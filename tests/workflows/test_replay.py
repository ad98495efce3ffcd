"""Determinism guard: today's workflow code must replay histories recorded by earlier releases.

``tests/histories/**/*.json`` were recorded from releases (``python -m tests.histories.record``,
see VERSIONING.md); a change that would break running workflows fails here. The replayer knows
every workflow type the worker registers (taken from :func:`worker.build_worker` itself), so a
history of any of them can be added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio import workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.llm import LlmSettings
from worker import build_worker
from workflows.bulk_evaluate import BulkEvaluateWorkflow
from workflows.messages import TaskInput, TaskView
from workflows.pipeline import PipelineWorkflow
from workflows.task import TaskWorkflow

HISTORY_DIR = Path(__file__).parent.parent / "histories"
# The newest release's histories at the top, older releases' in <version>/ folders.
HISTORIES = sorted(HISTORY_DIR.rglob("*.json"))
HISTORY_IDS = [str(p.relative_to(HISTORY_DIR).with_suffix("")) for p in HISTORIES]


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def _workflow_type(path: Path) -> str:
    first = json.loads(path.read_text())["events"][0]
    return str(first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


def _name(cls: type) -> str:
    defn = workflow._Definition.must_from_class(cls)
    return str(defn.name)


@pytest.fixture(scope="module")
async def registered(client: Client, store_sessions: sessionmaker[Session]) -> Sequence[type]:
    """The workflow classes the production worker registers (never polls: it is not run)."""
    worker = build_worker(client, "replay-only", sessions=store_sessions, llm=LlmSettings())
    return list(worker.config()["workflows"])


async def _replay(workflows: Sequence[type], path: Path) -> None:
    replayer = Replayer(workflows=workflows, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(_history(path))


def test_recorded_histories_exist() -> None:
    assert len(HISTORIES) >= 5, "record them with: python -m tests.histories.record"


def test_the_replayer_knows_every_registered_workflow(registered: Sequence[type]) -> None:
    assert {TaskWorkflow, PipelineWorkflow, BulkEvaluateWorkflow} <= set(registered)


@pytest.mark.parametrize("path", HISTORIES, ids=HISTORY_IDS)
async def test_recorded_history_replays(path: Path, registered: Sequence[type]) -> None:
    names = {_name(cls) for cls in registered}
    assert _workflow_type(path) in names, (
        f"{path.name} is a {_workflow_type(path)} history, which the worker does not register; "
        "register the type in worker.build_worker or drop the history"
    )
    await _replay(registered, path)


# --- the guard itself -------------------------------------------------------------------------
# A history recorded before a change, replayed against changed code. Unsandboxed: the sandbox
# would re-import this test module; determinism is checked the same way either way.

GUARD_HISTORY = HISTORY_DIR / "finished.json"


@workflow.defn(name="TaskWorkflow", sandboxed=False)
class _TaskWorkflowWithExtraTimer(TaskWorkflow):
    """An unguarded change: a timer before anything else, so before the first activity."""

    @workflow.run
    async def run(self, input: TaskInput) -> TaskView:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)


@workflow.defn(name="TaskWorkflow", sandboxed=False)
class _TaskWorkflowWithPatchedTimer(TaskWorkflow):
    """The same change behind ``workflow.patched``, as VERSIONING.md prescribes."""

    @workflow.run
    async def run(self, input: TaskInput) -> TaskView:
        if workflow.patched("timer-before-start"):
            await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)


async def test_an_unguarded_change_fails_replay() -> None:
    with pytest.raises(workflow.NondeterminismError, match="Nondeterminism"):
        await _replay([_TaskWorkflowWithExtraTimer], GUARD_HISTORY)


async def test_the_same_change_behind_patched_replays() -> None:
    await _replay([TaskWorkflow], GUARD_HISTORY)
    await _replay([_TaskWorkflowWithPatchedTimer], GUARD_HISTORY)
