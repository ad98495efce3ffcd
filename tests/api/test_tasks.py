"""Tasks over HTTP: creating one or many, the Data Explorer, and every admin operation."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, error_of, label_definition, until


async def test_create_one_and_many(api: Api) -> None:
    name = await api.label_pipeline()
    path = f"/api/v1/pipelines/{name}/tasks"
    r = await api.post(path, json={"key": "doc/1", "data": {"text": "Arrived broken."}})
    assert r.status_code == 201, r.text
    assert r.json() == {"workflow_id": f"{name}/doc/1", "created": True}
    r = await api.post(path, json={"key": "doc/1", "data": {"text": "Arrived broken."}})
    assert r.status_code == 200 and r.json()["created"] is False

    error = error_of(await api.post(path, json={"key": "k", "data": {}}), 422, "invalid_seed_data")
    assert "text" in error["details"]
    error_of(
        await api.post("/api/v1/pipelines/nope-404/tasks", json={"key": "k"}),
        404,
        "unknown_pipeline",
    )
    draft = await api.apply(_definition_of(name, "draft"), activate=False)
    error_of(
        await api.post(
            f"/api/v1/pipelines/{draft}/tasks", json={"key": "k", "data": {"text": "t"}}
        ),
        409,
        "pipeline_not_accepting",
    )

    rows: list[dict[str, Any]] = [
        {"id": "b1", "text": "fine"},
        {"id": "b2", "text": "great"},
        {"id": "b3", "text": ""},
        {"id": "b1", "text": "fine"},
    ]
    r = await api.post(f"{path}/batch", json={"rows": rows, "key_column": "id"}, as_="feeder")
    assert r.status_code == 200, r.text
    batch = r.json()
    assert (batch["created"], batch["exists"], batch["invalid"], batch["error"]) == (2, 1, 1, 0)
    outcomes = [(x["index"], x["outcome"], x["workflow_id"]) for x in batch["results"]]
    assert outcomes == [
        (0, "created", f"{name}/b1"),
        (1, "created", f"{name}/b2"),
        (2, "invalid", None),
        (3, "exists", f"{name}/b1"),
    ]
    assert "text" in batch["results"][2]["errors"]
    # a contributor without the creator role may not
    error_of(await api.post(f"{path}/batch", json={"rows": rows}, as_="ana"), 403, "forbidden")


def _definition_of(name: str, suffix: str) -> dict[str, Any]:
    definition = label_definition()
    definition["name"] = f"{name}-{suffix}"
    return definition


async def test_explorer_filters_sorts_pages_and_shows_detail(api: Api) -> None:
    name = await api.label_pipeline()
    rows = [
        {"id": f"t{i}", "text": text}
        for i, text in enumerate(["apple pie", "banana", "cherry", "apple jam", "date"])
    ]
    r = await api.post(
        f"/api/v1/pipelines/{name}/tasks/batch", json={"rows": rows, "key_column": "id"}
    )
    assert r.json()["created"] == 5

    async def counts() -> dict[str, Any]:
        return dict((await api.get(f"/api/v1/pipelines/{name}/counts", as_="vera")).json())

    found = await until(counts, lambda c: c["counts"]["In Progress"] == 5)
    assert found["total"] == 5 and found["counts"]["Finished"] == 0
    assert list(found["counts"]) == [
        "Pending",
        "In Progress",
        "Paused",
        "Finished",
        "Escalated",
        "Quarantined",
        "Failed",
    ]

    tasks = f"/api/v1/pipelines/{name}/tasks"
    first = (await api.get(tasks, params={"sort": "task_key", "limit": 2}, as_="vera")).json()
    assert [t["task_key"] for t in first["rows"]] == ["t0", "t1"]
    assert first["columns"]["nodes"] == ["label", "check"]
    assert first["rows"][0]["node_statuses"]["label"] == "Available"
    assert first["rows"][0]["values"] is None
    second = (
        await api.get(tasks, params={"sort": "task_key", "limit": 2, "after": first["next_cursor"]})
    ).json()
    assert [t["task_key"] for t in second["rows"]] == ["t2", "t3"]
    r = await api.get(tasks, params={"sort": "-task_key", "after": first["next_cursor"]})
    error_of(r, 422, "invalid_cursor")

    desc = (await api.get(tasks, params={"sort": "-task_key"})).json()
    assert [t["task_key"] for t in desc["rows"]] == ["t4", "t3", "t2", "t1", "t0"]
    assert desc["next_cursor"] is None

    apples = (await api.get(tasks, params={"text": "APPLE", "data": "true"})).json()
    assert sorted(t["values"]["label.text"] for t in apples["rows"]) == ["apple jam", "apple pie"]
    node = (await api.get(tasks, params={"node": "label", "node_status": "Available"})).json()
    assert len(node["rows"]) == 5
    assert (await api.get(tasks, params={"status": ["Finished", "Failed"]})).json()["rows"] == []
    r = await api.get(
        tasks, params={"created_from": "2000-01-01T00:00:00", "created_to": "2000-01-02"}
    )
    assert r.json()["rows"] == []

    r = await api.get(f"/api/v1/tasks/{name}/t0", as_="vera")
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["data"] == {"text": "apple pie"} and detail["status"] == "In Progress"
    assert [n["name"] for n in detail["nodes"]] == ["start", "label", "check", "end"]
    label = detail["nodes"][1]
    assert label["kind"] == "subtask" and [f["name"] for f in label["fields"]] == [
        "text",
        "label",
        "notes",
    ]
    assert [e["kind"] for e in detail["timeline"]][:1] == ["created"]
    error_of(await api.get(f"/api/v1/tasks/{name}/missing"), 404, "task_not_found")

    # the live state comes from the workflow itself; it holds claim tokens, so admins only
    wid = f"{name}/t0"
    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_="ana")
    assert r.status_code == 200, r.text
    live = await api.get(f"/api/v1/tasks/{wid}/state")
    assert live.status_code == 200, live.text
    claimed = {n["name"]: n for n in live.json()["nodes"]}["label"]
    assert (claimed["status"], claimed["claim"]["holder"]) == ("Claimed", "ana")
    assert claimed["claim"]["token"] == r.json()["token"]
    error_of(await api.get(f"/api/v1/tasks/{wid}/state", as_="vera"), 403, "forbidden")
    error_of(await api.get(f"/api/v1/tasks/{name}/missing/state"), 404)


async def _claim_and_submit(api: Api, workflow_id: str, who: str = "ana") -> None:
    r = await api.post(f"/api/v1/tasks/{workflow_id}/claim", json={"node": "label"}, as_=who)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    r = await api.post(
        f"/api/v1/tasks/{workflow_id}/submit",
        json={"node": "label", "token": token, "values": {"label": "positive"}},
        as_=who,
    )
    assert r.status_code == 200, r.text


async def test_every_admin_operation(api: Api) -> None:
    name = await api.label_pipeline()
    wid = await api.create(name, "ops")
    admin = f"/api/v1/tasks/{wid}/admin"

    async def send(op: str, body: Any = None, status: int = 200) -> dict[str, Any]:
        r = await api.post(f"{admin}/{op}", json=body)
        assert r.status_code == status, (op, r.text)
        return dict(r.json())

    # refused where they make no sense, with the task's reason
    assert (await send("activate"))["message"] == "task is already active (In Progress)"
    for op, body in (("retry", {}), ("resolve", {"action": "rework"})):
        r = await api.post(f"{admin}/{op}", json=body)
        error = error_of(r, 409, "rejected")
        assert error["details"]["accepted"] is False and error["details"]["command"]

    assert (await send("pause", {"reason": "checking"}))["status"] == "Paused"
    assert (await send("resume"))["status"] == "In Progress"
    tagged = await send("tag", {"tags": ["gold", "tricky"], "request_id": "tag-once"})
    again = await send("tag", {"tags": ["gold", "tricky"], "request_id": "tag-once"})
    assert again == tagged, "the same request id returns the first answer"
    await send("untag", {"tags": ["tricky"]})
    assert (await send("escalate", {"reason": "legal question"}))["status"] == "Escalated"
    assert (await send("deescalate", {"reason": "answered"}))["status"] == "In Progress"

    await _claim_and_submit(api, wid)
    edited = await send(
        "edit", {"node": "label", "values": {"label": "negative"}, "reason": "sarcasm"}
    )
    assert edited["accepted"] is True
    bad = await api.post(f"{admin}/edit", json={"node": "label", "values": {"label": "purple"}})
    assert "label" in error_of(bad, 422, "invalid_values")["details"]["field_errors"]

    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "check"}, as_="bo")
    assert r.status_code == 200, r.text
    await send("release-claim", {"node": "check", "reason": "on leave"})

    async def detail() -> dict[str, Any]:
        return dict((await api.get(f"/api/v1/tasks/{wid}")).json())

    found = await until(
        detail,
        lambda d: (
            d["tags"] == ["gold"]
            and d["nodes"][1]["values"].get("label") == "negative"
            and d["nodes"][2]["status"] == "Available"
        ),
    )
    kinds = {e["kind"] for e in found["timeline"]}
    expected = {"tagged", "untagged", "escalated", "deescalated", "submission_edited"}
    assert expected | {"claim_released_by_admin"} <= kinds, kinds
    moves = [
        (e["data"]["from"], e["data"]["to"])
        for e in found["timeline"]
        if e["kind"] == "task_status"
    ]
    assert ("In Progress", "Paused") in moves and ("Paused", "In Progress") in moves

    error_of(await api.post(f"/api/v1/tasks/{name}/nobody/admin/tag", json={"tags": ["x"]}), 404)


async def test_quarantine_resolve_and_retry(api: Api) -> None:
    definition = label_definition()
    definition["nodes"][2]["max_rereviews"] = 0  # the first failed review quarantines
    name = await api.apply(definition)
    wid = await api.create(name, "q")
    await _claim_and_submit(api, wid)
    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "check"}, as_="bo")
    fail = {"node": "check", "token": r.json()["token"], "verdict": "fail", "reason": "wrong"}
    r = await api.post(f"/api/v1/tasks/{wid}/review", json=fail, as_="bo")
    assert r.json()["status"] == "Quarantined", r.text

    admin = f"/api/v1/tasks/{wid}/admin"
    r = await api.post(f"{admin}/resolve", json={"action": "fail", "reason": "give up"})
    assert r.json()["status"] == "Failed", r.text
    r = await api.post(f"{admin}/retry", json={"reason": "one more look"})
    assert r.json()["status"] == "Quarantined", r.text
    r = await api.post(f"{admin}/resolve", json={"action": "rework"})
    assert r.json()["status"] == "In Progress", r.text
    r = await until(
        lambda: api.get("/api/v1/queue/available", params={"pipeline": name}, as_="ana"),
        lambda r: len(r.json()["items"]) == 1,
    )
    assert r.json()["items"][0]["rework_reason"] == "wrong"
