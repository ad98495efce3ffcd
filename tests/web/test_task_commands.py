"""Every task command the web app offers, sent from its form: the admin operations of a task's
page and the contributor's claim and release, each reaching the task's workflow (the tables of
``conveyor.web.explorer.TASK_OPS`` and ``conveyor.web.contributor.FORM_ACTIONS`` at work)."""

from __future__ import annotations

import uuid

from playwright.async_api import APIResponse, Page

from tests.support.actors import eventually, nodes
from tests.web.conftest import SignIn, WebApp
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    NodeStatus,
    TaskStatus,
)
from workflows.pipeline_messages import (
    PipelineStatus,
)


def _pipeline(name: str) -> Pipeline:
    return validate_pipeline(
        {
            "name": name,
            "nodes": [
                {"name": "start", "kind": "start", "next": ["label"]},
                {
                    "name": "label",
                    "kind": "subtask",
                    "roles": ["annotator"],
                    "fields": [{"name": "label", "type": "short_text"}],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


async def _post(page: Page, url: str, **form: str | float | bool) -> APIResponse:
    response = await page.request.post(url, form=form)
    assert response.ok, (url, form, response.status)
    return response


async def test_the_web_forms_send_their_commands(web: WebApp, sign_in: SignIn) -> None:
    name = f"web-ops-{uuid.uuid4().hex[:6]}"
    await web.conveyor.apply_pipeline(_pipeline(name), by="tests")
    await web.conveyor.set_pipeline_status(name, PipelineStatus.ACTIVE, by="tests")
    created = await web.conveyor.create_task(_pipeline(name), "t-1", {})
    wid = created.workflow_id
    task = web.conveyor.task(wid)
    await eventually(task, lambda v: nodes(v)["label"].status == NodeStatus.AVAILABLE)
    root, ana = await sign_in("root"), await sign_in("ana")

    async def op(op: str, **form: str) -> None:
        await _post(root, "/explorer/task/action", id=wid, op=op, **form)

    await op("pause", reason="lunch")
    await eventually(task, lambda v: v.status == TaskStatus.PAUSED)
    await op("resume")
    await eventually(task, lambda v: v.status == TaskStatus.IN_PROGRESS)
    await op("tag", tags="gold, silver")
    await eventually(task, lambda v: set(v.tags) == {"gold", "silver"})
    await op("untag", tags="silver")
    await eventually(task, lambda v: v.tags == ["gold"])
    await op("escalate")  # no reason: refused by the page, nothing sent
    await op("escalate", reason="legal question")
    await eventually(task, lambda v: v.status == TaskStatus.ESCALATED)
    await op("deescalate", reason="cleared")
    await eventually(task, lambda v: v.status == TaskStatus.IN_PROGRESS)
    # Neither applies to an In Progress task: the task refuses them (a notice, not an error).
    await op("resolve", action="rework")
    await op("retry")

    await _post(ana, "/work/claim", id=wid, node="label")
    view = await eventually(task, lambda v: nodes(v)["label"].status == NodeStatus.CLAIMED)
    await op("release", node="label", reason="reassign")
    await eventually(task, lambda v: nodes(v)["label"].status == NodeStatus.AVAILABLE)

    await _post(ana, "/work/claim", id=wid, node="label")
    view = await eventually(task, lambda v: nodes(v)["label"].status == NodeStatus.CLAIMED)
    claim = nodes(view)["label"].claim
    assert claim is not None and claim.holder == "ana"
    await _post(ana, "/work/task", id=wid, node="label", token=claim.token, action="release")
    view = await eventually(task, lambda v: nodes(v)["label"].status == NodeStatus.AVAILABLE)
    kinds = [e.kind for e in view.timeline]
    assert kinds.count("claimed") == 2 and kinds.count("released") == 1, kinds
    for kind in ("claim_released_by_admin", "escalated", "deescalated", "tagged", "untagged"):
        assert kind in kinds, kinds
