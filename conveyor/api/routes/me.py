"""``GET /me``: who the key belongs to, and what they may do."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from conveyor.api.auth import CurrentUser, can_create_tasks
from store.users import Role

router = APIRouter(tags=["me"])


class Me(BaseModel):
    name: str
    role: Role
    contributor_roles: list[str]
    """The work-queue roles (contributors only)."""
    can_read: bool
    """Admins and viewers: pipelines, the Data Explorer, analytics, exports."""
    can_work: bool
    """Contributors and admins: the work queue."""
    can_create_tasks: bool
    can_administer: bool


@router.get("/me", response_model=Me, summary="The caller: name, role and contributor roles")
async def me(user: CurrentUser) -> Me:
    return Me(
        name=user.name,
        role=user.role,
        contributor_roles=list(user.contributor_roles),
        can_read=user.role is not Role.CONTRIBUTOR,
        can_work=user.role is not Role.VIEWER,
        can_create_tasks=can_create_tasks(user),
        can_administer=user.role is Role.ADMIN,
    )
