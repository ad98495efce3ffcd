"""Run a Conveyor worker: ``python worker.py``.

Settings come from ``CONVEYOR_*`` environment variables (see the README). SIGTERM or SIGINT
stops polling, lets in-flight activities finish (up to ``CONVEYOR_SHUTDOWN_GRACE`` seconds)
and exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.chains import ChainActivities
from activities.claims import ClaimActivities
from activities.evaluate import EvaluateActivities
from activities.llm import LlmActivities, LlmSettings
from activities.pipeline import PipelineActivities
from activities.seeding import SeedingActivities
from activities.store import StoreActivities
from conveyor.metrics import sdk_runtime, serve_app_metrics
from conveyor.settings import Settings, store_url
from conveyor.starting import Starter, background_starts
from store.db import (
    SchemaOutOfDate,
    check_schema,
    make_engine,
    safe_url,
    session_factory,
)
from workflows.bulk_evaluate import BulkEvaluateWorkflow
from workflows.pipeline import PipelineWorkflow
from workflows.seeder import SeederWorkflow
from workflows.task import TaskWorkflow

log = logging.getLogger("conveyor.worker")


WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)
"""The sandbox, with every module of ``workflows/`` passed through: a workflow's own module is
otherwise executed anew for every run the worker starts or replays, a sixth of the worker's
time under load (``bench.throughput``: ratio 0.43 passed through against 0.39, BENCHMARKS.md).
``workflows/`` is deterministic by contract (``lint-imports``: no I/O imports) and holds no
module-level state that runs could share; the replay test guards what the sandbox's run-time
checks no longer see inside these modules."""


def build_worker(
    client: Client,
    task_queue: str,
    *,
    sessions: sessionmaker[Session],
    llm: LlmSettings | None = None,
    shutdown_grace: timedelta = timedelta(seconds=30),
    max_cached_workflows: int = 1000,
    max_concurrent_workflow_tasks: int | None = None,
) -> Worker:
    """The worker every process runs: the task, pipeline and bulk evaluation workflows and
    their activities. The two limits are ``CONVEYOR_MAX_CACHED_WORKFLOWS`` and
    ``CONVEYOR_MAX_CONCURRENT_WORKFLOW_TASKS`` (see :class:`conveyor.settings.Settings`)."""
    llm_settings = llm or LlmSettings.from_env()
    # With the store, every LLM call attempt is recorded for LLM Analytics.
    llm_activities = LlmActivities(llm_settings, sessions)
    store_activities = StoreActivities(sessions)
    evaluate_activities = EvaluateActivities(sessions, llm_settings)
    pipeline_activities = PipelineActivities(sessions, client)
    seeding_activities = SeedingActivities(sessions, llm_settings)
    chain_activities = ChainActivities(sessions, client)
    claim_activities = ClaimActivities(sessions)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[TaskWorkflow, PipelineWorkflow, BulkEvaluateWorkflow, SeederWorkflow],
        activities=[
            llm_activities.call_llm,
            llm_activities.judge_llm,
            store_activities.project_task,
            evaluate_activities.select_tasks,
            evaluate_activities.evaluate_chunk,
            pipeline_activities.project_pipeline,
            pipeline_activities.sweep_tasks,
            pipeline_activities.completion_status,
            seeding_activities.seed_batch,
            seeding_activities.in_flight_count,
            chain_activities.fire_task_chains,
            chain_activities.fire_completion_chains,
            claim_activities.reserve_claim,
            claim_activities.drop_reservation,
        ],
        graceful_shutdown_timeout=shutdown_grace,
        max_cached_workflows=max_cached_workflows,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        # A task cached on a worker that died waits this long before another worker takes it.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        workflow_runner=WORKFLOW_RUNNER,
    )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Poll until ``stop`` is set, then shut down gracefully.

    Serves Prometheus metrics meanwhile: the SDK's (``CONVEYOR_METRICS_PORT``) and Conveyor's
    (``CONVEYOR_APP_METRICS_PORT``); see conveyor/metrics.py.
    """
    # The same store the CLI finds from any directory (conveyor.settings.store_url); an empty
    # one is refused below with the command that migrates it.
    url = store_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    check_schema(engine)
    sessions = session_factory(engine)
    client = await settings.connect(
        runtime=sdk_runtime(settings.metrics_host, settings.metrics_port)
    )
    grace = timedelta(seconds=float(os.environ.get("CONVEYOR_SHUTDOWN_GRACE", "30")))
    worker = build_worker(
        client,
        settings.task_queue,
        sessions=sessions,
        shutdown_grace=grace,
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
    )
    log.info(
        "worker polling task queue %r on %s (namespace %s), store %s",
        settings.task_queue,
        settings.temporal_address,
        settings.namespace,
        safe_url(str(engine.url)),
    )
    starter = Starter(client, settings.task_queue)
    with serve_app_metrics(sessions, settings.metrics_host, settings.app_metrics_port):
        # Lazily created tasks that need their workflow at once start next to the worker.
        async with worker, background_starts(starter, sessions):
            await stop.wait()
            log.info("shutting down: finishing in-flight activities (up to %ss)", grace)


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(Settings.from_env(), stop)


def _exit(code: int) -> None:
    # Skip interpreter finalisation: the Temporal client's native runtime can abort the process
    # (SIGABRT) when torn down during it, after a clean shutdown has already finished.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except SchemaOutOfDate as err:
        log.error("%s", err)
        _exit(2)
    _exit(0)
