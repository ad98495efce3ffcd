"""No payload can break a task: every command name x every bad payload kind, by update and signal.

Each bad update is refused as a non-retryable ``CommandRejected`` naming each problem; each bad
signal becomes a ``rejected`` timeline event. Afterwards the workflow is Running, its history has
no ``WorkflowTaskFailed`` event, and the next valid command works.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from conveyor.client import ConveyorClient, TaskClient
from tests.support.actors import claim, eventually, rid, submit
from tests.support.pipelines import label_review
from workflows.messages import TASK_COMMANDS, CommandResult, Tag, TaskStatus
from workflows.task import REJECTED


def _raw(encoding: bytes, data: bytes) -> RawValue:
    return RawValue(Payload(metadata={"encoding": encoding}, data=data))


_DEEP = '{"request_id": "r-deep", "values": ' + "[" * 5000 + "]" * 5000 + "}"
_HUGE_NUMBER = '{"request_id": "r-big", "run": ' + "9" * 100_000 + "}"

# Each kind of payload a sender can get wrong, as the handler's arguments (a list: several or
# none are possible too).
BAD: dict[str, list[Any]] = {
    "binary/plain garbage": [_raw(b"binary/plain", b"garbage")],
    "not JSON": [_raw(b"json/plain", b"{not json")],
    "null": [_raw(b"json/plain", b"null")],
    "binary/null": [_raw(b"binary/null", b"")],
    "unknown encoding": [_raw(b"application/x-nope", b"{}")],
    "protobuf garbage": [
        RawValue(
            Payload(
                metadata={"encoding": b"json/protobuf", "messageType": b"no.Such"},
                data=b"{}",
            )
        )
    ],
    "a list": [[1, 2]],
    "a string": ["not even an object"],
    "wrong types": [
        {
            "request_id": 5,
            "contributor": ["x"],
            "node": 7,
            "token": 8,
            "values": "a string",
            "admin": 9,
            "by": 10,
        }
    ],
    "missing fields": [{}],
    "unknown field": [{"request_id": "r-extra", "contributor": "ana", "surprise": True}],
    "unknown enum value": [
        {
            "request_id": "r-enum",
            "contributor": "bo",
            "admin": "root",
            "node": "check",
            "token": "t",
            "verdict": "maybe",
            "action": "explode",
        }
    ],
    "nested 5,000 deep": [_raw(b"json/plain", _DEEP.encode())],
    "a 100,000-digit number": [_raw(b"json/plain", _HUGE_NUMBER.encode())],
    "no payload": [],
    "two payloads": [{"request_id": "r-two"}, {"request_id": "r-two"}],
}


async def _update(handle: WorkflowHandle[Any, Any], name: str, args: list[Any]) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(name, args=args, result_type=CommandResult)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def _history_is_clean(handle: WorkflowHandle[Any, Any]) -> None:
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    history = await handle.fetch_history()
    failed = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed == [], failed[0].workflow_task_failed_event_attributes.failure.message


async def _rejections(task: TaskClient, count: int) -> list[Any]:
    """The task's rejected events, once there are ``count`` of them."""
    view = await eventually(
        task, lambda v: sum(e.kind == "rejected" for e in v.timeline) >= count, timeout=30
    )
    rejected = [e for e in view.timeline if e.kind == "rejected"]
    assert len(rejected) == count, rejected
    return rejected


async def _new_task(conveyor: ConveyorClient) -> TaskClient:
    created = await conveyor.create_task(label_review(), f"bad-{rid()}", {"text": "x"})
    return conveyor.task(created.workflow_id)


async def _every_bad_payload(conveyor: ConveyorClient, name: str) -> None:
    task = await _new_task(conveyor)
    handle = task.handle
    for kind, args in BAD.items():
        cause = await _update(handle, name, args)
        assert cause.type == REJECTED, (name, kind, cause)
        assert cause.non_retryable, (name, kind)
        result = CommandResult.model_validate(cause.details[0])
        assert not result.accepted
        assert result.command == name
        assert result.problems, (name, kind, result)
        assert all(p.at and p.problem for p in result.problems)
        assert f"not a valid {name} command" in result.message, (name, kind, result.message)
    for args in BAD.values():
        await handle.signal(name, args=args)
    rejected = await _rejections(task, len(BAD))
    assert all(e.message.startswith(f"{name} rejected: ") for e in rejected)
    assert all(e.data["problems"] for e in rejected)
    readable = {e.data["request_id"] for e in rejected} - {None}
    assert {"r-extra", "r-enum"} <= readable
    await _history_is_clean(handle)
    # The task goes on: a valid command is accepted.
    token = await claim(task, "ana", ["labeler"], "label")
    await submit(task, "ana", "label", token, {"label": "positive"})
    await _history_is_clean(handle)
    assert (await task.state()).status == TaskStatus.IN_PROGRESS


@pytest.mark.parametrize("name", list(TASK_COMMANDS))
async def test_no_payload_breaks_a_task(conveyor: ConveyorClient, name: str) -> None:
    await _every_bad_payload(conveyor, name)


async def test_an_unknown_command_name_is_refused_and_recorded(conveyor: ConveyorClient) -> None:
    task = await _new_task(conveyor)
    cause = await _update(task.handle, "clam", [{"request_id": "r-typo", "contributor": "ana"}])
    assert cause.type == REJECTED
    assert "no command 'clam'" in cause.message and "claim" in cause.message
    await task.handle.signal("clam", {"request_id": "r-typo", "contributor": "ana"})
    (event,) = await _rejections(task, 1)
    assert event.actor == "ana"
    assert event.data["request_id"] == "r-typo"
    assert "no command 'clam'" in event.message
    await _history_is_clean(task.handle)


async def test_a_fixed_payload_may_reuse_the_refused_request_id(conveyor: ConveyorClient) -> None:
    """A payload that never became a command leaves its request_id free for the real one."""
    task = await _new_task(conveyor)
    await task.handle.signal("claim", {"request_id": "r-1", "contributor": "ana", "roles": "x"})
    await _rejections(task, 1)
    result = await task.handle.execute_update(
        "claim",
        {"request_id": "r-1", "contributor": "ana", "roles": ["labeler"]},
        result_type=CommandResult,
    )
    assert result.accepted and result.token


async def test_a_request_id_answers_only_its_first_sender(conveyor: ConveyorClient) -> None:
    task = await _new_task(conveyor)
    first = await task.handle.execute_update(
        "claim",
        {"request_id": "shared", "contributor": "ana", "roles": ["labeler"]},
        result_type=CommandResult,
    )
    assert first.token
    cause = await _update(
        task.handle, "claim", [{"request_id": "shared", "contributor": "bo", "roles": ["labeler"]}]
    )
    assert "already used by someone else" in cause.message
    assert first.token not in json.dumps(cause.details[0])
    again = await task.handle.execute_update(
        "claim",
        {"request_id": "shared", "contributor": "ana", "roles": ["labeler"]},
        result_type=CommandResult,
    )
    assert again.token == first.token


async def test_pipeline_and_seeder_updates_refuse_bad_payloads(conveyor: ConveyorClient) -> None:
    pipeline = label_review(name=f"bad-{rid()[:8]}")
    await conveyor.apply_pipeline(pipeline)
    handle = conveyor.pipeline_handle(pipeline.name)
    for name in ("apply", "change_status"):
        for kind, args in BAD.items():
            if len(args) != 1:
                continue  # a named handler refuses another count in the SDK, before our code
            with pytest.raises(WorkflowUpdateFailedError) as failed:
                await handle.execute_update(name, args=args)
            cause = failed.value.cause
            assert isinstance(cause, ApplicationError), (name, kind)
            assert cause.non_retryable and f"not a valid {name} command" in cause.message
    await handle.signal("task_finished", _raw(b"binary/plain", b"garbage"))
    await handle.signal("task_finished", args=[{"a": 1}, [2]])
    await _history_is_clean(handle)
    # The pipeline goes on.
    await conveyor.apply_pipeline(label_review(name=pipeline.name, max_rereviews=5))
    assert len((await conveyor.describe_pipeline(pipeline.name)).versions) == 2


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["request_id", "contributor", "roles", "node", "token", "values", "verdict", "x"]
            )
            | st.text(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


_FUZZED: dict[str, TaskClient] = {}


async def _fuzzed_task(conveyor: ConveyorClient) -> TaskClient:
    """One task takes every generated payload."""
    if "task" not in _FUZZED:
        _FUZZED["task"] = await _new_task(conveyor)
    return _FUZZED["task"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(payload=_JSON, name=st.sampled_from([*TASK_COMMANDS, "nope"]))
async def test_generated_payloads_never_break_a_task(
    conveyor: ConveyorClient, name: str, payload: Any
) -> None:
    handle = (await _fuzzed_task(conveyor)).handle
    try:
        await handle.execute_update(name, payload, result_type=CommandResult)
    except WorkflowUpdateFailedError as err:
        assert isinstance(err.cause, ApplicationError)
        assert err.cause.type == REJECTED and err.cause.non_retryable
    await handle.signal(name, payload)
    await asyncio.sleep(0)
    await _history_is_clean(handle)


async def test_user_text_in_the_ui_summary_is_escaped(conveyor: ConveyorClient) -> None:
    """A tag like ``<i>tricky</i>`` shows as typed in the Temporal UI, not in italics."""
    created = await conveyor.create_task(label_review(), "key-*[x](y)*", {"text": "x"})
    task = conveyor.task(created.workflow_id)
    await task.send(Tag(request_id=rid(), by="ops", tags=["<i>tricky</i>", "**b**"]))
    metadata = await task.handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    details = metadata.current_details
    assert "<i>" not in details and "&lt;i\\>tricky&lt;/i\\>" in details
    assert "\\*\\*b\\*\\*" in details
    assert "key\\-\\*\\[x\\]\\(y\\)\\*" in details
