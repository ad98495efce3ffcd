"""starter.py and worker.py as operators run them: real processes against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from conveyor.client import ConveyorClient
from tests.support.actors import eventually, nodes, rid
from workflows.messages import NodeStatus, TaskStatus

ROOT = Path(__file__).resolve().parent.parent


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


def server_env(temporal_env: WorkflowEnvironment, conveyor: ConveyorClient) -> dict[str, str]:
    return {
        "CONVEYOR_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "CONVEYOR_TASK_QUEUE": conveyor.task_queue,
    }


async def test_pipeline_validate_lists_every_problem(tmp_path: Path) -> None:
    code, out, _ = await run("pipeline", "validate", "examples/label-review.yaml")
    assert code == 0 and "is valid" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\n"
        "nodes:\n"
        "  - {name: start, kind: start, next: [label]}\n"
        "  - {name: label, kind: subtask, fields: [{name: x, type: strng}], next: [nowhere]}\n"
        "  - {name: lonely, kind: subtask, fields: [{name: y, type: short_text}], next: [end]}\n"
        "  - {name: end, kind: end}\n"
    )
    code, _, err = await run("pipeline", "validate", str(bad))
    assert code == 3
    assert "unknown field type 'strng'" in err
    assert "'nowhere'" in err
    assert "node 'lonely': not reachable from start" in err


async def test_a_whole_round_through_the_cli(
    temporal_env: WorkflowEnvironment, conveyor: ConveyorClient
) -> None:
    env = server_env(temporal_env, conveyor)
    key = f"cli-{rid()[:8]}"
    code, out, _ = await run(
        "task",
        "create",
        "--pipeline",
        "examples/label-review.yaml",
        "--key",
        key,
        "--data",
        '{"text": "so so"}',
        env=env,
    )
    assert code == 0, out
    workflow_id = out.strip()
    assert workflow_id == f"label-review/{key}"
    code, out, err = await run(
        "task",
        "create",
        "--pipeline",
        "examples/label-review.yaml",
        "--key",
        key,
        "--data",
        '{"text": "so so"}',
        env=env,
    )
    assert code == 0 and "already existed" in err and out.strip() == workflow_id

    code, out, _ = await run("claim", workflow_id, "--as", "ana", "--roles", "labeler", env=env)
    assert code == 0, out
    token = out.split("token: ")[1].strip()

    code, _, err = await run(
        "submit",
        workflow_id,
        "--as",
        "ana",
        "--node",
        "label",
        "--token",
        token,
        "--values",
        '{"label": "meh"}',
        env=env,
    )
    assert code == 2 and "label:" in err and "positive" in err

    code, out, _ = await run(
        "submit",
        workflow_id,
        "--as",
        "ana",
        "--node",
        "label",
        "--token",
        token,
        "--values",
        '{"label": "neutral"}',
        "--json",
        env=env,
    )
    assert code == 0 and json.loads(out)["accepted"] is True

    code, out, _ = await run("tag", workflow_id, "--as", "root", "gold", env=env)
    assert code == 0
    code, out, _ = await run("task", "show", workflow_id, "--json", env=env)
    view = json.loads(out)
    assert view["tags"] == ["gold"]
    assert {n["name"]: n["status"] for n in view["nodes"]}["check"] == "Available"

    code, out, _ = await run("pause", workflow_id, "--signal", env=env)
    assert code == 0 and "signal pause sent" in out
    task = conveyor.task(workflow_id)
    await eventually(task, lambda v: v.status == TaskStatus.PAUSED)

    code, _, err = await run("task", "show", "label-review/none", env=env)
    assert code != 0

    code, _, err = await run(
        "claim", workflow_id, "--as", "bo", env={"CONVEYOR_TEMPORAL_ADDRESS": "127.0.0.1:1"}
    )
    assert code == 4 and "cannot reach Temporal" in err  # EXIT_UNAVAILABLE


def _get_json(url: str, key: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_dev_brings_up_server_worker_and_demo(tmp_path: Path) -> None:
    port, ui_port, web_port = free_port(), free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        "dev",
        "--ephemeral",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--web-port",
        str(web_port),
        "--data-dir",
        str(tmp_path),
        "--metrics-port",
        str(free_port()),
        "--app-metrics-port",
        str(free_port()),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    banner = ""
    try:
        async with asyncio.timeout(60):
            while "Press Ctrl-C to stop." not in banner:
                line = await proc.stdout.readline()
                if not line:
                    break
                banner += line.decode()
        assert "Press Ctrl-C to stop." in banner, banner
        assert f"http://127.0.0.1:{ui_port}" in banner
        assert "llm-draft-edit/demo-1" in banner
        assert f"Web app            http://127.0.0.1:{web_port}/" in banner
        admin_key = banner.split("sign in with the local admin key:")[1].split()[0]
        me = await asyncio.to_thread(_get_json, f"http://127.0.0.1:{web_port}/api/v1/me", admin_key)
        assert me["name"] == "admin" and me["role"] == "admin", me

        from conveyor.devserver import wait_until_ready

        client = await wait_until_ready(f"127.0.0.1:{port}")
        conveyor = ConveyorClient(client)
        task = conveyor.task("llm-draft-edit/demo-1")
        view = await eventually(task, lambda v: nodes(v)["edit"].status == NodeStatus.AVAILABLE)
        draft = nodes(view)["draft"].values["draft_answer"]
        assert "not a real LLM" in draft

        # The banner's commands work pasted into a new terminal, in another directory.
        lines = banner.split("in another terminal (from any directory):\n")[1].splitlines()
        export, show = lines[0].strip(), lines[1].strip()
        assert export.startswith("export CONVEYOR_TEMPORAL_ADDRESS=") and " task show " in show
        pasted = await asyncio.create_subprocess_exec(
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            f"HOME={os.environ['HOME']}",
            "bash",
            "-c",
            f"{export}\n{show}",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await pasted.communicate()
        assert pasted.returncode == 0 and "task      label-review/demo-1" in out.decode(), out
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await proc.wait()
    assert proc.returncode == 0


async def test_worker_refuses_an_unmigrated_store(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "worker.py"),
        cwd=ROOT,
        env={**os.environ, "CONVEYOR_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 2
    assert "python starter.py db upgrade" in out.decode()


async def test_worker_stops_gracefully_on_sigterm(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    code, out, err = await run("db", "upgrade", env={"CONVEYOR_DATABASE_URL": store_url})
    assert code == 0 and "is at revision" in out, err
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "worker.py"),
        cwd=ROOT,
        env={
            **os.environ,
            "CONVEYOR_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
            "CONVEYOR_TASK_QUEUE": f"sigterm-{rid()[:6]}",
            "CONVEYOR_SHUTDOWN_GRACE": "5",
            "CONVEYOR_DATABASE_URL": store_url,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = ""
    async with asyncio.timeout(60):
        while "polling task queue" not in output:
            line = await proc.stdout.readline()
            if not line:
                pytest.fail(f"worker exited early:\n{output}")
            output += line.decode()
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        rest = (await proc.stdout.read()).decode()
        await proc.wait()
    assert proc.returncode == 0, output + rest
    assert "shutting down" in rest


async def test_queue_and_reconcile_through_the_cli(
    temporal_env: WorkflowEnvironment,
    conveyor: ConveyorClient,
    store_sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    bind = store_sessions.kw["bind"]
    env = {
        **server_env(temporal_env, conveyor),
        "CONVEYOR_DATABASE_URL": bind.url.render_as_string(hide_password=False),
    }
    pipeline = f"cliq-{rid()[:8]}"
    source = (ROOT / "examples" / "label-review.yaml").read_text()
    definition = tmp_path / "pipeline.yaml"
    definition.write_text(source.replace("name: label-review", f"name: {pipeline}", 1))
    code, out, err = await run(
        "task",
        "create",
        "--pipeline",
        str(definition),
        "--key",
        "k1",
        "--data",
        '{"text": "t"}',
        env=env,
    )
    assert code == 0, err
    for _ in range(100):
        code, out, _ = await run(
            "queue", "list", "--as", "ana", "--roles", "labeler", "--pipeline", pipeline, env=env
        )
        if f"{pipeline}/k1" in out:
            break
        await asyncio.sleep(0.1)
    assert f"{pipeline}/k1" in out and "label" in out
    code, out, err = await run(
        "queue", "next", "--as", "ana", "--roles", "labeler", "--pipeline", pipeline, env=env
    )
    assert code == 0 and f"claimed label of {pipeline}/k1" in out, err
    code, out, _ = await run("queue", "mine", "--as", "ana", env=env)
    assert f"{pipeline}/k1" in out
    code, out, err = await run(
        "queue", "next", "--as", "bo", "--roles", "labeler", "--pipeline", pipeline, env=env
    )
    assert code == 1 and "no work for bo" in err
    for _ in range(50):
        code, out, _ = await run("reconcile", "--pipeline", pipeline, env=env)
        if code == 0:
            break
        await asyncio.sleep(0.2)
    assert code == 0 and "checked 1 task(s): 0 drifted" in out


async def test_pipeline_lifecycle_through_the_cli(
    temporal_env: WorkflowEnvironment,
    conveyor: ConveyorClient,
    store_sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    env = {
        **server_env(temporal_env, conveyor),
        "CONVEYOR_DATABASE_URL": store_sessions.kw["bind"].url.render_as_string(
            hide_password=False
        ),
    }
    name = f"cli-life-{rid()[:8]}"
    source = (ROOT / "examples" / "label-review.yaml").read_text()
    definition = tmp_path / "p.yaml"
    definition.write_text(source.replace("name: label-review", f"name: {name}", 1))

    code, out, err = await run("task", "create", "--pipeline", name, "--key", "a", env=env)
    assert code == 3 and "apply" in err
    code, out, _ = await run("pipeline", "apply", str(definition), env=env)
    assert code == 0 and "applied [Draft]" in out
    code, out, err = await run(
        "task", "create", "--pipeline", name, "--key", "a", "--data", '{"text": "x"}', env=env
    )
    assert code == 3 and "activate it first" in err
    code, out, _ = await run("pipeline", "apply", str(definition), "--activate", env=env)
    assert code == 0 and "already current" in out and "is Active" in out
    code, out, _ = await run(
        "task", "create", "--pipeline", name, "--key", "a", "--data", '{"text": "x"}', env=env
    )
    assert code == 0 and out.strip() == f"{name}/a"
    code, out, _ = await run("pipeline", "pause", name, "--reason", "new guidelines", env=env)
    assert code == 0 and "is Paused" in out
    task = conveyor.task(f"{name}/a")
    await eventually(task, lambda v: v.status == TaskStatus.PAUSED, timeout=30)
    code, out, err = await run("pipeline", "archive", name, env=env)
    assert code == 3 and "cannot become Archived" in err
    code, out, _ = await run("pipeline", "resume", name, env=env)
    assert code == 0
    await eventually(task, lambda v: v.status == TaskStatus.IN_PROGRESS, timeout=30)
    code, out, _ = await run("pipeline", "show", name, env=env)
    assert code == 0 and "[Active]" in out and "resume: done" in out
    code, out, _ = await run("pipeline", "list", env=env)
    assert code == 0 and name in out
