"""Stored Dawid-Skene runs: a re-aggregation kept with its items so it can be read back, listed
and exported later, beside each item's majority and recorded final answer.

A run is written once, in one transaction, with every one of its items (``aggregations`` and
``aggregation_items``): a run is either whole or absent. Runs are never changed, and they never
touch a task's recorded values (``node_instances.values``): re-aggregation is a second opinion
kept next to the record, not an edit of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from store.consensus_analytics.dawid_skene import (
    DEFAULT_ITERATIONS,
    ContributorConfusion,
    DawidSkeneItem,
    DawidSkeneReport,
    dawid_skene,
)
from store.consensus_analytics.models import FrozenModel
from store.consensus_analytics.rows import check_pipeline
from store.explorer import TaskFilter
from store.models import AggregationItemRow, AggregationRow
from workflows.errors import Invalid, NotFound

METHOD = "dawid_skene"
MAX_RUN = 2**31 - 1
"""Run numbers are 32-bit integers in the store."""
_INSERT_BATCH = 1000


class UnknownRun(NotFound, LookupError):
    """No stored Dawid-Skene run of that number for the pipeline."""

    code = "unknown_run"


class NoAnswers(Invalid, ValueError):
    """Nothing to re-aggregate: the field has no answers in the tasks chosen."""

    code = "no_answers"


class DawidSkeneRun(FrozenModel):
    """What a stored run was: which field, when, by whom, over which tasks, with what result."""

    id: int
    pipeline: str
    node: str
    field: str
    created_at: datetime
    created_by: str | None
    criteria: dict[str, Any]
    """The Data Explorer filter that chose the tasks (empty: every task of the pipeline)."""
    max_iterations: int
    iterations: int
    items: int
    differing: int


class StoredDawidSkene(FrozenModel):
    """A stored run read back: the run and its report (items sorted by workflow id)."""

    run: DawidSkeneRun
    report: DawidSkeneReport


def run_dawid_skene(
    session: Session,
    pipeline: str,
    *,
    node: str | None = None,
    field: str | None = None,
    criteria: TaskFilter | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    by: str | None = None,
) -> StoredDawidSkene:
    """Run Dawid-Skene (:func:`dawid_skene`, same arguments) and store the run, in the caller's
    transaction: the bulk job the CLI, the API and the web app start.

    Raises:
        NoAnswers: the field has no answers in the tasks chosen (nothing is stored).
        and whatever :func:`dawid_skene` raises.
    """
    report = dawid_skene(
        session, pipeline, node=node, field=field, criteria=criteria, iterations=iterations
    )
    if not report.items:
        raise NoAnswers(
            f"{report.node}.{report.field} of pipeline {pipeline!r} has no answers in the tasks "
            "chosen yet: nothing to re-aggregate",
            details={"pipeline": pipeline, "node": report.node, "field": report.field},
        )
    run = save_dawid_skene(session, report, max_iterations=iterations, criteria=criteria, by=by)
    return StoredDawidSkene(run=run, report=report)


def save_dawid_skene(
    session: Session,
    report: DawidSkeneReport,
    *,
    max_iterations: int,
    criteria: TaskFilter | None = None,
    by: str | None = None,
) -> DawidSkeneRun:
    """Store ``report`` (every item: pass a report made without ``only_differing``) as a new
    run in the caller's transaction, and return it.

    Raises:
        ValueError: the report lists fewer items than it counts (an ``only_differing`` report).
    """
    if len(report.by_item) != report.items:
        raise ValueError(
            f"the report lists {len(report.by_item)} of its {report.items} items; store a "
            "report made with every item (not only the differing ones)"
        )
    chosen = criteria.model_dump(mode="json", exclude_defaults=True) if criteria else {}
    row = AggregationRow(
        pipeline_name=report.pipeline,
        node=report.node,
        field=report.field,
        method=METHOD,
        created_at=datetime.now(UTC),
        created_by=by,
        criteria=chosen,
        max_iterations=max_iterations,
        iterations=report.iterations,
        items=report.items,
        differing=report.differing,
        summary={
            "labels": report.labels,
            "priors": report.priors,
            "contributors": [c.model_dump(mode="json") for c in report.contributors],
        },
    )
    session.add(row)
    session.flush()
    items = [{"aggregation_id": row.id, **item.model_dump(mode="json")} for item in report.by_item]
    for start in range(0, len(items), _INSERT_BATCH):
        session.execute(insert(AggregationItemRow), items[start : start + _INSERT_BATCH])
    return _run(row)


def dawid_skene_runs(session: Session, pipeline: str, *, limit: int = 50) -> list[DawidSkeneRun]:
    """The pipeline's stored runs, the newest first (at most ``limit``).

    Raises:
        UnknownPipeline: no pipeline of that name was applied.
    """
    check_pipeline(session, pipeline)
    rows = session.scalars(
        select(AggregationRow)
        .where(AggregationRow.pipeline_name == pipeline, AggregationRow.method == METHOD)
        .order_by(AggregationRow.id.desc())
        .limit(limit)
    )
    return [_run(r) for r in rows]


def stored_dawid_skene(
    session: Session,
    pipeline: str,
    run: int | None = None,
    *,
    only_differing: bool = False,
) -> StoredDawidSkene:
    """Stored run ``run`` of the pipeline (default: its latest).

    Raises:
        UnknownPipeline: no pipeline of that name was applied.
        UnknownRun: no such run, or none stored yet.
    """
    check_pipeline(session, pipeline)
    query = select(AggregationRow).where(
        AggregationRow.pipeline_name == pipeline, AggregationRow.method == METHOD
    )
    if run is None:
        row = session.scalars(query.order_by(AggregationRow.id.desc()).limit(1)).first()
    elif not 0 < run <= MAX_RUN:
        row = None  # no run has such a number (nor could the store compare it)
    else:
        row = session.scalars(query.where(AggregationRow.id == run)).first()
    if row is None:
        stored = session.scalar(
            select(func.count())
            .select_from(AggregationRow)
            .where(AggregationRow.pipeline_name == pipeline)
        )
        what = "no Dawid-Skene run is stored" if run is None else f"no Dawid-Skene run {run}"
        hint = (
            "run one with `python starter.py analytics dawid-skene "
            f"{pipeline}` (or POST /pipelines/{pipeline}/dawid-skene/runs)"
            if not stored
            else f"list them with `python starter.py analytics dawid-skene {pipeline} --runs`"
        )
        raise UnknownRun(
            f"{what} for pipeline {pipeline!r}; {hint}",
            details={"pipeline": pipeline, "run": run},
        )
    query_items = select(AggregationItemRow).where(AggregationItemRow.aggregation_id == row.id)
    if only_differing:
        query_items = query_items.where(AggregationItemRow.differs)
    items = [
        DawidSkeneItem(
            workflow_id=i.workflow_id,
            answers=i.answers,
            estimate=i.estimate,
            probability=i.probability,
            majority=i.majority,
            majority_share=i.majority_share,
            final=i.final,
            differs=i.differs,
        )
        for i in session.scalars(query_items.order_by(AggregationItemRow.workflow_id))
    ]
    summary = row.summary
    # PostgreSQL's JSONB keeps no key order: put the answers back in label order, as a fresh
    # report has them.
    people = [
        ContributorConfusion.model_validate(
            {
                **c,
                "confusion": {
                    t: dict(sorted(r.items())) for t, r in sorted(c["confusion"].items())
                },
            }
        )
        for c in summary.get("contributors") or []
    ]
    report = DawidSkeneReport(
        pipeline=row.pipeline_name,
        node=row.node,
        field=row.field,
        labels=list(summary.get("labels") or []),
        priors=dict(sorted((summary.get("priors") or {}).items())),
        items=row.items,
        differing=row.differing,
        iterations=row.iterations,
        by_item=items,
        contributors=people,
    )
    return StoredDawidSkene(run=_run(row), report=report)


def _run(row: AggregationRow) -> DawidSkeneRun:
    return DawidSkeneRun(
        id=row.id,
        pipeline=row.pipeline_name,
        node=row.node,
        field=row.field,
        created_at=row.created_at,
        created_by=row.created_by,
        criteria=dict(row.criteria or {}),
        max_iterations=row.max_iterations,
        iterations=row.iterations,
        items=row.items,
        differing=row.differing,
    )
