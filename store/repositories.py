"""Repositories: small functions over a caller's :class:`~sqlalchemy.orm.Session`.

They build statements and never commit: the caller owns the transaction (see
``store.db.transaction``). They return pydantic models from ``store.schemas``; ORM rows never
leave the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from store.dialect import dialect_insert, upsert_ignore
from store.models import ContributorRow, PipelineRow, PipelineVersionRow
from store.schemas import Contributor, PipelineInfo, PipelineStatus
from workflows.errors import UnknownPipeline
from workflows.graph import Pipeline
from workflows.pipeline_messages import PipelineProjection

PipelineNotFound = UnknownPipeline
"""The name this module's callers knew :class:`~workflows.errors.UnknownPipeline` by."""


def _now() -> datetime:
    return datetime.now(UTC)


# --- contributors ---------------------------------------------------------------------------


def upsert_contributor(session: Session, name: str, roles: Iterable[str]) -> Contributor:
    """Create the contributor, or replace their roles. Roles are stored sorted, once each."""
    now = _now()
    role_list = sorted(set(roles))
    stmt = dialect_insert(session, ContributorRow).values(
        name=name, roles=role_list, created_at=now, updated_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"roles": stmt.excluded.roles, "updated_at": stmt.excluded.updated_at},
    )
    session.execute(stmt)
    contributor = get_contributor(session, name)
    assert contributor is not None
    return contributor


def get_contributor(session: Session, name: str) -> Contributor | None:
    row = session.execute(
        select(ContributorRow)
        .where(ContributorRow.name == name)
        # Core upserts bypass the identity map: reload rather than trust a cached row.
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return Contributor.model_validate(row) if row is not None else None


def list_contributors(session: Session, role: str | None = None) -> list[Contributor]:
    """Every contributor by name, or only those holding ``role``."""
    rows = session.scalars(
        select(ContributorRow)
        .order_by(ContributorRow.name)
        .execution_options(populate_existing=True)
    )
    contributors = [Contributor.model_validate(row) for row in rows]
    # Roles are a JSON list; filtering here keeps one query for both dialects.
    return [c for c in contributors if role is None or role in c.roles]


# --- pipelines ------------------------------------------------------------------------------


def ensure_pipeline_version(session: Session, pipeline: Pipeline) -> bool:
    """Store ``pipeline``'s immutable version (keyed by its content hash) if it is new.

    Also creates the ``pipelines`` row on first sight, with this version as its current one.
    Idempotent and safe under concurrency: two transactions storing the same version both
    succeed and leave one row.

    Returns:
        True if this call stored the version, False if it was already there.
    """
    now = _now()
    content_hash = pipeline.content_hash()
    upsert_ignore(
        session,
        PipelineRow,
        {
            "name": pipeline.name,
            "status": PipelineStatus.ACTIVE.value,
            "current_version": content_hash,
            "created_at": now,
            "updated_at": now,
        },
    )
    inserted = upsert_ignore(
        session,
        PipelineVersionRow,
        {
            "hash": content_hash,
            "pipeline_name": pipeline.name,
            "definition": pipeline.model_dump(mode="json"),
            "created_at": now,
        },
    )
    return inserted > 0


def record_pipeline(session: Session, projection: PipelineProjection) -> int:
    """Record what the pipeline workflow projects: store its new definitions (and its current
    one), then set its ``pipelines`` row's status and current version (creating the row if it
    is not there).

    Returns:
        How many definitions the projection carried (``projection.versions``).
    """
    for definition in projection.versions:
        ensure_pipeline_version(session, definition)
    if projection.current is not None:
        ensure_pipeline_version(session, projection.current)
    values: dict[str, Any] = {
        "name": projection.name,
        "status": projection.status.value,
        "current_version": projection.current.content_hash() if projection.current else None,
    }
    row = session.get(PipelineRow, projection.name)
    if row is None:
        now = datetime.now(UTC)
        session.add(PipelineRow(**values, created_at=now, updated_at=now))
    else:
        row.status = values["status"]
        row.current_version = values["current_version"]
        row.updated_at = datetime.now(UTC)
    return len(projection.versions)


def get_pipeline_version(session: Session, content_hash: str) -> Pipeline | None:
    """The pipeline definition stored under ``content_hash``, or None."""
    definition = session.scalar(
        select(PipelineVersionRow.definition).where(PipelineVersionRow.hash == content_hash)
    )
    return Pipeline.model_validate(definition) if definition is not None else None


def get_pipeline(session: Session, name: str) -> PipelineInfo | None:
    row = session.execute(
        select(PipelineRow)
        .where(PipelineRow.name == name)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return PipelineInfo.model_validate(row) if row is not None else None


def list_pipelines(session: Session) -> list[PipelineInfo]:
    rows = session.scalars(
        select(PipelineRow).order_by(PipelineRow.name).execution_options(populate_existing=True)
    )
    return [PipelineInfo.model_validate(row) for row in rows]


def set_pipeline_status(session: Session, name: str, status: PipelineStatus) -> PipelineInfo:
    """Record the operator's status for a pipeline.

    Raises:
        PipelineNotFound: no pipeline of that name was applied.
    """
    return _update_pipeline(session, name, status=PipelineStatus(status).value)


def set_current_version(session: Session, name: str, content_hash: str) -> PipelineInfo:
    """Make a stored version the one new tasks of the pipeline are created with.

    Raises:
        PipelineNotFound: no pipeline of that name was applied.
        ValueError: the version is not stored, or belongs to another pipeline.
    """
    owner = session.scalar(
        select(PipelineVersionRow.pipeline_name).where(PipelineVersionRow.hash == content_hash)
    )
    if owner != name:
        raise ValueError(
            f"pipeline {name!r} has no stored version {content_hash}; "
            "store it with ensure_pipeline_version first"
        )
    return _update_pipeline(session, name, current_version=content_hash)


def _update_pipeline(session: Session, name: str, **values: object) -> PipelineInfo:
    result = session.execute(
        update(PipelineRow)
        .where(PipelineRow.name == name)
        .values(**values, updated_at=_now())
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount == 0:
        raise UnknownPipeline(
            f"no pipeline named {name!r} in the store; apply its definition first", name=name
        )
    info = get_pipeline(session, name)
    assert info is not None
    return info
