"""Users and their API keys: who may call the HTTP API and the web app, and as what.

A key is shown once, when it is made; only its SHA-256 is stored. Keys look like
``cvk_<43 url-safe characters>``; the first 12 characters are kept as ``prefix`` so a listing
can name a key without revealing it. Functions take the caller's session and never commit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.models import ApiKeyRow, UserRow
from workflows.errors import Invalid, NotFound

KEY_PREFIX = "cvk_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}$")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class Role(StrEnum):
    """What a user may do: ``admin`` everything, ``viewer`` read, ``contributor`` the work
    queue (for the contributor roles they hold) and reading their own work."""

    ADMIN = "admin"
    VIEWER = "viewer"
    CONTRIBUTOR = "contributor"


class User(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    contributor_roles: tuple[str, ...] = ()
    created_at: datetime
    disabled: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def can_write(self) -> bool:
        return self.role is not Role.VIEWER


class ApiKeyInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    prefix: str
    user: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class InvalidUser(Invalid, ValueError):
    """A user name, role or contributor role that cannot be stored."""


class UnknownUser(NotFound, LookupError):
    """No user of that name."""

    def __init__(self, name: str):
        super().__init__(f"no user named {name!r}; create one with `starter.py user create`")
        self.name = name


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _now() -> datetime:
    return datetime.now(UTC)


def _user(row: UserRow) -> User:
    return User(
        name=row.name,
        role=Role(row.role),
        contributor_roles=tuple(row.contributor_roles),
        created_at=row.created_at,
        disabled=row.disabled_at is not None,
    )


def _check(name: str, role: str, contributor_roles: Iterable[str]) -> tuple[Role, list[str]]:
    if not _NAME.match(name):
        raise InvalidUser(
            f"user name {name!r} is not allowed: use 1-200 letters, digits, '_', '.', '@' or '-',"
            " starting with a letter or digit"
        )
    try:
        parsed = Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidUser(f"role {role!r} is not one of: {choices}") from None
    roles = sorted(set(contributor_roles))
    for r in roles:
        if not _ROLE_NAME.match(r):
            raise InvalidUser(f"contributor role {r!r} is not a valid role name")
    if parsed is not Role.CONTRIBUTOR and roles:
        raise InvalidUser(f"only contributors hold contributor roles; {name!r} is {parsed.value}")
    if parsed is Role.CONTRIBUTOR and not roles:
        raise InvalidUser(f"contributor {name!r} needs at least one contributor role (--roles)")
    return parsed, roles


def upsert_user(
    session: Session, name: str, role: str, contributor_roles: Iterable[str] = ()
) -> User:
    """Create the user, or change their role and contributor roles (and re-enable them)."""
    parsed, roles = _check(name, role, contributor_roles)
    row = session.get(UserRow, name)
    if row is None:
        row = UserRow(
            name=name,
            role=parsed.value,
            contributor_roles=roles,
            created_at=_now(),
            disabled_at=None,
        )
        session.add(row)
    else:
        row.role = parsed.value
        row.contributor_roles = roles
        row.disabled_at = None
    session.flush()
    return _user(row)


def get_user(session: Session, name: str) -> User:
    row = session.get(UserRow, name)
    if row is None:
        raise UnknownUser(name)
    return _user(row)


def list_users(session: Session) -> list[User]:
    return [_user(r) for r in session.scalars(select(UserRow).order_by(UserRow.name))]


def disable_user(session: Session, name: str) -> User:
    """Disable the user: their keys stop working at once; nothing of theirs is deleted."""
    row = session.get(UserRow, name)
    if row is None:
        raise UnknownUser(name)
    if row.disabled_at is None:
        row.disabled_at = _now()
    session.flush()
    return _user(row)


def create_key(session: Session, user: str, label: str = "", key: str | None = None) -> str:
    """Make a key for ``user`` and return it; it is not stored and cannot be shown again.

    ``key``: use this value instead of a random one (for a fixed local development key); it
    must start with ``cvk_`` and be at least 24 characters long.
    """
    if session.get(UserRow, user) is None:
        raise UnknownUser(user)
    if key is None:
        key = new_key()
    elif not key.startswith(KEY_PREFIX) or len(key) < 24:
        raise InvalidUser(f"an API key must start with {KEY_PREFIX!r} and be 24+ characters long")
    digest = hash_key(key)
    existing = session.get(ApiKeyRow, digest)
    if existing is not None:
        if existing.user_name != user:
            raise InvalidUser("that key already belongs to another user; choose another")
        existing.revoked_at = None
        existing.label = label or existing.label
    else:
        session.add(
            ApiKeyRow(
                key_hash=digest,
                prefix=key[:12],
                user_name=user,
                label=label,
                created_at=_now(),
                last_used_at=None,
                revoked_at=None,
            )
        )
    session.flush()
    return key


def revoke_keys(session: Session, user: str, prefix: str | None = None) -> int:
    """Revoke the user's keys (only the one starting with ``prefix`` if given); returns how
    many were revoked."""
    stmt = update(ApiKeyRow).where(ApiKeyRow.user_name == user, ApiKeyRow.revoked_at.is_(None))
    if prefix:
        stmt = stmt.where(ApiKeyRow.prefix == prefix[:12])
    result = session.execute(stmt.values(revoked_at=_now()))
    return int(getattr(result, "rowcount", 0) or 0)


def list_keys(session: Session, user: str | None = None) -> list[ApiKeyInfo]:
    stmt = select(ApiKeyRow).order_by(ApiKeyRow.user_name, ApiKeyRow.created_at)
    if user is not None:
        stmt = stmt.where(ApiKeyRow.user_name == user)
    return [
        ApiKeyInfo(
            prefix=r.prefix,
            user=r.user_name,
            label=r.label,
            created_at=r.created_at,
            last_used_at=r.last_used_at,
            revoked=r.revoked_at is not None,
        )
        for r in session.scalars(stmt)
    ]


def authenticate(session: Session, key: str) -> User | None:
    """The enabled user a live key belongs to, or ``None``. Records when the key was last used
    (at most once a minute, so reads do not turn into writes on every request)."""
    if not key.startswith(KEY_PREFIX):
        return None
    row = session.get(ApiKeyRow, hash_key(key))
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(UserRow, row.user_name)
    if user is None or user.disabled_at is not None:
        return None
    now = _now()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
    return _user(user)
