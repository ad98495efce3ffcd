"""Evaluators and LLM drafts inside a running task: a real worker, dev server and store."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from conveyor.client import CommandRejected, ConveyorClient, TaskClient
from store.db import transaction
from store.models import EvaluationResultRow, SubmissionRow, TimelineEventRow
from tests.support.actors import claim, eventually, nodes, review, rid, submit
from tests.support.fake_openai import FakeOpenAI, reply
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    EvaluationKind,
    Regenerate,
    Review,
    SaveDraft,
    TaskStatus,
    TaskView,
    Verdict,
)


def evaluated_answer(api_base: str) -> Pipeline:
    """answer (3 evaluators, one an LLM judge) -> check (a human rating of the answer) -> end."""
    return validate_pipeline(
        {
            "name": f"evals-{rid()[:8]}",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["answer"]},
                {
                    "name": "answer",
                    "kind": "subtask",
                    "fields": [
                        {"name": "question", "type": "long_text", "source": "predefined"},
                        {"name": "reply", "type": "long_text"},
                    ],
                    "evaluators": [
                        {"name": "no_pii", "kind": "pii", "fields": ["reply"]},
                        {
                            "name": "short_enough",
                            "kind": "length",
                            "fields": ["reply"],
                            "max_length": 80,
                            "mode": "inline",
                        },
                        {
                            "name": "helpful",
                            "kind": "llm_judge",
                            "fields": ["reply"],
                            "judge": {
                                "model": "openai/fake-judge",
                                "api_base": api_base,
                                "prompt": "Q: {{ question }}\nA: {{ reply }}\nIs it helpful?",
                                "output": "boolean",
                            },
                        },
                    ],
                    "next": ["check"],
                },
                {
                    "name": "check",
                    "kind": "review",
                    "fields": [
                        {
                            "name": "helpful_rating",
                            "type": "boolean",
                            "evaluates": ["reply"],
                            "criterion": "helpful",
                            "required": False,
                        }
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


def mixed_node(api_base: str) -> Pipeline:
    """write: a suggestion drafted by a model plus the contributor's own answer."""
    return validate_pipeline(
        {
            "name": f"mixed-{rid()[:8]}",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["write"]},
                {
                    "name": "write",
                    "kind": "subtask",
                    "fields": [
                        {"name": "question", "type": "long_text", "source": "predefined"},
                        {
                            "name": "suggestion",
                            "type": "long_text",
                            "source": "llm",
                            "llm": {
                                "model": "openai/fake-model",
                                "api_base": api_base,
                                "prompt": "Suggest an answer to: {{ question }}",
                            },
                        },
                        {"name": "answer", "type": "long_text"},
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


async def new_task(
    conveyor: ConveyorClient, pipeline: Pipeline, data: dict[str, Any]
) -> TaskClient:
    created = await conveyor.create_task(pipeline, f"t-{rid()}", data)
    return conveyor.task(created.workflow_id)


def store_rows(sessions: sessionmaker[Session], workflow_id: str) -> list[EvaluationResultRow]:
    with transaction(sessions) as session:
        rows = session.scalars(
            select(EvaluationResultRow)
            .where(EvaluationResultRow.workflow_id == workflow_id)
            .order_by(EvaluationResultRow.criterion, EvaluationResultRow.kind)
        ).all()
        session.expunge_all()
        return list(rows)


def judged(view: TaskView) -> bool:
    return any(
        r.kind == EvaluationKind.LLM_JUDGE for r in nodes(view)["answer"].evaluations.values()
    )


async def test_evaluators_judge_and_human_rating_are_recorded(
    conveyor: ConveyorClient, fake_llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    fake_llm.script(reply(json.dumps({"verdict": True})))
    task = await new_task(conveyor, evaluated_answer(fake_llm.base_url), {"question": "Refund?"})
    token = await claim(task, "ana", [], "answer")
    text = "Write to help@example.com for a refund."
    draft = await task.send(
        SaveDraft(
            request_id=rid(),
            contributor="ana",
            node="answer",
            token=token,
            values={"reply": text * 3},
        )
    )
    # Inline evaluators answer the contributor at once; hidden ones stay out of the answer.
    assert [(e.criterion, e.passed) for e in draft.evaluations] == [("short_enough", False)]
    result = await submit(task, "ana", "answer", token, {"reply": text})
    assert [(e.criterion, e.passed) for e in result.evaluations] == [("short_enough", True)]

    view = await eventually(task, judged, timeout=20)
    by_criterion = {r.criterion: r for r in nodes(view)["answer"].evaluations.values()}
    assert by_criterion["no_pii"].passed is False
    assert "example.com" not in (by_criterion["no_pii"].reasoning or "")
    assert by_criterion["short_enough"].passed is True
    assert by_criterion["helpful"].kind == EvaluationKind.LLM_JUDGE
    assert by_criterion["helpful"].passed is True
    assert "Refund?" in fake_llm.last_request.message_text("user")

    token = await claim(task, "bo", [], "check")
    await review(task, "bo", "check", token, "pass")
    # The review's values go through the review command; send the rating with it.
    final = await task.result()
    assert final.status == TaskStatus.FINISHED
    assert (
        nodes(final)["check"].evaluations == {}
    )  # no rating given: nothing recorded for the human criterion

    rows = await eventually_rows(store_sessions, task.workflow_id, 3)
    assert {(r.criterion, r.kind, r.passed) for r in rows} == {
        ("no_pii", "programmatic", False),
        ("short_enough", "programmatic", True),
        ("helpful", "llm_judge", True),
    }
    with transaction(store_sessions) as session:
        kinds = session.scalars(
            select(TimelineEventRow.kind).where(TimelineEventRow.workflow_id == task.workflow_id)
        ).all()
    assert kinds.count("evaluated") == 3


async def test_human_rating_pairs_with_the_judge(
    conveyor: ConveyorClient, fake_llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    fake_llm.script(reply(json.dumps({"verdict": False})))
    task = await new_task(conveyor, evaluated_answer(fake_llm.base_url), {"question": "Hours?"})
    token = await claim(task, "ana", [], "answer")
    await submit(task, "ana", "answer", token, {"reply": "We open at nine."})
    await eventually(task, judged, timeout=20)
    token = await claim(task, "bo", [], "check")
    await task.send(
        Review(
            request_id=rid(),
            contributor="bo",
            node="check",
            token=token,
            verdict=Verdict.PASS,
            values={"helpful_rating": True},
        )
    )
    final = await task.result()
    (human,) = nodes(final)["check"].evaluations.values()
    assert (human.kind, human.criterion, human.label, human.actor) == (
        EvaluationKind.HUMAN,
        "helpful",
        "true",
        "bo",
    )
    rows = await eventually_rows(store_sessions, task.workflow_id, 4)
    helpful = {r.kind: r.label for r in rows if r.criterion == "helpful"}
    assert helpful == {"human": "true", "llm_judge": "false"}


async def test_mixed_node_gets_an_llm_draft_and_can_regenerate(
    conveyor: ConveyorClient, fake_llm: FakeOpenAI, store_sessions: sessionmaker[Session]
) -> None:
    fake_llm.script(reply("Restart the router."), reply("Check the cable first."))
    task = await new_task(conveyor, mixed_node(fake_llm.base_url), {"question": "No internet"})
    view = await eventually(task, lambda v: bool(nodes(v)["write"].draft.get("suggestion")))
    assert nodes(view)["write"].draft["suggestion"] == "Restart the router."
    assert nodes(view)["write"].status.value == "Available"

    token = await claim(task, "ana", [], "write")
    await task.send(Regenerate(request_id=rid(), contributor="ana", node="write", token=token))
    view = await eventually(
        task, lambda v: nodes(v)["write"].draft.get("suggestion") == "Check the cable first."
    )
    # Only the holder of the claim may ask again.
    try:
        await task.send(Regenerate(request_id=rid(), contributor="bo", node="write", token="x"))
    except CommandRejected as err:
        assert "claim" in str(err).lower()
    else:
        raise AssertionError("a regenerate without the claim was accepted")

    await submit(task, "ana", "write", token, {"answer": "Plug the cable in, then restart."})
    final = await task.result()
    assert nodes(final)["write"].values == {
        "suggestion": "Check the cable first.",
        "answer": "Plug the cable in, then restart.",
    }
    assert [e.kind for e in final.timeline].count("llm_draft") == 2
    with transaction(store_sessions) as session:
        kinds = session.scalars(
            select(SubmissionRow.kind).where(SubmissionRow.workflow_id == task.workflow_id)
        ).all()
    assert kinds.count("llm_draft") == 2


async def eventually_rows(
    sessions: sessionmaker[Session], workflow_id: str, count: int
) -> list[EvaluationResultRow]:
    import asyncio

    for _ in range(200):
        rows = store_rows(sessions, workflow_id)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} evaluation rows for {workflow_id}, found {len(rows)}")
