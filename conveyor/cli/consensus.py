"""Consensus Analytics on the command line: ``analytics consensus PIPELINE`` and ``analytics
dawid-skene PIPELINE``.

``conveyor/cli/analytics.py`` adds the command under ``analytics``::

    python starter.py analytics consensus consensus-label
    python starter.py analytics consensus consensus-label --node label --csv agreement.csv
    python starter.py analytics consensus consensus-label --tag gold --json
    python starter.py analytics dawid-skene consensus-label --field sentiment --csv ds.csv

It reads the store (``CONVEYOR_DATABASE_URL``) only. The figures are worked out in
``store/consensus_analytics/``; docs/consensus-analytics.md says what each one means.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from conveyor.cli.common import (
    CliError,
    Unavailable,
    number,
    positive,
    ratio,
    store_sessions,
    table,
    timestamp,
)
from store.consensus_analytics import (
    DEFAULT_ITERATIONS,
    DEFAULT_MIN_SHARED,
    ConsensusAgreement,
    DawidSkeneReport,
    DawidSkeneRun,
    NoAnswers,
    NodeAgreement,
    NotCategorical,
    NotConsensus,
    QualityExtraMissing,
    UnknownRun,
    consensus_agreement,
    dawid_skene,
    dawid_skene_runs,
    label_text,
    run_dawid_skene,
    stored_dawid_skene,
    write_csv,
    write_dawid_skene_csv,
)
from store.db import transaction
from store.explorer import TaskFilter
from workflows.errors import UnknownPipeline
from workflows.messages import TaskStatus


def register(asub: argparse._SubParsersAction) -> None:
    """Add ``consensus`` to the ``analytics`` subcommands."""
    cs = asub.add_parser(
        "consensus",
        help="how far the annotators of consensus nodes agree: Krippendorff's alpha, percent "
        "agreement, per contributor and per pair (Cohen's kappa)",
        description="Agreement between the annotators of a pipeline's consensus nodes, per "
        "counted field: Krippendorff's alpha (nominal, ordinal or interval by field type), "
        "percent agreement, each contributor's agreement with the final answers, and Cohen's "
        "kappa of every pair of contributors sharing enough items. See "
        "docs/consensus-analytics.md.",
    )
    cs.add_argument("pipeline", help="the pipeline's name")
    cs.add_argument("--node", help="one consensus node (default: every one)")
    cs.add_argument(
        "--min-shared",
        type=positive,
        default=DEFAULT_MIN_SHARED,
        metavar="N",
        help="list pairs of contributors who answered at least N of the same items "
        f"(default {DEFAULT_MIN_SHARED})",
    )
    _add_filters(cs)
    _add_output(cs)
    cs.set_defaults(handler=cmd_analytics_consensus)

    ds = asub.add_parser(
        "dawid-skene",
        help="re-aggregate a consensus node's categorical field with Dawid-Skene: per item "
        "the estimate and its probability beside the majority, per contributor a confusion "
        "matrix (needs the quality extra)",
        description="Dawid-Skene over every answer of one consensus node's select, boolean, "
        "pairwise, rating or integer field: each item's estimated answer and its posterior "
        "probability beside its majority and its recorded final answer, and each contributor's "
        "confusion matrix. The run is stored (beside the tasks: their recorded values are "
        "never changed) so it can be read back with --run and listed with --runs. Needs "
        "crowd-kit (pip install 'conveyor[quality]'). See docs/consensus-analytics.md.",
    )
    ds.add_argument("pipeline", help="the pipeline's name")
    ds.add_argument("--node", help="the consensus node (needed when there are several)")
    ds.add_argument("--field", help="the field (needed when the node has several that fit)")
    ds.add_argument(
        "--iterations",
        type=positive,
        default=DEFAULT_ITERATIONS,
        metavar="N",
        help=f"at most N EM iterations (default {DEFAULT_ITERATIONS})",
    )
    ds.add_argument(
        "--limit",
        type=positive,
        default=20,
        metavar="N",
        help="items listed where the estimate differs from the majority (default 20; the "
        "CSV and JSON have every item)",
    )
    stored = ds.add_mutually_exclusive_group()
    stored.add_argument(
        "--dry-run",
        action="store_true",
        help="work the estimates out and show them without storing a run",
    )
    stored.add_argument(
        "--run",
        type=positive,
        metavar="N",
        help="show stored run N instead of running the model again (see --runs)",
    )
    stored.add_argument(
        "--latest",
        action="store_true",
        help="show the latest stored run instead of running the model again",
    )
    stored.add_argument(
        "--runs", action="store_true", help="list the pipeline's stored runs, the newest first"
    )
    ds.add_argument(
        "--as",
        dest="as_",
        default=os.environ.get("USER", "operator"),
        help="who ran it, stored with the run (default $USER)",
    )
    _add_filters(ds)
    _add_output(ds)
    ds.set_defaults(handler=cmd_analytics_dawid_skene)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in TaskStatus],
        metavar="STATE",
        help="count only tasks in this state (repeatable): "
        + ", ".join(s.value for s in TaskStatus),
    )
    parser.add_argument("--tag", help="count only tasks with this tag")
    parser.add_argument("--created-from", type=timestamp, metavar="ISO", help="tasks created from")
    parser.add_argument(
        "--created-to", type=timestamp, metavar="ISO", help="tasks created before (exclusive)"
    )


def _add_output(parser: argparse.ArgumentParser) -> None:
    out = parser.add_mutually_exclusive_group()
    out.add_argument(
        "--csv",
        metavar="FILE",
        help="write the figures as one CSV table to FILE ('-' for standard output)",
    )
    out.add_argument("--json", action="store_true", help="print the figures as JSON")


def _criteria(args: argparse.Namespace) -> TaskFilter | None:
    if not (args.status or args.tag or args.created_from or args.created_to):
        return None
    return TaskFilter(
        status=[TaskStatus(s) for s in args.status or []],
        tag=args.tag,
        created_from=args.created_from,
        created_to=args.created_to,
    )


def _write_csv(path: str, write: Callable[[TextIO], None]) -> bool:
    """Write to ``path`` (``-``: standard output); True when it went to a file."""
    if path == "-":
        write(sys.stdout)
        return False
    try:
        with Path(path).open("w", encoding="utf-8", newline="") as out:
            write(out)
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror or err}") from None
    return True


async def cmd_analytics_consensus(args: argparse.Namespace) -> int:
    sessions = store_sessions()
    try:
        with transaction(sessions) as session:
            report = consensus_agreement(
                session,
                args.pipeline,
                node=args.node,
                criteria=_criteria(args),
                min_shared=args.min_shared,
            )
    except (UnknownPipeline, NotConsensus) as err:
        raise CliError(str(err)) from None
    if args.csv:
        if _write_csv(args.csv, lambda out: write_csv(report, out)):
            print(f"wrote the agreement figures of {args.pipeline} to {args.csv}")
    elif args.json:
        print(report.model_dump_json(indent=2))
    else:
        print_report(report)
    return 0


async def cmd_analytics_dawid_skene(args: argparse.Namespace) -> int:
    criteria = _criteria(args)
    reading = "--runs" if args.runs else "--latest" if args.latest else "--run" if args.run else ""
    if reading and (args.node or args.field or criteria is not None):
        raise CliError(
            f"{reading} reads what is stored: --node, --field and the task filters choose what "
            "a new run covers (leave them out, or leave out " + reading + ")"
        )
    if args.runs and args.csv:
        raise CliError(
            "--runs lists the runs as a table or --json; for a run's CSV: --run N --csv FILE"
        )
    sessions = store_sessions()
    stored: DawidSkeneRun | None = None
    try:
        with transaction(sessions) as session:
            if args.runs:
                runs = dawid_skene_runs(session, args.pipeline)
            elif args.run or args.latest:
                kept = stored_dawid_skene(session, args.pipeline, args.run)
                report, stored = kept.report, kept.run
            elif args.dry_run:
                report = dawid_skene(
                    session,
                    args.pipeline,
                    node=args.node,
                    field=args.field,
                    criteria=criteria,
                    iterations=args.iterations,
                )
            else:
                kept = run_dawid_skene(
                    session,
                    args.pipeline,
                    node=args.node,
                    field=args.field,
                    criteria=criteria,
                    iterations=args.iterations,
                    by=args.as_,
                )
                report, stored = kept.report, kept.run
    except (UnknownPipeline, NotConsensus, NotCategorical, NoAnswers, UnknownRun) as err:
        raise CliError(str(err)) from None
    except QualityExtraMissing as err:
        raise Unavailable(str(err)) from None
    if args.runs:
        if args.json:
            print(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
        else:
            print_runs(args.pipeline, runs)
        return 0
    if args.csv:
        if _write_csv(args.csv, lambda out: write_dawid_skene_csv(report, out)):
            print(f"wrote the Dawid-Skene estimates of {args.pipeline} to {args.csv}")
    elif args.json:
        print(report.model_dump_json(indent=2))
    else:
        print_dawid_skene(report, args.limit)
    if stored is not None:
        # Beside JSON or CSV on standard output, the note goes to standard error.
        machine = args.json or args.csv == "-"
        _print_stored(
            stored, fresh=not (args.run or args.latest), out=sys.stderr if machine else sys.stdout
        )
    return 0


def _print_stored(run: DawidSkeneRun, *, fresh: bool, out: TextIO) -> None:
    when = run.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    if fresh:
        print(
            f"\nstored as run {run.id} (read it back: python starter.py analytics dawid-skene "
            f"{run.pipeline} --run {run.id})",
            file=out,
        )
    else:
        by = f" by {run.created_by}" if run.created_by else ""
        print(f"\nstored run {run.id} of {when}{by}", file=out)


# --------------------------------------------------------------------------- printing


def print_report(report: ConsensusAgreement) -> None:
    """Per node: the counts, then the fields, the contributors and the pairs."""
    for i, node in enumerate(report.nodes):
        if i:
            print()
        _print_node(report.pipeline, node, report.min_shared)


def _print_node(pipeline: str, node: NodeAgreement, min_shared: int) -> None:
    print(
        f"{pipeline} / {node.node}: {node.items:,} items ({node.final:,} final, "
        f"{node.adjudicated:,} adjudicated), {node.answers:,} answers by "
        f"{node.contributors:,} contributors"
    )
    if not node.items:
        print("  (no answers yet)")
        return
    print()
    table(
        ["field", "type", "level", "items", "answers", "alpha", "agreement"],
        [
            [
                f.field,
                f.type.value,
                f.level.value if f.level else "-",
                f"{f.items:,}",
                f"{f.answers:,}",
                number(f.alpha),
                ratio(f.percent_agreement),
            ]
            for f in node.fields
        ],
        left=3,
    )
    for f in node.fields:
        if f.note:
            print(f"  {f.field}: {f.note}")
    # The people and pairs tables show the fields some item compared (not every field of the
    # form: the JSON and the CSV have them all).
    compared = [f.field for f in node.fields if f.level is not None and f.items]
    print("\nagreement with the final answer (share of each contributor's answers)")
    table(
        ["contributor", "answers", *compared],
        [
            [
                c.contributor,
                f"{c.answers:,}",
                *(
                    f"{ratio(f.share)} of {f.compared:,}" if f.compared else "-"
                    for f in c.fields
                    if f.field in compared
                ),
            ]
            for c in node.by_contributor
        ],
        left=1,
        indent="  ",
    )
    if not node.pairs:
        print(f"\nno two contributors share {min_shared:,} or more items")
        return
    print(f"\npairs sharing {min_shared:,}+ items: percent agreement / Cohen's kappa")
    table(
        ["a", "b", "shared", *compared],
        [
            [
                p.a,
                p.b,
                f"{p.shared:,}",
                *(
                    f"{ratio(f.percent_agreement)} / {number(f.kappa)}" if f.items else "-"
                    for f in p.fields
                    if f.field in compared
                ),
            ]
            for p in node.pairs
        ],
        left=2,
        indent="  ",
    )


def print_dawid_skene(report: DawidSkeneReport, limit: int) -> None:
    """The priors, the contributors' accuracy and confusion, then the items the model reads
    differently from the majority."""
    print(
        f"{report.pipeline} / {report.node} / {report.field}: Dawid-Skene over "
        f"{report.items:,} items ({report.iterations} iterations)"
    )
    if not report.items:
        print("  (no answers yet)")
        return
    print("\nestimated share of each true answer")
    table(
        ["answer", "share"],
        [[label, ratio(p)] for label, p in report.priors.items()],
        left=1,
        indent="  ",
    )
    print("\ncontributors: accuracy, and P(answer given | true answer)")
    labels = list(report.priors)
    table(
        ["contributor", "answers", "accuracy", "true", *labels],
        [
            [
                c.contributor if i == 0 else "",
                f"{c.answers:,}" if i == 0 else "",
                ratio(c.accuracy) if i == 0 else "",
                true,
                *(number(c.confusion[true].get(g)) for g in labels),
            ]
            for c in report.contributors
            for i, true in enumerate(labels)
        ],
        left=1,
        indent="  ",
        text_columns=(3,),
    )
    differing = [i for i in report.by_item if i.differs]
    print(
        f"\n{report.differing:,} of {report.items:,} items: the estimate is not the majority"
        + (f" (first {limit:,})" if report.differing > limit else "")
    )
    if differing:
        table(
            ["workflow_id", "majority", "estimate", "probability", "final"],
            [
                [
                    i.workflow_id,
                    f"{label_text(i.majority)} ({i.majority_share:.0%})",
                    label_text(i.estimate),
                    number(i.probability),
                    "-" if i.final is None else label_text(i.final),
                ]
                for i in differing[:limit]
            ],
            left=3,
            indent="  ",
        )


def print_runs(pipeline: str, runs: list[DawidSkeneRun]) -> None:
    """The stored runs, one line each, the newest first."""
    if not runs:
        print(
            f"no Dawid-Skene run is stored for {pipeline}; run one with "
            f"python starter.py analytics dawid-skene {pipeline}"
        )
        return
    table(
        ["run", "at", "by", "node", "field", "items", "differing", "iterations", "tasks"],
        [
            [
                str(r.id),
                r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.created_by or "-",
                r.node,
                r.field,
                f"{r.items:,}",
                f"{r.differing:,}",
                f"{r.iterations} of {r.max_iterations}",
                _criteria_text(r.criteria),
            ]
            for r in runs
        ],
        left=5,
        text_columns=(8,),
    )


def _criteria_text(criteria: dict[str, object]) -> str:
    if not criteria:
        return "all"
    return ", ".join(f"{k}={v}" for k, v in sorted(criteria.items()))
