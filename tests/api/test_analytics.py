"""An LLM-drafted form over HTTP (regenerate), then LLM Analytics, Evaluation Analytics and
judge-versus-human agreement on what it produced."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.api.conftest import Api, error_of, until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "answer-evaluate.yaml"


async def test_llm_draft_regenerate_then_analytics(api: Api) -> None:
    name = f"api-answer-{uuid.uuid4().hex[:8]}"
    text = EXAMPLE.read_text().replace("name: answer-evaluate", f"name: {name}", 1)
    r = await api.post(
        "/api/v1/pipelines",
        params={"activate": "true"},
        content=text.encode(),
        headers={"content-type": "application/yaml"},
    )
    assert r.status_code == 200, r.text
    wid = await api.call(
        "POST",
        f"/api/v1/pipelines/{name}/tasks",
        json={"key": "q1", "data": {"question": "How do I reset my password?"}},
    )
    workflow_id = wid.json()["workflow_id"]

    r = await until(
        lambda: api.post("/api/v1/queue/next", json={"pipeline": name}, as_="wes"),
        lambda r: r.status_code == 200,
    )
    token = r.json()["token"]

    async def work() -> dict[str, Any]:
        return dict((await api.get(f"/api/v1/queue/claims/{workflow_id}", as_="wes")).json())

    view = await until(work, lambda w: "suggestion" in w["claims"][0]["draft"])
    assert "offline demo model" in view["claims"][0]["draft"]["suggestion"]
    fields = {f["name"]: f["source"] for f in view["claims"][0]["fields"]}
    assert fields == {"question": "predefined", "suggestion": "llm", "reply": "input"}

    claimed = {"node": "answer", "token": token}
    r = await api.post(f"/api/v1/tasks/{workflow_id}/regenerate", json=claimed, as_="wes")
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    answer = claimed | {"values": {"reply": "Use the 'Forgot password' link on the sign-in page."}}
    r = await api.post(f"/api/v1/tasks/{workflow_id}/submit", json=answer, as_="wes")
    assert r.status_code == 200, r.text
    assert [e["criterion"] for e in r.json()["evaluations"]] == ["short_enough"]

    r = await until(
        lambda: api.post("/api/v1/queue/next", json={"pipeline": name}, as_="bo"),
        lambda r: r.status_code == 200,
    )
    review = {
        "node": "check",
        "token": r.json()["token"],
        "verdict": "pass",
        "values": {"helpful_rating": True},
    }
    r = await api.post(f"/api/v1/tasks/{workflow_id}/review", json=review, as_="bo")
    assert r.status_code == 200 and r.json()["status"] == "Finished", r.text

    async def agreement() -> list[dict[str, Any]]:
        r = await api.get("/api/v1/analytics/agreement", params={"pipeline": name}, as_="vera")
        assert r.status_code == 200, r.text
        return list(r.json())

    [helpful] = await until(agreement, lambda found: len(found) == 1 and found[0]["pairs"] == 1)
    assert helpful["criterion"] == "helpful" and helpful["label_pairs"] == 1

    r = await api.get("/api/v1/analytics/eval", params={"pipeline": name}, as_="vera")
    assert r.status_code == 200, r.text
    found = {(c["criterion"], c["kind"]) for c in r.json()}
    assert {
        ("helpful", "llm_judge"),
        ("helpful", "human"),
        ("no_personal_data", "programmatic"),
        ("short_enough", "programmatic"),
    } <= found
    r = await api.get(
        "/api/v1/analytics/eval",
        params={"pipeline": name, "criterion": "short_enough", "kind": "programmatic", "bins": 5},
    )
    [short] = r.json()
    assert (short["results"], short["passed"], short["pass_rate"]) == (1, 1, 1.0)

    r = await api.get(
        "/api/v1/analytics/llm", params={"pipeline": name, "group_by": "node,purpose"}
    )
    assert r.status_code == 200, r.text
    groups = {(g["node"], g["purpose"]): g for g in r.json()}
    assert groups[("answer", "field")]["calls"] >= 2  # the draft and its regeneration
    assert groups[("answer", "judge")]["calls"] >= 1
    assert all(g["pipeline"] is None and g["model"] is None for g in r.json())
    r = await api.get(
        "/api/v1/analytics/llm", params={"pipeline": name, "purpose": "judge", "group_by": ""}
    )
    [total] = r.json()
    assert total["calls"] == groups[("answer", "judge")]["calls"]

    for route in ("llm", "eval", "agreement"):
        r = await api.get(f"/api/v1/analytics/{route}", params={"pipeline": "nope-404"})
        assert "nope-404" in error_of(r, 404, "unknown_pipeline")["message"]
