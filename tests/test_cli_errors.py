"""The CLI's errors as an operator meets them: one line and a documented exit code, never a
traceback; and the same store whatever the current directory, with nothing created by reads."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from conveyor.client import ConveyorClient
from conveyor.pipelines import load_pipeline_file
from tests.support.wedged import WedgedTaskWorkflow
from workflows.options import SA_PIPELINE

ROOT = Path(__file__).resolve().parent.parent
EXIT_INVALID, EXIT_UNAVAILABLE = 3, 4


async def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run starter.py; returns the exit code and stderr."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CONVEYOR_DATA_DIR", "CONVEYOR_DATABASE_URL", "CONVEYOR_TEMPORAL_ADDRESS")
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        *args,
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode()


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


async def test_temporal_down_is_one_line_and_exit_4(tmp_path: Path) -> None:
    down = {"CONVEYOR_TEMPORAL_ADDRESS": "127.0.0.1:1"}
    for args in (
        ["task", "show", "label-review/demo-1"],
        ["task", "list"],
        ["claim", "label-review/demo-1", "--as", "ana"],
        ["pause", "label-review/demo-1", "--signal"],
        ["pipeline", "show", "label-review"],
    ):
        code, err = await run(*args, env=down)
        line = one_line(err)
        assert code == EXIT_UNAVAILABLE, (args, err)
        assert "cannot reach Temporal at 127.0.0.1:1 (Connection refused)" in line
        assert "CONVEYOR_TEMPORAL_ADDRESS" in line


async def test_store_unreachable_is_one_line_and_exit_4() -> None:
    code, err = await run(
        "queue",
        "list",
        "--as",
        "ana",
        env={"CONVEYOR_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
    )
    line = one_line(err)
    assert code == EXIT_UNAVAILABLE
    assert line.startswith("error: the store at postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert "Connection refused" in line


async def test_unknown_task_is_one_line_and_exit_3(temporal_env: WorkflowEnvironment) -> None:
    address = temporal_env.client.service_client.config.target_host
    for args in (["task", "show", "nope/none"], ["claim", "nope/none", "--as", "ana"]):
        code, err = await run(*args, env={"CONVEYOR_TEMPORAL_ADDRESS": address})
        assert (
            one_line(err)
            == "error: task nope/none not found (workflow not found for ID: nope/none)"
        )
        assert code == EXIT_INVALID


async def test_the_cli_finds_the_same_store_from_any_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project_store = ROOT / "data" / "conveyor.db"
    existed = project_store.exists()
    # No CONVEYOR_DATA_DIR: the project's data directory, wherever the command runs.
    here = await run("pipeline", "list", cwd=ROOT)
    there = await run("pipeline", "list", cwd=elsewhere)
    assert here == there
    assert list(elsewhere.iterdir()) == [], "a read command created files"
    assert project_store.exists() == existed, "a read command created the store"
    if not existed:
        code, err = there
        line = one_line(err)
        assert code == EXIT_UNAVAILABLE
        assert f"no store at {project_store}" in line and "the project's data directory" in line
        assert "db upgrade" in line

    # CONVEYOR_DATA_DIR names another one: created by db upgrade, then read from elsewhere.
    data = {"CONVEYOR_DATA_DIR": str(tmp_path / "store")}
    code, err = await run("pipeline", "list", cwd=elsewhere, env=data)
    assert code == EXIT_UNAVAILABLE and f"no store at {tmp_path / 'store' / 'conveyor.db'}" in err
    assert not (tmp_path / "store").exists()
    code, err = await run("db", "upgrade", cwd=tmp_path, env=data)
    assert code == 0, err
    code, err = await run("pipeline", "list", cwd=elsewhere, env=data)
    assert code == 0 and err == "", err
    assert list(elsewhere.iterdir()) == []


async def test_a_stuck_task_is_named_at_once(
    temporal_env: WorkflowEnvironment, store_sessions: sessionmaker[Session]
) -> None:
    client = temporal_env.client
    workflow_id = f"wedged-cli/{uuid.uuid4().hex[:8]}"
    queue = f"wedged-{uuid.uuid4().hex[:8]}"
    env = {
        "CONVEYOR_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "CONVEYOR_DATABASE_URL": store_sessions.kw["bind"].url.render_as_string(
            hide_password=False
        ),
    }
    async with Worker(
        client,
        task_queue=queue,
        workflows=[WedgedTaskWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            WedgedTaskWorkflow.run,
            None,
            id=workflow_id,
            task_queue=queue,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SA_PIPELINE, "wedged-cli")]
            ),
        )
        await handle.signal(WedgedTaskWorkflow.wedge)
        for _ in range(100):
            if (await handle.describe()).raw_description.pending_workflow_task.attempt > 1:
                break
            await asyncio.sleep(0.1)

        started = time.monotonic()
        code, err = await run("task", "show", workflow_id, env=env)
        assert time.monotonic() - started < 20
        line = one_line(err)
        assert code == 1
        assert f"{workflow_id} is stuck since" in line
        assert "last error: deliberately failing workflow task" in line

        for _ in range(100):  # visibility is eventually consistent
            if [i async for i, _ in ConveyorClient(client).list_tasks(pipeline="wedged-cli")]:
                break
            await asyncio.sleep(0.1)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "starter.py"),
            "reconcile",
            "--pipeline",
            "wedged-cli",
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        assert time.monotonic() - started < 20
        assert proc.returncode == 1
        assert f"stuck: {workflow_id} is stuck since" in out.decode()
        assert "checked 1 task(s): 0 drifted (found), 0 orphan(s), 1 stuck" in out.decode()


async def test_a_task_no_worker_answers_for_is_one_line_and_exit_4(
    temporal_env: WorkflowEnvironment,
) -> None:
    client = temporal_env.client
    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    conveyor = ConveyorClient(client, queue)
    pipeline = load_pipeline_file(str(ROOT / "examples" / "label-review.yaml"))
    created = await conveyor.create_task(pipeline, f"silent-{uuid.uuid4().hex[:6]}", {"text": "t"})
    env = {
        "CONVEYOR_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "CONVEYOR_TASK_QUEUE": queue,
        "CONVEYOR_UPDATE_TIMEOUT": "2",
    }
    for args in (
        ["task", "show", created.workflow_id],
        ["claim", created.workflow_id, "--as", "ana"],
    ):
        started = time.monotonic()
        code, err = await run(*args, env=env)
        assert time.monotonic() - started < 15
        line = one_line(err)
        assert code == EXIT_UNAVAILABLE, err
        assert "is a worker running" in line
