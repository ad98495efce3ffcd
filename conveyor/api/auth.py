"""Who is calling: API keys in ``Authorization: Bearer <key>`` (or ``X-API-Key``), checked
against the store's ``api_keys``; the web app carries the same key in an HTTP-only cookie.
The first of these the request carries is the one checked: an invalid ``Authorization`` answers
401 even beside a valid cookie.

Routes declare what they need with the dependencies below; each one answers 401 without a
live key and 403 when the user's role does not allow the route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from conveyor.api.errors import forbidden, unauthenticated
from conveyor.http_common import COOKIE, user_of_key
from store.users import Role, User

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer cvk_…`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


def _key(request: Request) -> str | None:
    """The key the request authenticates with: the ``Authorization`` header when there is one,
    else ``X-API-Key``, else the web app's cookie.

    A header that is present decides, valid or not: a request whose ``Authorization`` is not
    ``Bearer <key>`` is refused, never quietly answered as the cookie's user.

    Raises:
        ApiError: 401, for an ``Authorization`` header that does not carry a bearer key, or an
            empty ``X-API-Key``.
    """
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise unauthenticated("the Authorization header is not 'Bearer <key>'")
        return credentials.strip()
    header = request.headers.get("x-api-key")
    if header is not None:
        if not header.strip():
            raise unauthenticated("the X-API-Key header is empty")
        return header.strip()
    return request.cookies.get(COOKIE)


async def current_user(
    request: Request,
    # Both declared for the OpenAPI spec; _key reads the headers itself (these two drop a
    # malformed header silently, and the cookie must not then stand in for it).
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    header: Annotated[str | None, Depends(_header)] = None,
) -> User:
    return await user_of_key(request, _key(request))


def require_admin(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role is not Role.ADMIN:
        raise forbidden(f"{user.name} is {user.role.value}; this needs an admin")
    return user


def require_writer(user: Annotated[User, Depends(current_user)]) -> User:
    """Anyone but a viewer (contributors are further limited by each route)."""
    if user.role is Role.VIEWER:
        raise forbidden(f"{user.name} is a viewer: viewers can read but not change anything")
    return user


def require_reader(user: Annotated[User, Depends(current_user)]) -> User:
    """Admins and viewers: reading everything (contributors see only their own work)."""
    if user.role is Role.CONTRIBUTOR:
        raise forbidden(
            f"{user.name} is a contributor: contributors see the work queue and their own work"
        )
    return user


CREATOR_ROLE = "creator"
"""The contributor role that lets a contributor create tasks (a service feeding a pipeline
without admin rights): ``starter.py user create feeder --role contributor --roles creator``."""


def can_create_tasks(user: User) -> bool:
    return user.role is Role.ADMIN or (
        user.role is Role.CONTRIBUTOR and CREATOR_ROLE in user.contributor_roles
    )


def require_creator(user: Annotated[User, Depends(current_user)]) -> User:
    """Admins, and contributors holding the ``creator`` contributor role."""
    if not can_create_tasks(user):
        raise forbidden(
            f"{user.name} is {user.role.value}; creating tasks needs an admin, or a contributor "
            f"with the {CREATOR_ROLE!r} contributor role"
        )
    return user


def require_contributor(user: Annotated[User, Depends(current_user)]) -> User:
    """The work queue: contributors (and admins, for testing a pipeline by hand)."""
    if user.role is Role.VIEWER:
        raise forbidden(f"{user.name} is a viewer: viewers cannot claim or submit work")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
Admin = Annotated[User, Depends(require_admin)]
Writer = Annotated[User, Depends(require_writer)]
Reader = Annotated[User, Depends(require_reader)]
Worker = Annotated[User, Depends(require_contributor)]
Creator = Annotated[User, Depends(require_creator)]
