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
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # The engine's regex evaluators run on RE2, a native module: imported once, outside.
    import re2  # noqa: F401

    # ``import a.b as b`` passes the module through; ``from a import b`` would re-import the
    # engine inside the sandbox on every workflow run.
    import workflows.engine as engine
    from workflows.graph import ChainTrigger, FieldSpec, LlmSpec, Pipeline
    from workflows.markdown import md
    from workflows.messages import (
        TASK_COMMANDS,
        Claim,
        ClaimGrant,
        ClaimReservation,
        ClaimTimeout,
        Command,
        CommandResult,
        EvaluationKind,
        EvaluationRecord,
        JudgeRequest,
        JudgeResult,
        LlmDraft,
        LlmFailure,
        LlmRequest,
        LlmResponse,
        LlmResult,
        LlmStarted,
        ProjectionBatch,
        TaskInput,
        TaskState,
        TaskStatus,
        TaskView,
        TimelineEvent,
    )
    from workflows.options import (
        CHAIN_RETRY,
        CHAIN_START_TO_CLOSE,
        DROP_RESERVATION_ACTIVITY,
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
        RESERVATION_RETRY,
        RESERVATION_START_TO_CLOSE,
        RESERVE_CLAIM_ACTIVITY,
        SA_ASSIGNEES,
        SA_NODES,
        SA_STATUS,
        SA_TAGS,
    )
    from workflows.payloads import Undecodable, decode_command
    from workflows.pipeline_messages import (
        ChainsFired,
        FireTaskChains,
    )

TASK_CHAINS_PATCH = "task-completion-chains"
"""``workflow.patched`` id of firing ``on_task_completion`` chains as a task finishes."""

CLAIM_LIMIT_PATCH = "claim-limit-in-claim"
"""``workflow.patched`` id of reserving a claim within the pipeline's claim limit in the claim."""

RAW_PAYLOADS_PATCH = "raw-command-payloads"
"""``workflow.patched`` id of recording signals whose payload is not their command as rejected."""

REJECTED = "CommandRejected"

_COMMANDS_HELP = "Task commands, each as an update and a signal: " + ", ".join(TASK_COMMANDS)
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
                    engine.Context(now=input.created_at or workflow.now()),
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
                        people=engine.consensus_people(self._pipeline, self._state.nodes),
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

    def _validate(self, name: str, args: Sequence[RawValue]) -> None:
        command = self._decode_for_update(name, args)
        # No token and no uuid4() here: validators do not run on replay, so they must not
        # consume workflow randomness.
        outcome = engine.apply(
            self._pipeline, self._state, command, engine.Context(now=workflow.now())
        )
        if not outcome.accepted:
            raise _rejected(outcome.result)

    async def _update(self, name: str, args: Sequence[RawValue]) -> CommandResult:
        command = self._decode_for_update(name, args)
        reservation = None
        if isinstance(command, Claim):
            reservation, refusal = await self._reserve(command)
            if refusal is not None:
                raise _rejected(refusal)
        outcome = engine.apply(self._pipeline, self._state, command, self._context())
        if not outcome.accepted:
            # State moved between validation and handling (e.g. two claims in one batch).
            await self._drop(reservation)
            raise _rejected(outcome.result)
        self._commit(outcome)
        return outcome.result

    @staticmethod
    def _decode_for_update(name: str, args: Sequence[RawValue]) -> Command:
        try:
            return cast(Command, decode_command(name, args, TASK_COMMANDS))
        except Undecodable as bad:
            raise _rejected(bad.result) from None

    async def _signal(self, name: str, args: Sequence[RawValue]) -> None:
        context = self._context()
        try:
            command = cast(Command, decode_command(name, args, TASK_COMMANDS))
        except Undecodable as bad:
            # Before this patch such a signal was dropped by the SDK (or wedged the task);
            # histories from then replay as they ran.
            if workflow.patched(RAW_PAYLOADS_PATCH):
                self._commit(
                    engine.record_undecodable(
                        self._pipeline, self._state, bad.result, context, actor=bad.actor
                    )
                )
            workflow.logger.info("signal %s refused: %s", name, bad.result.message)
            return
        reservation = None
        if isinstance(command, Claim):
            reservation, refusal = await self._reserve(command)
            if refusal is not None:
                self._commit(
                    engine.record_rejection(
                        self._pipeline,
                        self._state,
                        engine.Outcome(self._state, refusal),
                        command,
                        context,
                    )
                )
                return
        outcome = engine.apply(self._pipeline, self._state, command, context)
        if not outcome.accepted:
            await self._drop(reservation)
            outcome = engine.record_rejection(
                self._pipeline, self._state, outcome, command, context
            )
            workflow.logger.info("signal %s rejected: %s", command.type, outcome.result.message)
        self._commit(outcome)

    async def _reserve(
        self, command: Claim
    ) -> tuple[ClaimReservation | None, CommandResult | None]:
        """Keep the pipeline's claim limit inside the claim: reserve it in the store.

        Returns the reservation made (None when no limit applies or the engine will refuse or
        repeat the claim anyway), or the refusal when the contributor is at the limit or the
        limit cannot be checked.
        """
        limit = engine.claim_limit(self._pipeline, command.roles)
        if limit is None or command.request_id in self._state.responses:
            return None, None
        # Tasks that claimed before the limit lived here replay without the reservation.
        if not workflow.patched(CLAIM_LIMIT_PATCH):
            return None, None
        dry = engine.apply(self._pipeline, self._state, command, engine.Context(now=workflow.now()))
        if not dry.accepted or dry.result.node is None:
            return None, None
        request = ClaimReservation(
            contributor=command.contributor,
            roles=command.roles,
            pipeline=self._pipeline.name,
            workflow_id=workflow.info().workflow_id,
            node=dry.result.node,
            seq=self._state.seq,
            limit=limit,
        )
        try:
            grant = await workflow.execute_local_activity(
                RESERVE_CLAIM_ACTIVITY,
                request,
                result_type=ClaimGrant,
                start_to_close_timeout=RESERVATION_START_TO_CLOSE,
                retry_policy=RESERVATION_RETRY,
                summary=f"claim limit of {command.contributor}"[:200],
            )
        except ActivityError as err:
            return None, self._refusal(
                command,
                request.node,
                f"the claim limit of pipeline '{self._pipeline.name}' could not be checked "
                f"({_reason(err)}); try again",
                "unavailable",
            )
        if not grant.granted:
            return None, self._refusal(
                command,
                request.node,
                f"{command.contributor} holds {grant.held} of the {limit} claims allowed in "
                f"pipeline '{self._pipeline.name}'; submit or release one first",
                "claim_limit",
            )
        return request, None

    def _refusal(self, command: Claim, node: str, message: str, code: str) -> CommandResult:
        return CommandResult(
            request_id=command.request_id,
            command=command.type,
            accepted=False,
            message=message,
            node=node,
            status=self._state.status,
            actor=command.contributor,
            code=code,
        )

    async def _drop(self, reservation: ClaimReservation | None) -> None:
        """Drop a reservation whose claim was refused after all (best effort: a reservation
        left behind stops counting once the store moves past it, or after a minute)."""
        if reservation is None:
            return
        claims = self._state.nodes[reservation.node].claims()
        if any(claim.holder == reservation.contributor for claim in claims):
            return  # another claim of theirs on this node won: the reservation counts it
        with contextlib.suppress(ActivityError):
            await workflow.execute_local_activity(
                DROP_RESERVATION_ACTIVITY,
                reservation,
                start_to_close_timeout=RESERVATION_START_TO_CLOSE,
                retry_policy=RESERVATION_RETRY,
            )

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

    # ------------------------------------------------------------------ commands
    # Each command of TASK_COMMANDS is an update (with a validator) and a signal of the same
    # name. One dynamic handler of each kind takes them all as raw payloads and decodes them
    # itself (workflows.payloads), so that no payload — of any encoding, shape or count, under
    # any name — can reach the workflow task as an exception.

    @workflow.update(dynamic=True, description=_COMMANDS_HELP)
    async def command(self, name: str, args: Sequence[RawValue]) -> CommandResult:
        return await self._update(name, args)

    @command.validator
    def _command_ok(self, name: str, args: Sequence[RawValue]) -> None:
        self._validate(name, args)

    @workflow.signal(dynamic=True, description=_COMMANDS_HELP)
    async def command_signal(self, name: str, args: Sequence[RawValue]) -> None:
        await self._signal(name, args)


def _rejected(result: CommandResult) -> ApplicationError:
    return ApplicationError(
        result.message, result.model_dump(mode="json"), type=REJECTED, non_retryable=True
    )


def _reason(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return str(cause or err)


def _details(state: TaskState) -> str:
    lines = [f"**{state.status}** · pipeline {md(state.pipeline_name)} · task {md(state.task_key)}"]
    if state.hold_reason:
        lines.append(f"> {md(state.hold_reason)}")
    for node in state.nodes.values():
        holders = ", ".join(md(c.holder) for c in node.claims())
        holder = f" by {holders}" if holders else ""
        lines.append(f"- {md(node.name)}: {node.status}{holder}")
    if state.tags:
        lines.append("tags: " + ", ".join(md(t) for t in state.tags))
    return "\n".join(lines)
