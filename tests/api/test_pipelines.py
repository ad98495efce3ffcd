"""Pipelines over HTTP: validate, apply (JSON or YAML), show, list and the lifecycle."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.api.conftest import Api, error_of, label_definition, until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "label-review.yaml"


async def test_apply_yaml_then_json_show_list_and_the_lifecycle(api: Api) -> None:
    name = f"api-yaml-{uuid.uuid4().hex[:8]}"
    text = EXAMPLE.read_text().replace("name: label-review", f"name: {name}", 1)
    yaml_body: dict[str, Any] = {
        "content": text.encode(),
        "headers": {"content-type": "application/yaml"},
    }
    r = await api.post("/api/v1/pipelines", params={"activate": "true"}, **yaml_body)
    assert r.status_code == 200, r.text
    applied = r.json()
    assert applied["pipeline"] == name
    assert applied["applied"]["new_version"] is True
    assert applied["applied"]["status"] == "Draft"
    assert applied["activated"]["status"] == "Active"
    version = applied["applied"]["version"]

    # the same content again, as YAML: no new version, no activation needed
    r = await api.post("/api/v1/pipelines", params={"activate": "true"}, **yaml_body)
    assert r.json()["applied"]["new_version"] is False and r.json()["activated"] is None

    r = await api.get(f"/api/v1/pipelines/{name}", as_="vera")
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["status"] == "Active" and view["current_version"] == version
    assert [v["applied_by"] for v in view["versions"]] == ["root"]
    assert view["current"]["claim_limits"] == {"labeler": 5, "reviewer": 10}

    async def listed() -> dict[str, str]:
        r = await api.get("/api/v1/pipelines", as_="vera")
        return {p["name"]: p["status"] for p in r.json()}

    await until(listed, lambda found: found.get(name) == "Active")

    for action, status in (("pause", "Paused"), ("resume", "Active"), ("complete", "Completed")):
        r = await api.post(f"/api/v1/pipelines/{name}/{action}", json={"reason": "testing"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status
    r = await api.post(f"/api/v1/pipelines/{name}/resume")
    assert "not Paused" in error_of(r, 409, "pipeline_rejected")["message"]
    r = await api.post(f"/api/v1/pipelines/{name}/tasks", json={"key": "k", "data": {"text": "t"}})
    error_of(r, 409, "pipeline_not_accepting")
    r = await api.post(f"/api/v1/pipelines/{name}/archive")
    assert r.json()["status"] == "Archived"
    error_of(await api.post(f"/api/v1/pipelines/{name}/activate"), 409, "pipeline_rejected")

    # JSON works as well as YAML: a changed definition becomes a new version
    definition = label_definition()
    r = await api.post("/api/v1/pipelines", json=definition)
    assert r.json()["applied"]["status"] == "Draft" and r.json()["activated"] is None
    definition["description"] = "changed"
    r = await api.post("/api/v1/pipelines", json=definition)
    assert r.json()["applied"]["new_version"] is True


async def test_unknown_pipelines_are_404(api: Api) -> None:
    error_of(await api.get("/api/v1/pipelines/nope-404"), 404, "unknown_pipeline")
    error_of(await api.post("/api/v1/pipelines/nope-404/pause"), 404, "unknown_pipeline")


async def test_validate_and_apply_report_every_problem(api: Api) -> None:
    good = label_definition()
    r = await api.post("/api/v1/pipelines/validate", json=good, as_="vera")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["valid"] is True and report["name"] == good["name"]
    assert (report["nodes"], report["human_nodes"], report["llm_nodes"]) == (4, 2, 0)
    assert len(report["version"]) == 64

    bad = label_definition()
    bad["nodes"][1]["fields"][1]["type"] = "strng"
    bad["nodes"][1]["next"] = ["nowhere"]
    r = await api.post("/api/v1/pipelines/validate", json=bad)
    report = r.json()
    assert report["valid"] is False
    messages = " | ".join(f"{p['where']}: {p['message']}" for p in report["problems"])
    assert "strng" in messages and "nowhere" in messages

    r = await api.post("/api/v1/pipelines", json=bad)
    error = error_of(r, 422, "invalid_pipeline")
    assert any("label" in p["where"] for p in error["details"]), error

    for body, content_type in (
        (b"name: [unclosed", "application/yaml"),
        (b'{"name": ', "application/json"),
        (b"   ", "application/yaml"),
        (b"\xff\xfe", "text/plain"),
    ):
        r = await api.post(
            "/api/v1/pipelines/validate", content=body, headers={"content-type": content_type}
        )
        assert r.status_code == 200 and r.json()["valid"] is False, r.text
        assert r.json()["problems"][0]["where"] == "body"
        error_of(
            await api.post(
                "/api/v1/pipelines", content=body, headers={"content-type": content_type}
            ),
            422,
            "invalid_pipeline",
        )

    # a few aliases can stand for millions of values: refused before anything walks them
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level, name in enumerate("bcdef"):
        previous = "abcdef"[level]
        bomb.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    r = await api.post(
        "/api/v1/pipelines/validate",
        content="\n".join(bomb).encode(),
        headers={"content-type": "application/yaml"},
    )
    assert "too many values" in r.json()["problems"][0]["message"], r.text
