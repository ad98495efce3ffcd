"""Determinism guard: today's TaskWorkflow must replay histories recorded by earlier code.

``tests/histories/*.json`` were recorded by ``python -m tests.histories.record`` from a
release; a change that would break running tasks fails here (use ``workflow.patched``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.task import TaskWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_recorded_histories_exist() -> None:
    assert len(HISTORIES) >= 5, "record them with: python -m tests.histories.record"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[TaskWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
