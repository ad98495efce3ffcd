"""Reads of a pipeline's tasks for the activities (store/tasks.py): counts, keyset pages, keys
already stored, and tasks' data with their nodes' values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.models import NodeRow, TaskRow
from store.tasks import (
    FinishedTask,
    NodeInput,
    count_not_paused,
    count_unfinished,
    existing_keys,
    finished_tasks,
    node_inputs,
    status_counts,
    sweep_page,
    task_seeds,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# (pipeline, key, status); workflow ids are "pipeline/key"
TASKS = [
    ("p", "a", "Finished"),
    ("p", "b", "In Progress"),
    ("p", "c", "Paused"),
    ("p", "d", "Finished"),
    ("p", "e", "Pending"),
    ("p", "f", "Finished"),
    ("q", "a", "In Progress"),
    ("q", "z", "Finished"),
]


def _task(pipeline: str, key: str, status: str, data: dict[str, Any]) -> TaskRow:
    return TaskRow(
        workflow_id=f"{pipeline}/{key}",
        pipeline_name=pipeline,
        pipeline_hash="h",
        task_key=key,
        status=status,
        data=data,
        current_nodes=[],
        assignees=[],
        tags=[],
        created_at=NOW,
        updated_at=NOW,
    )


def _node(workflow_id: str, node: str, values: dict[str, Any], **extra: Any) -> NodeRow:
    return NodeRow(
        workflow_id=workflow_id,
        node=node,
        pipeline_name=workflow_id.split("/")[0],
        status="Completed",
        values=values,
        draft={},
        **extra,
    )


@pytest.fixture
def stored(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(sessions) as session:
        for pipeline, key, status in TASKS:
            session.add(_task(pipeline, key, status, {"text": f"{pipeline}-{key}"}))
        session.flush()
        session.add(_node("p/a", "label", {"label": "pos", "text": "edited"}, submitted_at=NOW))
        session.add(_node("p/a", "check", {"ok": True}, last_review={"verdict": "pass"}))
        session.add(_node("p/b", "label", {}))
        session.add(_node("p/d", "label", {"label": "neg"}, submitted_at=NOW))
        session.add(_node("q/z", "label", {"label": "other"}, submitted_at=NOW))
    return sessions


def test_count_unfinished(stored: sessionmaker[Session]) -> None:
    with transaction(stored) as session:
        assert count_unfinished(session, "p") == 3
        assert count_unfinished(session, "q") == 1
        assert count_unfinished(session, "nobody") == 0


def test_status_counts(stored: sessionmaker[Session]) -> None:
    with transaction(stored) as session:
        assert status_counts(session, "p") == {
            "Finished": 3,
            "In Progress": 1,
            "Paused": 1,
            "Pending": 1,
        }
        assert status_counts(session, "nobody") == {}


def test_existing_keys_in_chunks(stored: sessionmaker[Session]) -> None:
    keys = ["a", "x", "c", "z", "f", "y", "e"]
    with transaction(stored) as session:
        assert existing_keys(session, "p", keys) == {"a", "c", "e", "f"}
        assert existing_keys(session, "p", keys, per_query=2) == {"a", "c", "e", "f"}
        assert existing_keys(session, "q", keys, per_query=1) == {"a", "z"}
        assert existing_keys(session, "p", []) == set()


def test_sweep_pages_and_the_tasks_left_to_pause(stored: sessionmaker[Session]) -> None:
    with transaction(stored) as session:
        assert sweep_page(session, "p", "pause", None, 10) == ["p/b", "p/e"]
        assert sweep_page(session, "p", "pause", None, 1) == ["p/b"]
        assert sweep_page(session, "p", "pause", "p/b", 1) == ["p/e"]
        assert sweep_page(session, "p", "pause", "p/e", 1) == []
        assert sweep_page(session, "p", "resume", None, 10) == ["p/c"]
        assert sweep_page(session, "p", "resume", "p/c", 10) == []
        assert count_not_paused(session, "p") == 2
        assert count_not_paused(session, "q") == 1
        assert count_not_paused(session, "nobody") == 0


def test_finished_tasks_with_their_node_values(stored: sessionmaker[Session]) -> None:
    with transaction(stored) as session:
        page = finished_tasks(session, "p", None, 2)
        rest = finished_tasks(session, "p", "p/d", 2)
        assert finished_tasks(session, "p", "p/f", 2) == []
    assert page == [
        FinishedTask(
            "p/a",
            "a",
            {
                "text": "edited",
                "label": "pos",
                "label.label": "pos",
                "label.text": "edited",
                "ok": True,
                "check.ok": True,
            },
        ),
        FinishedTask("p/d", "d", {"text": "p-d", "label": "neg", "label.label": "neg"}),
    ]
    assert rest == [FinishedTask("p/f", "f", {"text": "p-f"})]


def test_task_seeds_of_the_pipeline_only(stored: sessionmaker[Session]) -> None:
    with transaction(stored) as session:
        seeds = task_seeds(session, "p", ["p/a", "q/a", "p/missing", "p/e"])
        assert task_seeds(session, "p", []) == {}
    assert seeds == {"p/a": {"text": "p-a"}, "p/e": {"text": "p-e"}}


def test_node_inputs_say_which_nodes_have_a_submission(stored: sessionmaker[Session]) -> None:
    with transaction(stored) as session:
        nodes = node_inputs(session, ["p/a", "p/b", "p/e"])
        assert node_inputs(session, []) == []
    assert sorted(nodes, key=lambda n: (n.workflow_id, n.node)) == [
        NodeInput("p/a", "check", {"ok": True}, submitted=True),
        NodeInput("p/a", "label", {"label": "pos", "text": "edited"}, submitted=True),
        NodeInput("p/b", "label", {}, submitted=False),
    ]


def test_finished_tasks_carry_a_consensus_nodes_figures(sessions: sessionmaker[Session]) -> None:
    result = {"values": {"s": "a"}, "agreement": 0.5, "confidence": 0.5, "agreed": False}
    with transaction(sessions) as session:
        session.add(_task("c", "one", "Finished", {"text": "t"}))
        session.flush()
        session.add(
            _node(
                "c/one",
                "label",
                {"s": "a"},
                consensus={"needed": 3, "answers": [], "result": result | {"answers": 3}},
            )
        )
    with transaction(sessions) as session:
        [task] = finished_tasks(session, "c", None, 10)
    assert task.data == {
        "text": "t",
        "s": "a",
        "label.s": "a",
        "label.agreement": 0.5,
        "label.confidence": 0.5,
        "label.agreed": False,
        "label.answers": 3,
        "agreement": 0.5,
        "confidence": 0.5,
        "agreed": False,
        "answers": 3,
    }
