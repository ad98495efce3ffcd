"""Users and API keys, for admins: the HTTP side of ``starter.py user …``.

A key is shown once, in the answer that made it; the store keeps only its hash. Nothing of a
user is ever deleted: disabling stops their keys at once and keeps their work attributed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from conveyor.api.auth import Admin
from conveyor.api.errors import conflict
from conveyor.api.routes.common import ERRORS, Deps, in_store
from store.users import (
    ApiKeyInfo,
    Role,
    User,
    create_key,
    disable_user,
    get_user,
    list_keys,
    list_users,
    revoke_keys,
    upsert_user,
)

router = APIRouter(prefix="/users", tags=["users"], responses=ERRORS)

UserName = Annotated[str, Path(min_length=1, max_length=200, description="the user's name")]
Label = Annotated[str, Field(max_length=200, description="what the key is for")]


class UserInfo(BaseModel):
    name: str
    role: Role
    contributor_roles: list[str]
    created_at: datetime
    disabled: bool
    keys: list[ApiKeyInfo]
    """Each key's prefix, label and use; never the key itself."""


class UserBody(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    contributor_roles: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=100, description="contributors only: at least one"
    )
    label: Label = ""


class KeyBody(BaseModel):
    label: Label = ""


class RevokeBody(BaseModel):
    prefix: str | None = Field(
        default=None,
        min_length=4,
        max_length=100,
        description="revoke only the key starting with this (its first 12 characters count)",
    )


class NewKey(BaseModel):
    user: UserInfo
    key: str
    """The new API key: shown this once, store it now."""


class Revoked(BaseModel):
    user: str
    revoked: int


def _info(session: Session, user: User) -> UserInfo:
    return UserInfo(
        name=user.name,
        role=user.role,
        contributor_roles=list(user.contributor_roles),
        created_at=user.created_at,
        disabled=user.disabled,
        keys=list_keys(session, user.name),
    )


@router.get("", response_model=list[UserInfo], summary="Every user, their role and their keys")
async def list_all(deps: Deps, _: Admin) -> list[UserInfo]:
    return await in_store(deps, lambda s: [_info(s, u) for u in list_users(s)])


@router.get("/{name}", response_model=UserInfo, summary="One user and their keys")
async def show(name: UserName, deps: Deps, _: Admin) -> UserInfo:
    return await in_store(deps, lambda s: _info(s, get_user(s, name)))


@router.post(
    "",
    response_model=NewKey,
    status_code=201,
    summary="Create a user (or change their role and re-enable them), with a new key",
)
async def create(body: UserBody, deps: Deps, admin: Admin) -> NewKey:
    if body.name == admin.name and body.role is not Role.ADMIN:
        raise conflict("you cannot take your own admin role away; ask another admin")

    def write(session: Session) -> NewKey:
        user = upsert_user(session, body.name, body.role.value, body.contributor_roles)
        key = create_key(session, user.name, body.label or f"made by {admin.name}")
        return NewKey(user=_info(session, user), key=key)

    return await in_store(deps, write)


@router.post("/{name}/keys", response_model=NewKey, status_code=201, summary="Another key")
async def new_key(name: UserName, body: KeyBody, deps: Deps, admin: Admin) -> NewKey:
    def write(session: Session) -> NewKey:
        key = create_key(session, name, body.label or f"made by {admin.name}")
        return NewKey(user=_info(session, get_user(session, name)), key=key)

    return await in_store(deps, write)


@router.post(
    "/{name}/keys/revoke",
    response_model=Revoked,
    summary="Revoke a user's keys (or just one, by its prefix); they stop working at once",
)
async def revoke(name: UserName, body: RevokeBody, deps: Deps, admin: Admin) -> Revoked:
    if name == admin.name and body.prefix is None:
        raise conflict("that would revoke the key you are using too; give the prefix of one key")

    def write(session: Session) -> Revoked:
        get_user(session, name)  # 404 for an unknown user, not "0 revoked"
        return Revoked(user=name, revoked=revoke_keys(session, name, body.prefix))

    return await in_store(deps, write)


@router.post(
    "/{name}/disable",
    response_model=UserInfo,
    summary="Disable a user: their keys stop working at once; their work stays theirs",
)
async def disable(name: UserName, deps: Deps, admin: Admin) -> UserInfo:
    if name == admin.name:
        raise conflict("you cannot disable yourself; ask another admin")
    return await in_store(deps, lambda s: _info(s, disable_user(s, name)))
