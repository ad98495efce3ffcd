"""Property tests of the pure task state machine: random command sequences, invariants after
every step.

A Hypothesis state machine drives one task of each pipeline in ``tests/support/pipelines.py``
(and a few review-setting variants) with commands from a small pool of contributors: right and
wrong nodes (unknown ones included), valid and invalid values, live and stale tokens, pause and
resume, admin operations, claim timeouts as time advances and LLM results. After every step it
checks what must always hold, whatever happened before.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.support.pipelines import gate_and_join, label_review, llm_then_edit
from workflows.engine import (
    LLM_ACTOR_PREFIX,
    Context,
    Outcome,
    apply,
    assignees,
    claimable,
    current_nodes,
    expired_claims,
    llm_nodes_ready,
    next_claim_deadline,
    record_rejection,
    start_task,
)
from workflows.graph import FieldSource, FieldSpec, FieldType, NodeKind, Pipeline
from workflows.messages import (
    Activate,
    Claim,
    ClaimTimeout,
    Command,
    CommandResult,
    Deescalate,
    EditSubmission,
    Escalate,
    EventKind,
    LlmFailure,
    LlmResult,
    LlmStarted,
    NodeStatus,
    Pause,
    QuarantineAction,
    Release,
    ReleaseClaim,
    ResolveQuarantine,
    Resume,
    RetryFailed,
    Review,
    SaveDraft,
    Submit,
    Tag,
    TaskState,
    TaskStatus,
    Untag,
    Verdict,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = "fake/model"
ADMIN = "root"

CONTRIBUTORS: dict[str, list[str]] = {
    "ana": ["labeler"],
    "bo": ["labeler", "reviewer"],
    "cy": ["reviewer"],
    "dee": ["lead", "reviewer"],
    "eve": [],
}
PEOPLE = list(CONTRIBUTORS)

SEEDS: dict[str, dict[str, Any]] = {
    "label-review": {"text": "great product"},
    "gate-join": {"ticket": "printer on fire"},
    "llm-edit": {"question": "why is the sky blue?"},
}

PIPELINES: dict[str, Pipeline] = {
    "label_review": label_review(),
    "same_person": label_review(rejection_routing="same_person", max_rereviews=1),
    "pool_exclude_escalate": label_review(
        rejection_routing="pool_exclude",
        max_rereviews=1,
        on_limit="escalate",
        escalation_role="lead",
    ),
    "self_review_scored": label_review(
        prevent_self_review=False,
        max_rereviews=0,
        on_limit="escalate",
        escalation_role="lead",
        fields=[{"name": "score", "type": "rating"}],
    ),
    "gate_and_join": gate_and_join(),
    "llm_then_edit": llm_then_edit(MODEL),
}

TASK_VALUES = {s.value for s in TaskStatus}
NODE_VALUES = {s.value for s in NodeStatus}
FORBIDDEN_WHEN_FINISHED = ("claim", "submit", "review", "save_draft", "release")

JUNK_VALUES: list[dict[str, Any]] = [
    {},
    {"bogus": 1},
    {"label": "spam"},
    {"label": 3},
    {"text": "not yours"},
    {"priority": "whenever"},
    {"left_score": 9},
    {"right_score": 0},
    {"verdict": "maybe"},
    {"answer": ""},
    {"draft_answer": 42},
    {"score": 11},
]
REASONS = [None, "", "   ", "fix the label"]


def field_value(field: FieldSpec) -> st.SearchStrategy[Any]:
    match field.type:
        case FieldType.SELECT:
            return st.sampled_from(field.options or ["x"])
        case FieldType.RATING:
            return st.integers(1, 5)
        case FieldType.BOOLEAN:
            return st.booleans()
        case _:
            return st.sampled_from(["a", "some text", "Rayleigh scattering."])


def valid_values(pipeline: Pipeline, node: str) -> st.SearchStrategy[dict[str, Any]]:
    try:
        spec = pipeline.node(node)
    except KeyError:
        return st.just({})
    editable = [f for f in spec.fields if f.source in (FieldSource.INPUT, FieldSource.LLM)]
    return st.fixed_dictionaries(
        {f.name: field_value(f) for f in editable if f.required},
        optional={f.name: field_value(f) for f in editable if not f.required},
    )


def _progress_rule() -> Any:
    @precondition(lambda self: self.can_progress())
    @rule(data=st.data())
    def progress(self: EngineMachine, data: st.DataObject) -> None:
        self.step_forward(data)

    return progress


class EngineMachine(RuleBasedStateMachine):
    """One task of one pipeline, driven by random commands."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.names = [n.name for n in pipeline.nodes]
        self.reviews = [n for n in pipeline.nodes if n.kind == NodeKind.REVIEW]
        self.now = NOW
        self.counter = 0
        self.handed: list[str] = []
        """Every token a command was given (claims and LLM generations used some of them)."""
        self.emitted = 0
        self.remembered: dict[str, tuple[Command, CommandResult]] = {}
        self.extra_decisions: Counter[str] = Counter()
        """Per review node: decisions taken again on the same submission (escalations)."""
        self._state: TaskState | None = None
        self.previous: dict[str, NodeStatus] = {}

    # ------------------------------------------------------------------ plumbing

    @property
    def state(self) -> TaskState:
        assert self._state is not None
        return self._state

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def context(self) -> Context:
        token = self.fresh("tok")
        self.handed.append(token)
        return Context(now=self.now, token=token)

    def send(self, command: Command, signal: bool = False) -> Outcome:
        before = self.state
        dump = before.model_dump()
        seen = before.responses.get(command.request_id)
        ctx = self.context()
        out = apply(self.pipeline, before, command, ctx)
        result = out.result
        assert result.request_id == command.request_id
        assert result.command == command.type
        assert out.state.seq == before.seq + len(out.events)
        assert [e.seq for e in out.events] == list(range(before.seq + 1, out.state.seq + 1))
        # Every event is of a known kind, stored as its plain string.
        assert all(type(e.kind) is str and e.kind in set(EventKind) for e in out.events)
        if seen is not None:
            # A repeat: the first answer back (or a refusal if the id was another command's).
            assert out.state is before
            assert result == seen or (not result.accepted and seen.command != command.type)
        else:
            assert result.status == out.state.status
        if out.accepted and seen is None:
            assert result.field_errors == {}
            if isinstance(command, Claim):
                assert result.token == ctx.token
        else:
            assert result.message
            assert out.events == []
            assert out.state.model_dump() == dump
        assert before.model_dump() == dump, "apply must not mutate its input state"
        # A repeat (same request_id, same command) gets an equal answer and changes nothing.
        again = apply(self.pipeline, out.state, command, self.context())
        assert again.result == result
        assert again.events == []
        assert again.state.model_dump() == out.state.model_dump()
        if not out.accepted and signal:
            out = record_rejection(self.pipeline, before, out, command, self.context())
            assert [e.kind for e in out.events] == ["rejected"]
            assert out.state.seq == before.seq + 1
            assert out.result == result
        if out.accepted or signal:
            self.remembered[command.request_id] = (command, result)
        self.emitted += len(out.events)
        self._state = out.state
        return out

    def node_of(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from([*self.names, "nope"]), label="node")

    def person_and_token(self, data: st.DataObject, node: str) -> tuple[str, str]:
        """Mostly the live holder and token of ``node``; sometimes anyone and any token."""
        live = self.state.nodes.get(node)
        claim = live.claim if live is not None else None
        people = PEOPLE if claim is None else [claim.holder, claim.holder, *PEOPLE]
        tokens = [*self.handed[-5:], "bogus"]
        if claim is not None:
            tokens = [claim.token, claim.token, claim.token, *tokens]
        who = data.draw(st.sampled_from(people), label="contributor")
        token = data.draw(st.sampled_from(tokens), label="token")
        return who, token

    def values_for(self, data: st.DataObject, node: str) -> dict[str, Any]:
        if data.draw(st.integers(0, 3), label="good values") > 0:
            return data.draw(valid_values(self.pipeline, node), label="values")
        return data.draw(st.sampled_from(JUNK_VALUES), label="junk values")

    def signal(self, data: st.DataObject) -> bool:
        return data.draw(st.booleans(), label="signal")

    # ------------------------------------------------------------------ start

    @initialize(pending=st.booleans(), paused=st.booleans())
    def start(self, pending: bool, paused: bool) -> None:
        out = start_task(
            self.pipeline,
            "task-1",
            SEEDS[self.pipeline.name],
            self.context(),
            start_pending=pending,
            start_paused=paused,
        )
        assert out.accepted
        assert out.state.seq == len(out.events)
        self.emitted = len(out.events)
        self._state = out.state
        self.previous = {n: s.status for n, s in out.state.nodes.items()}

    # ------------------------------------------------------------------ contributors

    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        who = data.draw(st.sampled_from(PEOPLE), label="contributor")
        roles = CONTRIBUTORS[who]
        node = data.draw(st.sampled_from([None, None, *self.names, "nope"]), label="node")
        options = claimable(self.pipeline, self.state, who, roles)
        out = self.send(
            Claim(request_id=self.fresh("r"), contributor=who, roles=roles, node=node),
            self.signal(data),
        )
        if node is None:
            assert out.accepted == bool(options)
            if options:
                assert out.result.node == options[0]
        else:
            assert out.accepted == (node in options)
        if out.accepted:
            assert out.result.node is not None
            claim = self.state.nodes[out.result.node].claim
            assert claim is not None
            assert claim.holder == who
            assert claim.token == out.result.token

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        node = self.node_of(data)
        who, token = self.person_and_token(data, node)
        out = self.send(
            Release(request_id=self.fresh("r"), contributor=who, node=node, token=token),
            self.signal(data),
        )
        if out.accepted:
            assert self.state.nodes[node].claim is None

    @rule(data=st.data())
    def save_draft(self, data: st.DataObject) -> None:
        node = self.node_of(data)
        who, token = self.person_and_token(data, node)
        values = self.values_for(data, node)
        before = self.state.nodes[node].draft if node in self.state.nodes else {}
        out = self.send(
            SaveDraft(
                request_id=self.fresh("r"), contributor=who, node=node, token=token, values=values
            ),
            self.signal(data),
        )
        if out.accepted:
            draft = self.state.nodes[node].draft
            assert set(draft) == set(before) | set(values)

    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        node = self.node_of(data)
        who, token = self.person_and_token(data, node)
        values = self.values_for(data, node)
        attempts = self.state.nodes[node].attempts if node in self.state.nodes else 0
        out = self.send(
            Submit(
                request_id=self.fresh("r"), contributor=who, node=node, token=token, values=values
            ),
            self.signal(data),
        )
        if out.accepted:
            submitted = self.state.nodes[node]
            assert submitted.attempts == attempts + 1
            assert submitted.submitted_by == who
            assert submitted.claim is None
            assert submitted.status in (NodeStatus.SUBMITTED, NodeStatus.FINISHED)

    @rule(data=st.data())
    def review(self, data: st.DataObject) -> None:
        node = self.node_of(data)
        who, token = self.person_and_token(data, node)
        verdict = data.draw(st.sampled_from(Verdict), label="verdict")
        reason = data.draw(st.sampled_from(REASONS), label="reason")
        values = self.values_for(data, node)
        self.decide(node, who, token, verdict, reason, values, self.signal(data))

    # -- progress: valid moves, so that runs reach rework, limits, joins and the end

    def can_claim(self) -> bool:
        return any(claimable(self.pipeline, self.state, p, r) for p, r in CONTRIBUTORS.items())

    def held(self) -> list[str]:
        return [
            n.name
            for n in self.state.nodes.values()
            if n.claim is not None and not n.claim.holder.startswith(LLM_ACTOR_PREFIX)
        ]

    def llm_busy(self) -> bool:
        return bool(llm_nodes_ready(self.pipeline, self.state) or self.running())

    def running(self) -> list[str]:
        return [
            n.name
            for n in self.state.nodes.values()
            if n.claim is not None and n.claim.holder.startswith(LLM_ACTOR_PREFIX)
        ]

    def can_progress(self) -> bool:
        return self._state is not None and self.state.status != TaskStatus.FINISHED

    def step_forward(self, data: st.DataObject) -> None:
        """One natural next move: unhold a held task, run the LLM, finish or take a claim."""
        if not self.can_progress():
            return
        moves: list[str] = []
        if self.state.status != TaskStatus.IN_PROGRESS:
            moves.append("unhold")
        if self.llm_busy():
            moves.append("llm")
        if self.held():
            moves.append("finish")
        if self.can_claim():
            moves.append("claim")
        if not moves:
            return
        move = data.draw(st.sampled_from(moves), label="move")
        if move == "unhold":
            self.unhold(data)
        elif move == "llm":
            self.run_llm(data)
        elif move == "finish":
            self.finish_a_claim(data)
        else:
            self.claim_something(data)

    # Several names for the same move: Hypothesis enables a random subset of rules per run
    # (swarm testing), and progress must stay likely for runs to reach the deep states.
    progress_1 = _progress_rule()
    progress_2 = _progress_rule()
    progress_3 = _progress_rule()
    progress_4 = _progress_rule()
    progress_5 = _progress_rule()
    progress_6 = _progress_rule()
    progress_7 = _progress_rule()
    progress_8 = _progress_rule()
    progress_9 = _progress_rule()
    progress_10 = _progress_rule()

    def claim_something(self, data: st.DataObject) -> None:
        """Someone who may claim something claims it."""
        people = [p for p, r in CONTRIBUTORS.items() if claimable(self.pipeline, self.state, p, r)]
        who = data.draw(st.sampled_from(people), label="contributor")
        options = claimable(self.pipeline, self.state, who, CONTRIBUTORS[who])
        node = data.draw(st.sampled_from([None, *options]), label="node")
        out = self.send(
            Claim(request_id=self.fresh("r"), contributor=who, roles=CONTRIBUTORS[who], node=node)
        )
        assert out.accepted
        assert out.result.node == (node or options[0])

    def run_llm(self, data: st.DataObject) -> None:
        """The workflow's part: start ready LLM nodes, deliver (mostly valid) results."""
        ready = llm_nodes_ready(self.pipeline, self.state)
        if ready:
            out = self.send(LlmStarted(request_id=self.fresh("r"), node=ready[0]))
            assert out.accepted
            return
        node = self.running()[0]
        if data.draw(st.integers(0, 5), label="fails") == 0:
            self.send(LlmFailure(request_id=self.fresh("r"), node=node, reason="boom"))
        else:
            values = data.draw(valid_values(self.pipeline, node), label="values")
            out = self.send(
                LlmResult(request_id=self.fresh("r"), node=node, values=values, model=MODEL)
            )
            assert out.accepted == (self.state.status != TaskStatus.PAUSED)

    def unhold(self, data: st.DataObject) -> None:
        """An admin (or the pipeline) lets a held task go on."""
        status = self.state.status
        if status == TaskStatus.PAUSED:
            self.send(Resume(request_id=self.fresh("r")))
        elif status == TaskStatus.PENDING:
            self.send(Activate(request_id=self.fresh("r")))
        elif status == TaskStatus.ESCALATED:
            if self.can_claim() and data.draw(st.booleans(), label="escalation review"):
                self.claim_something(data)
            else:
                self.do_deescalate(False)
        elif status == TaskStatus.QUARANTINED:
            action = data.draw(st.sampled_from(QuarantineAction), label="action")
            self.send(ResolveQuarantine(request_id=self.fresh("r"), admin=ADMIN, action=action))
        elif status == TaskStatus.FAILED:
            self.send(RetryFailed(request_id=self.fresh("r"), admin=ADMIN))

    def finish_a_claim(self, data: st.DataObject) -> None:
        """The holder of a claimed node submits or reviews it, validly."""
        held = self.held()
        if not held:
            return
        node = data.draw(st.sampled_from(held), label="node")
        claim = self.state.nodes[node].claim
        assert claim is not None
        values = data.draw(valid_values(self.pipeline, node), label="values")
        if self.pipeline.node(node).kind == NodeKind.REVIEW:
            # Mostly fail: rework loops and re-review limits are where the rules are.
            verdict = data.draw(st.sampled_from([Verdict.FAIL, Verdict.FAIL, Verdict.PASS]))
            self.decide(node, claim.holder, claim.token, verdict, "fix it", values, False)
        else:
            self.send(
                Submit(
                    request_id=self.fresh("r"),
                    contributor=claim.holder,
                    node=node,
                    token=claim.token,
                    values=values,
                )
            )

    def decide(
        self,
        node: str,
        who: str,
        token: str,
        verdict: Verdict,
        reason: str | None,
        values: dict[str, Any],
        signal: bool,
    ) -> None:
        live = self.state.nodes.get(node)
        claim = live.claim if live is not None else None
        escalated = claim is not None and claim.returns_to == NodeStatus.ESCALATED
        out = self.send(
            Review(
                request_id=self.fresh("r"),
                contributor=who,
                node=node,
                token=token,
                verdict=verdict,
                reason=reason,
                values=values,
            ),
            signal,
        )
        if out.accepted:
            assert verdict == Verdict.PASS or (reason or "").strip()
            if escalated:
                self.extra_decisions[node] += 1

    # ------------------------------------------------------------------ pipeline operations

    @rule(data=st.data())
    def pause(self, data: st.DataObject) -> None:
        status = self.state.status
        out = self.send(Pause(request_id=self.fresh("r"), by=ADMIN), self.signal(data))
        assert out.accepted == (status != TaskStatus.FINISHED)
        if out.accepted:
            assert self.state.status == TaskStatus.PAUSED
            if status != TaskStatus.PAUSED:
                assert self.state.status_before_pause == status

    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        status, back = self.state.status, self.state.status_before_pause
        frozen = {
            n.name: n.claim.remaining_seconds
            for n in self.state.nodes.values()
            if n.claim is not None and n.claim.remaining_seconds is not None
        }
        out = self.send(Resume(request_id=self.fresh("r"), by=ADMIN), self.signal(data))
        assert out.accepted
        if status == TaskStatus.PAUSED:
            assert self.state.status == back
            for name, remaining in frozen.items():
                claim = self.state.nodes[name].claim
                assert claim is not None
                assert remaining is not None
                assert claim.expires_at == self.now + timedelta(seconds=remaining)
        else:
            assert out.events == []

    @rule(data=st.data())
    def activate(self, data: st.DataObject) -> None:
        status = self.state.status
        out = self.send(Activate(request_id=self.fresh("r"), by=ADMIN), self.signal(data))
        if status == TaskStatus.PENDING:
            assert out.accepted
            assert self.state.status != TaskStatus.PENDING

    @rule(data=st.data())
    def advance_time(self, data: st.DataObject) -> None:
        seconds = data.draw(st.sampled_from([1, 60, 600, 1799, 1800, 3600, 86400]), label="wait")
        self.now += timedelta(seconds=seconds)

    @rule(data=st.data())
    def claim_timeout(self, data: st.DataObject) -> None:
        expired = expired_claims(self.state, self.now)
        pick_expired = data.draw(st.booleans(), label="an expired claim")
        if expired and pick_expired:
            node, token = data.draw(st.sampled_from(expired), label="expired")
        else:
            node = self.node_of(data)
            _, token = self.person_and_token(data, node)
        finished = self.state.status == TaskStatus.FINISHED
        out = self.send(ClaimTimeout(request_id=self.fresh("r"), node=node, token=token))
        assert out.accepted == ((node, token) in expired and not finished)
        if out.accepted:
            assert self.state.nodes[node].claim is None

    # ------------------------------------------------------------------ LLM

    @rule(data=st.data())
    def llm_started(self, data: st.DataObject) -> None:
        ready = llm_nodes_ready(self.pipeline, self.state)
        node = data.draw(st.sampled_from([*ready, *ready, *self.names, "nope"]), label="node")
        out = self.send(LlmStarted(request_id=self.fresh("r"), node=node))
        assert out.accepted == (node in ready)

    @rule(data=st.data())
    def llm_result(self, data: st.DataObject) -> None:
        running = [
            n.name
            for n in self.state.nodes.values()
            if n.claim is not None and n.claim.holder.startswith(LLM_ACTOR_PREFIX)
        ]
        node = data.draw(st.sampled_from([*running, *running, *self.names, "nope"]), label="node")
        values = self.values_for(data, node)
        out = self.send(LlmResult(request_id=self.fresh("r"), node=node, values=values))
        if out.accepted:
            assert node in running
            assert self.state.nodes[node].values == values

    @rule(data=st.data())
    def llm_failure(self, data: st.DataObject) -> None:
        running = [
            n.name
            for n in self.state.nodes.values()
            if n.claim is not None and n.claim.holder.startswith(LLM_ACTOR_PREFIX)
        ]
        node = data.draw(st.sampled_from([*running, *self.names, "nope"]), label="node")
        status = self.state.status
        out = self.send(LlmFailure(request_id=self.fresh("r"), node=node, reason="boom"))
        assert out.accepted == (node in running and status != TaskStatus.FINISHED)
        if out.accepted:
            assert self.state.nodes[node].error == "boom"
            if status == TaskStatus.PAUSED:
                assert self.state.status_before_pause == TaskStatus.FAILED
            else:
                assert self.state.status == TaskStatus.FAILED

    # ------------------------------------------------------------------ admin

    @rule(data=st.data())
    def edit_submission(self, data: st.DataObject) -> None:
        node = self.node_of(data)
        values = self.values_for(data, node)
        self.send(
            EditSubmission(request_id=self.fresh("r"), admin=ADMIN, node=node, values=values),
            self.signal(data),
        )

    @rule(data=st.data())
    def release_claim(self, data: st.DataObject) -> None:
        node = self.node_of(data)
        out = self.send(
            ReleaseClaim(request_id=self.fresh("r"), admin=ADMIN, node=node), self.signal(data)
        )
        if out.accepted:
            assert self.state.nodes[node].claim is None

    @rule(data=st.data())
    def escalate(self, data: st.DataObject) -> None:
        status = self.state.status
        out = self.send(
            Escalate(request_id=self.fresh("r"), admin=ADMIN, reason="look at this"),
            self.signal(data),
        )
        assert out.accepted == (status == TaskStatus.IN_PROGRESS)

    @rule(data=st.data())
    def deescalate(self, data: st.DataObject) -> None:
        self.do_deescalate(self.signal(data))

    def do_deescalate(self, signal: bool) -> None:
        status = self.state.status
        reset = [
            r.name
            for r in self.reviews
            if self.state.nodes[r.name].status == NodeStatus.ESCALATED
            or (
                (claim := self.state.nodes[r.name].claim) is not None
                and claim.returns_to == NodeStatus.ESCALATED
            )
        ]
        out = self.send(Deescalate(request_id=self.fresh("r"), admin=ADMIN), signal)
        assert out.accepted == (status == TaskStatus.ESCALATED)
        if out.accepted:
            assert self.state.status != TaskStatus.ESCALATED
            for name in reset:
                self.extra_decisions[name] += 1
                assert self.state.nodes[name].status == NodeStatus.AVAILABLE

    @rule(data=st.data())
    def resolve_quarantine(self, data: st.DataObject) -> None:
        action = data.draw(st.sampled_from(QuarantineAction), label="action")
        status = self.state.status
        out = self.send(
            ResolveQuarantine(request_id=self.fresh("r"), admin=ADMIN, action=action),
            self.signal(data),
        )
        assert out.accepted == (status == TaskStatus.QUARANTINED)
        if out.accepted and action == QuarantineAction.FAIL:
            assert self.state.status == TaskStatus.FAILED
            assert self.state.status_before_hold == TaskStatus.QUARANTINED

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        status, back = self.state.status, self.state.status_before_hold
        out = self.send(RetryFailed(request_id=self.fresh("r"), admin=ADMIN), self.signal(data))
        assert out.accepted == (status == TaskStatus.FAILED)
        if out.accepted:
            assert self.state.status == (back or TaskStatus.IN_PROGRESS)
            assert all(n.error is None for n in self.state.nodes.values())

    @rule(data=st.data())
    def tag(self, data: st.DataObject) -> None:
        tags = data.draw(st.lists(st.sampled_from(["a", " b", "c ", "  "]), min_size=1))
        out = self.send(Tag(request_id=self.fresh("r"), by=ADMIN, tags=tags), self.signal(data))
        assert out.accepted
        assert {t.strip() for t in tags if t.strip()} <= set(self.state.tags)
        assert len(self.state.tags) == len(set(self.state.tags))

    @rule(data=st.data())
    def untag(self, data: st.DataObject) -> None:
        tags = data.draw(st.lists(st.sampled_from(["a", "b", " c", "d"]), min_size=1))
        present = set(self.state.tags)
        out = self.send(Untag(request_id=self.fresh("r"), by=ADMIN, tags=tags), self.signal(data))
        assert out.accepted == bool({t.strip() for t in tags} & present)
        assert not {t.strip() for t in tags} & set(self.state.tags)

    # ------------------------------------------------------------------ request ids

    @rule(data=st.data())
    def repeat_a_request(self, data: st.DataObject) -> None:
        """An earlier request_id, sent again: the first answer, and nothing changes."""
        if not self.remembered:
            return
        request_id = data.draw(st.sampled_from(sorted(self.remembered)), label="request_id")
        command, result = self.remembered[request_id]
        out = self.send(command)
        assert out.result == result
        assert out.events == []

    @rule(data=st.data())
    def reuse_a_request_id(self, data: st.DataObject) -> None:
        """An earlier request_id for another kind of command is refused."""
        if not self.remembered:
            return
        request_id = data.draw(st.sampled_from(sorted(self.remembered)), label="request_id")
        command, _ = self.remembered[request_id]
        other: Command = (
            Untag(request_id=request_id, by=ADMIN, tags=["a"])
            if command.type == "tag"
            else Tag(request_id=request_id, by=ADMIN, tags=["a"])
        )
        out = self.send(other)
        assert not out.accepted
        assert f"already used for a '{command.type}' command" in out.result.message

    # ------------------------------------------------------------------ invariants

    @invariant()
    def only_the_vocabulary(self) -> None:
        if self._state is None:
            return
        dump = self.state.model_dump(mode="json")
        assert dump["status"] in TASK_VALUES
        assert dump["status_before_pause"] in {*TASK_VALUES, None}
        assert dump["status_before_hold"] in {*TASK_VALUES, None}
        assert set(dump["nodes"]) == set(self.names)
        for name, node in dump["nodes"].items():
            assert node["name"] == name
            assert node["status"] in NODE_VALUES
            if node["claim"] is not None:
                assert node["claim"]["returns_to"] in NODE_VALUES

    @invariant()
    def claims_match_claimed_nodes(self) -> None:
        if self._state is None:
            return
        state = self.state
        tokens = []
        for name, node in state.nodes.items():
            spec = self.pipeline.node(name)
            assert (node.status == NodeStatus.CLAIMED) == (node.claim is not None), name
            if node.claim is None:
                continue
            claim = node.claim
            tokens.append(claim.token)
            assert claim.holder
            assert claim.returns_to in (NodeStatus.AVAILABLE, NodeStatus.ESCALATED)
            if claim.holder.startswith(LLM_ACTOR_PREFIX):
                assert spec.is_llm_node
                assert claim.expires_at is None
                assert claim.remaining_seconds is None
            else:
                assert spec.is_human
                assert claim.holder in CONTRIBUTORS
                if state.status == TaskStatus.PAUSED:
                    assert claim.expires_at is None
                    assert claim.remaining_seconds is not None
                else:
                    assert claim.expires_at is not None
                    assert claim.remaining_seconds is None
        assert len(tokens) == len(set(tokens)), "a token is handed out once"
        assert set(assignees(state.nodes.values())) <= set(CONTRIBUTORS)
        if state.status == TaskStatus.PAUSED:
            assert next_claim_deadline(state) is None
        for name, token in expired_claims(state, self.now):
            expired = state.nodes[name].claim
            assert expired is not None
            assert expired.token == token

    @invariant()
    def task_status_bookkeeping(self) -> None:
        if self._state is None:
            return
        state = self.state
        assert (state.status == TaskStatus.PAUSED) == (state.status_before_pause is not None)
        assert state.status_before_pause != TaskStatus.PAUSED
        assert state.status_before_hold != state.status
        end = state.nodes[self.pipeline.end().name]
        finished = state.status == TaskStatus.FINISHED
        assert finished == (end.status == NodeStatus.FINISHED)
        assert finished == (state.finished_at is not None)
        if finished:
            for node in state.nodes.values():
                assert node.status in (NodeStatus.FINISHED, NodeStatus.NA)
        if state.status == TaskStatus.PENDING:
            assert all(n.status == NodeStatus.PENDING for n in state.nodes.values())
        ready = llm_nodes_ready(self.pipeline, state)
        assert not ready or state.status == TaskStatus.IN_PROGRESS
        for name in ready:
            assert state.nodes[name].status == NodeStatus.AVAILABLE
        for name in current_nodes(state.nodes.values()):
            assert state.nodes[name].status in (
                NodeStatus.AVAILABLE,
                NodeStatus.CLAIMED,
                NodeStatus.ESCALATED,
            )
        for who, roles in CONTRIBUTORS.items():
            for name in claimable(self.pipeline, state, who, roles):
                assert state.nodes[name].status in (NodeStatus.AVAILABLE, NodeStatus.ESCALATED)

    @invariant()
    def seq_counts_every_event(self) -> None:
        if self._state is None:
            return
        state = self.state
        assert state.seq == self.emitted
        seqs = [e.seq for e in state.timeline]
        assert seqs == list(range(state.seq - len(seqs) + 1, state.seq + 1))
        for request_id, (_, result) in self.remembered.items():
            assert state.responses[request_id] == result

    @invariant()
    def review_counters(self) -> None:
        if self._state is None:
            return
        for review in self.reviews:
            node = self.state.nodes[review.name]
            subtask = self.state.nodes[self.pipeline.reviewed_node(review)]
            decisions = node.passes + node.total_failures
            assert decisions <= subtask.attempts + self.extra_decisions[review.name]
            assert 0 <= node.failures <= node.total_failures
            assert node.failures <= review.max_rereviews + 1
            at_limit = node.failures == review.max_rereviews + 1
            if node.status in (NodeStatus.QUARANTINED, NodeStatus.ESCALATED):
                assert at_limit
            elif at_limit:
                # Being decided by an escalation reviewer, or passed by one.
                assert node.status in (NodeStatus.CLAIMED, NodeStatus.FINISHED)

    @invariant()
    def node_statuses_only_move_forward(self) -> None:
        if self._state is None:
            return
        now = {n: s.status for n, s in self.state.nodes.items()}
        for name, before in self.previous.items():
            after = now[name]
            if before == NodeStatus.NA:
                assert after == NodeStatus.NA, name
            elif before == NodeStatus.FINISHED:
                assert after == NodeStatus.FINISHED, name
            elif before == NodeStatus.SUBMITTED:
                # Reviewed (Finished), or sent back for rework (Available).
                assert after in (NodeStatus.SUBMITTED, NodeStatus.FINISHED, NodeStatus.AVAILABLE)
        self.previous = now

    @invariant()
    def a_finished_task_takes_no_more_work(self) -> None:
        if self._state is None or self.state.status != TaskStatus.FINISHED:
            return
        state = self.state
        for node in [*self.names, "nope"]:
            commands: list[Command] = [
                Claim(request_id="late-1", contributor="bo", roles=["labeler", "reviewer"]),
                Claim(request_id="late-2", contributor="dee", roles=["lead"], node=node),
                Submit(request_id="late-3", contributor="ana", node=node, token="x", values={}),
                Review(
                    request_id="late-4",
                    contributor="cy",
                    node=node,
                    token="x",
                    verdict=Verdict.PASS,
                ),
                SaveDraft(request_id="late-5", contributor="ana", node=node, token="x", values={}),
                Release(request_id="late-6", contributor="ana", node=node, token="x"),
            ]
            for command in commands:
                assert command.type in FORBIDDEN_WHEN_FINISHED
                out = apply(self.pipeline, state, command, Context(now=self.now, token="late"))
                assert not out.accepted
                assert out.state is state
                assert out.events == []

    def check_everything(self) -> None:
        self.only_the_vocabulary()
        self.claims_match_claimed_nodes()
        self.task_status_bookkeeping()
        self.seq_counts_every_event()
        self.review_counters()
        self.node_statuses_only_move_forward()
        self.a_finished_task_takes_no_more_work()


SETTINGS = settings(
    max_examples=15,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("name", list(PIPELINES))
def test_engine_invariants_hold_for_random_command_sequences(name: str) -> None:
    pipeline = PIPELINES[name]

    class Machine(EngineMachine):
        def __init__(self) -> None:
            super().__init__(pipeline)

    run_state_machine_as_test(Machine, settings=SETTINGS)


# Long walks: the same rules and invariants, with the next rule picked by weight instead of by
# the state machine (which enables a random subset of rules per run). Valid progress dominates,
# so every walk gets deep: rework rounds, re-review limits, escalation, joins, LLM retries.
WALK_WEIGHTS: dict[str, int] = {
    "step_forward": 16,
    "claim": 2,
    "release": 1,
    "save_draft": 1,
    "submit": 1,
    "review": 1,
    "pause": 1,
    "resume": 1,
    "activate": 1,
    "advance_time": 2,
    "claim_timeout": 2,
    "llm_started": 1,
    "llm_result": 1,
    "llm_failure": 1,
    "edit_submission": 1,
    "release_claim": 1,
    "escalate": 1,
    "deescalate": 1,
    "resolve_quarantine": 1,
    "retry": 1,
    "tag": 1,
    "untag": 1,
    "repeat_a_request": 1,
    "reuse_a_request_id": 1,
}
WALK_STEPS = 120


@pytest.mark.parametrize("name", list(PIPELINES))
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_engine_invariants_hold_on_long_weighted_walks(name: str, data: st.DataObject) -> None:
    machine = EngineMachine(PIPELINES[name])
    machine.start(
        pending=data.draw(st.booleans(), label="pending"),
        paused=data.draw(st.booleans(), label="paused"),
    )
    machine.check_everything()
    walk = data.draw(st.randoms(use_true_random=False), label="walk")
    rules, weights = list(WALK_WEIGHTS), list(WALK_WEIGHTS.values())
    for _ in range(WALK_STEPS):
        getattr(machine, walk.choices(rules, weights)[0])(data)
        machine.check_everything()
