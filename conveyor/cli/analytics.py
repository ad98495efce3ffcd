"""LLM Analytics and Evaluation Analytics on the command line: ``analytics llm|eval|agreement``
(and ``analytics consensus`` and ``analytics dawid-skene``, from ``conveyor/cli/consensus.py``).

``starter.py`` adds these commands with :func:`register`::

    python starter.py analytics llm --pipeline support --since 2026-01-01 --purpose field
    python starter.py analytics eval --pipeline support --criterion tone
    python starter.py analytics agreement --pipeline support --json

They read the store (``CONVEYOR_DATABASE_URL``) only; ``--json`` prints the result models for
machines. The queries live in ``store/analytics.py``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter

from conveyor.cli.common import CliError, number, positive, ratio, store_sessions, table, timestamp
from conveyor.cli.consensus import register as register_consensus
from store.analytics import (
    DEFAULT_DISAGREEMENT_LIMIT,
    DEFAULT_FAILING_LIMIT,
    DEFAULT_LLM_GROUPS,
    DEFAULT_TOLERANCE,
    LLM_GROUP_KEYS,
    AgreementStats,
    CriterionStats,
    LlmStats,
    Purpose,
    UnknownPipeline,
    agreement,
    evaluation_analytics,
    llm_analytics,
)
from store.db import transaction
from workflows.messages import EvaluationKind

BAR_WIDTH = 30


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``analytics llm``, ``analytics eval``, ``analytics agreement``, ``analytics
    consensus`` and ``analytics dawid-skene`` to the CLI."""
    analytics = sub.add_parser(
        "analytics",
        help="LLM Analytics (cost, latency, errors), Evaluation Analytics and Consensus Analytics",
    )
    asub = analytics.add_subparsers(dest="action", required=True)

    llm = asub.add_parser("llm", help="LLM calls: tokens, cost, latency, retries and errors")
    llm.add_argument("--pipeline", help="one pipeline (default: every pipeline)")
    llm.add_argument("--since", type=timestamp, metavar="ISO", help="attempts from (inclusive)")
    llm.add_argument("--until", type=timestamp, metavar="ISO", help="attempts before (exclusive)")
    llm.add_argument(
        "--purpose",
        choices=[p.value for p in Purpose],
        default=Purpose.ALL.value,
        help="field (filling fields), judge (LLM judges) or all (default)",
    )
    llm.add_argument(
        "--group-by",
        type=_group_by,
        default=DEFAULT_LLM_GROUPS,
        metavar="KEYS",
        help=f"comma-separated, any of {','.join(LLM_GROUP_KEYS)} "
        f"(default {','.join(DEFAULT_LLM_GROUPS)}); empty for one total",
    )
    llm.add_argument("--json", action="store_true", help="print the statistics as JSON")
    llm.set_defaults(handler=cmd_analytics_llm)

    ev = asub.add_parser("eval", help="evaluation results: pass rates, scores, failures")
    ev.add_argument("--pipeline", required=True)
    ev.add_argument("--criterion")
    ev.add_argument("--node")
    ev.add_argument("--kind", choices=[k.value for k in EvaluationKind])
    ev.add_argument(
        "--criterion-version", metavar="VERSION", help="one version (default: every version)"
    )
    ev.add_argument("--bins", type=positive, default=10, help="score histogram bins (10)")
    ev.add_argument(
        "--limit",
        type=_count,
        default=DEFAULT_FAILING_LIMIT,
        help=f"failing results listed per criterion ({DEFAULT_FAILING_LIMIT})",
    )
    ev.add_argument("--json", action="store_true", help="print the statistics as JSON")
    ev.set_defaults(handler=cmd_analytics_eval)

    ag = asub.add_parser("agreement", help="how far LLM judges agree with human ratings")
    ag.add_argument("--pipeline", required=True)
    ag.add_argument("--criterion")
    ag.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"scores further apart than this disagree ({DEFAULT_TOLERANCE})",
    )
    ag.add_argument(
        "--limit",
        type=_count,
        default=DEFAULT_DISAGREEMENT_LIMIT,
        help=f"disagreeing tasks listed per criterion ({DEFAULT_DISAGREEMENT_LIMIT})",
    )
    ag.add_argument("--json", action="store_true", help="print the statistics as JSON")
    ag.set_defaults(handler=cmd_analytics_agreement)

    register_consensus(asub)


# --------------------------------------------------------------------------- arguments


def _group_by(text: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in keys if k not in LLM_GROUP_KEYS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"cannot group by {', '.join(unknown)}: use any of {','.join(LLM_GROUP_KEYS)}"
        )
    return keys


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


# --------------------------------------------------------------------------- commands


async def cmd_analytics_llm(args: argparse.Namespace) -> int:
    sessions = store_sessions()
    try:
        with transaction(sessions) as session:
            stats = llm_analytics(
                session,
                args.pipeline,
                since=args.since,
                until=args.until,
                purpose=args.purpose,
                group_by=args.group_by,
            )
    except UnknownPipeline as err:
        raise CliError(str(err)) from None
    if args.json:
        _print_json(stats, list[LlmStats])
    else:
        print_llm(stats, args.group_by)
    return 0


async def cmd_analytics_eval(args: argparse.Namespace) -> int:
    sessions = store_sessions()
    try:
        with transaction(sessions) as session:
            stats = evaluation_analytics(
                session,
                args.pipeline,
                criterion=args.criterion,
                node=args.node,
                kind=args.kind,
                criterion_version=args.criterion_version,
                bins=args.bins,
                limit=args.limit,
            )
    except UnknownPipeline as err:
        raise CliError(str(err)) from None
    if args.json:
        _print_json(stats, list[CriterionStats])
    else:
        print_evaluations(stats)
    return 0


async def cmd_analytics_agreement(args: argparse.Namespace) -> int:
    sessions = store_sessions()
    try:
        with transaction(sessions) as session:
            stats = agreement(
                session,
                args.pipeline,
                args.criterion,
                tolerance=args.tolerance,
                limit=args.limit,
            )
    except UnknownPipeline as err:
        raise CliError(str(err)) from None
    if args.json:
        _print_json(stats, list[AgreementStats])
    else:
        print_agreement(stats)
    return 0


# --------------------------------------------------------------------------- printing


def _print_json(value: Sequence[BaseModel], kind: Any) -> None:
    print(TypeAdapter(kind).dump_json(value, indent=2).decode())


def cost_text(cost: float | None) -> str:
    """``unknown`` for None (the price is not known), ``$0.0123`` otherwise."""
    if cost is None:
        return "unknown"
    if 0 < cost < 0.00005:
        return "<$0.0001"
    return f"${cost:,.4f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def print_llm(stats: Sequence[LlmStats], group_by: Sequence[str]) -> None:
    """One row per group, then each group's errors by class."""
    if not stats:
        print("(no LLM calls)")
        return
    keys = list(group_by)
    headers = [
        *keys,
        "calls",
        "attempts",
        "retries",
        "failed",
        "error rate",
        "prompt tok",
        "compl. tok",
        "total tok",
        "cost",
        "unpriced",
        "p50",
        "p95",
    ]
    rows = [
        [
            *(str(getattr(s, k)) for k in keys),
            f"{s.calls:,}",
            f"{s.attempts:,}",
            f"{s.retries:,}",
            f"{s.failed_calls:,}",
            ratio(s.error_rate),
            f"{s.prompt_tokens:,}",
            f"{s.completion_tokens:,}",
            f"{s.total_tokens:,}",
            cost_text(s.cost_usd),
            f"{s.cost_unknown_attempts:,}",
            _ms(s.latency_p50_ms),
            _ms(s.latency_p95_ms),
        ]
        for s in stats
    ]
    table(headers, rows, left=len(keys))
    errors = [s for s in stats if s.errors]
    if errors:
        print("\nerrors by class (failed attempts)")
        for s in errors:
            group = " / ".join(str(getattr(s, k)) for k in keys) or "all"
            classes = ", ".join(f"{name} {n:,}" for name, n in s.errors.items())
            print(f"  {group}: {classes}")
    unpriced = sum(s.cost_unknown_attempts for s in stats)
    if unpriced:
        print(
            f"\n{unpriced:,} attempt(s) have no known price: their cost is not in the totals "
            "('unknown' when no attempt of a group is priced)"
        )


def print_evaluations(stats: Sequence[CriterionStats]) -> None:
    """One row per (criterion, node, kind), then each one's distribution and failures."""
    if not stats:
        print("(no evaluation results)")
        return
    headers = [
        "criterion",
        "node",
        "kind",
        "results",
        "verdicts",
        "passed",
        "pass rate",
        "mean",
        "median",
        "errors",
    ]
    rows = [
        [
            s.criterion,
            s.node,
            s.kind.value,
            f"{s.results:,}",
            f"{s.with_verdict:,}",
            f"{s.passed:,}",
            ratio(s.pass_rate),
            number(s.mean_score),
            number(s.median_score),
            f"{s.errors:,}",
        ]
        for s in stats
    ]
    table(headers, rows, left=3)
    for s in stats:
        print(f"\n{s.criterion} @ {s.node} ({s.kind.value})")
        if len(s.versions) > 1:
            print(f"  versions  {', '.join(s.versions)}")
        if s.labels:
            print("  labels    " + ", ".join(f"{label} {n:,}" for label, n in s.labels.items()))
        if s.histogram:
            top = max(b.count for b in s.histogram) or 1
            print("  scores")
            for b in s.histogram:
                bar = "#" * round(b.count / top * BAR_WIDTH)
                print(f"    {_bin_text(b.low, b.high):<20} {b.count:>7,}  {bar}".rstrip())
        for f in s.failing:
            parts = [f"    {f.workflow_id}"]
            if f.node != s.node:
                parts.append(f"node {f.node}")
            if f.score is not None:
                parts.append(f"score {f.score:g}")
            if f.label is not None:
                parts.append(f"label {f.label}")
            if f.reasoning:
                parts.append(_short(f.reasoning, 80))
            if f is s.failing[0]:
                print(f"  failing (newest first, {len(s.failing)} shown)")
            print("  ".join(parts))


def print_agreement(stats: Sequence[AgreementStats]) -> None:
    """One row per criterion, then the tasks where judge and human disagree."""
    if not stats:
        print("(no task has both an LLM judge result and a human rating)")
        return
    headers = [
        "criterion",
        "pairs",
        "agreement",
        "kappa",
        "MAE",
        "spearman",
        "disagree",
        "incomparable",
    ]
    rows = [
        [
            s.criterion,
            f"{s.pairs:,}",
            ratio(s.percent_agreement),
            number(s.kappa),
            number(s.mean_absolute_error),
            number(s.spearman),
            f"{s.disagreements:,}",
            f"{s.incomparable:,}",
        ]
        for s in stats
    ]
    table(headers, rows, left=1)
    for s in stats:
        if not s.disagreeing:
            continue
        more = s.disagreements - len(s.disagreeing)
        extra = f", {more:,} more not shown" if more else ""
        print(f"\n{s.criterion}: judge vs human{extra}")
        lines = [
            [
                d.workflow_id,
                _value(d.judge_label, d.judge_score),
                _value(d.human_label, d.human_score),
                "" if d.difference is None else f"{d.difference:+g}",
            ]
            for d in s.disagreeing
        ]
        table(["  workflow_id", "judge", "human", "difference"], _indent(lines), left=3)


def _bin_text(low: float, high: float) -> str:
    """``4`` for a whole-number bin (3.5 .. 4.5), else ``3.15 .. 3.3``."""
    if high - low == 1 and (low + 0.5).is_integer():
        return f"{low + 0.5:g}"
    return f"{low:.4g} .. {high:.4g}"


def _value(label: str | None, score: float | None) -> str:
    if label is not None:
        return label
    return "-" if score is None else f"{score:g}"


def _indent(rows: list[list[str]]) -> list[list[str]]:
    return [[f"  {r[0]}", *r[1:]] for r in rows]


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
