"""Schemathesis against the served OpenAPI spec: no request, valid or not, gets a 500, and every
answer (errors included) is one the spec documents, in its documented shape.

Each operation gets positive cases (valid input) and negative ones (input that violates the
schema: wrong types, missing fields, out-of-range values, malformed headers and bodies).

Hypothesis runs in a worker thread (it is synchronous); each generated case is sent through
``httpx.ASGITransport`` on the session's event loop, where the Temporal client and the worker
live. The app has its own store, worker and task queue, so fuzzed commands (which run as an
admin) cannot touch the other tests' tasks.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.client import Client

from activities.llm import LlmSettings
from conveyor.api import ApiDeps
from conveyor.client import ConveyorClient
from conveyor.server import create_app
from store.db import make_engine, migrate, session_factory, transaction
from store.users import create_key, upsert_user
from worker import build_worker

EXAMPLES_PER_OPERATION = int(os.environ.get("CONVEYOR_FUZZ_EXAMPLES") or 6)
"""Per operation and mode (valid and invalid input): about 600 requests in all, ~15 s a
dialect. ``CONVEYOR_FUZZ_EXAMPLES=25`` for a deeper run (about 2 minutes for both)."""

CHECKS = [
    not_a_server_error,
    # every answer is one the spec documents, in its documented shape (errors included:
    # ``{"error": {...}}``) and content type
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Not ``negative_data_rejection``: schemathesis counts a query parameter's negated item type (an
# object where a string is due) as invalid although it reaches the server as a valid string.


@pytest.fixture
async def fuzz_app(client: Client, db_url: str, tmp_path: Path) -> AsyncIterator[tuple[Any, str]]:
    """The app on its own store (SQLite, or a fresh PostgreSQL schema), worker and task queue."""
    engine = make_engine(db_url)
    migrate(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        upsert_user(session, "fuzz", "admin")
        key = create_key(session, "fuzz")
    task_queue = f"fuzz-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, task_queue, sessions=sessions, llm=LlmSettings()):
        conveyor = ConveyorClient(client, task_queue, update_timeout=5)
        yield create_app(ApiDeps(conveyor=conveyor, sessions=sessions, data_dir=tmp_path)), key
    engine.dispose()


def _request(case: Any, key: str) -> dict[str, Any]:
    """httpx arguments for a case (schemathesis serialises for the requests library)."""
    sent = case.as_transport_kwargs(base_url="http://test")
    headers = {k: v for k, v in (sent.get("headers") or {}).items() if k.lower() != "connection"}
    # Always as the admin: a negated key only tests the 401 path, over and over.
    headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "x-api-key")}
    headers["Authorization"] = f"Bearer {key}"
    request: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "headers": headers,
        "params": sent.get("params") or None,
        "cookies": sent.get("cookies") or None,
    }
    if "json" in sent:
        request["json"] = sent["json"]
    elif sent.get("data") is not None:
        data = sent["data"]
        request["content"] = data.encode() if isinstance(data, str) else data
    return request


async def test_no_input_makes_a_server_error(fuzz_app: tuple[Any, str]) -> None:
    app, key = fuzz_app
    schema = schemathesis.openapi.from_dict(app.openapi())
    loop = asyncio.get_running_loop()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    statuses: dict[int, int] = {}
    failures: dict[str, BaseException] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

        def send(case: Any) -> httpx.Response:
            request = _request(case, key)
            sent = asyncio.run_coroutine_threadsafe(http.request(**request), loop)
            response = sent.result(timeout=60)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            return response

        def fuzz() -> None:
            for found in schema.get_all_operations():
                assert isinstance(found, Ok), f"the spec has an invalid operation: {found}"
                operation = found.ok()
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    at = f"{operation.label} ({mode.value})"

                    @settings(
                        max_examples=EXAMPLES_PER_OPERATION,
                        deadline=None,
                        database=None,
                        derandomize=True,
                        suppress_health_check=list(HealthCheck),
                    )
                    @given(case=operation.as_strategy(generation_mode=mode))
                    def check(case: Any) -> None:
                        case.validate_response(send(case), checks=CHECKS)

                    try:
                        check()
                    except (AssertionError, FailureGroup) as failure:
                        failures[at] = failure  # hypothesis's smallest failing case

        await asyncio.to_thread(fuzz)
    assert 500 not in statuses, statuses
    assert not failures, "\n\n".join(f"{at}: {failure}" for at, failure in failures.items())
    # the run reached the routes, not just the validation in front of them
    assert statuses.get(200, 0) > 20 and statuses.get(404, 0) > 20, statuses
