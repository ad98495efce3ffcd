"""Keys, roles and the JSON error shape: who may call what, and what bad input gets."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.api.conftest import Api, error_of

PIPE = "/api/v1/pipelines/no-such-pipeline"
FORGED = base64.urlsafe_b64encode(b'{"s":"status","v":[1],"w":"x"}').decode().rstrip("=")
"""A cursor in the explorer's format holding a value of the wrong type."""
TASK = "/api/v1/tasks/no-such-pipeline/k1"


async def test_a_live_key_is_required(api: Api) -> None:
    r = await api.get("/api/v1/me", as_=None)
    error = error_of(r, 401, "unauthenticated")
    assert "Authorization: Bearer" in error["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    for key in ("cvk_" + "x" * 43, "not-a-key", api.revoked_key, api.keys["gone"]):
        r = await api.get("/api/v1/me", as_=None, headers={"Authorization": f"Bearer {key}"})
        error_of(r, 401, "unauthenticated")
    # the same key works in each of the three places
    key = api.keys["ana"]
    for headers, cookie in (
        ({"Authorization": f"Bearer {key}"}, None),
        ({"X-API-Key": key}, None),
        ({}, key),
    ):
        api.http.cookies.clear()
        if cookie is not None:
            api.http.cookies.set("conveyor_key", cookie)
        r = await api.http.get("/api/v1/me", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "ana"
    api.http.cookies.clear()


async def test_cookie_writes_started_by_another_site_are_refused(api: Api) -> None:
    pipeline = await api.label_pipeline()
    pause = f"/api/v1/pipelines/{pipeline}/pause"
    evil = {"Origin": "http://evil.example"}
    cookie = {"Cookie": f"conveyor_key={api.keys['root']}"}
    try:
        # the web app's cookie alone, from another site: refused before any route runs
        for foreign in (evil, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            r = await api.http.post(pause, headers={**cookie, **foreign})
            error = error_of(r, 403, "cross_site")
            assert "Authorization header" in error["message"]
        r = await api.http.post("/work/claim", headers={**cookie, **evil}, data={"id": "x"})
        assert r.status_code == 403 and "another site" in r.text
        assert (await api.get(f"/api/v1/pipelines/{pipeline}")).json()["status"] == "Active"
        # reading is never refused, nor a write from this server's own pages
        r = await api.http.get(f"/api/v1/pipelines/{pipeline}", headers={**cookie, **evil})
        assert r.status_code == 200, r.text
        r = await api.http.post(pause, headers={**cookie, "Origin": "http://test"})
        assert r.status_code == 200, r.text
        # a key in a header cannot come from another site's form: not the guard's business
        r = await api.post(f"/api/v1/pipelines/{pipeline}/resume", headers=evil)
        assert r.status_code == 200, r.text
    finally:
        api.http.cookies.clear()


async def test_a_cookie_write_from_another_site_is_refused_whatever_else_it_carries(
    api: Api,
) -> None:
    """An Authorization or X-API-Key header beside the cookie does not skip the check."""
    pipeline = await api.label_pipeline()
    pause = f"/api/v1/pipelines/{pipeline}/pause"
    cookie = {"Cookie": f"conveyor_key={api.keys['root']}"}
    for unrelated in (
        {"Authorization": f"Bearer {api.keys['root']}"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": api.keys["root"]},
    ):
        for foreign in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            r = await api.http.post(pause, headers={**cookie, **unrelated, **foreign})
            error_of(r, 403, "cross_site")
    assert (await api.get(f"/api/v1/pipelines/{pipeline}")).json()["status"] == "Active"


async def test_an_invalid_authorization_is_401_not_the_cookie(api: Api) -> None:
    """A header that is there decides: a bad one is refused, never answered as the cookie's
    user."""
    cookie = {"Cookie": f"conveyor_key={api.keys['root']}"}
    for header in (
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": ""},
        {"Authorization": "Bearer cvk_" + "x" * 43},
        {"Authorization": f"Bearer {api.revoked_key}"},
        {"X-API-Key": ""},
        {"X-API-Key": "not-a-key"},
    ):
        r = await api.http.get("/api/v1/me", headers={**cookie, **header})
        error_of(r, 401, "unauthenticated")
        r = await api.http.post(
            "/api/v1/pipelines/no-such/pause", headers={**cookie, **header}, json={}
        )
        error_of(r, 401, "unauthenticated")
    error = error_of(
        await api.http.get("/api/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401
    )
    assert "'Bearer <key>'" in error["message"]
    # a valid header wins over the cookie; the cookie alone still works
    r = await api.http.get("/api/v1/me", headers={**cookie, "X-API-Key": api.keys["ana"]})
    assert r.json()["name"] == "ana", r.text
    r = await api.http.get("/api/v1/me", headers=cookie)
    assert r.json()["name"] == "root", r.text


async def test_sign_in_started_by_another_site_is_refused(api: Api) -> None:
    """Login CSRF: another site's form must not sign the browser in (as its own user)."""
    form = {"key": api.keys["vera"], "next": "/"}
    for foreign in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://test.evil.example", "Sec-Fetch-Site": "same-site"},
    ):
        r = await api.http.post("/signin", data=form, headers=foreign)
        assert r.status_code == 403, r.text
        assert "another site" in r.text and "set-cookie" not in r.headers
    # from this server's own sign-in page (or a client sending no Origin), it signs in
    for own in ({"Origin": "http://test", "Sec-Fetch-Site": "same-origin"}, {}):
        r = await api.http.post("/signin", data=form, headers=own)
        assert r.status_code == 303, r.text
        assert any(c.startswith("conveyor_key=") for c in r.headers.get_list("set-cookie"))
        api.http.cookies.clear()


async def test_me_says_who_and_what(api: Api) -> None:
    expected = {
        "root": ("admin", [], True, True, True, True),
        "vera": ("viewer", [], True, False, False, False),
        "cy": ("contributor", ["labeler", "reviewer"], False, True, False, False),
        "feeder": ("contributor", ["creator"], False, True, True, False),
    }
    for name, (role, roles, read, work, create, administer) in expected.items():
        r = await api.get("/api/v1/me", as_=name)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "name": name,
            "role": role,
            "contributor_roles": roles,
            "can_read": read,
            "can_work": work,
            "can_create_tasks": create,
            "can_administer": administer,
        }


VIEWER_MAY_NOT: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/pipelines", {"name": "x", "nodes": []}),
    ("POST", f"{PIPE}/pause", {}),
    ("POST", f"{PIPE}/activate", None),
    ("POST", f"{PIPE}/tasks", {"key": "k", "data": {}}),
    ("POST", f"{PIPE}/tasks/batch", {"rows": [{}]}),
    ("POST", f"{TASK}/admin/tag", {"tags": ["x"]}),
    ("POST", f"{TASK}/admin/edit", {"node": "label", "values": {}}),
    ("POST", f"{TASK}/claim", {"node": "label"}),
    ("POST", f"{TASK}/submit", {"node": "label", "token": "t", "values": {}}),
    ("GET", "/api/v1/queue/available", None),
    ("POST", "/api/v1/queue/next", {}),
    ("POST", "/api/v1/bulk/delete", {"pipeline": "x", "confirm": True}),
    ("POST", "/api/v1/bulk/evaluations", {"pipeline": "x", "evaluators": ["a.b"]}),
    ("POST", "/api/v1/bulk/evaluations/some-id/cancel", None),
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"name": "x", "role": "viewer"}),
    ("POST", "/api/v1/users/vera/keys", {}),
]

CONTRIBUTOR_MAY_NOT: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/pipelines", None),
    ("GET", PIPE, None),
    ("POST", "/api/v1/pipelines/validate", {"name": "x"}),
    ("POST", "/api/v1/pipelines", {"name": "x", "nodes": []}),
    ("POST", f"{PIPE}/archive", None),
    ("GET", f"{PIPE}/tasks", None),
    ("GET", f"{PIPE}/counts", None),
    ("POST", f"{PIPE}/tasks", {"key": "k", "data": {}}),
    ("GET", TASK, None),
    ("POST", f"{TASK}/admin/release-claim", {"node": "label"}),
    ("POST", f"{TASK}/admin/escalate", {"reason": "r"}),
    ("POST", f"{TASK}/admin/retry", None),
    ("POST", "/api/v1/bulk/exports", {"pipeline": "x"}),
    ("GET", "/api/v1/bulk/exports", None),
    ("GET", "/api/v1/bulk/evaluations/some-id", None),
    ("POST", "/api/v1/bulk/delete", {"pipeline": "x", "confirm": True}),
    ("GET", "/api/v1/analytics/llm", None),
    ("GET", "/api/v1/analytics/eval?pipeline=x", None),
    ("GET", "/api/v1/analytics/agreement?pipeline=x", None),
    ("GET", "/api/v1/users/ana", None),
    ("POST", "/api/v1/users/bo/disable", None),
    ("POST", "/api/v1/users/bo/keys/revoke", {}),
]


@pytest.mark.parametrize(
    ("user", "cases"),
    [("vera", VIEWER_MAY_NOT), ("ana", CONTRIBUTOR_MAY_NOT)],
    ids=["viewer-writing", "contributor-reading"],
)
async def test_roles_are_enforced_on_every_route(
    api: Api, user: str, cases: list[tuple[str, str, Any]]
) -> None:
    for method, path, body in cases:
        r = await api.call(method, path, as_=user, json=body)
        error = error_of(r, 403, "forbidden")
        assert user in error["message"], (method, path, error)


async def test_a_contributor_may_not_widen_their_roles(api: Api) -> None:
    r = await api.get("/api/v1/queue/available", as_="ana", params={"roles": ["reviewer"]})
    assert "reviewer" in error_of(r, 403, "forbidden")["message"]
    r = await api.post("/api/v1/queue/next", as_="ana", json={"roles": ["labeler", "lead"]})
    error_of(r, 403, "forbidden")
    r = await api.get("/api/v1/queue/available", as_="ana", params={"roles": ["labeler"]})
    assert r.status_code == 200 and r.json()["roles"] == ["labeler"]


async def test_bad_input_is_422_in_the_json_shape(api: Api) -> None:
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        (
            "POST",
            f"{PIPE}/tasks",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            "invalid_input",
        ),
        ("POST", f"{PIPE}/tasks", {"json": {"data": {}}}, "invalid_input"),
        ("POST", f"{PIPE}/tasks", {"json": {"key": "", "data": {}}}, "invalid_input"),
        ("POST", f"{PIPE}/tasks/batch", {"json": {"rows": []}}, "invalid_input"),
        ("POST", f"{PIPE}/tasks/batch", {"json": {"rows": [{}] * 5001}}, "invalid_input"),
        ("GET", f"{PIPE}/tasks", {"params": {"limit": 0}}, "invalid_input"),
        ("GET", f"{PIPE}/tasks", {"params": {"sort": "colour"}}, "invalid_input"),
        ("GET", f"{PIPE}/tasks", {"params": {"status": "Sleeping"}}, "invalid_input"),
        ("GET", f"{PIPE}/tasks", {"params": {"after": "bm90LWEtY3Vyc29y"}}, "invalid_cursor"),
        ("GET", f"{PIPE}/tasks", {"params": {"sort": "status", "after": FORGED}}, "invalid_cursor"),
        ("GET", f"{PIPE}/tasks", {"params": {"created_from": "yesterday"}}, "invalid_input"),
        (
            "GET",
            f"{PIPE}/tasks",
            {"params": {"created_to": "0001-01-01T00:00+14:00"}},
            "invalid_input",
        ),
        (
            "GET",
            "/api/v1/analytics/llm",
            {"params": {"until": "9999-12-31T23:59-14:00"}},
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/bulk/delete",
            {
                "json": {
                    "pipeline": "x",
                    "filter": {"created_from": "0001-01-01T00:00+14:00"},
                    "confirm": True,
                }
            },
            "invalid_input",
        ),
        ("GET", f"{PIPE}/tasks", {"params": {"text": "a\x00b"}}, "invalid_input"),
        ("GET", "/api/v1/pipelines/not a name!", {}, "invalid_input"),
        ("POST", f"{TASK}/admin/tag", {"json": {"tags": []}}, "invalid_input"),
        ("POST", f"{TASK}/admin/escalate", {"json": {}}, "invalid_input"),
        ("POST", f"{TASK}/admin/resolve", {"json": {"action": "shrug"}}, "invalid_input"),
        (
            "POST",
            f"{TASK}/admin/edit",
            {"json": {"node": "label", "values": {"a": "x\u0000y"}}},
            "invalid_input",
        ),
        (
            "POST",
            f"{TASK}/review",
            {"json": {"node": "check", "token": "t", "verdict": "fail"}},
            "invalid_input",
        ),
        (
            "POST",
            f"{TASK}/review",
            {"json": {"node": "check", "token": "t", "verdict": "meh"}},
            "invalid_input",
        ),
        (
            "POST",
            "/api/v1/bulk/exports",
            {"json": {"pipeline": "x", "format": "xls"}},
            "invalid_input",
        ),
        ("POST", "/api/v1/bulk/delete", {"json": {"confirm": True}}, "invalid_input"),
        ("POST", "/api/v1/bulk/delete", {"json": {"pipeline": "x"}}, "confirmation_required"),
        ("POST", "/api/v1/bulk/evaluations", {"json": {"pipeline": "x"}}, "invalid_input"),
        ("GET", "/api/v1/analytics/llm", {"params": {"group_by": "colour"}}, "invalid_input"),
        (
            "GET",
            "/api/v1/analytics/agreement",
            {"params": {"pipeline": "x", "tolerance": "nan"}},
            "invalid_input",
        ),
        (
            "GET",
            "/api/v1/analytics/eval",
            {"params": {"pipeline": "x", "bins": 0}},
            "invalid_input",
        ),
    ]
    for method, path, kwargs, code in cases:
        r = await api.call(method, path, **kwargs)
        error = error_of(r, 422, code)
        if code == "invalid_input" and error["details"] is not None:
            assert all({"at", "problem"} <= set(d) for d in error["details"]), error


async def test_unknown_routes_and_methods_answer_in_the_json_shape(api: Api) -> None:
    error_of(await api.get("/api/v1/nothing-here"), 404, "not_found")
    error_of(await api.call("PUT", "/api/v1/me"), 405, "method_not_allowed")
