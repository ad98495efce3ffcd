"""The Data Explorer on the command line: ``explore``, ``export`` and ``delete``.

``starter.py`` adds these commands with :func:`register`::

    python starter.py explore counts --pipeline support
    python starter.py explore tasks --pipeline support --status "In Progress" --sort=-updated_at
    python starter.py explore task support/doc-1
    python starter.py export --pipeline support --format zip --out support.zip --tag audit
    python starter.py export --pipeline votes --shape long --out answers.csv
    python starter.py delete --pipeline support --status Failed --yes --state-file del.state

Reads go to the store (``CONVEYOR_DATABASE_URL``); ``delete`` also talks to Temporal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.bulk import (
    EXPORT_FORMATS,
    EXPORT_SHAPES,
    ConfirmationRequired,
    ProgressBar,
    Selection,
    delete_tasks,
    export,
)
from conveyor.cli.common import CliError, connect_conveyor, store_sessions, timestamp
from store.db import transaction
from store.explorer import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Page,
    Sort,
    SortField,
    TaskDetail,
    TaskFilter,
    TaskNotFound,
    header_counts,
    page,
    task_detail,
)
from workflows.messages import NodeStatus, TaskStatus

EXIT_NOT_FOUND = 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``explore``, ``export`` and ``delete`` to the CLI's subcommands."""
    explore = sub.add_parser("explore", help="the Data Explorer: counts, task lists, task detail")
    esub = explore.add_subparsers(dest="action", required=True)

    counts = esub.add_parser("counts", help="task counts by state")
    counts.add_argument("--pipeline", required=True)
    counts.add_argument("--json", action="store_true")
    counts.set_defaults(handler=cmd_explore_counts)

    tasks = esub.add_parser("tasks", help="a page of tasks (Task Metadata, or --data)")
    tasks.add_argument("--pipeline", required=True)
    add_filters(tasks)
    sorts = [f.value for f in SortField]
    tasks.add_argument(
        "--sort",
        default="created_at",
        metavar="FIELD",
        help=f"one of {', '.join(sorts)}; descending with a '-', written --sort=-created_at",
    )
    tasks.add_argument("--limit", type=_page_size, default=DEFAULT_PAGE_SIZE)
    tasks.add_argument("--after", metavar="CURSOR", help="the cursor printed by the last page")
    tasks.add_argument("--data", action="store_true", help="show field values (Task Data)")
    tasks.add_argument("--json", action="store_true", help="print the page as JSON")
    tasks.set_defaults(handler=cmd_explore_tasks)

    task = esub.add_parser("task", help="one task: its Nodes and Timeline")
    task.add_argument("id", help="workflow id (pipeline/key)")
    task.add_argument("--json", action="store_true")
    task.set_defaults(handler=cmd_explore_task)

    exp = sub.add_parser("export", help="export tasks as CSV, JSON, JSON Lines or ZIP")
    exp.add_argument("--pipeline", required=True)
    exp.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
    exp.add_argument(
        "--shape",
        choices=EXPORT_SHAPES,
        default="wide",
        help="wide: one row per task (consensus nodes add their columns); long: one row per "
        "answer of a consensus node (docs/consensus-exports.md)",
    )
    exp.add_argument(
        "--out",
        required=True,
        help="the file to write; an interrupted export to it continues when rerun",
    )
    exp.add_argument(
        "--restart",
        action="store_true",
        help="discard an unfinished export to --out and start over",
    )
    add_filters(exp, ids=True)
    exp.set_defaults(handler=cmd_export)

    rm = sub.add_parser(
        "delete", help="delete tasks: their workflows and store rows (cannot be undone)"
    )
    rm.add_argument("--pipeline", help="required unless --ids is given")
    add_filters(rm, ids=True)
    rm.add_argument("--yes", action="store_true", help="confirm: deletion cannot be undone")
    rm.add_argument(
        "--state-file",
        type=Path,
        help="record progress here; rerun with the same file to continue after an interruption",
    )
    rm.add_argument("--verbose", action="store_true", help="print every task's outcome")
    rm.set_defaults(handler=cmd_delete)


# --------------------------------------------------------------------------- arguments


def add_filters(parser: argparse.ArgumentParser, *, ids: bool = False) -> None:
    states = [s.value for s in TaskStatus]
    node_states = [s.value for s in NodeStatus]
    parser.add_argument("--status", action="append", choices=states, help="repeatable")
    parser.add_argument("--node", help="tasks waiting on this node (or in --node-status)")
    parser.add_argument("--node-status", choices=node_states)
    parser.add_argument("--assignee")
    parser.add_argument("--tag")
    parser.add_argument("--text", help="case-insensitive substring of any value")
    parser.add_argument("--created-from", type=timestamp, metavar="ISO", help="inclusive")
    parser.add_argument("--created-to", type=timestamp, metavar="ISO", help="exclusive")
    if ids:
        parser.add_argument("--ids", nargs="+", metavar="ID", help="explicit workflow ids")


def criteria_of(args: argparse.Namespace) -> TaskFilter:
    return TaskFilter(
        status=[TaskStatus(s) for s in args.status or []],
        node=args.node,
        node_status=NodeStatus(args.node_status) if args.node_status else None,
        assignee=args.assignee,
        tag=args.tag,
        text=args.text,
        created_from=args.created_from,
        created_to=args.created_to,
        workflow_ids=getattr(args, "ids", None),
    )


def _page_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"--limit must be between 1 and {MAX_PAGE_SIZE}")
    return value


# --------------------------------------------------------------------------- commands


async def cmd_explore_counts(args: argparse.Namespace) -> int:
    sessions = store_sessions()
    with transaction(sessions) as session:
        counts = header_counts(session, args.pipeline)
    if args.json:
        print(counts.model_dump_json(indent=2))
        return 0
    print(f"{args.pipeline}: {counts.finished_text()}")
    for state, n in counts.counts.items():
        print(f"  {state.value:<12} {n:>10,}")
    print(f"  {'total':<12} {counts.total:>10,}")
    return 0


async def cmd_explore_tasks(args: argparse.Namespace) -> int:
    try:
        sort = Sort.parse(args.sort)
    except ValueError as err:
        raise CliError(str(err)) from None
    sessions = store_sessions()
    with transaction(sessions) as session:
        result = page(
            session,
            args.pipeline,
            criteria_of(args),
            sort,
            limit=args.limit,
            after=args.after,
            with_data=args.data,
        )
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    print_page(result, data=args.data)
    return 0


async def cmd_explore_task(args: argparse.Namespace) -> int:
    sessions = store_sessions()
    try:
        with transaction(sessions) as session:
            detail = task_detail(session, args.id)
    except TaskNotFound as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print(detail.model_dump_json(indent=2))
    else:
        print_detail(detail)
    return 0


async def cmd_export(args: argparse.Namespace) -> int:
    sessions = store_sessions()
    criteria = criteria_of(args)
    stop = threading.Event()

    def resuming(rows: int) -> None:
        if args.shape == "long":  # the file's rows are answers; an export resumes by task
            done = f"task {rows + 1:,} ({rows:,} exported by an earlier run)"
        else:
            done = f"row {rows + 1:,} ({rows:,} written by an earlier run)"
        print(f"resuming export at {done}", flush=True)

    with ProgressBar("exported") as bar:

        def progress(done: int, total: int) -> None:
            bar(done, total)
            if stop.is_set():  # the page is saved: a rerun continues after it
                raise KeyboardInterrupt

        try:
            report = await asyncio.to_thread(
                export,
                sessions,
                args.pipeline,
                criteria,
                args.format,
                Path(args.out),
                progress,
                restart=args.restart,
                on_resume=resuming,
                shape=args.shape,
            )
        except asyncio.CancelledError:
            # Ctrl-C cancels this task but not the export's thread: stop it after its page.
            stop.set()
            bar.close()
            print(
                "interrupted; rerun the same command to continue the export where it stopped",
                file=sys.stderr,
            )
            raise
    earlier = f", {report.resumed_rows:,} of them by an earlier run" if report.resumed_rows else ""
    if report.answers is not None:
        print(
            f"exported {report.answers:,} answer(s) of {report.rows:,} task(s) of "
            f"{args.pipeline} to {report.path} ({args.format}, long){earlier}"
        )
        return 0
    print(
        f"exported {report.rows:,} task(s) of {args.pipeline} to {report.path} "
        f"({args.format}){earlier}"
    )
    return 0


async def cmd_delete(args: argparse.Namespace) -> int:
    try:
        selection = Selection(pipeline=args.pipeline, filter=criteria_of(args))
    except ValueError:
        raise CliError("delete needs --pipeline (or explicit --ids)") from None
    if not args.yes:  # before connecting anywhere
        hint = "" if args.state_file else " (and --state-file FILE to make it resumable)"
        raise ConfirmationRequired(f"deleting tasks cannot be undone: add --yes to confirm{hint}")
    sessions = store_sessions()
    conveyor = await connect_conveyor()
    with ProgressBar("deleted", "tasks") as bar:
        try:
            report = await delete_tasks(
                conveyor,
                sessions,
                selection,
                confirm=args.yes,
                progress=bar,
                state_file=args.state_file,
            )
        except KeyboardInterrupt:
            bar.close()
            if args.state_file:
                print(f"interrupted; rerun with --state-file {args.state_file} to continue")
            raise
    for result in report.results:
        if args.verbose or result.reason:
            reason = f": {result.reason}" if result.reason else ""
            print(f"{result.outcome.value:<12} {result.workflow_id}{reason}")
    skipped = f", {report.skipped:,} done by an earlier run" if report.skipped else ""
    print(
        f"deleted {report.deleted:,}, already gone {report.already_gone:,}, "
        f"errors {len(report.errors):,}{skipped}"
    )
    return 0 if report.ok else 1


# --------------------------------------------------------------------------- printing


def _cell(value: Any, width: int = 40) -> str:
    if value is None:
        text = ""
    elif isinstance(value, datetime):
        text = f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
    elif isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_page(result: Page, *, data: bool) -> None:
    """A page as a table, then the command that fetches the next page."""
    columns = result.columns
    if not data:
        headers = ["workflow_id", "status", "current", "assignees", "created", "updated"]
        headers += columns.nodes
        rows = [
            [
                _cell(r.workflow_id, 60),
                r.status.value,
                _cell(", ".join(r.current_nodes), 30),
                _cell(", ".join(r.assignees), 30),
                _cell(r.created_at),
                _cell(r.updated_at),
                *(r.node_statuses[n].value if n in r.node_statuses else "" for n in columns.nodes),
            ]
            for r in result.rows
        ]
    else:
        names = [*columns.field_names, *columns.evaluations]
        headers = ["workflow_id", "status", *names, "tags"]
        rows = [
            [
                _cell(r.workflow_id, 60),
                r.status.value,
                *(_cell((r.values or {}).get(n), 30) for n in names),
                _cell(", ".join(r.tags), 30),
            ]
            for r in result.rows
        ]
    if rows:
        _table(headers, rows)
    else:
        print("(no tasks)")
    if result.next_cursor:
        print(f"\nnext page: --sort={result.sort} --after {result.next_cursor}")


def print_detail(detail: TaskDetail) -> None:
    """The Nodes view, then the Timeline view."""
    print(f"task      {detail.workflow_id}")
    hold = f" ({detail.hold_reason})" if detail.hold_reason else ""
    print(f"status    {detail.status.value}{hold}")
    print(f"pipeline  {detail.pipeline} @ {detail.pipeline_hash[:12]}")
    print(f"created   {_cell(detail.created_at)}   updated {_cell(detail.updated_at)}", end="")
    print(f"   finished {_cell(detail.finished_at)}" if detail.finished_at else "")
    if detail.tags:
        print(f"tags      {', '.join(detail.tags)}")
    if detail.data:
        print(f"data      {_cell(detail.data, 200)}")
    print("\nNodes")
    for node in detail.nodes:
        kind = f" ({node.kind.value})" if node.kind else ""
        who = f" by {node.assignee}" if node.assignee else ""
        print(f"  {node.name}{kind}: {node.status.value}{who}")
        if node.fields:
            specs = ", ".join(f"{f.name}:{f.type.value}/{f.source.value}" for f in node.fields)
            print(f"    fields     {specs}")
        if node.values:
            print(f"    values     {_cell(node.values, 200)}")
        if node.draft:
            print(f"    draft      {_cell(node.draft, 200)}")
        if node.attempts or node.passes or node.failures:
            print(
                f"    attempts {node.attempts}, passes {node.passes}, failures {node.failures}"
                f" (total {node.total_failures})"
            )
        if node.last_review:
            review = node.last_review
            reason = f": {review.reason}" if review.reason else ""
            print(f"    review     {review.verdict.value} by {review.reviewer}{reason}")
        if node.rework_reason:
            print(f"    rework     {node.rework_reason}")
        if node.error:
            print(f"    error      {node.error}")
        for sub in node.submissions:
            print(
                f"    #{sub.seq:<4} {sub.kind:<6} {sub.actor:<14} {_cell(sub.at)} "
                f"{_cell(sub.values, 80)}"
            )
        for ev in node.evaluations:
            print(f"    eval {ev.criterion}: score {ev.score}, passed {ev.passed}")
    print("\nTimeline")
    for event in detail.timeline:
        where = f" [{event.node}]" if event.node else ""
        print(
            f"  #{event.seq:<4} {_cell(event.at)} {event.actor:<14} {event.kind:<18}"
            f"{where} {event.message}"
        )
