"""Unit tests of the pure task state machine (``workflows/engine/``): no Temporal, no I/O.

One test per accepted transition and per rejection of every command handler, using the small
pipelines of ``tests/support/pipelines.py`` (and a few built here for the odd corner).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.pipelines import gate_and_join, label_review, llm_then_edit
from workflows.engine import (
    Context,
    Outcome,
    Rejected,
    apply,
    assignees,
    check_seed_data,
    claimable,
    current_nodes,
    expired_claims,
    llm_nodes_ready,
    next_claim_deadline,
    record_rejection,
    start_task,
    task_data,
)
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    Activate,
    Claim,
    ClaimTimeout,
    Command,
    Deescalate,
    EditSubmission,
    Escalate,
    LlmFailure,
    LlmResult,
    LlmStarted,
    NodeState,
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
    TaskStatus,
    Untag,
    Verdict,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CTX = Context(now=NOW, token="t1")
MODEL = "fake/model"

LABELER = ["labeler"]
REVIEWER = ["reviewer"]
BOTH = ["labeler", "reviewer"]

SEEDS: dict[str, dict[str, Any]] = {
    "label-review": {"text": "great product"},
    "gate-join": {"ticket": "printer on fire"},
    "llm-edit": {"question": "why is the sky blue?"},
}

NS = NodeStatus
TS = TaskStatus


# --------------------------------------------------------------------------- helpers


class Task:
    """One task driven through the engine. Each command gets a fresh request id; every
    rejection is checked to leave the state exactly as it was, and every outcome to advance
    ``seq`` by exactly the number of events it emitted."""

    def __init__(
        self, pipeline: Pipeline, data: dict[str, Any] | None = None, **start: bool
    ) -> None:
        self.pipeline = pipeline
        self.now = NOW
        self.counter = 0
        seed = SEEDS.get(pipeline.name, {}) if data is None else data
        self.created = start_task(pipeline, "task-1", seed, CTX, **start)
        assert self.created.state.seq == len(self.created.events)
        self.state = self.created.state

    def rid(self) -> str:
        self.counter += 1
        return f"r{self.counter}"

    def send(self, command: Command, token: str = "t1") -> Outcome:
        before = self.state.model_dump()
        out = apply(self.pipeline, self.state, command, Context(now=self.now, token=token))
        assert out.state.seq == self.state.seq + len(out.events)
        assert [e.seq for e in out.events] == list(range(self.state.seq + 1, out.state.seq + 1))
        assert out.result.request_id == command.request_id
        assert out.result.command == command.type
        assert out.result.status == out.state.status
        if out.accepted:
            self.state = out.state
        else:
            assert out.events == []
            assert out.state.model_dump() == before
            assert self.state.model_dump() == before
        return out

    # -- command shorthands

    def claim(
        self, who: str, roles: list[str], node: str | None = None, token: str = "t1"
    ) -> Outcome:
        return self.send(
            Claim(request_id=self.rid(), contributor=who, roles=roles, node=node), token
        )

    def release(self, who: str, node: str, token: str = "t1") -> Outcome:
        return self.send(Release(request_id=self.rid(), contributor=who, node=node, token=token))

    def save(self, who: str, node: str, values: dict[str, Any], token: str = "t1") -> Outcome:
        return self.send(
            SaveDraft(request_id=self.rid(), contributor=who, node=node, token=token, values=values)
        )

    def submit(self, who: str, node: str, values: dict[str, Any], token: str = "t1") -> Outcome:
        return self.send(
            Submit(request_id=self.rid(), contributor=who, node=node, token=token, values=values)
        )

    def review(
        self,
        who: str,
        verdict: Verdict,
        reason: str | None = None,
        node: str = "check",
        token: str = "t1",
        values: dict[str, Any] | None = None,
    ) -> Outcome:
        return self.send(
            Review(
                request_id=self.rid(),
                contributor=who,
                node=node,
                token=token,
                verdict=verdict,
                reason=reason,
                values=values or {},
            )
        )

    def pause(self, reason: str | None = None) -> Outcome:
        return self.send(Pause(request_id=self.rid(), by="ops", reason=reason))

    def resume(self) -> Outcome:
        return self.send(Resume(request_id=self.rid(), by="ops"))

    def activate(self) -> Outcome:
        return self.send(Activate(request_id=self.rid(), by="ops"))

    def timeout(self, node: str, token: str) -> Outcome:
        return self.send(ClaimTimeout(request_id=self.rid(), node=node, token=token))

    def escalate(self, reason: str = "customer complaint") -> Outcome:
        return self.send(Escalate(request_id=self.rid(), admin="root", reason=reason))

    def deescalate(self, reason: str | None = None) -> Outcome:
        return self.send(Deescalate(request_id=self.rid(), admin="root", reason=reason))

    def resolve(self, action: QuarantineAction, reason: str | None = None) -> Outcome:
        return self.send(
            ResolveQuarantine(request_id=self.rid(), admin="root", action=action, reason=reason)
        )

    def retry(self, reason: str | None = None) -> Outcome:
        return self.send(RetryFailed(request_id=self.rid(), admin="root", reason=reason))

    def release_claim(self, node: str, reason: str | None = None) -> Outcome:
        return self.send(
            ReleaseClaim(request_id=self.rid(), admin="root", node=node, reason=reason)
        )

    def edit(self, node: str, values: dict[str, Any], reason: str | None = None) -> Outcome:
        return self.send(
            EditSubmission(
                request_id=self.rid(), admin="root", node=node, values=values, reason=reason
            )
        )

    def tag(self, *tags: str) -> Outcome:
        return self.send(Tag(request_id=self.rid(), by="ops", tags=list(tags)))

    def untag(self, *tags: str) -> Outcome:
        return self.send(Untag(request_id=self.rid(), by="ops", tags=list(tags)))

    def llm_started(self, node: str = "draft") -> Outcome:
        return self.send(LlmStarted(request_id=self.rid(), node=node), token="llm-token")

    def llm_result(self, values: dict[str, Any], node: str = "draft") -> Outcome:
        return self.send(LlmResult(request_id=self.rid(), node=node, values=values, model=MODEL))

    def llm_failure(self, reason: str = "model not found", node: str = "draft") -> Outcome:
        return self.send(LlmFailure(request_id=self.rid(), node=node, reason=reason))

    # -- views

    def node(self, name: str) -> NodeState:
        return self.state.nodes[name]

    def statuses(self) -> dict[str, NodeStatus]:
        return {name: node.status for name, node in self.state.nodes.items()}

    @property
    def status(self) -> TaskStatus:
        return self.state.status

    def kinds(self, out: Outcome) -> list[str]:
        return [e.kind for e in out.events]

    # -- common flows

    def label_submitted(self, who: str = "ana", token: str = "tl") -> None:
        ok(self.claim(who, LABELER, "label", token), "claimed label")
        ok(self.submit(who, "label", {"label": "positive"}, token), "submitted label")

    def check_claimed(self, who: str = "cy", token: str = "tc") -> None:
        ok(self.claim(who, REVIEWER, "check", token), "claimed check")

    def fail_round(self, n: int, labeler: str = "ana", reviewer: str = "cy") -> Outcome:
        self.label_submitted(labeler, f"tl{n}")
        self.check_claimed(reviewer, f"tc{n}")
        return self.review(reviewer, Verdict.FAIL, f"wrong label {n}", token=f"tc{n}")


def ok(out: Outcome, *words: str) -> Outcome:
    assert out.accepted, out.result.message
    for word in words:
        assert word in out.result.message, (word, out.result.message)
    assert out.result.field_errors == {}
    return out


def no(out: Outcome, *words: str, fields: set[str] | None = None) -> Outcome:
    assert not out.accepted, out.result.message
    for word in words:
        assert word in out.result.message, (word, out.result.message)
    assert set(out.result.field_errors) == (fields or set())
    return out


def make(nodes: list[dict[str, Any]], name: str = "custom", **settings: Any) -> Pipeline:
    return validate_pipeline({"name": name, "nodes": nodes, **settings})


def llm_beside_human() -> Pipeline:
    """start -> (ask: an LLM node, work: a person's subtask) -> end, in parallel."""
    return make(
        [
            {"name": "start", "kind": "start", "next": ["ask", "work"]},
            {
                "name": "ask",
                "kind": "subtask",
                "fields": [
                    {
                        "name": "answer",
                        "type": "short_text",
                        "source": "llm",
                        "llm": {"model": MODEL, "prompt": "say hi"},
                    }
                ],
                "next": ["end"],
            },
            {
                "name": "work",
                "kind": "subtask",
                "fields": [{"name": "note", "type": "short_text"}],
                "next": ["end"],
            },
            {"name": "end", "kind": "end"},
        ],
        name="llm-beside-human",
    )


def review_beside_human() -> Pipeline:
    """start -> (label -> check, side) -> end: a review on one branch, a subtask on the other."""
    return make(
        [
            {"name": "start", "kind": "start", "next": ["label", "side"]},
            {
                "name": "label",
                "kind": "subtask",
                "fields": [{"name": "label", "type": "short_text"}],
                "next": ["check"],
            },
            {"name": "check", "kind": "review", "max_rereviews": 0, "next": ["end"]},
            {
                "name": "side",
                "kind": "subtask",
                "fields": [{"name": "note", "type": "short_text"}],
                "next": ["end"],
            },
            {"name": "end", "kind": "end"},
        ],
        name="review-beside-human",
    )


def escalating(**more: Any) -> Pipeline:
    return label_review(on_limit="escalate", escalation_role="lead", **more)


def finished_label_review() -> Task:
    task = Task(label_review())
    task.label_submitted()
    task.check_claimed()
    ok(task.review("cy", Verdict.PASS, token="tc"), "passed label")
    assert task.status == TS.FINISHED
    return task


# --------------------------------------------------------------------------- start and seed data


def test_start_task_finishes_start_and_opens_the_first_node() -> None:
    task = Task(label_review())
    assert task.status == TS.IN_PROGRESS
    assert task.statuses() == {
        "start": NS.FINISHED,
        "label": NS.AVAILABLE,
        "check": NS.PENDING,
        "end": NS.PENDING,
    }
    assert task.kinds(task.created) == ["created", "task_status", "node_status", "node_status"]
    assert task.state.seq == 4
    assert [e.seq for e in task.state.timeline] == [1, 2, 3, 4]
    assert task.state.data == {"text": "great product"}
    assert task.created.result.accepted
    assert task.created.result.request_id == "create:task-1"
    assert task.created.result.status == TS.IN_PROGRESS
    assert task.state.created_at == task.state.updated_at == NOW
    assert task.state.pipeline_hash == label_review().content_hash()


def test_start_task_rejects_unknown_and_missing_seed_fields() -> None:
    with pytest.raises(Rejected) as raised:
        start_task(label_review(), "k", {"txt": "typo"}, CTX)
    assert "seed data does not match" in raised.value.message
    assert set(raised.value.field_errors) == {"txt", "text"}
    assert "unknown seed field 'txt'" in raised.value.field_errors["txt"]
    assert "dataset fields are: text" in raised.value.field_errors["txt"]
    assert "required" in raised.value.field_errors["text"]


def test_check_seed_data() -> None:
    assert check_seed_data(label_review(), {"text": "fine"}) == {}
    assert set(check_seed_data(label_review(), {})) == {"text"}
    wrong_type = check_seed_data(label_review(), {"text": 5})
    assert set(wrong_type) == {"text"}
    assert "expected text" in wrong_type["text"]
    no_seed = make(
        [
            {"name": "start", "kind": "start", "next": ["work"]},
            {
                "name": "work",
                "kind": "subtask",
                "fields": [{"name": "note", "type": "short_text"}],
                "next": ["end"],
            },
            {"name": "end", "kind": "end"},
        ]
    )
    assert check_seed_data(no_seed, {}) == {}
    unknown = check_seed_data(no_seed, {"note": "x"})
    assert set(unknown) == {"note"}
    assert "(none)" in unknown["note"]


def test_start_pending_waits_for_activate() -> None:
    task = Task(label_review(), start_pending=True)
    assert task.status == TS.PENDING
    assert set(task.statuses().values()) == {NS.PENDING}
    assert task.kinds(task.created) == ["created"]
    no(task.claim("ana", LABELER), "task is Pending", "no new claims")
    no(task.claim("ana", LABELER, "label"), "task is Pending")
    assert claimable(task.pipeline, task.state, "ana", LABELER) == []
    out = ok(task.activate(), "activated")
    assert task.kinds(out) == ["task_status", "node_status", "node_status"]
    assert task.status == TS.IN_PROGRESS
    assert task.node("label").status == NS.AVAILABLE
    assert claimable(task.pipeline, task.state, "ana", LABELER) == ["label"]


def test_activate_an_active_task_is_a_no_op() -> None:
    task = Task(label_review())
    out = ok(task.activate(), "already active", "In Progress")
    assert out.events == []


def test_start_paused() -> None:
    task = Task(label_review(), start_paused=True)
    assert task.status == TS.PAUSED
    assert task.state.status_before_pause == TS.IN_PROGRESS
    assert task.node("label").status == NS.AVAILABLE
    no(task.claim("ana", LABELER), "Paused", "resumed")
    ok(task.activate(), "already active")
    ok(task.resume(), "resumed")
    assert task.status == TS.IN_PROGRESS
    assert task.state.status_before_pause is None


def test_start_paused_and_pending_needs_resume_before_activate() -> None:
    task = Task(label_review(), start_paused=True, start_pending=True)
    assert task.status == TS.PAUSED
    assert task.state.status_before_pause == TS.PENDING
    no(task.activate(), "Paused", "resume it before you activate it")
    ok(task.resume(), "resumed")
    assert task.status == TS.PENDING
    ok(task.activate(), "activated")
    assert task.status == TS.IN_PROGRESS


def test_a_pipeline_straight_to_end_finishes_at_start() -> None:
    # The graph checks forbid start -> end; the engine still copes with it.
    pipeline = Pipeline.model_validate(
        {
            "name": "instant",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["end"]},
                {"name": "end", "kind": "end"},
            ],
        }
    )
    task = Task(pipeline, {}, start_paused=True)
    # A task that finished on creation is not paused.
    assert task.status == TS.FINISHED
    assert task.state.finished_at == NOW
    assert task.state.status_before_pause is None


# --------------------------------------------------------------------------- request ids


def test_a_repeated_request_id_returns_the_first_answer() -> None:
    task = Task(label_review())
    command = Claim(request_id="same", contributor="ana", roles=LABELER)
    first = ok(task.send(command, token="t1"), "claimed label")
    again = apply(task.pipeline, task.state, command, Context(now=NOW, token="t2"))
    assert again.result == first.result
    assert again.result.token == "t1"
    assert again.events == []
    assert again.state is task.state
    # Same id, same command type and sender, different content: still the first answer.
    other = Claim(request_id="same", contributor="ana", roles=REVIEWER, node="check")
    assert apply(task.pipeline, task.state, other, CTX).result == first.result


def test_a_request_id_answers_only_the_one_who_sent_it_first() -> None:
    task = Task(label_review())
    ok(task.send(Claim(request_id="same", contributor="ana", roles=LABELER), token="t1"))
    out = apply(
        task.pipeline,
        task.state,
        Claim(request_id="same", contributor="bo", roles=LABELER),
        Context(now=NOW, token="t2"),
    )
    no(out, "request_id 'same' was already used by someone else", "new request_id")
    assert out.result.token is None  # ana's claim token is not handed to bo
    assert out.state is task.state
    # Recorded as a refused signal, the id still answers ana with her claim.
    rejected = record_rejection(
        task.pipeline, task.state, out, Claim(request_id="same", contributor="bo"), CTX
    )
    assert rejected.state.responses["same"].token == "t1"
    assert rejected.events[-1].kind == "rejected"


def test_a_request_id_reused_for_another_command_type_is_rejected() -> None:
    task = Task(label_review())
    ok(task.send(Claim(request_id="same", contributor="ana", roles=LABELER)))
    out = task.send(Release(request_id="same", contributor="ana", node="label", token="t1"))
    no(out, "request_id 'same' was already used for a 'claim' command", "new request_id")
    assert out.result.node == "label"
    assert task.node("label").status == NS.CLAIMED


def test_rejected_commands_are_not_remembered() -> None:
    task = Task(label_review())
    command = Claim(request_id="early", contributor="cy", roles=REVIEWER, node="check")
    no(task.send(command), "node 'check' is Pending, not Available")
    assert "early" not in task.state.responses
    task.label_submitted()
    ok(task.send(command), "claimed check")
    assert task.state.responses["early"].accepted


def test_responses_and_timeline_are_trimmed_but_seq_keeps_counting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workflows.engine import run  # the limits are read where the engine trims

    monkeypatch.setattr(run, "RESPONSES_KEPT", 3)
    monkeypatch.setattr(run, "TIMELINE_KEPT", 5)
    task = Task(label_review())
    for i in range(6):
        ok(task.tag(f"t{i}"))
    assert list(task.state.responses) == ["r4", "r5", "r6"]
    assert len(task.state.timeline) == 5
    assert task.state.seq == 4 + 6
    assert [e.seq for e in task.state.timeline] == [6, 7, 8, 9, 10]


def test_updated_at_moves_with_accepted_commands_only() -> None:
    task = Task(label_review())
    task.now = NOW + timedelta(minutes=5)
    no(task.claim("cy", REVIEWER, "check"))
    assert task.state.updated_at == NOW
    ok(task.claim("ana", LABELER))
    assert task.state.updated_at == NOW + timedelta(minutes=5)


def test_record_rejection_appends_a_rejected_event_and_remembers_the_answer() -> None:
    task = Task(label_review())
    command = Submit(request_id="sig", contributor="ana", node="label", token="x", values={})
    refused = no(task.send(command), "you hold no claim on 'label'")
    recorded = record_rejection(task.pipeline, task.state, refused, command, CTX)
    assert recorded.result == refused.result
    assert [e.kind for e in recorded.events] == ["rejected"]
    event = recorded.events[0]
    assert event.seq == task.state.seq + 1 == recorded.state.seq
    assert event.actor == "ana"
    assert event.node == "label"
    assert event.message.startswith("submit rejected: you hold no claim")
    assert event.data == {"request_id": "sig", "field_errors": {}}
    assert recorded.state.timeline[-1] == event
    assert recorded.state.responses["sig"] == refused.result
    # The original state is untouched; a repeat now gets the recorded rejection back.
    assert "sig" not in task.state.responses
    again = apply(task.pipeline, recorded.state, command, CTX)
    assert again.result == refused.result
    assert again.events == []


def test_record_rejection_of_a_command_without_node_or_person() -> None:
    task = Task(label_review())
    command = Deescalate(request_id="sig", admin="root")
    refused = no(task.send(command), "not Escalated")
    recorded = record_rejection(task.pipeline, task.state, refused, command, CTX)
    assert recorded.events[0].node is None
    assert recorded.events[0].actor == "root"
    timeout = ClaimTimeout(request_id="sig2", node="label", token="x")
    refused = no(task.send(timeout), "no longer live")
    recorded = record_rejection(task.pipeline, task.state, refused, timeout, CTX)
    assert recorded.events[0].actor == "system"


# --------------------------------------------------------------------------- claim


def test_claim_without_node_takes_the_first_claimable_node() -> None:
    task = Task(label_review())
    out = ok(task.claim("ana", LABELER, token="tok-a"), "claimed label")
    assert out.result.node == "label"
    assert out.result.token == "tok-a"
    assert task.kinds(out) == ["node_status", "claimed"]
    node = task.node("label")
    assert node.status == NS.CLAIMED
    assert node.claim is not None
    assert node.claim.holder == "ana"
    assert node.claim.token == "tok-a"
    assert node.claim.claimed_at == NOW
    assert node.claim.expires_at == NOW + timedelta(minutes=30)
    assert node.claim.remaining_seconds is None
    assert node.claim.returns_to == NS.AVAILABLE
    assert node.assignee == "ana"
    assert out.events[-1].data == {"expires_at": (NOW + timedelta(minutes=30)).isoformat()}


def test_claim_a_named_node() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, "label"), "claimed label")
    assert task.node("label").status == NS.CLAIMED


def test_claim_an_unknown_node() -> None:
    task = Task(label_review())
    no(
        task.claim("ana", LABELER, "nope"),
        "unknown node 'nope'",
        "this pipeline's nodes are: start, label, check, end",
    )


@pytest.mark.parametrize(
    ("pipeline", "node", "words"),
    [
        (label_review(), "start", "is a start node; only subtask and review nodes are claimed"),
        (label_review(), "end", "is a end node"),
        (gate_and_join(), "route", "is a gate node"),
        (llm_then_edit(MODEL), "draft", "generated by an LLM; it cannot be claimed"),
    ],
)
def test_claim_a_node_nobody_claims(pipeline: Pipeline, node: str, words: str) -> None:
    task = Task(pipeline)
    no(task.claim("ana", BOTH, node), words)


def test_claim_needs_one_of_the_node_roles() -> None:
    task = Task(label_review())
    no(task.claim("eve", [], "label"), "needs one of the roles labeler", "eve has no roles")
    no(task.claim("cy", REVIEWER, "label"), "needs one of the roles labeler", "cy has reviewer")
    no(task.claim("eve", []), "nothing on this task is claimable by eve", "eve has no roles")
    no(task.claim("cy", REVIEWER), "nothing on this task is claimable by cy", "cy has reviewer")


def test_claim_a_node_with_no_roles_is_open_to_anyone() -> None:
    task = Task(gate_and_join())
    ok(task.claim("eve", []), "claimed triage")


def test_claim_an_already_claimed_node() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    no(task.claim("bo", BOTH, "label"), "node 'label' is already Claimed by ana")
    no(task.claim("ana", LABELER, "label"), "you already hold the claim on 'label'")
    no(
        task.claim("bo", BOTH),
        "nothing on this task is claimable by bo",
        "node 'label' is already Claimed by ana",
    )


def test_claim_without_node_when_no_node_waits_for_a_person() -> None:
    task = Task(llm_then_edit(MODEL))
    no(task.claim("ana", []), "nothing on this task is claimable by ana", "no node is waiting")


def test_claim_a_node_that_is_not_available() -> None:
    task = Task(label_review())
    no(task.claim("cy", REVIEWER, "check"), "node 'check' is Pending, not Available")
    task.label_submitted()
    no(task.claim("ana", LABELER, "label"), "node 'label' is Submitted, not Available")


def test_claim_on_a_finished_task() -> None:
    task = finished_label_review()
    no(task.claim("ana", LABELER), "task is Finished; it accepts no more work")
    no(task.claim("cy", REVIEWER, "check"), "task is Finished; it accepts no more work")


def test_claim_on_a_paused_task() -> None:
    task = Task(label_review())
    ok(task.pause())
    no(task.claim("ana", LABELER, "label"), "task is Paused", "no new claims until it is resumed")
    no(task.claim("ana", LABELER), "task is Paused", "no new claims until it is resumed")


def test_claim_on_an_escalated_task() -> None:
    task = Task(label_review())
    ok(task.escalate("needs a lawyer"))
    no(
        task.claim("ana", LABELER, "label"),
        "task is Escalated (needs a lawyer); no new claims until an admin resolves it",
    )
    no(task.claim("ana", LABELER), "task is Escalated (needs a lawyer)")


# --------------------------------------------------------------------------- release


def test_release_gives_the_node_back_and_keeps_the_draft() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, token="ta"))
    ok(task.save("ana", "label", {"label": "negative"}, token="ta"), "draft saved")
    out = ok(task.release("ana", "label", token="ta"), "released label; the draft is kept")
    assert task.kinds(out) == ["node_status", "released"]
    node = task.node("label")
    assert node.status == NS.AVAILABLE
    assert node.claim is None
    assert node.draft == {"label": "negative"}
    ok(task.claim("bo", BOTH, "label", token="tb"))
    assert task.node("label").draft == {"label": "negative"}
    assert task.node("label").claim is not None


def test_release_with_a_stale_token_after_release_and_reclaim() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, token="old"))
    ok(task.release("ana", "label", token="old"))
    ok(task.claim("ana", LABELER, token="new"))
    no(task.release("ana", "label", token="old"), "stale claim token for 'label'")
    no(task.submit("ana", "label", {"label": "positive"}, token="old"), "stale claim token")
    no(task.save("ana", "label", {"label": "positive"}, token="old"), "stale claim token")
    ok(task.release("ana", "label", token="new"))


def test_release_without_a_claim() -> None:
    task = Task(label_review())
    no(
        task.release("ana", "label"),
        "you hold no claim on 'label' (it is Available)",
        "claim it again",
    )


def test_release_someone_elses_claim() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    no(task.release("bo", "label"), "node 'label' is claimed by ana, not by bo")


def test_release_an_unknown_node() -> None:
    task = Task(label_review())
    no(task.release("ana", "nope"), "unknown node 'nope'")


def test_release_on_a_finished_task() -> None:
    task = finished_label_review()
    no(task.release("ana", "label"), "task is Finished; it accepts no more work")


def test_release_is_allowed_while_paused() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    ok(task.pause())
    ok(task.release("ana", "label"), "released label")
    assert task.node("label").status == NS.AVAILABLE
    assert task.node("label").claim is None
    assert task.status == TS.PAUSED


# --------------------------------------------------------------------------- save draft


def test_save_draft_merges_partial_values() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    out = ok(task.save("ana", "label", {"notes": "hmm"}), "draft saved")
    assert task.kinds(out) == ["draft_saved"]
    ok(task.save("ana", "label", {"label": "neutral"}))
    assert task.node("label").draft == {"notes": "hmm", "label": "neutral"}
    assert task.node("label").values == {}
    assert task.node("label").status == NS.CLAIMED


def test_save_draft_rejects_invalid_values_per_field() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    out = no(
        task.save("ana", "label", {"label": "great", "text": "x", "bogus": 1}),
        "the draft has invalid values",
        fields={"label", "text", "bogus"},
    )
    assert "not one of: positive, negative, neutral" in out.result.field_errors["label"]
    assert "read-only" in out.result.field_errors["text"]
    assert "unknown field 'bogus'" in out.result.field_errors["bogus"]


def test_save_draft_without_a_claim() -> None:
    task = Task(label_review())
    no(task.save("ana", "label", {"label": "positive"}), "you hold no claim on 'label'")


def test_save_draft_on_a_finished_task() -> None:
    task = finished_label_review()
    no(task.save("ana", "label", {}), "task is Finished; it accepts no more work")


def test_save_draft_is_allowed_while_paused() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    ok(task.pause())
    ok(task.save("ana", "label", {"label": "positive"}), "draft saved")
    assert task.node("label").draft == {"label": "positive"}


# --------------------------------------------------------------------------- submit


def test_submit_hands_in_the_form_and_opens_the_review() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, token="ta"))
    ok(task.save("ana", "label", {"notes": "draft"}, token="ta"))
    out = ok(task.submit("ana", "label", {"label": "positive"}, token="ta"), "submitted label")
    assert out.result.node == "label"
    assert task.kinds(out) == ["submitted", "node_status", "node_status"]
    assert out.events[0].data == {"values": {"label": "positive", "notes": None}, "attempt": 1}
    label = task.node("label")
    assert label.status == NS.SUBMITTED
    assert label.values == {"label": "positive", "notes": None}
    assert label.draft == {}
    assert label.claim is None
    assert label.submitted_by == "ana"
    assert label.submitted_at == NOW
    assert label.attempts == 1
    assert task.node("check").status == NS.AVAILABLE
    assert task.status == TS.IN_PROGRESS


def test_submit_without_a_review_finishes_the_node() -> None:
    task = Task(gate_and_join())
    ok(task.claim("ana", []))
    ok(task.submit("ana", "triage", {"priority": "normal"}))
    assert task.node("triage").status == NS.FINISHED


@pytest.mark.parametrize(
    ("values", "fields", "words"),
    [
        ({}, {"label"}, "required"),
        ({"label": ""}, {"label"}, "required"),
        ({"label": "spam"}, {"label"}, "not one of: positive, negative, neutral"),
        ({"label": "positive", "text": "other"}, {"text"}, "read-only"),
        ({"label": "positive", "extra": 1}, {"extra"}, "unknown field 'extra'"),
        ({"label": "positive", "notes": 3}, {"notes"}, "expected text"),
        ({"label": "nope", "notes": 3}, {"label", "notes"}, ""),
    ],
)
def test_submit_rejects_invalid_forms_per_field(
    values: dict[str, Any], fields: set[str], words: str
) -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    out = no(
        task.submit("ana", "label", values), "the form of 'label' has invalid values", fields=fields
    )
    assert any(words in message for message in out.result.field_errors.values())
    assert out.result.node == "label"
    assert task.node("label").status == NS.CLAIMED


def test_submit_on_a_review_node() -> None:
    task = Task(label_review())
    task.label_submitted()
    task.check_claimed()
    no(task.submit("cy", "check", {}, token="tc"), "node 'check' is a review node; use review")


def test_submit_an_unknown_node() -> None:
    task = Task(label_review())
    no(task.submit("ana", "nope", {}), "unknown node 'nope'")


def test_submit_without_a_claim_or_by_someone_else() -> None:
    task = Task(label_review())
    no(task.submit("ana", "label", {"label": "positive"}), "you hold no claim on 'label'")
    ok(task.claim("ana", LABELER))
    no(task.submit("bo", "label", {"label": "positive"}), "claimed by ana, not by bo")


def test_submit_is_rejected_while_paused() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    ok(task.pause())
    no(
        task.submit("ana", "label", {"label": "positive"}),
        "task is Paused",
        "you may submit after it resumes",
        "timeout is frozen",
    )
    ok(task.resume())
    ok(task.submit("ana", "label", {"label": "positive"}))


def test_submit_on_a_finished_task() -> None:
    task = finished_label_review()
    no(task.submit("ana", "label", {"label": "positive"}), "task is Finished")


def test_submit_on_a_held_claim_is_allowed_while_escalated() -> None:
    # Escalated is one of the states in which contributors finish claims they already hold.
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    ok(task.escalate())
    ok(task.submit("ana", "label", {"label": "positive"}))
    assert task.status == TS.ESCALATED
    assert task.node("check").status == NS.AVAILABLE
    no(task.claim("cy", REVIEWER), "task is Escalated")


def test_submit_on_a_held_claim_is_rejected_while_failed() -> None:
    task = Task(llm_beside_human(), {})
    ok(task.claim("ana", [], "work", token="tw"))
    ok(task.llm_started("ask"))
    ok(task.llm_failure("quota exhausted", node="ask"))
    assert task.status == TS.FAILED
    no(
        task.submit("ana", "work", {"note": "hi"}, token="tw"),
        "task is Failed (LLM node 'ask' failed: quota exhausted)",
        "you may submit once it is In Progress",
    )
    assert task.node("work").status == NS.CLAIMED
    ok(task.save("ana", "work", {"note": "hi"}, token="tw"))
    ok(task.retry())
    ok(task.submit("ana", "work", {"note": "hi"}, token="tw"))
    assert task.node("work").status == NS.FINISHED
    assert task.node("end").status == NS.DEFERRED


def test_work_on_held_claims_while_quarantined_but_not_once_failed() -> None:
    task = Task(review_beside_human(), {})
    ok(task.claim("ana", [], "label", token="tl"))
    ok(task.submit("ana", "label", {"label": "x"}, token="tl"))
    ok(task.claim("bo", [], "side", token="ts"))
    ok(task.claim("cy", [], "check", token="tc"))
    ok(task.review("cy", Verdict.FAIL, "no", token="tc"), "failed review 1 times")
    assert task.status == TS.QUARANTINED
    ok(task.save("bo", "side", {"note": "half"}, token="ts"))
    ok(task.resolve(QuarantineAction.FAIL, "bad source"))
    assert task.status == TS.FAILED
    no(
        task.submit("bo", "side", {"note": "done"}, token="ts"),
        "task is Failed (bad source); you may submit once it is In Progress",
    )
    ok(task.retry())
    assert task.status == TS.QUARANTINED
    ok(task.submit("bo", "side", {"note": "done"}, token="ts"))
    assert task.node("side").status == NS.FINISHED
    assert task.node("end").status == NS.DEFERRED
    ok(task.resolve(QuarantineAction.FINISH))
    assert task.status == TS.FINISHED


def test_submit_on_a_pending_task() -> None:
    task = Task(label_review(), start_pending=True)
    no(task.submit("ana", "label", {"label": "positive"}), "task is Pending")


# --------------------------------------------------------------------------- review


def test_review_pass_finishes_the_task() -> None:
    task = Task(label_review())
    task.label_submitted()
    task.check_claimed()
    task.now = NOW + timedelta(minutes=3)
    out = ok(task.review("cy", Verdict.PASS, token="tc"), "passed label")
    assert out.result.node == "check"
    assert task.kinds(out)[0] == "reviewed"
    assert out.events[0].message == "cy passed label"
    assert task.status == TS.FINISHED
    assert task.state.finished_at == NOW + timedelta(minutes=3)
    assert set(task.statuses().values()) == {NS.FINISHED}
    check = task.node("check")
    assert (check.passes, check.failures, check.total_failures) == (1, 0, 0)
    assert check.claim is None
    assert check.last_review is not None
    assert check.last_review.reviewer == "cy"
    assert check.last_review.verdict == Verdict.PASS
    assert check.last_review.reason is None
    assert task.state.timeline[-1].kind == "task_status"


def test_review_fail_needs_a_reason() -> None:
    task = Task(label_review())
    task.label_submitted()
    task.check_claimed()
    out = no(
        task.review("cy", Verdict.FAIL, token="tc"),
        "the review of 'check' is incomplete",
        fields={"reason"},
    )
    assert "required when failing a review" in out.result.field_errors["reason"]
    no(task.review("cy", Verdict.FAIL, "   ", token="tc"), "incomplete", fields={"reason"})


def test_review_fail_sends_the_subtask_back_for_rework() -> None:
    task = Task(label_review())
    task.label_submitted()
    task.check_claimed()
    out = ok(
        task.review("cy", Verdict.FAIL, "  it is negative  ", token="tc"),
        "failed label; sent back for rework",
    )
    assert out.events[0].message == "cy failed label: it is negative"
    assert task.status == TS.IN_PROGRESS
    check, label = task.node("check"), task.node("label")
    assert check.status == NS.PENDING
    assert check.claim is None
    assert (check.passes, check.failures, check.total_failures) == (0, 1, 1)
    assert check.last_review is not None
    assert check.last_review.reason == "it is negative"
    assert label.status == NS.AVAILABLE
    assert label.rework_reason == "it is negative"
    assert label.draft == {"label": "positive", "notes": None}
    assert label.rework_only is None
    assert label.rework_exclude is None
    # pool_include (the default): the original contributor may take the rework.
    out = ok(task.claim("ana", LABELER, token="t2"), "claimed label (rework: it is negative)")
    ok(task.submit("ana", "label", {"label": "negative"}, token="t2"))
    assert task.node("label").attempts == 2
    assert task.node("label").rework_reason is None
    assert task.node("check").status == NS.AVAILABLE


def test_review_fields_are_validated_and_stored() -> None:
    task = Task(label_review(fields=[{"name": "score", "type": "rating"}]))
    task.label_submitted()
    task.check_claimed()
    no(task.review("cy", Verdict.FAIL, token="tc"), "incomplete", fields={"reason", "score"})
    no(
        task.review("cy", Verdict.PASS, token="tc", values={"score": 9}),
        "incomplete",
        fields={"score"},
    )
    ok(task.review("cy", Verdict.PASS, token="tc", values={"score": 4}))
    assert task.node("check").values == {"score": 4}
    last = task.node("check").last_review
    assert last is not None
    assert last.values == {"score": 4}


def test_review_on_a_subtask_node() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    no(task.review("ana", Verdict.PASS, node="label"), "node 'label' is a subtask node")


def test_review_without_a_claim_or_with_a_stale_token() -> None:
    task = Task(label_review())
    task.label_submitted()
    no(task.review("cy", Verdict.PASS, token="tc"), "you hold no claim on 'check'")
    task.check_claimed(token="tc")
    no(task.review("cy", Verdict.PASS, token="zz"), "stale claim token for 'check'")
    no(task.review("bo", Verdict.PASS, token="tc"), "claimed by cy, not by bo")
    no(task.review("cy", Verdict.PASS, node="nope", token="tc"), "unknown node 'nope'")


def test_review_is_rejected_while_paused() -> None:
    task = Task(label_review())
    task.label_submitted()
    task.check_claimed()
    ok(task.pause())
    no(task.review("cy", Verdict.PASS, token="tc"), "task is Paused", "review after it resumes")


def test_review_on_a_finished_task() -> None:
    task = finished_label_review()
    no(task.review("cy", Verdict.PASS, token="tc"), "task is Finished")


def test_same_person_routing_reserves_the_rework() -> None:
    task = Task(label_review(rejection_routing="same_person"))
    ok(task.fail_round(1), "sent back for rework")
    assert task.node("label").rework_only == "ana"
    no(task.claim("bo", BOTH, "label"), "reserved for ana", "same_person")
    assert claimable(task.pipeline, task.state, "bo", BOTH) == []
    ok(task.claim("ana", LABELER, "label"), "(rework: wrong label 1)")


def test_pool_exclude_routing_gives_the_rework_to_someone_else() -> None:
    task = Task(label_review(rejection_routing="pool_exclude"))
    ok(task.fail_round(1))
    assert task.node("label").rework_exclude == "ana"
    no(task.claim("ana", LABELER, "label"), "you made the original submission", "pool_exclude")
    no(task.claim("ana", LABELER), "nothing on this task is claimable by ana", "pool_exclude")
    ok(task.claim("bo", BOTH, "label", token="tb"))
    ok(task.submit("bo", "label", {"label": "neutral"}, token="tb"))
    assert task.node("label").rework_exclude is None
    assert task.node("label").submitted_by == "bo"


def test_pool_include_routing_lets_anyone_take_the_rework() -> None:
    task = Task(label_review(rejection_routing="pool_include"))
    ok(task.fail_round(1))
    assert claimable(task.pipeline, task.state, "ana", LABELER) == ["label"]
    assert claimable(task.pipeline, task.state, "bo", BOTH) == ["label"]


def test_self_review_is_prevented() -> None:
    task = Task(label_review())
    task.label_submitted("bo")
    no(task.claim("bo", BOTH, "check"), "you submitted 'label'", "self-review is prevented")
    no(task.claim("bo", BOTH), "nothing on this task is claimable by bo", "self-review")
    ok(task.claim("cy", REVIEWER), "claimed check")


def test_self_review_allowed_when_not_prevented() -> None:
    task = Task(label_review(prevent_self_review=False))
    task.label_submitted("bo")
    ok(task.claim("bo", BOTH, token="tb"), "claimed check")
    ok(task.review("bo", Verdict.PASS, token="tb"))
    assert task.status == TS.FINISHED


# --------------------------------------------------------------------------- quarantine


def quarantined() -> Task:
    task = Task(label_review())
    ok(task.fail_round(1), "sent back for rework")
    ok(task.fail_round(2), "sent back for rework")
    out = ok(task.fail_round(3), "failed label; label failed review 3 times (max_rereviews 2)")
    assert task.kinds(out) == ["reviewed", "node_status", "task_status"]
    return task


def test_the_third_failed_review_quarantines() -> None:
    task = quarantined()
    assert task.status == TS.QUARANTINED
    assert task.state.hold_reason == "label failed review 3 times (max_rereviews 2)"
    assert task.state.status_before_hold == TS.IN_PROGRESS
    check, label = task.node("check"), task.node("label")
    assert check.status == NS.QUARANTINED
    assert (check.failures, check.total_failures, check.passes) == (3, 3, 0)
    assert label.status == NS.SUBMITTED
    assert label.attempts == 3
    no(task.claim("ana", LABELER), "task is Quarantined (label failed review 3 times")
    no(task.claim("cy", REVIEWER, "check"), "no new claims until an admin resolves it")


def test_quarantine_resolved_by_rework_resets_the_counter() -> None:
    task = quarantined()
    out = ok(task.resolve(QuarantineAction.REWORK, "one more go"), "quarantine resolved: rework")
    assert task.kinds(out)[0] == "quarantine_resolved"
    assert out.events[0].data == {"action": "rework", "reason": "one more go"}
    assert task.status == TS.IN_PROGRESS
    assert task.state.hold_reason is None
    assert task.state.status_before_hold is None
    check, label = task.node("check"), task.node("label")
    assert (check.failures, check.total_failures) == (0, 3)
    assert check.status == NS.PENDING
    assert label.status == NS.AVAILABLE
    assert label.rework_reason == "wrong label 3"
    # A full allowance again: two more failures go back to rework, the third quarantines.
    ok(task.fail_round(4), "sent back for rework")
    ok(task.fail_round(5), "sent back for rework")
    ok(task.fail_round(6), "failed review 3 times")
    assert task.status == TS.QUARANTINED
    assert task.node("check").total_failures == 6


def test_quarantine_resolved_by_finish_continues_to_finished() -> None:
    task = quarantined()
    ok(task.resolve(QuarantineAction.FINISH), "quarantine resolved: finish")
    assert task.status == TS.FINISHED
    assert set(task.statuses().values()) == {NS.FINISHED}
    assert task.node("check").failures == 0
    assert task.node("check").passes == 0


def test_quarantine_resolved_by_fail_then_retry_returns_to_quarantine() -> None:
    task = quarantined()
    ok(task.resolve(QuarantineAction.FAIL), "task failed")
    assert task.status == TS.FAILED
    assert task.state.hold_reason == "failed by an admin from quarantine"
    assert task.state.status_before_hold == TS.QUARANTINED
    assert task.node("check").status == NS.QUARANTINED
    no(task.claim("ana", LABELER), "task is Failed")
    no(task.resolve(QuarantineAction.REWORK), "task is Failed, not Quarantined")
    ok(task.retry("try again"), "retried")
    assert task.status == TS.QUARANTINED
    ok(task.resolve(QuarantineAction.REWORK))
    assert task.status == TS.IN_PROGRESS


def test_quarantine_fail_with_a_reason() -> None:
    task = quarantined()
    ok(task.resolve(QuarantineAction.FAIL, "spam document"))
    assert task.state.hold_reason == "spam document"


def test_resolve_quarantine_when_not_quarantined() -> None:
    task = Task(label_review())
    no(task.resolve(QuarantineAction.FINISH), "task is In Progress, not Quarantined")


def test_resolve_quarantine_while_paused() -> None:
    task = quarantined()
    ok(task.pause())
    no(task.resolve(QuarantineAction.FINISH), "task is Paused; resume it before you resolve")
    ok(task.resume())
    assert task.status == TS.QUARANTINED


def test_max_rereviews_zero_holds_at_the_first_failure() -> None:
    task = Task(label_review(max_rereviews=0))
    ok(task.fail_round(1), "failed review 1 times (max_rereviews 0)")
    assert task.status == TS.QUARANTINED


# --------------------------------------------------------------------------- escalation


def escalated_at_limit(**more: Any) -> Task:
    task = Task(escalating(**more))
    ok(task.fail_round(1))
    ok(task.fail_round(2))
    ok(task.fail_round(3), "failed review 3 times")
    assert task.status == TS.ESCALATED
    assert task.node("check").status == NS.ESCALATED
    assert task.state.hold_reason == "label failed review 3 times (max_rereviews 2)"
    return task


def test_escalation_at_the_limit_is_claimable_only_by_the_escalation_role() -> None:
    task = escalated_at_limit()
    no(task.claim("cy", REVIEWER, "check"), "only the escalation role 'lead' may claim it")
    no(task.claim("cy", REVIEWER), "task is Escalated")
    no(task.claim("ana", LABELER, "label"), "task is Escalated")
    assert claimable(task.pipeline, task.state, "dee", ["lead"]) == ["check"]
    assert current_nodes(task.state.nodes.values()) == ["check"]
    out = ok(task.claim("dee", ["lead"], token="td"), "claimed check")
    assert out.result.node == "check"
    claim = task.node("check").claim
    assert claim is not None
    assert claim.returns_to == NS.ESCALATED
    assert task.status == TS.ESCALATED
    no(task.claim("dee", ["lead"], "check"), "task is Escalated")


def test_escalation_reviewer_may_not_review_their_own_submission() -> None:
    task = escalated_at_limit()
    no(task.claim("ana", ["lead"], "check"), "self-review is prevented")


def test_escalation_claim_released_goes_back_to_escalated() -> None:
    task = escalated_at_limit()
    ok(task.claim("dee", ["lead"], token="td"))
    ok(task.release("dee", "check", token="td"))
    assert task.node("check").status == NS.ESCALATED
    assert task.status == TS.ESCALATED
    ok(task.claim("dee", ["lead"], token="td2"))
    ok(task.release_claim("check"))
    assert task.node("check").status == NS.ESCALATED
    ok(task.claim("dee", ["lead"], token="td3"))
    task.now = NOW + timedelta(hours=1)
    ok(task.timeout("check", "td3"))
    assert task.node("check").status == NS.ESCALATED


def test_escalation_review_pass_finishes() -> None:
    task = escalated_at_limit()
    ok(task.claim("dee", ["lead"], token="td"))
    out = ok(task.review("dee", Verdict.PASS, token="td"), "passed label")
    kinds = task.kinds(out)
    assert kinds[0] == "reviewed"
    assert kinds[1] == "task_status"
    assert out.events[1].data == {"from": "Escalated", "to": "In Progress"}
    assert task.status == TS.FINISHED
    check = task.node("check")
    assert (check.passes, check.failures, check.total_failures) == (1, 3, 3)


def test_escalation_review_fail_goes_back_to_rework_with_a_fresh_allowance() -> None:
    task = escalated_at_limit()
    ok(task.claim("dee", ["lead"], token="td"))
    ok(task.review("dee", Verdict.FAIL, "still wrong", token="td"), "sent back for rework")
    assert task.status == TS.IN_PROGRESS
    assert task.state.hold_reason is None
    check = task.node("check")
    assert (check.failures, check.total_failures) == (0, 4)
    assert check.status == NS.PENDING
    assert task.node("label").status == NS.AVAILABLE
    assert task.node("label").rework_reason == "still wrong"


def test_deescalate_returns_the_review_to_the_ordinary_pool() -> None:
    task = escalated_at_limit()
    out = ok(task.deescalate("lead is away"), "de-escalated")
    assert task.kinds(out)[-1] == "deescalated"
    assert out.events[-1].message == "root de-escalated the task: lead is away"
    assert task.status == TS.IN_PROGRESS
    assert task.state.hold_reason is None
    check = task.node("check")
    assert check.status == NS.AVAILABLE
    assert (check.failures, check.total_failures) == (0, 3)
    ok(task.claim("cy", REVIEWER, "check"))


def test_deescalate_drops_a_live_escalation_claim() -> None:
    task = escalated_at_limit()
    ok(task.claim("dee", ["lead"], token="td"))
    ok(task.deescalate())
    check = task.node("check")
    assert check.claim is None
    assert check.status == NS.AVAILABLE
    no(task.review("dee", Verdict.PASS, token="td"), "you hold no claim on 'check'")


def test_manual_escalate_and_deescalate() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, token="ta"))
    out = ok(task.escalate("customer complaint"), "escalated")
    assert task.kinds(out) == ["task_status", "escalated"]
    assert task.status == TS.ESCALATED
    assert task.state.hold_reason == "customer complaint"
    assert task.state.status_before_hold == TS.IN_PROGRESS
    # The held claim survives; new claims wait.
    assert task.node("label").status == NS.CLAIMED
    no(task.escalate("again"), "only an In Progress task can be escalated", "Escalated")
    ok(task.deescalate())
    assert task.status == TS.IN_PROGRESS
    assert task.state.hold_reason is None
    assert task.node("label").status == NS.CLAIMED
    no(task.deescalate(), "task is In Progress, not Escalated; nothing to de-escalate")


def test_escalate_and_deescalate_while_paused() -> None:
    task = Task(label_review())
    ok(task.pause())
    no(task.escalate(), "task is Paused; resume it before you escalate")
    ok(task.resume())
    ok(task.escalate())
    ok(task.pause())
    no(task.deescalate(), "task is Paused; resume it before you de-escalate")


def test_escalate_a_finished_task() -> None:
    task = finished_label_review()
    no(task.escalate(), "only an In Progress task can be escalated; this one is Finished")


def test_limit_reached_while_already_escalated_is_undone_by_the_escalation_review() -> None:
    task = Task(escalating())
    ok(task.fail_round(1))
    ok(task.fail_round(2))
    task.label_submitted(token="tl3")
    task.check_claimed(token="tc3")
    ok(task.escalate("manual"))
    ok(task.review("cy", Verdict.FAIL, "wrong again", token="tc3"), "failed review 3 times")
    assert task.status == TS.ESCALATED
    assert task.node("check").status == NS.ESCALATED
    assert task.state.status_before_hold == TS.IN_PROGRESS
    ok(task.claim("dee", ["lead"], token="td"))
    ok(task.review("dee", Verdict.FAIL, "rework it", token="td"))
    assert task.status == TS.IN_PROGRESS
    ok(task.claim("ana", LABELER, "label"))


# --------------------------------------------------------------------------- pause and resume


def test_pause_freezes_claims_and_resume_unfreezes_them_relative_to_resume_time() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, token="ta"))
    task.now = NOW + timedelta(minutes=10)
    out = ok(task.pause("maintenance"), "paused")
    assert task.kinds(out) == ["task_status"]
    assert "maintenance" in out.events[0].message
    assert task.status == TS.PAUSED
    assert task.state.status_before_pause == TS.IN_PROGRESS
    claim = task.node("label").claim
    assert claim is not None
    assert claim.expires_at is None
    assert claim.remaining_seconds == 20 * 60
    assert next_claim_deadline(task.state) is None
    assert expired_claims(task.state, NOW + timedelta(days=9)) == []
    no(task.timeout("label", "ta"), "that claim has not expired")
    task.now = NOW + timedelta(hours=5)
    ok(task.resume(), "resumed")
    assert task.status == TS.IN_PROGRESS
    assert task.state.status_before_pause is None
    claim = task.node("label").claim
    assert claim is not None
    assert claim.expires_at == NOW + timedelta(hours=5, minutes=20)
    assert claim.remaining_seconds is None
    assert claim.claimed_at == NOW
    assert next_claim_deadline(task.state) == NOW + timedelta(hours=5, minutes=20)


def test_pause_of_an_already_expired_claim_keeps_zero_seconds() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, token="ta"))
    task.now = NOW + timedelta(hours=2)
    ok(task.pause())
    claim = task.node("label").claim
    assert claim is not None
    assert claim.remaining_seconds == 0
    ok(task.resume())
    assert expired_claims(task.state, task.now) == [("label", "ta")]


def test_pause_twice_and_resume_when_not_paused_are_no_ops() -> None:
    task = Task(label_review())
    out = ok(task.resume(), "task is In Progress, not Paused; nothing to resume")
    assert out.events == []
    ok(task.pause())
    out = ok(task.pause(), "task is already Paused")
    assert out.events == []
    assert task.state.status_before_pause == TS.IN_PROGRESS


def test_pause_a_finished_task() -> None:
    task = finished_label_review()
    no(task.pause(), "task is Finished; there is nothing to pause")


@pytest.mark.parametrize("hold", [TS.ESCALATED, TS.QUARANTINED, TS.FAILED, TS.PENDING])
def test_resume_restores_the_exact_previous_status(hold: TaskStatus) -> None:
    if hold == TS.QUARANTINED:
        task = quarantined()
    elif hold == TS.FAILED:
        task = quarantined()
        ok(task.resolve(QuarantineAction.FAIL))
    elif hold == TS.PENDING:
        task = Task(label_review(), start_pending=True)
    else:
        task = Task(label_review())
        ok(task.escalate())
    reason = task.state.hold_reason
    ok(task.pause())
    assert task.state.status_before_pause == hold
    ok(task.resume())
    assert task.status == hold
    assert task.state.hold_reason == reason


# --------------------------------------------------------------------------- claim timeout


def test_claim_timeout_releases_an_expired_claim_and_keeps_the_draft() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, token="ta"))
    ok(task.save("ana", "label", {"label": "neutral"}, token="ta"))
    assert next_claim_deadline(task.state) == NOW + timedelta(minutes=30)
    assert expired_claims(task.state, NOW + timedelta(minutes=29)) == []
    assert expired_claims(task.state, NOW + timedelta(minutes=30)) == [("label", "ta")]
    task.now = NOW + timedelta(minutes=30)
    out = ok(task.timeout("label", "ta"), "released label after the claim timeout")
    assert task.kinds(out) == ["node_status", "claim_timeout"]
    assert out.events[-1].actor == "system"
    assert out.events[-1].data == {"holder": "ana"}
    label = task.node("label")
    assert label.status == NS.AVAILABLE
    assert label.claim is None
    assert label.draft == {"label": "neutral"}
    no(task.submit("ana", "label", {"label": "neutral"}, token="ta"), "you hold no claim")


def test_claim_timeout_before_expiry() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, token="ta"))
    task.now = NOW + timedelta(minutes=29, seconds=59)
    no(task.timeout("label", "ta"), "that claim has not expired")


def test_claim_timeout_for_a_claim_that_is_no_longer_live() -> None:
    task = Task(label_review())
    no(task.timeout("label", "ta"), "that claim is no longer live")
    ok(task.claim("ana", LABELER, token="ta"))
    ok(task.release("ana", "label", token="ta"))
    ok(task.claim("ana", LABELER, token="tb"))
    task.now = NOW + timedelta(hours=1)
    no(task.timeout("label", "ta"), "that claim is no longer live")
    assert task.node("label").claim is not None


def test_claim_timeout_for_an_unknown_node() -> None:
    task = Task(label_review())
    no(task.timeout("nope", "ta"), "unknown node 'nope'")


def test_claim_timeout_on_a_finished_task() -> None:
    task = finished_label_review()
    no(task.timeout("label", "tl"), "task is Finished; it accepts no more work")


def test_claim_timeout_does_not_touch_an_llm_generation() -> None:
    task = Task(llm_then_edit(MODEL))
    ok(task.llm_started())
    task.now = NOW + timedelta(days=3)
    assert expired_claims(task.state, task.now) == []
    no(task.timeout("draft", "llm-token"), "that claim has not expired")


# --------------------------------------------------------------------------- gates and joins


def test_gate_default_branch_marks_the_untaken_branch_not_applicable() -> None:
    task = Task(gate_and_join())
    ok(task.claim("ana", []))
    out = ok(task.submit("ana", "triage", {"priority": "normal"}))
    assert task.node("route").status == NS.FINISHED
    assert task.node("route").values == {"route": "fanout"}
    assert task.node("urgent_note").status == NS.NA
    assert task.node("fanout").status == NS.AVAILABLE
    messages = [e.message for e in out.events]
    assert "route: gate routed to fanout" in messages
    assert "urgent_note: N/A (only reachable through untaken routes)" in messages
    no(task.claim("ana", [], "urgent_note"), "node 'urgent_note' is N/A, not Available")


def test_gate_condition_routes_to_its_branch_and_the_next_node_waits() -> None:
    task = Task(gate_and_join())
    ok(task.claim("ana", []))
    ok(task.submit("ana", "triage", {"priority": "urgent"}))
    assert task.node("route").values == {"route": "urgent_note"}
    assert task.node("urgent_note").status == NS.AVAILABLE
    assert task.node("fanout").status == NS.PENDING
    ok(task.claim("ana", [], token="t2"), "claimed urgent_note")
    ok(task.submit("ana", "urgent_note", {"note": "call them"}, token="t2"))
    assert task.node("fanout").status == NS.AVAILABLE


def test_fan_out_and_join_deferred_until_every_live_branch_finished() -> None:
    task = Task(gate_and_join())
    ok(task.claim("ana", []))
    ok(task.submit("ana", "triage", {"priority": "normal"}))
    ok(task.claim("ana", [], token="t2"), "claimed fanout")
    ok(task.submit("ana", "fanout", {"summary": "s"}, token="t2"))
    assert task.node("left").status == NS.AVAILABLE
    assert task.node("right").status == NS.AVAILABLE
    assert current_nodes(task.state.nodes.values()) == ["left", "right"]
    ok(task.claim("bo", [], "left", token="tl"))
    ok(task.claim("cy", [], "right", token="tr"))
    assert assignees(task.state.nodes.values()) == ["bo", "cy"]
    out = ok(task.submit("bo", "left", {"left_score": 5}, token="tl"))
    assert task.node("join").status == NS.DEFERRED
    assert out.events[-1].message == "join: Deferred, waiting for right"
    no(task.claim("bo", [], "join"), "node 'join' is Deferred, not Available")
    ok(task.submit("cy", "right", {"right_score": 2}, token="tr"))
    assert task.node("join").status == NS.AVAILABLE
    ok(task.claim("bo", [], token="tj"), "claimed join")
    ok(task.submit("bo", "join", {"verdict": True}, token="tj"))
    assert task.status == TS.FINISHED
    assert task.node("urgent_note").status == NS.NA
    data = task_data(task.state)
    assert data["ticket"] == "printer on fire"
    assert data["left_score"] == 5
    assert data["right.right_score"] == 2
    assert data["route"] == "fanout"


# --------------------------------------------------------------------------- LLM nodes


def test_llm_node_flow_prefills_the_edit_node() -> None:
    task = Task(llm_then_edit(MODEL))
    assert llm_nodes_ready(task.pipeline, task.state) == ["draft"]
    assert claimable(task.pipeline, task.state, "ana", []) == []
    out = ok(task.llm_started(), "generating draft")
    assert task.kinds(out) == ["node_status", "llm_started"]
    draft = task.node("draft")
    assert draft.status == NS.CLAIMED
    assert draft.claim is not None
    assert draft.claim.holder == f"llm:{MODEL}"
    assert draft.claim.expires_at is None
    assert draft.llm_runs == 1
    assert llm_nodes_ready(task.pipeline, task.state) == []
    assert assignees(task.state.nodes.values()) == []
    assert next_claim_deadline(task.state) is None
    out = ok(task.llm_result({"draft_answer": "Rayleigh scattering."}), "generated draft")
    assert out.events[0].kind == "llm_result"
    assert out.events[0].data == {
        "values": {"draft_answer": "Rayleigh scattering."},
        "model": MODEL,
    }
    draft = task.node("draft")
    assert draft.status == NS.FINISHED
    assert draft.values == {"draft_answer": "Rayleigh scattering."}
    assert draft.submitted_by == f"llm:{MODEL}"
    assert draft.attempts == 1
    edit = task.node("edit")
    assert edit.status == NS.AVAILABLE
    assert edit.draft == {"answer": "Rayleigh scattering."}
    ok(task.claim("ana", [], token="te"), "claimed edit")
    ok(task.submit("ana", "edit", {"answer": "Because of Rayleigh scattering."}, token="te"))
    assert task.status == TS.FINISHED


def test_llm_started_rejections() -> None:
    task = Task(llm_then_edit(MODEL))
    no(task.llm_started("edit"), "node 'edit' is not an LLM node")
    no(task.llm_started("nope"), "unknown node 'nope'")
    ok(task.pause())
    no(task.llm_started(), "task is Paused; LLM nodes wait")
    ok(task.resume())
    ok(task.llm_started())
    no(task.llm_started(), "node 'draft' is Claimed, not Available")


def test_llm_started_on_a_finished_task() -> None:
    task = Task(llm_then_edit(MODEL))
    ok(task.llm_started())
    ok(task.llm_result({"draft_answer": "a"}))
    ok(task.claim("ana", []))
    ok(task.submit("ana", "edit", {"answer": "b"}))
    assert task.status == TS.FINISHED
    no(task.llm_started(), "task is Finished; it accepts no more work")
    no(task.llm_result({"draft_answer": "a"}), "task is Finished")
    no(task.llm_failure(), "task is Finished")


def test_llm_result_rejections() -> None:
    task = Task(llm_then_edit(MODEL))
    no(
        task.llm_result({"draft_answer": "a"}),
        "node 'draft' is Available; no generation is running",
    )
    no(task.llm_result({"draft_answer": "a"}, node="nope"), "unknown node 'nope'")
    ok(task.llm_started())
    out = no(
        task.llm_result({"draft_answer": 42, "question": "x"}),
        "the LLM output does not fit the node's fields",
        fields={"draft_answer", "question"},
    )
    assert "expected text" in out.result.field_errors["draft_answer"]
    no(task.llm_result({}), "does not fit", fields={"draft_answer"})
    ok(task.pause())
    no(task.llm_result({"draft_answer": "a"}), "task is Paused; the LLM result is applied after")
    ok(task.resume())
    ok(task.llm_result({"draft_answer": "a"}))


def test_llm_result_on_a_node_claimed_by_a_person() -> None:
    task = Task(llm_then_edit(MODEL))
    ok(task.llm_started())
    ok(task.llm_result({"draft_answer": "a"}))
    ok(task.claim("ana", []))
    no(task.llm_result({"answer": "b"}, node="edit"), "claimed by a person, not an LLM")
    no(task.llm_failure(node="edit"), "claimed by a person, not an LLM")
    assert task.status == TS.IN_PROGRESS
    assert task.node("edit").claim is not None


def test_llm_failure_fails_the_task_and_retry_runs_it_again() -> None:
    task = Task(llm_then_edit(MODEL))
    ok(task.llm_started())
    out = ok(task.llm_failure("model not found"), "draft failed")
    assert "llm_failed" in task.kinds(out)
    assert task.status == TS.FAILED
    assert task.state.hold_reason == "LLM node 'draft' failed: model not found"
    draft = task.node("draft")
    assert draft.status == NS.AVAILABLE
    assert draft.claim is None
    assert draft.error == "model not found"
    assert llm_nodes_ready(task.pipeline, task.state) == []
    no(task.llm_started(), "task is Failed; LLM nodes wait")
    no(task.claim("ana", []), "task is Failed (LLM node 'draft' failed: model not found)")
    out = ok(task.retry("key rotated"), "retried")
    assert task.kinds(out)[-1] == "retried"
    assert task.status == TS.IN_PROGRESS
    assert task.state.hold_reason is None
    assert task.node("draft").error is None
    assert llm_nodes_ready(task.pipeline, task.state) == ["draft"]
    ok(task.llm_started())
    assert task.node("draft").llm_runs == 2


def test_llm_failure_while_paused_fails_on_resume() -> None:
    task = Task(llm_then_edit(MODEL))
    ok(task.llm_started())
    ok(task.pause())
    ok(task.llm_failure("boom"))
    assert task.status == TS.PAUSED
    assert task.state.status_before_pause == TS.FAILED
    assert task.state.hold_reason == "LLM node 'draft' failed: boom"
    assert task.node("draft").claim is None
    ok(task.resume())
    assert task.status == TS.FAILED
    ok(task.retry())
    assert task.status == TS.IN_PROGRESS


def test_llm_failure_while_escalated_retries_back_to_escalated() -> None:
    task = Task(llm_then_edit(MODEL))
    ok(task.llm_started())
    ok(task.escalate("odd question"))
    ok(task.llm_failure("boom"))
    assert task.status == TS.FAILED
    assert task.state.status_before_hold == TS.ESCALATED
    ok(task.retry())
    assert task.status == TS.ESCALATED
    assert llm_nodes_ready(task.pipeline, task.state) == []
    ok(task.deescalate())
    assert task.status == TS.IN_PROGRESS
    assert llm_nodes_ready(task.pipeline, task.state) == ["draft"]


def test_llm_failure_without_a_running_generation() -> None:
    task = Task(llm_then_edit(MODEL))
    no(task.llm_failure(), "node 'draft' is Available; no generation is running")
    no(task.llm_failure(node="nope"), "unknown node 'nope'")


def test_two_failures_before_a_retry_still_retry_to_in_progress() -> None:
    task = Task(llm_beside_human(), {})
    ok(task.claim("ana", [], "work", token="tw"))
    ok(task.llm_started("ask"))
    ok(task.llm_failure("first", node="ask"))
    ok(task.retry())
    ok(task.llm_started("ask"))
    ok(task.llm_failure("second", node="ask"))
    assert task.state.status_before_hold == TS.IN_PROGRESS
    ok(task.retry())
    assert task.status == TS.IN_PROGRESS


def test_retry_rejections() -> None:
    task = Task(label_review())
    no(task.retry(), "task is In Progress, not Failed; nothing to retry")
    task = Task(llm_then_edit(MODEL))
    ok(task.llm_started())
    ok(task.llm_failure())
    ok(task.pause())
    no(task.retry(), "task is Paused; resume it before you retry")


# --------------------------------------------------------------------------- admin operations


def test_edit_submission_merges_and_records_before_and_after() -> None:
    task = Task(label_review())
    task.label_submitted()
    out = ok(task.edit("label", {"notes": "typo fixed"}, "cleanup"), "edited label")
    assert out.events[0].kind == "submission_edited"
    assert out.events[0].message == "root edited the submission of label: cleanup"
    assert out.events[0].data == {
        "before": {"label": "positive", "notes": None},
        "after": {"label": "positive", "notes": "typo fixed"},
        "reason": "cleanup",
    }
    assert task.node("label").values == {"label": "positive", "notes": "typo fixed"}
    assert task.node("label").status == NS.SUBMITTED


def test_edit_submission_rejections() -> None:
    task = Task(label_review())
    no(task.edit("label", {"label": "negative"}), "node 'label' has no submission to edit")
    no(task.edit("start", {}), "node 'start' has no submission to edit")
    no(task.edit("nope", {}), "unknown node 'nope'")
    task.label_submitted()
    no(
        task.edit("label", {"label": "spam", "bogus": 1}),
        "the edited values of 'label' are invalid",
        fields={"label", "bogus"},
    )


def test_edit_submission_of_a_review_and_on_a_finished_task() -> None:
    task = Task(label_review(fields=[{"name": "score", "type": "rating"}]))
    task.label_submitted()
    task.check_claimed()
    ok(task.review("cy", Verdict.PASS, token="tc", values={"score": 2}))
    assert task.status == TS.FINISHED
    ok(task.edit("check", {"score": 3}))
    assert task.node("check").values == {"score": 3}
    ok(task.edit("label", {"label": "neutral"}))


def test_edit_submission_of_a_gate() -> None:
    task = Task(gate_and_join())
    ok(task.claim("ana", []))
    ok(task.submit("ana", "triage", {"priority": "normal"}))
    no(task.edit("route", {}), "node 'route' has no submission to edit")


def test_release_claim_by_an_admin() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER, token="ta"))
    ok(task.save("ana", "label", {"label": "neutral"}, token="ta"))
    out = ok(task.release_claim("label", "ana is on leave"), "released ana's claim on label")
    assert out.events[-1].kind == "claim_released_by_admin"
    assert out.events[-1].data == {"holder": "ana", "reason": "ana is on leave"}
    assert task.node("label").status == NS.AVAILABLE
    assert task.node("label").claim is None
    assert task.node("label").draft == {"label": "neutral"}


def test_release_claim_rejections() -> None:
    task = Task(label_review())
    no(task.release_claim("label"), "node 'label' has no live claim (it is Available)")
    no(task.release_claim("nope"), "unknown node 'nope'")
    task = Task(llm_then_edit(MODEL))
    ok(task.llm_started())
    no(task.release_claim("draft"), "an LLM is generating 'draft'; its claim cannot be released")
    task = finished_label_review()
    no(task.release_claim("label"), "task is Finished; it accepts no more work")


def test_release_claim_while_paused() -> None:
    task = Task(label_review())
    ok(task.claim("ana", LABELER))
    ok(task.pause())
    ok(task.release_claim("label"))
    assert task.node("label").status == NS.AVAILABLE


def test_tag_and_untag() -> None:
    task = Task(label_review())
    out = ok(task.tag(" urgent ", "vip", "urgent"))
    assert out.result.message == "tagged urgent, vip"
    assert task.kinds(out) == ["tagged"]
    assert out.events[0].data == {"tags": ["urgent", "vip"]}
    assert task.state.tags == ["urgent", "vip"]
    out = ok(task.tag("vip", "   "), "already tagged")
    assert out.events == []
    ok(task.tag("later"))
    out = ok(task.untag("vip", " urgent", "vip"), "removed vip, urgent")
    assert out.events[0].data == {"tags": ["vip", "urgent"]}
    assert task.state.tags == ["later"]
    no(task.untag("vip", "gone"), "none of these tags are on the task: vip, gone", "later")
    ok(task.untag("later"))
    no(task.untag("later"), "its tags are: (none)")


def test_a_finished_task_rejects_work_but_accepts_tags() -> None:
    task = finished_label_review()
    no(task.claim("ana", LABELER), "accepts no more work")
    no(task.submit("ana", "label", {"label": "positive"}), "accepts no more work")
    no(task.review("cy", Verdict.PASS), "accepts no more work")
    ok(task.tag("audited"), "tagged audited")
    ok(task.untag("audited"))
    ok(task.resume(), "nothing to resume")
    ok(task.activate(), "already active (Finished)")
    no(task.deescalate(), "task is Finished, not Escalated")
    no(task.retry(), "task is Finished, not Failed")
    assert task.status == TS.FINISHED


# --------------------------------------------------------------------------- queries


def test_claimable_lists_only_what_this_contributor_may_claim() -> None:
    task = Task(gate_and_join())
    assert claimable(task.pipeline, task.state, "ana", []) == ["triage"]
    ok(task.claim("ana", []))
    assert claimable(task.pipeline, task.state, "ana", []) == []
    assert claimable(task.pipeline, task.state, "bo", []) == []


def test_current_nodes_and_assignees() -> None:
    task = Task(label_review())
    assert current_nodes(task.state.nodes.values()) == ["label"]
    assert assignees(task.state.nodes.values()) == []
    ok(task.claim("ana", LABELER))
    assert current_nodes(task.state.nodes.values()) == ["label"]
    assert assignees(task.state.nodes.values()) == ["ana"]
    task = finished_label_review()
    assert current_nodes(task.state.nodes.values()) == []


def test_seq_counts_every_event_across_commands() -> None:
    task = Task(label_review())
    emitted = len(task.created.events)
    for out in (
        task.claim("ana", LABELER, token="ta"),
        task.save("ana", "label", {"label": "neutral"}, token="ta"),
        task.claim("bo", BOTH),
        task.submit("ana", "label", {"label": "neutral"}, token="ta"),
        task.claim("cy", REVIEWER, token="tc"),
        task.review("cy", Verdict.PASS, token="tc"),
    ):
        emitted += len(out.events)
    assert task.state.seq == emitted
    assert [e.seq for e in task.state.timeline] == list(range(1, emitted + 1))
