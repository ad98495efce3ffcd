"""The worker's cache and concurrency limits come from the environment and reach the Worker."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from conveyor.settings import Settings
from worker import build_worker


def test_limits_default_and_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAX_CACHED_WORKFLOWS", "MAX_CONCURRENT_WORKFLOW_TASKS"):
        monkeypatch.delenv(f"CONVEYOR_{name}", raising=False)
    default = Settings.from_env()
    assert (default.max_cached_workflows, default.max_concurrent_workflow_tasks) == (1000, None)
    monkeypatch.setenv("CONVEYOR_MAX_CACHED_WORKFLOWS", "250")
    monkeypatch.setenv("CONVEYOR_MAX_CONCURRENT_WORKFLOW_TASKS", "12")
    chosen = Settings.from_env()
    assert (chosen.max_cached_workflows, chosen.max_concurrent_workflow_tasks) == (250, 12)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("MAX_CACHED_WORKFLOWS", "many", "not a whole number"),
        ("MAX_CACHED_WORKFLOWS", "-1", "too small"),
        ("MAX_CONCURRENT_WORKFLOW_TASKS", "1", "too small"),
    ],
)
def test_bad_limits_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(f"CONVEYOR_{name}", value)
    with pytest.raises(ValueError, match=f"CONVEYOR_{name}={value!r}|CONVEYOR_{name}={value}"):
        Settings.from_env()
    with pytest.raises(ValueError, match=problem):
        Settings.from_env()


async def test_build_worker_applies_the_limits(
    client: Client, store_sessions: sessionmaker[Session]
) -> None:
    worker = build_worker(
        client,
        "limits",
        sessions=store_sessions,
        max_cached_workflows=42,
        max_concurrent_workflow_tasks=7,
    )
    config = worker.config()
    assert config.get("max_cached_workflows") == 42
    assert config.get("max_concurrent_workflow_tasks") == 7
