"""The work queue on the command line: ``queue list|mine|submitted|next``.

What a contributor may claim, holds and handed in, read from the store; ``queue next`` claims
the next piece of work through its task's workflow.
"""

from __future__ import annotations

import argparse
import sys

from conveyor.cli.common import connect_conveyor, store_sessions


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
