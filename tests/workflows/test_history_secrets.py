"""Keys and rendered prompts never reach workflow histories or the worker's logs.

Workflow histories are stored by the Temporal server and readable by anyone with access to the
namespace (UI, CLI, exports), so they must never hold an API key, and should not hold prompts:
the prompt template is part of the pipeline definition (fine), but what it renders to exists only
inside the LLM activity. Each test runs tasks whose LLM node and LLM judge call a fake provider
with a distinctive key, then searches every history event, payloads decoded, for it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.llm import LlmSettings
from conveyor.client import ConveyorClient, TaskClient
from tests.support.actors import eventually, nodes, rid
from tests.support.fake_openai import FakeOpenAI, reply, reply_json, status
from worker import build_worker
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import EvaluationKind, RetryFailed, TaskStatus, TaskView

KEY = "sk-conveyor-7Qx2-DISTINCTIVE-KEY-9f3e"
"""The worker's API key: sent to the provider, and nowhere else."""

# The templates compute these markers, so they occur only in the rendered prompts: not in the
# pipeline definition, nor in the seed data that workflow input carries.
PROMPT_MARKER = "zqvx42"
PROMPT = "Sort this {{ 'zq' ~ 'vx' ~ (6 * 7) }}: {{ text | upper }}"
JUDGE_MARKER = "jdgx49"
JUDGE_PROMPT = "Grade {{ 'jd' ~ 'gx' ~ (7 * 7) }}: is {{ label | upper }} right for {{ text }}?"
SEED_TEXT = "hushed words"
RENDERED_SEED = SEED_TEXT.upper()
NEVER_IN_HISTORY = (KEY, PROMPT_MARKER, JUDGE_MARKER, RENDERED_SEED)


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def keyed(
    client: Client, store_sessions: sessionmaker[Session]
) -> AsyncIterator[ConveyorClient]:
    """A worker whose key comes from the environment variable, as in production."""
    task_queue = f"test-{uuid.uuid4().hex[:8]}"
    settings = LlmSettings.from_env({"CONVEYOR_LLM_API_KEY": KEY})
    worker = build_worker(client, task_queue, sessions=store_sessions, llm=settings)
    async with worker:
        yield ConveyorClient(client, task_queue, update_timeout=20)


def judged_pipeline(api_base: str) -> Pipeline:
    """start -> classify (an LLM node, judged by an LLM judge) -> end."""
    return validate_pipeline(
        {
            "name": f"secrets-{rid()[:8]}",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["classify"]},
                {
                    "name": "classify",
                    "kind": "subtask",
                    "fields": [
                        {"name": "text", "type": "long_text", "source": "predefined"},
                        {
                            "name": "label",
                            "type": "select",
                            "options": ["spam", "ham"],
                            "source": "llm",
                            "llm": {
                                "model": "openai/fake-model",
                                "api_base": api_base,
                                "system": "Sorter {{ 'sy' ~ 'st' }} for {{ text | upper }}.",
                                "prompt": PROMPT,
                            },
                        },
                    ],
                    "evaluators": [
                        {
                            "name": "right_label",
                            "kind": "llm_judge",
                            "fields": ["label"],
                            "judge": {
                                "model": "openai/fake-judge",
                                "api_base": api_base,
                                "prompt": JUDGE_PROMPT,
                                "output": "boolean",
                                "reasoning": True,
                            },
                        }
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


def history_text(history_json: str) -> str:
    """Every string in a history, plus every base64 string (payload data) decoded."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            found.append(value)
            with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
                found.append(base64.b64decode(value, validate=True).decode("utf-8"))

    walk(json.loads(history_json))
    return "\n".join(found)


async def histories(client: Client, workflow_ids: list[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        texts[workflow_id] = history_text(history.to_json())
    return texts


def judged(view: TaskView) -> bool:
    return any(
        r.kind == EvaluationKind.LLM_JUDGE for r in nodes(view)["classify"].evaluations.values()
    )


async def start(conveyor: ConveyorClient, pipeline: Pipeline) -> TaskClient:
    created = await conveyor.create_task(pipeline, f"t-{rid()}", {"text": SEED_TEXT})
    return conveyor.task(created.workflow_id)


async def test_keys_and_rendered_prompts_stay_out_of_histories_and_logs(
    keyed: ConveyorClient,
    client: Client,
    llm: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pipeline = judged_pipeline(llm.base_url)
    # Providers quote rejected keys back; an error body is the likeliest leak.
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}

    # 1. A label, then the judge's verdict (with reasoning): the task finishes.
    llm.script(reply("spam"), reply_json({"reasoning": "Looks like an ad.", "verdict": True}))
    ok = await start(keyed, pipeline)
    view = await eventually(ok, judged, timeout=20)
    assert nodes(view)["classify"].values == {"label": "spam"}

    # 2. A retryable failure quoting the key, then success.
    llm.script(status(500, echo), reply("ham"), reply_json({"reasoning": "Fine.", "verdict": True}))
    flaky = await start(keyed, pipeline)
    await eventually(flaky, judged, timeout=20)

    # 3. A final failure quoting the key; an admin retries once it is fixed.
    llm.script(status(401, echo))
    rejected = await start(keyed, pipeline)
    view = await eventually(rejected, lambda v: v.status == TaskStatus.FAILED, timeout=20)
    assert "AuthenticationError" in (view.hold_reason or "")
    llm.script(reply("ham"), reply_json({"reasoning": "Right.", "verdict": False}))
    await rejected.send(RetryFailed(request_id=rid(), admin="root"))
    await eventually(rejected, judged, timeout=20)

    # The provider really got the key and the rendered prompts: the checks below mean something.
    sent = [r for r in llm.requests if r.path.endswith("/chat/completions")]
    assert len(sent) == 8
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in sent)
    users = [r.message_text("user") for r in sent]
    assert any(PROMPT_MARKER in u and RENDERED_SEED in u for u in users)
    assert any(JUDGE_MARKER in u for u in users)

    texts = await histories(client, [ok.workflow_id, flaky.workflow_id, rejected.workflow_id])
    for workflow_id, text in texts.items():
        # The search sees decoded payloads: the template itself is there, in the definition.
        assert "'zq' ~ 'vx'" in text, workflow_id
        assert SEED_TEXT in text, workflow_id
        for secret in NEVER_IN_HISTORY:
            assert secret not in text, f"{secret!r} found in the history of {workflow_id}"
        assert "sysst" not in text  # the rendered system prompt neither

    # Everything a log record holds (message, arguments, extras, exception text), at DEBUG.
    assert any("LLM call:" in r.getMessage() for r in caplog.records)  # logs were captured
    for secret in NEVER_IN_HISTORY:
        leaks = sorted(
            {r.name for r in caplog.records if secret in f"{r.getMessage()} {r.__dict__}"}
        )
        assert not leaks, f"{secret!r} found in the worker's logs, from {leaks}"
