"""The store's side of consensus (SQLite and PostgreSQL): the projection keeps who holds,
answered or may not take each item (``node_annotators``) and the item's answers and result
(``node_instances.consensus``); the work queue never offers a person an item they hold or
answered; their places count in ``my_claims`` and against claim limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from conveyor.pipelines import load_pipeline_file
from store.db import transaction
from store.models import NodeAnnotatorRow, NodeRow
from store.projection import apply_batch
from store.workqueue import claimable, held_count, my_claims
from tests.support.projection import T0, view_of
from workflows import engine
from workflows.messages import Claim, Command, ProjectionBatch, Submit, TaskState

PIPELINE = load_pipeline_file(str(Path(__file__).parents[2] / "examples/consensus-label.yaml"))
WID = f"{PIPELINE.name}/one"
L = ["labeler"]


class Item:
    """One consensus task driven through the engine, each step projected into the store."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.minute = 0
        created = engine.start_task(PIPELINE, WID, {"text": "hi"}, engine.Context(T0))
        self.state: TaskState = created.state
        self.project(created.events, first=True)

    def project(self, events: list[Any], *, first: bool = False) -> None:
        batch = ProjectionBatch(
            view=view_of(self.state, WID),
            events=events,
            pipeline=PIPELINE if first else None,
            people=engine.consensus_people(PIPELINE, self.state.nodes),
        )
        with transaction(self.sessions) as session:
            apply_batch(session, batch)

    def send(self, command: Command, token: str = "t") -> Any:
        self.minute += 1
        ctx = engine.Context(T0 + timedelta(minutes=self.minute), token=token)
        outcome = engine.apply(PIPELINE, self.state, command, ctx)
        assert outcome.accepted, outcome.result.message
        self.state = outcome.state
        self.project(outcome.events)
        return outcome.result

    def claim(self, who: str) -> str:
        token = f"tok-{who}"
        self.send(Claim(request_id=f"c-{who}", contributor=who, roles=L, node="label"), token)
        return token

    def submit(self, who: str, token: str, sentiment: str) -> None:
        values = {"sentiment": sentiment, "intensity": 3}
        self.send(
            Submit(request_id=f"s-{who}", contributor=who, node="label", token=token, values=values)
        )


def offered(session: Session, who: str, roles: list[str] = L) -> list[tuple[str, str]]:
    return [(i.workflow_id, i.node) for i in claimable(session, who, roles, pipeline=PIPELINE.name)]


def test_the_queue_never_offers_an_item_someone_holds_or_answered(
    sessions: sessionmaker[Session],
) -> None:
    item = Item(sessions)
    with transaction(sessions) as session:
        assert offered(session, "ana") == [(WID, "label")]
    ana = item.claim("ana")
    with transaction(sessions) as session:
        assert offered(session, "ana") == []  # she holds a place
        assert offered(session, "bo") == [(WID, "label")]  # two places are open
        assert [(c.workflow_id, c.node) for c in my_claims(session, "ana")] == [(WID, "label")]
        assert held_count(session, "ana", PIPELINE.name) == 1
        assert held_count(session, "ana", PIPELINE.name, excluding=(WID, "label")) == 0
    item.submit("ana", ana, "positive")
    bo, cy = item.claim("bo"), item.claim("cy")
    with transaction(sessions) as session:
        assert offered(session, "ana") == []  # she answered
        assert offered(session, "di") == []  # every place is taken: the node is Claimed
        assert my_claims(session, "ana") == [] and held_count(session, "ana", PIPELINE.name) == 0
        people = dict(
            session.execute(
                select(NodeAnnotatorRow.contributor, NodeAnnotatorRow.state).where(
                    NodeAnnotatorRow.workflow_id == WID, NodeAnnotatorRow.node == "label"
                )
            ).all()
        )
        assert people == {"ana": "answered", "bo": "claimed", "cy": "claimed"}
    item.submit("bo", bo, "negative")
    item.submit("cy", cy, "neutral")  # 1 of 3 each: one more place opens (max 5)
    with transaction(sessions) as session:
        assert offered(session, "di") == [(WID, "label")]
        assert offered(session, "bo") == []
        row = session.scalar(
            select(NodeRow).where(NodeRow.workflow_id == WID, NodeRow.node == "label")
        )
        assert row is not None and row.consensus is not None
        assert [a["by"] for a in row.consensus["answers"]] == ["ana", "bo", "cy"]
        assert row.consensus["needed"] == 4 and row.consensus["claimed"] == 0
        assert row.consensus["result"]["agreed"] is False
        assert row.values == {}  # no merged answer until the item is settled
    for who, sentiment in (("di", "negative"), ("eve", "positive")):
        item.submit(who, item.claim(who), sentiment)
    with transaction(sessions) as session:
        # Five answers, no agreement: the adjudicate node opens, but not for an annotator.
        assert offered(session, "lea", ["lead"]) == [(WID, "settle")]
        assert offered(session, "ana", ["lead"]) == []
        people = dict(
            session.execute(
                select(NodeAnnotatorRow.contributor, NodeAnnotatorRow.state).where(
                    NodeAnnotatorRow.workflow_id == WID, NodeAnnotatorRow.node == "settle"
                )
            ).all()
        )
        assert people == {p: "blocked" for p in ("ana", "bo", "cy", "di", "eve")}
