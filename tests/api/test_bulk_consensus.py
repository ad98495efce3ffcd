"""Export jobs of a consensus pipeline over HTTP, after real answers through the API and the
workflows: the wide shape's consensus columns, the long shape's one row per answer, and a long
export of a pipeline without consensus nodes refused at once."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from store.db import transaction
from store.models import NodeRow
from store.users import create_key, upsert_user
from tests.api.conftest import Api, error_of, until


def definition() -> dict[str, Any]:
    return {
        "name": f"votes-{uuid.uuid4().hex[:8]}",
        "claim_timeout": "30m",
        "nodes": [
            {"name": "start", "kind": "start", "next": ["label"]},
            {
                "name": "label",
                "kind": "subtask",
                "roles": ["labeler"],
                "consensus": {"annotators": 3},
                "fields": [
                    {"name": "text", "type": "long_text", "source": "predefined"},
                    {
                        "name": "sentiment",
                        "type": "select",
                        "options": ["positive", "negative", "neutral"],
                    },
                    {"name": "notes", "type": "short_text", "required": False},
                ],
                "next": ["settle"],
            },
            {"name": "settle", "kind": "adjudicate", "roles": ["lead"], "next": ["end"]},
            {"name": "end", "kind": "end"},
        ],
    }


def labelers(api: Api, count: int) -> list[str]:
    prefix = f"x{uuid.uuid4().hex[:4]}-"
    names = [f"{prefix}{i}" for i in range(count)]
    with transaction(api.sessions) as session:
        for name in names:
            upsert_user(session, name, "contributor", ["labeler"])
            api.keys[name] = create_key(session, name, "tests")
    return names


async def download(api: Api, body: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    r = await api.post("/api/v1/bulk/exports", json=body, as_="vera")
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    async def status() -> dict[str, Any]:
        return dict((await api.get(f"/api/v1/bulk/exports/{job_id}", as_="vera")).json())

    job = await until(status, lambda j: j["state"] not in ("queued", "running"))
    assert job["state"] == "done", job
    r = await api.get(job["download"], as_="vera")
    assert r.status_code == 200, r.text
    return {**job, "disposition": r.headers["content-disposition"]}, r.content


async def test_exports_of_consensus_answers(api: Api) -> None:
    name = await api.apply(definition())
    wid = await api.create(name, "one", "Great, another delay.")
    people = labelers(api, 3)
    said = ["positive", "negative", "positive"]
    for who, sentiment in zip(people, said, strict=True):
        r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_=who)
        assert r.status_code == 200, r.text
        values = {"sentiment": sentiment, "notes": f"@{who}"}
        r = await api.post(
            f"/api/v1/tasks/{wid}/submit",
            json={"node": "label", "token": r.json()["token"], "values": values},
            as_=who,
        )
        assert r.status_code == 200 and r.json()["accepted"], r.text

    async def merged() -> bool:  # the store follows the workflow a moment later
        with transaction(api.sessions) as session:
            item = session.scalar(
                select(NodeRow.consensus).where(NodeRow.workflow_id == wid, NodeRow.node == "label")
            )
        return bool(item and item["result"])

    await until(merged, bool)

    job, content = await download(api, {"pipeline": name, "shape": "long"})
    assert (job["shape"], job["rows_done"], job["answers"]) == ("long", 1, 3)
    assert f'filename="{name}-answers-{job["id"]}.csv"' in job["disposition"]
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert [(r["annotator"], r["answer.sentiment"], r["answer.notes"]) for r in rows] == [
        (who, s, f"'@{who}") for who, s in zip(people, said, strict=True)
    ]
    for row in rows:
        assert (row["workflow_id"], row["node"], row["round"], row["counted"]) == (
            wid,
            "label",
            "1",
            "true",
        )
        assert (row["final.sentiment"], row["agreement"], row["agreed"]) == (
            "positive",
            "0.666667",
            "true",
        )
        assert row["final.notes"] == "" and row["adjudicated_by"] == ""

    job, content = await download(api, {"pipeline": name, "format": "jsonl"})
    assert (job["shape"], job["rows_done"], job["answers"]) == ("wide", 1, None)
    [record] = [json.loads(line) for line in content.splitlines()]
    assert record["label.sentiment"] == "positive"
    assert {k: record[f"label.{k}"] for k in ("agreement", "confidence", "agreed", "answers")} == {
        "agreement": 0.666667,
        "confidence": 0.666667,
        "agreed": True,
        "answers": 3,
    }
    assert [record[f"label.by.{j}"] for j in (1, 2, 3)] == people
    assert [record[f"label.notes.{j}"] for j in (1, 2, 3)] == [f"@{who}" for who in people]
    assert record["label.sentiment.merged"] == "positive" and record["label.picked"] is None

    plain = await api.label_pipeline()

    async def long_export() -> httpx.Response:
        body = {"pipeline": plain, "shape": "long"}
        return await api.post("/api/v1/bulk/exports", json=body, as_="vera")

    # 404 unknown_pipeline until the pipeline's definition reaches the store
    r = await until(long_export, lambda r: r.status_code != 404)
    error = error_of(r, 422, "no_consensus_nodes")
    assert "wide shape" in error["message"]
    error_of(
        await api.post("/api/v1/bulk/exports", json={"pipeline": name, "shape": "tall"}),
        422,
        "invalid_input",
    )
