"""record_pipeline (store/repositories.py): what the pipeline workflow projects into the store."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.repositories import get_pipeline, get_pipeline_version, record_pipeline
from tests.support.pipelines import label_review
from workflows.pipeline_messages import PipelineProjection, PipelineStatus


def test_a_new_pipeline_without_a_version_gets_its_row(sessions: sessionmaker[Session]) -> None:
    projection = PipelineProjection(name="fresh", status=PipelineStatus.DRAFT, current=None)
    with transaction(sessions) as session:
        assert record_pipeline(session, projection) == 0
    with sessions() as session:
        info = get_pipeline(session, "fresh")
    assert info is not None
    assert (info.status, info.current_version) == (PipelineStatus.DRAFT, None)
    assert info.created_at == info.updated_at


def test_versions_are_stored_and_the_row_follows_the_projection(
    sessions: sessionmaker[Session],
) -> None:
    first = label_review()
    second = label_review(max_rereviews=1)
    assert first.content_hash() != second.content_hash()
    with transaction(sessions) as session:
        stored = record_pipeline(
            session,
            PipelineProjection(
                name=first.name, status=PipelineStatus.PAUSED, current=first, versions=[first]
            ),
        )
    assert stored == 1
    with sessions() as session:
        before = get_pipeline(session, first.name)
        assert get_pipeline_version(session, first.content_hash()) == first
    assert before is not None
    assert (before.status, before.current_version) == (PipelineStatus.PAUSED, first.content_hash())

    # the current definition is stored even when it is not among the new versions
    with transaction(sessions) as session:
        stored = record_pipeline(
            session,
            PipelineProjection(name=first.name, status=PipelineStatus.COMPLETED, current=second),
        )
    assert stored == 0
    with sessions() as session:
        after = get_pipeline(session, first.name)
        assert get_pipeline_version(session, second.content_hash()) == second
    assert after is not None
    assert (after.status, after.current_version) == (
        PipelineStatus.COMPLETED,
        second.content_hash(),
    )
    assert after.created_at == before.created_at
    assert after.updated_at >= before.updated_at
