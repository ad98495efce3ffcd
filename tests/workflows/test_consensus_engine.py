"""Consensus nodes in the pure engine: exactly k blind places per item, one answer per person,
releases and timeouts reopening a place, adaptive overlap up to the maximum, what a disagreement
does (adjudicate, escalate, quarantine), reviews by non-annotators and new rounds, and the
adjudicate command. No Temporal, no I/O."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.test_engine import NOW, Task
from workflows.engine import (
    claimable,
    consensus_people,
    expired_claims,
    next_claim_deadline,
    task_data,
    waits_only_for_people,
)
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    Adjudicate,
    ClaimTimeout,
    Deescalate,
    EventKind,
    NodeStatus,
    Pause,
    QuarantineAction,
    ReleaseClaim,
    ResolveQuarantine,
    Resume,
    Review,
    TaskStatus,
    Verdict,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "consensus-label.yaml"
L = ["labeler"]
LEAD = ["lead"]
NS = NodeStatus
AGREE = {"sentiment": "positive", "intensity": 4}


def example() -> Pipeline:
    from conveyor.pipelines import load_pipeline_file

    return load_pipeline_file(EXAMPLE)


def build(consensus: dict[str, Any], *, review: bool = False, adjudicate: bool = True) -> Pipeline:
    after = "check" if review else ("settle" if adjudicate else "end")
    nodes: list[dict[str, Any]] = [
        {"name": "start", "kind": "start", "next": ["label"]},
        {
            "name": "label",
            "kind": "subtask",
            "roles": ["labeler"],
            "consensus": consensus,
            "fields": [
                {"name": "text", "type": "long_text", "source": "predefined"},
                {"name": "sentiment", "type": "select", "options": ["positive", "negative"]},
                {"name": "intensity", "type": "rating", "min": 1, "max": 5, "required": False},
            ],
            "next": [after],
        },
    ]
    if review:
        nodes.append(
            {
                "name": "check",
                "kind": "review",
                "roles": ["labeler", "lead"],
                "rejection_routing": "pool_exclude",
                "next": ["end"],
            }
        )
    if adjudicate and not review:
        nodes.append({"name": "settle", "kind": "adjudicate", "roles": ["lead"], "next": ["end"]})
    nodes.append({"name": "end", "kind": "end"})
    return validate_pipeline({"name": "c", "nodes": nodes})


def task(pipeline: Pipeline) -> Task:
    return Task(pipeline, {"text": "great product"})


def answer(t: Task, who: str, values: dict[str, Any], node: str = "label") -> None:
    token = f"tok-{who}"
    claimed = t.claim(who, L, node=node, token=token)
    assert claimed.accepted, claimed.result.message
    submitted = t.submit(who, node, values, token=token)
    assert submitted.accepted, submitted.result.message


def item(t: Task) -> Any:
    consensus = t.state.nodes["label"].consensus
    assert consensus is not None
    return consensus


# --------------------------------------------------------------------------- exactly k


def test_exactly_k_places_then_the_item_takes_no_more() -> None:
    t = task(example())
    for i, who in enumerate(["ann", "bob", "cat"], start=1):
        out = t.claim(who, L, token=f"tok-{who}")
        assert out.accepted and out.result.node == "label"
        assert f"place {i} of 3" in out.result.message
    assert t.state.nodes["label"].status == NS.CLAIMED  # every place claimed, none open
    late = t.claim("dan", L, node="label", token="tok-dan")
    assert not late.accepted
    assert "every place on 'label' is taken (0 answered, 3 claimed, 3 needed)" in (
        late.result.message
    )
    assert claimable(t.pipeline, t.state, "dan", L) == []
    for who in ["ann", "bob"]:
        assert t.submit(who, "label", AGREE, token=f"tok-{who}").accepted
    # Two answers in, one place still claimed: still nothing for anyone else.
    assert not t.claim("dan", L, node="label", token="tok-dan").accepted
    assert t.submit("cat", "label", AGREE, token="tok-cat").accepted
    assert len(item(t).answers) == 3
    assert t.state.nodes["label"].status == NS.FINISHED
    assert not t.claim("dan", L, node="label", token="tok-dan").accepted


def test_a_person_answers_an_item_once_and_holds_one_place() -> None:
    t = task(example())
    assert t.claim("ann", L, token="a1").accepted
    again = t.claim("ann", L, node="label", token="a2")
    assert not again.accepted and "you already hold a place on 'label'" in again.result.message
    assert t.submit("ann", "label", AGREE, token="a1").accepted
    after = t.claim("ann", L, node="label", token="a3")
    assert not after.accepted and "you already answered 'label'" in after.result.message
    twice = t.submit("ann", "label", AGREE, token="a1")
    assert not twice.accepted and "you already answered 'label'" in twice.result.message
    assert len(item(t).answers) == 1
    # Without a node the auto-claim finds nothing for her either.
    auto = t.claim("ann", L, token="a4")
    assert not auto.accepted


def test_release_and_claim_timeout_reopen_the_place() -> None:
    t = task(example())
    for who in ["ann", "bob", "cat"]:
        assert t.claim(who, L, token=f"tok-{who}").accepted
    assert t.release("bob", "label", token="tok-bob").accepted
    assert t.state.nodes["label"].status == NS.AVAILABLE
    assert item(t).open_slots() == 1
    assert t.claim("dan", L, token="tok-dan").accepted
    # Claim timeouts: every place has its own deadline; the workflow's timer fires per token.
    deadline = next_claim_deadline(t.state)
    assert deadline == NOW + timedelta(seconds=t.pipeline.claim_timeout_seconds)
    t.now = deadline
    expired = expired_claims(t.state, t.now)
    assert sorted(token for _, token in expired) == ["tok-ann", "tok-cat", "tok-dan"]
    out = t.send(ClaimTimeout(request_id="to-1", node="label", token="tok-cat"))
    assert out.accepted, out.result.message
    assert item(t).open_slots() == 1
    assert {s.claim.holder for s in item(t).slots} == {"ann", "dan"}
    stale = t.submit("cat", "label", AGREE, token="tok-cat")
    assert not stale.accepted and "you hold no place on 'label'" in stale.result.message
    assert t.state.timeline[-2].kind == EventKind.NODE_STATUS or any(
        e.kind == EventKind.CLAIM_TIMEOUT for e in t.state.timeline
    )


def test_admin_release_names_the_holder_when_several_hold_places() -> None:
    t = task(example())
    assert t.claim("ann", L, token="a").accepted
    assert t.claim("bob", L, token="b").accepted
    vague = t.send(ReleaseClaim(request_id="x1", admin="root", node="label"))
    assert not vague.accepted and "say whose claim to release" in vague.result.message
    out = t.send(ReleaseClaim(request_id="x2", admin="root", node="label", holder="bob"))
    assert out.accepted
    assert [s.claim.holder for s in item(t).slots] == ["ann"]


def test_drafts_are_per_place_and_never_shared() -> None:
    t = task(example())
    assert t.claim("ann", L, token="a").accepted
    assert t.claim("bob", L, token="b").accepted
    assert t.save("ann", "label", {"sentiment": "negative"}, token="a").accepted
    slots = {s.claim.holder: s.draft for s in item(t).slots}
    assert slots["ann"] == {"sentiment": "negative"}
    assert slots["bob"] == {}
    assert t.state.nodes["label"].draft == {}
    assert "label.sentiment" not in task_data(t.state)


def test_pause_freezes_every_place_and_resume_restores_it() -> None:
    t = task(example())
    assert t.claim("ann", L, token="a").accepted
    t.now = NOW + timedelta(minutes=10)
    assert t.send(Pause(request_id="p", by="pipeline")).accepted
    assert next_claim_deadline(t.state) is None
    t.now = NOW + timedelta(hours=5)
    assert t.send(Resume(request_id="r", by="pipeline")).accepted
    assert next_claim_deadline(t.state) == t.now + timedelta(minutes=20)


def test_an_untouched_consensus_task_waits_only_for_people() -> None:
    t = task(example())
    assert waits_only_for_people(t.pipeline, t.state)
    assert t.claim("ann", L, token="a").accepted
    assert not waits_only_for_people(t.pipeline, t.state)  # a claim timer now runs


# --------------------------------------------------------------------------- merge and flow


def test_agreement_merges_the_answers_and_skips_adjudication() -> None:
    t = task(example())
    answer(t, "ann", {"sentiment": "positive", "intensity": 4, "topics": ["price"]})
    answer(t, "bob", {"sentiment": "positive", "intensity": 5, "topics": ["price", "quality"]})
    answer(t, "cat", {"sentiment": "negative", "intensity": 4, "topics": ["price"]})
    # 2 of 3 on the sentiment is below the example's threshold (0.75): a fourth place opens.
    assert item(t).needed == 4 and t.state.nodes["label"].values == {}
    answer(t, "dan", {"sentiment": "positive", "intensity": 4, "topics": ["price"]})
    node = t.state.nodes["label"]
    result = item(t).result
    assert result is not None and result.agreed
    assert node.values == {"sentiment": "positive", "intensity": 4, "topics": ["price"]}
    assert result.fields["sentiment"].agreement == 0.75
    assert result.fields["intensity"].agreement == 1.0  # 4, 5, 4, 4: all within 1 of 4
    # Topics: Jaccard of the six pairs 1/2, 1, 1, 1/2, 1/2, 1 -> 3/4; with the merge [price]:
    # 1, 1/2, 1, 1 -> 7/8.
    assert result.fields["topics"].agreement == 0.75
    assert result.fields["topics"].confidence == 0.875
    assert (result.agreement, result.confidence) == (0.75, 0.75)
    assert t.state.nodes["settle"].status == NS.FINISHED  # agreed: nothing to settle
    data = task_data(t.state)
    assert data["label.agreed"] is True and data["agreed"] is True
    assert data["label.answers"] == 4
    # Confidence 0.75 < 0.8: the gate sent it to a double-check.
    assert t.state.nodes["double_check"].status == NS.AVAILABLE
    kinds = [e.data.get("outcome") for e in t.state.timeline if e.kind == EventKind.CONSENSUS]
    assert kinds == ["more", "agreed"]


def test_adaptive_overlap_adds_one_person_at_a_time_up_to_the_maximum() -> None:
    t = task(example())
    answer(t, "ann", {"sentiment": "positive", "intensity": 4})
    answer(t, "bob", {"sentiment": "negative", "intensity": 4})
    answer(t, "cat", {"sentiment": "neutral", "intensity": 4})
    assert item(t).needed == 4 and item(t).open_slots() == 1
    assert t.state.nodes["label"].status == NS.AVAILABLE
    answer(t, "dan", {"sentiment": "neutral", "intensity": 4})
    assert item(t).needed == 5  # 2 of 4 = 0.5 < 0.75
    answer(t, "eve", {"sentiment": "positive", "intensity": 4})
    # Five answers, the maximum: 2/5 is still no agreement, so it goes to adjudication.
    assert item(t).needed == 5
    assert not t.claim("fay", L, node="label", token="f").accepted
    assert t.state.nodes["label"].status == NS.FINISHED
    assert t.state.nodes["settle"].status == NS.AVAILABLE
    outcomes = [e.data["outcome"] for e in t.state.timeline if e.kind == EventKind.CONSENSUS]
    assert outcomes == ["more", "more", "adjudicate"]


def test_the_adjudicator_picks_an_answer_with_a_reason() -> None:
    t = task(example())
    answer(t, "ann", {"sentiment": "positive", "intensity": 2})
    answer(t, "bob", {"sentiment": "negative", "intensity": 2})
    answer(t, "cat", {"sentiment": "neutral", "intensity": 2})
    answer(t, "dan", {"sentiment": "negative", "intensity": 2})
    answer(t, "eve", {"sentiment": "positive", "intensity": 2})
    assert t.state.nodes["settle"].status == NS.AVAILABLE
    # An annotator may not adjudicate; the lead may.
    refused = t.claim("ann", ["lead"], node="settle", token="x")
    assert not refused.accepted and "you answered 'label'" in refused.result.message
    assert t.claim("lea", LEAD, node="settle", token="s").accepted
    no_reason = t.send(
        Adjudicate(request_id="a1", contributor="lea", node="settle", token="s", pick="bob")
    )
    assert not no_reason.accepted and "reason" in no_reason.result.field_errors
    stranger = t.send(
        Adjudicate(
            request_id="a2", contributor="lea", node="settle", token="s", pick="zed", reason="r"
        )
    )
    assert not stranger.accepted and "zed did not answer" in stranger.result.field_errors["pick"]
    out = t.send(
        Adjudicate(
            request_id="a3",
            contributor="lea",
            node="settle",
            token="s",
            pick="bob",
            values={"intensity": 3},
            reason="sarcasm: the praise is ironic",
        )
    )
    assert out.accepted, out.result
    assert t.state.nodes["label"].values["sentiment"] == "negative"
    assert t.state.nodes["label"].values["intensity"] == 3
    result = item(t).result
    assert result is not None
    assert (result.adjudicated_by, result.picked) == ("lea", "bob")
    assert t.state.nodes["settle"].status == NS.FINISHED
    event = next(e for e in t.state.timeline if e.kind == EventKind.ADJUDICATED)
    assert event.data["reason"] == "sarcasm: the praise is ironic"
    assert event.data["before"]["sentiment"] in {"positive", "negative"}
    # Every answer is kept, with who gave it.
    assert [a.by for a in item(t).answers] == ["ann", "bob", "cat", "dan", "eve"]


@pytest.mark.parametrize(
    ("action", "status"),
    [("escalate", TaskStatus.ESCALATED), ("quarantine", TaskStatus.QUARANTINED)],
)
def test_disagreement_can_escalate_or_quarantine(action: str, status: TaskStatus) -> None:
    pipeline = build({"annotators": 2, "on_disagreement": action}, adjudicate=False)
    t = task(pipeline)
    answer(t, "ann", {"sentiment": "positive"})
    answer(t, "bob", {"sentiment": "negative"})
    assert t.state.status == status
    assert t.state.nodes["label"].status == NodeStatus(status.value)
    if action == "escalate":
        assert t.send(Deescalate(request_id="d", admin="root")).accepted
    else:
        out = t.send(
            ResolveQuarantine(request_id="q", admin="root", action=QuarantineAction.FINISH)
        )
        assert out.accepted, out.result.message
    assert t.state.status == TaskStatus.FINISHED
    assert t.state.nodes["label"].values == {"sentiment": "positive"}  # tie: first given


def test_quarantine_rework_opens_a_new_round_for_new_people() -> None:
    pipeline = build({"annotators": 2, "on_disagreement": "quarantine"}, adjudicate=False)
    t = task(pipeline)
    answer(t, "ann", {"sentiment": "positive"})
    answer(t, "bob", {"sentiment": "negative"})
    out = t.send(
        ResolveQuarantine(
            request_id="q", admin="root", action=QuarantineAction.REWORK, reason="unclear"
        )
    )
    assert out.accepted
    assert item(t).round == 2 and item(t).answers == []
    assert not t.claim("ann", L, node="label", token="a").accepted
    answer(t, "cat", {"sentiment": "negative"})
    answer(t, "dan", {"sentiment": "negative"})
    assert t.state.status == TaskStatus.FINISHED
    assert [a.by for a in item(t).earlier] == ["ann", "bob"]


def test_reviewers_are_not_annotators_and_a_fail_opens_a_new_round() -> None:
    pipeline = build({"annotators": 2, "on_disagreement": "quarantine"}, review=True)
    t = task(pipeline)
    answer(t, "ann", {"sentiment": "positive"})
    answer(t, "bob", {"sentiment": "positive"})
    assert t.state.nodes["label"].status == NS.SUBMITTED
    refused = t.claim("ann", ["lead"], node="check", token="x")
    assert not refused.accepted
    assert "a reviewer of a consensus node is not one of its annotators" in refused.result.message
    people = consensus_people(pipeline, t.state.nodes)
    assert people["check"] == {"ann": "blocked", "bob": "blocked"}
    assert people["label"] == {"ann": "answered", "bob": "answered"}
    assert t.claim("rev", ["lead"], node="check", token="r").accepted
    out = t.send(
        Review(
            request_id="rv",
            contributor="rev",
            node="check",
            token="r",
            verdict=Verdict.FAIL,
            reason="both missed the sarcasm",
        )
    )
    assert out.accepted
    assert t.state.nodes["label"].status == NS.AVAILABLE
    assert item(t).round == 2
    assert not t.claim("bob", L, node="label", token="b2").accepted
    answer(t, "cat", {"sentiment": "negative"})
    answer(t, "dan", {"sentiment": "negative"})
    assert t.state.nodes["label"].values == {"sentiment": "negative"}
    assert t.state.nodes["check"].status == NS.AVAILABLE


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("consensus", "extra", "message"),
    [
        ({"annotators": 1}, {}, "annotators"),
        ({"annotators": 3, "max_annotators": 2}, {}, "max_annotators (2) is below annotators (3)"),
        ({"annotators": 2, "fields": ["nope"]}, {}, "consensus fields names 'nope'"),
        (
            {"annotators": 2, "rules": {"sentiment": {"agreement": "rank"}}},
            {},
            "agreement 'rank' does not fit a select field",
        ),
        ({"annotators": 2}, {"adjudicate": False}, "no adjudicate node settles 'label'"),
        (
            {"annotators": 2, "on_disagreement": "maybe"},
            {},
            "unknown disagreement action 'maybe'; use one of: adjudicate, escalate, quarantine",
        ),
        (
            {"annotators": 2, "rules": {"sentiment": {"tolerence": 1}}},
            {},
            "unknown setting 'consensus.rules.sentiment.tolerence' (did you mean 'tolerance'?)",
        ),
        ({"annotators": 2, "bogus": 1}, {}, "allowed settings: annotators, max_annotators"),
    ],
)
def test_consensus_settings_are_validated(
    consensus: dict[str, Any], extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        build(consensus, **extra)
    assert message in str(raised.value)


def test_an_adjudicate_node_must_follow_a_consensus_node() -> None:
    with pytest.raises(ValueError) as raised:
        validate_pipeline(
            {
                "name": "x",
                "nodes": [
                    {"name": "start", "kind": "start", "next": ["a"]},
                    {
                        "name": "a",
                        "kind": "subtask",
                        "fields": [{"name": "f", "type": "boolean"}],
                        "next": ["s"],
                    },
                    {"name": "s", "kind": "adjudicate", "next": ["end"]},
                    {"name": "end", "kind": "end"},
                ],
            }
        )
    assert "'a' before it is not a consensus subtask" in str(raised.value)
