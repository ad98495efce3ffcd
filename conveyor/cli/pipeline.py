"""Pipeline lifecycle on the command line: apply, status changes, show and list.

Examples::

    python starter.py pipeline apply examples/label-review.yaml --activate
    python starter.py pipeline pause label-review --reason "guidelines are changing"
    python starter.py pipeline resume label-review
    python starter.py pipeline show label-review
    python starter.py pipeline list
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from conveyor.cli.common import CliError, connect_conveyor, store_sessions
from conveyor.client import (
    ConveyorClient,
    CreationTarget,
    PipelineCommandRejected,
    PipelineNotAccepting,
    UnknownPipeline,
)
from conveyor.pipelines import load_pipeline_file
from workflows.graph import Pipeline, StartMode
from workflows.pipeline_messages import (
    PipelineStatus,
    PipelineView,
)

EXIT_REFUSED = 3

_CHANGES: dict[str, tuple[PipelineStatus, str]] = {
    "activate": (PipelineStatus.ACTIVE, "make a Draft (or Completed) pipeline Active"),
    "pause": (PipelineStatus.PAUSED, "pause the pipeline and every running task of it"),
    "resume": (PipelineStatus.ACTIVE, "resume a Paused pipeline; its tasks carry on"),
    "complete": (PipelineStatus.COMPLETED, "take no new tasks; completion chains fire when done"),
    "archive": (PipelineStatus.ARCHIVED, "archive a Draft or Completed pipeline (final)"),
}


def register(psub: Any) -> None:
    """Add the lifecycle commands to the ``pipeline`` command group."""
    apply = psub.add_parser(
        "apply", help="store a definition as a version (a new one only when it changed)"
    )
    apply.add_argument("file", help="pipeline file (YAML or JSON)")
    apply.add_argument("--activate", action="store_true", help="activate it if it is Draft")
    apply.add_argument("--as", dest="as_", default=os.environ.get("USER", "operator"))
    apply.set_defaults(handler=cmd_apply)
    for name, (_, text) in _CHANGES.items():
        p = psub.add_parser(name, help=text)
        p.add_argument("name", help="pipeline name")
        p.add_argument("--reason")
        p.add_argument("--as", dest="as_", default=os.environ.get("USER", "operator"))
        p.set_defaults(handler=cmd_change, change=name)
    show = psub.add_parser("show", help="a pipeline's status, versions and recent events")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)
    listing = psub.add_parser("list", help="every applied pipeline and its status")
    listing.set_defaults(handler=cmd_list)


async def cmd_apply(args: argparse.Namespace) -> int:
    pipeline = load_pipeline_file(args.file)
    conveyor = await connect_conveyor()
    try:
        result = await conveyor.apply_pipeline(pipeline, by=args.as_)
        print(f"{pipeline.name}: {result.message} [{result.status}]")
        if args.activate and result.status == PipelineStatus.DRAFT:
            changed = await conveyor.set_pipeline_status(
                pipeline.name, PipelineStatus.ACTIVE, by=args.as_
            )
            print(f"{pipeline.name}: {changed.message}")
    except PipelineCommandRejected as err:
        raise CliError(str(err)) from None
    return 0


async def cmd_change(args: argparse.Namespace) -> int:
    to, _ = _CHANGES[args.change]
    conveyor = await connect_conveyor()
    try:
        if args.change == "resume":
            view = await conveyor.describe_pipeline(args.name)
            if view.status != PipelineStatus.PAUSED:
                raise CliError(f"pipeline {args.name!r} is {view.status}, not Paused")
        result = await conveyor.set_pipeline_status(args.name, to, by=args.as_, reason=args.reason)
    except (UnknownPipeline, PipelineCommandRejected) as err:
        raise CliError(str(err)) from None
    print(f"{args.name}: {result.message}")
    if args.change in ("pause", "resume"):
        print(f"  its tasks are being {args.change}d; follow with: pipeline show {args.name}")
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    conveyor = await connect_conveyor()
    try:
        view = await conveyor.describe_pipeline(args.name)
    except UnknownPipeline as err:
        raise CliError(str(err)) from None
    if args.json:
        print(view.model_dump_json(indent=2))
        return 0
    print_view(view)
    if conveyor.untouched is not None:
        print_tasks(conveyor.untouched.sessions, view)
    return 0


def print_tasks(sessions: sessionmaker[Session], view: PipelineView) -> None:
    """The pipeline's tasks in the store: how many, by status, and how many have no workflow
    yet (lazy start)."""
    from store.db import transaction
    from store.lazy import QUEUED, UNTOUCHED, not_started
    from store.tasks import status_counts

    with transaction(sessions) as session:
        counts = status_counts(session, view.name)
        waiting = not_started(session, view.name)
    untouched, queued = waiting[UNTOUCHED], waiting[QUEUED]
    total = sum(counts.values())
    by_status = ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items()))
    print(f"tasks     {total:,}" + (f" ({by_status})" if by_status else ""))
    mode = view.current.task_start if view.current is not None else None
    if untouched or queued or mode == StartMode.LAZY:
        print(
            f"start     {mode or 'lazy'}: {untouched:,} task(s) untouched (no workflow yet; "
            "the first command to each starts it)"
        )
    if queued:
        print(
            f"starting  {queued:,} task(s) queued for the background starter (worker.py "
            "starts them as fast as Temporal takes them)"
        )


def print_view(view: PipelineView) -> None:
    print(f"pipeline  {view.name}  [{view.status}]")
    current = view.current_version[:12] if view.current_version else "none"
    print(f"current   {current}  ({len(view.versions)} version(s))")
    for v in view.versions:
        mark = "*" if v.hash == view.current_version else " "
        print(f"  {mark} {v.hash[:12]}  {v.applied_at:%Y-%m-%d %H:%M:%S}  by {v.applied_by}")
    if view.sweep is not None:
        s = view.sweep
        state = "done" if s.done else f"round {s.round}"
        remaining = "" if s.remaining is None else f", {s.remaining} not yet paused"
        print(f"fan-out   {s.action}: {state}, {s.signalled} signal(s){remaining}")
    if view.current is not None and view.current.chains:
        for chain in view.current.chains:
            print(f"chain     -> {chain.to} ({chain.trigger})")
    if view.blocked_by:
        blocked = ", ".join(f"{n} {status}" for status, n in view.blocked_by.items())
        print(f"blocked   completion chains wait for: {blocked}")
    for event in view.events[-10:]:
        print(f"  {event.at:%Y-%m-%d %H:%M:%S} {event.actor:<12} {event.message}")


async def cmd_list(args: argparse.Namespace) -> int:
    # From the store (the pipelines' projection): one query, whatever the number of pipelines.
    from store.db import transaction
    from store.repositories import list_pipelines

    with transaction(store_sessions()) as session:
        infos = list_pipelines(session)
    if not infos:
        print("no pipelines yet (python starter.py pipeline apply FILE)")
    for info in infos:
        current = info.current_version[:12] if info.current_version else "-"
        print(f"{info.name:<32} {info.status:<10} {current}")
    return 0


async def creation_target(conveyor: ConveyorClient, pipeline: str) -> CreationTarget:
    """``--pipeline``: an applied pipeline's name (its current version), or a definition file.

    A file is used as given. When a pipeline of that name was applied, its status still rules:
    tasks start Paused while it is Paused, and none are created while it takes no tasks.
    """
    if Path(pipeline).is_file():
        definition: Pipeline = load_pipeline_file(pipeline)
        try:
            target = await conveyor.creation_target(definition.name)
        except UnknownPipeline:
            return CreationTarget(definition, False, PipelineStatus.ACTIVE)
        except PipelineNotAccepting as err:
            raise CliError(str(err)) from None
        return CreationTarget(definition, target.start_paused, target.status)
    try:
        return await conveyor.creation_target(pipeline)
    except (UnknownPipeline, PipelineNotAccepting) as err:
        raise CliError(f"{err} (--pipeline takes a pipeline name or a definition file)") from None
