"""TaskWorkflow: the thin Temporal shell around the pure engine.

One workflow per task. Every command reaches :func:`workflows.engine.apply`; this class only
translates between Temporal and the engine:

* each command is an **update** (its validator runs the engine on the current state and rejects
  with the engine's reason, so a refused command leaves no trace in history) and a **signal** of
  the same name and payload (a refused signal is recorded in the timeline);
* the ``state`` query returns the task view;
* it performs what the state asks for: LLM generations through one activity, claim timeouts as a
  durable timer (frozen while paused), search attributes and the UI summary, and
  continue-as-new when the server suggests it;
* once Finished, it fires its pipeline's ``on_task_completion`` chains (one activity) before
  it completes.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # The engine's regex evaluators run on RE2, a native module: imported once, outside.
    import re2  # noqa: F401

    # ``import a.b as b`` passes the module through; ``from a import b`` would re-import the
    # engine inside the sandbox on every workflow run.
    import workflows.engine as engine
    from workflows.graph import ChainTrigger, FieldSpec, LlmSpec, Pipeline
    from workflows.messages import (
        Activate,
        ChainsFired,
        Claim,
        ClaimTimeout,
        Command,
        CommandResult,
        Deescalate,
        EditSubmission,
        Escalate,
        EvaluationKind,
        EvaluationRecord,
        FireTaskChains,
        JudgeRequest,
        JudgeResult,
        LlmDraft,
        LlmFailure,
        LlmRequest,
        LlmResponse,
        LlmResult,
        LlmStarted,
        Pause,
        ProjectionBatch,
        Regenerate,
        Release,
        ReleaseClaim,
        ResolveQuarantine,
        Resume,
        RetryFailed,
        Review,
        SaveDraft,
        Submit,
        Tag,
        TaskInput,
        TaskState,
        TaskStatus,
        TaskView,
        TimelineEvent,
        Untag,
    )
    from workflows.options import (
        CHAIN_RETRY,
        CHAIN_START_TO_CLOSE,
        FIRE_TASK_CHAINS_ACTIVITY,
        JUDGE_ACTIVITY,
        LLM_ACTIVITY,
        LLM_HEARTBEAT,
        LLM_RETRY,
        LLM_SCHEDULE_TO_CLOSE,
        LLM_START_TO_CLOSE,
        PROJECT_ACTIVITY,
        PROJECT_RETRY,
        PROJECT_START_TO_CLOSE,
        SA_ASSIGNEES,
        SA_NODES,
        SA_STATUS,
        SA_TAGS,
    )

TASK_CHAINS_PATCH = "task-completion-chains"
"""``workflow.patched`` id of firing ``on_task_completion`` chains as a task finishes."""

REJECTED = "CommandRejected"
"""``ApplicationError.type`` of a refused update; its first detail is the CommandResult."""


@workflow.defn
class TaskWorkflow:
    """A task travelling through its pipeline. See the module docstring."""

    @workflow.init
    def __init__(self, input: TaskInput) -> None:
        self._pipeline: Pipeline = input.pipeline
        if input.carried is not None:
            self._state: TaskState = input.carried
        else:
            try:
                outcome = engine.start_task(
                    input.pipeline,
                    input.task_key,
                    input.data,
                    engine.Context(now=workflow.now()),
                    start_paused=input.start_paused,
                    start_pending=input.start_pending,
                )
            except engine.Rejected as rejected:
                raise ApplicationError(
                    f"{rejected.message}: {rejected.field_errors}",
                    type="InvalidSeedData",
                    non_retryable=True,
                ) from None
            self._state = outcome.state
        # Events not yet written to the store; a new task's first events are its creation.
        self._outbox: list[TimelineEvent] = (
            list(input.outbox) if input.carried else list(outcome.events)
        )
        self._in_flight: list[TimelineEvent] = []
        self._pipeline_recorded = False
        self._llm_running: set[str] = set()
        self._armed_deadline: datetime | None = None
        self._published: tuple[Any, ...] | None = None

    # ------------------------------------------------------------------ run loop

    @workflow.run
    async def run(self, input: TaskInput) -> TaskView:
        self._publish()
        projector = asyncio.create_task(self._project())
        while True:
            self._start_background_work()
            now = workflow.now()
            for node, token in engine.expired_claims(self._state, now):
                self._apply_internal(
                    ClaimTimeout(request_id=f"timeout:{node}:{token}", node=node, token=token)
                )
            if self._state.status == TaskStatus.FINISHED and not self._llm_running:
                break
            if workflow.info().is_continue_as_new_suggested() and not self._llm_running:
                await workflow.wait_condition(workflow.all_handlers_finished)
                # Events not yet confirmed in the store travel with the state (writing them
                # twice is harmless), so a busy task never waits for its projection to idle.
                workflow.continue_as_new(
                    TaskInput(
                        pipeline=self._pipeline,
                        task_key=self._state.task_key,
                        data=self._state.data,
                        carried=self._state,
                        outbox=[*self._in_flight, *self._outbox],
                    )
                )
            self._armed_deadline = engine.next_claim_deadline(self._state)
            timeout: float | None = None
            if self._armed_deadline is not None:
                timeout = max(0.001, (self._armed_deadline - workflow.now()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self._needs_attention, timeout=timeout, timeout_summary="claim timeout"
                )
        # Only pipelines with such chains take this path, so other tasks' histories are
        # unchanged. The patch keeps tasks that finished before chains fired (the setting
        # existed, with no effect) replaying as they ran.
        if any(
            c.trigger == ChainTrigger.ON_TASK_COMPLETION for c in self._pipeline.chains
        ) and workflow.patched(TASK_CHAINS_PATCH):
            await self._fire_task_chains()
        await self._drain_projection()
        projector.cancel()
        return self._view()

    def _background_work(self) -> list[tuple[str, Any]]:
        """Model calls the state asks for, each with the key that tracks it while it runs."""
        work: list[tuple[str, Any]] = []
        for name in engine.llm_nodes_ready(self._pipeline, self._state):
            work.append((name, lambda name=name: self._generate(name)))
        for name, run in engine.llm_drafts_ready(self._pipeline, self._state):
            work.append((f"{name}:draft", lambda name=name, run=run: self._draft(name, run)))
        for name, judge, run in engine.judges_ready(self._state):
            work.append(
                (
                    f"{name}:judge:{judge}:{run}",
                    lambda name=name, judge=judge, run=run: self._judge(name, judge, run),
                )
            )
        return work

    def _start_background_work(self) -> None:
        for key, start in self._background_work():
            if key not in self._llm_running:
                self._llm_running.add(key)
                asyncio.create_task(start())  # noqa: RUF006 - tracked by key

    def _needs_attention(self) -> bool:
        if self._state.status == TaskStatus.FINISHED and not self._llm_running:
            return True
        if workflow.info().is_continue_as_new_suggested() and not self._llm_running:
            return True
        if engine.next_claim_deadline(self._state) != self._armed_deadline:
            return True
        return any(key not in self._llm_running for key, _ in self._background_work())

    async def _project(self) -> None:
        """Write new events and the latest snapshot to the store, one batch at a time.

        Events that arrive while a batch is being written wait for the next one, so a busy task
        costs one activity per round trip, not one per command.
        """
        while True:
            await workflow.wait_condition(lambda: bool(self._outbox))
            events, self._outbox = self._outbox, []
            self._in_flight = events
            try:
                await workflow.execute_activity(
                    PROJECT_ACTIVITY,
                    ProjectionBatch(
                        view=self._view(timeline=False),
                        events=events,
                        pipeline=None if self._pipeline_recorded else self._pipeline,
                        blocked=engine.self_review_blocked(self._pipeline, self._state.nodes),
                    ),
                    result_type=int,
                    start_to_close_timeout=PROJECT_START_TO_CLOSE,
                    retry_policy=PROJECT_RETRY,
                    summary=f"store up to #{self._state.seq}",
                )
                self._pipeline_recorded = True
            finally:
                self._in_flight = []

    async def _fire_task_chains(self) -> None:
        """Create this task's ``on_task_completion`` chain tasks in their target pipelines.

        The activity keeps trying while a target takes no tasks (Draft, Completed), so the
        workflow stays open until it is activated. A chain that cannot fire (no such pipeline,
        data the target refuses) is logged and the task completes anyway: it is Finished.
        """
        chains = [c for c in self._pipeline.chains if c.trigger == ChainTrigger.ON_TASK_COMPLETION]
        try:
            fired = await workflow.execute_activity(
                FIRE_TASK_CHAINS_ACTIVITY,
                FireTaskChains(
                    pipeline=self._pipeline.name,
                    task_key=self._state.task_key,
                    workflow_id=workflow.info().workflow_id,
                    data=engine.task_data(self._state),
                    chains=chains,
                ),
                result_type=ChainsFired,
                start_to_close_timeout=CHAIN_START_TO_CLOSE,
                retry_policy=CHAIN_RETRY,
                summary=("chains to " + ", ".join(c.to for c in chains))[:200],
            )
            workflow.logger.info(
                "chains fired: created %s, already there %s", fired.created, fired.existing
            )
        except ActivityError as err:
            workflow.logger.warning(
                "on_task_completion chains of task %s did not fire (%s); the task is Finished "
                "regardless: fix the chain or its target and create the target task by hand",
                self._state.task_key,
                _reason(err),
            )

    async def _drain_projection(self) -> None:
        """Wait until every handler is done and the store has every event."""
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._outbox and not self._in_flight
        )

    async def _fill_llm_fields(self, name: str, call: str) -> tuple[dict[str, Any], str | None]:
        """Ask the models for ``name``'s LLM fields: one activity call per field group.

        Fields with the same ``group`` (or identical ``llm`` settings) share one call.

        Raises:
            ActivityError: a call failed for good.
        """
        groups: dict[str, tuple[LlmSpec, list[FieldSpec]]] = {}
        for field in self._pipeline.node(name).llm_fields():
            assert field.llm is not None
            key = f"group:{field.group}" if field.group else field.llm.model_dump_json()
            spec, fields = groups.get(key, (field.llm, []))
            groups[key] = (spec, [*fields, field])
        context = engine.task_data(self._state)
        values: dict[str, Any] = {}
        model: str | None = None
        for index, (spec, fields) in enumerate(groups.values()):
            response = await workflow.execute_activity(
                LLM_ACTIVITY,
                LlmRequest(
                    workflow_id=workflow.info().workflow_id,
                    node=name,
                    spec=spec,
                    fields=fields,
                    context=context,
                    call_id=f"{name}:{call}:{index}",
                ),
                result_type=LlmResponse,
                start_to_close_timeout=LLM_START_TO_CLOSE,
                schedule_to_close_timeout=LLM_SCHEDULE_TO_CLOSE,
                heartbeat_timeout=LLM_HEARTBEAT,
                retry_policy=LLM_RETRY,
                summary=f"{name}: {spec.model}"[:200],
            )
            values.update(response.values)
            model = response.model
        return values, model

    async def _generate(self, name: str) -> None:
        """Run an LLM node: fill its fields, then hand them in (or fail the node)."""
        try:
            node = self._state.nodes[name]
            started = self._apply_internal(
                LlmStarted(request_id=f"llm-start:{name}:{node.llm_runs + 1}", node=name)
            )
            if not started.accepted:
                return
            run_no = self._state.nodes[name].llm_runs
            outcome: Command
            try:
                values, model = await self._fill_llm_fields(name, str(run_no))
                outcome = LlmResult(
                    request_id=f"llm-result:{name}:{run_no}", node=name, values=values, model=model
                )
            except ActivityError as err:
                outcome = LlmFailure(
                    request_id=f"llm-failure:{name}:{run_no}", node=name, reason=_reason(err)
                )
            # While paused, LLM output waits: the task must resume exactly where it was.
            await workflow.wait_condition(lambda: self._state.status != TaskStatus.PAUSED)
            result = self._apply_internal(outcome)
            if not result.accepted and isinstance(outcome, LlmResult):
                self._apply_internal(
                    LlmFailure(
                        request_id=f"llm-invalid:{name}:{run_no}",
                        node=name,
                        reason=f"{result.message}: {result.field_errors}",
                    )
                )
        finally:
            self._llm_running.discard(name)

    async def _draft(self, name: str, run: int) -> None:
        """Generate the LLM fields of a node that mixes input and LLM fields, as its draft."""
        try:
            request_id = f"llm-draft:{name}:{run}"
            try:
                values, model = await self._fill_llm_fields(name, f"draft{run}")
                draft = LlmDraft(
                    request_id=request_id, node=name, run=run, values=values, model=model
                )
            except ActivityError as err:
                draft = LlmDraft(request_id=request_id, node=name, run=run, error=_reason(err))
            result = self._apply_internal(draft)
            if not result.accepted and draft.error is None and result.field_errors:
                self._apply_internal(
                    LlmDraft(
                        request_id=f"{request_id}:invalid",
                        node=name,
                        run=run,
                        error=f"{result.message}: {result.field_errors}",
                    )
                )
        finally:
            self._llm_running.discard(f"{name}:draft")

    async def _judge(self, name: str, judge: str, run: int) -> None:
        """Run one LLM judge on a node's submission number ``run`` and record its verdict."""
        key = f"{name}:judge:{judge}:{run}"
        try:
            spec = next(e for e in self._pipeline.node(name).evaluators if e.name == judge)
            assert spec.judge is not None
            try:
                record = await workflow.execute_activity(
                    JUDGE_ACTIVITY,
                    JudgeRequest(
                        workflow_id=workflow.info().workflow_id,
                        node=name,
                        evaluator=spec,
                        context=engine.task_data(self._state),
                        call_id=f"{name}:judge:{judge}:{spec.version}:{run}",
                        mode=spec.mode.value,
                    ),
                    result_type=EvaluationRecord,
                    start_to_close_timeout=LLM_START_TO_CLOSE,
                    schedule_to_close_timeout=LLM_SCHEDULE_TO_CLOSE,
                    heartbeat_timeout=LLM_HEARTBEAT,
                    retry_policy=LLM_RETRY,
                    summary=f"judge {judge} on {name}: {spec.judge.model}"[:200],
                )
            except ActivityError as err:
                record = EvaluationRecord(
                    criterion=spec.name,
                    version=spec.version,
                    kind=EvaluationKind.LLM_JUDGE,
                    evaluator=spec.kind.value,
                    mode=spec.mode.value,
                    node=name,
                    fields=list(spec.fields),
                    actor=f"llm:{spec.judge.model}",
                    error=_reason(err),
                )
            self._apply_internal(
                JudgeResult(
                    request_id=f"judge:{name}:{judge}:{run}", node=name, run=run, record=record
                )
            )
        finally:
            self._llm_running.discard(key)

    # ------------------------------------------------------------------ plumbing

    def _context(self) -> engine.Context:
        return engine.Context(now=workflow.now(), token=str(workflow.uuid4()))

    def _commit(self, outcome: engine.Outcome) -> None:
        self._state = outcome.state
        self._outbox.extend(outcome.events)
        self._publish()

    def _apply_internal(self, command: Command) -> CommandResult:
        outcome = engine.apply(self._pipeline, self._state, command, self._context())
        if outcome.accepted:
            self._commit(outcome)
        return outcome.result

    def _validate(self, command: Command) -> None:
        # No token and no uuid4() here: validators do not run on replay, so they must not
        # consume workflow randomness.
        outcome = engine.apply(
            self._pipeline, self._state, command, engine.Context(now=workflow.now())
        )
        if not outcome.accepted:
            raise ApplicationError(
                outcome.result.message,
                outcome.result.model_dump(mode="json"),
                type=REJECTED,
                non_retryable=True,
            )

    def _update(self, command: Command) -> CommandResult:
        outcome = engine.apply(self._pipeline, self._state, command, self._context())
        if not outcome.accepted:
            # State moved between validation and handling (e.g. two claims in one batch).
            raise ApplicationError(
                outcome.result.message,
                outcome.result.model_dump(mode="json"),
                type=REJECTED,
                non_retryable=True,
            )
        self._commit(outcome)
        return outcome.result

    def _signal(self, command: Command) -> None:
        context = self._context()
        outcome = engine.apply(self._pipeline, self._state, command, context)
        if not outcome.accepted:
            outcome = engine.record_rejection(
                self._pipeline, self._state, outcome, command, context
            )
            workflow.logger.info("signal %s rejected: %s", command.type, outcome.result.message)
        self._commit(outcome)

    def _publish(self) -> None:
        """Refresh search attributes and the Temporal UI summary when they changed."""
        state = self._state
        nodes = engine.current_nodes(state.nodes.values())
        people = engine.assignees(state.nodes.values())
        snapshot = (state.status, tuple(nodes), tuple(people), tuple(state.tags))
        if snapshot == self._published:
            return
        self._published = snapshot
        workflow.upsert_search_attributes(
            [
                SA_STATUS.value_set(state.status.value),
                SA_NODES.value_set(nodes),
                SA_ASSIGNEES.value_set(people),
                SA_TAGS.value_set(list(state.tags)),
            ]
        )
        workflow.set_current_details(_details(state))

    def _view(self, *, timeline: bool = True) -> TaskView:
        return engine.task_view(self._state, workflow.info().workflow_id, timeline=timeline)

    # ------------------------------------------------------------------ query

    @workflow.query
    def state(self) -> TaskView:
        """The task view: status, every node's status, assignee, values, review data, counters."""
        return self._view()

    # ------------------------------------------------------------------ updates
    # Each command is an update (with a validator) and a signal of the same name.

    @workflow.update
    def claim(self, command: Claim) -> CommandResult:
        return self._update(command)

    @claim.validator
    def _claim_ok(self, command: Claim) -> None:
        self._validate(command)

    @workflow.signal(name="claim")
    def claim_signal(self, command: Claim) -> None:
        self._signal(command)

    @workflow.update
    def release(self, command: Release) -> CommandResult:
        return self._update(command)

    @release.validator
    def _release_ok(self, command: Release) -> None:
        self._validate(command)

    @workflow.signal(name="release")
    def release_signal(self, command: Release) -> None:
        self._signal(command)

    @workflow.update
    def save_draft(self, command: SaveDraft) -> CommandResult:
        return self._update(command)

    @save_draft.validator
    def _save_draft_ok(self, command: SaveDraft) -> None:
        self._validate(command)

    @workflow.signal(name="save_draft")
    def save_draft_signal(self, command: SaveDraft) -> None:
        self._signal(command)

    @workflow.update
    def submit(self, command: Submit) -> CommandResult:
        return self._update(command)

    @submit.validator
    def _submit_ok(self, command: Submit) -> None:
        self._validate(command)

    @workflow.signal(name="submit")
    def submit_signal(self, command: Submit) -> None:
        self._signal(command)

    @workflow.update
    def regenerate(self, command: Regenerate) -> CommandResult:
        return self._update(command)

    @regenerate.validator
    def _regenerate_ok(self, command: Regenerate) -> None:
        self._validate(command)

    @workflow.signal(name="regenerate")
    def regenerate_signal(self, command: Regenerate) -> None:
        self._signal(command)

    @workflow.update
    def review(self, command: Review) -> CommandResult:
        return self._update(command)

    @review.validator
    def _review_ok(self, command: Review) -> None:
        self._validate(command)

    @workflow.signal(name="review")
    def review_signal(self, command: Review) -> None:
        self._signal(command)

    @workflow.update
    def pause(self, command: Pause) -> CommandResult:
        return self._update(command)

    @pause.validator
    def _pause_ok(self, command: Pause) -> None:
        self._validate(command)

    @workflow.signal(name="pause")
    def pause_signal(self, command: Pause) -> None:
        self._signal(command)

    @workflow.update
    def resume(self, command: Resume) -> CommandResult:
        return self._update(command)

    @resume.validator
    def _resume_ok(self, command: Resume) -> None:
        self._validate(command)

    @workflow.signal(name="resume")
    def resume_signal(self, command: Resume) -> None:
        self._signal(command)

    @workflow.update
    def activate(self, command: Activate) -> CommandResult:
        return self._update(command)

    @activate.validator
    def _activate_ok(self, command: Activate) -> None:
        self._validate(command)

    @workflow.signal(name="activate")
    def activate_signal(self, command: Activate) -> None:
        self._signal(command)

    # -- admin

    @workflow.update
    def edit_submission(self, command: EditSubmission) -> CommandResult:
        return self._update(command)

    @edit_submission.validator
    def _edit_submission_ok(self, command: EditSubmission) -> None:
        self._validate(command)

    @workflow.signal(name="edit_submission")
    def edit_submission_signal(self, command: EditSubmission) -> None:
        self._signal(command)

    @workflow.update
    def release_claim(self, command: ReleaseClaim) -> CommandResult:
        return self._update(command)

    @release_claim.validator
    def _release_claim_ok(self, command: ReleaseClaim) -> None:
        self._validate(command)

    @workflow.signal(name="release_claim")
    def release_claim_signal(self, command: ReleaseClaim) -> None:
        self._signal(command)

    @workflow.update
    def escalate(self, command: Escalate) -> CommandResult:
        return self._update(command)

    @escalate.validator
    def _escalate_ok(self, command: Escalate) -> None:
        self._validate(command)

    @workflow.signal(name="escalate")
    def escalate_signal(self, command: Escalate) -> None:
        self._signal(command)

    @workflow.update
    def deescalate(self, command: Deescalate) -> CommandResult:
        return self._update(command)

    @deescalate.validator
    def _deescalate_ok(self, command: Deescalate) -> None:
        self._validate(command)

    @workflow.signal(name="deescalate")
    def deescalate_signal(self, command: Deescalate) -> None:
        self._signal(command)

    @workflow.update
    def resolve_quarantine(self, command: ResolveQuarantine) -> CommandResult:
        return self._update(command)

    @resolve_quarantine.validator
    def _resolve_quarantine_ok(self, command: ResolveQuarantine) -> None:
        self._validate(command)

    @workflow.signal(name="resolve_quarantine")
    def resolve_quarantine_signal(self, command: ResolveQuarantine) -> None:
        self._signal(command)

    @workflow.update
    def tag(self, command: Tag) -> CommandResult:
        return self._update(command)

    @tag.validator
    def _tag_ok(self, command: Tag) -> None:
        self._validate(command)

    @workflow.signal(name="tag")
    def tag_signal(self, command: Tag) -> None:
        self._signal(command)

    @workflow.update
    def untag(self, command: Untag) -> CommandResult:
        return self._update(command)

    @untag.validator
    def _untag_ok(self, command: Untag) -> None:
        self._validate(command)

    @workflow.signal(name="untag")
    def untag_signal(self, command: Untag) -> None:
        self._signal(command)

    @workflow.update
    def retry(self, command: RetryFailed) -> CommandResult:
        return self._update(command)

    @retry.validator
    def _retry_ok(self, command: RetryFailed) -> None:
        self._validate(command)

    @workflow.signal(name="retry")
    def retry_signal(self, command: RetryFailed) -> None:
        self._signal(command)


def _reason(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return str(cause or err)


def _details(state: TaskState) -> str:
    lines = [f"**{state.status}** · pipeline `{state.pipeline_name}` · task `{state.task_key}`"]
    if state.hold_reason:
        lines.append(f"> {state.hold_reason}")
    for node in state.nodes.values():
        holder = f" by {node.claim.holder}" if node.claim else ""
        lines.append(f"- {node.name}: {node.status}{holder}")
    if state.tags:
        lines.append("tags: " + ", ".join(state.tags))
    return "\n".join(lines)
