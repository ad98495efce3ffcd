"""The fault suite, reduced for CI: tasks reach the end while workers die and Temporal restarts.

30 tasks of ``start -> draft (LLM) -> edit -> check (review) -> end`` run against their own
file-backed dev server (fresh port and database file in ``tmp_path``, not the session's shared
server), two ``python worker.py`` processes and the fake OpenAI server. Workers are SIGKILLed
(at most three times) and replaced; the dev server is stopped and started again once on the same
file and port. Then every task must be Finished, each submission and review must be in the
store exactly once as the workflow counts it, each LLM answer must be kept, and ``reconcile``
must find no drift for any task.

Faults start once every task's LLM draft is in: a worker killed during an LLM call leaves that
call to its 120 s start-to-close timeout (the LLM activity does not heartbeat), which would not
fit CI's time budget. ``bench/faults.py`` kills workers throughout, LLM calls included.

Not covered here: the PostgreSQL restart. CI uses a SQLite store in ``tmp_path``, and restarting
a shared PostgreSQL server from a test would disturb everything else using it; run
``python -m bench.faults --database-url postgresql+psycopg://... --restart-postgres`` for that.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults import FaultConfig, run_faults


# Worker processes take 10-20 s to start on a loaded 2-core machine; the suite's 120 s per-test
# limit is for ordinary tests.
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
