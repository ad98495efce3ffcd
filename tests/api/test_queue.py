"""The work queue over HTTP: contributors act as themselves, see only their own claims, and
hit the claim limit with a clear 409."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, error_of, until


async def available(api: Api, who: str, pipeline: str) -> dict[str, Any]:
    r = await api.get("/api/v1/queue/available", params={"pipeline": pipeline}, as_=who)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_contributor_journey_with_rework(api: Api) -> None:
    name = await api.label_pipeline()
    wid = await api.create(name, "journey", "The box was crushed and nobody answers.")
    queue = await until(lambda: available(api, "ana", name), lambda q: len(q["items"]) == 1)
    assert queue["contributor"] == "ana" and queue["roles"] == ["labeler"]
    assert queue["items"][0] | {"since": None} == {
        "workflow_id": wid,
        "node": "label",
        "pipeline": name,
        "status": "Available",
        "since": None,
        "rework_reason": None,
    }
    assert queue["claims"] == [
        {"pipeline": name, "held": 0, "limit": None, "at_limit": False, "text": "0 claimed"}
    ]

    r = await api.post("/api/v1/queue/next", json={"pipeline": name}, as_="ana")
    assert r.status_code == 200, r.text
    claimed = r.json()
    assert (claimed["workflow_id"], claimed["node"]) == (wid, "label")
    assert claimed["claims"]["held"] == 1 and claimed["result"]["accepted"] is True
    token = claimed["token"]

    mine = (await api.get("/api/v1/queue/claims", as_="ana")).json()
    assert [
        (i["workflow_id"], i["node"], i["status"]) for i in mine["items"] if i["pipeline"] == name
    ] == [(wid, "label", "Claimed")]
    assert {
        "pipeline": name,
        "held": 1,
        "limit": None,
        "at_limit": False,
        "text": "1 claimed",
    } in mine["claims"]
    work = (await api.get(f"/api/v1/queue/claims/{wid}", as_="ana")).json()
    assert work["data"] == {"text": "The box was crushed and nobody answers."}
    [node] = work["claims"]
    assert node["node"] == "label" and node["token"] == token and node["kind"] == "subtask"
    assert [f["name"] for f in node["fields"]] == ["text", "label", "notes"]

    task = f"/api/v1/tasks/{wid}"
    r = await api.post(
        f"{task}/draft",
        json={"node": "label", "token": token, "values": {"notes": "half done"}},
        as_="ana",
    )
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text
    r = await api.post(
        f"{task}/submit",
        json={"node": "label", "token": token, "values": {"label": "furious"}},
        as_="ana",
    )
    error = error_of(r, 422, "invalid_values")
    assert "label" in error["details"]["field_errors"]
    r = await api.post(
        f"{task}/submit",
        json={"node": "label", "token": token, "values": {"label": "positive"}},
        as_="ana",
    )
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text

    async def submitted() -> list[tuple[str, str]]:
        r = await api.get("/api/v1/queue/submitted", as_="ana")
        return [(i["workflow_id"], i["node"]) for i in r.json()["items"]]

    await until(submitted, lambda done: (wid, "label") in done)  # the store follows shortly

    # the reviewer fails it: a reason is required, and it reaches the contributor
    r = await until(
        lambda: api.post("/api/v1/queue/next", json={"pipeline": name}, as_="bo"),
        lambda r: r.status_code == 200,
    )
    review_token = r.json()["token"]
    assert r.json()["node"] == "check"
    fail = {"node": "check", "token": review_token, "verdict": "fail"}
    error_of(await api.post(f"{task}/review", json=fail, as_="bo"), 422, "invalid_input")
    fail["reason"] = "the customer is clearly unhappy"
    r = await api.post(f"{task}/review", json=fail, as_="bo")
    assert r.status_code == 200 and r.json()["accepted"] is True, r.text

    # rework goes back to ana (same_person), with the reason
    queue = await until(lambda: available(api, "ana", name), lambda q: len(q["items"]) == 1)
    assert queue["items"][0]["rework_reason"] == "the customer is clearly unhappy"
    assert (await available(api, "cy", name))["items"] == []
    r = await api.post(f"{task}/claim", json={"node": "label"}, as_="ana")
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    work = (await api.get(f"/api/v1/queue/claims/{wid}", as_="ana")).json()
    assert work["claims"][0]["rework_reason"] == "the customer is clearly unhappy"
    assert work["claims"][0]["last_review"]["verdict"] == "fail"
    r = await api.post(
        f"{task}/submit",
        json={"node": "label", "token": token, "values": {"label": "negative"}},
        as_="ana",
    )
    assert r.status_code == 200, r.text

    r = await until(
        lambda: api.post(f"{task}/claim", json={"node": "check"}, as_="bo"),
        lambda r: r.status_code == 200,
    )
    r = await api.post(
        f"{task}/review",
        json={"node": "check", "token": r.json()["token"], "verdict": "pass"},
        as_="bo",
    )
    assert r.json()["status"] == "Finished", r.text

    async def detail() -> dict[str, Any]:
        return dict((await api.get(task)).json())

    found = await until(detail, lambda d: d["status"] == "Finished")
    label = found["nodes"][1]
    assert label["values"]["label"] == "negative"
    assert [s["kind"] for s in label["submissions"] if s["kind"] != "draft"] == ["submit", "submit"]


async def test_claims_are_private(api: Api) -> None:
    name = await api.label_pipeline()
    wid = await api.create(name, "private")
    r = await until(
        lambda: api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_="ana"),
        lambda r: r.status_code == 200,
    )
    token = r.json()["token"]
    # cy may not see ana's claim, and cannot act on it even with the token
    error = error_of(await api.get(f"/api/v1/queue/claims/{wid}", as_="cy"), 403, "forbidden")
    assert "ana" not in error["message"] and token not in error["message"]
    theirs = (await api.get("/api/v1/queue/claims", as_="cy")).json()["items"]
    assert [i for i in theirs if i["pipeline"] == name] == []
    body = {"node": "label", "token": token, "values": {"label": "neutral"}}
    error_of(await api.post(f"/api/v1/tasks/{wid}/submit", json=body, as_="cy"), 409, "rejected")
    release = {"node": "label", "token": token}
    error_of(
        await api.post(f"/api/v1/tasks/{wid}/release", json=release, as_="cy"), 409, "rejected"
    )
    # nor claim a node taken by someone else
    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_="cy")
    error_of(r, 409, "rejected")
    # ana releases; the draft stays and the work is available again
    r = await api.post(f"/api/v1/tasks/{wid}/release", json=release, as_="ana")
    assert r.status_code == 200, r.text
    error_of(await api.get(f"/api/v1/queue/claims/{wid}", as_="ana"), 404, "no_claim")
    error_of(await api.get("/api/v1/queue/claims/not-a-task-id", as_="ana"), 404, "task_not_found")


async def test_claim_limit_is_a_clear_409(api: Api) -> None:
    name = await api.label_pipeline(claim_limits={"labeler": 1})
    first = await api.create(name, "one")
    second = await api.create(name, "two")
    await until(lambda: available(api, "ana", name), lambda q: len(q["items"]) == 2)

    r = await api.post("/api/v1/queue/next", json={"pipeline": name}, as_="ana")
    assert r.status_code == 200, r.text
    held = r.json()
    assert held["claims"] == {
        "pipeline": name,
        "held": 1,
        "limit": 1,
        "at_limit": True,
        "text": "1 of 1 claimed",
    }
    other = second if held["workflow_id"] == first else first

    r = await api.post("/api/v1/queue/next", json={"pipeline": name}, as_="ana")
    error = error_of(r, 409, "claim_limit")
    assert "1 of 1 claimed" in error["message"] and error["details"]["limit"] == 1
    r = await api.post(f"/api/v1/tasks/{other}/claim", json={"node": "label"}, as_="ana")
    error_of(r, 409, "claim_limit")
    queue = await available(api, "ana", name)
    assert queue["claims"][0]["text"] == "1 of 1 claimed" and queue["claims"][0]["at_limit"]

    release = {"node": "label", "token": held["token"]}
    r = await api.post(f"/api/v1/tasks/{held['workflow_id']}/release", json=release, as_="ana")
    assert r.status_code == 200
    r = await until(
        lambda: api.post(f"/api/v1/tasks/{other}/claim", json={"node": "label"}, as_="ana"),
        lambda r: r.status_code == 200,
    )
    assert r.json()["claims"]["text"] == "1 of 1 claimed"

    # a reviewer has nothing to do here
    error_of(
        await api.post("/api/v1/queue/next", json={"pipeline": name}, as_="bo"), 404, "no_work"
    )


async def test_admins_use_the_queue_with_the_roles_they_name(api: Api) -> None:
    name = await api.label_pipeline()
    wid = await api.create(name, "admin-work")
    error_of(
        await api.post("/api/v1/queue/next", json={"pipeline": name}, as_="root"), 404, "no_work"
    )
    r = await until(
        lambda: api.post(
            "/api/v1/queue/next", json={"pipeline": name, "roles": ["labeler"]}, as_="root"
        ),
        lambda r: r.status_code == 200,
    )
    assert r.json()["workflow_id"] == wid
    mine = (await api.get("/api/v1/queue/claims", as_="root", params={"roles": ["labeler"]})).json()
    assert [i["workflow_id"] for i in mine["items"] if i["pipeline"] == name] == [wid]
    r = await api.post(
        f"/api/v1/tasks/{wid}/regenerate",
        json={"node": "label", "token": r.json()["token"]},
        as_="root",
    )
    error_of(r, 409, "rejected")  # label has no LLM fields to regenerate


async def test_a_claim_in_a_paused_pipeline_is_a_clear_409_at_once(api: Api) -> None:
    name = await api.label_pipeline()
    wid = await api.create(name, "one")
    await until(lambda: available(api, "ana", name), lambda q: len(q["items"]) == 1)
    r = await api.post(f"/api/v1/pipelines/{name}/pause")
    assert r.status_code == 200, r.text
    # Once the store has the pipeline Paused (its queue is empty), a claim is refused there,
    # whether or not the pause has reached the task yet.
    await until(lambda: available(api, "ana", name), lambda q: not q["items"])
    r = await api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_="ana")
    error = error_of(r, 409, "pipeline_paused")
    assert "resume" in error["message"]
    r = await api.post(f"/api/v1/pipelines/{name}/resume")
    assert r.status_code == 200, r.text
    r = await until(
        lambda: api.post(f"/api/v1/tasks/{wid}/claim", json={"node": "label"}, as_="ana"),
        lambda r: r.status_code == 200,
    )
    assert r.json()["node"] == "label"
