"""Consensus nodes on the pages: what a contributor may see of an item (nothing of anyone
else's answer), the answers side by side for the adjudicator and the Data Explorer, and the
adjudication read back from a form.

An item is *blind* while people may still answer it (its node is Available or Claimed): the
contributor pages drop every open item's answers, places, drafts and merged result from the task
before anything is rendered, so a template cannot show them by mistake.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workflows.graph import FieldSource, FieldSpec, FieldType, NodeSpec
from workflows.messages import (
    Answer,
    ConsensusResult,
    FieldConsensus,
    NodeState,
    NodeStatus,
    TaskView,
)

OPEN = (NodeStatus.AVAILABLE, NodeStatus.CLAIMED)
"""The states of a consensus node that still takes answers."""


def is_open(node: NodeState) -> bool:
    """True while people may still answer consensus node ``node`` (it must stay blind)."""
    return node.consensus is not None and node.status in OPEN


def blind(node: NodeState) -> NodeState:
    """``node`` without anything of its answers: no places, answers, drafts, merged result or
    values (a new round keeps the last round's merged answer in ``values``)."""
    return node.model_copy(
        update={
            "consensus": None,
            "values": {},
            "draft": {},
            "submitted_by": None,
            "attempts": 0,
            "evaluations": {},
            "last_review": None,
        }
    )


def blind_view(view: TaskView) -> TaskView:
    """The task as a contributor's page may show it: every open consensus item blind, and
    none of its timeline events (they carry drafts and answers)."""
    hidden = {n.name for n in view.nodes if is_open(n)}
    if not hidden:
        return view
    nodes = [blind(n) if n.name in hidden else n for n in view.nodes]
    timeline = [e for e in view.timeline if e.node not in hidden]
    return view.model_copy(update={"nodes": nodes, "timeline": timeline})


# --------------------------------------------------------------------------- answers side by side


@dataclass(frozen=True)
class Cell:
    value: Any
    same: bool
    """The answer equals the merged value (of a field that has one)."""


@dataclass(frozen=True)
class FieldRow:
    """One field of the answers table: each annotator's value, the merged one and its figures."""

    spec: FieldSpec
    cells: list[Cell]
    merged: FieldConsensus | None
    counted: bool
    """The field's agreement counts towards the item's (it votes)."""
    below: bool
    """Its agreement is below the node's threshold."""


@dataclass(frozen=True)
class AnswerTable:
    """A consensus item's answers, one column per annotator and one row per input field."""

    answers: list[Answer]
    rows: list[FieldRow]
    result: ConsensusResult | None
    threshold: float | None

    def answer_json(self, answer: Answer) -> str:
        """An annotator's answer as JSON (the adjudicator's page fills the form with it)."""
        return json.dumps(answer.values, ensure_ascii=False, default=str)

    @property
    def merged_json(self) -> str:
        values = self.result.values if self.result else {}
        return json.dumps(values, ensure_ascii=False, default=str)


def _comparable(spec: FieldSpec, value: Any) -> Any:
    if spec.type == FieldType.MULTI_SELECT and isinstance(value, list):
        return sorted(json.dumps(v, sort_keys=True) for v in value)
    return json.dumps(value, sort_keys=True, default=str)


def answer_table(
    fields: Sequence[FieldSpec],
    answers: Sequence[Answer],
    result: ConsensusResult | None,
    *,
    counted: Collection[str],
    threshold: float | None,
) -> AnswerTable:
    """The answers of a consensus item over its input ``fields``, with the merge's figures."""
    rows: list[FieldRow] = []
    merged_fields = result.fields if result else {}
    for spec in fields:
        if spec.source != FieldSource.INPUT:
            continue
        merged = merged_fields.get(spec.name)
        has_value = merged is not None and merged.value is not None
        target = _comparable(spec, merged.value) if merged is not None and has_value else None
        cells = [
            Cell(
                value=a.values.get(spec.name),
                same=has_value and _comparable(spec, a.values.get(spec.name)) == target,
            )
            for a in answers
        ]
        below = (
            merged is not None
            and merged.agreement is not None
            and threshold is not None
            and spec.name in counted
            and merged.agreement < threshold
        )
        rows.append(FieldRow(spec, cells, merged, spec.name in counted, below))
    return AnswerTable(list(answers), rows, result, threshold)


def node_table(spec: NodeSpec, node: NodeState) -> AnswerTable | None:
    """The answers table of consensus node ``spec`` in a task (None before it is reached)."""
    item = node.consensus
    if item is None or spec.consensus is None:
        return None
    return answer_table(
        spec.fields,
        item.answers,
        item.result,
        counted=[f.name for f in spec.consensus.voting(spec.input_fields())],
        threshold=spec.consensus.threshold,
    )


def corrections(values: Mapping[str, Any], picked: Answer | None) -> dict[str, Any]:
    """What an adjudicator's form changes over the answer they picked (everything without a
    pick): the ``values`` of the ``adjudicate`` command, so the picked answer stays the base."""
    if picked is None:
        return dict(values)
    return {k: v for k, v in values.items() if picked.values.get(k) != v}
