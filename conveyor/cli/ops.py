"""Commands over the deployment rather than one task: ``pipeline validate`` (a file, offline),
``db upgrade`` (the store's schema) and ``reconcile`` (the store against the workflows).

``dev``'s handler is not here: it runs :mod:`conveyor.dev`, which sits above the command line,
so ``starter.py`` supplies it (see :func:`conveyor.cli.main.build_parser`).
"""

from __future__ import annotations

import argparse
import sys

from conveyor.cli.common import connect_conveyor, store_sessions
from conveyor.pipelines import load_pipeline_file


async def cmd_pipeline_validate(args: argparse.Namespace) -> int:
    pipeline = load_pipeline_file(args.file)
    human = sum(1 for n in pipeline.nodes if n.is_human)
    llm = sum(1 for n in pipeline.nodes if n.is_llm_node)
    print(
        f"{args.file}: pipeline '{pipeline.name}' is valid — {len(pipeline.nodes)} nodes "
        f"({human} human, {llm} LLM), version {pipeline.content_hash()[:12]}"
    )
    return 0


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
    for waiting in report.not_started:
        print(f"not started: {waiting} was created lazily; its next command starts it")
    state = "repaired" if args.fix else "found"
    extra = "".join(
        f", {len(items)} {what}"
        for items, what in ((report.stuck, "stuck"), (report.unanswered, "unanswered"))
        if items
    )
    print(
        f"checked {report.checked} task(s): {len(report.drifted)} drifted ({state}), "
        f"{len(report.orphans)} orphan(s){extra}"
        + (
            f"; {report.untouched} untouched (lazy start, no workflow yet)"
            if report.untouched
            else ""
        )
    )
    fixed = args.fix and not report.stuck and not report.unanswered
    return 0 if report.clean or fixed else 1
