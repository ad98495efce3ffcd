"""The consensus columns of an export, in its two shapes (docs/consensus-exports.md).

**wide** (one row per task, the default): after the task's usual columns, per consensus node
``N`` the item's figures (``N.agreement``, ``N.confidence``, ``N.agreed``, ``N.answers``,
``N.round``), its adjudication (``N.adjudicated_by``, ``N.adjudication_reason``,
``N.picked``), per field that votes or merges ``N.<field>.merged``, ``N.<field>.agreement`` and
``N.<field>.confidence``, and the current round's answers in numbered columns: ``N.by.<j>``,
``N.at.<j>`` and ``N.<field>.<j>`` for ``j`` from 1 to the most answers an item may take.

**long** (one row per answer, every round): the task, the node, the round, the answer's place
in it, whether the merge counts it, who answered and when, ``answer.<field>`` for each field,
then the item's ``final.<field>`` and its figures.

A node-level name that a field of the node already uses as ``N.<field>`` (a field named
``round`` or ``by``) moves to ``N.consensus.<key>``; field names have no dots, so no other
name can clash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from conveyor.bulk.records import iso
from store.explorer import TaskSummary
from store.export_consensus import ConsensusItem, ConsensusNode

ExportShape = Literal["wide", "long"]
EXPORT_SHAPES: tuple[ExportShape, ...] = ("wide", "long")

ITEM_KEYS = ("agreement", "confidence", "agreed", "answers")
"""The item's figures, named as in the task data (``<node>.agreement``...)."""
NODE_KEYS = ("round", "adjudicated_by", "adjudication_reason", "picked")
FIELD_KEYS = ("merged", "agreement", "confidence")

LONG_TASK_COLUMNS = ("workflow_id", "task_key", "pipeline_hash", "status")
LONG_ANSWER_COLUMNS = ("node", "round", "answer_no", "counted", "annotator", "answered_at")
LONG_ITEM_COLUMNS = ("agreement", "confidence", "agreed", "adjudicated_by")


def _node_key(node: ConsensusNode, key: str) -> str:
    """``N.<key>``, or ``N.consensus.<key>`` when a field of the node is called ``key``."""
    return f"{node.name}.consensus.{key}" if key in node.taken else f"{node.name}.{key}"


# --------------------------------------------------------------------------- wide


def wide_columns(nodes: Sequence[ConsensusNode]) -> list[str]:
    """The consensus columns a wide export adds after its usual ones."""
    names: list[str] = []
    for node in nodes:
        names += [f"{node.name}.{key}" for key in ITEM_KEYS]
        names += [_node_key(node, key) for key in NODE_KEYS]
        names += [f"{node.name}.{f}.{key}" for f in node.figures for key in FIELD_KEYS]
        for j in range(1, node.most + 1):
            names += [f"{_node_key(node, 'by')}.{j}", f"{_node_key(node, 'at')}.{j}"]
            names += [f"{node.name}.{f}.{j}" for f in node.fields]
    return names


def wide_values(nodes: Sequence[ConsensusNode], items: Mapping[str, ConsensusItem]) -> list[Any]:
    """The values of :func:`wide_columns`, in order, for one task's ``node -> item``."""
    out: list[Any] = []
    for node in nodes:
        item = items.get(node.name)
        result = item.result if item is not None else None
        if result is None:
            out += [None] * len(ITEM_KEYS)
        else:
            out += [result.agreement, result.confidence, result.agreed, result.answers]
        # NODE_KEYS: the round, then the adjudication
        out.append(item.round if item is not None else None)
        if result is None:
            out += [None, None, None]
        else:
            out += [result.adjudicated_by, result.adjudication_reason, result.picked]
        for name in node.figures:
            figure = result.fields.get(name) if result is not None else None
            if figure is None:
                out += [None] * len(FIELD_KEYS)
            else:
                out += [figure.value, figure.agreement, figure.confidence]
        answers = item.answers if item is not None else []
        for j in range(node.most):
            if j < len(answers):
                answer = answers[j]
                out += [answer.by, iso(answer.at)]
                out += [answer.values.get(f) for f in node.fields]
            else:
                out += [None] * (2 + len(node.fields))
    return out


# --------------------------------------------------------------------------- long


def long_fields(nodes: Sequence[ConsensusNode]) -> list[str]:
    """Every answered field of the consensus nodes, once, in node then field order."""
    return list(dict.fromkeys(f for node in nodes for f in node.fields))


def long_columns(nodes: Sequence[ConsensusNode]) -> list[str]:
    """The columns of a long export: one row per answer."""
    fields = long_fields(nodes)
    return [
        *LONG_TASK_COLUMNS,
        *LONG_ANSWER_COLUMNS,
        *(f"answer.{f}" for f in fields),
        *(f"final.{f}" for f in fields),
        *LONG_ITEM_COLUMNS,
    ]


def long_records(
    row: TaskSummary,
    nodes: Sequence[ConsensusNode],
    items: Mapping[str, ConsensusItem],
) -> list[dict[str, Any]]:
    """One record per answer of the task's items (keyed by :func:`long_columns`): each node's
    earlier rounds first, then the current round, whose answers the merge counts."""
    fields = long_fields(nodes)
    records: list[dict[str, Any]] = []
    for node in nodes:
        item = items.get(node.name)
        if item is None:
            continue
        result = item.result
        common: dict[str, Any] = {
            "workflow_id": row.workflow_id,
            "task_key": row.task_key,
            "pipeline_hash": row.pipeline_hash,
            "status": row.status.value,
            "node": node.name,
        }
        final = {f"final.{f}": item.values.get(f) for f in fields}
        figures = {
            "agreement": result.agreement if result else None,
            "confidence": result.confidence if result else None,
            "agreed": result.agreed if result else None,
            "adjudicated_by": result.adjudicated_by if result else None,
        }
        places: dict[int, int] = {}
        for counted, answers in ((False, item.earlier), (True, item.answers)):
            for answer in answers:
                places[answer.round] = places.get(answer.round, 0) + 1
                records.append(
                    {
                        **common,
                        "round": answer.round,
                        "answer_no": places[answer.round],
                        "counted": counted,
                        "annotator": answer.by,
                        "answered_at": iso(answer.at),
                        **{f"answer.{f}": answer.values.get(f) for f in fields},
                        **final,
                        **figures,
                    }
                )
    return records
