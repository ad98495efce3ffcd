"""What every route module shares: dependencies, path parameter types, store access."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request
from pydantic import AfterValidator, Field
from sqlalchemy.orm import Session

from conveyor.api.errors import ErrorResponse, invalid
from conveyor.http_common import ApiDeps, deps_of
from store.db import transaction
from store.explorer import TaskFilter

T = TypeVar("T")

Deps = Annotated[ApiDeps, Depends(deps_of)]

PIPELINE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""What a pipeline name may be (``workflows.graph.Pipeline.name``)."""

PipelineName = Annotated[
    str,
    Path(
        pattern=PIPELINE_NAME,
        max_length=100,
        description="a pipeline's name",
        examples=["label-review"],
    ),
]
WorkflowId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=1000,
        description="a task's workflow id, `<pipeline>/<key>` (the key may contain `/`)",
        examples=["label-review/doc-1"],
    ),
]
RequestId = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        description="idempotency key: resending a command with the same one returns the first "
        "answer instead of acting twice (default: a fresh one)",
    ),
]


def storable(value: datetime | None) -> datetime | None:
    """A timestamp the store can hold: naive is UTC, and it must exist in UTC (year 1 at
    +14:00 does not)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of range in UTC") from None
    return value


Timestamp = Annotated[datetime, AfterValidator(storable)]
"""A datetime parameter (ISO 8601; naive means UTC)."""


def storable_filter(criteria: TaskFilter) -> TaskFilter:
    """``criteria``, if its timestamps fit the store (for request bodies carrying a filter)."""
    storable(criteria.created_from)
    storable(criteria.created_to)
    return criteria


Filter = Annotated[TaskFilter, AfterValidator(storable_filter)]
"""The Data Explorer's filter in a request body."""


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "not found"},
    409: {"model": ErrorResponse, "description": "refused in the current state"},
    503: {"model": ErrorResponse, "description": "Temporal or its workers did not answer"},
}
"""Error responses most routes can give (401, 403 and 422 are declared app-wide)."""


async def in_store(deps: ApiDeps, read: Callable[[Session], T]) -> T:
    """Run ``read(session)`` in one transaction, in a thread (the store is synchronous)."""

    def run() -> T:
        with transaction(deps.sessions) as session:
            return read(session)

    return await asyncio.to_thread(run)


# A NUL inside a JSON string is written \u0000; an escaped backslash before it (\\u0000) is not one.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


async def reject_nul(request: Request) -> None:
    """Refuse text with NUL characters anywhere in the request (PostgreSQL cannot store them,
    and no field of Conveyor's means one)."""
    found = "\x00" in request.url.path or any(
        "\x00" in key or "\x00" in value for key, value in request.query_params.multi_items()
    )
    if not found and request.method in ("POST", "PUT", "PATCH"):
        body = await request.body()
        found = b"\x00" in body or _JSON_NUL.search(body) is not None
    if found:
        raise invalid("the request contains a NUL character (\\u0000); remove it")
