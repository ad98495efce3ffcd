"""Repositories: contributors and pipeline versions; they never commit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.models import PipelineRow, PipelineVersionRow
from store.repositories import (
    PipelineNotFound,
    ensure_pipeline_version,
    get_contributor,
    get_pipeline,
    get_pipeline_version,
    list_contributors,
    list_pipelines,
    set_current_version,
    set_pipeline_status,
    upsert_contributor,
)
from store.schemas import Contributor, PipelineStatus
from tests.support.pipelines import label_review
from workflows.graph import Pipeline


def _count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# --- contributors ---------------------------------------------------------------------------


def test_upsert_contributor_creates_then_replaces_roles(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        created = upsert_contributor(session, "ada", ["reviewer", "labeler", "labeler"])
    assert isinstance(created, Contributor)
    assert created.roles == ["labeler", "reviewer"]
    assert created.created_at.tzinfo is not None

    with transaction(sessions) as session:
        updated = upsert_contributor(session, "ada", ["admin"])
    assert updated.roles == ["admin"]
    assert updated.created_at == created.created_at
    assert updated.updated_at >= created.updated_at

    with sessions() as session:
        assert get_contributor(session, "ada") == updated
        assert get_contributor(session, "nobody") is None


def test_list_contributors_by_name_and_role(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        upsert_contributor(session, "grace", ["reviewer"])
        upsert_contributor(session, "ada", ["labeler", "reviewer"])
        upsert_contributor(session, "linus", ["labeler"])
    with sessions() as session:
        assert [c.name for c in list_contributors(session)] == ["ada", "grace", "linus"]
        assert [c.name for c in list_contributors(session, "reviewer")] == ["ada", "grace"]
        assert list_contributors(session, "admin") == []


# --- pipelines ------------------------------------------------------------------------------


def test_ensure_pipeline_version_is_idempotent(sessions: sessionmaker[Session]) -> None:
    pipeline = label_review()
    with transaction(sessions) as session:
        assert ensure_pipeline_version(session, pipeline) is True
    with transaction(sessions) as session:
        assert ensure_pipeline_version(session, pipeline) is False
        assert ensure_pipeline_version(session, pipeline) is False
    assert _count(sessions, PipelineRow) == 1
    assert _count(sessions, PipelineVersionRow) == 1

    with sessions() as session:
        info = get_pipeline(session, pipeline.name)
        stored = get_pipeline_version(session, pipeline.content_hash())
        assert get_pipeline_version(session, "0" * 64) is None
    assert info is not None
    assert info.status == PipelineStatus.ACTIVE
    assert info.current_version == pipeline.content_hash()
    assert stored == pipeline
    assert stored is not None and stored.content_hash() == pipeline.content_hash()


def test_a_new_definition_is_a_new_version(sessions: sessionmaker[Session]) -> None:
    v1 = label_review()
    v2 = label_review(max_rereviews=5)
    assert v1.content_hash() != v2.content_hash()
    with transaction(sessions) as session:
        assert ensure_pipeline_version(session, v1)
        assert ensure_pipeline_version(session, v2)
    with sessions() as session:
        assert get_pipeline_version(session, v1.content_hash()) == v1
        assert get_pipeline_version(session, v2.content_hash()) == v2
        info = get_pipeline(session, v1.name)
    assert info is not None and info.current_version == v1.content_hash()  # until moved
    with transaction(sessions) as session:
        moved = set_current_version(session, v1.name, v2.content_hash())
    assert moved.current_version == v2.content_hash()


def test_ensure_pipeline_version_under_concurrency(sessions: sessionmaker[Session]) -> None:
    pipelines = [label_review(f"concurrent-{i}") for i in range(4)]
    writers = 4
    # SQLite: a process's transactions take turns (store.db), so they start together instead
    one_at_a_time = sessions.kw["bind"].dialect.name == "sqlite"
    for pipeline in pipelines:
        start = threading.Barrier(writers)

        def store(pipeline: Pipeline = pipeline, start: threading.Barrier = start) -> bool:
            if one_at_a_time:
                start.wait(timeout=10)
            with transaction(sessions) as session:
                if not one_at_a_time:
                    start.wait(timeout=10)  # all transactions open before anyone writes
                return ensure_pipeline_version(session, pipeline)

        with ThreadPoolExecutor(writers) as pool:
            results = [f.result(timeout=30) for f in [pool.submit(store) for _ in range(writers)]]
        assert sorted(results) == [False] * (writers - 1) + [True]
    assert _count(sessions, PipelineRow) == len(pipelines)
    assert _count(sessions, PipelineVersionRow) == len(pipelines)


def test_set_pipeline_status(sessions: sessionmaker[Session]) -> None:
    pipeline = label_review()
    with transaction(sessions) as session:
        ensure_pipeline_version(session, pipeline)
        paused = set_pipeline_status(session, pipeline.name, PipelineStatus.PAUSED)
    assert paused.status == PipelineStatus.PAUSED
    with sessions() as session:
        assert [p.status for p in list_pipelines(session)] == [PipelineStatus.PAUSED]

    with (
        pytest.raises(PipelineNotFound, match="no pipeline named 'ghost'"),
        transaction(sessions) as session,
    ):
        set_pipeline_status(session, "ghost", PipelineStatus.ACTIVE)


def test_set_current_version_refuses_unknown_versions(sessions: sessionmaker[Session]) -> None:
    pipeline = label_review()
    with transaction(sessions) as session:
        ensure_pipeline_version(session, pipeline)
    with pytest.raises(ValueError, match="has no stored version"), transaction(sessions) as session:
        set_current_version(session, pipeline.name, "f" * 64)


# --- the caller owns the transaction --------------------------------------------------------


def test_repositories_never_commit(
    sessions: sessionmaker[Session], migrated_engine: Engine
) -> None:
    commits: list[object] = []
    event.listen(migrated_engine, "commit", commits.append)
    pipeline = label_review()
    with sessions() as session:
        upsert_contributor(session, "ada", ["labeler"])
        ensure_pipeline_version(session, pipeline)
        set_pipeline_status(session, pipeline.name, PipelineStatus.PAUSED)
        set_current_version(session, pipeline.name, pipeline.content_hash())
        assert get_contributor(session, "ada") is not None  # visible inside the transaction
        session.rollback()
    assert commits == []
    with sessions() as session:
        assert list_contributors(session) == []
        assert list_pipelines(session) == []
        assert get_pipeline_version(session, pipeline.content_hash()) is None
