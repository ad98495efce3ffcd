"""Consensus in a real browser: three labelers answer the same text blind (no one's form ever
shows another's answer or draft), they disagree, the adjudicator sees the answers side by side,
takes one with a reason and the task goes on; an admin reads the places, answers, merged answer
and adjudication in the Data Explorer and filters the pipeline's tasks by agreement.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from playwright.async_api import Page, expect

from conveyor.client import ConveyorClient
from store.db import transaction
from store.users import create_key, upsert_user
from tests.support.actors import claim, eventually, nodes, submit
from tests.web.conftest import ROOT, SignIn, WebApp
from tests.web.test_journeys import open_row_action
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import NodeStatus, TaskStatus
from workflows.pipeline_messages import PipelineStatus

TEXT = "The blender works, but it arrived three weeks late and support never answered."
AGREED = "Great price and it arrived the next day."
LABELERS = ("cy", "dan", "eve")
ADJUDICATOR = "lee"

CY_DRAFT = "cy's own draft, for her eyes only"
CY_NOTE = "cy: mostly happy with the blender"
DAN_NOTE = "dan: late delivery and no support"
EVE_NOTE = "eve: mixed feelings"


def consensus_label(name: str) -> Pipeline:
    """The consensus-label example under its own name, with exactly three answers per text (no
    fourth person while they disagree), so a disagreement goes straight to the adjudicator."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "examples/consensus-label.yaml").read_text())
    raw["name"] = name
    label = next(n for n in raw["nodes"] if n["name"] == "label")
    label["consensus"].pop("max_annotators", None)
    raw["description"] = (
        "Sentiment labels by three people per text, blind. A text they cannot agree on goes to "
        "an adjudicator, who sees every answer side by side and settles it with a reason; "
        "labels with a confidence below 0.8 get a double-check by a lead."
    )
    return validate_pipeline(raw)


def add_people(web: WebApp) -> None:
    """Three labelers and a lead (the adjudicator), signed in with keys of their own."""
    with transaction(web.sessions) as session:
        for name in LABELERS:
            upsert_user(session, name, "contributor", ["labeler"])
        upsert_user(session, ADJUDICATOR, "contributor", ["lead"])
        for name in (*LABELERS, ADJUDICATOR):
            web.keys[name] = create_key(session, name, "consensus browser tests")


async def seed(conveyor: ConveyorClient, name: str) -> tuple[str, str]:
    """Two texts: one the labelers will disagree on (answered in the browser), one three other
    people agreed on through the client library."""
    pipeline = consensus_label(name)
    applied = await conveyor.apply_pipeline(pipeline, by="tests")
    if applied.status == PipelineStatus.DRAFT:
        await conveyor.set_pipeline_status(name, PipelineStatus.ACTIVE, by="tests")
    rows = [{"key": "txt-1", "text": TEXT}, {"key": "txt-2", "text": AGREED}]
    created = await conveyor.create_tasks(name, rows, key_column="key")
    disputed, agreed = (r.workflow_id for r in created)
    task = conveyor.task(agreed)
    await eventually(task, lambda v: nodes(v)["label"].status == NodeStatus.AVAILABLE)
    for person in ("p1", "p2", "p3"):
        token = await claim(task, person, ["labeler"], "label")
        await submit(
            task, person, "label", token, {"sentiment": "positive", "intensity": 4, "topics": []}
        )
    await eventually(task, lambda v: v.status == TaskStatus.FINISHED)
    return disputed, agreed


async def open_claimed(page: Page, key: str) -> None:
    await page.goto("/work?tab=claimed")
    row = page.locator("tr", has_text=key)
    await expect(row).to_contain_text("Claimed")  # a place is the holder's claim
    await row.get_by_role("link", name="Open").click()
    await page.wait_for_load_state()


async def answer(page: Page, sentiment: str, intensity: int, note: str) -> None:
    await page.locator("[data-field=sentiment] label", has_text=sentiment).click()
    await page.locator("[data-field=intensity] label", has_text=str(intensity)).click()
    await page.fill("#f-notes", note)


async def test_blind_answers_disagree_and_the_adjudicator_settles(
    web: WebApp, sign_in: SignIn, screenshots: Callable[[str], Path]
) -> None:
    name = f"consensus-{uuid.uuid4().hex[:6]}"
    add_people(web)
    disputed, _ = await seed(web.conveyor, name)
    task = web.conveyor.task(disputed)
    await eventually(task, lambda v: nodes(v)["label"].status == NodeStatus.AVAILABLE)

    # --- cy takes a place and saves a draft: her form shows the text, and says it is blind ------
    cy = await sign_in("cy")
    await open_row_action(cy, "txt-1", "Claim")
    await expect(cy.locator(".flash.notice")).to_contain_text("place 1 of 3")
    await expect(cy.locator(".context")).to_contain_text(TEXT)
    await expect(cy.get_by_test_id("blind")).to_contain_text(
        "3 people answer this item, each on their own"
    )
    await cy.locator("[data-field=sentiment] label", has_text="positive").click()
    await cy.fill("#f-notes", CY_DRAFT)
    await cy.get_by_role("button", name="Save draft").click()
    await expect(cy.locator(".flash.notice")).to_contain_text("draft saved")
    await expect(cy.locator("#f-notes")).to_have_value(CY_DRAFT)
    await cy.screenshot(path=screenshots("consensus-form"), full_page=True)

    # --- dan takes the second place: cy's draft is nowhere on his form; he answers -----------
    dan = await sign_in("dan")
    await open_row_action(dan, "txt-1", "Claim")
    await expect(dan.locator(".flash.notice")).to_contain_text("place 2 of 3")
    html = await dan.content()
    assert CY_DRAFT not in html
    await expect(dan.locator("#f-notes")).to_have_value("")
    await answer(dan, "negative", 2, DAN_NOTE)
    await dan.get_by_role("button", name="Submit").click()
    await expect(dan.locator(".flash.notice")).to_contain_text("submitted label")
    # his place is gone with his answer: he cannot open the item again, nor take it twice
    response = await dan.goto(f"/work/task?id={disputed}&node=label")
    assert response is not None and response.status == 403
    await dan.goto("/work?tab=available")
    await expect(dan.locator("tr", has_text="txt-1")).to_have_count(0)

    # --- eve takes the last place: neither dan's answer nor cy's draft shows ---------------------
    eve = await sign_in("eve")
    await open_row_action(eve, "txt-1", "Claim")
    html = await eve.content()
    for secret in (CY_DRAFT, DAN_NOTE, "negative</td>", "data-answer"):
        assert secret not in html, secret

    # --- an admin sees who holds places and what is answered; she gives eve's place back --------
    root = await sign_in("root")
    await root.goto(f"/explorer/task?id={disputed}")
    places = root.get_by_test_id("places-label")
    await expect(places).to_contain_text("claimed 2 (cy, eve)")
    await expect(root.locator("[data-node=label] [data-answer-of=dan]").first).to_have_text(
        "negative"
    )
    await root.get_by_role("button", name="Release eve's place").click()
    await expect(root.locator(".flash.notice")).to_contain_text("released eve's claim on label")
    await expect(places).to_contain_text("claimed 1 (cy)")
    await eve.goto("/work?tab=available")
    await open_row_action(eve, "txt-1", "Claim")
    await expect(eve.locator(".flash.notice")).to_contain_text("place 3 of 3")
    await answer(eve, "neutral", 3, EVE_NOTE)

    # --- cy comes back to her own draft (and only hers) and answers ------------------------------
    await open_claimed(cy, "txt-1")
    await expect(cy.locator("#f-notes")).to_have_value(CY_DRAFT)
    html = await cy.content()
    assert DAN_NOTE not in html and EVE_NOTE not in html
    await answer(cy, "positive", 4, CY_NOTE)
    await cy.get_by_role("button", name="Submit").click()
    await expect(cy.locator(".flash.notice")).to_contain_text("submitted label")

    await eve.get_by_role("button", name="Submit").click()
    await expect(eve.locator(".flash.notice")).to_contain_text("submitted label")
    view = await eventually(task, lambda v: nodes(v)["settle"].status == NodeStatus.AVAILABLE)
    item = nodes(view)["label"].consensus
    assert item is not None and item.result is not None and not item.result.agreed
    assert [a.by for a in item.answers] == ["dan", "cy", "eve"]

    # --- the adjudicator sees the answers side by side -------------------------------------------
    lee = await sign_in(ADJUDICATOR)
    await open_row_action(lee, "txt-1", "Claim")
    await expect(lee.locator("h1")).to_have_text("Settle the label")
    table = lee.get_by_test_id("answers")
    for person in ("dan", "cy", "eve"):
        await expect(table.locator(f"th[data-person={person}]")).to_be_visible()
    await expect(table.locator("[data-row=sentiment] [data-answer-of=dan]")).to_have_text(
        "negative"
    )
    await expect(table.locator("[data-row=notes] [data-answer-of=eve]")).to_have_text(EVE_NOTE)
    await expect(table.locator("[data-row=sentiment] td.num").first).to_have_text("33%")
    await expect(lee.locator(".context")).to_contain_text(TEXT)
    # the form starts from the merged answer
    await expect(lee.locator("[data-field=intensity] input[value='3']")).to_be_checked()

    # no reason: refused, and the page says why
    await lee.get_by_role("button", name="Settle").click()
    reason_field = lee.locator(".form-field", has=lee.locator("#reason"))
    await expect(reason_field.locator(".field-error")).to_contain_text("required")
    await expect(lee.locator(".flash.error")).to_contain_text("incomplete")
    await lee.goto(f"/work/task?id={disputed}&node=settle")

    # picking dan's answer fills the form with it; the reason goes with it
    await table.locator("input[name=pick][value=dan]").check()
    await expect(lee.locator("[data-field=sentiment] input[value=negative]")).to_be_checked()
    await expect(lee.locator("[data-field=intensity] input[value='2']")).to_be_checked()
    await expect(lee.locator("#f-notes")).to_have_value(DAN_NOTE)
    await lee.fill("#reason", "Late delivery and no answer from support outweigh the product.")
    await lee.screenshot(path=screenshots("consensus-adjudicate"), full_page=True)
    await lee.get_by_role("button", name="Settle").click()
    await expect(lee.locator(".flash.notice")).to_contain_text("with dan's answer")

    # the final answer is dan's; the task goes on (a lead double-checks a low-confidence label)
    view = await eventually(task, lambda v: nodes(v)["double_check"].status == NodeStatus.AVAILABLE)
    label = nodes(view)["label"]
    assert label.values["sentiment"] == "negative" and label.values["intensity"] == 2
    assert label.consensus is not None and label.consensus.result is not None
    assert label.consensus.result.adjudicated_by == ADJUDICATOR
    assert label.consensus.result.picked == "dan"
    assert nodes(view)["settle"].status == NodeStatus.FINISHED

    # --- an admin reads it all in the Data Explorer ----------------------------------------------
    await root.goto(f"/explorer/task?id={disputed}")
    await expect(places).to_contain_text("needed 3")
    await expect(places).to_contain_text("answered 3")
    await expect(root.locator("[data-node=label] [data-testid=answers] th.person")).to_have_count(3)
    await expect(root.get_by_test_id("adjudication-label")).to_contain_text(
        "Settled by lee, taking dan's answer"
    )
    await root.screenshot(path=screenshots("consensus-task-detail"), full_page=True)
    await root.get_by_role("link", name=re.compile("Timeline")).click()
    timeline = root.locator(".timeline")
    await expect(timeline.locator("li[data-kind=consensus]")).to_contain_text("no agreement")
    await expect(timeline.locator("li[data-kind=adjudicated]")).to_contain_text(
        "lee settled label with dan's answer"
    )
    await expect(timeline.locator("li[data-kind=submitted]")).to_have_count(3)
    await root.screenshot(path=screenshots("consensus-timeline"), full_page=True)

    # the task list: each item's agreement, and the items that agreed least
    await root.goto(f"/explorer/pipelines/{name}")
    await expect(
        root.locator("tr", has_text="txt-2").locator("[data-agreement=label]")
    ).to_have_text("100%")
    await expect(
        root.locator("tr", has_text="txt-1").locator("[data-agreement=label]")
    ).to_have_text("33%")
    await root.fill("#agreement_below", "50%")
    await root.get_by_role("button", name="Apply").click()
    await expect(root.locator("table.data tbody tr")).to_have_count(1)
    await expect(root.locator("table.data tbody")).to_contain_text("txt-1")
    await expect(root.locator("#agreement_below")).to_have_value("50%")
    await root.screenshot(path=screenshots("consensus-explorer"), full_page=True)
