"""TaskWorkflow on a real Temporal dev server: every path a contributor, admin or service takes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError

from conveyor.client import CommandRejected, ConveyorClient, InvalidSeedData, TaskClient
from tests.support.actors import (
    claim,
    eventually,
    label_and_review,
    nodes,
    review,
    rid,
    submit,
)
from tests.support.fake_openai import FakeOpenAI, reply, status
from tests.support.pipelines import gate_and_join, label_review, llm_then_edit
from workflows.graph import Pipeline
from workflows.messages import (
    Activate,
    Claim,
    Deescalate,
    EditSubmission,
    Escalate,
    NodeStatus,
    Pause,
    QuarantineAction,
    Release,
    ReleaseClaim,
    ResolveQuarantine,
    Resume,
    RetryFailed,
    Submit,
    Tag,
    TaskStatus,
    Untag,
)
from workflows.task import TaskWorkflow


async def new_task(
    conveyor: ConveyorClient, pipeline: Pipeline | None = None, **kwargs: Any
) -> TaskClient:
    pipeline = pipeline or label_review()
    data = kwargs.pop("data", {"text": "it broke after a day"})
    created = await conveyor.create_task(pipeline, f"t-{rid()}", data, **kwargs)
    return conveyor.task(created.workflow_id)


# --------------------------------------------------------------------------- creation


async def test_creating_the_same_task_twice_does_not_duplicate(conveyor: ConveyorClient) -> None:
    pipeline = label_review()
    first = await conveyor.create_task(pipeline, "same-key", {"text": "a"})
    second = await conveyor.create_task(pipeline, "same-key", {"text": "a"})
    assert first.created and not second.created
    assert first.workflow_id == second.workflow_id == "label-review/same-key"


async def test_seed_data_is_checked_before_anything_starts(conveyor: ConveyorClient) -> None:
    with pytest.raises(InvalidSeedData) as err:
        await conveyor.create_task(label_review(), f"bad-{rid()}", {"txt": "typo"})
    assert "txt" in err.value.errors and "text" in err.value.errors


# --------------------------------------------------------------------------- rework routing


async def test_rework_same_person(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor, label_review(rejection_routing="same_person"))
    await label_and_review(task, "fail")
    view = await task.state()
    label = nodes(view)["label"]
    assert label.status == NodeStatus.AVAILABLE
    assert label.rework_reason == "the text is clearly negative"
    assert label.draft == {"label": "positive", "notes": None}
    with pytest.raises(CommandRejected, match="reserved for ana"):
        await claim(task, "carl", ["labeler"], "label")
    result = await task.send(
        Claim(request_id=rid(), contributor="ana", roles=["labeler"], node="label")
    )
    assert "rework: the text is clearly negative" in result.message


async def test_rework_pool_include(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor, label_review(rejection_routing="pool_include"))
    await label_and_review(task, "fail")
    token = await claim(task, "ana", ["labeler"], "label")  # the original contributor may
    await task.send(Release(request_id=rid(), contributor="ana", node="label", token=token))
    await claim(task, "carl", ["labeler"], "label")  # and so may anyone else


async def test_rework_pool_exclude(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor, label_review(rejection_routing="pool_exclude"))
    await label_and_review(task, "fail")
    with pytest.raises(CommandRejected, match="pool_exclude"):
        await claim(task, "ana", ["labeler"], "label")
    token = await claim(task, "carl", ["labeler"], "label")
    await submit(task, "carl", "label", token, {"label": "negative"})
    assert nodes(await task.state())["label"].submitted_by == "carl"


async def test_self_review_is_rejected(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor)
    token = await claim(task, "ana", ["labeler", "reviewer"], "label")
    await submit(task, "ana", "label", token, {"label": "neutral"})
    with pytest.raises(CommandRejected, match="self-review"):
        await claim(task, "ana", ["labeler", "reviewer"], "check")
    await claim(task, "bo", ["reviewer"], "check")


# --------------------------------------------------------------------------- limits


async def test_quarantine_at_the_limit_and_every_resolution(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor, label_review(max_rereviews=1))
    await label_and_review(task, "fail")
    result = await label_and_review(task, "fail")
    assert result.status == TaskStatus.QUARANTINED
    view = await task.state()
    assert nodes(view)["check"].status == NodeStatus.QUARANTINED
    assert nodes(view)["label"].status == NodeStatus.SUBMITTED
    with pytest.raises(CommandRejected, match="Quarantined"):
        await claim(task, "carl", ["labeler"])

    # rework: back to the labeler with a fresh allowance
    await task.send(
        ResolveQuarantine(request_id=rid(), admin="root", action=QuarantineAction.REWORK)
    )
    view = await task.state()
    assert view.status == TaskStatus.IN_PROGRESS
    assert nodes(view)["label"].status == NodeStatus.AVAILABLE
    assert nodes(view)["check"].failures == 0

    # fail, then retry returns it to Quarantined; finish accepts the submission
    await label_and_review(task, "fail")
    assert (await label_and_review(task, "fail")).status == TaskStatus.QUARANTINED
    failed = await task.send(
        ResolveQuarantine(request_id=rid(), admin="root", action=QuarantineAction.FAIL)
    )
    assert failed.status == TaskStatus.FAILED
    retried = await task.send(RetryFailed(request_id=rid(), admin="root"))
    assert retried.status == TaskStatus.QUARANTINED
    await task.send(
        ResolveQuarantine(request_id=rid(), admin="root", action=QuarantineAction.FINISH)
    )
    assert (await task.result()).status == TaskStatus.FINISHED


async def test_escalation_at_the_limit(conveyor: ConveyorClient) -> None:
    pipeline = label_review(max_rereviews=0, on_limit="escalate", escalation_role="lead")
    task = await new_task(conveyor, pipeline)
    result = await label_and_review(task, "fail")
    assert result.status == TaskStatus.ESCALATED
    assert nodes(await task.state())["check"].status == NodeStatus.ESCALATED
    with pytest.raises(CommandRejected, match="escalation role 'lead'"):
        await claim(task, "carl", ["reviewer"], "check")
    token = await claim(task, "lena", ["lead"], "check")
    await review(task, "lena", "check", token, "pass")
    assert (await task.result()).status == TaskStatus.FINISHED


async def test_admin_escalate_and_deescalate(conveyor: ConveyorClient) -> None:
    pipeline = label_review(max_rereviews=0, on_limit="escalate", escalation_role="lead")
    task = await new_task(conveyor, pipeline)
    await label_and_review(task, "fail")
    back = await task.send(Deescalate(request_id=rid(), admin="root", reason="second chance"))
    assert back.status == TaskStatus.IN_PROGRESS
    assert nodes(await task.state())["check"].status == NodeStatus.AVAILABLE

    other = await new_task(conveyor)
    escalated = await other.send(Escalate(request_id=rid(), admin="root", reason="odd text"))
    assert escalated.status == TaskStatus.ESCALATED
    with pytest.raises(CommandRejected, match="Escalated"):
        await claim(other, "ana", ["labeler"])
    await other.send(Deescalate(request_id=rid(), admin="root"))
    await claim(other, "ana", ["labeler"])


# --------------------------------------------------------------------------- pause / resume


async def test_pause_by_signal_and_resume_by_update(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor)
    token = await claim(task, "ana", ["labeler"], "label")
    await task.signal(Pause(request_id=rid(), by="ops", reason="pipeline paused"))
    view = await eventually(task, lambda v: v.status == TaskStatus.PAUSED)
    held = nodes(view)["label"].claim
    assert held is not None and held.expires_at is None and held.remaining_seconds
    with pytest.raises(CommandRejected, match="Paused"):
        await submit(task, "ana", "label", token, {"label": "negative"})
    resumed = await task.send(Resume(request_id=rid(), by="ops"))
    assert resumed.status == TaskStatus.IN_PROGRESS
    await submit(task, "ana", "label", token, {"label": "negative"})


async def test_task_created_paused_or_pending(conveyor: ConveyorClient) -> None:
    paused = await new_task(conveyor, start_paused=True)
    assert (await paused.state()).status == TaskStatus.PAUSED
    with pytest.raises(CommandRejected, match="Paused"):
        await claim(paused, "ana", ["labeler"])
    await paused.send(Resume(request_id=rid()))
    await claim(paused, "ana", ["labeler"])

    pending = await new_task(conveyor, start_pending=True)
    assert (await pending.state()).status == TaskStatus.PENDING
    await pending.send(Activate(request_id=rid()))
    assert nodes(await pending.state())["label"].status == NodeStatus.AVAILABLE


# --------------------------------------------------------------------------- signals, repeats


async def test_whole_flow_by_signals_with_rejections_recorded(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor)
    claim_id = rid()
    await task.signal(Claim(request_id=claim_id, contributor="ana", roles=["labeler"]))
    view = await eventually(task, lambda v: nodes(v)["label"].status == NodeStatus.CLAIMED)
    label_claim = nodes(view)["label"].claim
    assert label_claim is not None
    token = label_claim.token
    # a bad submission by signal is refused and recorded, and the workflow carries on
    await task.signal(
        Submit(request_id=rid(), contributor="ana", node="label", token=token, values={})
    )
    view = await eventually(task, lambda v: any(e.kind == "rejected" for e in v.timeline))
    rejected = next(e for e in view.timeline if e.kind == "rejected")
    assert "label" in rejected.data["field_errors"]
    await task.signal(
        Submit(
            request_id=rid(),
            contributor="ana",
            node="label",
            token=token,
            values={"label": "positive"},
        )
    )
    await eventually(task, lambda v: nodes(v)["check"].status == NodeStatus.AVAILABLE)


async def test_repeated_request_id_returns_the_first_answer(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor)
    command = Claim(request_id=rid(), contributor="ana", roles=["labeler"])
    first = await task.send(command)
    again = await task.send(command)
    assert again == first
    submit_cmd = Submit(
        request_id=rid(),
        contributor="ana",
        node="label",
        token=first.token or "",
        values={"label": "neutral"},
    )
    assert await task.send(submit_cmd) == await task.send(submit_cmd)
    await task.signal(submit_cmd)  # a late duplicate signal changes nothing either
    view = await task.state()
    assert nodes(view)["label"].attempts == 1
    assert not any(e.kind == "rejected" for e in view.timeline)


async def test_twenty_way_claim_race_has_exactly_one_winner(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor)
    # Temporal allows 10 updates in flight per workflow; stay under it.
    gate = asyncio.Semaphore(8)

    async def contend(i: int) -> str | Exception:
        async with gate:
            try:
                return await claim(task, f"c{i}", ["labeler"], "label")
            except CommandRejected as err:
                return err

    outcomes = await asyncio.gather(*(contend(i) for i in range(20)))
    winners = [o for o in outcomes if isinstance(o, str)]
    losers = [o for o in outcomes if isinstance(o, CommandRejected)]
    assert len(winners) == 1 and len(losers) == 19
    assert all("already Claimed by" in err.result.message for err in losers)
    view = await task.state()
    assert nodes(view)["label"].claim is not None
    assert nodes(view)["label"].claim.token == winners[0]  # type: ignore[union-attr]


async def test_stale_claim_token_is_rejected(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor)
    old = await claim(task, "ana", ["labeler"], "label")
    await task.send(ReleaseClaim(request_id=rid(), admin="root", node="label"))
    new = await claim(task, "ana", ["labeler"], "label")
    assert new != old
    with pytest.raises(CommandRejected, match="stale claim token"):
        await submit(task, "ana", "label", old, {"label": "positive"})
    await submit(task, "ana", "label", new, {"label": "positive"})


# --------------------------------------------------------------------------- bad input


async def test_bad_input_never_breaks_the_workflow(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor)
    handle = task.handle
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("claim", {"request_id": "x", "contributor": 5})
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("no_such_command", {"request_id": "x"})
    await handle.signal("submit", {"garbage": True})
    await handle.signal("claim", "not even an object")
    with pytest.raises(CommandRejected, match="unknown node 'nope'"):
        await claim(task, "ana", ["labeler"], "nope")
    with pytest.raises(CommandRejected, match="needs one of the roles labeler"):
        await claim(task, "ana", ["reviewer"], "label")
    token = await claim(task, "ana", ["labeler"], "label")
    with pytest.raises(CommandRejected) as err:
        await submit(task, "ana", "label", token, {"label": "great", "extra": 1})
    assert set(err.value.result.field_errors) == {"label", "extra"}
    await submit(task, "ana", "label", token, {"label": "positive"})
    assert (await task.state()).status == TaskStatus.IN_PROGRESS


# --------------------------------------------------------------------------- admin, tags


async def test_admin_edit_keeps_before_and_after_and_tags(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor)
    await label_and_review(task, "pass")
    await task.result()
    edited = await task.state()
    assert edited.status == TaskStatus.FINISHED
    # A completed workflow still answers queries; commands need a running one.
    running = await new_task(conveyor)
    token = await claim(running, "ana", ["labeler"], "label")
    await submit(running, "ana", "label", token, {"label": "positive"})
    await running.send(
        EditSubmission(
            request_id=rid(),
            admin="root",
            node="label",
            values={"label": "negative"},
            reason="misread",
        )
    )
    await running.send(Tag(request_id=rid(), by="root", tags=["audit", "tricky"]))
    await running.send(Untag(request_id=rid(), by="root", tags=["tricky"]))
    view = await running.state()
    assert nodes(view)["label"].values["label"] == "negative"
    event = next(e for e in view.timeline if e.kind == "submission_edited")
    assert event.data["before"]["label"] == "positive"
    assert event.data["after"]["label"] == "negative"
    assert view.tags == ["audit"]
    with pytest.raises(CommandRejected, match="none of these tags"):
        await running.send(Untag(request_id=rid(), by="root", tags=["tricky"]))


# --------------------------------------------------------------------------- gates, joins, LLM


async def test_gate_routes_and_join_defers(conveyor: ConveyorClient) -> None:
    task = await new_task(conveyor, gate_and_join(), data={"ticket": "printer on fire"})
    token = await claim(task, "ana", [], "triage")
    await submit(task, "ana", "triage", token, {"priority": "normal"})
    view = await task.state()
    assert nodes(view)["urgent_note"].status == NodeStatus.NA
    assert nodes(view)["route"].values == {"route": "fanout"}
    token = await claim(task, "ana", [], "fanout")
    await submit(task, "ana", "fanout", token, {"summary": "fire"})
    token = await claim(task, "ana", [], "left")
    await submit(task, "ana", "left", token, {"left_score": 4})
    assert nodes(await task.state())["join"].status == NodeStatus.DEFERRED
    token = await claim(task, "bo", [], "right")
    await submit(task, "bo", "right", token, {"right_score": 2})
    assert nodes(await task.state())["join"].status == NodeStatus.AVAILABLE
    token = await claim(task, "bo", [], "join")
    await submit(task, "bo", "join", token, {"verdict": True})
    assert (await task.result()).status == TaskStatus.FINISHED


async def test_llm_node_feeds_a_human_edit(conveyor: ConveyorClient, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(reply("Open Settings, then choose Reset password."))
    pipeline = llm_then_edit("openai/fake-model", api_base=fake_llm.base_url)
    task = await new_task(conveyor, pipeline, data={"question": "How do I reset my password?"})
    view = await eventually(task, lambda v: nodes(v)["edit"].status == NodeStatus.AVAILABLE)
    assert nodes(view)["draft"].values == {
        "draft_answer": "Open Settings, then choose Reset password."
    }
    assert nodes(view)["edit"].draft == {"answer": "Open Settings, then choose Reset password."}
    assert "How do I reset my password?" in fake_llm.last_request.message_text("user")
    assert fake_llm.last_request.headers.get("authorization") == "Bearer test-key"


async def test_llm_failure_fails_the_task_and_admin_retry_recovers(
    conveyor: ConveyorClient, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(status(401, {"error": {"message": "invalid key", "type": "auth"}}))
    pipeline = llm_then_edit("openai/fake-model", api_base=fake_llm.base_url)
    task = await new_task(conveyor, pipeline, data={"question": "Why?"})
    view = await eventually(task, lambda v: v.status == TaskStatus.FAILED, timeout=30)
    assert "AuthenticationError" in (view.hold_reason or "")
    assert nodes(view)["draft"].status == NodeStatus.AVAILABLE
    assert "test-key" not in (view.hold_reason or "")
    fake_llm.script(reply("Because."))
    await task.send(RetryFailed(request_id=rid(), admin="root", reason="key fixed"))
    view = await eventually(task, lambda v: nodes(v)["edit"].status == NodeStatus.AVAILABLE)
    assert view.status == TaskStatus.IN_PROGRESS


# --------------------------------------------------------------------------- visibility


async def test_search_attributes_track_status_nodes_assignees_tags(
    conveyor: ConveyorClient,
) -> None:
    pipeline = label_review(name=f"sa-{rid()[:8]}")
    task = await new_task(conveyor, pipeline)
    await claim(task, "ana", ["labeler"], "label")
    await task.send(Tag(request_id=rid(), by="root", tags=["gold"]))
    query = (
        f"ConveyorPipeline = '{pipeline.name}' AND ConveyorStatus = 'In Progress' "
        "AND ConveyorNodes = 'label' AND ConveyorAssignees = 'ana' AND ConveyorTags = 'gold'"
    )
    for _ in range(100):
        found = [wf.id async for wf in conveyor.client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [task.workflow_id]
    description = await task.handle.describe()
    assert description.workflow_type == TaskWorkflow.__name__


# --------------------------------------------------------------------------- coverage of states


async def test_every_task_and_node_state_is_reached(
    conveyor: ConveyorClient, fake_llm: FakeOpenAI
) -> None:
    """Drive small scenarios and collect every status the state query ever shows."""
    task_states: set[TaskStatus] = set()
    node_states: set[NodeStatus] = set()

    async def observe(task: TaskClient) -> None:
        view = await task.state()
        task_states.add(view.status)
        node_states.update(n.status for n in view.nodes)

    pending = await new_task(conveyor, start_pending=True)
    await observe(pending)  # Pending task, Pending nodes
    await pending.send(Activate(request_id=rid()))
    token = await claim(pending, "ana", ["labeler"], "label")
    await observe(pending)  # In Progress, Finished start, Claimed
    await submit(pending, "ana", "label", token, {"label": "neutral"})
    await observe(pending)  # Submitted, Available
    await pending.send(Pause(request_id=rid()))
    await observe(pending)  # Paused

    quarantined = await new_task(conveyor, label_review(max_rereviews=0))
    await label_and_review(quarantined, "fail")
    await observe(quarantined)  # Quarantined task and node
    escalated = await new_task(
        conveyor, label_review(max_rereviews=0, on_limit="escalate", escalation_role="lead")
    )
    await label_and_review(escalated, "fail")
    await observe(escalated)  # Escalated task and node

    gated = await new_task(conveyor, gate_and_join(), data={"ticket": "t"})
    token = await claim(gated, "ana", [], "triage")
    await submit(gated, "ana", "triage", token, {"priority": "normal"})
    token = await claim(gated, "ana", [], "fanout")
    await submit(gated, "ana", "fanout", token, {"summary": "s"})
    token = await claim(gated, "ana", [], "left")
    await submit(gated, "ana", "left", token, {"left_score": 1})
    await observe(gated)  # N/A, Deferred

    fake_llm.script(status(403, {"error": {"message": "forbidden"}}))
    failing = await new_task(
        conveyor,
        llm_then_edit("openai/fake-model", api_base=fake_llm.base_url),
        data={"question": "q"},
    )
    await eventually(failing, lambda v: v.status == TaskStatus.FAILED, timeout=30)
    await observe(failing)  # Failed

    done = await new_task(conveyor)
    await label_and_review(done, "pass")
    await done.result()
    await observe(done)  # Finished

    assert task_states == set(TaskStatus)
    assert node_states == set(NodeStatus)
