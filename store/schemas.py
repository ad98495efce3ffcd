"""What the store hands its callers: frozen pydantic models, never ORM objects."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from workflows.pipeline_messages import (
    PipelineStatus,
)

__all__ = ["Contributor", "PipelineInfo", "PipelineStatus"]


class _Schema(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class Contributor(_Schema):
    """A contributor and the roles that decide which nodes they may claim."""

    name: str
    roles: list[str]
    created_at: datetime
    updated_at: datetime


class PipelineInfo(_Schema):
    """A pipeline by name: its status and the version new tasks are created with."""

    name: str
    status: PipelineStatus
    current_version: str | None
    created_at: datetime
    updated_at: datetime
