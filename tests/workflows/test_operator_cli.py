"""An operator drives a task with nothing but the stock `temporal` CLI (the README's examples)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio.testing import WorkflowEnvironment

from conveyor.client import ConveyorClient
from conveyor.devserver import temporal_binary
from tests.support.actors import rid
from tests.support.pipelines import label_review


async def temporal(env: WorkflowEnvironment, *args: str) -> tuple[int, Any, str]:
    """Run the stock CLI against the test server; JSON output parsed when possible."""
    address = env.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(),
        *args,
        "--address",
        address,
        "--output",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    text = out.decode()
    try:
        parsed: Any = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        parsed = text
    return proc.returncode or 0, parsed, err.decode()


async def test_operator_works_a_task_with_the_stock_cli(
    temporal_env: WorkflowEnvironment, conveyor: ConveyorClient
) -> None:
    pipeline = label_review(name=f"cli-{rid()[:8]}")
    created = await conveyor.create_task(pipeline, "doc-1", {"text": "fine"})
    wid = created.workflow_id

    code, out, _ = await temporal(
        temporal_env,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        wid,
        "--name",
        "claim",
        "--input",
        '{"request_id": "cli-claim-1", "contributor": "ana", "roles": ["labeler"]}',
    )
    assert code == 0, out
    token = out["result"]["token"]

    code, _, err = await temporal(
        temporal_env,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        wid,
        "--name",
        "claim",
        "--input",
        '{"request_id": "cli-claim-2", "contributor": "bo", "roles": ["labeler"]}',
    )
    assert code != 0 and "already Claimed by ana" in err

    submit = {
        "request_id": "cli-submit-1",
        "contributor": "ana",
        "node": "label",
        "token": token,
        "values": {"label": "positive"},
    }
    code, _, err = await temporal(
        temporal_env,
        "workflow",
        "signal",
        "--workflow-id",
        wid,
        "--name",
        "submit",
        "--input",
        json.dumps(submit),
    )
    assert code == 0, err

    for _ in range(100):
        code, out, _ = await temporal(
            temporal_env, "workflow", "query", "--workflow-id", wid, "--name", "state"
        )
        view = out["queryResult"][0]
        statuses = {n["name"]: n["status"] for n in view["nodes"]}
        if statuses["check"] == "Available":
            break
        await asyncio.sleep(0.1)
    assert statuses == {
        "start": "Finished",
        "label": "Submitted",
        "check": "Available",
        "end": "Pending",
    }

    query = f"ConveyorPipeline = '{pipeline.name}' AND ConveyorStatus = 'In Progress'"
    for _ in range(100):
        code, out, _ = await temporal(temporal_env, "workflow", "list", "--query", query)
        listed = out if isinstance(out, list) else []
        if any(w["execution"]["workflowId"] == wid for w in listed):
            break
        await asyncio.sleep(0.1)
    assert [w["execution"]["workflowId"] for w in listed] == [wid]
