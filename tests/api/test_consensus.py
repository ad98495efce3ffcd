"""Consensus through the HTTP API on the real dev server and store: exactly k blind answers per
item however many people race for them, nobody twice on one item, a claim release reopening a
place, disagreement reaching the adjudicator, and annotators kept off the adjudication."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from store.db import transaction
from store.models import NodeAnnotatorRow, NodeRow
from store.users import create_key, upsert_user
from tests.api.conftest import Api, error_of, until

FIELDS = [
    {"name": "text", "type": "long_text", "source": "predefined"},
    {"name": "sentiment", "type": "select", "options": ["positive", "negative", "neutral"]},
    {"name": "notes", "type": "short_text", "required": False},
]


def consensus_definition(k: int = 3, most: int | None = None, **extra: Any) -> dict[str, Any]:
    consensus: dict[str, Any] = {"annotators": k, **extra}
    if most is not None:
        consensus["max_annotators"] = most
    return {
        "name": f"cons-{uuid.uuid4().hex[:8]}",
        "claim_timeout": "30m",
        "nodes": [
            {"name": "start", "kind": "start", "next": ["label"]},
            {
                "name": "label",
                "kind": "subtask",
                "roles": ["labeler"],
                "consensus": consensus,
                "fields": FIELDS,
                "next": ["settle"],
            },
            {"name": "settle", "kind": "adjudicate", "roles": ["reviewer"], "next": ["end"]},
            {"name": "end", "kind": "end"},
        ],
    }


def people(api: Api, count: int, prefix: str) -> list[str]:
    """``count`` contributors with the labeler role, each with an API key."""
    names = [f"{prefix}{i:02d}" for i in range(count)]
    with transaction(api.sessions) as session:
        for name in names:
            if name not in api.keys:
                upsert_user(session, name, "contributor", ["labeler", "reviewer"])
                api.keys[name] = create_key(session, name, "tests")
    return names


async def take(api: Api, who: str, pipeline: str) -> dict[str, Any] | None:
    r = await api.post("/api/v1/queue/next", json={"pipeline": pipeline}, as_=who)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return dict(r.json())


async def answer(api: Api, who: str, wid: str, token: str, sentiment: str) -> dict[str, Any]:
    r = await api.post(
        f"/api/v1/tasks/{wid}/submit",
        json={"node": "label", "token": token, "values": {"sentiment": sentiment}},
        as_=who,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def state(api: Api, wid: str) -> dict[str, Any]:
    r = await api.get(f"/api/v1/tasks/{wid}/state")
    assert r.status_code == 200, r.text
    return dict(r.json())


def label_of(view: dict[str, Any]) -> dict[str, Any]:
    return next(n for n in view["nodes"] if n["name"] == "label")


async def test_three_blind_answers_then_adjudication(api: Api) -> None:
    name = await api.apply(consensus_definition())
    wid = await api.create(name, "one", "Great, another delay.")
    a, b, c, d = people(api, 4, f"p{uuid.uuid4().hex[:4]}-")
    claimed = {}
    for who in (a, b, c):
        got = await until(functools.partial(take, api, who, name), lambda g: g is not None)
        assert got is not None and (got["workflow_id"], got["node"]) == (wid, "label")
        claimed[who] = got["token"]
    # Every place is taken: a fourth person gets nothing, and a direct claim says why.
    assert await take(api, d, name) is None
    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_=d)
    error = error_of(r, 409)
    assert "every place on 'label' is taken" in error["message"]

    # Blind: a's view of her claim shows her own draft only, never b's.
    r = await api.post(
        f"/api/v1/tasks/{wid}/draft",
        json={"node": "label", "token": claimed[b], "values": {"notes": "b-private-note"}},
        as_=b,
    )
    assert r.status_code == 200, r.text
    work = (await api.get(f"/api/v1/queue/claims/{wid}", as_=a)).json()
    [node] = work["claims"]
    assert node["token"] == claimed[a] and node["draft"] == {} and node["values"] == {}
    assert node["consensus"] == {"needed": 3, "round": 1}
    assert "b-private-note" not in str(work)
    assert "label" not in work["upstream"]

    # A release reopens the place; d takes it.
    r = await api.post(
        f"/api/v1/tasks/{wid}/release", json={"node": "label", "token": claimed[c]}, as_=c
    )
    assert r.status_code == 200, r.text
    got = await until(lambda: take(api, d, name), lambda g: g is not None)
    assert got is not None and got["workflow_id"] == wid
    claimed[d] = got["token"]
    del claimed[c]

    await answer(api, a, wid, claimed[a], "positive")
    await answer(api, b, wid, claimed[b], "negative")
    # a may not answer twice.
    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_=a)
    assert "you already answered 'label'" in error_of(r, 409)["message"]
    await answer(api, d, wid, claimed[d], "neutral")

    view = await state(api, wid)
    label = label_of(view)
    assert label["status"] == "Finished"
    assert [x["by"] for x in label["consensus"]["answers"]] == [a, b, d]
    assert label["consensus"]["result"]["agreed"] is False
    settle = next(n for n in view["nodes"] if n["name"] == "settle")
    assert settle["status"] == "Available"

    # The annotators are kept off the adjudication, in the queue and at the workflow.
    async def offered(who: str) -> list[Any]:
        r = await api.get("/api/v1/queue/available", params={"pipeline": name}, as_=who)
        return list(r.json()["items"])

    judge = people(api, 1, f"j{uuid.uuid4().hex[:4]}-")[0]
    await until(lambda: offered(judge), lambda items: len(items) == 1)
    assert await offered(a) == []
    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "settle"}, as_=a)
    assert "you answered 'label'" in error_of(r, 409)["message"]

    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "settle"}, as_=judge)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    work = (await api.get(f"/api/v1/queue/claims/{wid}", as_=judge)).json()
    [node] = work["claims"]
    assert node["consensus"]["target"] == "label"
    assert {x["by"]: x["values"]["sentiment"] for x in node["consensus"]["answers"]} == {
        a: "positive",
        b: "negative",
        d: "neutral",
    }
    r = await api.post(
        f"/api/v1/tasks/{wid}/adjudicate",
        json={"node": "settle", "token": token, "pick": b},
        as_=judge,
    )
    assert r.status_code == 422, r.text  # the reason is required
    r = await api.post(
        f"/api/v1/tasks/{wid}/adjudicate",
        json={"node": "settle", "token": token, "pick": b, "reason": "the delay is sarcasm"},
        as_=judge,
    )
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    view = await state(api, wid)
    assert view["status"] == "Finished"
    assert label_of(view)["values"]["sentiment"] == "negative"
    assert label_of(view)["consensus"]["result"]["adjudicated_by"] == judge


async def test_adaptive_overlap_stops_at_the_maximum(api: Api) -> None:
    name = await api.apply(consensus_definition(k=2, most=3))
    wid = await api.create(name, "adaptive", "meh")
    crowd = people(api, 4, f"a{uuid.uuid4().hex[:4]}-")
    for who, sentiment in zip(crowd[:3], ["positive", "negative", "neutral"], strict=True):
        got = await until(functools.partial(take, api, who, name), lambda g: g is not None)
        assert got is not None
        await answer(api, who, wid, got["token"], sentiment)
    label = label_of(await state(api, wid))
    assert label["consensus"]["needed"] == 3 and len(label["consensus"]["answers"]) == 3
    assert label["status"] == "Finished"
    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_=crowd[3])
    error_of(r, 409)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_fifty_way_race_gives_every_item_exactly_k_answers(api: Api) -> None:
    """50 people race through 1,000 consensus items (k = 3) through the API: every item ends
    with exactly 3 accepted answers, from 3 different people. (On PostgreSQL 100 items: the
    store's part of the race is the same, and the suite stays within its time.)"""
    with api.sessions() as session:
        dialect = session.get_bind().dialect.name
    tasks, k = (1000 if dialect == "sqlite" else 100), 3
    name = await api.apply(consensus_definition(k=k, threshold=0.0))
    rows = [{"key": f"item-{i:04d}", "text": f"text {i}"} for i in range(tasks)]
    r = await api.post(
        f"/api/v1/pipelines/{name}/tasks/batch", json={"rows": rows, "key_column": "key"}
    )
    assert r.status_code == 200, r.text[:500]
    assert r.json()["created"] == tasks, r.text[:500]
    crowd = people(api, 50, f"r{uuid.uuid4().hex[:4]}-")
    answered: Counter[tuple[str, str]] = Counter()
    refused = 0

    async def work(who: str) -> None:
        nonlocal refused
        idle = 0
        while idle < 3:
            got = await take(api, who, name)
            if got is None:
                idle += 1
                await asyncio.sleep(0.2)
                continue
            idle = 0
            r = await api.post(
                f"/api/v1/tasks/{got['workflow_id']}/submit",
                json={"node": "label", "token": got["token"], "values": {"sentiment": "positive"}},
                as_=who,
            )
            if r.status_code == 200 and r.json()["accepted"]:
                answered[(got["workflow_id"], who)] += 1
            else:
                refused += 1

    await asyncio.gather(*(work(who) for who in crowd))

    def stored() -> list[tuple[str, dict[str, Any] | None]]:
        with transaction(api.sessions) as session:
            return [
                (w, c)
                for w, c in session.execute(
                    select(NodeRow.workflow_id, NodeRow.consensus).where(
                        NodeRow.pipeline_name == name, NodeRow.node == "label"
                    )
                )
            ]

    rows_now = await until(
        lambda: asyncio.to_thread(stored),
        lambda found: all(c and len(c["answers"]) == k for _, c in found),
        timeout=60,
    )
    assert len(rows_now) == tasks
    for _, item in rows_now:
        assert item is not None
        people_on_item = [a["by"] for a in item["answers"]]
        assert len(people_on_item) == k and len(set(people_on_item)) == k
    # What the API accepted is exactly what the workflows kept: k per item, nobody twice.
    assert all(count == 1 for count in answered.values())
    per_item = Counter(wid for wid, _ in answered)
    assert set(per_item.values()) == {k} and len(per_item) == tasks
    assert refused == 0
    with transaction(api.sessions) as session:
        held = session.scalar(
            select(NodeAnnotatorRow.contributor).where(
                NodeAnnotatorRow.pipeline_name == name, NodeAnnotatorRow.state == "claimed"
            )
        )
    assert held is None  # no place left claimed
