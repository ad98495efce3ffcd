"""PipelineWorkflow: one per pipeline, the source of truth for its status and versions.

* ``apply`` stores a definition as an immutable version (by content hash; the same content
  again is no new version) and makes it the one new tasks start on. Running tasks keep theirs.
* ``change_status`` moves the pipeline through Draft, Active, Paused, Completed and Archived
  (:data:`~workflows.pipeline_messages.PIPELINE_TRANSITIONS`).
* Pausing fans a ``pause`` signal out to every running task of the pipeline from the store,
  with bounded concurrency, and keeps re-checking while Paused: a task the fan-out missed (a
  worker crash, a task created at the same moment) is paused by the next round. Resuming sends
  ``resume`` to the tasks the pipeline paused, which return exactly where they were; tasks an
  operator paused stay paused.
* While Completed, ``on_pipeline_completion`` chains wait until every task is Finished, then
  create the target pipelines' tasks as one batch. Failed, Escalated or Quarantined tasks block
  them until resolved.
* The store is told each change (status, current version, definitions) through an activity.

Workflow id: ``pipeline:<name>`` (see :func:`~workflows.options.pipeline_workflow_id`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.graph import ChainTrigger, Pipeline
    from workflows.markdown import md
    from workflows.messages import (
        TaskStatus,
    )
    from workflows.options import (
        COMPLETION_CHECK_ACTIVITY,
        FIRE_COMPLETION_CHAINS_ACTIVITY,
        PIPELINE_ACTIVITY_RETRY,
        PIPELINE_ACTIVITY_TIMEOUT,
        PIPELINE_PROJECT_ACTIVITY,
        PIPELINE_RECHECK,
        PROJECT_RETRY,
        PROJECT_START_TO_CLOSE,
        SWEEP_ACTIVITY,
        SWEEP_HEARTBEAT,
        SWEEP_START_TO_CLOSE,
    )
    from workflows.payloads import Undecodable, decode
    from workflows.pipeline_messages import (
        ACCEPTS_TASKS,
        PIPELINE_TRANSITIONS,
        ApplyVersion,
        ChangeStatus,
        CompletionCheck,
        CompletionStatus,
        FireCompletionChains,
        PipelineCommandResult,
        PipelineEvent,
        PipelineInput,
        PipelineProjection,
        PipelineState,
        PipelineStatus,
        PipelineVersionInfo,
        PipelineView,
        SweepProgress,
        SweepRequest,
        SweepResult,
    )

REJECTED = "PipelineCommandRejected"
C = TypeVar("C", ApplyVersion, ChangeStatus)

EVENTS_KEPT = 200
RESPONSES_KEPT = 500
BLOCKING = (TaskStatus.FAILED, TaskStatus.ESCALATED, TaskStatus.QUARANTINED)


@workflow.defn(name="PipelineWorkflow")
class PipelineWorkflow:
    @workflow.init
    def __init__(self, input: PipelineInput) -> None:
        self._state = input.carried or PipelineState(name=input.name)
        self._recheck = timedelta(seconds=input.recheck_seconds or PIPELINE_RECHECK)
        self._unprojected: list[Pipeline] = []
        self._dirty = input.carried is None
        self._projecting = False
        self._wake = False

    # ------------------------------------------------------------------ run loop

    @workflow.run
    async def run(self, input: PipelineInput) -> PipelineView:
        projector = asyncio.create_task(self._project())
        while True:
            state = self._state
            if state.status == PipelineStatus.ARCHIVED:
                break
            sweep = state.sweep
            if sweep is not None and not sweep.done:
                await self._sweep_round(sweep)
                continue
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(
                    lambda: (
                        not self._dirty
                        and not self._projecting
                        and workflow.all_handlers_finished()
                    )
                )
                workflow.continue_as_new(
                    PipelineInput(
                        name=state.name,
                        carried=self._state,
                        recheck_seconds=input.recheck_seconds,
                    )
                )
            if self._awaiting_completion():
                await self._check_completion()
            timeout: timedelta | None = None
            if state.status == PipelineStatus.PAUSED or self._awaiting_completion():
                timeout = self._recheck
            self._wake = False
            try:
                await workflow.wait_condition(
                    lambda: self._wake or workflow.info().is_continue_as_new_suggested(),
                    timeout=timeout,
                    timeout_summary="re-check",
                )
            except TimeoutError:
                sweep = self._state.sweep
                if self._state.status == PipelineStatus.PAUSED and sweep is not None:
                    # Re-check, never assume: another pause round over the store catches a
                    # task that slipped past the fan-out.
                    self._state.sweep = sweep.model_copy(update={"done": False})
        await workflow.wait_condition(lambda: not self._dirty and not self._projecting)
        projector.cancel()
        return self._view()

    def _awaiting_completion(self) -> bool:
        state = self._state
        return (
            state.status == PipelineStatus.COMPLETED
            and not state.completion_fired
            and state.current is not None
            and any(c.trigger == ChainTrigger.ON_PIPELINE_COMPLETION for c in state.current.chains)
        )

    async def _sweep_round(self, sweep: SweepProgress) -> None:
        """One fan-out round; a pause repeats rounds until the store shows nothing running."""
        result = await workflow.execute_activity(
            SWEEP_ACTIVITY,
            SweepRequest(
                pipeline=self._state.name,
                action=sweep.action,
                epoch=sweep.epoch,
                round=sweep.round,
            ),
            result_type=SweepResult,
            start_to_close_timeout=SWEEP_START_TO_CLOSE,
            heartbeat_timeout=SWEEP_HEARTBEAT,
            retry_policy=PIPELINE_ACTIVITY_RETRY,
            summary=f"{sweep.action} {self._state.name}: round {sweep.round}",
        )
        current = self._state.sweep
        if current is None or current.epoch != sweep.epoch:
            return  # a newer pause or resume took over
        done = sweep.action == "resume" or result.remaining == 0
        self._state.sweep = current.model_copy(
            update={
                "round": current.round + 1,
                "signalled": current.signalled + result.signalled,
                "remaining": result.remaining,
                "done": done,
            }
        )
        if done and result.signalled:
            self._event(
                "pipeline",
                f"{sweep.action} fan-out reached {current.signalled + result.signalled} task(s)",
            )
        if not done:
            await workflow.sleep(timedelta(seconds=1))
        workflow.set_current_details(self._details())

    async def _check_completion(self) -> None:
        status = await workflow.execute_activity(
            COMPLETION_CHECK_ACTIVITY,
            CompletionCheck(pipeline=self._state.name),
            result_type=CompletionStatus,
            start_to_close_timeout=PIPELINE_ACTIVITY_TIMEOUT,
            retry_policy=PIPELINE_ACTIVITY_RETRY,
        )
        blocked = {s.value: status.counts.get(s.value, 0) for s in BLOCKING}
        self._state.blocked_by = {k: v for k, v in blocked.items() if v}
        unfinished = status.total - status.counts.get(TaskStatus.FINISHED.value, 0)
        if unfinished or not self._awaiting_completion():
            workflow.set_current_details(self._details())
            return
        assert self._state.current is not None
        await workflow.execute_activity(
            FIRE_COMPLETION_CHAINS_ACTIVITY,
            FireCompletionChains(pipeline=self._state.current),
            result_type=int,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=SWEEP_HEARTBEAT,
            retry_policy=PIPELINE_ACTIVITY_RETRY,
            summary=f"{self._state.name}: completion chains",
        )
        self._state.completion_fired = True
        self._event("pipeline", "every task Finished: on_pipeline_completion chains fired")
        self._dirty = True

    async def _project(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self._dirty)
            self._dirty = False
            self._projecting = True
            versions, self._unprojected = self._unprojected, []
            try:
                await workflow.execute_activity(
                    PIPELINE_PROJECT_ACTIVITY,
                    PipelineProjection(
                        name=self._state.name,
                        status=self._state.status,
                        current=self._state.current,
                        versions=versions,
                    ),
                    result_type=int,
                    start_to_close_timeout=PROJECT_START_TO_CLOSE,
                    retry_policy=PROJECT_RETRY,
                    summary=f"store {self._state.name}: {self._state.status}",
                )
            finally:
                self._projecting = False

    # ------------------------------------------------------------------ updates

    # Handlers take the raw payload and decode it themselves, so that no payload can reach the
    # workflow task as an exception (workflows.payloads).

    @workflow.update
    def apply(self, raw: RawValue) -> PipelineCommandResult:
        command = self._read("apply", raw, ApplyVersion)
        previous = self._state.responses.get(command.request_id)
        if previous is not None:
            return previous
        pipeline = command.pipeline
        content_hash = pipeline.content_hash()
        known = any(v.hash == content_hash for v in self._state.versions)
        current = self._state.current
        if not known:
            self._state.versions.append(
                PipelineVersionInfo(
                    hash=content_hash, applied_at=workflow.now(), applied_by=command.by
                )
            )
            self._unprojected.append(pipeline)
        moved = current is None or current.content_hash() != content_hash
        if moved:
            self._state.current = pipeline
            self._event(
                command.by,
                f"version {content_hash[:12]} is current"
                + ("" if known else f" (new; {len(self._state.versions)} version(s) in all)"),
            )
            self._dirty = True
        message = (
            f"version {content_hash[:12]} applied"
            if not known
            else f"version {content_hash[:12]} is already "
            + ("current" if not moved else "stored; it is current again")
        )
        return self._answer(
            command.request_id, message, version=content_hash, new_version=not known
        )

    @apply.validator
    def _apply_ok(self, raw: RawValue) -> None:
        command = self._read("apply", raw, ApplyVersion)
        if command.request_id in self._state.responses:
            return
        if command.pipeline.name != self._state.name:
            self._reject(
                f"definition is for pipeline '{command.pipeline.name}', not '{self._state.name}'"
            )
        if self._state.status == PipelineStatus.ARCHIVED:
            self._reject(f"pipeline '{self._state.name}' is Archived; it takes no new versions")

    @workflow.update
    def change_status(self, raw: RawValue) -> PipelineCommandResult:
        command = self._read("change_status", raw, ChangeStatus)
        previous = self._state.responses.get(command.request_id)
        if previous is not None:
            return previous
        state = self._state
        before = state.status
        if command.to == before:
            return self._answer(command.request_id, f"pipeline is already {before}")
        state.status = command.to
        if command.to == PipelineStatus.PAUSED:
            state.epoch += 1
            state.sweep = SweepProgress(action="pause", epoch=state.epoch)
        elif before == PipelineStatus.PAUSED:
            state.epoch += 1
            state.sweep = SweepProgress(action="resume", epoch=state.epoch)
        if command.to == PipelineStatus.ACTIVE and before == PipelineStatus.COMPLETED:
            state.completion_fired = False
        self._event(
            command.by,
            f"{before} -> {command.to}" + (f": {command.reason}" if command.reason else ""),
        )
        self._dirty = True
        self._wake = True
        workflow.set_current_details(self._details())
        return self._answer(command.request_id, f"pipeline is {command.to} (was {before})")

    @change_status.validator
    def _change_status_ok(self, raw: RawValue) -> None:
        command = self._read("change_status", raw, ChangeStatus)
        if command.request_id in self._state.responses:
            return
        before = self._state.status
        if command.to == before:
            return
        if command.to == PipelineStatus.ACTIVE and self._state.current is None:
            self._reject("apply a definition before activating the pipeline")
        allowed = PIPELINE_TRANSITIONS[before]
        if command.to not in allowed:
            options = ", ".join(s.value for s in allowed) or "nothing (it is final)"
            self._reject(f"a {before} pipeline cannot become {command.to}; it can become {options}")

    @workflow.signal
    def task_finished(self, *_: Any) -> None:
        """A task of this pipeline finished: re-check completion chains now, not at the timer.

        Takes any arguments and ignores them, so that no payload sent with it can break the
        workflow task."""
        self._wake = True

    # ------------------------------------------------------------------ queries

    @workflow.query
    def describe(self) -> PipelineView:
        return self._view()

    # ------------------------------------------------------------------ plumbing

    def _view(self) -> PipelineView:
        state = self._state
        return PipelineView(
            name=state.name,
            status=state.status,
            current_version=state.current.content_hash() if state.current else None,
            current=state.current,
            versions=list(state.versions),
            sweep=state.sweep,
            events=list(state.events),
            completion_fired=state.completion_fired,
            blocked_by=dict(state.blocked_by),
            accepts_tasks=state.status in ACCEPTS_TASKS,
        )

    def _answer(
        self,
        request_id: str,
        message: str,
        *,
        version: str | None = None,
        new_version: bool = False,
    ) -> PipelineCommandResult:
        result = PipelineCommandResult(
            request_id=request_id,
            accepted=True,
            message=message,
            status=self._state.status,
            version=version,
            new_version=new_version,
        )
        responses = self._state.responses
        responses[request_id] = result
        while len(responses) > RESPONSES_KEPT:
            responses.pop(next(iter(responses)))
        return result

    def _reject(self, message: str) -> NoReturn:
        raise ApplicationError(message, type=REJECTED, non_retryable=True)

    def _read(self, name: str, raw: RawValue, model: type[C]) -> C:
        try:
            return decode(name, raw, model)
        except Undecodable as bad:
            self._reject(bad.result.message)

    def _event(self, actor: str, message: str) -> None:
        events = self._state.events
        events.append(PipelineEvent(at=workflow.now(), actor=actor, message=message))
        del events[: max(0, len(events) - EVENTS_KEPT)]

    def _details(self) -> str:
        state = self._state
        lines = [
            f"**{state.status}** · pipeline {md(state.name)} · {len(state.versions)} version(s)"
        ]
        if state.sweep is not None and not state.sweep.done:
            s = state.sweep
            lines.append(f"{s.action} fan-out: round {s.round}, {s.signalled} signalled")
        if state.blocked_by:
            blocked = ", ".join(f"{n} {md(k)}" for k, n in state.blocked_by.items())
            lines.append(f"completion chains blocked by {blocked}")
        return "\n".join(lines)
