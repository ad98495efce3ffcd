"""An operator drives a task with nothing but the stock `temporal` CLI (the README's examples)."""

from __future__ import annotations

import asyncio
import base64
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


async def test_payloads_the_stock_cli_can_send_never_break_a_task(
    temporal_env: WorkflowEnvironment, conveyor: ConveyorClient
) -> None:
    """Binary garbage, no input, two inputs, a typo'd name: refused or recorded, never wedged."""
    pipeline = label_review(name=f"cli-{rid()[:8]}")
    created = await conveyor.create_task(pipeline, "doc-bad", {"text": "fine"})
    wid = created.workflow_id
    garbage = ["--input", base64.b64encode(b"garbage").decode(), "--input-base64"]
    binary = [*garbage, "--input-meta", "encoding=binary/plain"]
    target = ["--workflow-id", wid]

    code, _, err = await temporal(
        temporal_env, "workflow", "update", "execute", *target, "--name", "claim", *binary
    )
    assert code != 0 and "not a valid claim command" in err, err
    code, _, err = await temporal(
        temporal_env,
        "workflow",
        "update",
        "execute",
        *target,
        "--name",
        "claim",
        "--input",
        '{"request_id": "cli-bad", "contributor": 5}',
    )
    assert code != 0 and "contributor" in err, err

    sends = [
        ["--name", "claim", *binary],
        ["--name", "claim"],
        ["--name", "submit", "--input", "{}", "--input", "{}"],
        ["--name", "review", "--input", '{"request_id": "cli-r", "verdict": "maybe"}'],
        ["--name", "clam", "--input", '{"request_id": "cli-typo", "contributor": "ana"}'],
    ]
    for args in sends:
        code, _, err = await temporal(temporal_env, "workflow", "signal", *target, *args)
        assert code == 0, err

    for _ in range(100):
        code, out, _ = await temporal(
            temporal_env, "workflow", "query", "--workflow-id", wid, "--name", "state"
        )
        rejected = [e for e in out["queryResult"][0]["timeline"] if e["kind"] == "rejected"]
        if len(rejected) == len(sends):
            break
        await asyncio.sleep(0.1)
    assert [e["message"].split(" rejected:")[0] for e in rejected] == [
        "claim",
        "claim",
        "submit",
        "review",
        "clam",
    ]

    code, out, _ = await temporal(temporal_env, "workflow", "show", *target)
    kinds = {e.get("eventType") for e in (out or {}).get("events", [])}
    assert "EVENT_TYPE_WORKFLOW_TASK_FAILED" not in kinds and kinds, kinds
    code, out, err = await temporal(
        temporal_env,
        "workflow",
        "update",
        "execute",
        *target,
        "--name",
        "claim",
        "--input",
        '{"request_id": "cli-good", "contributor": "ana", "roles": ["labeler"]}',
    )
    assert code == 0 and out["result"]["token"], err
