"""The HTTP API against real components: the session's Temporal dev server, a real worker, and
the store on SQLite and (with ``CONVEYOR_TEST_DATABASE_URL``) PostgreSQL.

One store, worker and app per dialect for the whole session (``api``): every test makes its
own pipelines (unique names), so tests share them without seeing each other's tasks. Requests
go through ``httpx.ASGITransport`` on the session's event loop, where the worker runs too.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.llm import LlmSettings
from conveyor.api import ApiDeps
from conveyor.client import ConveyorClient
from conveyor.server import create_app
from conveyor.starting import background_starts
from store.db import make_engine, migrate, session_factory, transaction
from store.users import create_key, disable_user, revoke_keys, upsert_user
from tests.support.database import (  # db_url: a fresh store per test, on each dialect
    SKIP_REASON,
    TEST_DATABASE_ENV,
    db_url,  # noqa: F401
    postgres_schema,
)
from tests.support.fake_openai import FakeOpenAI
from tests.support.pipelines import label_review
from worker import build_worker

T = TypeVar("T")

USERS: dict[str, tuple[str, list[str]]] = {
    "root": ("admin", []),
    "vera": ("viewer", []),
    "ana": ("contributor", ["labeler"]),
    "bo": ("contributor", ["reviewer"]),
    "cy": ("contributor", ["labeler", "reviewer"]),
    "wes": ("contributor", ["writer"]),
    "feeder": ("contributor", ["creator"]),
    "gone": ("viewer", []),
}
"""Who calls the API in these tests: name -> (role, contributor roles)."""


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def api_sessions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """A migrated store for the API tests: SQLite, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api-store') / 'conveyor.db'}"
        engine = make_engine(url)
        migrate(engine)
        yield session_factory(engine)
        engine.dispose()
        return
    base = os.environ.get(TEST_DATABASE_ENV)
    if not base:
        pytest.skip(SKIP_REASON)
    with postgres_schema(base) as url:
        engine = make_engine(url)
        migrate(engine)
        yield session_factory(engine)
        engine.dispose()


@dataclass
class Api:
    """The app, an HTTP client on it, and each test user's key."""

    app: FastAPI
    http: httpx.AsyncClient
    conveyor: ConveyorClient
    sessions: sessionmaker[Session]
    keys: dict[str, str]
    revoked_key: str
    data_dir: Path

    async def call(
        self, method: str, path: str, *, as_: str | None = "root", **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if as_ is not None:
            headers["Authorization"] = f"Bearer {self.keys[as_]}"
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, *, as_: str | None = "root", **kw: Any) -> httpx.Response:
        return await self.call("GET", path, as_=as_, **kw)

    async def post(self, path: str, *, as_: str | None = "root", **kw: Any) -> httpx.Response:
        return await self.call("POST", path, as_=as_, **kw)

    async def delete(self, path: str, *, as_: str | None = "root", **kw: Any) -> httpx.Response:
        return await self.call("DELETE", path, as_=as_, **kw)

    async def apply(self, definition: dict[str, Any], *, activate: bool = True) -> str:
        """Apply (and activate) a definition; returns the pipeline's name."""
        r = await self.post(
            "/api/v1/pipelines", json=definition, params={"activate": str(activate).lower()}
        )
        assert r.status_code == 200, r.text
        return str(definition["name"])

    async def label_pipeline(self, **changes: Any) -> str:
        """A fresh label-review pipeline (start -> label -> check -> end), applied and active."""
        definition = label_definition()
        definition.update(changes)
        return await self.apply(definition)

    async def create(self, pipeline: str, key: str, text: str = "some text") -> str:
        r = await self.post(
            f"/api/v1/pipelines/{pipeline}/tasks", json={"key": key, "data": {"text": text}}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["workflow_id"])


def label_definition(prefix: str = "api") -> dict[str, Any]:
    """label-review as JSON, under a fresh name."""
    pipeline = label_review(
        name=f"{prefix}-{uuid.uuid4().hex[:8]}", rejection_routing="same_person"
    )
    return pipeline.model_dump(mode="json", exclude_defaults=True)


def error_of(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is an error in the API's JSON shape; returns its ``error`` object."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


async def until(
    read: Callable[[], Awaitable[T]], predicate: Callable[[T], bool], timeout: float = 15.0
) -> T:
    """Poll ``read`` until ``predicate`` holds (the store follows the workflows a moment later)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await read()
        if predicate(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {value}")
        await asyncio.sleep(0.05)


def make_users(sessions: sessionmaker[Session]) -> tuple[dict[str, str], str]:
    """The test users and a key each; also a revoked key of ana's, and 'gone' disabled."""
    keys: dict[str, str] = {}
    with transaction(sessions) as session:
        for name, (role, roles) in USERS.items():
            upsert_user(session, name, role, roles)
            keys[name] = create_key(session, name, "tests")
        revoked = create_key(session, "ana", "old laptop")
        revoke_keys(session, "ana", revoked[:12])
        disable_user(session, "gone")
    return keys, revoked


@pytest.fixture(scope="session")
async def api(
    client: Client,
    fake_llm: FakeOpenAI,
    api_sessions: sessionmaker[Session],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Api]:
    """The API on this dialect's store, with a worker on its own task queue."""
    task_queue = f"api-{uuid.uuid4().hex[:8]}"
    llm = LlmSettings(api_base=fake_llm.base_url, api_key="test-key")
    data_dir = tmp_path_factory.mktemp("api-data")
    conveyor = ConveyorClient(client, task_queue, update_timeout=20)
    # As worker.py: the background starter runs next to the worker (lazy start's queued tasks).
    async with (
        build_worker(client, task_queue, sessions=api_sessions, llm=llm),
        background_starts(conveyor.starter, api_sessions, poll_seconds=0.1),
    ):
        app = create_app(ApiDeps(conveyor=conveyor, sessions=api_sessions, data_dir=data_dir))
        keys, revoked = make_users(api_sessions)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Api(app, http, conveyor, api_sessions, keys, revoked, data_dir)
