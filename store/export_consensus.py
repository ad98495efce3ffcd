"""Consensus items for exports: which nodes of a pipeline take several answers per item, and
the stored items of a page of tasks (the ops side is ``conveyor.bulk.consensus``).

A consensus node's ``node_instances`` row keeps its item in the ``consensus`` column (written
by :func:`store.projection.consensus_row`): the answers of the current round, those of earlier
rounds, the round, and the merged result with its per-field agreement and confidence. Its
``values`` are the final answer (the merged one, or the adjudicator's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from store.explorer import pipeline_versions
from store.models import NodeRow
from workflows.graph import Aggregation, AgreementRule
from workflows.messages import Answer, ConsensusResult

_NO_MERGE = (Aggregation.CARRY, Aggregation.ADJUDICATE)


class ConsensusNode(BaseModel):
    """A consensus node as an export lays it out, over every stored version of the pipeline."""

    model_config = ConfigDict(frozen=True)

    name: str
    fields: list[str]
    """The input fields each annotator answers, in node order (every version's)."""
    figures: list[str]
    """The input fields that vote or merge: they have a merged value, an agreement and a
    confidence (free text that is only carried or adjudicated has none)."""
    most: int
    """The most answers one item may take in a round (the largest over the versions)."""
    taken: list[str] = Field(default_factory=list)
    """Every field name of the node (any source): their ``<node>.<field>`` columns exist."""


class ConsensusItem(BaseModel):
    """One task's item on one consensus node, as stored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    round: int = 1
    answers: list[Answer] = Field(default_factory=list)
    """This round's answers, in the order they arrived: the merged result is built from them."""
    earlier: list[Answer] = Field(default_factory=list)
    """Answers of earlier rounds (a failed review opened a new round)."""
    result: ConsensusResult | None = None
    """None until enough answers are in (and again when a new round opens)."""
    values: dict[str, Any] = Field(default_factory=dict)
    """The node's final answer (filled by :func:`consensus_items` ``with_values``)."""


def consensus_nodes(session: Session, pipeline: str) -> list[ConsensusNode]:
    """The consensus nodes of every stored version of ``pipeline``, current version first."""
    found: dict[str, dict[str, Any]] = {}
    for _, definition in pipeline_versions(session, pipeline):
        for spec in definition.nodes:
            consensus = spec.consensus
            if consensus is None:
                continue
            node = found.setdefault(
                spec.name, {"fields": {}, "figures": {}, "most": 0, "taken": {}}
            )
            node["most"] = max(node["most"], consensus.most)
            for fld in spec.fields:
                node["taken"].setdefault(fld.name)
            for fld in spec.input_fields():
                node["fields"].setdefault(fld.name)
                votes = consensus.rule_for(fld) != AgreementRule.NONE
                if votes or consensus.aggregation_for(fld) not in _NO_MERGE:
                    node["figures"].setdefault(fld.name)
    return [
        ConsensusNode(
            name=name,
            fields=list(node["fields"]),
            figures=[f for f in node["fields"] if f in node["figures"]],
            most=node["most"],
            taken=list(node["taken"]),
        )
        for name, node in found.items()
    ]


def consensus_items(
    session: Session,
    workflow_ids: Sequence[str],
    nodes: Sequence[str],
    *,
    with_values: bool = False,
) -> dict[str, dict[str, ConsensusItem]]:
    """``workflow_id -> node -> item`` for the tasks' consensus nodes that have an item (one
    query over the primary key). Items are read as JSON text and parsed straight into
    :class:`ConsensusItem` (no intermediate dicts: this is most of a consensus export's reading).

    Args:
        with_values: also read each node's final answer into :attr:`ConsensusItem.values`.
    """
    if not workflow_ids or not nodes:
        return {}
    wanted: list[Any] = [NodeRow.workflow_id, NodeRow.node, cast(NodeRow.consensus, Text)]
    if with_values:
        wanted.append(NodeRow.values)
    rows = session.execute(
        select(*wanted).where(
            NodeRow.workflow_id.in_(workflow_ids),
            NodeRow.node.in_(nodes),
            NodeRow.consensus.is_not(None),
        )
    )
    out: dict[str, dict[str, ConsensusItem]] = {}
    for row in rows:
        item = parse_item(row[2])
        if with_values:
            item = item.model_copy(update={"values": row[3] or {}})
        out.setdefault(row[0], {})[row[1]] = item
    return out


def parse_item(text: str) -> ConsensusItem:
    """An item from the ``consensus`` column's JSON text (as ``COPY`` hands it over)."""
    return ConsensusItem.model_validate_json(text)
