"""What the pages make of a consensus item, without a browser: an open item is blind on the
contributor pages, the answers table lines answers up with the merge, an adjudication sends only
its corrections over the picked answer, and the agreement filter reads shares and percentages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.web.common import PageError
from conveyor.web.consensus import answer_table, blind_view, corrections, node_table
from conveyor.web.explorer import filter_from
from tests.web.test_consensus import consensus_label
from workflows.consensus import merge
from workflows.messages import (
    Answer,
    ClaimInfo,
    ConsensusState,
    NodeState,
    NodeStatus,
    Slot,
    TaskStatus,
    TaskView,
    TimelineEvent,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
PIPELINE = consensus_label("consensus-views")
LABEL = PIPELINE.node("label")


def _answer(by: str, sentiment: str, intensity: int, **more: Any) -> Answer:
    values = {"sentiment": sentiment, "intensity": intensity, **more}
    return Answer(by=by, values=values, at=NOW)


ANSWERS = [
    _answer("dan", "negative", 2, notes="late", topics=["delivery", "support"]),
    _answer("cy", "positive", 4, notes="fine", topics=["support", "delivery"]),
    _answer("eve", "negative", 3, topics=["price"]),
]


def _view(status: NodeStatus, answers: list[Answer], *, values: dict[str, Any]) -> TaskView:
    claim = ClaimInfo(holder="fay", token="t", claimed_at=NOW, expires_at=None)
    item = ConsensusState(
        needed=3,
        slots=[Slot(claim=claim, draft={"notes": "fay's draft"})],
        answers=answers,
        result=merge(LABEL, answers) if answers else None,
    )
    label = NodeState(name="label", status=status, values=values, consensus=item)
    event = TimelineEvent(
        seq=1, at=NOW, kind="submitted", actor="dan", node="label", message="m", data={}
    )
    return TaskView(
        workflow_id="p/t",
        task_key="t",
        pipeline="p",
        pipeline_hash="h",
        status=TaskStatus.IN_PROGRESS,
        nodes=[NodeState(name="start", status=NodeStatus.FINISHED), label],
        data={"text": "a text"},
        tags=[],
        created_at=NOW,
        updated_at=NOW,
        finished_at=None,
        hold_reason=None,
        seq=1,
        timeline=[event],
    )


@pytest.mark.parametrize("status", [NodeStatus.AVAILABLE, NodeStatus.CLAIMED])
def test_an_open_item_is_blind(status: NodeStatus) -> None:
    # a new round keeps the last round's merged answer in values: blind too
    view = blind_view(_view(status, ANSWERS[:2], values={"sentiment": "negative"}))
    label = next(n for n in view.nodes if n.name == "label")
    assert label.consensus is None and label.values == {} and label.draft == {}
    assert view.timeline == []
    text = view.model_dump_json()
    for secret in ("late", "fine", "fay's draft", "negative", "positive"):
        assert secret not in text


def test_a_settled_item_is_shown_as_it_is() -> None:
    view = _view(NodeStatus.FINISHED, ANSWERS, values={"sentiment": "negative"})
    assert blind_view(view) == view


def test_the_answers_table_lines_answers_up_with_the_merge() -> None:
    label = _view(NodeStatus.FINISHED, ANSWERS, values={}).nodes[1]
    table = node_table(LABEL, label)
    assert table is not None and [a.by for a in table.answers] == ["dan", "cy", "eve"]
    rows = {r.spec.name: r for r in table.rows}
    assert "text" not in rows  # the item itself, not an answer
    assert [c.same for c in rows["sentiment"].cells] == [True, False, True]
    assert rows["sentiment"].merged is not None and rows["sentiment"].merged.value == "negative"
    # 2 of 3 (0.67) is below the example's threshold of 0.75: the row is marked.
    assert rows["sentiment"].counted and rows["sentiment"].below is True
    # a multi-select answer agrees with the merge whatever the order of its options
    assert rows["topics"].merged is not None
    assert rows["topics"].merged.value == ["delivery", "support"]
    assert [c.same for c in rows["topics"].cells] == [True, True, False]
    assert not rows["notes"].counted and rows["notes"].cells[2].value is None


def test_a_field_below_the_threshold_is_marked() -> None:
    table = answer_table(
        LABEL.fields,
        ANSWERS,
        merge(LABEL, ANSWERS),
        counted={"sentiment", "intensity"},
        threshold=0.9,
    )
    rows = {r.spec.name: r for r in table.rows}
    assert rows["sentiment"].below and not rows["topics"].below  # topics does not count here


def test_an_adjudication_sends_only_its_corrections_over_the_pick() -> None:
    form = {"sentiment": "negative", "intensity": 3, "notes": None, "topics": None}
    dan = ANSWERS[0]
    assert corrections(form, dan) == {
        "intensity": 3,
        "notes": None,
        "topics": None,
    }
    assert corrections(form, None) == form


class _Query(dict[str, str]):
    def getlist(self, key: str) -> list[str]:
        return [self[key]] if key in self else []


@pytest.mark.parametrize(
    ("text", "share"), [("0.6", 0.6), ("60", 0.6), ("60%", 0.6), ("1", 1.0), ("", None)]
)
def test_the_agreement_filter_reads_shares_and_percentages(text: str, share: float | None) -> None:
    assert filter_from(_Query(agreement_below=text)).agreement_below == share


@pytest.mark.parametrize("text", ["much", "150%"])
def test_a_bad_agreement_filter_says_so(text: str) -> None:
    with pytest.raises(PageError) as caught:
        filter_from(_Query(agreement_below=text))
    assert caught.value.status == 400
