"""The per-item merge of consensus answers (``workflows/consensus.py``), checked against figures
worked out by hand, plus properties that hold for any answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.consensus import merge
from workflows.graph import NodeSpec
from workflows.messages import Answer

AT = datetime(2026, 1, 1, tzinfo=UTC)


def node(form: list[dict[str, Any]], **consensus: Any) -> NodeSpec:
    return NodeSpec.model_validate(
        {
            "name": "n",
            "kind": "subtask",
            "fields": form,
            "consensus": {"annotators": 2, **consensus},
        }
    )


def answers(*values: dict[str, Any]) -> list[Answer]:
    return [Answer(by=f"p{i}", values=v, at=AT) for i, v in enumerate(values)]


SELECT = {"name": "s", "type": "select", "options": ["a", "b", "c"]}


def test_majority_share_and_tie_rules() -> None:
    spec = node([SELECT])
    result = merge(spec, answers({"s": "b"}, {"s": "a"}, {"s": "b"}, {"s": "c"}))
    assert result.values == {"s": "b"}
    assert result.fields["s"].agreement == 0.5 and result.fields["s"].confidence == 0.5
    assert not result.agreed  # 0.5 < 0.66
    tie = answers({"s": "c"}, {"s": "a"})
    assert merge(spec, tie).values == {"s": "c"}  # first given
    by_order = node([SELECT], rules={"s": {"tie": "option_order"}})
    assert merge(by_order, tie).values == {"s": "a"}
    strict = node([SELECT], rules={"s": {"tie": "disagree"}}, threshold=0.5)
    result = merge(strict, tie)
    assert result.values == {} and not result.agreed
    assert result.fields["s"].agreement == 0.5 and result.fields["s"].confidence == 0.0


def test_tolerance_mean_and_median() -> None:
    rating = {"name": "r", "type": "rating", "min": 1, "max": 5}
    number = {"name": "x", "type": "number"}
    spec = node([rating, number], rules={"r": {"tolerance": 1}, "x": {"tolerance": 0.5}})
    result = merge(spec, answers({"r": 2, "x": 1.0}, {"r": 3, "x": 1.4}, {"r": 5, "x": 3.0}))
    # ratings 2, 3, 5: median 3, within 1: 2 and 3 -> 2/3; median_low 3
    assert result.fields["r"].agreement == pytest.approx(2 / 3, abs=1e-6)
    assert result.values["r"] == 3
    # numbers 1.0, 1.4, 3.0: median 1.4, within 0.5: 1.0 and 1.4 -> 2/3; mean 1.8
    assert result.fields["x"].agreement == pytest.approx(2 / 3, abs=1e-6)
    assert result.values["x"] == pytest.approx(1.8)
    mean = node([rating], rules={"r": {"aggregate": "mean"}})
    assert merge(mean, answers({"r": 2}, {"r": 3}, {"r": 5})).values["r"] == 3  # 3.33 rounded


def test_datetimes_agree_within_seconds() -> None:
    when = {"name": "t", "type": "datetime"}
    spec = node([when], rules={"t": {"tolerance": 60}})
    result = merge(
        spec,
        answers(
            {"t": "2026-01-01T10:00:00+00:00"},
            {"t": "2026-01-01T10:00:30+00:00"},
            {"t": "2026-01-01T12:00:00+00:00"},
        ),
    )
    assert result.fields["t"].agreement == pytest.approx(2 / 3, abs=1e-6)
    assert result.values["t"] == "2026-01-01T10:00:30+00:00"  # the middle answer


def test_multi_select_overlap_and_set_vote() -> None:
    tags = {"name": "m", "type": "multi_select", "options": ["x", "y", "z"], "required": False}
    spec = node([tags])
    result = merge(spec, answers({"m": ["x", "y"]}, {"m": ["x"]}, {"m": ["x", "z"]}))
    # Jaccard: {x,y}/{x} 1/2, {x,y}/{x,z} 1/3, {x}/{x,z} 1/2 -> mean 4/9
    assert result.fields["m"].agreement == pytest.approx(4 / 9, abs=1e-6)
    assert result.values["m"] == ["x"]  # y and z: 1 of 3 < 0.5
    loose = node([tags], rules={"m": {"vote_threshold": 0.3}})
    assert merge(loose, answers({"m": ["x", "y"]}, {"m": ["x"]}, {"m": ["z", "x"]})).values[
        "m"
    ] == ["x", "y", "z"]


def test_ranking_kendall_and_borda() -> None:
    rank = {"name": "k", "type": "ranking", "options": ["a", "b", "c"]}
    spec = node([rank])
    result = merge(
        spec, answers({"k": ["a", "b", "c"]}, {"k": ["a", "c", "b"]}, {"k": ["c", "b", "a"]})
    )
    # tau(abc, acb) = 1/3, tau(abc, cba) = -1 -> 0, tau(acb, cba) = -1/3 -> 0; mean 1/9
    assert result.fields["k"].agreement == pytest.approx(1 / 9, abs=1e-6)
    # Borda: a 3+3+1 = 7, c 1+2+3 = 6, b 2+1+2 = 5
    assert result.values["k"] == ["a", "c", "b"]


def test_free_text_is_carried_or_sent_to_adjudication() -> None:
    text = {"name": "note", "type": "short_text"}
    carried = merge(node([SELECT, text]), answers({"s": "a", "note": "x"}, {"s": "a", "note": "y"}))
    assert carried.agreed and carried.values == {"s": "a"}
    assert carried.fields["note"].agreement is None
    forced = node([SELECT, text], rules={"note": {"aggregate": "adjudicate"}})
    assert not merge(forced, answers({"s": "a", "note": "x"}, {"s": "a", "note": "x"})).agreed


def test_only_the_counted_fields_decide() -> None:
    other = {"name": "o", "type": "select", "options": ["a", "b"]}
    spec = node([SELECT, other], fields=["s"])
    result = merge(spec, answers({"s": "a", "o": "a"}, {"s": "a", "o": "b"}))
    assert result.agreed and result.agreement == 1.0
    assert result.fields["o"].agreement == 0.5  # figured, merged, but not counted


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=9))
def test_majority_properties(votes: list[str]) -> None:
    spec = node([SELECT])
    result = merge(spec, answers(*({"s": v} for v in votes)))
    winner = result.values["s"]
    assert winner in votes
    assert votes.count(winner) == max(votes.count(v) for v in set(votes))
    assert result.fields["s"].agreement == pytest.approx(votes.count(winner) / len(votes), abs=1e-6)
    assert merge(spec, answers(*({"s": v} for v in votes))) == result  # deterministic
