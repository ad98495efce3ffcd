"""Record TaskWorkflow histories for the replay test: ``python -m tests.histories.record``.

``python -m tests.histories.record NAME…`` records only the named scenarios. Run it when a
release is cut (and commit the JSON files it writes): the replay test then proves
that later workflow code still replays what running tasks of that release recorded. Each
scenario leaves its task in a different place: finished, waiting for a person, quarantined,
paused, failed, or through an LLM node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.llm import LlmSettings
from conveyor.client import CommandRejected, ConveyorClient, TaskClient
from conveyor.dev import EXAMPLES
from conveyor.devserver import temporal_binary
from conveyor.pipelines import load_pipeline_file
from store.db import make_engine, migrate, session_factory
from tests.support.actors import claim, label_and_review, review, rid, submit
from tests.support.pipelines import gate_and_join, label_review, llm_then_edit
from worker import build_worker
from workflows.messages import (
    Adjudicate,
    Claim,
    Pause,
    QuarantineAction,
    Regenerate,
    Release,
    ResolveQuarantine,
    Resume,
    Review,
    Tag,
    Verdict,
)
from workflows.options import SEARCH_ATTRIBUTES
from workflows.pipeline_messages import (
    PipelineStatus,
)

HERE = Path(__file__).parent


async def _finished(conveyor: ConveyorClient) -> TaskClient:
    created = await conveyor.create_task(label_review(), "finished", {"text": "good"})
    task = conveyor.task(created.workflow_id)
    await label_and_review(task, "fail")
    await label_and_review(task, "pass")
    await task.result()
    return task


async def _quarantined_then_reworked(conveyor: ConveyorClient) -> TaskClient:
    created = await conveyor.create_task(
        label_review(max_rereviews=0), "quarantined", {"text": "x"}
    )
    task = conveyor.task(created.workflow_id)
    await label_and_review(task, "fail")
    await task.send(
        ResolveQuarantine(request_id=rid(), admin="root", action=QuarantineAction.REWORK)
    )
    await task.send(Tag(request_id=rid(), by="root", tags=["audit"]))
    return task


async def _paused_with_signals(conveyor: ConveyorClient) -> TaskClient:
    created = await conveyor.create_task(label_review(), "paused", {"text": "x"})
    task = conveyor.task(created.workflow_id)
    await claim(task, "ana", ["labeler"], "label")
    await task.signal(Pause(request_id=rid(), by="ops"))
    await task.signal(Resume(request_id=rid(), by="ops"))
    await task.signal(Pause(request_id=rid(), by="ops"))
    await asyncio.sleep(0.5)
    return task


async def _gate_join(conveyor: ConveyorClient) -> TaskClient:
    created = await conveyor.create_task(gate_and_join(), "gate", {"ticket": "x"})
    task = conveyor.task(created.workflow_id)
    token = await claim(task, "ana", [], "triage")
    await submit(task, "ana", "triage", token, {"priority": "urgent"})
    token = await claim(task, "ana", [], "urgent_note")
    await submit(task, "ana", "urgent_note", token, {"note": "now"})
    token = await claim(task, "ana", [], "fanout")
    await submit(task, "ana", "fanout", token, {"summary": "s"})
    token = await claim(task, "ana", [], "left")
    await submit(task, "ana", "left", token, {"left_score": 3})
    return task


async def _llm(conveyor: ConveyorClient) -> TaskClient:
    created = await conveyor.create_task(
        llm_then_edit("conveyor/offline"), "llm", {"question": "why?"}
    )
    task = conveyor.task(created.workflow_id)
    for _ in range(100):
        view = await task.state()
        if any(n.name == "edit" and n.status == "Available" for n in view.nodes):
            break
        await asyncio.sleep(0.1)
    token = await claim(task, "ana", [], "edit")
    await submit(task, "ana", "edit", token, {"answer": "because it is so"})
    await task.result()
    return task


async def _evaluated(conveyor: ConveyorClient) -> TaskClient:
    """examples/answer-evaluate.yaml: an LLM draft regenerated, evaluators, a judge, a rating."""
    pipeline = load_pipeline_file(str(EXAMPLES / "answer-evaluate.yaml"))
    created = await conveyor.create_task(pipeline, "evaluated", {"question": "Refunds?"})
    task = conveyor.task(created.workflow_id)

    async def drafts(count: int) -> None:
        for _ in range(100):
            view = await task.state()
            if next(n for n in view.nodes if n.name == "answer").llm_draft_runs == count:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"draft {count} of 'answer' never arrived")

    await drafts(1)
    token = await claim(task, "ana", ["writer"], "answer")
    await task.send(Regenerate(request_id=rid(), contributor="ana", node="answer", token=token))
    await drafts(2)
    await submit(task, "ana", "answer", token, {"reply": "Within 30 days, by mail."})
    token = await claim(task, "bo", ["reviewer"], "check")
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
    await task.result()
    return task


class _PipelineRecording:
    """Stands in for a task in SCENARIOS: the pipeline workflow's history is what is recorded."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle


async def _pipeline(conveyor: ConveyorClient) -> Any:
    """A pipeline applied twice, activated, paused over a running task, resumed, completed."""
    conveyor.pipeline_recheck_seconds = 1.0
    pipeline = label_review(name="recorded-pipeline")
    await conveyor.apply_pipeline(pipeline)
    await conveyor.apply_pipeline(pipeline)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    created = await conveyor.create_task(pipeline, "p1", {"text": "x"})
    task = conveyor.task(created.workflow_id)
    await claim(task, "ana", ["labeler"], "label")
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.PAUSED)
    for _ in range(200):
        view = await conveyor.describe_pipeline(pipeline.name)
        if view.sweep is not None and view.sweep.done:
            break
        await asyncio.sleep(0.1)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.COMPLETED)
    await asyncio.sleep(1.5)
    return _PipelineRecording(conveyor.pipeline_handle(pipeline.name))


def _raw(encoding: bytes, data: bytes) -> RawValue:
    return RawValue(Payload(metadata={"encoding": encoding}, data=data))


async def _bad_payloads(conveyor: ConveyorClient) -> TaskClient:
    """Signals and updates no command can be read from, refused; then valid work goes on."""
    created = await conveyor.create_task(label_review(), "bad-payloads", {"text": "x"})
    task = conveyor.task(created.workflow_id)
    handle = task.handle
    await handle.signal("claim", _raw(b"binary/plain", b"garbage"))
    await handle.signal("submit", _raw(b"json/plain", b"null"))
    await handle.signal("review", {"request_id": "r-maybe", "verdict": "maybe"})
    await handle.signal("no_such_command", {"request_id": "r-unknown"})
    await handle.signal("claim")
    with contextlib.suppress(WorkflowUpdateFailedError):
        await handle.execute_update("claim", _raw(b"binary/plain", b"garbage"))
    token = await claim(task, "ana", ["labeler"], "label")
    await submit(task, "ana", "label", token, {"label": "positive"})
    await asyncio.sleep(0.5)
    return task


async def _claim_limit(conveyor: ConveyorClient) -> TaskClient:
    """A claim refused at the pipeline's claim limit, then granted once the other is done."""
    pipeline = label_review(name="recorded-limit").model_copy(
        update={"claim_limits": {"labeler": 1}}
    )
    other = conveyor.task(
        (await conveyor.create_task(pipeline, "other", {"text": "x"})).workflow_id
    )
    created = await conveyor.create_task(pipeline, "claim-limit", {"text": "x"})
    task = conveyor.task(created.workflow_id)
    token = await claim(other, "ana", ["labeler"], "label")
    with contextlib.suppress(CommandRejected):
        await claim(task, "ana", ["labeler"], "label")
    await task.signal(Claim(request_id=rid(), contributor="ana", roles=["labeler"], node="label"))
    await submit(other, "ana", "label", token, {"label": "positive"})
    for _ in range(100):  # the store shows the submit: the limit has room again
        try:
            token = await claim(task, "ana", ["labeler"], "label")
            break
        except CommandRejected:
            await asyncio.sleep(0.1)
    await submit(task, "ana", "label", token, {"label": "negative"})
    await asyncio.sleep(0.5)
    return task


async def _lazy_start(conveyor: ConveyorClient) -> TaskClient:
    """A task created lazily (a row, no workflow), started by its first claim
    (update-with-start, with the row's creation time), then labelled and reviewed."""
    pipeline = label_review(name="recorded-lazy")
    [created] = await conveyor.create_tasks(
        pipeline, [{"id": "lazy", "text": "x"}], key_column="id"
    )
    task = conveyor.task(created.workflow_id)
    first = Claim(request_id=rid(), contributor="ana", roles=["labeler"], node="label")
    token = (await task.send(first, untouched=True)).token
    assert token is not None
    await submit(task, "ana", "label", token, {"label": "positive"})
    token = await claim(task, "bo", ["reviewer"], "check")
    await review(task, "bo", "check", token, "pass")
    await task.result()
    return task


async def _consensus(conveyor: ConveyorClient) -> TaskClient:
    """examples/consensus-label.yaml: three places claimed (one released and retaken, one
    refused to a person who already holds one), paused and resumed over live places, two rounds
    of adaptive overlap, adjudication, the gate on the confidence, a double-check."""
    pipeline = load_pipeline_file(str(EXAMPLES / "consensus-label.yaml"))
    created = await conveyor.create_task(pipeline, "consensus", {"text": "Great, late again."})
    task = conveyor.task(created.workflow_id)
    tokens = {who: await claim(task, who, ["labeler"], "label") for who in ("ann", "bob", "cat")}
    with contextlib.suppress(CommandRejected):
        await task.send(Claim(request_id=rid(), contributor="ann", roles=["labeler"], node="label"))
    await task.signal(Pause(request_id=rid(), by="ops"))
    await task.signal(Resume(request_id=rid(), by="ops"))
    await task.send(Release(request_id=rid(), contributor="cat", node="label", token=tokens["cat"]))
    tokens["dan"] = await claim(task, "dan", ["labeler"], "label")
    answers = {"ann": "positive", "bob": "negative", "dan": "neutral"}
    for who, sentiment in answers.items():
        await submit(task, who, "label", tokens[who], {"sentiment": sentiment, "intensity": 3})
    for who, sentiment in (("eve", "negative"), ("fay", "positive")):
        token = await claim(task, who, ["labeler"], "label")
        await submit(task, who, "label", token, {"sentiment": sentiment, "intensity": 4})
    token = await claim(task, "lea", ["lead"], "settle")
    await task.send(
        Adjudicate(
            request_id=rid(),
            contributor="lea",
            node="settle",
            token=token,
            pick="bob",
            reason="the praise is sarcastic",
        )
    )
    token = await claim(task, "lea", ["lead"], "double_check")
    await submit(task, "lea", "double_check", token, {"confirmed": True})
    await task.result()
    return task


SCENARIOS = {
    "finished": _finished,
    "quarantined-reworked": _quarantined_then_reworked,
    "paused-signals": _paused_with_signals,
    "gate-join": _gate_join,
    "llm-offline": _llm,
    "evaluated": _evaluated,
    "pipeline-paused-resumed": _pipeline,
    "bad-payloads": _bad_payloads,
    "claim-limit": _claim_limit,
    "lazy-start": _lazy_start,
    "consensus": _consensus,
}


async def main(only: list[str]) -> None:
    """Record every scenario, or those named in ``only`` (earlier recordings stay as they are)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
    )
    try:
        queue = f"record-{uuid.uuid4().hex[:6]}"
        engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/record.db")
        migrate(engine)
        async with build_worker(
            env.client, queue, sessions=session_factory(engine), llm=LlmSettings()
        ):
            conveyor = ConveyorClient(env.client, queue)
            conveyor.attach_store(session_factory(engine))
            for name, scenario in SCENARIOS.items():
                if only and name not in only:
                    continue
                task = await scenario(conveyor)
                history = await task.handle.fetch_history()
                path = HERE / f"{name}.json"
                path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
                print(f"wrote {path} ({len(history.events)} events)")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
