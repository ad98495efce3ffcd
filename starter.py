"""Conveyor's command line: ``python starter.py --help``.

A thin CLI over the typed client library (``conveyor/client.py``). Every command that changes a
task goes through its workflow as an update, so the answer (accepted, or why not) is printed at
once; ``--signal`` sends it fire-and-forget instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

from conveyor.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_REJECTED,
    EXIT_UNAVAILABLE,
    CliError,
    Unavailable,
    connect_conveyor,
    describe_store,
    store_sessions,
)
from conveyor.client import CommandRejected, InvalidSeedData, NoWorkerResponded
from conveyor.commands import task_command
from conveyor.pipelines import load_pipeline_file
from conveyor.settings import Settings, resolve_data_dir
from store.db import SchemaOutOfDate
from workflows.graph import PipelineInvalid
from workflows.messages import (
    EvaluationRecord,
    QuarantineAction,
    TaskStatus,
    TaskView,
    Verdict,
)
from workflows.task import TaskWorkflow

__all__ = ["EXIT_FAILED", "EXIT_INVALID", "EXIT_REJECTED", "EXIT_UNAVAILABLE", "main"]


def _json_arg(text: str, what: str) -> dict[str, Any]:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CliError(f"{what} is not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(value, dict):
        raise CliError(f'{what} must be a JSON object like \'{{"label": "positive"}}\'')
    return value


def _port(text: str, *, off: bool = False) -> int:
    """An argparse type: a TCP port (``0`` too when ``off``: the listener is turned off)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not (0 if off else 1) <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port; use 1-65535" + (", or 0 for off" if off else "")
        )
    return port


def _port_or_off(text: str) -> int:
    return _port(text, off=True)


# --------------------------------------------------------------------------- printing


def print_view(view: TaskView, *, as_json: bool) -> None:
    if as_json:
        print(view.model_dump_json(indent=2))
        return
    print(f"task      {view.workflow_id}")
    print(f"status    {view.status}" + (f" ({view.hold_reason})" if view.hold_reason else ""))
    print(f"pipeline  {view.pipeline} @ {view.pipeline_hash[:12]}")
    if view.tags:
        print(f"tags      {', '.join(view.tags)}")
    print(f"data      {json.dumps(view.data, ensure_ascii=False)[:200]}")
    print("nodes:")
    for node in view.nodes:
        holder = f" by {node.claim.holder}" if node.claim else ""
        line = f"  {node.name:<16} {node.status:<12}{holder}"
        if node.values:
            line += f"  {json.dumps(node.values, ensure_ascii=False)[:120]}"
        if node.rework_reason:
            line += f"  [rework: {node.rework_reason}]"
        if node.failures or node.passes:
            line += f"  (passes {node.passes}, failures {node.failures})"
        if node.error:
            line += f"  [error: {node.error}]"
        print(line)
    print("timeline (latest):")
    for event in view.timeline[-15:]:
        print(f"  #{event.seq:<4} {event.at:%Y-%m-%d %H:%M:%S} {event.actor:<14} {event.message}")


# --------------------------------------------------------------------------- commands


async def cmd_pipeline_validate(args: argparse.Namespace) -> int:
    pipeline = load_pipeline_file(args.file)
    human = sum(1 for n in pipeline.nodes if n.is_human)
    llm = sum(1 for n in pipeline.nodes if n.is_llm_node)
    print(
        f"{args.file}: pipeline '{pipeline.name}' is valid — {len(pipeline.nodes)} nodes "
        f"({human} human, {llm} LLM), version {pipeline.content_hash()[:12]}"
    )
    return 0


async def cmd_task_create(args: argparse.Namespace) -> int:
    from conveyor.cli.pipeline import creation_target

    data = _json_arg(args.data, "--data")
    conveyor = await connect_conveyor()
    target = await creation_target(conveyor, args.pipeline)
    created = await conveyor.create_task(
        target.pipeline,
        args.key,
        data,
        start_paused=args.paused or target.start_paused,
        start_pending=args.pending,
    )
    if not created.created:
        print(f"{created.workflow_id}  (already existed; nothing created)", file=sys.stderr)
    print(created.workflow_id)
    return 0


async def cmd_task_show(args: argparse.Namespace) -> int:
    from conveyor.reconcile import stuck_task

    conveyor = await connect_conveyor()
    # A task failing its workflow tasks cannot answer the query; say why at once instead.
    stuck = await stuck_task(conveyor, args.id)
    if stuck is not None:
        print(f"error: {stuck.describe()}", file=sys.stderr)
        return EXIT_FAILED
    # Bounded like an update: with no worker polling, a query would wait on the server.
    view = await conveyor.task(args.id).handle.query(
        TaskWorkflow.state, rpc_timeout=timedelta(seconds=conveyor.update_timeout)
    )
    print_view(view, as_json=args.json)
    return 0


async def cmd_task_list(args: argparse.Namespace) -> int:
    conveyor = await connect_conveyor()
    status = TaskStatus(args.status) if args.status else None
    count = 0
    async for workflow_id, task_status in conveyor.list_tasks(
        pipeline=args.pipeline, status=status
    ):
        print(f"{task_status or '?':<12} {workflow_id}")
        count += 1
        if count >= args.limit:
            break
    return 0


def _values(a: argparse.Namespace) -> dict[str, Any]:
    return _json_arg(a.values, "--values")


def _node_token(a: argparse.Namespace) -> dict[str, Any]:
    return {"node": a.node, "token": a.token}


CLI_COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], dict[str, Any]]]] = {
    "claim": ("claim", lambda a: {"roles": a.roles or [], "node": a.node}),
    "release": ("release", _node_token),
    "draft": ("save_draft", lambda a: {**_node_token(a), "values": _values(a)}),
    "regenerate": ("regenerate", _node_token),
    "submit": ("submit", lambda a: {**_node_token(a), "values": _values(a)}),
    "review": (
        "review",
        lambda a: {
            **_node_token(a),
            "verdict": a.verdict,
            "reason": a.reason,
            "values": _values(a) if a.values else {},
        },
    ),
    "pause": ("pause", lambda a: {"reason": a.reason}),
    "resume": ("resume", lambda a: {}),
    "activate": ("activate", lambda a: {}),
    "tag": ("tag", lambda a: {"tags": a.tags}),
    "untag": ("untag", lambda a: {"tags": a.tags}),
    "admin edit": (
        "edit_submission",
        lambda a: {"node": a.node, "values": _values(a), "reason": a.reason},
    ),
    "admin release": ("release_claim", lambda a: {"node": a.node, "reason": a.reason}),
    "admin escalate": ("escalate", lambda a: {"reason": a.reason}),
    "admin deescalate": ("deescalate", lambda a: {"reason": a.reason}),
    "admin resolve": ("resolve_quarantine", lambda a: {"action": a.action, "reason": a.reason}),
    "admin retry": ("retry", lambda a: {"reason": a.reason}),
}
"""The task commands of the command line: subcommand → (command of
:data:`workflows.messages.TASK_COMMANDS`, its fields from the subcommand's flags). The sender is
``--as``; the request id ``--request-id`` or a fresh one. Every task command has a subcommand
here (``tests/test_command_registry.py``)."""


async def cmd_send(args: argparse.Namespace) -> int:
    name, fields = CLI_COMMANDS[args.command_name]
    command = task_command(name, actor=args.as_, request_id=args.request_id, **fields(args))
    conveyor = await connect_conveyor()
    task = conveyor.task(args.id)
    if args.signal:
        await task.signal(command)
        print(f"signal {command.type} sent (request_id {command.request_id})")
        return 0
    result = await task.send(command)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(f"ok: {result.message}  [task {result.status}]")
        if result.token:
            print(f"token: {result.token}")
        for evaluation in result.evaluations:
            print(f"  {_verdict_line(evaluation)}")
    return 0


def _verdict_line(record: EvaluationRecord) -> str:
    """``criterion: passed (reasoning)`` for an inline evaluator's verdict."""
    if record.error:
        verdict = f"error: {record.error}"
    elif record.passed is not None:
        verdict = "passed" if record.passed else "failed"
    else:
        verdict = f"score {record.score}" if record.score is not None else f"{record.label}"
    reasoning = f" ({record.reasoning})" if record.reasoning else ""
    return f"{record.criterion}: {verdict}{reasoning}"


async def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from conveyor.cli.common import sqlite_path
    from conveyor.settings import store_url
    from store.db import current_revision, make_engine, migrate, safe_url

    url = store_url()
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    migrate(engine)
    print(f"{safe_url(engine.url)} is at revision {current_revision(engine)}")
    return 0


async def cmd_queue_list(args: argparse.Namespace) -> int:
    from store.db import transaction
    from store.workqueue import claimable, my_claims, my_submitted

    sessions = store_sessions()
    with transaction(sessions) as session:
        if args.action == "list":
            for item in claimable(
                session, args.as_, args.roles or [], pipeline=args.pipeline, limit=args.limit
            ):
                rework = f"  [rework: {item.rework_reason}]" if item.rework_reason else ""
                since = f"{item.available_since:%Y-%m-%d %H:%M}" if item.available_since else ""
                print(f"{item.workflow_id:<40} {item.node:<16} {since}{rework}")
        elif args.action == "mine":
            for item in my_claims(session, args.as_):
                print(f"{item.workflow_id:<40} {item.node:<16} {item.status}")
        else:
            for done in my_submitted(session, args.as_, limit=args.limit):
                print(f"{done.at:%Y-%m-%d %H:%M:%S} {done.workflow_id:<40} {done.node}")
    return 0


async def cmd_queue_next(args: argparse.Namespace) -> int:
    from conveyor.workqueue import NoWorkAvailable, next_work

    sessions = store_sessions()
    conveyor = await connect_conveyor()
    try:
        claimed = await next_work(
            conveyor, sessions, args.as_, args.roles or [], pipeline=args.pipeline
        )
    except NoWorkAvailable as err:
        print(str(err), file=sys.stderr)
        return 1
    print(f"claimed {claimed.item.node} of {claimed.item.workflow_id}")
    print(f"token: {claimed.token}")
    return 0


async def cmd_reconcile(args: argparse.Namespace) -> int:
    from conveyor.reconcile import reconcile

    sessions = store_sessions()
    conveyor = await connect_conveyor()

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rchecked {done}/{total}", end="", file=sys.stderr, flush=True)

    report = await reconcile(
        conveyor, sessions, pipeline=args.pipeline, fix=args.fix, progress=progress
    )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    for drift in report.drifted:
        verb = "fixed" if drift.fixed else "drift"
        print(f"{verb}: {drift.workflow_id}")
        for problem in drift.problems:
            print(f"    {problem}")
    for orphan in report.orphans:
        print(f"orphan: {orphan} is in the store but its workflow is gone")
    for stuck in report.stuck:
        print(f"stuck: {stuck.describe()}")
    for silent in report.unanswered:
        print(f"no answer: {silent} is running but did not answer (is a worker running?)")
    state = "repaired" if args.fix else "found"
    extra = "".join(
        f", {len(items)} {what}"
        for items, what in ((report.stuck, "stuck"), (report.unanswered, "unanswered"))
        if items
    )
    print(
        f"checked {report.checked} task(s): {len(report.drifted)} drifted ({state}), "
        f"{len(report.orphans)} orphan(s){extra}"
    )
    fixed = args.fix and not report.stuck and not report.unanswered
    return 0 if report.clean or fixed else 1


async def cmd_dev(args: argparse.Namespace) -> int:
    from conveyor.dev import run_dev

    def port_or_off(value: int | None) -> int | None:
        return -1 if value is None else (value or None)

    return await run_dev(
        port=args.port,
        ui_port=args.ui_port,
        data_dir=Path(args.data_dir),
        demo=not args.no_demo,
        ephemeral=args.ephemeral,
        web_port=args.web_port,
        metrics_port=port_or_off(args.metrics_port),
        app_metrics_port=port_or_off(args.app_metrics_port),
        temporal_address=args.temporal_address,
    )


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with EXIT_INVALID (bad input), not argparse's 2 (EXIT_REJECTED)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="starter.py",
        description="Conveyor: durable human + LLM work pipelines on Temporal.",
        epilog="Connection settings come from CONVEYOR_* variables; see the README.",
    )
    sub = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    dev = sub.add_parser(
        "dev",
        help="run the whole local system: Temporal + UI, worker, web app, demo",
        description="Start the Temporal dev server (+ UI), a worker, the web app and demo "
        "tasks. A port that is taken stops start-up at once, naming the option to change.",
    )
    dev.add_argument("--port", type=_port, default=7233, help="Temporal frontend port (7233)")
    dev.add_argument(
        "--ui-port", type=_port, default=None, help="Temporal UI port (--port + 1000: 8233)"
    )
    dev.add_argument(
        "--web-port",
        type=_port,
        default=None,
        help="web app and HTTP API port (CONVEYOR_WEB_PORT, else 8000)",
    )
    dev.add_argument(
        "--metrics-port",
        type=_port_or_off,
        default=None,
        help="worker's SDK metrics port (CONVEYOR_METRICS_PORT, else 9464; 0: off)",
    )
    dev.add_argument(
        "--app-metrics-port",
        type=_port_or_off,
        default=None,
        help="worker's Conveyor metrics port (CONVEYOR_APP_METRICS_PORT, else 9465; 0: off)",
    )
    dev.add_argument(
        "--temporal-address",
        metavar="HOST:PORT",
        help="use this running Temporal server instead of starting one",
    )
    dev.add_argument(
        "--data-dir",
        default=str(resolve_data_dir()[0]),
        help="Temporal's database, the store, keys and logs (CONVEYOR_DATA_DIR, else the "
        "project's data/)",
    )
    dev.add_argument("--no-demo", action="store_true", help="do not create demo tasks")
    dev.add_argument(
        "--ephemeral", action="store_true", help="keep Temporal in memory (nothing on disk)"
    )
    dev.set_defaults(handler=cmd_dev)

    from conveyor.cli.pipeline import register as register_pipeline_commands

    pipeline = sub.add_parser("pipeline", help="pipeline definitions and their lifecycle")
    psub = pipeline.add_subparsers(dest="action", required=True)
    validate = psub.add_parser("validate", help="check a YAML/JSON pipeline, listing every problem")
    validate.add_argument("file")
    validate.set_defaults(handler=cmd_pipeline_validate)
    register_pipeline_commands(psub)

    task = sub.add_parser("task", help="create, show and list tasks")
    tsub = task.add_subparsers(dest="action", required=True)
    create = tsub.add_parser("create", help="start a task; prints its workflow id")
    create.add_argument(
        "--pipeline", required=True, help="an applied pipeline's name, or a pipeline file"
    )
    create.add_argument("--key", required=True, help="task key, unique within the pipeline")
    create.add_argument("--data", default="{}", help="seed data as JSON, or @file.json")
    create.add_argument("--paused", action="store_true", help="start Paused")
    create.add_argument("--pending", action="store_true", help="start Pending until activated")
    create.set_defaults(handler=cmd_task_create)
    show = tsub.add_parser("show", help="a task's state, nodes and latest timeline")
    show.add_argument("id", help="workflow id (pipeline/key)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_task_show)
    listing = tsub.add_parser("list", help="tasks from Temporal visibility")
    listing.add_argument("--pipeline")
    listing.add_argument("--status", choices=[s.value for s in TaskStatus])
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=cmd_task_list)
    from conveyor.cli.importing import register as register_task_import

    register_task_import(tsub)

    def command(
        parent: Any, name: str, full: str, help: str, *, node: bool = False, token: bool = False
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help)
        p.add_argument("id", help="workflow id (pipeline/key)")
        p.add_argument("--as", dest="as_", default=os.environ.get("USER", "operator"))
        if node:
            p.add_argument("--node", required=True)
        if token:
            p.add_argument("--token", required=True, help="the token printed by claim")
        p.add_argument("--request-id", help="idempotency key (default: a fresh one)")
        p.add_argument("--signal", action="store_true", help="send as a signal (no answer)")
        p.add_argument("--json", action="store_true", help="print the full result as JSON")
        p.set_defaults(handler=cmd_send, command_name=full)
        return p

    c = command(sub, "claim", "claim", "claim a node (the first claimable one without --node)")
    c.add_argument("--roles", nargs="*", help="your contributor roles")
    c.add_argument("--node")
    command(sub, "release", "release", "give a claimed node back", node=True, token=True)
    d = command(sub, "draft", "draft", "save a draft on a claimed node", node=True, token=True)
    d.add_argument("--values", required=True, help="JSON object of field values")
    command(
        sub,
        "regenerate",
        "regenerate",
        "ask the model again for the LLM fields of a claimed node's draft",
        node=True,
        token=True,
    )
    s = command(sub, "submit", "submit", "submit a claimed subtask", node=True, token=True)
    s.add_argument("--values", required=True, help="JSON object of field values")
    r = command(sub, "review", "review", "pass or fail a claimed review", node=True, token=True)
    r.add_argument("--verdict", required=True, choices=[v.value for v in Verdict])
    r.add_argument("--reason", help="required when failing")
    r.add_argument("--values", help="review field values as JSON")
    p = command(sub, "pause", "pause", "pause a task (claims and LLM work freeze)")
    p.add_argument("--reason")
    command(sub, "resume", "resume", "resume a paused task exactly where it was")
    command(sub, "activate", "activate", "make a Pending task available for work")
    t = command(sub, "tag", "tag", "add tags to a task")
    t.add_argument("tags", nargs="+")
    u = command(sub, "untag", "untag", "remove tags from a task")
    u.add_argument("tags", nargs="+")

    db = sub.add_parser("db", help="the store's schema")
    dbsub = db.add_subparsers(dest="action", required=True)
    dbsub.add_parser("upgrade", help="migrate the store to the latest schema").set_defaults(
        handler=cmd_db_upgrade
    )

    queue = sub.add_parser("queue", help="the work queue: what a contributor may claim")
    qsub = queue.add_subparsers(dest="action", required=True)
    for name, text in (
        ("list", "claimable work, oldest first"),
        ("mine", "my live claims"),
        ("submitted", "what I handed in, newest first"),
        ("next", "claim the next piece of work; prints the token"),
    ):
        q = qsub.add_parser(name, help=text)
        q.add_argument("--as", dest="as_", default=os.environ.get("USER", "operator"))
        q.add_argument("--roles", nargs="*", help="your contributor roles")
        q.add_argument("--pipeline")
        q.add_argument("--limit", type=int, default=50)
        q.set_defaults(handler=cmd_queue_next if name == "next" else cmd_queue_list)

    rec = sub.add_parser("reconcile", help="compare the store with the workflows")
    rec.add_argument("--pipeline")
    rec.add_argument("--fix", action="store_true", help="repair what drifted")
    rec.set_defaults(handler=cmd_reconcile)

    from conveyor.cli.analytics import register as register_analytics
    from conveyor.cli.evaluate import register as register_evaluate
    from conveyor.cli.explorer import register as register_explorer

    register_explorer(sub)

    register_evaluate(sub)
    register_analytics(sub)
    from conveyor.cli.seed import register as register_seed

    register_seed(sub)
    from conveyor.api.cli import register as register_api

    register_api(sub)

    admin = sub.add_parser("admin", help="admin operations on a task")
    asub = admin.add_subparsers(dest="action", required=True)
    e = command(asub, "edit", "admin edit", "edit a submission", node=True)
    e.add_argument("--values", required=True, help="JSON object of replacement values")
    e.add_argument("--reason")
    rc = command(asub, "release", "admin release", "release whoever holds a node", node=True)
    rc.add_argument("--reason")
    es = command(asub, "escalate", "admin escalate", "flag a task for admin attention")
    es.add_argument("--reason", required=True)
    de = command(asub, "deescalate", "admin deescalate", "return an Escalated task to work")
    de.add_argument("--reason")
    rq = command(asub, "resolve", "admin resolve", "resolve a Quarantined task")
    rq.add_argument("--action", required=True, choices=[a.value for a in QuarantineAction])
    rq.add_argument("--reason")
    rt = command(asub, "retry", "admin retry", "retry a Failed task")
    rt.add_argument("--reason")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors become one line on stderr and an exit code (see the README)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.handler
    try:
        return asyncio.run(handler(args))
    except CommandRejected as err:
        print(f"rejected: {err.result.message}", file=sys.stderr)
        for name, problem in err.result.field_errors.items():
            print(f"  {name}: {problem}", file=sys.stderr)
        return EXIT_REJECTED
    except PipelineInvalid as err:
        # One problem (a file that cannot be read or parsed, a limit) reads best on one line.
        one = len(err.problems) == 1
        print(f"invalid pipeline: {err.problems[0]}" if one else str(err), file=sys.stderr)
        return EXIT_INVALID
    except (Unavailable, NoWorkerResponded) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (InvalidSeedData, CliError, SchemaOutOfDate, LookupError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        code, message = _explain(err, args)
        if os.environ.get("CONVEYOR_DEBUG"):
            raise
        print(f"error: {message}", file=sys.stderr)
        return code


def _explain(err: Exception, args: argparse.Namespace) -> tuple[int, str]:
    """An exit code and one line for errors from Temporal and the store."""
    from sqlalchemy.exc import DBAPIError
    from temporalio.client import RPCTimeoutOrCancelledError, WorkflowQueryFailedError
    from temporalio.service import RPCError, RPCStatusCode

    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    subject = f"task {args.id}" if isinstance(getattr(args, "id", None), str) else "the workflow"
    if isinstance(err, RPCError):
        if err.status == RPCStatusCode.NOT_FOUND:
            return EXIT_INVALID, f"{subject} not found ({first})"
        if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return EXIT_UNAVAILABLE, (
                f"{subject} did not answer in time ({first}); is a worker running? "
                "`starter.py reconcile` tells a task failing its workflow tasks from one without "
                "a worker"
            )
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.RESOURCE_EXHAUSTED):
            address = Settings.from_env().temporal_address
            return EXIT_UNAVAILABLE, f"Temporal at {address} is unavailable ({first})"
        return EXIT_FAILED, f"Temporal refused the request: {err.status.name} ({first})"
    if isinstance(err, RPCTimeoutOrCancelledError):
        return EXIT_UNAVAILABLE, f"{subject} did not answer in time; is a worker running?"
    if isinstance(err, WorkflowQueryFailedError):
        return EXIT_FAILED, f"{subject} could not answer: {first}"
    if isinstance(err, DBAPIError):
        reason = str(err.orig).strip().splitlines()[0] if err.orig else first
        return EXIT_UNAVAILABLE, f"the store at {describe_store()} failed: {reason}"
    if isinstance(err, OSError | TimeoutError):
        return EXIT_UNAVAILABLE, f"{type(err).__name__}: {first}"
    return EXIT_FAILED, (
        f"unexpected {type(err).__name__}: {first} (set CONVEYOR_DEBUG=1 for the traceback)"
    )


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    code = main()
    # Exit without interpreter finalisation: the Temporal client's native runtime can abort
    # the process (SIGABRT) if it is torn down while Python finalises, after the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
