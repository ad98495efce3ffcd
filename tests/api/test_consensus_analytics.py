"""``GET /api/v1/pipelines/{name}/agreement``: Consensus Analytics over HTTP, as JSON and CSV,
on rows the store holds (SQLite and PostgreSQL), and its refusals."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from tests.api.conftest import Api, error_of
from tests.support.consensus_rows import Item, consensus_pipeline, write_items

# Krippendorff's two-observer example (tests/store/test_reliability.py): alpha 8/84, kappa 1/11.
OBSERVER_A = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
OBSERVER_B = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]


def stored(api: Api) -> str:
    pipeline = consensus_pipeline(f"api-consensus-{uuid.uuid4().hex[:8]}")
    items = [
        Item(
            answers={"ana": {"spam": bool(a)}, "ben": {"spam": bool(b)}},
            final={"spam": bool(a)},
            tags=["gold"] if i < 3 else [],
        )
        for i, (a, b) in enumerate(zip(OBSERVER_A, OBSERVER_B, strict=True))
    ]
    write_items(api.sessions, pipeline, items)
    return pipeline.name


async def test_json(api: Api) -> None:
    name = stored(api)
    r = await api.get(f"/api/v1/pipelines/{name}/agreement", as_="vera")
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["pipeline"], report["min_shared"]) == (name, 5)
    (node,) = report["nodes"]
    assert (node["node"], node["items"], node["answers"], node["final"]) == ("label", 10, 20, 10)
    spam = next(f for f in node["fields"] if f["field"] == "spam")
    assert spam["alpha"] == pytest.approx(8 / 84)
    assert spam["percent_agreement"] == pytest.approx(0.6)
    (pair,) = node["pairs"]
    pair_spam = next(f for f in pair["fields"] if f["field"] == "spam")
    assert pair_spam["kappa"] == pytest.approx(1 / 11)
    ben = next(c for c in node["by_contributor"] if c["contributor"] == "ben")
    assert next(f for f in ben["fields"] if f["field"] == "spam")["share"] == pytest.approx(0.6)

    r = await api.get(
        f"/api/v1/pipelines/{name}/agreement",
        params={"node": "label", "tag": "gold", "min_shared": 4, "status": ["Finished"]},
    )
    assert r.status_code == 200, r.text
    (node,) = r.json()["nodes"]
    assert (node["items"], node["pairs"]) == (3, [])


async def test_csv(api: Api) -> None:
    name = stored(api)
    r = await api.get(f"/api/v1/pipelines/{name}/agreement", params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert f'filename="{name}-agreement.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    spam = next(row for row in rows if row["table"] == "field" and row["field"] == "spam")
    assert float(spam["alpha"]) == pytest.approx(8 / 84)
    pair = next(row for row in rows if row["table"] == "pair" and row["field"] == "spam")
    assert float(pair["kappa"]) == pytest.approx(1 / 11)


async def test_refusals(api: Api) -> None:
    name = stored(api)
    plain = consensus_pipeline(f"api-plain-{uuid.uuid4().hex[:8]}", consensus=False)
    write_items(api.sessions, plain, [])
    r = await api.get("/api/v1/pipelines/no-such-pipeline/agreement")
    assert "no pipeline named 'no-such-pipeline'" in error_of(r, 404, "unknown_pipeline")["message"]
    r = await api.get(f"/api/v1/pipelines/{plain.name}/agreement")
    assert "has no consensus node" in error_of(r, 422, "not_consensus")["message"]
    r = await api.get(f"/api/v1/pipelines/{name}/agreement", params={"node": "start"})
    error = error_of(r, 422, "not_consensus")
    assert error["details"]["consensus_nodes"] == ["label"]
    r = await api.get(f"/api/v1/pipelines/{name}/agreement", params={"min_shared": 0})
    error_of(r, 422, "invalid_input")
    r = await api.get(f"/api/v1/pipelines/{name}/agreement", params={"format": "xml"})
    error_of(r, 422, "invalid_input")
    # Contributors may not read analytics.
    r = await api.get(f"/api/v1/pipelines/{name}/agreement", as_="ana")
    error_of(r, 403)


async def test_dawid_skene(api: Api) -> None:
    name = stored(api)
    r = await api.get(f"/api/v1/pipelines/{name}/dawid-skene", params={"field": "spam"}, as_="vera")
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["node"], report["field"], report["items"]) == ("label", "spam", 10)
    assert report["labels"] == ["false", "true"]
    assert sorted(c["contributor"] for c in report["contributors"]) == ["ana", "ben"]
    item = report["by_item"][0]
    assert set(item) >= {"workflow_id", "estimate", "probability", "majority", "final"}
    assert item["final"] is False or item["final"] is True

    r = await api.get(
        f"/api/v1/pipelines/{name}/dawid-skene",
        params={"field": "spam", "format": "csv", "only_differing": "true"},
    )
    assert r.status_code == 200, r.text
    assert f'filename="{name}-dawid-skene.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["table"] for row in rows} >= {"prior", "contributor", "confusion"}

    r = await api.get(f"/api/v1/pipelines/{name}/dawid-skene", params={"field": "topics"})
    assert "multi_select" in error_of(r, 422, "not_categorical")["message"]
    r = await api.get(f"/api/v1/pipelines/{name}/dawid-skene")
    assert "name the field" in error_of(r, 422, "not_categorical")["message"]
    r = await api.get("/api/v1/pipelines/no-such-pipeline/dawid-skene")
    error_of(r, 404, "unknown_pipeline")


async def test_dawid_skene_runs(api: Api) -> None:
    name = stored(api)
    runs = f"/api/v1/pipelines/{name}/dawid-skene/runs"
    r = await api.get(runs, as_="vera")
    assert (r.status_code, r.json()) == (200, [])
    r = await api.get(f"{runs}/latest")
    assert "no Dawid-Skene run is stored" in error_of(r, 404, "unknown_run")["message"]

    r = await api.post(runs, json={"field": "spam"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["run"]["created_by"], first["run"]["items"], first["run"]["criteria"]) == (
        "root",
        10,
        {},
    )
    fresh = await api.get(f"/api/v1/pipelines/{name}/dawid-skene", params={"field": "spam"})
    assert first["report"] == fresh.json()
    r = await api.post(runs, json={"field": "spam", "iterations": 3, "filter": {"tag": "gold"}})
    assert r.status_code == 201, r.text
    second = r.json()["run"]
    assert (second["items"], second["max_iterations"], second["criteria"]) == (
        3,
        3,
        {"tag": "gold"},
    )

    r = await api.get(runs, as_="vera")
    assert [run["id"] for run in r.json()] == [second["id"], first["run"]["id"]]
    r = await api.get(f"{runs}/{first['run']['id']}", as_="vera")
    assert r.status_code == 200 and r.json() == first, r.text
    r = await api.get(f"{runs}/latest", params={"only_differing": "true"})
    assert r.json()["run"] == second
    assert all(item["differs"] for item in r.json()["report"]["by_item"])
    r = await api.get(f"{runs}/{second['id']}", params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert (
        f'filename="{name}-dawid-skene-run-{second["id"]}.csv"' in r.headers["content-disposition"]
    )
    assert sum(row["table"] == "item" for row in csv.DictReader(io.StringIO(r.text))) == 3

    # Refusals: a viewer may read but not store; a bad run, body or field; no answers.
    r = await api.post(runs, json={"field": "spam"}, as_="vera")
    error_of(r, 403)
    r = await api.get(f"{runs}/{second['id'] + 1}")
    assert f"no Dawid-Skene run {second['id'] + 1}" in error_of(r, 404, "unknown_run")["message"]
    for bad in ("0", "first", "-1"):
        error_of(await api.get(f"{runs}/{bad}"), 422, "invalid_input")
    for body in ({"field": "spam", "iterations": 0}, {"field": "spam", "colour": "red"}, [1]):
        error_of(await api.post(runs, json=body), 422, "invalid_input")
    r = await api.post(runs, content=b"{not json", headers={"content-type": "application/json"})
    error_of(r, 422, "invalid_input")
    r = await api.post(runs, json={"field": "topics"})
    assert "multi_select" in error_of(r, 422, "not_categorical")["message"]
    r = await api.post(runs, json={"field": "spam", "filter": {"tag": "nothing-has-this"}})
    assert "no answers" in error_of(r, 422, "no_answers")["message"]
    r = await api.get(runs, as_="vera")
    assert len(r.json()) == 2
