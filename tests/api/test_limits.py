"""Request bodies past their limits: too large (413), nested too deep or with an absurd number
(400), answered before any route, Temporal or the store sees them; never a 500."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from conveyor.api import ApiDeps
from conveyor.api.limits import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_NUMBER_CHARS,
    MAX_PAYLOAD_BODY_BYTES,
    body_limit,
)
from conveyor.server import create_app
from conveyor.web.server import free_port, start_server
from tests.api.conftest import Api, error_of

JSON = {"content-type": "application/json"}


async def test_a_12_mb_create_answers_413_naming_the_limit(api: Api) -> None:
    name = await api.label_pipeline()
    path = f"/api/v1/pipelines/{name}/tasks"
    body = json.dumps({"key": "big", "data": {"text": "x" * 12_000_000}}).encode()
    error = error_of(await api.post(path, content=body, headers=JSON), 413, "too_large")
    assert f"{MAX_PAYLOAD_BODY_BYTES:,} bytes" in error["message"], error
    assert "512 KiB" in error["message"]
    assert error["details"] == {"limit_bytes": MAX_PAYLOAD_BODY_BYTES}

    # the same without a Content-Length (chunked): counted as it arrives
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    r = await api.post(path, content=chunks(), headers=JSON)
    assert "content-length" not in r.request.headers
    error_of(r, 413, "too_large")

    # just under the limit the route answers as usual, and nothing was created before
    text = "x" * (MAX_PAYLOAD_BODY_BYTES - 100)
    r = await api.post(path, json={"key": "fits", "data": {"text": text}})
    assert r.status_code == 201, r.text
    r = await api.get(f"/api/v1/tasks/{name}/big")
    error_of(r, 404, "task_not_found")


async def test_a_real_server_refuses_a_large_body_before_reading_it(api: Api) -> None:
    """Over TCP (uvicorn, as served): the 413 comes at once, and the connection stays usable
    for the client's next request."""
    name = await api.label_pipeline()
    app = create_app(ApiDeps(conveyor=api.conveyor, sessions=api.sessions, data_dir=api.data_dir))
    port = free_port()
    server, serving = await start_server(app, port=port)
    try:
        auth = {"Authorization": f"Bearer {api.keys['root']}", **JSON}
        body = b'{"key": "big", "data": {"text": "' + b"x" * 12_000_000 + b'"}}'
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            r = await http.post(f"/api/v1/pipelines/{name}/tasks", content=body, headers=auth)
            error_of(r, 413, "too_large")
            r = await http.get("/api/v1/me", headers=auth)
            assert r.status_code == 200, r.text
    finally:
        server.should_exit = True
        await serving


async def test_batches_and_definitions_may_be_larger_up_to_the_global_cap(api: Api) -> None:
    name = await api.label_pipeline()
    batch = f"/api/v1/pipelines/{name}/tasks/batch"
    rows = [{"id": f"r{i}", "text": "y" * 300_000} for i in range(3)]  # ~900 KiB in all
    r = await api.post(batch, json={"rows": rows, "key_column": "id"})
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 3
    huge = json.dumps({"rows": [{"id": "r", "text": "z" * (MAX_BODY_BYTES + 1)}]}).encode()
    error = error_of(await api.post(batch, content=huge, headers=JSON), 413, "too_large")
    assert f"{MAX_BODY_BYTES:,} bytes" in error["message"] and "8 MiB" in error["message"]
    # a definition between 2 and 8 MiB reaches the route's own, stricter rule
    definition = {"name": "big", "description": "d" * (3 * 1024 * 1024)}
    r = await api.post("/api/v1/pipelines/validate", json=definition)
    assert r.status_code == 413, r.text


def test_every_route_has_its_body_limit() -> None:
    """The large-body table names real routes, and only those."""
    from conveyor.server import create_app

    large = set()
    for path, operations in create_app().openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "some-name", path)
        for method in operations:
            if body_limit(method.upper(), concrete) == MAX_BODY_BYTES:
                large.add(f"{method.upper()} {path}")
    assert large == {
        "POST /api/v1/pipelines",
        "POST /api/v1/pipelines/validate",
        "POST /api/v1/pipelines/{name}/tasks/batch",
        "POST /api/v1/bulk/evaluations",
    }
    # the web app's forms carry what Temporal carries
    assert body_limit("POST", "/work/task") == MAX_PAYLOAD_BODY_BYTES


DEEP = "[" * 100_000 + "]" * 100_000
BARELY_DEEP = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
LONG_NUMBER = "1" + "0" * 100_000
LONG_FLOAT = "0." + "1" * 100_000


def _bodies(value: str) -> list[tuple[str, str]]:
    """(path, body) pairs carrying ``value`` somewhere a route reads JSON.

    Pipeline definitions are left out: the definition parser checks their shape itself and
    answers in the route's terms (tests/api/test_definition_limits.py)."""
    task = "/api/v1/tasks/some-pipeline/k"
    return [
        ("/api/v1/pipelines/PIPE/tasks", f'{{"key": "k", "data": {{"text": {value}}}}}'),
        ("/api/v1/pipelines/PIPE/tasks/batch", f'{{"rows": [{{"text": {value}}}]}}'),
        (f"{task}/submit", f'{{"node": "label", "token": "t", "values": {{"v": {value}}}}}'),
        (f"{task}/admin/edit", f'{{"node": "label", "values": {value}}}'),
        ("/api/v1/queue/next", f'{{"pipeline": {value}}}'),
        ("/api/v1/bulk/exports", f'{{"pipeline": "p", "filter": {value}}}'),
        ("/api/v1/users", f'{{"name": "n", "role": {value}}}'),
    ]


async def test_deep_json_and_huge_numbers_answer_400_never_500(api: Api) -> None:
    name = await api.label_pipeline()
    for value, says in (
        (DEEP, f"at most {MAX_JSON_DEPTH} levels"),
        (BARELY_DEEP, f"at most {MAX_JSON_DEPTH} levels"),
        (LONG_NUMBER, f"at most {MAX_NUMBER_CHARS} are accepted"),
        (LONG_FLOAT, f"at most {MAX_NUMBER_CHARS} are accepted"),
        ("-" + LONG_NUMBER + "e5", f"at most {MAX_NUMBER_CHARS} are accepted"),
        ("NaN", "NaN is not a JSON number"),
        ("-Infinity", "Infinity is not a JSON number"),
        ("[1, Infinity]", "Infinity is not a JSON number"),
    ):
        for path, body in _bodies(value):
            for headers in (JSON, {}):  # FastAPI reads a body without a content type as JSON
                r = await api.post(path.replace("PIPE", name), content=body, headers=headers)
                error = error_of(r, 400, "bad_request")
                assert says in error["message"], (path, error)
    # inside strings, brackets, digits and NaN are just text
    text = "[" * 1000 + "1" * 1000 + " NaN Infinity"
    r = await api.post(f"/api/v1/pipelines/{name}/tasks", json={"key": "s", "data": {"text": text}})
    assert r.status_code == 201, r.text


async def test_json_at_the_limits_reaches_the_route(api: Api) -> None:
    """As deep and as long as allowed: the route itself answers (here: not a seed field)."""
    name = await api.label_pipeline()
    nested: Any = int("9" * MAX_NUMBER_CHARS)
    for _ in range(MAX_JSON_DEPTH - 2):  # inside the body's object and its data: 64 levels
        nested = [nested]
    data = {"text": "t", "extra": nested}
    r = await api.post(f"/api/v1/pipelines/{name}/tasks", json={"key": "deep", "data": data})
    error = error_of(r, 422, "invalid_seed_data")
    assert "extra" in error["details"]


async def test_other_unreadable_bodies_are_4xx(api: Api) -> None:
    name = await api.label_pipeline()
    path = f"/api/v1/pipelines/{name}/tasks"
    for body in (b'{"key": "k", "data": {"text": "open', b"\xff\xfe{}", b'{"key": "k",,}', b"["):
        r = await api.post(path, content=body, headers=JSON)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        error_of(r, r.status_code)
