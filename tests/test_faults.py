"""The fault suite, reduced for CI: tasks reach the end while workers die and Temporal restarts.

30 tasks of ``start -> draft (LLM) -> edit -> check (review) -> end`` run against their own
file-backed dev server (fresh port and database file in ``tmp_path``, not the session's shared
server), two ``python worker.py`` processes and the fake OpenAI server. Workers are SIGKILLed
(at most three times) and replaced; the dev server is stopped and started again once on the same
file and port. Then every task must be Finished, each submission and review must be in the
store exactly once as the workflow counts it, each LLM answer must be kept, and ``reconcile``
must find no drift for any task.

Faults start once every task's LLM draft is in, so the kill count stays small and the run fits
CI's time budget; ``bench/faults.py`` kills workers throughout, LLM calls included. A worker
killed during an LLM call is covered by its own test below: the call's heartbeat times out and
another worker retries it.

Not covered here: the PostgreSQL restart. CI uses a SQLite store in ``tmp_path``, and restarting
a shared PostgreSQL server from a test would disturb everything else using it; run
``python -m bench.faults --database-url postgresql+psycopg://... --restart-postgres`` for that.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import TimeoutType

from bench.faults import DevServer, FaultConfig, Workers, faults_pipeline, question, run_faults
from conveyor.client import ConveyorClient
from store.db import make_engine, migrate
from tests.support.fake_openai import FakeOpenAI, delay, reply


# Worker processes take 10-20 s to start on a loaded 2-core machine; the suite's 120 s per-test
# limit is for ordinary tests.
@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_tasks_survive_worker_kills_and_a_server_restart(tmp_path: Path) -> None:
    report = await run_faults(
        FaultConfig(
            tasks=30,
            workers=2,
            kill_every=3.0,
            max_kills=3,
            restart_server=True,
            restart_postgres=False,
            concurrency=10,
            think=1.0,
            faults_after_llm=True,
            timeout=300.0,
            workdir=tmp_path,
        )
    )
    print(report.table())
    assert report.ok, "\n".join(report.failures())
    assert report.kills >= 1
    assert report.server_restarts == 1
    assert report.reconcile is not None and report.reconcile.checked == 30


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_worker_killed_mid_llm_call_is_noticed_by_the_heartbeat(tmp_path: Path) -> None:
    """The LLM activity heartbeats while the model thinks: when its worker is SIGKILLed mid-call
    the attempt times out on the heartbeat (not the 120 s start-to-close) and a second worker
    retries it; the task gets the answer of the retry, recorded once."""
    server = DevServer(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'conveyor.db'}")
    migrate(engine)
    workers: Workers | None = None
    with FakeOpenAI(default_reply=lambda _: "retried answer") as llm:
        # The first attempt hangs for longer than the whole test could wait for it.
        llm.script(delay(600, reply("too late")))
        client = await server.start()
        try:
            task_queue = f"heartbeat-{os.urandom(4).hex()}"
            env = {
                **os.environ,
                "CONVEYOR_TEMPORAL_ADDRESS": server.address,
                "CONVEYOR_TASK_QUEUE": task_queue,
                "CONVEYOR_DATABASE_URL": f"sqlite:///{tmp_path / 'conveyor.db'}",
                "CONVEYOR_METRICS_PORT": "0",
                "CONVEYOR_APP_METRICS_PORT": "0",
                "CONVEYOR_LLM_API_KEY": "fake-key",
                "PYTHONUNBUFFERED": "1",
            }
            workers = Workers(env, tmp_path, seed=1)
            workers.spawn()
            await workers.wait_ready()
            conveyor = ConveyorClient(client, task_queue, update_timeout=15)
            pipeline = faults_pipeline(f"hb-{os.urandom(3).hex()}", llm.base_url)
            created = await conveyor.create_task(pipeline, "t0", {"question": question(0)})
            task = conveyor.task(created.workflow_id)
            deadline = time.monotonic() + 120
            while not llm.requests and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert llm.requests, "the worker never called the model"
            assert workers.kill_one(), "the worker was not polling"
            workers.spawn()
            await workers.wait_ready()

            async def drafted() -> str:
                while True:
                    view = await task.state()
                    value = {n.name: n for n in view.nodes}["draft"].values.get("draft_answer")
                    if value:
                        return str(value)
                    await asyncio.sleep(0.5)

            # Without heartbeats the retry would wait for the 120 s start-to-close timeout.
            assert await asyncio.wait_for(drafted(), 100) == "retried answer"
            # Retried attempts are not events of their own: the started event of the attempt that
            # completed carries its number and why the one before it ended.
            started = [
                e.activity_task_started_event_attributes
                async for e in client.get_workflow_handle(task.workflow_id).fetch_history_events()
                if e.HasField("activity_task_started_event_attributes")
            ]
            llm_started = [s for s in started if s.attempt > 1]
            assert [s.attempt for s in llm_started] == [2]
            cause = llm_started[0].last_failure.timeout_failure_info.timeout_type
            assert cause == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
            assert len(llm.requests) == 2
        finally:
            if workers is not None:
                workers.stop_all()
            await server.stop()
            engine.dispose()
