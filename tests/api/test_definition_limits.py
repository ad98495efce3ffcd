"""Definitions over HTTP can never crash or stall the API: deep, huge, mistyped and contrived
definitions get a clear ``valid: false`` (validate) or 422 (apply), never a 500, and while one
is being checked every other request is answered at once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.pipelines import MAX_DEPTH, MAX_NUMBER_CHARS
from tests.api.conftest import Api, error_of, label_definition
from workflows.graph import MAX_CLAIM_TIMEOUT_SECONDS

DEEP = 100_000
JSON = {"content-type": "application/json"}
YAML = {"content-type": "application/yaml"}

BAD_BODIES = {
    "deep-json": ("[" * DEEP + "]" * DEEP, JSON, f"more than {MAX_DEPTH} levels"),
    "deep-json-object": ('{"a":' * DEEP + "1" + "}" * DEEP, JSON, f"more than {MAX_DEPTH} levels"),
    "deep-yaml-flow": ("[" * DEEP + "]" * DEEP, YAML, f"more than {MAX_DEPTH} levels"),
    "deep-yaml-block": (
        "\n".join(" " * i + "- " for i in range(2_000)),
        YAML,
        f"more than {MAX_DEPTH} levels",
    ),
    "huge-int-json": ('{"name": ' + "9" * DEEP + "}", JSON, f"limit of {MAX_NUMBER_CHARS}"),
    "huge-int-yaml": ("name: " + "9" * DEEP, YAML, f"limit of {MAX_NUMBER_CHARS}"),
    "huge-float-json": ('{"x": 1.' + "5" * DEEP + "}", JSON, f"limit of {MAX_NUMBER_CHARS}"),
    "recursive-alias": ("a: &a [*a]", YAML, "alias"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_deep_and_huge_definitions_are_clear_problems(api: Api, case: str) -> None:
    body, headers, phrase = BAD_BODIES[case]
    r = await api.post("/api/v1/pipelines/validate", content=body.encode(), headers=headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["valid"] is False
    [problem] = report["problems"]
    assert problem["where"] == "body" and phrase in problem["message"], problem
    error = error_of(
        await api.post("/api/v1/pipelines", content=body.encode(), headers=headers),
        422,
        "invalid_pipeline",
    )
    assert phrase in json.dumps(error)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replaced(base: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    raw = json.loads(json.dumps(base))
    place = raw
    for step in path[:-1]:
        place = place[step]
    place[path[-1]] = value
    return raw


WRONG = [None, True, -1, 1e308, "", "x" * 5_000, [], [1, [2]], {}, {"a": {"b": None}}]


async def test_wrong_types_at_every_level_are_problems_not_errors(api: Api) -> None:
    base = label_definition("types")
    statuses: dict[int, int] = {}
    for path in _paths(base):
        for wrong in WRONG:
            body = _replaced(base, path, wrong)
            r = await api.post("/api/v1/pipelines/validate", json=body)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code == 200, (path, wrong, r.text)
            for problem in r.json()["problems"]:
                assert "Traceback" not in problem["message"]
    assert statuses == {200: len(_paths(base)) * len(WRONG)}


KEYS = ["name", "nodes", "kind", "fields", "next", "type", "source", "llm", "prompt", "roles"]
GARBAGE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
        st.sampled_from(["start", "end", "subtask", "review", "llm", "{{ text.__class__ }}"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner, max_size=5),
    ),
    max_leaves=30,
)


async def test_generated_definition_shaped_garbage_never_gets_a_500(api: Api) -> None:
    base = label_definition("garbage")
    paths = _paths(base)
    loop = asyncio.get_running_loop()
    statuses: dict[int, int] = {}

    def send(body: str, headers: dict[str, str]) -> None:
        sent = api.post("/api/v1/pipelines/validate", content=body.encode(), headers=headers)
        r = asyncio.run_coroutine_threadsafe(sent, loop).result(timeout=30)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert "Traceback" not in r.text
        if r.status_code != 200:  # refused in front of the route (a NUL character): clearly
            error_of(r, 422, "invalid_input")

    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.sampled_from(paths), GARBAGE, st.booleans())
    def fuzz(path: tuple[Any, ...], value: Any, as_yaml: bool) -> None:
        raw = _replaced(base, path, value)
        if as_yaml:
            send(yaml.safe_dump(raw), YAML)
        else:
            send(json.dumps(raw), JSON)

    await asyncio.to_thread(fuzz)
    assert statuses.get(200, 0) > 100 and set(statuses) <= {200, 422}, statuses


# --- stalls ---------------------------------------------------------------------------------


def llm_definition(prompt: str) -> dict[str, Any]:
    """start -> write (the seed text, and an LLM field over it) -> end, with ``prompt``."""
    return {
        "name": f"tpl-{uuid.uuid4().hex[:8]}",
        "nodes": [
            {"name": "start", "kind": "start", "next": ["write"]},
            {
                "name": "write",
                "kind": "subtask",
                "fields": [
                    {"name": "text", "type": "long_text", "source": "predefined"},
                    {
                        "name": "summary",
                        "type": "long_text",
                        "source": "llm",
                        "llm": {"model": "conveyor/offline", "prompt": prompt},
                    },
                ],
                "next": ["end"],
            },
            {"name": "end", "kind": "end"},
        ],
    }


async def timed(request: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


async def test_the_baseline_llm_definition_is_valid(api: Api) -> None:
    r = await api.post("/api/v1/pipelines/validate", json=llm_definition("Sum up: {{ text }}"))
    assert r.json()["valid"] is True, r.text


@pytest.mark.parametrize(
    ("prompt", "phrase"),
    [
        ("{{ 9 ** 4000000 }}", "exponent 4000000 is too large"),
        ("{{ (9 ** 9) ** (9 ** 9) }}", "exponent 387420489 is too large"),
        ("{{ 'a' * 9999999999 }}", "items long"),
        ("{{ '%0999999999d' % 1 }}", "format width or precision"),
    ],
)
@pytest.mark.parametrize("route", ["/api/v1/pipelines/validate", "/api/v1/pipelines"])
async def test_a_template_computing_a_huge_value_neither_stalls_nor_passes(
    api: Api, prompt: str, phrase: str, route: str
) -> None:
    # Before: 9 ** 4000000 took 3.3 s while every request waited; (9**9)**(9**9) never ended.
    bad = asyncio.ensure_future(timed(api.post(route, json=llm_definition(prompt))))
    await asyncio.sleep(0)  # the bad request is under way
    me, me_took = await timed(api.get("/api/v1/me"))
    (r, bad_took) = await asyncio.wait_for(bad, timeout=30)
    assert me.status_code == 200 and me_took < 1.0, me_took
    assert bad_took < 2.0, bad_took
    if route.endswith("validate"):
        assert r.status_code == 200 and r.json()["valid"] is False, r.text
        text = json.dumps(r.json()["problems"])
    else:
        text = json.dumps(error_of(r, 422, "invalid_pipeline"))
    assert phrase in text and "field 'summary'" in text, text


async def test_a_heavy_definition_is_checked_off_the_event_loop(api: Api) -> None:
    # 900 nodes of 40 fields take the validator seconds: other requests are answered meanwhile.
    nodes: list[dict[str, Any]] = [{"name": "start", "kind": "start", "next": ["n0"]}]
    for i in range(900):
        nodes.append(
            {
                "name": f"n{i}",
                "kind": "subtask",
                "roles": ["writer"],
                "fields": [{"name": f"f{i}_{j}", "type": "short_text"} for j in range(40)],
                "next": [f"n{i + 1}" if i < 899 else "end"],
            }
        )
    nodes.append({"name": "end", "kind": "end"})
    body = {"name": f"heavy-{uuid.uuid4().hex[:8]}", "nodes": nodes}
    heavy = asyncio.ensure_future(timed(api.post("/api/v1/pipelines/validate", json=body)))
    await asyncio.sleep(0.05)  # the body is read; the check is running
    gaps = []
    while not heavy.done():
        me, took = await timed(api.get("/api/v1/me"))
        assert me.status_code == 200
        gaps.append(took)
    r, heavy_took = await heavy
    assert r.json()["valid"] is True, r.text
    # Checked on the event loop, one request waited for the whole check after the first 0.05 s
    # (2.1 s of 2.4 s) and no other was answered meanwhile; in a thread, what remains is the GIL
    # the validator's one pydantic call holds (0.5 s of 2.4 s on an idle machine, up to ~1.1 s
    # of 2.1 s while the rest of the suite loads the machine) and requests are answered all along.
    # Relative, so a loaded machine slows both sides alike.
    assert heavy_took > 0.5, heavy_took
    assert len(gaps) >= 3, (gaps, heavy_took)
    assert max(gaps) < heavy_took * 0.75, (max(gaps), heavy_took, len(gaps))


@pytest.mark.parametrize(
    ("prompt", "shown"),
    [
        ("{{ text.__class__ }}", "text.__class__"),
        ("{{ lipsum.__globals__ }}", "lipsum.__globals__"),
        ("{{ cycler.__init__ }}", "cycler.__init__"),
        ("{{ text | attr('__class__') }}", "text | attr('__class__')"),
        ("{{ text['_secret'] }}", "text['_secret']"),
    ],
)
async def test_templates_reading_internals_are_refused_at_validate(
    api: Api, prompt: str, shown: str
) -> None:
    r = await api.post("/api/v1/pipelines/validate", json=llm_definition(prompt))
    report = r.json()
    assert report["valid"] is False, r.text
    messages = [p["message"] for p in report["problems"]]
    assert {p["where"] for p in report["problems"]} == {"node 'write' field 'summary'"}
    [message] = [m for m in messages if "a Python internal" in m]
    assert f"reads {shown}, a Python internal" in message and "{{ text }}" in message


@pytest.mark.parametrize("name", ["range", "lipsum", "cycler", "joiner", "namespace", "dict"])
async def test_jinja_globals_are_not_fields(api: Api, name: str) -> None:
    r = await api.post("/api/v1/pipelines/validate", json=llm_definition(f"{{{{ {name}() }}}}"))
    [problem] = r.json()["problems"]
    assert problem["where"] == "node 'write' field 'summary'"
    assert f"uses '{name}', a Jinja global" in problem["message"]
    assert "known fields: text, summary" in problem["message"]


async def test_a_claim_timeout_is_at_most_a_century_so_claims_keep_working(api: Api) -> None:
    # Before: claim_timeout_seconds 10 ** 12 applied fine, then every claim failed with
    # "OverflowError: date value out of range".
    over = label_definition("century")
    over["claim_timeout_seconds"] = MAX_CLAIM_TIMEOUT_SECONDS + 1
    error = error_of(await api.post("/api/v1/pipelines", json=over), 422, "invalid_pipeline")
    assert f"less than or equal to {MAX_CLAIM_TIMEOUT_SECONDS}" in error["message"]

    longest = label_definition("century")
    longest["claim_timeout_seconds"] = MAX_CLAIM_TIMEOUT_SECONDS
    name = await api.apply(longest)
    workflow_id = await api.create(name, "k")
    r = await api.post(f"/api/v1/tasks/{workflow_id}/claim", json={"node": "label"}, as_="ana")
    assert r.status_code == 200 and r.json()["token"], r.text
    # Give it back: other tests count ana's claims in this store.
    release = {"node": "label", "token": r.json()["token"]}
    r = await api.post(f"/api/v1/tasks/{workflow_id}/release", json=release, as_="ana")
    assert r.status_code == 200, r.text
