"""Every field type in the browser, per-field errors from the workflow's validation, the claim
limit in the work queue, and the explorer's paging, derived columns and bulk actions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from playwright.async_api import expect

from conveyor.client import ConveyorClient
from tests.support.actors import claim, eventually, nodes, rid
from tests.web.conftest import SignIn, WebApp
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    NodeStatus,
    Submit,
)
from workflows.pipeline_messages import (
    PipelineStatus,
)

PIPELINE = "field-showcase"
TICKETS = [
    "My parcel arrived crushed and the invoice shows the wrong address.",
    "The blender stopped working after two days.",
    "I was charged twice for one order.",
    "Where is my refund?",
]


def showcase() -> Pipeline:
    """A triage step, then a form with every field type and its constraints."""
    return validate_pipeline(
        {
            "name": PIPELINE,
            "claim_limits": {"annotator": 1},
            "nodes": [
                {"name": "start", "kind": "start", "next": ["triage"]},
                {
                    "name": "triage",
                    "kind": "subtask",
                    "title": "Triage the ticket",
                    "roles": ["triager"],
                    "fields": [
                        {"name": "ticket", "type": "long_text", "source": "predefined"},
                        {"name": "priority", "type": "select", "options": ["low", "high"]},
                    ],
                    "next": ["annotate"],
                },
                {
                    "name": "annotate",
                    "kind": "subtask",
                    "title": "Annotate the ticket",
                    "instructions": "Read the ticket and the triage, then describe the case.",
                    "roles": ["annotator"],
                    "fields": [
                        {"name": "ticket", "type": "long_text", "source": "predefined"},
                        {
                            "name": "guide",
                            "type": "long_text",
                            "source": "static",
                            "label": "Style guide",
                            "value": "Summaries are one sentence, in the customer's words.",
                        },
                        {"name": "summary", "type": "short_text", "max_length": 80},
                        {"name": "details", "type": "long_text", "required": False},
                        {
                            "name": "snippet",
                            "type": "code",
                            "language": "json",
                            "required": False,
                        },
                        {"name": "link", "type": "url", "required": False},
                        {"name": "urgent", "type": "boolean", "label": "Urgent?"},
                        {"name": "effort", "type": "number", "min": 0, "max": 10},
                        {"name": "items", "type": "integer", "min": 1},
                        {"name": "due", "type": "datetime", "required": False},
                        {
                            "name": "category",
                            "type": "select",
                            "options": ["billing", "shipping", "product", "other"],
                        },
                        {
                            "name": "topics",
                            "type": "multi_select",
                            "options": ["refund", "damage", "delay", "invoice"],
                            "min": 1,
                            "max": 2,
                        },
                        {"name": "quality", "type": "rating", "label": "Ticket quality"},
                        {
                            "name": "order",
                            "type": "ranking",
                            "label": "What matters most",
                            "options": ["speed", "price", "quality"],
                        },
                        {
                            "name": "better",
                            "type": "pairwise",
                            "label": "Which reply is better?",
                            "options": ["reply A", "reply B"],
                            "allow_tie": True,
                        },
                    ],
                    "evaluators": [
                        {
                            "name": "has_summary",
                            "kind": "length",
                            "fields": ["summary"],
                            "min_length": 3,
                        }
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


async def seed(conveyor: ConveyorClient) -> list[str]:
    pipeline = showcase()
    applied = await conveyor.apply_pipeline(pipeline, by="tests")
    if applied.status == PipelineStatus.DRAFT:
        await conveyor.set_pipeline_status(PIPELINE, PipelineStatus.ACTIVE, by="tests")
    rows = [{"key": f"s-{i + 1}", "ticket": t} for i, t in enumerate(TICKETS)]
    ids = [r.workflow_id for r in await conveyor.create_tasks(PIPELINE, rows, key_column="key")]
    for workflow_id in ids[:2]:
        task = conveyor.task(workflow_id)
        token = await claim(task, "cam", ["triager"], "triage")
        await task.send(
            Submit(
                request_id=rid(),
                contributor="cam",
                node="triage",
                token=token,
                values={"priority": "high"},
            )
        )
        await eventually(task, lambda v: nodes(v)["annotate"].status == NodeStatus.AVAILABLE)
    return ids


async def test_every_field_type_with_errors_and_the_claim_limit(
    web: WebApp, sign_in: SignIn, screenshots: Callable[[str], Path]
) -> None:
    ids = await seed(web.conveyor)
    ana = await sign_in("ana")
    await expect(ana.locator("tr", has_text="s-2")).to_be_visible()

    # "Claim next" takes the oldest; the claim limit (1) then disables the other Claim button.
    await ana.get_by_role("button", name="Claim next task").click()
    await expect(ana.locator("h1")).to_have_text("Annotate the ticket")
    claimed_url = ana.url
    workflow_id = next(i for i in ids if f"id={i.replace('/', '%2F')}" in claimed_url)
    await ana.goto("/work")
    await expect(ana.locator(".limit-pill", has_text=PIPELINE)).to_contain_text("1 of 1 claimed")
    other = ana.locator("tr", has=ana.locator("td b", has_text=re.compile(r"^s-[12]$")))
    await expect(other.get_by_role("button", name="Claim")).to_be_disabled()

    await ana.goto(claimed_url)
    # the context: seed data and the upstream triage, read-only; the static style guide
    await expect(ana.locator(".context")).to_contain_text("Triage the ticket")
    await expect(ana.locator(".context")).to_contain_text("high")
    await expect(ana.locator("main")).to_contain_text("Summaries are one sentence")

    await ana.fill("#f-summary", "Parcel crushed; invoice has the wrong address.")
    await ana.fill("#f-details", "Customer sent photos.\nWants a replacement.")
    await ana.fill("#f-snippet", '{"order": 1234}')
    await ana.fill("#f-link", "https://example.com/orders/1234")
    await ana.locator("[data-field=urgent] label", has_text="Yes").click()
    await ana.fill("#f-effort", "12")
    await ana.fill("#f-items", "3")
    await ana.fill("#f-due", "2026-12-01T09:30")
    await ana.locator("[data-field=category] label", has_text="shipping").click()
    for topic in ("damage", "invoice", "delay"):
        await ana.locator("[data-field=topics] label", has_text=topic).click()
    await ana.locator("[data-field=quality] label", has_text="4").click()
    await ana.get_by_role("button", name="move quality up").click()
    await ana.get_by_role("button", name="move quality up").click()
    await ana.locator("[data-field=better] label", has_text="Tie").click()
    await ana.get_by_role("button", name="Submit").click()

    await expect(ana.locator("[data-field=effort] .field-error")).to_contain_text("at most 10")
    await expect(ana.locator("[data-field=topics] .field-error")).to_contain_text("at most 2")
    await expect(ana.locator(".field-error")).to_have_count(2)
    # what was entered is kept
    await expect(ana.locator("#f-summary")).to_have_value(
        "Parcel crushed; invoice has the wrong address."
    )
    await ana.screenshot(path=screenshots("task-form"), full_page=True)

    await ana.fill("#f-effort", "7.5")
    await ana.locator("[data-field=topics] label", has_text="delay").click()
    await ana.get_by_role("button", name="Submit").click()
    await expect(ana.locator(".flash.notice")).to_contain_text("submitted annotate")

    view = await web.conveyor.task(workflow_id).state()
    values = nodes(view)["annotate"].values
    assert values["summary"] == "Parcel crushed; invoice has the wrong address."
    assert values["details"] == "Customer sent photos.\nWants a replacement."
    assert values["urgent"] is True and values["effort"] == 7.5 and values["items"] == 3
    assert values["due"].startswith("2026-12-01T09:30")
    assert values["category"] == "shipping" and values["topics"] == ["damage", "invoice"]
    assert values["quality"] == 4 and values["better"] == "tie"
    assert values["order"] == ["quality", "speed", "price"]
    assert values["link"] == "https://example.com/orders/1234"


async def test_explorer_paging_derived_columns_and_bulk_actions(
    web: WebApp, sign_in: SignIn
) -> None:
    root = await sign_in("root")
    base = f"/explorer/pipelines/{PIPELINE}"
    await root.goto(f"{base}?tab=metadata&sort=task_key&limit=25")
    await expect(root.locator("table.data tbody tr")).to_have_count(len(TICKETS))

    # keyset paging: two pages of two, in task key order
    await root.goto(f"{base}?sort=task_key&limit=2")
    keys = root.locator("table.data tbody tr td:nth-child(2)")
    await expect(keys).to_have_text(["s-1", "s-2"])
    await root.get_by_role("link", name="Next page").click()
    await expect(keys).to_have_text(["s-3", "s-4"])
    await expect(root.get_by_role("link", name="Next page")).to_have_count(0)

    # a status filter, and a derived column over the task data
    await root.goto(f"{base}?tab=data&sort=task_key&derive=long+%3D+len(ticket)+%3E+40")
    await expect(root.locator("th", has_text="long")).to_be_visible()
    first = root.locator("table.data tbody tr").first
    await expect(first.locator("td").last).to_have_text("yes")
    await root.goto(f"{base}?tab=data&derive=broken+%3D+ticket+%2B")
    await expect(root.locator(".field-error")).to_be_visible()

    # export every task matching the filter (not only the ticked rows)
    await root.goto(f"{base}?status=In+Progress&sort=task_key")
    await expect(root.locator("table.data tbody tr")).to_have_count(3)
    await root.locator("select[name=scope]").select_option("filter")
    await root.locator("select[name=format]").select_option("json")
    async with root.expect_download() as info:
        await root.get_by_role("button", name="Export").click()
    exported = json.loads(Path(await (await info.value).path()).read_text())
    assert len(exported) == 3 and {"s-3", "s-4"} <= {r["task_key"] for r in exported}
    assert {r["status"] for r in exported} == {"In Progress"}  # s-1 or s-2 is Finished

    # evaluate a selection with a pipeline evaluator
    await root.goto(f"{base}?sort=task_key")
    await root.locator("input[name=ids][value='field-showcase/s-3']").check()
    await root.get_by_role("button", name="Evaluate").click()
    await expect(root.locator(".flash.notice")).to_contain_text("bulk evaluation")

    # delete, after a confirmation page
    await root.locator("input[name=ids][value='field-showcase/s-4']").check()
    await root.get_by_role("button", name="Delete…").click()
    await expect(root.locator("h1")).to_have_text("Delete 1 task(s)?")
    await root.get_by_role("button", name="Delete 1 task(s)").click()
    await expect(root.locator(".flash.notice")).to_contain_text("deleted 1")
    await expect(root.locator("input[name=ids][value='field-showcase/s-4']")).to_have_count(0)

    # a viewer reads, but cannot act
    vic = await sign_in("vic")
    refused = await vic.request.post(
        f"{base}/bulk", form={"action": "delete", "ids": "field-showcase/s-3", "confirm": "yes"}
    )
    assert refused.status == 403
    await vic.goto(base)
    await expect(vic.get_by_role("button", name="Delete…")).to_have_count(0)
