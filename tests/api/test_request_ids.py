"""A request_id answers only the caller who sent it first: nobody gets another's claim token."""

from __future__ import annotations

from tests.api.conftest import Api, error_of, until
from tests.api.test_queue import available


async def test_another_users_request_id_never_returns_their_claim(api: Api) -> None:
    name = await api.label_pipeline()
    wid = await api.create(name, "shared-id")
    await until(lambda: available(api, "ana", name), lambda q: len(q["items"]) == 1)

    body = {"request_id": "the-same-id", "node": "label"}
    first = await api.post(f"/api/v1/tasks/{wid}/claim", json=body, as_="ana")
    assert first.status_code == 200, first.text
    token = first.json()["token"]

    # cy may label too; with ana's request_id the task refuses, and says nothing of ana's claim.
    other = await api.post(f"/api/v1/tasks/{wid}/claim", json=body, as_="cy")
    error = error_of(other, 409, "rejected")
    assert "already used by someone else" in error["message"]
    assert token not in other.text

    # ana's own repeat still gets her first answer.
    again = await api.post(f"/api/v1/tasks/{wid}/claim", json=body, as_="ana")
    assert again.status_code == 200 and again.json()["token"] == token
