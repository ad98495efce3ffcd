"""The Data Explorer's Agreement tab in a real browser, over consensus rows with known answers:
the figures equal the store's own report, the contributor matrix shows Cohen's kappa, an admin
runs Dawid-Skene from the tab (the run is stored and read back, its CSV downloads), a viewer
reads but cannot run one, and the export offers one row per answer. A reviewer of a consensus
node sees the answers behind the merged one."""

from __future__ import annotations

import csv
import io
import random
import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.async_api import expect

from store.consensus_analytics import consensus_agreement, dawid_skene_runs, stored_dawid_skene
from store.db import transaction
from tests.support.actors import claim, eventually, nodes, submit
from tests.support.consensus_rows import Item, consensus_pipeline, write_items
from tests.web.conftest import SignIn, WebApp
from tests.web.test_journeys import open_row_action
from workflows.graph_checks import validate_pipeline
from workflows.messages import NodeStatus
from workflows.pipeline_messages import PipelineStatus

LABELS = ["positive", "negative", "neutral"]
SWAP = {"positive": "negative", "negative": "positive", "neutral": "neutral"}


def items(seed: int) -> list[Item]:
    """Thirty items, three of four annotators each; dee always swaps positive and negative."""
    rng = random.Random(seed)
    out = []
    for _ in range(30):
        truth = rng.choice(LABELS)
        answers = {}
        for who in sorted(rng.sample(["ana", "ben", "cai", "dee"], 3)):
            label = SWAP[truth] if who == "dee" else truth
            if who == "cai" and rng.random() < 0.3:
                label = rng.choice(LABELS)
            answers[who] = {"sentiment": label, "spam": rng.random() < 0.2, "intensity": 3}
        out.append(Item(answers=answers, final={"sentiment": truth}))
    return out


async def test_agreement_tab_and_dawid_skene(
    web: WebApp, sign_in: SignIn, screenshots: Callable[[str], Path]
) -> None:
    pipeline = consensus_pipeline(f"agreement-{uuid.uuid4().hex[:6]}")
    ids = write_items(web.sessions, pipeline, items(7))
    name = pipeline.name
    with transaction(web.sessions) as session:
        report = consensus_agreement(session, name)
    (node,) = report.nodes
    sentiment = next(f for f in node.fields if f.field == "sentiment")
    pair = next(p for p in node.pairs if (p.a, p.b) == ("ana", "dee"))
    kappa = next(f.kappa for f in pair.fields if f.field == "sentiment")
    assert sentiment.alpha is not None and kappa is not None

    root = await sign_in("root")
    await root.goto(f"/explorer/pipelines/{name}")
    await root.get_by_role("link", name="Agreement").click()
    card = root.locator("[data-consensus-node=label]")
    row = card.locator("[data-table=fields] tr[data-field=sentiment]")
    await expect(row.locator("[data-alpha]")).to_have_text(f"{sentiment.alpha:,.3f}")
    assert sentiment.percent_agreement is not None
    await expect(row.locator("[data-percent]")).to_have_text(
        f"{sentiment.percent_agreement * 100:.0f}%"
    )
    await expect(card.locator("[data-table=contributors] tr[data-contributor]")).to_have_count(4)
    cell = card.locator("[data-matrix=sentiment] td[data-pair='ana|dee']")
    await expect(cell).to_have_text(f"{kappa:,.2f}")
    await expect(root.locator("[data-dawid-skene]")).to_contain_text("No run stored yet")
    async with root.expect_download() as download:
        await root.get_by_role("link", name="Download CSV").click()
    text = Path(await (await download.value).path()).read_text(encoding="utf-8")
    field_rows = [r for r in csv.DictReader(io.StringIO(text)) if r["table"] == "field"]
    assert {r["field"]: r["alpha"] for r in field_rows}["sentiment"] == str(sentiment.alpha)

    # --- the admin runs Dawid-Skene over sentiment: stored, shown beside the majority ----------
    await root.select_option("select[name=field]", "label.sentiment")
    await root.get_by_role("button", name="Run Dawid-Skene").click()
    await expect(root.locator(".flash.notice")).to_contain_text("stored as run")
    with transaction(web.sessions) as session:
        (run,) = dawid_skene_runs(session, name)
        stored = stored_dawid_skene(session, name)
    assert (run.created_by, run.items, run.field) == ("root", 30, "sentiment")
    section = root.locator("[data-dawid-skene]")
    await expect(section.locator(f"[data-run='{run.id}']")).to_contain_text("label.sentiment")
    dee = section.locator("[data-table=ds-contributors] tr[data-contributor=dee]")
    accuracy = next(c.accuracy for c in stored.report.contributors if c.contributor == "dee")
    await expect(dee).to_contain_text(f"{accuracy * 100:.0f}%")
    differing = [i for i in stored.report.by_item if i.differs]
    await expect(section.locator("[data-table=ds-items] tr[data-item]")).to_have_count(
        len(differing)
    )
    if differing:
        first = section.locator(f"tr[data-item='{differing[0].workflow_id}']")
        await expect(first).to_contain_text(str(differing[0].estimate))
        await expect(first).to_contain_text(str(differing[0].majority))
    await root.screenshot(path=screenshots("consensus-agreement"), full_page=True)

    async with root.expect_download() as download:
        await section.get_by_role("link", name="CSV").click()
    text = Path(await (await download.value).path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["workflow_id"] for r in rows if r["table"] == "item"} == set(ids)

    # --- a refusal keeps the page and says why -----------------------------------------------
    response = await root.request.post(
        f"/explorer/pipelines/{name}/dawid-skene", form={"field": "label.topics"}
    )
    assert response.ok  # followed to the tab, with the reason
    assert "multi_select" in await response.text()

    # --- a viewer reads the tab but has no button; the export offers one row per answer -------
    vic = await sign_in("vic")
    await vic.goto(f"/explorer/pipelines/{name}?tab=agreement")
    await expect(vic.locator(f"[data-run='{run.id}']")).to_be_visible()
    await expect(vic.get_by_role("button", name="Run Dawid-Skene")).to_have_count(0)
    response = await vic.request.post(
        f"/explorer/pipelines/{name}/dawid-skene", form={"field": "label.sentiment"}
    )
    assert response.status == 403
    await vic.goto(f"/explorer/pipelines/{name}")
    await vic.select_option("select[name=scope]", "filter")
    await vic.select_option("select[name=shape]", "long")
    async with vic.expect_download() as download:
        await vic.get_by_role("button", name="Export").click()
    text = Path(await (await download.value).path()).read_text(encoding="utf-8")
    long_rows = list(csv.DictReader(io.StringIO(text)))
    assert len(long_rows) == 90  # thirty items, three answers each
    assert (await download.value).suggested_filename.endswith("-long.csv")


async def test_a_reviewer_sees_the_answers_behind_the_merge(
    web: WebApp, sign_in: SignIn, screenshots: Callable[[str], Path]
) -> None:
    name = f"review-consensus-{uuid.uuid4().hex[:6]}"
    raw = {
        "name": name,
        "nodes": [
            {"name": "start", "kind": "start", "next": ["label"]},
            {
                "name": "label",
                "kind": "subtask",
                "roles": ["labeler"],
                "consensus": {
                    "annotators": 2,
                    "on_disagreement": "quarantine",
                    "rules": {"intensity": {"tolerance": 2}},
                },
                "fields": [
                    {"name": "text", "type": "long_text", "source": "predefined"},
                    {"name": "sentiment", "type": "select", "options": ["positive", "negative"]},
                    {"name": "intensity", "type": "rating", "min": 1, "max": 5},
                ],
                "next": ["check"],
            },
            {"name": "check", "kind": "review", "roles": ["reviewer"], "next": ["end"]},
            {"name": "end", "kind": "end"},
        ],
    }
    applied = await web.conveyor.apply_pipeline(validate_pipeline(raw), by="tests")
    if applied.status == PipelineStatus.DRAFT:
        await web.conveyor.set_pipeline_status(name, PipelineStatus.ACTIVE, by="tests")
    (created,) = await web.conveyor.create_tasks(
        name, [{"key": "rv-1", "text": "Sturdy, but the lid leaks."}], key_column="key"
    )
    task = web.conveyor.task(created.workflow_id)
    for who, intensity in (("p1", 4), ("p2", 2)):
        token = await claim(task, who, ["labeler"], "label")
        await submit(task, who, "label", token, {"sentiment": "positive", "intensity": intensity})
    await eventually(task, lambda v: nodes(v)["check"].status == NodeStatus.AVAILABLE)

    bo = await sign_in("bo")
    await bo.goto("/work?tab=available")
    await open_row_action(bo, "rv-1", "Claim")
    answers = bo.get_by_test_id("reviewed-answers")
    await expect(answers).to_contain_text("2 people's answers")
    for person in ("p1", "p2"):
        await expect(answers.locator(f"th[data-person={person}]")).to_be_visible()
    await expect(answers.locator("[data-row=intensity] [data-answer-of=p2]")).to_have_text("2")
    await expect(answers.locator("[data-merged=sentiment]")).to_have_text("positive")
    await bo.screenshot(path=screenshots("consensus-review"), full_page=True)
