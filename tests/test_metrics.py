"""Prometheus metrics: Conveyor's from the store, and the SDK's from a running worker."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from conveyor.metrics import (
    AppMetricsServer,
    Family,
    StoreMetrics,
    render,
    sdk_runtime,
    serve_app_metrics,
)
from conveyor.settings import Settings
from store.db import make_engine, migrate, session_factory
from tests.support.database import db_engine, db_url, migrated_engine, sessions
from tests.support.gauge_rows import fill_gauge_rows
from worker import run_worker

__all__ = ["db_engine", "db_url", "migrated_engine", "sessions"]


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(response.read().decode())


def _samples(text: str) -> dict[str, float]:
    """``{series: value}`` of an exposition, comments left out."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return samples


def _conveyor(samples: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in samples.items() if k.startswith("conveyor_")}


def test_the_store_is_served_with_exact_values(sessions: sessionmaker[Session]) -> None:
    fill_gauge_rows(sessions)
    with AppMetricsServer(sessions, "127.0.0.1", 0) as server:
        text = _scrape(server.url)
    statuses = ["Pending", "In Progress", "Paused", "Finished", "Escalated", "Quarantined"]
    expected: dict[str, float] = {}
    for pipeline, counts in {
        "alpha": {"In Progress": 2, "Finished": 1},
        "beta": {"Paused": 1},
        "idle": {},
    }.items():
        for status in [*statuses, "Failed"]:
            key = f'conveyor_tasks{{pipeline="{pipeline}",status="{status}"}}'
            expected[key] = counts.get(status, 0)
    gpt = 'pipeline="alpha",model="openai/gpt-4o-mini"'
    llama = 'pipeline="alpha",model="ollama/llama3"'
    expected |= {
        'conveyor_claims_active{pipeline="alpha"}': 2,
        'conveyor_claims_active{pipeline="beta"}': 1,
        'conveyor_claims_active{pipeline="idle"}': 0,
        f'conveyor_llm_tokens_total{{{llama},kind="prompt"}}': 3,
        f'conveyor_llm_tokens_total{{{llama},kind="completion"}}': 2,
        f'conveyor_llm_tokens_total{{{gpt},kind="prompt"}}': 30,
        f'conveyor_llm_tokens_total{{{gpt},kind="completion"}}': 12,
        # Known prices only: llama has none, so no cost series at all (not a 0).
        f"conveyor_llm_cost_usd_total{{{gpt}}}": 0.75,
        f'conveyor_llm_calls_total{{{llama},outcome="ok"}}': 1,
        f'conveyor_llm_calls_total{{{gpt},outcome="ok"}}': 2,
        f'conveyor_llm_calls_total{{{gpt},outcome="retry"}}': 1,
        'conveyor_llm_calls_total{pipeline="beta",model="ollama/llama3",outcome="failed"}': 1,
        "conveyor_store_up": 1,
    }
    assert _conveyor(_samples(text)) == expected
    assert "# TYPE conveyor_tasks gauge" in text
    assert "# TYPE conveyor_llm_tokens_total counter" in text


def test_an_empty_store_reports_only_that_it_is_up(sessions: sessionmaker[Session]) -> None:
    with AppMetricsServer(sessions, "127.0.0.1", 0) as server:
        assert _conveyor(_samples(_scrape(server.url))) == {"conveyor_store_up": 1}


def test_scrapes_are_cached_for_the_ttl(sessions: sessionmaker[Session]) -> None:
    now = [100.0]
    metrics = StoreMetrics(sessions, ttl=10.0, clock=lambda: now[0])
    before = metrics.exposition()
    fill_gauge_rows(sessions)
    now[0] += 9.9
    assert metrics.exposition() == before
    now[0] += 0.1
    assert _samples(metrics.exposition())['conveyor_claims_active{pipeline="alpha"}'] == 2


def test_a_failing_store_is_reported_down_not_as_an_error(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    metrics = StoreMetrics(session_factory(engine))
    assert _samples(metrics.exposition()) == {"conveyor_store_up": 0}
    migrate(engine)
    assert _samples(metrics.exposition()) == {"conveyor_store_up": 1}


def test_only_the_metrics_path_is_served(sessions: sessionmaker[Session]) -> None:
    with AppMetricsServer(sessions, "127.0.0.1", 0) as server:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url.removesuffix("metrics") + "other", timeout=5)
        assert err.value.code == 404
        port = server.port
    with pytest.raises(OSError):  # stopped: the port is released
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_busy_port_is_a_warning_that_names_the_setting(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    with AppMetricsServer(sessions, "127.0.0.1", 0) as first:
        second = AppMetricsServer(sessions, "127.0.0.1", first.port)
        with pytest.raises(OSError, match="CONVEYOR_APP_METRICS_PORT"):
            second.start()
        # The worker's way in: it goes on working without the endpoint.
        with serve_app_metrics(sessions, "127.0.0.1", first.port) as served:
            assert served is None
        assert sdk_runtime("127.0.0.1", first.port) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("CONVEYOR_APP_METRICS_PORT" in w for w in warnings), warnings
    assert any("CONVEYOR_METRICS_PORT" in w for w in warnings), warnings


def test_label_values_and_help_are_escaped() -> None:
    family = Family("m", "gauge", "a \\ b\nc", [({"l": 'x"y\\z\nw'}, 1.5)])
    assert render([family]) == (
        "# HELP m a \\\\ b\\nc\n# TYPE m gauge\n" + 'm{l="x\\"y\\\\z\\nw"} 1.5\n'
    )


def test_ports_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("METRICS_HOST", "METRICS_PORT", "APP_METRICS_PORT"):
        monkeypatch.delenv(f"CONVEYOR_{name}", raising=False)
    default = Settings.from_env()
    assert (default.metrics_host, default.metrics_port, default.app_metrics_port) == (
        "0.0.0.0",
        9464,
        9465,
    )
    monkeypatch.setenv("CONVEYOR_METRICS_HOST", "127.0.0.1")
    monkeypatch.setenv("CONVEYOR_METRICS_PORT", "0")
    monkeypatch.setenv("CONVEYOR_APP_METRICS_PORT", "9100")
    chosen = Settings.from_env()
    assert (chosen.metrics_host, chosen.metrics_port, chosen.app_metrics_port) == (
        "127.0.0.1",
        None,
        9100,
    )
    for bad in ("http", "70000", "-1"):
        monkeypatch.setenv("CONVEYOR_APP_METRICS_PORT", bad)
        with pytest.raises(ValueError, match="CONVEYOR_APP_METRICS_PORT"):
            Settings.from_env()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _scrape_when_up(url: str, ready: list[str], deadline: float) -> str:
    """Scrape ``url`` until its text contains every string of ``ready``."""
    text = ""
    while time.monotonic() < deadline:
        try:
            text = await asyncio.to_thread(_scrape, url)
        except OSError:
            text = ""
        if all(part in text for part in ready):
            return text
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} never served all of {ready}; last answer:\n{text[:2000]}")


async def test_the_worker_serves_sdk_and_conveyor_metrics(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = f"sqlite:///{tmp_path / 'worker.db'}"
    migrate(store)
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", store)
    monkeypatch.setenv("CONVEYOR_SHUTDOWN_GRACE", "5")
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        temporal_address=temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        task_queue=queue,
        metrics_host="127.0.0.1",
        metrics_port=_free_port(),
        app_metrics_port=_free_port(),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run_worker(settings, stop))
    try:
        deadline = time.monotonic() + 15
        # Poller and slot gauges appear once the worker polls (after its start counter).
        sdk = await _scrape_when_up(
            f"http://127.0.0.1:{settings.metrics_port}/metrics",
            ["temporal_num_pollers{", "temporal_worker_task_slots_available{", queue],
            deadline,
        )
        app = await _scrape_when_up(
            f"http://127.0.0.1:{settings.app_metrics_port}/metrics",
            ["conveyor_store_up"],
            deadline,
        )
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
    pollers = [line for line in sdk.splitlines() if line.startswith("temporal_num_pollers{")]
    assert any(f'task_queue="{queue}"' in line for line in pollers), pollers
    assert _samples(app)["conveyor_store_up"] == 1
    with pytest.raises(OSError):  # the worker stopped: Conveyor's endpoint is gone
        socket.create_connection(("127.0.0.1", settings.app_metrics_port or 0), timeout=1).close()
