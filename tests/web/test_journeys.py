"""The main journeys in a real browser: a writer answers, a reviewer fails it with a reason, the
writer reworks it (seeing the reason), the reviewer passes it; an admin finds the task in the
Data Explorer, reads its timeline, edits the submission, tags it and exports the selection.
Screenshots of each main page are taken on the way.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from playwright.async_api import Page, expect

from conveyor.client import ConveyorClient
from tests.support.actors import claim, eventually, nodes, rid
from tests.web.conftest import ROOT, SignIn, WebApp
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    Escalate,
    Review,
    Submit,
    TaskStatus,
    Verdict,
)
from workflows.pipeline_messages import (
    PipelineStatus,
)

PIPELINE = "support-answers"
QUESTIONS = [
    "How do I reset my password?",
    "Can I change the delivery address after ordering?",
    "Do you ship to Norway?",
    "Why was my card declined?",
    "How long does a refund take?",
    "Can I pause my subscription?",
]
REPLIES = [
    "Use the 'Forgot password' link on the sign-in page; the email arrives within a minute.",
    "Yes, until the parcel ships: open the order and choose 'Change address'.",
    "We ship to Norway in 3-5 working days; customs fees are included at checkout.",
    "Your bank refused the payment; call them or try another card.",
    "Refunds reach your account 5-10 working days after we receive the item.",
]


def support_answers() -> Pipeline:
    """The answer-evaluate example under its own name: an LLM suggestion, evaluators (PII,
    length, an LLM judge) and a reviewer's rating compared with the judge."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "examples/answer-evaluate.yaml").read_text())
    raw["name"] = PIPELINE
    return validate_pipeline(raw)


async def seed(conveyor: ConveyorClient) -> list[str]:
    """Apply and activate the pipeline and create its tasks; drive the background ones (all
    but the first) to a mix of states through the client library, so the explorer and the
    analytics have something to show."""
    pipeline = support_answers()
    applied = await conveyor.apply_pipeline(pipeline, by="tests")
    if applied.status == PipelineStatus.DRAFT:
        await conveyor.set_pipeline_status(PIPELINE, PipelineStatus.ACTIVE, by="tests")
    rows = [{"key": f"q-{i + 1}", "question": q} for i, q in enumerate(QUESTIONS)]
    results = await conveyor.create_tasks(PIPELINE, rows, key_column="key")
    ids = [r.workflow_id for r in results]
    for i, workflow_id in enumerate(ids[1:]):
        task = conveyor.task(workflow_id)
        await eventually(task, lambda v: bool(nodes(v)["answer"].draft.get("suggestion")))
        if i == 4:
            continue  # left Available
        token = await claim(task, "cam", ["writer"], "answer")
        await task.send(
            Submit(
                request_id=rid(),
                contributor="cam",
                node="answer",
                token=token,
                values={"reply": REPLIES[i]},
            )
        )
        if i == 3:
            await task.send(Escalate(request_id=rid(), admin="root", reason="legal question"))
            continue
        token = await claim(task, "dee", ["reviewer"], "check")
        await task.send(
            Review(
                request_id=rid(),
                contributor="dee",
                node="check",
                token=token,
                verdict=Verdict.PASS,
                values={"helpful_rating": i != 1},
            )
        )
    return ids


async def open_row_action(page: Page, key: str, button: str) -> None:
    row = page.locator("tr", has=page.locator(f"text={key}")).first
    await row.get_by_role("button", name=button).click()
    await page.wait_for_load_state()


async def test_answer_review_rework_and_admin(
    web: WebApp, sign_in: SignIn, screenshots: Callable[[str], Path]
) -> None:
    ids = await seed(web.conveyor)
    main = ids[0]
    task = web.conveyor.task(main)
    await eventually(task, lambda v: bool(nodes(v)["answer"].draft.get("suggestion")))

    # --- the writer claims, fills and submits ------------------------------------------------
    ana = await sign_in("ana")
    await expect(ana).to_have_url(re.compile(r"/work$"))
    await expect(ana.locator("tr", has_text="q-1")).to_be_visible()
    await ana.screenshot(path=screenshots("work-queue"), full_page=True)
    await open_row_action(ana, "q-1", "Claim")
    await expect(ana.locator("h1")).to_have_text("Answer the question")
    # upstream context: the question (seed data) is shown read-only
    await expect(ana.locator(".context")).to_contain_text(QUESTIONS[0])

    await ana.fill("#f-reply", "Too short")
    await ana.get_by_role("button", name="Submit").click()
    error = ana.locator("[data-field=reply] .field-error")
    await expect(error).to_contain_text("too short")
    await ana.fill("#f-reply", "Click 'Forgot password' on the sign-in page.")
    await ana.get_by_role("button", name="Save draft").click()
    await expect(ana.locator(".flash.notice")).to_contain_text("draft saved")
    await expect(ana.locator("#f-reply")).to_have_value(
        "Click 'Forgot password' on the sign-in page."
    )
    await ana.get_by_role("button", name="Submit").click()
    await expect(ana.locator(".flash.notice")).to_contain_text(f"submitted answer of {main}")
    await expect(ana.locator("tr", has_text="q-1")).to_be_visible()  # the Submitted tab

    # --- the reviewer fails it with a reason ---------------------------------------------------
    bo = await sign_in("bo")
    await open_row_action(bo, "q-1", "Claim")
    await expect(bo.locator("[data-review-value=reply]")).to_contain_text("Forgot password")
    await bo.locator("[data-field=helpful_rating] label", has_text="No").click()
    await bo.fill("#reason", "Say where the link is and how long the email takes.")
    await bo.screenshot(path=screenshots("review"), full_page=True)
    await bo.get_by_role("button", name="Fail — send back").click()
    await expect(bo.locator(".flash.notice")).to_contain_text("review failed")

    # --- the writer reworks it and sees the reason ---------------------------------------------
    await ana.goto("/work")
    await expect(ana.locator("tr", has_text="q-1")).to_contain_text("Rework: Say where the link")
    await open_row_action(ana, "q-1", "Claim")
    await expect(ana.get_by_test_id("rework-reason")).to_contain_text(
        "Say where the link is and how long the email takes."
    )
    await ana.fill(
        "#f-reply",
        "Click 'Forgot password' under the sign-in button; the email arrives within a minute.",
    )
    await ana.screenshot(path=screenshots("task-form-rework"), full_page=True)
    await ana.get_by_role("button", name="Submit").click()
    await expect(ana.locator(".flash.notice")).to_contain_text("submitted answer")

    # --- the admin finds the task, reads its timeline, edits the submission, tags it --------
    root = await sign_in("root")
    await root.get_by_role("link", name=PIPELINE).click()
    await expect(root.locator("[data-count=Finished] .n")).to_have_text(re.compile(r"[1-9]"))
    await root.screenshot(path=screenshots("explorer-metadata"), full_page=True)
    await root.fill("#text", "reset my password")
    await root.get_by_role("button", name="Apply").click()
    await expect(root.locator("table.data tbody tr")).to_have_count(1)
    await root.get_by_role("link", name="q-1").click()
    await expect(root.locator("h1")).to_contain_text("q-1")

    await root.get_by_role("link", name=re.compile("Timeline")).click()
    timeline = root.locator(".timeline")
    await expect(timeline).to_contain_text("Say where the link is")
    await expect(timeline.locator("li[data-kind=reviewed]")).to_have_count(1)
    await expect(timeline.locator("li[data-kind=submitted]")).to_have_count(2)
    await root.screenshot(path=screenshots("task-timeline"), full_page=True)

    await root.get_by_role("link", name="Nodes").click()
    edit = root.locator("[data-edit=answer]")
    await edit.locator("summary").click()
    await edit.locator("#f-reply").fill(
        "Click 'Forgot password' under the sign-in button (edited); the email takes a minute."
    )
    await edit.locator("input[name=reason]").fill("house style")
    await edit.get_by_role("button", name="Save edit").click()
    await expect(root.locator(".flash.notice")).to_be_visible()
    await expect(root.locator("[data-value='answer.reply']")).to_contain_text("(edited)")
    await root.fill("input[name=tags]", "gold")
    await root.get_by_role("button", name="Add").click()
    await expect(root.get_by_test_id("tags")).to_contain_text("gold")
    await root.screenshot(path=screenshots("task-detail"), full_page=True)

    # --- the reviewer passes it (and sees the admin's edit) -------------------------------------
    await bo.goto("/work")
    await open_row_action(bo, "q-1", "Claim")
    await expect(bo.locator("[data-review-value=reply]")).to_contain_text("(edited)")
    await bo.get_by_role("button", name="Fail — send back").click()  # no reason, no rating
    await expect(bo.locator(".field-error")).to_have_count(2)
    await expect(bo.locator(".form-field", has=bo.locator("#reason"))).to_contain_text(
        "required when failing"
    )
    await bo.locator("[data-field=helpful_rating] label", has_text="Yes").click()
    await bo.get_by_role("button", name="Pass").click()
    await expect(bo.locator(".flash.notice")).to_contain_text("review passed")
    view = await eventually(task, lambda v: v.status == TaskStatus.FINISHED)
    assert nodes(view)["check"].passes == 1 and nodes(view)["check"].failures == 1

    # --- contributors and viewers stay in their lane -----------------------------------------
    response = await ana.goto("/explorer")
    assert response is not None and response.status == 403
    await expect(ana.locator("h1")).to_have_text("Not allowed")
    vic = await sign_in("vic")
    await expect(vic).to_have_url(re.compile(r"/explorer$"))
    refused = await vic.request.post(
        "/explorer/task/action", form={"id": main, "op": "tag", "tags": "nope"}
    )
    assert refused.status == 403
    await vic.goto(f"/explorer/task?id={main}")
    await expect(vic.locator("h1")).to_contain_text("q-1")
    await expect(vic.locator(".admin-ops")).to_have_count(0)

    # --- the admin exports the selection; the analytics tabs ---------------------------------
    await root.goto(f"/explorer/pipelines/{PIPELINE}?tab=data")
    await expect(root.locator("table.data")).to_contain_text("(edited)")
    await root.screenshot(path=screenshots("explorer-task-data"), full_page=True)
    await root.locator(f"input[name=ids][value='{main}']").check()
    await root.locator("select[name=format]").select_option("csv")
    async with root.expect_download() as info:
        await root.get_by_role("button", name="Export").click()
    download = await info.value
    text = Path(await download.path()).read_text(encoding="utf-8-sig")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [r["workflow_id"] for r in exported] == [main]
    assert "(edited)" in exported[0]["answer.reply"]
    assert exported[0]["status"] == "Finished"
    assert "gold" in exported[0]["tags"]

    await root.get_by_role("link", name="Evaluation Analytics").click()
    await expect(root.locator("[data-criterion=helpful]").first).to_be_visible()
    await expect(root.locator("[data-agreement=helpful]")).to_be_visible()
    await root.screenshot(path=screenshots("explorer-eval-analytics"), full_page=True)
    await root.get_by_role("link", name="LLM Analytics").click()
    await expect(root.locator(".kpis")).to_contain_text("calls")
    await root.screenshot(path=screenshots("explorer-llm-analytics"), full_page=True)


async def test_sign_in_is_required_and_keys_are_checked(web: WebApp, sign_in: SignIn) -> None:
    page = await sign_in("ana")
    context = page.context
    await context.clear_cookies()
    await page.goto("/explorer/pipelines/x?tab=data")
    await expect(page).to_have_url(re.compile(r"/signin\?next="))
    await page.fill("#key", "cvk_" + uuid.uuid4().hex)
    await page.click("button[type=submit]")
    await expect(page.locator(".flash.error")).to_contain_text("unknown")
    await page.fill("#key", web.keys["ana"])
    await page.click("button[type=submit]")
    # back where she was going: a contributor may not see the explorer
    await expect(page.locator("h1")).to_have_text("Not allowed")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/signin"))
    response = await page.goto("/work")
    assert response is not None and "/signin" in page.url
