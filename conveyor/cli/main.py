"""The command line's parser and its error-to-exit-code mapping.

:func:`build_parser` assembles every command group (this package's modules); :func:`run` parses
the arguments, runs the command's handler and turns errors into one line on stderr and an exit
code (:mod:`conveyor.cli.common`). ``starter.py`` is the entry that calls both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from conveyor.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_REJECTED,
    EXIT_UNAVAILABLE,
    CliError,
    Unavailable,
    describe_store,
)
from conveyor.cli.ops import cmd_db_upgrade, cmd_pipeline_validate, cmd_reconcile
from conveyor.cli.queue import cmd_queue_list, cmd_queue_next
from conveyor.cli.tasks import cmd_send, cmd_task_create, cmd_task_list, cmd_task_show
from conveyor.client import CommandRejected, InvalidSeedData, NoWorkerResponded
from conveyor.settings import Settings, resolve_data_dir
from store.db import SchemaOutOfDate
from workflows.graph import PipelineInvalid
from workflows.messages import QuarantineAction, TaskStatus, Verdict

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
"""A command: its parsed arguments in, its exit code out."""
Register = Callable[[argparse._SubParsersAction], None]
"""Adds a module's commands to the top-level subcommands."""


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


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with EXIT_INVALID (bad input), not argparse's 2 (EXIT_REJECTED)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message}\n")


def build_parser(*, dev_handler: Handler, register_api: Register) -> argparse.ArgumentParser:
    """Every command of ``starter.py``. ``dev_handler`` (runs :mod:`conveyor.dev`) and
    ``register_api`` (adds ``user`` and ``api`` from :mod:`conveyor.server`) come from layers
    this package may not import (``[tool.importlinter]``), so the entry passes them in."""
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
    dev.set_defaults(handler=dev_handler)

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
    a = command(
        sub,
        "adjudicate",
        "adjudicate",
        "settle a consensus item under a claimed adjudicate node: pick an annotator's answer "
        "and/or write the final answer, with a reason",
        node=True,
        token=True,
    )
    a.add_argument("--pick", help="the annotator whose answer becomes the final one")
    a.add_argument("--values", help="final answer fields as JSON (over the picked answer)")
    a.add_argument("--reason", required=True, help="why this is the final answer")
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
    register_api(sub)

    admin = sub.add_parser("admin", help="admin operations on a task")
    asub = admin.add_subparsers(dest="action", required=True)
    e = command(asub, "edit", "admin edit", "edit a submission", node=True)
    e.add_argument("--values", required=True, help="JSON object of replacement values")
    e.add_argument("--reason")
    rc = command(asub, "release", "admin release", "release whoever holds a node", node=True)
    rc.add_argument(
        "--holder", help="whose claim, on a consensus node where several people hold places"
    )
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


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Run one command; errors become one line on stderr and an exit code (see the README)."""
    args = parser.parse_args(argv)
    handler: Handler = args.handler
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
