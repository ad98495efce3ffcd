"""LLM Analytics and Evaluation Analytics: what LLM calls cost and how evaluators judge.

Pure functions over a caller's :class:`~sqlalchemy.orm.Session` (they never commit), returning
frozen pydantic models; the CLI (``conveyor/cli/analytics.py``) and the HTTP API share them.

* :func:`llm_analytics` reads ``llm_calls`` (one row per attempt of a call): calls, attempts,
  retries, tokens, cost, latency percentiles, error rate and errors by class, per pipeline /
  model / node (or any subset of those and ``purpose``).
* :func:`evaluation_analytics` reads ``evaluation_results`` (one row per task, node, criterion
  and criterion version): pass rate, score statistics and distribution, label counts, errors
  and the failing results, per criterion / node / kind.
* :func:`agreement` pairs each task's latest LLM judge result with its latest human rating of
  the same criterion: percent agreement and Cohen's kappa for labels, mean absolute error and
  Spearman's rank correlation for scores, and the tasks where they disagree.

Counts and sums are SQL ``GROUP BY`` queries filtered on the leading columns of
``ix_llm_calls_pipeline_model_node`` / ``ix_evaluation_results_pipeline_criterion``. What SQL
cannot aggregate the same way on both dialects (percentiles, histograms) is computed in Python
from one group's values at a time, streamed in group order; PostgreSQL computes latency
percentiles itself with ``percentile_cont`` (the same linear interpolation as
:func:`store.stats.percentile`). Groups come back sorted by their keys in Python's string
order, whatever the database's collation.

A figure that cannot be known is ``None``, never 0: the cost of attempts whose model has no
known price, the pass rate of a criterion that gives no verdict, a correlation of constant
scores.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Executable, and_, case, func, select
from sqlalchemy.orm import Session

from store.models import EvaluationResultRow, LlmCallRow, PipelineRow, TaskRow
from store.stats import (
    cohens_kappa,
    histogram,
    mean_absolute_error,
    median,
    percent_agreement,
    percentile,
    spearman,
)
from workflows.errors import UnknownPipeline as UnknownPipeline
from workflows.messages import EvaluationKind

DEFAULT_FAILING_LIMIT = 20
DEFAULT_DISAGREEMENT_LIMIT = 50
DEFAULT_TOLERANCE = 0.5
UNKNOWN_ERROR_CLASS = "unknown"
"""The error class reported for failed attempts that recorded none."""

_STREAM_BATCH = 5000


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


def _aware(value: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC (as the Data Explorer's filters do)."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        return value.replace(tzinfo=UTC)
    return value


def _check_pipeline(session: Session, pipeline: str) -> None:
    """Raise :class:`UnknownPipeline` unless ``pipeline`` is applied or has any rows.

    Called only when a query found nothing, to tell "no data yet" from a misspelt name.
    """
    for column in (
        PipelineRow.name,
        TaskRow.pipeline_name,
        LlmCallRow.pipeline_name,
        EvaluationResultRow.pipeline_name,
    ):
        if session.execute(select(column).where(column == pipeline).limit(1)).first():
            return
    known = sorted(session.scalars(select(PipelineRow.name).order_by(PipelineRow.name)))
    listing = (
        f"pipelines in the store: {', '.join(known)}"
        if known
        else "the store has no pipelines yet (apply one, or create a task)"
    )
    raise UnknownPipeline(f"no pipeline named {pipeline!r}; {listing}", name=pipeline, known=known)


def _stream(session: Session, query: Executable) -> Iterator[Any]:
    """Rows of ``query`` fetched in batches (a server-side cursor on PostgreSQL)."""
    return iter(session.execute(query, execution_options={"yield_per": _STREAM_BATCH}))


def _groups(rows: Iterable[Any], width: int) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
    """Consecutive rows sharing their first ``width`` columns: ``(key, [last column...])``."""
    for key, members in itertools.groupby(rows, key=lambda r: tuple(r[:width])):
        yield key, [m[width] for m in members]


# --------------------------------------------------------------------------- LLM Analytics


class Purpose(StrEnum):
    """Which LLM calls to count: ``field`` (filling fields), ``judge`` (LLM judges) or both."""

    FIELD = "field"
    JUDGE = "judge"
    ALL = "all"


class LlmOutcome(StrEnum):
    """``llm_calls.outcome``: how one attempt ended."""

    OK = "ok"
    RETRY = "retry"
    """Failed; Temporal retries the call."""
    FAILED = "failed"
    """Failed for good."""


LLM_GROUP_KEYS = ("pipeline", "model", "node", "purpose")
DEFAULT_LLM_GROUPS = ("pipeline", "model", "node")

_LLM_COLUMNS: dict[str, Any] = {
    "pipeline": LlmCallRow.pipeline_name,
    "model": LlmCallRow.model,
    "node": LlmCallRow.node,
    "purpose": LlmCallRow.purpose,
}


class LlmStats(_Frozen):
    """One group of LLM call attempts.

    A *call* is one ``(workflow_id, call_id)``; each of its attempts is a row. The group's keys
    are the ``group_by`` fields asked for; the others are None.
    """

    pipeline: str | None = None
    model: str | None = None
    node: str | None = None
    purpose: str | None = None
    calls: int
    attempts: int
    retries: int
    """``attempts - calls``: attempts beyond each call's first."""
    failed_calls: int
    """Calls whose last attempt failed for good (outcome ``failed``)."""
    error_rate: float
    """``failed_calls / calls``."""
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    """Sums over the attempts that reported them."""
    cost_usd: float | None
    """The sum of the known costs; None when no attempt's cost is known (never 0 for that)."""
    cost_unknown_attempts: int
    """Attempts whose cost is unknown (the model has no known price): not in ``cost_usd``."""
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    """Over attempts, by linear interpolation (see :func:`store.stats.percentile`)."""
    errors: dict[str, int]
    """Attempts that failed (retried or for good) by error class, most frequent first."""


def _group_keys(group_by: Sequence[str]) -> list[str]:
    keys = list(dict.fromkeys(group_by))
    unknown = [k for k in keys if k not in LLM_GROUP_KEYS]
    if unknown:
        raise ValueError(
            f"cannot group LLM calls by {', '.join(map(repr, unknown))}: "
            f"use any of {', '.join(LLM_GROUP_KEYS)}"
        )
    return keys


def _llm_where(
    pipeline: str | None,
    purpose: Purpose | str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if pipeline is not None:
        where.append(LlmCallRow.pipeline_name == pipeline)
    try:
        chosen = Purpose(purpose) if purpose is not None else Purpose.ALL
    except ValueError:
        choices = ", ".join(p.value for p in Purpose)
        raise ValueError(f"unknown purpose {purpose!r}: use one of {choices}") from None
    if chosen != Purpose.ALL:
        where.append(LlmCallRow.purpose == chosen.value)
    if since is not None:
        where.append(LlmCallRow.at >= _aware(since))
    if until is not None:
        where.append(LlmCallRow.at < _aware(until))
    return where


def llm_analytics(
    session: Session,
    pipeline: str | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    purpose: Purpose | str | None = None,
    group_by: Sequence[str] = DEFAULT_LLM_GROUPS,
) -> list[LlmStats]:
    """LLM call statistics per group, sorted by the group's keys.

    Args:
        pipeline: one pipeline, or None for every pipeline.
        since: count attempts made at or after this time (naive times are UTC).
        until: count attempts made before this time.
        purpose: ``field``, ``judge``, or ``all`` / None for both.
        group_by: any of ``pipeline``, ``model``, ``node``, ``purpose``; none for one total.

    A call's last attempt is its highest attempt number among the attempts counted, so with
    ``since`` / ``until`` a call that failed before the window and succeeded in it is a
    success.

    Raises:
        UnknownPipeline: ``pipeline`` has no rows anywhere in the store and is not applied.
        ValueError: an unknown ``group_by`` key or ``purpose``.
    """
    keys = _group_keys(group_by)
    where = _llm_where(pipeline, purpose, since, until)
    key_columns = [_LLM_COLUMNS[k] for k in keys]
    width = len(keys)

    # Per call first (distinct (workflow_id, call_id) within the group), then per group.
    failed_attempt = case(
        (LlmCallRow.outcome == LlmOutcome.FAILED.value, LlmCallRow.attempt), else_=None
    )
    per_call = (
        select(
            *(c.label(k) for c, k in zip(key_columns, keys, strict=True)),
            func.count().label("attempts"),
            func.max(LlmCallRow.attempt).label("last_attempt"),
            func.max(failed_attempt).label("last_failed"),
            func.sum(LlmCallRow.prompt_tokens).label("prompt_tokens"),
            func.sum(LlmCallRow.completion_tokens).label("completion_tokens"),
            func.sum(LlmCallRow.cost_usd).label("cost"),
            func.count(LlmCallRow.cost_usd).label("priced"),
        )
        .where(*where)
        .group_by(*key_columns, LlmCallRow.workflow_id, LlmCallRow.call_id)
        .subquery("per_call")
    )
    group = [per_call.c[k] for k in keys]
    ended_failed = case((per_call.c.last_failed == per_call.c.last_attempt, 1), else_=0)
    totals = session.execute(
        select(
            *group,
            func.count(),
            func.sum(per_call.c.attempts),
            func.sum(ended_failed),
            func.sum(per_call.c.prompt_tokens),
            func.sum(per_call.c.completion_tokens),
            func.sum(per_call.c.cost),
            func.sum(per_call.c.priced),
        ).group_by(*group)
    ).all()

    errors: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in session.execute(
        select(*key_columns, LlmCallRow.error_class, func.count())
        .where(*where, LlmCallRow.outcome != LlmOutcome.OK.value)
        .group_by(*key_columns, LlmCallRow.error_class)
    ):
        found = errors.setdefault(tuple(row[:width]), {})
        name = row[width] or UNKNOWN_ERROR_CLASS
        found[name] = found.get(name, 0) + int(row[width + 1])

    latencies = _latency_percentiles(session, key_columns, where)

    out: list[LlmStats] = []
    for row in totals:
        key = tuple(row[:width])
        calls, attempts, failed, prompt, completion, cost, priced = row[width:]
        if not calls:  # no GROUP BY keys and no rows: the one empty total
            continue
        calls, attempts, failed = int(calls), int(attempts), int(failed)
        prompt, completion = int(prompt or 0), int(completion or 0)
        p50, p95 = latencies.get(key, (None, None))
        by_class = errors.get(key, {})
        out.append(
            LlmStats(
                **dict(zip(keys, key, strict=True)),
                calls=calls,
                attempts=attempts,
                retries=attempts - calls,
                failed_calls=failed,
                error_rate=failed / calls,
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
                cost_usd=float(cost) if cost is not None else None,
                cost_unknown_attempts=attempts - int(priced or 0),
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                errors=dict(sorted(by_class.items(), key=lambda kv: (-kv[1], kv[0]))),
            )
        )
    if not out and pipeline is not None:
        _check_pipeline(session, pipeline)
    return sorted(out, key=lambda s: tuple(getattr(s, k) for k in keys))


def _latency_percentiles(
    session: Session, key_columns: list[Any], where: list[ColumnElement[bool]]
) -> dict[tuple[Any, ...], tuple[float | None, float | None]]:
    """``group key -> (p50, p95)`` of ``latency_ms`` over the group's attempts."""
    width = len(key_columns)
    if session.get_bind().dialect.name == "postgresql":
        p50 = func.percentile_cont(0.5).within_group(LlmCallRow.latency_ms)
        p95 = func.percentile_cont(0.95).within_group(LlmCallRow.latency_ms)
        rows = session.execute(select(*key_columns, p50, p95).where(*where).group_by(*key_columns))
        return {tuple(r[:width]): (r[width], r[width + 1]) for r in rows}
    # Elsewhere: one group's latencies at a time, already sorted by the database.
    query = (
        select(*key_columns, LlmCallRow.latency_ms)
        .where(*where)
        .order_by(*key_columns, LlmCallRow.latency_ms)
    )
    return {
        key: (percentile(values, 50), percentile(values, 95))
        for key, values in _groups(_stream(session, query), width)
    }


# --------------------------------------------------------------------------- Evaluation Analytics


class HistogramBin(_Frozen):
    """Scores ``low <= score < high`` (the last bin also holds ``score == high``)."""

    low: float
    high: float
    count: int


class FailingResult(_Frozen):
    """A result that did not pass (``passed`` is False)."""

    workflow_id: str
    node: str
    criterion_version: str
    score: float | None
    label: str | None
    reasoning: str | None
    actor: str | None
    at: datetime


class CriterionStats(_Frozen):
    """The results of one criterion on one node by one kind of evaluator."""

    criterion: str
    node: str
    kind: EvaluationKind
    results: int
    with_verdict: int
    """Results that say pass or fail (``passed`` is not None)."""
    passed: int
    pass_rate: float | None
    """``passed / with_verdict``; None when no result gives a verdict."""
    scored: int
    """Results with a score."""
    mean_score: float | None
    median_score: float | None
    histogram: list[HistogramBin]
    """The score distribution (see :func:`evaluation_analytics`); empty without scores, and
    for labelled verdicts, whose distribution is ``labels``."""
    labels: dict[str, int]
    """Boolean and categorical verdicts: how often each label was given, most frequent first."""
    errors: int
    """Results where the evaluator could not give a verdict."""
    versions: list[str]
    """The criterion versions counted (a changed criterion has a new version)."""
    failing: list[FailingResult]
    """The failing results, newest first, at most the ``limit`` asked for."""


_EVAL_GROUP = (EvaluationResultRow.criterion, EvaluationResultRow.node, EvaluationResultRow.kind)


def _eval_where(
    pipeline: str,
    criterion: str | None = None,
    node: str | None = None,
    kind: EvaluationKind | str | None = None,
    criterion_version: str | None = None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [EvaluationResultRow.pipeline_name == pipeline]
    if criterion is not None:
        where.append(EvaluationResultRow.criterion == criterion)
    if node is not None:
        where.append(EvaluationResultRow.node == node)
    if kind is not None:
        where.append(EvaluationResultRow.kind == EvaluationKind(kind).value)
    if criterion_version is not None:
        where.append(EvaluationResultRow.criterion_version == criterion_version)
    return where


def evaluation_analytics(
    session: Session,
    pipeline: str,
    *,
    criterion: str | None = None,
    node: str | None = None,
    kind: EvaluationKind | str | None = None,
    criterion_version: str | None = None,
    bins: int = 10,
    limit: int = DEFAULT_FAILING_LIMIT,
) -> list[CriterionStats]:
    """Evaluation statistics per (criterion, node, kind), sorted by those three.

    Every stored result counts once: a task with results for two versions of a criterion
    counts twice (``versions`` lists them; ``criterion_version`` selects one).

    The score histogram has ``bins`` equal bins from the group's lowest to highest score; when
    every score is a whole number and there are at most ``bins`` of them from lowest to highest
    (ratings 1..5), it has one bin per whole number instead, from ``n - 0.5`` to ``n + 0.5``.

    Args:
        bins: histogram bins over each group's score range.
        limit: at most this many failing results per group (0 for none).

    Raises:
        UnknownPipeline: ``pipeline`` has no rows anywhere in the store and is not applied.
        ValueError: ``bins`` < 1, ``limit`` < 0 or an unknown ``kind``.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
    where = _eval_where(pipeline, criterion, node, kind, criterion_version)
    row = EvaluationResultRow

    passed = func.sum(case((row.passed.is_(True), 1), else_=0))
    totals: Sequence[Any] = session.execute(
        select(
            *_EVAL_GROUP,
            func.count(),
            func.count(row.passed),
            passed,
            func.count(row.score),
            func.avg(row.score),
            func.count(row.error),
        )
        .where(*where)
        .group_by(*_EVAL_GROUP)
    ).all()
    if not totals:
        _check_pipeline(session, pipeline)
        return []

    labels: dict[tuple[Any, ...], dict[str, int]] = {}
    for lr in session.execute(
        select(*_EVAL_GROUP, row.label, func.count())
        .where(*where, row.label.is_not(None))
        .group_by(*_EVAL_GROUP, row.label)
    ):
        labels.setdefault(tuple(lr[:3]), {})[str(lr[3])] = int(lr[4])

    versions: dict[tuple[Any, ...], list[str]] = {}
    for r in session.execute(select(*_EVAL_GROUP, row.criterion_version).where(*where).distinct()):
        versions.setdefault(tuple(r[:3]), []).append(r[3])

    # One group's scores at a time, sorted by the database: the median and the histogram.
    scores: dict[tuple[Any, ...], tuple[float | None, list[HistogramBin]]] = {}
    query = (
        select(*_EVAL_GROUP, row.score)
        .where(*where, row.score.is_not(None))
        .order_by(*_EVAL_GROUP, row.score)
    )
    for key, values in _groups(_stream(session, query), 3):
        bars = [] if key in labels else _score_histogram(values, bins)
        scores[key] = (median(values), bars)

    failing: dict[tuple[Any, ...], list[FailingResult]] = {}
    if limit:
        newest = (
            func.row_number()
            .over(partition_by=_EVAL_GROUP, order_by=(row.at.desc(), row.id.desc()))
            .label("rank")
        )
        ranked = (
            select(
                *_EVAL_GROUP,
                row.workflow_id,
                row.criterion_version,
                row.score,
                row.label,
                row.reasoning,
                row.actor,
                row.at,
                newest,
            )
            .where(*where, row.passed.is_(False))
            .subquery("ranked")
        )
        for fr in session.execute(
            select(ranked).where(ranked.c.rank <= limit).order_by(ranked.c.rank)
        ).mappings():
            failing.setdefault((fr["criterion"], fr["node"], fr["kind"]), []).append(
                FailingResult(
                    workflow_id=fr["workflow_id"],
                    node=fr["node"],
                    criterion_version=fr["criterion_version"],
                    score=fr["score"],
                    label=fr["label"],
                    reasoning=fr["reasoning"],
                    actor=fr["actor"],
                    at=fr["at"],
                )
            )

    out = []
    for r in totals:
        key = tuple(r[:3])
        results, with_verdict, n_passed, scored, mean_score, n_errors = r[3:]
        with_verdict, n_passed = int(with_verdict), int(n_passed or 0)
        median_score, bars = scores.get(key, (None, []))
        counts = labels.get(key, {})
        out.append(
            CriterionStats(
                criterion=key[0],
                node=key[1],
                kind=EvaluationKind(key[2]),
                results=int(results),
                with_verdict=with_verdict,
                passed=n_passed,
                pass_rate=n_passed / with_verdict if with_verdict else None,
                scored=int(scored),
                mean_score=float(mean_score) if mean_score is not None else None,
                median_score=median_score,
                histogram=bars,
                labels=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
                errors=int(n_errors),
                versions=sorted(versions.get(key, [])),
                failing=failing.get(key, []),
            )
        )
    return sorted(out, key=lambda s: (s.criterion, s.node, s.kind.value))


def _score_histogram(values: list[float], bins: int) -> list[HistogramBin]:
    low, high = min(values), max(values)
    if all(float(v).is_integer() for v in values) and high - low + 1 <= bins:
        bars = histogram(values, int(high - low + 1), low=low - 0.5, high=high + 0.5)
    else:
        bars = histogram(values, bins)
    return [HistogramBin(low=b.low, high=b.high, count=b.count) for b in bars]


# --------------------------------------------------------------------------- agreement


class Disagreement(_Frozen):
    """A task where the LLM judge and the human rating differ."""

    workflow_id: str
    judge_node: str
    human_node: str
    judge_label: str | None
    human_label: str | None
    judge_score: float | None
    human_score: float | None
    difference: float | None
    """``judge_score - human_score`` for scores; None for labels."""


class AgreementStats(_Frozen):
    """How far an LLM judge agrees with human ratings of one criterion.

    Each task with both contributes one pair: its latest judge result and its latest human
    result of the criterion (by time; any nodes). A pair where both have a ``label`` is compared
    by label; otherwise, where both have a ``score``, by score.
    """

    criterion: str
    pairs: int
    """Pairs compared: ``label_pairs + numeric_pairs``."""
    label_pairs: int
    numeric_pairs: int
    incomparable: int
    """Tasks with both results where one side has neither label nor score (e.g. an error)."""
    percent_agreement: float | None
    """Label pairs: the fraction with equal labels."""
    kappa: float | None
    """Label pairs: Cohen's kappa (see :func:`store.stats.cohens_kappa`)."""
    confusion: dict[str, dict[str, int]]
    """Label pairs: judge label -> human label -> count."""
    mean_absolute_error: float | None
    """Numeric pairs: the mean of ``|judge - human|``."""
    spearman: float | None
    """Numeric pairs: Spearman's rank correlation (None for < 2 pairs or constant scores)."""
    tolerance: float
    """Numeric pairs differing by more than this are disagreements."""
    disagreements: int
    disagreeing: list[Disagreement]
    """Largest score differences first, then by workflow id; at most the ``limit`` asked for."""


def agreement(
    session: Session,
    pipeline: str,
    criterion: str | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    limit: int = DEFAULT_DISAGREEMENT_LIMIT,
) -> list[AgreementStats]:
    """Judge-versus-human agreement per criterion, sorted by criterion.

    Human rating fields record their results under the criterion name of the judge they check,
    so pairs are matched on ``(workflow_id, criterion)``, whatever the nodes. Criteria without
    any pair are left out.

    Args:
        tolerance: a numeric pair disagrees when ``|judge - human| > tolerance``; labels
            disagree whenever they differ.
        limit: at most this many disagreeing tasks per criterion (0 for none).

    Raises:
        UnknownPipeline: ``pipeline`` has no rows anywhere in the store and is not applied.
        ValueError: a negative ``tolerance`` or ``limit``.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be 0 or more, not {tolerance}")
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
    row = EvaluationResultRow
    where = _eval_where(pipeline, criterion)
    where.append(row.kind.in_([EvaluationKind.LLM_JUDGE.value, EvaluationKind.HUMAN.value]))
    latest = (
        select(
            row.workflow_id,
            row.criterion,
            row.kind,
            row.node,
            row.score,
            row.label,
            func.row_number()
            .over(
                partition_by=(row.workflow_id, row.criterion, row.kind),
                order_by=(row.at.desc(), row.id.desc()),
            )
            .label("rank"),
        )
        .where(*where)
        .cte("latest")
    )
    judge, human = latest.alias("judge"), latest.alias("human")
    pairs = (
        select(
            judge.c.criterion,
            judge.c.workflow_id,
            judge.c.node,
            judge.c.label,
            judge.c.score,
            human.c.node,
            human.c.label,
            human.c.score,
        )
        .join_from(
            judge,
            human,
            and_(
                human.c.workflow_id == judge.c.workflow_id,
                human.c.criterion == judge.c.criterion,
            ),
        )
        .where(
            judge.c.kind == EvaluationKind.LLM_JUDGE.value,
            judge.c.rank == 1,
            human.c.kind == EvaluationKind.HUMAN.value,
            human.c.rank == 1,
        )
        .order_by(judge.c.criterion, judge.c.workflow_id)
    )
    out = [
        _agreement_of(name, [tuple(m) for m in members], tolerance, limit)
        for name, members in itertools.groupby(_stream(session, pairs), key=lambda r: r[0])
    ]
    if not out:
        _check_pipeline(session, pipeline)
    return sorted(out, key=lambda s: s.criterion)


def _agreement_of(
    criterion: str, rows: list[tuple[Any, ...]], tolerance: float, limit: int
) -> AgreementStats:
    judge_labels: list[str] = []
    human_labels: list[str] = []
    judge_scores: list[float] = []
    human_scores: list[float] = []
    confusion: dict[str, dict[str, int]] = {}
    incomparable = 0
    disagreeing: list[Disagreement] = []
    for _, wid, j_node, j_label, j_score, h_node, h_label, h_score in rows:
        difference = None
        if j_label is not None and h_label is not None:
            judge_labels.append(j_label)
            human_labels.append(h_label)
            cell = confusion.setdefault(j_label, {})
            cell[h_label] = cell.get(h_label, 0) + 1
            differs = j_label != h_label
        elif j_score is not None and h_score is not None:
            judge_scores.append(float(j_score))
            human_scores.append(float(h_score))
            difference = float(j_score) - float(h_score)
            differs = abs(difference) > tolerance
        else:
            incomparable += 1
            continue
        if differs:
            disagreeing.append(
                Disagreement(
                    workflow_id=wid,
                    judge_node=j_node,
                    human_node=h_node,
                    judge_label=j_label,
                    human_label=h_label,
                    judge_score=j_score,
                    human_score=h_score,
                    difference=difference,
                )
            )
    disagreeing.sort(
        key=lambda d: (-abs(d.difference) if d.difference is not None else 0.0, d.workflow_id)
    )
    return AgreementStats(
        criterion=criterion,
        pairs=len(judge_labels) + len(judge_scores),
        label_pairs=len(judge_labels),
        numeric_pairs=len(judge_scores),
        incomparable=incomparable,
        percent_agreement=percent_agreement(judge_labels, human_labels),
        kappa=cohens_kappa(judge_labels, human_labels),
        confusion={j: dict(sorted(h.items())) for j, h in sorted(confusion.items())},
        mean_absolute_error=mean_absolute_error(judge_scores, human_scores),
        spearman=spearman(judge_scores, human_scores),
        tolerance=tolerance,
        disagreements=len(disagreeing),
        disagreeing=disagreeing[:limit],
    )
