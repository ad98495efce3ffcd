"""Lazy start, end to end: 1,000 tasks created as rows, one started by its first claim.

Run against the local system (``./scripts/dev`` in another terminal, then, with the
environment its banner prints)::

    .venv/bin/python examples/lazy_start.py [PIPELINE_NAME]

It applies ``examples/label-review.yaml`` under the name ``lazy-demo`` (or the one given),
creates 1,000 tasks (the import path: rows written to the store, no workflow started), shows
that they are workable and how many are untouched, then claims one through the work queue: that
claim starts its task's workflow (update-with-start) and the pipeline then has 999 untouched
tasks.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from conveyor.connect import connect_conveyor
from conveyor.pipelines import load_pipeline_file
from conveyor.workqueue import NoWorkAvailable, next_work
from store.db import transaction
from store.lazy import UNTOUCHED, not_started
from store.workqueue import claimable
from workflows.pipeline_messages import PipelineStatus


async def main(name: str) -> None:
    async with await connect_conveyor() as conveyor:
        if conveyor.untouched is None:
            raise SystemExit(
                "no store found: start ./scripts/dev and use the environment it prints"
            )
        sessions = conveyor.untouched.sessions
        definition = load_pipeline_file(str(Path(__file__).parent / "label-review.yaml"))
        pipeline = definition.model_copy(update={"name": name})
        applied = await conveyor.apply_pipeline(pipeline, by="example")
        if applied.status == PipelineStatus.DRAFT:
            await conveyor.set_pipeline_status(name, PipelineStatus.ACTIVE, by="example")

        rows = [{"id": f"review-{i:04d}", "text": f"review number {i}"} for i in range(1000)]
        started = time.perf_counter()
        results = await conveyor.create_tasks(name, rows, key_column="id")
        took = time.perf_counter() - started
        created = sum(r.outcome == "created" for r in results)
        print(f"created {created} task(s) in {took:.2f}s ({len(rows) - created} already there)")

        with transaction(sessions) as session:
            work = claimable(session, "ana", ["labeler"], pipeline=name, limit=5)
            print(f"untouched before the claim: {not_started(session, name)[UNTOUCHED]}")
        print("workable now:", ", ".join(item.workflow_id for item in work), "…")

        try:
            claimed = await next_work(conveyor, sessions, "ana", ["labeler"], pipeline=name)
        except NoWorkAvailable as err:
            raise SystemExit(f"no claim: {err}") from None
        print(
            f"ana claimed {claimed.item.node} of {claimed.item.workflow_id}: its workflow started"
        )
        with transaction(sessions) as session:
            print(f"untouched after the claim: {not_started(session, name)[UNTOUCHED]}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "lazy-demo"))
