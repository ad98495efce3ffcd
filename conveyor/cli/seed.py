"""Infinite seeding on the command line: ``seed start``, ``status`` and ``stop``.

``starter.py`` adds these commands with :func:`register`::

    python starter.py seed start --pipeline label-review --file data/reviews.csv --in-flight 50
    python starter.py seed start --pipeline label-review --generator mypkg.rows:reviews --rate 30
    python starter.py seed start --pipeline label-review --llm-prompt "Write {{ n }} reviews" \\
        --llm-model openai/gpt-4o-mini --in-flight 20 --max-tasks 1000
    python starter.py seed status label-review
    python starter.py seed stop label-review

The seeder runs on the workers as a ``Seeder`` workflow (id ``seeder:<pipeline>``, see
:mod:`workflows.seeder`). Starting a seeder again after it stopped carries on from where it
stopped: the latest seeder that ended with the same key prefix gives the position, when it used the
same source (``--from-start`` walks the source again from its first row: tasks already created
are found, not created twice).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from conveyor.cli.common import CliError, connect_conveyor
from conveyor.client import (
    _RACE_RETRIES,
    ConveyorClient,
    PipelineNotAccepting,
    UnknownPipeline,
    _is_continue_as_new_race,
)
from workflows.seeder import SeederWorkflow
from workflows.seeder_messages import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_KEY_PREFIX,
    MAX_BATCH_SIZE,
    FileSource,
    GeneratorSource,
    LlmSource,
    SeedCursor,
    SeederInput,
    SeederProgress,
    SeedSource,
    StopSeeding,
    seeder_workflow_id,
)

FILE_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``seed start|status|stop`` to the CLI's subcommands."""
    seed = sub.add_parser("seed", help="infinite seeding: keep a pipeline supplied with tasks")
    ssub = seed.add_subparsers(dest="action", required=True)

    start = ssub.add_parser("start", help="start a pipeline's seeder")
    start.add_argument("--pipeline", required=True, help="an applied pipeline's name")
    source = start.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="CSV, JSON Lines or JSON file (cycled); workers read it")
    source.add_argument(
        "--generator", metavar="MODULE:FUNCTION", help="a deterministic iterator of dicts"
    )
    source.add_argument("--llm-prompt", metavar="TEXT", help="ask a model for new seed rows")
    start.add_argument(
        "--llm-model", metavar="MODEL", default="conveyor/offline", help="(conveyor/offline)"
    )
    start.add_argument("--llm-system", metavar="TEXT", default="", help="system prompt template")
    start.add_argument("--llm-api-base", metavar="URL", help="an OpenAI-compatible endpoint")
    start.add_argument(
        "--rows-per-call", metavar="N", type=_positive, default=10, help="rows per model call"
    )
    mode = start.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--in-flight", metavar="N", type=_positive, help="keep this many unfinished tasks"
    )
    mode.add_argument("--rate", metavar="R", type=_rate, help="create this many tasks per minute")
    start.add_argument(
        "--max-tasks", metavar="N", type=_positive, help="stop after this many tasks"
    )
    start.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive,
        default=DEFAULT_BATCH_SIZE,
        help=f"tasks per batch (at most {MAX_BATCH_SIZE})",
    )
    start.add_argument(
        "--key-prefix",
        metavar="PREFIX",
        default=DEFAULT_KEY_PREFIX,
        help="task keys are PREFIX-<position> (another source on the same pipeline needs its own)",
    )
    start.add_argument(
        "--from-start",
        action="store_true",
        help="start at the source's first row, not where the last seeder stopped",
    )
    start.add_argument("--json", action="store_true", help="print the seeder's input as JSON")
    start.set_defaults(handler=cmd_seed_start)

    status = ssub.add_parser("status", help="a seeder's progress")
    status.add_argument("pipeline")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_seed_status)

    stop = ssub.add_parser("stop", help="stop a seeder after its current batch")
    stop.add_argument("pipeline")
    stop.add_argument("--reason")
    stop.add_argument("--as", dest="as_", default="operator")
    stop.add_argument("--json", action="store_true")
    stop.set_defaults(handler=cmd_seed_stop)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tasks per minute") from None
    if not 0 < value <= 60_000:
        raise argparse.ArgumentTypeError("must be above 0 and at most 60000 per minute")
    return value


# --------------------------------------------------------------------------- sources


def source_from_args(args: argparse.Namespace) -> SeedSource:
    """The source the command line names, checked as far as this machine can.

    Raises:
        CliError: a file of an unknown format, or a malformed generator reference.
    """
    if args.file is not None:
        path = Path(args.file)
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise CliError(f"--file {args.file}: use a .csv, .jsonl or .json file")
        if path.is_file():
            return FileSource(path=str(path.resolve()))
        print(
            f"note: {args.file} is not on this machine; every worker must be able to read it",
            file=sys.stderr,
        )
        return FileSource(path=args.file)
    if args.generator is not None:
        module, colon, name = args.generator.partition(":")
        if not colon or not module or not name.isidentifier():
            raise CliError(f"--generator {args.generator!r}: write package.module:function")
        try:
            found = callable(getattr(importlib.import_module(module), name, None))
        except Exception:
            found = False
        if not found:
            print(
                f"note: {args.generator} cannot be loaded here; the workers must be able to "
                "import it",
                file=sys.stderr,
            )
        return GeneratorSource(target=args.generator)
    return LlmSource(
        model=args.llm_model,
        prompt=args.llm_prompt,
        system=args.llm_system,
        rows_per_call=min(args.rows_per_call, 100),
        api_base=args.llm_api_base,
    )


# --------------------------------------------------------------------------- client side


def seeder_handle(
    conveyor: ConveyorClient, pipeline: str
) -> WorkflowHandle[SeederWorkflow, SeederProgress]:
    return conveyor.client.get_workflow_handle_for(SeederWorkflow.run, seeder_workflow_id(pipeline))


async def last_seeder(
    handle: WorkflowHandle[SeederWorkflow, SeederProgress],
) -> tuple[WorkflowExecutionStatus | None, SeederProgress | None]:
    """The seeder's status and progress: (None, None) when there never was one."""
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None, None
        raise
    status = description.status
    if status == WorkflowExecutionStatus.RUNNING:
        return status, await handle.query(SeederWorkflow.progress)
    if status == WorkflowExecutionStatus.COMPLETED:
        return status, await handle.result()
    # Terminated or failed: a worker can still answer the query from the history.
    try:
        async with asyncio.timeout(10):
            return status, await handle.query(SeederWorkflow.progress)
    except (TimeoutError, RPCError, WorkflowQueryFailedError):
        return status, None


async def start_seeder(
    conveyor: ConveyorClient, request: SeederInput
) -> WorkflowHandle[SeederWorkflow, SeederProgress]:
    """Start the pipeline's seeder on the client's task queue.

    Raises:
        CliError: one is already running for the pipeline.
    """
    try:
        return await conveyor.client.start_workflow(
            SeederWorkflow.run,
            request,
            id=seeder_workflow_id(request.pipeline),
            task_queue=conveyor.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"seeder of {request.pipeline}: {request.source.describe()}"[:200],
        )
    except WorkflowAlreadyStartedError:
        raise CliError(
            f"a seeder of {request.pipeline!r} is already running; stop it first "
            f"(seed stop {request.pipeline})"
        ) from None


async def stop_seeder(
    handle: WorkflowHandle[SeederWorkflow, SeederProgress], request: StopSeeding, timeout: float
) -> SeederProgress:
    """Stop a running seeder after its current batch; its final progress.

    Raises:
        TimeoutError: no answer within ``timeout`` seconds (no worker polls its task queue).
    """
    async with asyncio.timeout(timeout):
        for attempt in range(_RACE_RETRIES):
            try:
                return await handle.execute_update("stop", request, result_type=SeederProgress)
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return await handle.result()  # it ended meanwhile
                # The update met the seeder while it continued as new: the new run takes it.
                if attempt + 1 == _RACE_RETRIES or not _is_continue_as_new_race(err):
                    raise
                await asyncio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


async def earlier_seeders(
    conveyor: ConveyorClient, pipeline: str, limit: int = 20
) -> list[SeederProgress]:
    """The final progress of the pipeline's seeders that ended, newest first (at most
    ``limit`` looked at)."""
    found: list[SeederProgress] = []
    seen: set[str] = set()
    workflow_id = seeder_workflow_id(pipeline)
    # The latest run, read directly: the list below comes from visibility, which can lag behind
    # a seeder that has just ended.
    with contextlib.suppress(Exception):  # none yet, or it cannot be read
        latest = conveyor.client.get_workflow_handle_for(SeederWorkflow.run, workflow_id)
        described = await latest.describe()
        if described.status == WorkflowExecutionStatus.COMPLETED:
            found.append(await latest.result(follow_runs=False))
            seen.add(described.run_id)
    query = f"WorkflowId = '{workflow_id}' AND ExecutionStatus = 'Completed'"
    async for execution in conveyor.client.list_workflows(query, limit=limit):
        if execution.run_id in seen:
            continue
        handle = conveyor.client.get_workflow_handle_for(
            SeederWorkflow.run, execution.id, run_id=execution.run_id
        )
        with contextlib.suppress(Exception):  # a run that cannot be read is no help
            found.append(await handle.result(follow_runs=False))
    return found


def starting_cursor(
    earlier: Sequence[SeederProgress], source: SeedSource, key_prefix: str, from_start: bool
) -> SeedCursor:
    """Where a new seeder starts: after the latest one with the same key prefix, when it used
    the same source.

    Raises:
        CliError: that seeder used another source (the keys would collide, and the new rows
            would be taken for tasks that exist).
    """
    previous = next((p for p in earlier if p.key_prefix == key_prefix), None)
    if previous is None:
        return SeedCursor()
    if previous.source != source:
        raise CliError(
            f"an earlier seeder of {previous.pipeline!r} used {previous.source.describe()} with "
            f"key prefix {key_prefix!r}; give this source its own --key-prefix so that its keys "
            "differ from those tasks' keys"
        )
    return SeedCursor() if from_start else previous.cursor


# --------------------------------------------------------------------------- commands


async def cmd_seed_start(args: argparse.Namespace) -> int:
    source = source_from_args(args)
    conveyor = await connect_conveyor()
    try:
        await conveyor.creation_target(args.pipeline)
    except UnknownPipeline as err:
        raise CliError(str(err)) from None
    except PipelineNotAccepting as err:
        print(f"note: {err}; the seeder waits until it does", file=sys.stderr)
    status, _ = await last_seeder(seeder_handle(conveyor, args.pipeline))
    if status == WorkflowExecutionStatus.RUNNING:
        raise CliError(
            f"a seeder of {args.pipeline!r} is already running; stop it first "
            f"(seed stop {args.pipeline})"
        )
    cursor = starting_cursor(
        await earlier_seeders(conveyor, args.pipeline), source, args.key_prefix, args.from_start
    )
    try:
        request = SeederInput(
            pipeline=args.pipeline,
            source=source,
            in_flight=args.in_flight,
            rate_per_minute=args.rate,
            batch_size=min(args.batch_size, MAX_BATCH_SIZE),
            max_tasks=args.max_tasks,
            key_prefix=args.key_prefix,
            cursor=cursor,
        )
    except ValueError as err:
        raise CliError(f"invalid seeder settings: {err}") from None
    await start_seeder(conveyor, request)
    pace = f"keep {args.in_flight} in flight" if args.in_flight else f"{args.rate:g} per minute"
    resumed = request.cursor != SeedCursor()
    where = f", carrying on at {request.cursor.describe(source.kind)}" if resumed else ""
    print(
        f"seeder {seeder_workflow_id(args.pipeline)} started: {source.describe()}, {pace}{where}",
        file=sys.stderr,
    )
    if args.json:
        print(request.model_dump_json())
    else:
        print(seeder_workflow_id(args.pipeline))
    return 0


async def cmd_seed_status(args: argparse.Namespace) -> int:
    conveyor = await connect_conveyor()
    status, progress = await last_seeder(seeder_handle(conveyor, args.pipeline))
    if status is None:
        raise CliError(f"no seeder of {args.pipeline!r}; start one with `seed start`")
    if progress is None:
        how = status.name.lower()
        raise CliError(f"the seeder of {args.pipeline!r} ended: {how}")
    print_progress(progress, as_json=args.json)
    return 0


async def cmd_seed_stop(args: argparse.Namespace) -> int:
    conveyor = await connect_conveyor()
    handle = seeder_handle(conveyor, args.pipeline)
    status, progress = await last_seeder(handle)
    if status is None:
        raise CliError(f"no seeder of {args.pipeline!r}")
    if status == WorkflowExecutionStatus.RUNNING:
        try:
            progress = await stop_seeder(
                handle,
                StopSeeding(by=args.as_, reason=args.reason),
                timeout=conveyor.update_timeout + 60,
            )
        except TimeoutError:
            raise CliError(
                f"the seeder of {args.pipeline!r} did not answer; is a worker running?"
            ) from None
    else:
        print(f"the seeder of {args.pipeline!r} has already ended", file=sys.stderr)
    if progress is not None:
        print_progress(progress, as_json=args.json)
    return 0


def print_progress(progress: SeederProgress, *, as_json: bool) -> None:
    """The seeder's counters and position, as text or JSON."""
    if as_json:
        print(json.dumps(progress.model_dump(mode="json")))
        return
    print(f"{seeder_workflow_id(progress.pipeline)}: {progress.text()}")
    details: list[tuple[str, Any]] = [("batches", progress.batches), ("runs", progress.runs)]
    if progress.llm.calls:
        cost = progress.llm.cost_usd
        details.append(("model calls", progress.llm.calls))
        details.append(("cost", "unknown" if cost is None else f"${cost:.4f}"))
    print("  " + ", ".join(f"{name} {value}" for name, value in details))
    for reason in progress.last_invalid:
        print(f"  invalid: {reason}")
    if progress.last_error:
        print(f"  last error: {progress.last_error}")
