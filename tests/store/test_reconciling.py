"""What reconcile reads of a task's projection, and the seq it lowers (store/reconciling.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.projection import apply_batch, node_values, task_values
from store.reconciling import (
    stored_nodes,
    stored_tags,
    stored_task,
    stored_timeline_seqs,
    task_ids,
    unguard_task,
)
from tests.support.pipelines import label_review
from tests.support.projection import run_task
from workflows.messages import ProjectionBatch


def _project(sessions: sessionmaker[Session], batches: list[ProjectionBatch]) -> None:
    for batch in batches:
        with transaction(sessions) as session:
            apply_batch(session, batch)


def test_task_ids_all_or_of_one_pipeline(sessions: sessionmaker[Session]) -> None:
    _project(sessions, run_task(label_review(), "label-review/a")[:1])
    _project(sessions, run_task(label_review(), "label-review/b")[:1])
    _project(sessions, run_task(label_review(name="other"), "other/a")[:1])
    with transaction(sessions) as session:
        assert task_ids(session) == {"label-review/a", "label-review/b", "other/a"}
        assert task_ids(session, "label-review") == {"label-review/a", "label-review/b"}
        assert task_ids(session, "other") == {"other/a"}
        assert task_ids(session, "nothing") == set()


def test_a_projected_task_reads_back_as_written(sessions: sessionmaker[Session]) -> None:
    batches = run_task(label_review(), "label-review/a")
    _project(sessions, batches)
    view = batches[-1].view
    blocked = batches[-1].blocked
    with transaction(sessions) as session:
        task = stored_task(session, view.workflow_id)
        nodes = stored_nodes(session, view.workflow_id)
        tags = stored_tags(session, view.workflow_id)
        seqs = stored_timeline_seqs(session, view.workflow_id)
    assert task == task_values(view)
    assert set(nodes) == {n.name for n in view.nodes}
    for node in view.nodes:
        assert nodes[node.name] == node_values(view, node, blocked.get(node.name))
    assert tags == {"audit"}
    assert seqs == {e.seq for batch in batches for e in batch.events}
    assert seqs == set(range(1, view.seq + 1))


def test_an_unknown_task_has_no_rows(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        assert stored_task(session, "nope/1") is None
        assert stored_nodes(session, "nope/1") == {}
        assert stored_tags(session, "nope/1") == set()
        assert stored_timeline_seqs(session, "nope/1") == set()


def test_unguard_task_lowers_the_seq_of_that_task_only(sessions: sessionmaker[Session]) -> None:
    mine = run_task(label_review(), "label-review/a")
    other = run_task(label_review(), "label-review/b")
    _project(sessions, mine + other)
    with transaction(sessions) as session:
        unguard_task(session, "label-review/a")
    with transaction(sessions) as session:
        task = stored_task(session, "label-review/a")
        assert task is not None and task["seq"] == -1
        assert {n["seq"] for n in stored_nodes(session, "label-review/a").values()} == {-1}
        untouched = stored_task(session, "label-review/b")
        assert untouched is not None and untouched["seq"] == other[-1].view.seq
        assert {n["seq"] for n in stored_nodes(session, "label-review/b").values()} == {
            other[-1].view.seq
        }
    # The projection's newer-only guard now lets an older snapshot through.
    _project(sessions, mine[:1])
    with transaction(sessions) as session:
        task = stored_task(session, "label-review/a")
        assert task is not None and task["seq"] == mine[0].view.seq
