"""Consensus Analytics (store/consensus_analytics.py) over real node rows, SQLite and PostgreSQL.

Alpha is checked against the ``krippendorff`` package on reliability data the test builds
itself (annotators x units) from the same answers, and against Krippendorff's worked example;
percent agreement, agreement with the final answer and kappa against hand computation.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import krippendorff
import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from store.consensus_analytics import (
    CSV_COLUMNS,
    ConsensusAgreement,
    NodeAgreement,
    NotConsensus,
    consensus_agreement,
    write_csv,
)
from store.db import transaction
from store.explorer import TaskFilter
from tests.support.consensus_rows import Item, consensus_pipeline, write_items
from workflows.errors import UnknownPipeline

# Krippendorff (2011): two observers, ten units, binary values; alpha = 8/84 (see
# tests/store/test_reliability.py), kappa = 1/11, 6 of 10 units agree.
OBSERVER_A = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
OBSERVER_B = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
PEOPLE = ["ana", "ben", "cai", "dee", "eli"]


def _name() -> str:
    return f"consensus-{uuid.uuid4().hex[:8]}"


def report(sessions: sessionmaker[Session], pipeline: str, **kwargs: Any) -> ConsensusAgreement:
    with transaction(sessions) as session:
        return consensus_agreement(session, pipeline, **kwargs)


def only_node(result: ConsensusAgreement) -> NodeAgreement:
    assert [n.node for n in result.nodes] == ["label"]
    return result.nodes[0]


def test_the_classic_two_observer_example(sessions: sessionmaker[Session]) -> None:
    pipeline = consensus_pipeline(_name())
    items = [
        # The final answer is ana's every time: merged with ben's, or settled by an adjudicator.
        Item(
            answers={"ana": {"spam": bool(a)}, "ben": {"spam": bool(b)}},
            final={"spam": bool(a)},
            agreed=a == b,
            adjudicated_by=None if a == b else "lead",
        )
        for a, b in zip(OBSERVER_A, OBSERVER_B, strict=True)
    ]
    write_items(sessions, pipeline, items)

    node = only_node(report(sessions, pipeline.name))
    assert (node.items, node.final, node.adjudicated, node.answers) == (10, 10, 4, 20)
    assert node.contributors == 2
    spam = next(f for f in node.fields if f.field == "spam")
    assert (spam.level, spam.unit, spam.items, spam.answers) == ("nominal", "item", 10, 20)
    assert spam.alpha == pytest.approx(8 / 84)
    assert spam.percent_agreement == pytest.approx(6 / 10)
    # Fields nobody answered are listed with why they have no figures.
    sentiment = next(f for f in node.fields if f.field == "sentiment")
    assert (sentiment.items, sentiment.alpha, sentiment.percent_agreement) == (0, None, None)
    assert sentiment.note is not None and "no item" in sentiment.note
    notes = next(f for f in node.fields if f.field == "notes")
    assert (notes.level, notes.note) == (None, "free text is not compared")

    ana, ben = node.by_contributor
    assert (ana.contributor, ana.answers, ben.contributor, ben.answers) == ("ana", 10, "ben", 10)
    ana_spam = next(f for f in ana.fields if f.field == "spam")
    ben_spam = next(f for f in ben.fields if f.field == "spam")
    assert (ana_spam.compared, ana_spam.agreed, ana_spam.share) == (10, 10, 1.0)
    assert (ben_spam.compared, ben_spam.agreed, ben_spam.share) == (10, 6, 0.6)
    assert all(f.field != "notes" for f in ana.fields)

    (pair,) = node.pairs
    assert (pair.a, pair.b, pair.shared) == ("ana", "ben", 10)
    pair_spam = next(f for f in pair.fields if f.field == "spam")
    assert pair_spam.items == 10
    assert pair_spam.percent_agreement == pytest.approx(0.6)
    assert pair_spam.kappa == pytest.approx(1 / 11)


def test_percent_agreement_and_final_agreement_by_hand(sessions: sessionmaker[Session]) -> None:
    pipeline = consensus_pipeline(_name())
    items = [
        # sentiment: 1 of 3 pairs agree; intensity (tolerance 1): 3~4, 4~5 agree, 3/5 not: 2/3;
        # topics as sets: ana = cai, ben differs: 1/3; order: all the same: 1.
        Item(
            answers={
                "ana": {
                    "sentiment": "positive",
                    "intensity": 3,
                    "topics": ["price", "support"],
                    "order": ["a", "b", "c"],
                },
                "ben": {
                    "sentiment": "positive",
                    "intensity": 4,
                    "topics": ["price"],
                    "order": ["a", "b", "c"],
                },
                "cai": {
                    "sentiment": "negative",
                    "intensity": 5,
                    "topics": ["support", "price"],
                    "order": ["a", "b", "c"],
                },
            },
            final={
                "sentiment": "positive",
                "intensity": 4,
                "topics": ["price", "support"],
                "order": ["a", "b", "c"],
            },
        ),
        # sentiment: all agree: 1; intensity: 1 and 5 are 4 apart: 0 of 1; topics: both left
        # empty (None and []): 1; order: reversed: 0.
        Item(
            answers={
                "ana": {
                    "sentiment": "neutral",
                    "intensity": 1,
                    "topics": None,
                    "order": ["a", "b", "c"],
                },
                "ben": {
                    "sentiment": "neutral",
                    "intensity": 5,
                    "topics": [],
                    "order": ["c", "b", "a"],
                },
            },
            final={"sentiment": "neutral", "intensity": 1, "topics": [], "order": ["a", "b", "c"]},
            adjudicated_by="lead",
            agreed=False,
        ),
        # Not settled yet (awaiting an adjudicator): counts for agreement, not for the final.
        # sentiment: 0 of 1; intensity 2~2: 1; topics: 0; order: 1.
        Item(
            answers={
                "ben": {
                    "sentiment": "negative",
                    "intensity": 2,
                    "topics": ["quality"],
                    "order": ["b", "a", "c"],
                },
                "cai": {
                    "sentiment": "positive",
                    "intensity": 2,
                    "topics": ["price"],
                    "order": ["b", "a", "c"],
                },
            },
            final={"sentiment": "negative", "intensity": 2, "topics": [], "order": ["b", "a"]},
            agreed=False,
        ),
        # An earlier round's answers do not count; one answer alone compares nothing.
        Item(
            answers={"eli": {"sentiment": "positive", "intensity": 4}},
            earlier={"ana": {"sentiment": "negative"}, "dee": {"sentiment": "neutral"}},
        ),
    ]
    write_items(sessions, pipeline, items)

    node = only_node(report(sessions, pipeline.name, min_shared=1))
    assert (node.items, node.final, node.adjudicated, node.answers) == (4, 2, 1, 8)
    fields = {f.field: f for f in node.fields}
    assert fields["sentiment"].percent_agreement == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert fields["intensity"].percent_agreement == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert fields["topics"].percent_agreement == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert fields["order"].percent_agreement == pytest.approx((1 + 0 + 1) / 3)
    assert (fields["sentiment"].items, fields["sentiment"].answers) == (3, 7)

    people = {c.contributor: {f.field: f for f in c.fields} for c in node.by_contributor}
    assert sorted(people) == ["ana", "ben", "cai", "eli"]
    # ana: items 1 and 2 are final. sentiment 2/2; intensity 3 vs 4 (within 1) and 1 = 1: 2/2;
    # topics {price, support} = final, None = []: 2/2; order 2/2.
    assert {k: (v.compared, v.agreed) for k, v in people["ana"].items() if v.compared} == {
        "sentiment": (2, 2),
        "intensity": (2, 2),
        "topics": (2, 2),
        "order": (2, 2),
    }
    # ben: sentiment 2/2; intensity 4 = 4, 5 vs 1: 1/2; topics [price] vs both: 1/2
    # ([] = []); order 1/2.
    ben = people["ben"]
    assert (ben["intensity"].compared, ben["intensity"].agreed) == (2, 1)
    assert ben["intensity"].share == pytest.approx(0.5)
    assert (ben["topics"].agreed, ben["order"].agreed) == (1, 1)
    # eli's only item is unsettled: nothing compared.
    assert all(f.compared == 0 and f.share is None for f in people["eli"].values())

    pairs = {(p.a, p.b): p for p in node.pairs}
    assert sorted(pairs) == [("ana", "ben"), ("ana", "cai"), ("ben", "cai")]
    ab = {f.field: f for f in pairs[("ana", "ben")].fields}
    assert pairs[("ana", "ben")].shared == 2
    assert (ab["sentiment"].items, ab["sentiment"].percent_agreement) == (2, 1.0)
    # Both used positive and neutral alike: kappa 1.
    assert ab["sentiment"].kappa == pytest.approx(1.0)
    assert ab["intensity"].percent_agreement == pytest.approx(0.5)
    # Pairs are listed from min_shared shared items.
    node = only_node(report(sessions, pipeline.name, min_shared=2))
    assert [(p.a, p.b) for p in node.pairs] == [("ana", "ben"), ("ben", "cai")]


def test_alpha_of_every_field_type_equals_the_krippendorff_package(
    sessions: sessionmaker[Session],
) -> None:
    rng = random.Random(7)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    items = []
    for _ in range(30):
        people = rng.sample(PEOPLE, rng.randint(1, 5))
        answers = {}
        for person in people:
            answers[person] = {
                "sentiment": rng.choice(["positive", "negative", "neutral"]),
                "spam": rng.random() < 0.3,
                "better": rng.choice(["left", "right", "tie"]),
                "topics": rng.sample(["price", "quality", "support"], rng.randint(0, 2)),
                "intensity": rng.randint(1, 5),
                "count": rng.choice([0, 1, 2, 10]),
                "order": rng.sample(["a", "b", "c"], 3),
                "score": rng.choice([0.5, 1.25, 3.0, 7.5]),
                "when": (base + timedelta(hours=rng.randint(0, 48))).isoformat(),
                "notes": "some text",
            }
            if rng.random() < 0.1:
                answers[person]["sentiment"] = None  # an optional answer left empty
        items.append(Item(answers=answers))
    pipeline = consensus_pipeline(_name())
    write_items(sessions, pipeline, items)

    node = only_node(report(sessions, pipeline.name))
    fields = {f.field: f for f in node.fields}
    levels: list[tuple[str, Literal["nominal", "ordinal", "interval"]]] = [
        ("sentiment", "nominal"),
        ("spam", "nominal"),
        ("better", "nominal"),
        ("topics", "nominal"),
        ("intensity", "ordinal"),
        ("count", "ordinal"),
        ("order", "ordinal"),
        ("score", "interval"),
        ("when", "interval"),
    ]
    for name, level in levels:
        data = reliability_data(items, name)
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert fields[name].level == level, name
        assert fields[name].alpha == pytest.approx(expected, abs=1e-9), name
    assert fields["notes"].alpha is None


def reliability_data(items: list[Item], name: str) -> np.ndarray:
    """Annotators x units, as the field's unit is defined: the item; each option of a
    multi_select (1 chosen, 0 not); each ranked item of a ranking (its place)."""
    columns: list[dict[str, float]] = []
    for item in items:
        given = {p: v[name] for p, v in item.answers.items() if v.get(name) is not None}
        if name == "topics":
            for option in ["price", "quality", "support"]:
                columns.append({p: float(option in v) for p, v in given.items()})
        elif name == "order":
            for ranked in ["a", "b", "c"]:
                columns.append({p: float(v.index(ranked) + 1) for p, v in given.items()})
        else:
            columns.append({p: code(name, v) for p, v in given.items()})
    data = np.full((len(PEOPLE), len(columns)), np.nan)
    for u, column in enumerate(columns):
        for person, value in column.items():
            data[PEOPLE.index(person), u] = value
    return data


def code(name: str, value: Any) -> float:
    if name == "when":
        return datetime.fromisoformat(value).timestamp()
    if name in ("sentiment", "better"):
        return float(["positive", "negative", "neutral", "left", "right", "tie"].index(value))
    return float(value)


def test_filters_and_nodes(sessions: sessionmaker[Session]) -> None:
    pipeline = consensus_pipeline(_name())
    agree = {"ana": {"spam": True}, "ben": {"spam": True}}
    differ = {"ana": {"spam": True}, "ben": {"spam": False}}
    write_items(
        sessions,
        pipeline,
        [Item(answers=agree, tags=["gold"]), Item(answers=differ), Item(answers=agree)],
    )
    node = only_node(report(sessions, pipeline.name, criteria=TaskFilter(tag="gold")))
    assert node.items == 1
    spam = next(f for f in node.fields if f.field == "spam")
    assert spam.percent_agreement == 1.0
    assert spam.alpha is None
    assert spam.note is not None and "same value" in spam.note
    node = only_node(report(sessions, pipeline.name, node="label"))
    assert node.items == 3


def test_errors(sessions: sessionmaker[Session]) -> None:
    pipeline = consensus_pipeline(_name())
    plain = consensus_pipeline(_name(), consensus=False)
    write_items(sessions, pipeline, [])
    write_items(sessions, plain, [])
    with pytest.raises(UnknownPipeline, match="no pipeline named 'nope'"):
        report(sessions, "nope")
    with pytest.raises(NotConsensus, match="has no consensus node"):
        report(sessions, plain.name)
    with pytest.raises(NotConsensus, match="consensus nodes: label"):
        report(sessions, pipeline.name, node="start")
    with pytest.raises(ValueError, match="min_shared"):
        report(sessions, pipeline.name, min_shared=0)
    # A consensus node without items yet: counts of zero, no figures.
    node = only_node(report(sessions, pipeline.name))
    assert (node.items, node.answers, node.by_contributor, node.pairs) == (0, 0, [], [])
    assert all(f.alpha is None for f in node.fields)


def test_every_stored_version_counts(sessions: sessionmaker[Session]) -> None:
    """A field counted only in an older version still reports; the current version decides."""
    old = consensus_pipeline(_name())
    new_definition = json.loads(old.model_dump_json())
    label = next(n for n in new_definition["nodes"] if n["name"] == "label")
    label["consensus"]["fields"] = ["spam"]
    new = type(old).model_validate(new_definition)
    write_items(
        sessions,
        old,
        [
            Item(
                answers={
                    "ana": {"sentiment": "positive", "spam": True},
                    "ben": {"sentiment": "positive", "spam": False},
                }
            )
        ],
    )
    write_items(
        sessions, new, [Item(answers={"ana": {"spam": True}, "ben": {"spam": True}})], prefix="new"
    )
    node = only_node(report(sessions, old.name))
    fields = {f.field: f for f in node.fields}
    assert fields["spam"].items == 2
    assert fields["sentiment"].items == 1
    assert not math.isnan(fields["spam"].percent_agreement or 0)


def test_csv(sessions: sessionmaker[Session]) -> None:
    pipeline = consensus_pipeline(_name())
    items = [
        Item(
            answers={"ana": {"spam": bool(a)}, "ben": {"spam": bool(b)}},
            final={"spam": bool(a)},
            agreed=a == b,
            adjudicated_by=None if a == b else "lead",
        )
        for a, b in zip(OBSERVER_A, OBSERVER_B, strict=True)
    ]
    write_items(sessions, pipeline, items)
    out = io.StringIO()
    write_csv(report(sessions, pipeline.name), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    by_table = Counter(r["table"] for r in rows)
    # 1 node; 10 counted fields, 9 compared (not notes): 2 people x 9; 1 pair + its 9.
    assert by_table == {"node": 1, "field": 10, "contributor": 18, "pair": 10}
    spam = next(r for r in rows if r["table"] == "field" and r["field"] == "spam")
    assert float(spam["alpha"]) == pytest.approx(8 / 84)
    assert (spam["level"], spam["items"], spam["answers"]) == ("nominal", "10", "20")
    sentiment = next(r for r in rows if r["table"] == "field" and r["field"] == "sentiment")
    assert sentiment["alpha"] == "" and "no item" in sentiment["note"]
    pair = next(r for r in rows if r["table"] == "pair" and r["field"] == "spam")
    assert (pair["contributor"], pair["other"], pair["items"]) == ("ana", "ben", "10")
    assert float(pair["kappa"]) == pytest.approx(1 / 11)
    ben = next(
        r
        for r in rows
        if r["table"] == "contributor" and r["contributor"] == "ben" and r["field"] == "spam"
    )
    assert (ben["answers"], ben["compared"], ben["agreed"], float(ben["share"])) == (
        "10",
        "10",
        "6",
        0.6,
    )
