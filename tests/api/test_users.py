"""Users and API keys over HTTP (admins only): create, list, more keys, revoke, disable."""

from __future__ import annotations

import uuid

from tests.api.conftest import Api, error_of


async def test_an_admin_manages_users_and_keys(api: Api) -> None:
    name = f"dana-{uuid.uuid4().hex[:6]}"
    r = await api.post(
        "/api/v1/users",
        json={"name": name, "role": "contributor", "contributor_roles": ["labeler"]},
    )
    assert r.status_code == 201, r.text
    made = r.json()
    first = made["key"]
    assert first.startswith("cvk_")
    user = made["user"]
    assert (user["role"], user["contributor_roles"]) == ("contributor", ["labeler"])
    assert [k["label"] for k in made["user"]["keys"]] == ["made by root"]
    dana = {"Authorization": f"Bearer {first}"}
    assert (await api.http.get("/api/v1/me", headers=dana)).json()["name"] == name

    # the list shows prefixes and labels, never a key
    listed = {u["name"]: u for u in (await api.get("/api/v1/users")).json()}
    assert listed[name]["keys"][0]["prefix"] == first[:12]
    assert first not in (await api.get("/api/v1/users")).text

    r = await api.post(f"/api/v1/users/{name}/keys", json={"label": "laptop"})
    assert r.status_code == 201, r.text
    second = r.json()["key"]
    assert second != first and {k["label"] for k in r.json()["user"]["keys"]} == {
        "made by root",
        "laptop",
    }

    # revoke one key by its prefix: only that one stops working
    r = await api.post(f"/api/v1/users/{name}/keys/revoke", json={"prefix": first[:12]})
    assert r.json() == {"user": name, "revoked": 1}
    error_of(await api.http.get("/api/v1/me", headers=dana), 401, "unauthenticated")
    laptop = {"Authorization": f"Bearer {second}"}
    assert (await api.http.get("/api/v1/me", headers=laptop)).status_code == 200

    # a role change keeps the user's keys; disabling stops them all
    r = await api.post("/api/v1/users", json={"name": name, "role": "viewer"})
    assert r.status_code == 201 and r.json()["user"]["role"] == "viewer"
    assert (await api.http.get("/api/v1/me", headers=laptop)).json()["role"] == "viewer"
    r = await api.post(f"/api/v1/users/{name}/disable")
    assert r.status_code == 200 and r.json()["disabled"] is True
    error_of(await api.http.get("/api/v1/me", headers=laptop), 401, "unauthenticated")
    assert (await api.get(f"/api/v1/users/{name}")).json()["disabled"] is True


async def test_bad_user_input_is_refused_and_admins_cannot_lock_themselves_out(
    api: Api,
) -> None:
    cases = [
        ({"name": "x y", "role": "viewer"}, "is not allowed"),
        ({"name": "zed", "role": "contributor"}, "needs at least one contributor role"),
        ({"name": "zed", "role": "viewer", "contributor_roles": ["labeler"]}, "only contributors"),
    ]
    for body, phrase in cases:
        error = error_of(await api.post("/api/v1/users", json=body), 422, "invalid_input")
        assert phrase in error["message"], error
    error_of(await api.post("/api/v1/users", json={"name": "zed", "role": "boss"}), 422)
    assert "zed" not in {u["name"] for u in (await api.get("/api/v1/users")).json()}

    for path in ("/api/v1/users/nobody-here", "/api/v1/users/nobody-here/keys/revoke"):
        method = "GET" if path.endswith("here") else "POST"
        error = error_of(await api.call(method, path, json={}), 404, "not_found")
        assert "starter.py user create" in error["message"]
    error_of(await api.post("/api/v1/users/nobody-here/keys", json={}), 404, "not_found")
    error_of(await api.post("/api/v1/users/nobody-here/disable"), 404, "not_found")

    error_of(await api.post("/api/v1/users/root/disable"), 409, "conflict")
    error_of(await api.post("/api/v1/users/root/keys/revoke", json={}), 409, "conflict")
    error_of(await api.post("/api/v1/users", json={"name": "root", "role": "viewer"}), 409)
    assert (await api.get("/api/v1/me")).json()["role"] == "admin"
