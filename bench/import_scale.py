"""Import at scale: rows in, until every task is workable, against a bare bulk insert; then
the first claims of the untouched tasks against a bare update-with-start.

Run by hand: ``.venv/bin/python -m bench.import_scale [-n 2000] [--database-url URL]
[--eager] [--claims 200] [--model-first]``.

Makes ``-n`` rows of a text-classification dataset (an id and a ~200-character text) and
creates one ``label-review`` task per row through the client library's batch creation
(:meth:`conveyor.client.ConveyorClient.create_tasks`, the path ``task import`` takes), 5,000
rows per call, with the store attached (as the API, the web app and the CLI have it) and one
worker in this process. By default the pipeline starts its tasks lazily (``task_start: lazy``:
rows now, workflows on first use); ``--eager`` starts every workflow at creation, as before
lazy start. Measures:

* **import returns**: the time until ``create_tasks`` has returned for every row;
* **workable**: the time until the store shows every task's first node (``label``) Available,
  i.e. in the work queue (what a contributor waits for);
* peak RSS of this process (client and worker) and of the Temporal dev server;
* with lazy start, ``--claims`` first claims of untouched tasks (each starts its task's
  workflow: one update-with-start), interleaved one by one with a bare update-with-start that
  starts a bare workflow and claims on it (``bench.claim_latency``'s bare workflow): p50/p90/p99
  and the p99 ratio (target at most 1.5). The pipeline has no claim limits here, so the
  figures are the start's, not the limit's (``bench.claim_latency`` measures that).

With ``--model-first`` the pipeline has an LLM node first (a local fake model): every task
needs its workflow at once, so lazy start queues them and the background starter (run next to
the worker, as ``worker.py`` does) starts them; workable is then when the model has answered
and the store shows ``label`` Available.

The baseline, in the same run and the same store: a bare bulk insert of the same rows (one
transaction, one multi-row ``INSERT`` per 1,000 rows) into a scratch table. Prints both and the
ratio.
"""

from __future__ import annotations

import asyncio
import functools
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
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities.llm import LlmSettings
from bench import _common as common
from bench.claim_latency import TARGET_P99_RATIO, BareClaim, BareClaimWorkflow
from conveyor.client import ConveyorClient, new_request_id
from conveyor.creation import RowOutcome
from conveyor.starting import background_starts
from store.models import NodeRow
from tests.support.fake_openai import FakeOpenAI
from worker import build_worker
from workflows.graph import StartMode
from workflows.messages import Claim

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


async def first_claims(
    conveyor: ConveyorClient,
    env_client: Any,
    bare_queue: str,
    workflow_ids: Sequence[str],
    run: str,
) -> tuple[list[float], list[float]]:
    """Interleaved first claims: Conveyor's on untouched tasks (update-with-start through the
    client, as the work queue sends it) and a bare update-with-start of a new bare workflow."""
    conveyor_times: list[float] = []
    bare_times: list[float] = []
    progress = common.Progress("first claims", len(workflow_ids))
    for i, workflow_id in enumerate(workflow_ids):
        sides = [
            functools.partial(conveyor_first_claim, conveyor, workflow_id, f"labeler-{i}"),
            functools.partial(bare_first_claim, env_client, bare_queue, f"bare-{run}/{i}"),
        ]
        timed = [0.0, 0.0]
        for k in (0, 1) if i % 2 == 0 else (1, 0):
            timed[k] = await sides[k]()
        conveyor_times.append(timed[0])
        bare_times.append(timed[1])
        progress.tick()
    progress.done()
    return conveyor_times, bare_times


async def conveyor_first_claim(conveyor: ConveyorClient, workflow_id: str, who: str) -> float:
    started = time.perf_counter()
    result = await conveyor.task(workflow_id).send(
        Claim(request_id=new_request_id(), contributor=who, roles=["labeler"], node=FIRST_NODE),
        untouched=True,
    )
    elapsed = time.perf_counter() - started
    assert result.token is not None
    return elapsed


async def bare_first_claim(client: Any, queue: str, workflow_id: str) -> float:
    command = BareClaim(request_id=new_request_id(), contributor="ana", node=FIRST_NODE)
    started = time.perf_counter()
    await client.execute_update_with_start_workflow(
        BareClaimWorkflow.claim,
        command,
        id=command.request_id,
        start_workflow_operation=WithStartWorkflowOperation(
            BareClaimWorkflow.run,
            FIRST_NODE,
            id=workflow_id,
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        ),
    )
    return time.perf_counter() - started


async def main_async(args: Any) -> None:
    run = common.run_id()
    common.note(f"machine: {common.machine()}")
    rows = dataset(args.n)
    conveyor_claims: list[float] = []
    bare_claims: list[float] = []
    with FakeOpenAI() as llm, common.bench_store(args.database_url) as store:
        bare_seconds = await common.read(bare_insert, store.sessions, rows, run)
        common.note(f"bare insert: {len(rows)} rows in {bare_seconds:.2f}s")
        async with common.dev_server() as env:
            queue, bare_queue = f"bench-import-{run}", f"bench-bare-{run}"
            conveyor = ConveyorClient(env.client, queue, update_timeout=120)
            conveyor.attach_store(store.sessions)  # as the API, the web app and the CLI do
            mode = StartMode.EAGER if args.eager else StartMode.LAZY
            # Without claim limits: the first claims measure the start, not the limit's check.
            # --model-first: an LLM node first, so every task needs its workflow at once (the
            # background starter starts them; workable once the model has answered).
            base = (
                common.llm_label_review(f"bench-import-{run}", llm.base_url)
                if args.model_first
                else common.label_review(f"bench-import-{run}")
            )
            pipeline = base.model_copy(update={"task_start": mode, "claim_limits": {}})
            bare_worker = Worker(
                env.client,
                task_queue=bare_queue,
                workflows=[BareClaimWorkflow],
                workflow_runner=common.bare_runner(),
            )
            worker = build_worker(
                env.client,
                queue,
                sessions=store.sessions,
                llm=LlmSettings(api_base=llm.base_url, api_key="bench-key"),
            )
            # As worker.py: the background starter next to the worker.
            starts = background_starts(conveyor.starter, store.sessions)
            async with worker, bare_worker, starts:
                progress = common.Progress("created", len(rows))
                started = time.perf_counter()
                created: list[str] = []
                for i in range(0, len(rows), CREATE_BATCH):
                    results = await conveyor.create_tasks(
                        pipeline, rows[i : i + CREATE_BATCH], key_column="id"
                    )
                    bad = [r for r in results if r.outcome != RowOutcome.CREATED]
                    if bad:
                        raise SystemExit(f"{len(bad)} rows not created, e.g. {bad[0]}")
                    created += [r.workflow_id or "" for r in results]
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
                if args.claims and not args.eager and not args.model_first:
                    sample = random.Random(3).sample(created, min(args.claims, len(created)))
                    conveyor_claims, bare_claims = await first_claims(
                        conveyor, env.client, bare_queue, sample, run
                    )
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(rows)
    print()
    shape = " (an LLM node first)" if args.model_first else ""
    print(
        f"import scale: {n} rows into label-review{shape} (task_start: {mode}), "
        f"store {store.engine.dialect.name}"
    )
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
    print(f"ratio workable / bare insert (time): {ready / bare_seconds:.1f}x")
    if conveyor_claims:
        print()
        print("first claims of untouched tasks, interleaved with a bare update-with-start")
        print(
            common.table(
                ["side", "claims", "p50 ms", "p90 ms", "p99 ms", "max ms"],
                [
                    common.latency_row("bare update-with-start", bare_claims),
                    common.latency_row("conveyor first claim", conveyor_claims),
                ],
            )
        )
        p50 = common.percentile(conveyor_claims, 50) / common.percentile(bare_claims, 50)
        p99 = common.percentile(conveyor_claims, 99) / common.percentile(bare_claims, 99)
        print(f"ratio conveyor / bare: p50 {p50:.2f}, p99 {p99:.2f}")
        print(f"p99 ratio target <= {TARGET_P99_RATIO}: {common.verdict(p99 <= TARGET_P99_RATIO)}")


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("-n", type=int, default=2000, help="rows to import")
    p.add_argument(
        "--eager",
        action="store_true",
        help="create with task_start: eager (every workflow started at creation) to compare",
    )
    p.add_argument(
        "--claims", type=int, default=200, help="first claims to time after the import (lazy)"
    )
    p.add_argument(
        "--model-first",
        action="store_true",
        help="label-review with an LLM node first (fake model): every task needs its workflow "
        "at once, so the background starter starts them; no first claims",
    )
    asyncio.run(main_async(p.parse_args()))
    common.hard_exit(0)


if __name__ == "__main__":
    main()
