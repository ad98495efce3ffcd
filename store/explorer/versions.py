"""A pipeline's stored versions, each parsed once per process."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import PipelineRow, PipelineVersionRow
from workflows.graph import Pipeline

_PARSED: dict[str, Pipeline] = {}
_PARSED_MAX = 256


def parsed_version(content_hash: str, definition: dict[str, Any] | None = None) -> Pipeline | None:
    """The pipeline version ``content_hash``, parsed once per process (a version never
    changes); None when it is not cached and no ``definition`` is given."""
    pipeline = _PARSED.get(content_hash)
    if pipeline is None and definition is not None:
        pipeline = Pipeline.model_validate(definition)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[content_hash] = pipeline
    return pipeline


def pipeline_versions(session: Session, pipeline: str) -> list[tuple[str, Pipeline]]:
    """The stored versions of ``pipeline``: the current one first, then oldest to newest."""
    current = session.execute(
        select(PipelineRow.current_version).where(PipelineRow.name == pipeline)
    ).scalar_one_or_none()
    rows = list(
        session.execute(
            select(PipelineVersionRow.hash, PipelineVersionRow.definition)
            .where(PipelineVersionRow.pipeline_name == pipeline)
            .order_by(PipelineVersionRow.created_at, PipelineVersionRow.hash)
        )
    )
    rows.sort(key=lambda r: r[0] != current)  # stable: current first, the rest by age
    out = []
    for content_hash, definition in rows:
        parsed = parsed_version(content_hash, definition)
        assert parsed is not None
        out.append((content_hash, parsed))
    return out
