"""Dawid-Skene re-aggregation (store/consensus_analytics/dawid_skene.py) over real node rows,
SQLite and PostgreSQL: the same estimates, posteriors, priors and confusion matrices as
crowd-kit's ``DawidSkene`` on the same answers, beside each item's majority and final answer;
the recorded values stay as they were."""

from __future__ import annotations

import csv
import io
import random
import sys
import uuid
from collections import Counter

import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.consensus_analytics import (
    DAWID_SKENE_COLUMNS,
    DawidSkeneReport,
    NotCategorical,
    QualityExtraMissing,
    UnknownRun,
    dawid_skene,
    dawid_skene_runs,
    save_dawid_skene,
    stored_dawid_skene,
    write_dawid_skene_csv,
)
from store.db import transaction
from store.explorer import TaskFilter
from store.models import NodeRow
from tests.support.consensus_rows import Item, consensus_pipeline, write_items
from workflows.errors import UnknownPipeline

# crowd-kit's own code, under pandas 3 (the tests call it directly to compare).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:crowdkit")

LABELS = ["positive", "negative", "neutral"]
SWAP = {"positive": "negative", "negative": "positive", "neutral": "neutral"}


def items_of(seed: int) -> list[Item]:
    """Forty items, three of five annotators each: ana, ben and cai mostly right, dee right
    half the time, eli always swapping positive and negative."""
    rng = random.Random(seed)
    skill = {"ana": 0.95, "ben": 0.9, "cai": 0.85, "dee": 0.5}
    items = []
    for _ in range(40):
        truth = rng.choice(LABELS)
        answers = {}
        for who in sorted(rng.sample([*skill, "eli"], 3)):
            if who == "eli":
                label = SWAP[truth]
            else:
                label = truth if rng.random() < skill[who] else rng.choice(LABELS)
            answers[who] = {"sentiment": label, "spam": rng.random() < 0.2, "intensity": 3}
        items.append(Item(answers=answers, final={"sentiment": truth}))
    return items


def crowd_kit(items: list[Item], ids: list[str], field: str = "sentiment") -> DawidSkene:
    rows = sorted(
        (wid, who, values[field])
        for wid, item in zip(ids, items, strict=True)
        for who, values in item.answers.items()
    )
    return DawidSkene(n_iter=100).fit(pd.DataFrame(rows, columns=["task", "worker", "label"]))


def run(sessions: sessionmaker[Session], pipeline: str, **kwargs: object) -> DawidSkeneReport:
    with transaction(sessions) as session:
        return dawid_skene(session, pipeline, **kwargs)  # type: ignore[arg-type]


def test_equals_crowd_kit(sessions: sessionmaker[Session]) -> None:
    pipeline = consensus_pipeline(f"ds-{uuid.uuid4().hex[:8]}")
    items = items_of(11)
    ids = write_items(sessions, pipeline, items)
    with transaction(sessions) as session:
        before = {r.workflow_id: r.values for r in session.scalars(select(NodeRow))}

    report = run(sessions, pipeline.name, field="sentiment")
    model = crowd_kit(items, ids)
    assert model.labels_ is not None and model.probas_ is not None
    assert model.priors_ is not None and model.errors_ is not None

    assert (report.node, report.field, report.items) == ("label", "sentiment", 40)
    assert report.labels == sorted(LABELS)
    assert report.iterations == len(model.loss_history_)
    assert report.priors == pytest.approx({k: float(v) for k, v in model.priors_.items()})
    assert [i.workflow_id for i in report.by_item] == sorted(ids)
    by_id = {i.workflow_id: i for i in report.by_item}
    differing = 0
    truth = {wid: (item.final or {}).get("sentiment") for wid, item in zip(ids, items, strict=True)}
    for wid, item in zip(ids, items, strict=True):
        found = by_id[wid]
        assert found.estimate == model.labels_[wid]
        assert found.probability == pytest.approx(float(model.probas_.loc[wid, found.estimate]))
        given = Counter(values["sentiment"] for values in item.answers.values())
        top = given.most_common()
        majority = None if len(top) > 1 and top[0][1] == top[1][1] else top[0][0]
        assert (found.majority, found.answers, found.final) == (
            majority,
            3,
            truth[wid],
        )
        assert found.majority_share == pytest.approx(top[0][1] / 3)
        assert found.differs == (majority is not None and majority != found.estimate)
        differing += found.differs
    assert report.differing == differing > 0
    # Reading eli's swap, the model finds the true answer more often than the majority does.
    right = sum(i.estimate == truth[i.workflow_id] for i in report.by_item)
    majority_right = sum(i.majority == truth[i.workflow_id] for i in report.by_item)
    assert right > majority_right

    people = {c.contributor: c for c in report.contributors}
    assert sorted(people) == ["ana", "ben", "cai", "dee", "eli"]
    for who, person in people.items():
        errors = model.errors_.loc[who]
        for true in LABELS:
            for given_label in errors.index:
                assert person.confusion[true][given_label] == pytest.approx(
                    float(errors.loc[given_label, true])
                )
        accuracy = sum(p * person.confusion[t].get(t, 0.0) for t, p in report.priors.items())
        assert person.accuracy == pytest.approx(accuracy)
    # The model reads eli through: a systematic swap is information, not noise.
    assert people["eli"].confusion["positive"]["negative"] > 0.9
    assert people["ana"].accuracy > people["dee"].accuracy

    with transaction(sessions) as session:
        after = {r.workflow_id: r.values for r in session.scalars(select(NodeRow))}
    assert after == before

    only = run(sessions, pipeline.name, field="sentiment", only_differing=True)
    assert [i.workflow_id for i in only.by_item] == [
        i.workflow_id for i in report.by_item if i.differs
    ]


def test_boolean_and_csv(sessions: sessionmaker[Session]) -> None:
    pipeline = consensus_pipeline(f"ds-{uuid.uuid4().hex[:8]}")
    items = items_of(5)
    ids = write_items(sessions, pipeline, items)
    report = run(sessions, pipeline.name, node="label", field="spam")
    model = crowd_kit(items, ids, "spam")
    assert model.labels_ is not None
    assert report.labels == ["false", "true"]
    by_id = {i.workflow_id: i.estimate for i in report.by_item}
    assert by_id == {w: bool(model.labels_[w]) for w in ids}

    out = io.StringIO()
    write_dawid_skene_csv(report, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == DAWID_SKENE_COLUMNS
    tables = Counter(r["table"] for r in rows)
    assert tables["item"] == 40 and tables["prior"] == 2 and tables["contributor"] == 5
    first = next(r for r in rows if r["table"] == "item")
    assert first["workflow_id"] == min(ids)
    assert first["estimate"] in ("true", "false")
    assert first["differs"] in ("true", "false")


def test_refusals(sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = consensus_pipeline(f"ds-{uuid.uuid4().hex[:8]}")
    write_items(sessions, pipeline, items_of(1)[:3])
    with pytest.raises(NotCategorical, match="name the field of 'label'"):
        run(sessions, pipeline.name)
    with pytest.raises(NotCategorical, match="'topics' is a multi_select field"):
        run(sessions, pipeline.name, field="topics")
    with pytest.raises(NotCategorical, match="'nope' is not a counted field"):
        run(sessions, pipeline.name, field="nope")
    with pytest.raises(ValueError, match="iterations"):
        run(sessions, pipeline.name, field="spam", iterations=0)
    monkeypatch.setitem(sys.modules, "crowdkit.aggregation", None)
    with pytest.raises(QualityExtraMissing, match=r"conveyor\[quality\]"):
        run(sessions, pipeline.name, field="spam")


def test_no_answers_yet(sessions: sessionmaker[Session]) -> None:
    pipeline = consensus_pipeline(f"ds-{uuid.uuid4().hex[:8]}")
    write_items(sessions, pipeline, [Item(answers={})])
    report = run(sessions, pipeline.name, field="sentiment")
    assert (report.items, report.by_item, report.contributors) == (0, [], [])


def test_stored_runs_read_back_whole(sessions: sessionmaker[Session]) -> None:
    pipeline = consensus_pipeline(f"ds-{uuid.uuid4().hex[:8]}")
    ids = write_items(sessions, pipeline, items_of(3))
    with transaction(sessions) as session:
        with pytest.raises(UnknownRun, match=r"no Dawid-Skene run is stored.*analytics dawid"):
            stored_dawid_skene(session, pipeline.name)
        assert dawid_skene_runs(session, pipeline.name) == []
    report = run(sessions, pipeline.name, field="sentiment")
    with transaction(sessions) as session:
        first = save_dawid_skene(session, report, max_iterations=100, by="lead")
    spam = run(sessions, pipeline.name, field="spam", criteria=TaskFilter(workflow_ids=ids[:10]))
    with transaction(sessions) as session:
        second = save_dawid_skene(
            session, spam, max_iterations=7, criteria=TaskFilter(workflow_ids=ids[:10])
        )
    assert second.id > first.id
    assert (first.field, first.items, first.created_by, first.criteria) == (
        "sentiment",
        40,
        "lead",
        {},
    )
    assert (second.items, second.max_iterations, second.criteria) == (
        10,
        7,
        {"workflow_ids": ids[:10]},
    )

    with transaction(sessions) as session:
        assert [r.id for r in dawid_skene_runs(session, pipeline.name)] == [second.id, first.id]
        latest = stored_dawid_skene(session, pipeline.name)
        back = stored_dawid_skene(session, pipeline.name, first.id)
        differing = stored_dawid_skene(session, pipeline.name, first.id, only_differing=True)
        with pytest.raises(UnknownRun, match=rf"no Dawid-Skene run {second.id + 1}.*--runs"):
            stored_dawid_skene(session, pipeline.name, second.id + 1)
        for number in (0, 10**30):
            with pytest.raises(UnknownRun, match=f"no Dawid-Skene run {number}"):
                stored_dawid_skene(session, pipeline.name, number)
        with pytest.raises(UnknownPipeline):
            dawid_skene_runs(session, "no-such-pipeline")
    assert latest.run == second and latest.report == spam
    # Read back, the run is the report that was stored: every item, prior and confusion matrix.
    assert back.run == first and back.report == report
    # ... in the same order (PostgreSQL's JSONB keeps no key order of its own).
    assert back.report.model_dump_json() == report.model_dump_json()
    assert list(report.priors) == sorted(report.priors)
    assert differing.report.by_item == [i for i in report.by_item if i.differs]

    only = run(sessions, pipeline.name, field="sentiment", only_differing=True)
    with transaction(sessions) as session, pytest.raises(ValueError, match="every item"):
        save_dawid_skene(session, only, max_iterations=100)
