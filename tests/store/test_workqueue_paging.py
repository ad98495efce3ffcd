"""The work queue page by page (``store.workqueue.claimable`` after a position), as the web app's
Available tab reads it, and the seq the pages wait for after an action."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.projection import apply_batch
from store.workqueue import QueuePosition, WorkItem, claimable, projected_seq
from tests.support.pipelines import label_review
from tests.support.projection import T0, run_task, view_of
from workflows import engine
from workflows.messages import ProjectionBatch

PIPELINE = label_review()


def _create(sessions: sessionmaker[Session], workflow_id: str, minute: int) -> None:
    """A new task whose ``label`` node became Available at ``T0 + minute``."""
    created = engine.start_task(
        PIPELINE, workflow_id, {"text": "hi"}, engine.Context(T0 + timedelta(minutes=minute))
    )
    batch = ProjectionBatch(
        view=view_of(created.state, workflow_id), events=created.events, pipeline=PIPELINE
    )
    with transaction(sessions) as session:
        apply_batch(session, batch)


def _position(item: WorkItem) -> QueuePosition:
    assert item.available_since is not None
    return (item.available_since, item.workflow_id, item.node)


def test_claimable_page_walks_the_queue_after_a_position(
    sessions: sessionmaker[Session],
) -> None:
    # Two ties at minute 0 and at minute 2: the workflow id orders them.
    for workflow_id, minute in [
        ("label-review/e", 2),
        ("label-review/b", 0),
        ("label-review/d", 2),
        ("label-review/c", 1),
        ("label-review/a", 0),
    ]:
        _create(sessions, workflow_id, minute)
    expected = ["label-review/a", "label-review/b", "label-review/c", "label-review/d"]
    expected.append("label-review/e")
    with transaction(sessions) as session:
        everything = claimable(session, "ana", ["labeler"], pipeline=PIPELINE.name)
        assert [i.workflow_id for i in everything] == expected
        assert {(i.node, i.status, i.pipeline) for i in everything} == {
            ("label", "Available", PIPELINE.name)
        }
        assert [i.available_since for i in everything] == [
            T0 + timedelta(minutes=m) for m in (0, 0, 1, 2, 2)
        ]

        pages: list[list[WorkItem]] = []
        after: QueuePosition | None = None
        while True:
            page = claimable(
                session, "ana", ["labeler"], pipeline=PIPELINE.name, after=after, limit=2
            )
            if not page:
                break
            pages.append(page)
            after = _position(page[-1])
        assert [[i.workflow_id for i in page] for page in pages] == [
            expected[:2],
            expected[2:4],
            expected[4:],
        ]
        assert [i for page in pages for i in page] == everything

        # Without a position it is the first page; the queue's filters still apply.
        first = claimable(session, "ana", ["labeler"], limit=3)
        assert first == everything[:3]
        assert claimable(session, "bo", ["reviewer"], limit=10) == []
        assert claimable(session, "ana", ["labeler"], pipeline="other", limit=10) == []


def test_projected_seq_is_the_stored_seq_or_zero(sessions: sessionmaker[Session]) -> None:
    batches = run_task(PIPELINE, "label-review/a")
    with transaction(sessions) as session:
        assert projected_seq(session, "label-review/a") == 0
    for batch in batches[:3]:
        with transaction(sessions) as session:
            apply_batch(session, batch)
    with transaction(sessions) as session:
        assert projected_seq(session, "label-review/a") == batches[2].view.seq
        assert projected_seq(session, "nope/1") == 0
