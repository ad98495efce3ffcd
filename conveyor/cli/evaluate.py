"""Bulk evaluation on the command line: ``evaluate start``, ``status`` and ``cancel``.

``starter.py`` adds these commands with :func:`register`::

    python starter.py evaluate start --pipeline support --evaluator label.has_label --wait
    python starter.py evaluate start --pipeline support --file evaluators.yaml --status Finished
    python starter.py evaluate status bulk-evaluate/support/20260101T120000Z
    python starter.py evaluate cancel bulk-evaluate/support/20260101T120000Z

Evaluators are named ``NODE.NAME`` (taken from the pipeline's current version in the store) or
listed in a YAML / JSON file of ``{node: ..., evaluator: {...}}`` entries. Tasks are selected
with the same filters as ``export`` (or ``--ids``). The work runs in a ``BulkEvaluate``
workflow on the workers; giving the same ``--id`` again resumes or repeats it, and either way
no task is evaluated twice for the same evaluator version.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from conveyor.bulk import ProgressBar
from conveyor.bulk_evaluation import (
    check_evaluators,
    current_pipeline,
    current_progress,
    evaluators_by_name,
    start_bulk_evaluation,
)
from conveyor.cli.common import CliError, connect_conveyor, store_sessions
from conveyor.cli.explorer import add_filters, criteria_of
from conveyor.pipelines import load_raw
from store.db import transaction
from store.explorer import TaskFilter, pipeline_versions
from workflows.bulk_evaluate import BulkEvaluateWorkflow
from workflows.bulk_evaluate_messages import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONCURRENCY,
    MAX_CHUNK_SIZE,
    MAX_CONCURRENCY,
    BulkEvaluateInput,
    BulkEvaluateProgress,
    NodeEvaluator,
    bulk_evaluate_workflow_id,
)
from workflows.graph import PipelineInvalid

POLL_SECONDS = 0.5


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate start|status|cancel`` to the CLI's subcommands."""
    evaluate = sub.add_parser(
        "evaluate", help="bulk evaluation: run evaluators over a selection of tasks"
    )
    esub = evaluate.add_subparsers(dest="action", required=True)

    start = esub.add_parser("start", help="start (or resume) a bulk evaluation")
    start.add_argument("--pipeline", required=True)
    which = start.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--evaluator",
        action="append",
        metavar="NODE.NAME",
        help="an evaluator of the pipeline's current version (repeatable)",
    )
    which.add_argument(
        "--file", type=Path, help="YAML or JSON list of {node: ..., evaluator: {...}} entries"
    )
    add_filters(start, ids=True)
    start.add_argument("--chunk-size", type=_bounded(1, MAX_CHUNK_SIZE), default=DEFAULT_CHUNK_SIZE)
    start.add_argument(
        "--concurrency",
        type=_bounded(1, MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        help="chunks evaluated at once",
    )
    start.add_argument(
        "--id", help="workflow id (default bulk-evaluate/<pipeline>/<time>); reuse it to resume"
    )
    start.add_argument("--wait", action="store_true", help="show progress until it finishes")
    start.add_argument("--json", action="store_true", help="print the final summary as JSON")
    start.set_defaults(handler=cmd_evaluate_start)

    status = esub.add_parser("status", help="a bulk evaluation's progress")
    status.add_argument("id", help="the workflow id printed by start")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_evaluate_status)

    cancel = esub.add_parser("cancel", help="stop a bulk evaluation (running chunks finish)")
    cancel.add_argument("id", help="the workflow id printed by start")
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(handler=cmd_evaluate_cancel)


def _bounded(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


# --------------------------------------------------------------------------- evaluators


def load_evaluator_file(path: Path) -> list[NodeEvaluator]:
    """Read a YAML or JSON list of ``{node: ..., evaluator: {...}}`` entries.

    A mapping with an ``evaluators`` key holding that list is accepted too.

    Raises:
        CliError: the file cannot be read, or lists every invalid entry with its problems.
    """
    try:
        raw = load_raw(path)
    except PipelineInvalid as err:
        raise CliError(err.problems[0].message) from None
    if isinstance(raw, dict) and set(raw) == {"evaluators"}:
        raw = raw["evaluators"]
    if not isinstance(raw, list) or not raw:
        raise CliError(
            f"{path}: expected a list of entries like "
            "{node: label, evaluator: {name: has_label, kind: regex, fields: [label], "
            "pattern: '.'}}"
        )
    found: list[NodeEvaluator] = []
    problems: list[str] = []
    for i, entry in enumerate(raw, start=1):
        where = f"entry {i}"
        if isinstance(entry, dict) and isinstance(entry.get("node"), str):
            where += f" (node {entry['node']!r})"
        try:
            found.append(NodeEvaluator.model_validate(entry))
        except ValidationError as err:
            for e in err.errors():
                loc = ".".join(str(part) for part in e["loc"]) or "entry"
                problems.append(f"{where}: {loc}: {e['msg']}")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise CliError(f"{path} has {len(problems)} problem(s):\n{lines}")
    keys = [e.key for e in found]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise CliError(f"{path} lists the same evaluator twice: {', '.join(repeated)}")
    return found


# --------------------------------------------------------------------------- client side


async def wait_for(
    handle: WorkflowHandle[Any, BulkEvaluateProgress], bar: ProgressBar | None = None
) -> BulkEvaluateProgress:
    """The final summary, drawing progress on ``bar`` meanwhile (polling the query)."""
    result = asyncio.ensure_future(handle.result())
    try:
        while not result.done():
            with contextlib.suppress(RPCError):
                progress = await handle.query(BulkEvaluateWorkflow.progress)
                if bar is not None:
                    total = max(progress.tasks_total or 0, progress.tasks_seen)
                    bar(progress.tasks_seen, total)
            await asyncio.wait({result}, timeout=POLL_SECONDS)
        return result.result()
    finally:
        result.cancel()


# --------------------------------------------------------------------------- commands


async def cmd_evaluate_start(args: argparse.Namespace) -> int:
    sessions = store_sessions()
    with transaction(sessions) as session:
        versions = pipeline_versions(session, args.pipeline)
    pipeline = current_pipeline(versions, args.pipeline)
    if args.file is not None:
        evaluators = load_evaluator_file(args.file)
        check_evaluators(pipeline, evaluators)
    else:
        evaluators = evaluators_by_name(pipeline, args.evaluator)
    criteria: TaskFilter = criteria_of(args)
    request = BulkEvaluateInput(
        pipeline=args.pipeline,
        filter=criteria.model_dump(mode="json", exclude_defaults=True),
        evaluators=evaluators,
        chunk_size=args.chunk_size,
        concurrency=args.concurrency,
    )
    workflow_id = args.id or bulk_evaluate_workflow_id(args.pipeline, datetime.now(UTC))
    conveyor = await connect_conveyor()
    handle = await start_bulk_evaluation(conveyor.client, conveyor.task_queue, request, workflow_id)
    names = ", ".join(e.key for e in evaluators)
    print(f"bulk evaluation {workflow_id} of {args.pipeline}: {names}", file=sys.stderr)
    if not args.wait:
        print(workflow_id)
        return 0
    with ProgressBar("evaluated", "tasks") as bar:
        try:
            summary = await wait_for(handle, bar)
        except (KeyboardInterrupt, asyncio.CancelledError):
            bar.close()
            print(
                f"stopped waiting; it keeps running: `evaluate status {workflow_id}`",
                file=sys.stderr,
            )
            raise
    print_summary(workflow_id, summary, as_json=args.json)
    return 0 if summary.errors == 0 else 1


async def cmd_evaluate_status(args: argparse.Namespace) -> int:
    conveyor = await connect_conveyor()
    handle = conveyor.client.get_workflow_handle_for(BulkEvaluateWorkflow.run, args.id)
    print_summary(args.id, await current_progress(handle), as_json=args.json)
    return 0


async def cmd_evaluate_cancel(args: argparse.Namespace) -> int:
    conveyor = await connect_conveyor()
    handle = conveyor.client.get_workflow_handle_for(BulkEvaluateWorkflow.run, args.id)
    progress = await current_progress(handle)
    if progress.done:
        print(f"{args.id} has already ended", file=sys.stderr)
    else:
        await handle.cancel()
        print(f"cancelling {args.id}: waiting for running chunks to finish", file=sys.stderr)
        progress = await handle.result()
    print_summary(args.id, progress, as_json=args.json)
    return 0


def print_summary(workflow_id: str, progress: BulkEvaluateProgress, *, as_json: bool) -> None:
    """The counters, as text or JSON."""
    if as_json:
        print(json.dumps({"workflow_id": workflow_id, **progress.model_dump(mode="json")}))
        return
    print(f"{workflow_id}: {progress.text()}")
    for reason, n in sorted(progress.skip_reasons.items()):
        print(f"  skipped {n:,}: {reason}")
    for message in progress.last_errors:
        print(f"  error: {message}")
