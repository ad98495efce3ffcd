"""Import at scale: rows in, until every task is workable, against a bare bulk insert.

Run by hand: ``.venv/bin/python -m bench.import_scale [-n 2000] [--database-url URL]``.

Makes ``-n`` rows of a text-classification dataset (an id and a ~200-character text) and
creates one ``label-review`` task per row through the client library's batch creation
(:meth:`conveyor.client.ConveyorClient.create_tasks`, the path ``task import`` takes), 5,000
rows per call, with one worker in this process. Measures:

* **import returns**: the time until every task's workflow has started (what the import waits
  for);
* **workable**: the time until the store shows every task's first node (``label``) Available,
  i.e. in the work queue (what a contributor waits for);
* peak RSS of this process (client and worker) and of the Temporal dev server.

The baseline, in the same run and the same store: a bare bulk insert of the same rows (one
transaction, one multi-row ``INSERT`` per 1,000 rows) into a scratch table. Prints both and the
ratio.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import string
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, Text, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bench import _common as common
from conveyor.client import ConveyorClient
from conveyor.creation import RowOutcome
from store.models import NodeRow
from worker import build_worker

FIRST_NODE = "label"
CREATE_BATCH = 5000
INSERT_BATCH = 1000


def dataset(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` rows: ``id`` and a ~200-character ``text`` of random words."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(500)]
    rows = []
    for i in range(n):
        text = ""
        while len(text) < 200:
            text += rng.choice(words) + " "
        rows.append({"id": f"row-{i:07d}", "text": text.strip()})
    return rows


def bare_insert(sessions: sessionmaker[Session], rows: Sequence[dict[str, Any]], run: str) -> float:
    """Seconds to insert ``rows`` into a scratch table in one transaction."""
    table = Table(
        f"bench_import_{run}",
        MetaData(),
        Column("id", String(64), primary_key=True),
        Column("text", Text, nullable=False),
    )
    with sessions() as session:
        bind = session.get_bind()
    table.create(bind)
    try:
        started = time.perf_counter()
        with sessions() as session, session.begin():
            for i in range(0, len(rows), INSERT_BATCH):
                session.execute(insert(table).values(list(rows[i : i + INSERT_BATCH])))
        return time.perf_counter() - started
    finally:
        table.drop(bind)


def workable(sessions: sessionmaker[Session], pipeline: str) -> int:
    """Tasks of ``pipeline`` whose first node is Available in the store."""
    query = (
        select(func.count())
        .select_from(NodeRow)
        .where(
            NodeRow.pipeline_name == pipeline,
            NodeRow.node == FIRST_NODE,
            NodeRow.status == "Available",
        )
    )
    with sessions() as session:
        return int(session.scalar(query) or 0)


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def server_pids() -> list[int]:
    """This process's children: the Temporal dev server this run started."""
    me = str(os.getpid())
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        if any(line.split() == ["PPid:", me] for line in lines):
            found.append(int(status.parent.name))
    return found


async def main_async(args: Any) -> None:
    run = common.run_id()
    common.note(f"machine: {common.machine()}")
    rows = dataset(args.n)
    with common.bench_store(args.database_url) as store:
        bare_seconds = await common.read(bare_insert, store.sessions, rows, run)
        common.note(f"bare insert: {len(rows)} rows in {bare_seconds:.2f}s")
        async with common.dev_server() as env:
            queue = f"bench-import-{run}"
            conveyor = ConveyorClient(env.client, queue, update_timeout=120)
            pipeline = common.label_review(f"bench-import-{run}")
            async with build_worker(env.client, queue, sessions=store.sessions):
                progress = common.Progress("started", len(rows))
                started = time.perf_counter()
                for i in range(0, len(rows), CREATE_BATCH):
                    results = await conveyor.create_tasks(
                        pipeline, rows[i : i + CREATE_BATCH], key_column="id"
                    )
                    bad = [r for r in results if r.outcome != RowOutcome.CREATED]
                    if bad:
                        raise SystemExit(f"{len(bad)} rows not created, e.g. {bad[0]}")
                    progress.set(i + len(results))
                progress.done()
                returned = time.perf_counter() - started
                waiting = common.Progress("workable", len(rows))
                while True:
                    seen = await common.read(workable, store.reader, pipeline.name)
                    waiting.set(seen)
                    if seen >= len(rows):
                        break
                    await asyncio.sleep(0.5)
                waiting.done()
                ready = time.perf_counter() - started
                server_peak = sum(peak_rss_mb(p) for p in server_pids())
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(rows)
    print()
    print(f"import scale: {n} rows into label-review, store {store.engine.dialect.name}")
    print(
        common.table(
            ["side", "rows", "s", "rows/s"],
            [
                ["bare bulk insert", n, bare_seconds, n / bare_seconds],
                ["import returns", n, returned, n / returned],
                ["every task workable", n, ready, n / ready],
            ],
        )
    )
    print(
        f"peak RSS: this process (client + worker) {own_peak:.0f} MiB, server {server_peak:.0f} MiB"
    )
    print(f"ratio workable / bare insert (time): {ready / bare_seconds:.0f}x")


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("-n", type=int, default=2000, help="rows to import")
    asyncio.run(main_async(p.parse_args()))
    common.hard_exit(0)


if __name__ == "__main__":
    main()
