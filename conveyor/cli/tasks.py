"""Tasks on the command line: ``task create|show|list`` and the task commands.

Every command that changes a task (``claim``, ``submit``, ``review``, ``pause``, ``admin …``)
goes through :func:`cmd_send`, its fields taken from the subcommand's flags by
:data:`CLI_COMMANDS`. Their parsers are built in :mod:`conveyor.cli.main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from conveyor.cli.common import EXIT_FAILED, EXIT_REJECTED, CliError, connect_conveyor
from conveyor.commands import task_command
from workflows.messages import ConsensusState, EvaluationRecord, TaskStatus, TaskView


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
        holders = ", ".join(c.holder for c in node.claims())
        holder = f" by {holders}" if holders else ""
        line = f"  {node.name:<16} {node.status:<12}{holder}"
        if node.values:
            line += f"  {json.dumps(node.values, ensure_ascii=False)[:120]}"
        if node.consensus is not None:
            line += "  " + _places(node.consensus)
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


def _places(item: ConsensusState) -> str:
    """``[2 of 3 answered (ana, bo), 1 claimed; agreement 0.67, agreed]`` for a consensus node."""
    answered = ", ".join(a.by for a in item.answers)
    text = f"[{len(item.answers)} of {item.needed} answered" + (
        f" ({answered})" if answered else ""
    )
    if item.slots:
        text += f", {len(item.slots)} claimed"
    if item.round > 1:
        text += f", round {item.round}"
    result = item.result
    if result is not None and result.agreement is not None:
        verdict = "agreed" if result.agreed else "no agreement"
        text += f"; agreement {result.agreement:.2f}, {verdict}"
        if result.adjudicated_by:
            text += f", settled by {result.adjudicated_by}"
    return text + "]"


# --------------------------------------------------------------------------- commands


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
    task = conveyor.task(args.id)
    try:
        # A task failing its workflow tasks cannot answer the query; say why at once instead.
        stuck = await stuck_task(conveyor, args.id)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        stuck = None  # no workflow: a lazily created task's row answers (or NOT_FOUND again)
    if stuck is not None:
        print(f"error: {stuck.describe()}", file=sys.stderr)
        return EXIT_FAILED
    # Bounded like an update: with no worker polling, a query would wait on the server.
    view = await task.state(timeout=conveyor.update_timeout)
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
            return 0
    if conveyor.untouched is not None:
        # Lazily created tasks with no workflow yet are not in Temporal's visibility.
        from store.db import transaction
        from store.lazy import untouched_ids

        with transaction(conveyor.untouched.sessions) as session:
            rows = untouched_ids(
                session, args.pipeline, status.value if status else None, args.limit - count
            )
        for workflow_id, task_status in rows:
            print(f"{task_status:<12} {workflow_id}  (untouched: no workflow yet)")
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
    "adjudicate": (
        "adjudicate",
        lambda a: {
            **_node_token(a),
            "pick": a.pick,
            "values": _values(a) if a.values else {},
            "reason": a.reason,
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
    "admin release": (
        "release_claim",
        lambda a: {"node": a.node, "reason": a.reason, "holder": a.holder},
    ),
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
    if name == "claim" and conveyor.untouched is not None:
        from conveyor.workqueue import PipelinePaused, refuse_if_paused

        try:
            await refuse_if_paused(conveyor.untouched.sessions, args.id)
        except PipelinePaused as err:
            print(f"rejected: {err}", file=sys.stderr)
            return EXIT_REJECTED
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
