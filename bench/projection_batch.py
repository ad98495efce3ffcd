"""Cost of writing one projection batch to the store, against the driver's bare inserts.

Run by hand: ``.venv/bin/python -m bench.projection_batch [-n 200] [--database-url URL]``.

No Temporal: ``-n`` label-review tasks are driven through the engine (claim, draft, release,
submit, review fail, tag, rework, submit: 11 batches each), and each batch is written with
``store.projection.apply_batch`` in its own transaction, one after another (the cost of the
store alone, without other writers). Baseline, in the same run and on the same database: the
same number of rows per batch (task, nodes, events, submissions, reviews, tags) inserted with
the driver's ``cursor.execute`` into plain tables with the same column counts, one transaction
per batch.

Prints ms per batch for both and the ratio (no target: it shows what Conveyor's projection
adds to a bare write of the same rows).
"""

from __future__ import annotations

import json
import time
from typing import Any

import bench._common as common
from store.db import transaction
from store.projection import apply_batch
from tests.support.pipelines import label_review
from tests.support.projection import run_task
from workflows.messages import ProjectionBatch

COLUMNS = 12
"""Columns of the baseline's rows (about the width of a node row's written values)."""


def rows_of(batch: ProjectionBatch) -> int:
    """Rows a batch writes: the task, every node, every event and what it carries, the tags."""
    carried = sum(1 for e in batch.events if e.kind in ("submitted", "draft_saved", "reviewed"))
    return 1 + len(batch.view.nodes) + len(batch.events) + carried + len(batch.view.tags)


def bare(raw: Any, dialect: str, batches: list[ProjectionBatch]) -> float:
    """Seconds to insert the same number of rows per batch with the bare driver."""
    marker = "?" if dialect == "sqlite" else "%s"
    cursor = raw.cursor()
    cursor.execute("DROP TABLE IF EXISTS bench_bare_rows")
    names = ", ".join(f"c{i} TEXT" for i in range(COLUMNS))
    cursor.execute(
        f"CREATE TABLE bench_bare_rows (id TEXT, seq INTEGER, {names}, PRIMARY KEY (id, seq))"
    )
    raw.commit()
    insert = (
        f"INSERT INTO bench_bare_rows VALUES ({', '.join([marker] * (COLUMNS + 2))}) "
        "ON CONFLICT DO NOTHING"
    )
    payload = json.dumps({"label": "positive", "notes": "some words"})
    started = time.perf_counter()
    for n, batch in enumerate(batches):
        if dialect == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        for row in range(rows_of(batch)):
            cursor.execute(insert, (batch.view.workflow_id, n * 1000 + row, *[payload] * COLUMNS))
        raw.commit()
    return time.perf_counter() - started


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("-n", type=int, default=200, help="tasks (11 batches each)")
    args = p.parse_args()
    pipeline = label_review(name="bench-projection")
    tasks = [run_task(pipeline, f"bench-projection/t{i}") for i in range(args.n)]
    batches = [b for task in tasks for b in task]
    common.note(f"{len(batches)} batches, {sum(map(rows_of, batches))} rows")
    with common.bench_store(args.database_url) as store:
        started = time.perf_counter()
        for batch in batches:
            with transaction(store.sessions) as session:
                apply_batch(session, batch)
        conveyor = time.perf_counter() - started
        raw = store.engine.raw_connection()
        try:
            if store.engine.dialect.name == "sqlite":
                raw.driver_connection.isolation_level = None
            baseline = bare(raw, store.engine.dialect.name, batches)
            raw.cursor().execute("DROP TABLE bench_bare_rows")
            raw.commit()
        finally:
            raw.close()
        print(f"projection batches: {args.n} tasks, store {store.label}; {common.machine()}")
        n = len(batches)
        rows = [
            [side, n, seconds, common.ms(seconds) / n, n / seconds]
            for side, seconds in (("bare driver inserts", baseline), ("apply_batch", conveyor))
        ]
        print(common.table(["side", "batches", "s", "ms/batch", "batches/s"], rows))
        print(f"ratio apply_batch / bare ms per batch: {conveyor / baseline:.2f}")


if __name__ == "__main__":
    main()
