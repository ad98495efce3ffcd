"""Consensus node rows with known answers, for Consensus Analytics' store, CLI and API tests.

:func:`consensus_pipeline` is a pipeline whose consensus node ``label`` counts a field of every
compared type (and a free-text field named in ``fields``); :func:`write_items` stores one task
per item, its ``label`` row carrying the answers in the ``consensus`` column as the projection
writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store.db import transaction
from store.models import NodeRow, TaskRow, TaskTagRow
from store.repositories import ensure_pipeline_version
from workflows.graph import Pipeline

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

FIELDS: list[dict[str, Any]] = [
    {"name": "text", "type": "long_text", "source": "predefined"},
    {"name": "sentiment", "type": "select", "options": ["positive", "negative", "neutral"]},
    {"name": "spam", "type": "boolean"},
    {"name": "better", "type": "pairwise", "options": ["left", "right"], "allow_tie": True},
    {"name": "topics", "type": "multi_select", "options": ["price", "quality", "support"]},
    {"name": "intensity", "type": "rating", "min": 1, "max": 5},
    {"name": "count", "type": "integer"},
    {"name": "order", "type": "ranking", "options": ["a", "b", "c"]},
    {"name": "score", "type": "number"},
    {"name": "when", "type": "datetime"},
    {"name": "notes", "type": "short_text", "required": False},
]
COUNTED = [f["name"] for f in FIELDS if f.get("source") != "predefined"]


def consensus_pipeline(name: str, *, consensus: bool = True) -> Pipeline:
    """``start -> label -> end``: ``label`` a consensus subtask (3 annotators, up to 5) with
    ``intensity`` tolerance 1, or a plain subtask when ``consensus`` is False."""
    label: dict[str, Any] = {
        "name": "label",
        "kind": "subtask",
        "fields": FIELDS,
        "next": ["end"],
    }
    if consensus:
        label["consensus"] = {
            "annotators": 3,
            "max_annotators": 5,
            "fields": COUNTED,
            "rules": {"intensity": {"tolerance": 1}},
        }
    return Pipeline.model_validate(
        {
            "name": name,
            "nodes": [
                {"name": "start", "kind": "start", "next": ["label"]},
                label,
                {"name": "end", "kind": "end"},
            ],
        }
    )


@dataclass
class Item:
    """One consensus item: each annotator's values (in answer order) and its final answer."""

    answers: dict[str, dict[str, Any]]
    final: dict[str, Any] | None = None
    """The merged or adjudicated answer; None while the item is not settled."""
    adjudicated_by: str | None = None
    agreed: bool = True
    earlier: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Answers of an earlier round (not counted)."""
    status: str = "Finished"
    tags: list[str] = field(default_factory=list)


def consensus_column(item: Item) -> dict[str, Any]:
    """The ``node_instances.consensus`` value the projection writes for ``item``."""

    def answers(given: dict[str, dict[str, Any]], round_: int) -> list[dict[str, Any]]:
        return [
            {
                "by": by,
                "values": values,
                "at": (T0 + timedelta(minutes=i)).isoformat(),
                "round": round_,
            }
            for i, (by, values) in enumerate(given.items())
        ]

    result = None
    if item.final is not None:
        result = {
            "values": item.final,
            "fields": {},
            "agreement": None,
            "confidence": None,
            "agreed": item.agreed,
            "answers": len(item.answers),
            "adjudicated_by": item.adjudicated_by,
            "adjudication_reason": "checked" if item.adjudicated_by else None,
            "picked": None,
        }
    return {
        "needed": len(item.answers),
        "answers": answers(item.answers, 2 if item.earlier else 1),
        "earlier": answers(item.earlier, 1),
        "round": 2 if item.earlier else 1,
        "opened_at": T0.isoformat(),
        "claimed": 0,
        "result": result,
    }


def write_items(
    sessions: sessionmaker[Session],
    pipeline: Pipeline,
    items: list[Item],
    *,
    node: str = "label",
    prefix: str = "item",
) -> list[str]:
    """Store ``pipeline``'s version and one task per item; returns the workflow ids."""
    ids = []
    with transaction(sessions) as session:
        ensure_pipeline_version(session, pipeline)
        for i, item in enumerate(items):
            wid = f"{pipeline.name}/{prefix}-{i}"
            ids.append(wid)
            session.add(_task(pipeline, wid, item, i))
        session.flush()
        for wid, item in zip(ids, items, strict=True):
            session.add_all(TaskTagRow(workflow_id=wid, tag=tag) for tag in item.tags)
            session.add(
                NodeRow(
                    workflow_id=wid,
                    node=node,
                    pipeline_name=pipeline.name,
                    status="Finished" if item.final is not None else "Available",
                    values=item.final or {},
                    draft={},
                    consensus=consensus_column(item),
                )
            )
    return ids


def _task(pipeline: Pipeline, wid: str, item: Item, i: int) -> TaskRow:
    return TaskRow(
        workflow_id=wid,
        pipeline_name=pipeline.name,
        pipeline_hash=pipeline.content_hash(),
        task_key=wid.split("/", 1)[1],
        status=item.status,
        data={},
        current_nodes=[],
        assignees=[],
        tags=item.tags,
        created_at=T0 + timedelta(hours=i),
        updated_at=T0 + timedelta(hours=i),
    )
