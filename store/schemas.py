"""What the store hands its callers: frozen pydantic models, never ORM objects."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class PipelineStatus(StrEnum):
    """The status an operator gives a pipeline (stored in ``pipelines.status``)."""

    ACTIVE = "Active"
    PAUSED = "Paused"
    INACTIVE = "Inactive"


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
