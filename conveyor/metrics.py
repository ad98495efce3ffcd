"""Prometheus metrics of a worker, on two ports.

* **SDK metrics** (``temporal_*``: pollers, task slots, schedule-to-start latencies, sticky
  cache, activity and workflow task outcomes) come from the Temporal runtime itself:
  :func:`sdk_runtime` makes a runtime with a Prometheus endpoint, and the worker's client must
  be connected with it (``Settings.connect(runtime=...)``).
* **Conveyor's metrics** describe the store, not this process: tasks by status, active claims,
  LLM tokens, cost and calls. :class:`AppMetricsServer` computes them on scrape with a few
  ``GROUP BY`` queries and keeps the answer for ``ttl`` seconds, so frequent scrapes (or several
  Prometheus servers) cost one round of queries.

Every worker serves the same store-derived values: aggregate them with ``max without
(instance)``, never ``sum``, or serve them from one worker only.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from store import gauges
from store.db import transaction
from workflows.messages import TaskStatus

log = logging.getLogger("conveyor.metrics")

DEFAULT_SDK_METRICS_PORT = 9464
DEFAULT_APP_METRICS_PORT = 9465
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def sdk_runtime(host: str, port: int | None) -> Runtime | None:
    """A Temporal runtime serving the SDK's metrics on ``http://host:port/metrics``.

    Create it once per process, before the client: clients and workers created with it report
    to it. ``None`` (the SDK's default runtime, no endpoint) when ``port`` is ``None`` or cannot
    be bound: a busy metrics port is logged as a warning, it never keeps a worker from working.
    """
    if port is None:
        return None
    address = _host_port(host, port)
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as err:
        log.warning(
            "no SDK metrics: cannot listen on %s (%s); set CONVEYOR_METRICS_PORT to a free "
            "port, or to 0 to turn them off",
            address,
            err,
        )
        return None
    log.info("SDK metrics on http://%s/metrics", address)
    return runtime


# --- exposition -----------------------------------------------------------------------------


@dataclass
class Family:
    """One metric: its samples, each a label set and a value."""

    name: str
    kind: str
    """``gauge`` or ``counter``."""
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def _escape_label(value: str) -> str:
    return _escape_help(value).replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float) -> str:
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: list[Family]) -> str:
    """The Prometheus text exposition format (0.0.4) of ``families``."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            series = f"{family.name}{{{text}}}" if text else family.name
            lines.append(f"{series} {_format_value(value)}")
    return "\n".join(lines) + "\n"


# --- the store's figures --------------------------------------------------------------------


def store_families(session: Session) -> list[Family]:
    """Conveyor's metrics, read from the store: pipeline names and three ``GROUP BY`` queries
    (tasks, claimed nodes, LLM calls).

    Every known pipeline reports every task status (0 when it has none) and its active claims,
    so a series drops to 0 instead of vanishing. LLM sums cover known values only: a model with
    no known price has no cost series (never a 0 that would read as free).
    """
    pipelines = gauges.pipeline_names(session)
    task_counts = gauges.task_counts(session)
    pipelines.update(pipeline for pipeline, _ in task_counts)
    claims = gauges.claimed_node_counts(session)
    pipelines.update(claims)

    tasks = Family("conveyor_tasks", "gauge", "Tasks in the store by pipeline and status.")
    active = Family(
        "conveyor_claims_active", "gauge", "Node instances currently Claimed, by pipeline."
    )
    statuses = [s.value for s in TaskStatus]
    statuses += sorted({s for _, s in task_counts} - set(statuses))
    for pipeline in sorted(pipelines):
        for status in statuses:
            count = task_counts.get((pipeline, status), 0)
            tasks.samples.append(({"pipeline": pipeline, "status": status}, count))
        active.samples.append(({"pipeline": pipeline}, claims.get(pipeline, 0)))

    tokens = Family(
        "conveyor_llm_tokens_total",
        "counter",
        "LLM tokens of every recorded call attempt, by kind (prompt or completion).",
    )
    cost = Family(
        "conveyor_llm_cost_usd_total",
        "counter",
        "Cost in USD of LLM call attempts whose price is known.",
    )
    calls = Family(
        "conveyor_llm_calls_total",
        "counter",
        "LLM call attempts by outcome (ok, retry: failed and retried, failed: failed for good).",
    )
    sums: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for row in gauges.llm_call_totals(session):
        outcome = {"pipeline": row.pipeline, "model": row.model, "outcome": row.outcome}
        calls.samples.append((outcome, row.calls))
        pair = sums[(row.pipeline, row.model)]
        for key, total, known in (
            ("prompt", row.prompt_tokens, row.prompt_known),
            ("completion", row.completion_tokens, row.completion_known),
            ("cost", row.cost_usd, row.cost_known),
        ):
            if known:
                pair[key] = pair.get(key, 0) + total
    for (pipeline, model), pair in sums.items():
        labels = {"pipeline": pipeline, "model": model}
        for kind in ("prompt", "completion"):
            if kind in pair:
                tokens.samples.append(({**labels, "kind": kind}, pair[kind]))
        if "cost" in pair:
            cost.samples.append((labels, pair["cost"]))
    return [tasks, active, tokens, cost, calls]


class StoreMetrics:
    """The store's metrics as exposition text, recomputed at most once every ``ttl`` seconds.

    Thread-safe: concurrent scrapes wait for one computation. A failed query is logged and
    reported as ``conveyor_store_up 0`` (and retried on the next scrape).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._text: str | None = None
        self._at = 0.0

    def exposition(self) -> str:
        """The current text, from the cache when it is younger than ``ttl``."""
        with self._lock:
            now = self._clock()
            if self._text is not None and now - self._at < self._ttl:
                return self._text
            up = Family("conveyor_store_up", "gauge", "1 if the store answered the last scrape.")
            try:
                with transaction(self._sessions) as session:
                    families = store_families(session)
            except Exception:
                log.exception("metrics: the store query failed")
                up.samples.append(({}, 0))
                return render([up])
            up.samples.append(({}, 1))
            self._text = render([*families, up])
            self._at = now
            return self._text


# --- the HTTP endpoint ----------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404, "metrics are at /metrics")
            return
        body = self.server.metrics.exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], metrics: StoreMetrics) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.metrics = metrics
        super().__init__(address, _Handler)


class AppMetricsServer:
    """Conveyor's metrics on ``http://host:port/metrics``, served from a background thread.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``port=0`` binds any
    free port (see :attr:`port`).
    """

    def __init__(
        self, sessions: sessionmaker[Session], host: str, port: int, *, ttl: float = 10.0
    ) -> None:
        self._metrics = StoreMetrics(sessions, ttl=ttl)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        assert self._server is not None, "start the server first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The scrape URL (after :meth:`start`)."""
        return f"http://{_host_port(self._address[0], self.port)}/metrics"

    def start(self) -> None:
        """Bind the port and serve.

        Raises:
            OSError: the port cannot be bound (the message names the setting to change).
        """
        try:
            self._server = _Server(self._address, self._metrics)
        except OSError as err:
            raise OSError(
                err.errno,
                f"cannot serve Conveyor metrics on {_host_port(*self._address)} ({err.strerror});"
                " set CONVEYOR_APP_METRICS_PORT to a free port, or to 0 to turn them off",
            ) from err
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="conveyor-metrics",
            daemon=True,
        )
        self._thread.start()
        log.info("Conveyor metrics on %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> AppMetricsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve_app_metrics(
    sessions: sessionmaker[Session], host: str, port: int | None
) -> Iterator[AppMetricsServer | None]:
    """Serve Conveyor's metrics for the block; nothing when ``port`` is ``None``.

    A port that cannot be bound is logged as a warning and the block runs without the endpoint
    (``None``): metrics never keep a worker from working.
    """
    if port is None:
        yield None
        return
    server = AppMetricsServer(sessions, host, port)
    try:
        server.start()
    except OSError as err:
        log.warning("no Conveyor metrics: %s", err.strerror or err)
        yield None
        return
    try:
        yield server
    finally:
        server.stop()
