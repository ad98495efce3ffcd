"""Pausing a whole pipeline: from ``set_pipeline_status(PAUSED)`` to every task Paused.

Run by hand: ``.venv/bin/python -m bench.pause [-n 10000] [--untouched 100000]``.

Applies and activates ``examples/label-review.yaml`` (under a fresh name), creates ``-n`` tasks
(each waits for its labeler) with at most ``--concurrency`` creations in flight, and waits
until the store holds them all. Then it pauses the pipeline and measures:

* until the store shows every task Paused (polled every 0.25 s);
* when each workflow applied the pause (its ``task_status`` timeline event, workflow clock, for
  all tasks, read from the store), and a sample of ``state`` queries that must all say Paused;
* the PipelineWorkflow's fan-out (signals sent, rounds).

Baseline in the same run, measured first: ``-n`` bare workflows defined here, each running
one no-op "projection" activity at start and one when a ``pause`` signal arrives; the
benchmark signals them all (at most 50 in flight, as the fan-out does) and times until every
pause was projected. Prints creation rates and pause times for both sides; the target is < 30 s.

With ``--untouched U`` the pipeline also gets ``U`` tasks created lazily (rows in the store, no
workflow), which the pause holds in one statement: the Conveyor side then pauses ``-n + U``
tasks against the bare fan-out to ``-n`` (target: at most 1.2x its time).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from sqlalchemy import select
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client, WorkflowHandle
    from temporalio.service import RPCError
    from temporalio.worker import Worker

    import bench._common as common
    from conveyor.client import ConveyorClient, TaskClient
    from store.models import TaskRow, TimelineEventRow
    from worker import build_worker
    from workflows.messages import (
        TaskStatus,
    )
    from workflows.pipeline_messages import (
        PipelineStatus,
        SweepRequest,
    )

TARGET_SECONDS = 30.0
BARE_PROJECT_ACTIVITY = "bench_bare_pause_project"
FAN_OUT = SweepRequest.model_fields["concurrency"].default


# --------------------------------------------------------------------------- the bare baseline


@workflow.defn(name="BenchBarePause")
class BarePauseWorkflow:
    """Waits; projects once at start and once when paused."""

    @workflow.init
    def __init__(self, key: str) -> None:
        self._paused = False
        self._done = False

    @workflow.run
    async def run(self, key: str) -> None:
        await workflow.execute_activity(
            BARE_PROJECT_ACTIVITY, "created", start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.wait_condition(lambda: self._paused)
        await workflow.execute_activity(
            BARE_PROJECT_ACTIVITY, "paused", start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.wait_condition(lambda: self._done)

    @workflow.signal
    def pause(self, reason: str) -> None:
        self._paused = True

    @workflow.query
    def paused(self) -> bool:
        return self._paused


class BareProjection:
    """Counts the bare workflows' projections (the bare side's "store")."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @activity.defn(name=BARE_PROJECT_ACTIVITY)
    async def project(self, what: str) -> None:
        self.counts[what] += 1


async def until_count(counts: Counter[str], key: str, n: int, label: str) -> float:
    started = time.perf_counter()
    progress = common.Progress(label, n)
    while counts[key] < n:
        progress.set(counts[key])
        await asyncio.sleep(0.05)
    progress.set(counts[key])
    progress.done()
    return time.perf_counter() - started


@dataclass
class BareFigures:
    create_seconds: float
    projected_seconds: float
    pause_seconds: float


async def bare_side(
    client: Client, queue: str, run: str, n: int, concurrency: int, counts: Counter[str]
) -> BareFigures:
    started = time.perf_counter()

    async def start(i: int) -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(
            BarePauseWorkflow.run, f"k{i}", id=f"bare-pause-{run}/{i}", task_queue=queue
        )

    handles = await common.bounded(concurrency, range(n), start, common.Progress("bare: create", n))
    create_seconds = time.perf_counter() - started
    await until_count(counts, "created", n, "bare: projected")
    projected_seconds = time.perf_counter() - started
    await asyncio.sleep(2)

    paused_at = time.perf_counter()

    async def signal(handle: WorkflowHandle[Any, Any]) -> None:
        await handle.signal(BarePauseWorkflow.pause, "bench")

    signalling = asyncio.create_task(common.bounded(FAN_OUT, handles, signal))
    await until_count(counts, "paused", n, "bare: paused")
    pause_seconds = time.perf_counter() - paused_at
    await signalling
    return BareFigures(
        create_seconds=create_seconds,
        projected_seconds=projected_seconds,
        pause_seconds=pause_seconds,
    )


# --------------------------------------------------------------------------- Conveyor


def pause_times(sessions: sessionmaker[Session], pipeline: str, since: datetime) -> list[float]:
    """Seconds from ``since`` to each task's move to Paused, from the stored timeline."""
    with sessions() as session:
        rows = session.execute(
            select(TimelineEventRow.at, TimelineEventRow.data)
            .join(TaskRow, TaskRow.workflow_id == TimelineEventRow.workflow_id)
            .where(
                TaskRow.pipeline_name == pipeline,
                TimelineEventRow.kind == "task_status",
                TimelineEventRow.at >= since,
            )
        ).all()
    return [
        (at - since).total_seconds()
        for at, data in rows
        if (data or {}).get("to") == TaskStatus.PAUSED.value
    ]


@dataclass
class ConveyorFigures:
    create_seconds: float
    stored_seconds: float
    ack_seconds: float
    store_seconds: float
    """Until the store showed every task Paused, or ``--max-wait`` ran out."""
    paused: int
    """Tasks the store showed Paused at the end."""
    fan_out_seconds: float | None
    signalled: int
    rounds: int
    workflow_times: list[float]
    sampled: int
    sampled_paused: int
    untouched: int = 0
    """Tasks created lazily besides the ``n`` started ones (no workflow)."""
    untouched_seconds: float = 0.0


async def conveyor_side(
    conveyor: ConveyorClient,
    store: common.Store,
    name: str,
    n: int,
    concurrency: int,
    sample: int,
    max_wait: float,
    batch: int,
    untouched: int = 0,
) -> ConveyorFigures:
    pipeline = common.label_review(name)
    await conveyor.apply_pipeline(pipeline)
    await conveyor.set_pipeline_status(name, PipelineStatus.ACTIVE)
    target = await conveyor.creation_target(name)

    started = time.perf_counter()

    async def create(i: int) -> str:
        created = await conveyor.create_task(target.pipeline, f"k{i}", {"text": common.SAMPLE_TEXT})
        return created.workflow_id

    ids = await common.create_in_batches(
        n,
        batch,
        concurrency,
        create,
        lambda count: common.wait_for_store(
            store.reader, name, count, status=TaskStatus.IN_PROGRESS, label=""
        ),
        label="create, until in the store",
    )
    create_seconds = stored_seconds = time.perf_counter() - started
    untouched_seconds = 0.0
    if untouched:
        # Lazy start: rows only, no workflow; the pause changes them in one statement.
        conveyor.attach_store(store.sessions)
        progress = common.Progress("untouched rows", untouched)
        t_rows = time.perf_counter()
        for i in range(0, untouched, 5000):
            chunk = [
                {"id": f"u{j}", "text": common.SAMPLE_TEXT}
                for j in range(i, min(i + 5000, untouched))
            ]
            await conveyor.create_tasks(target.pipeline, chunk, key_column="id")
            progress.set(i + len(chunk))
        progress.done()
        untouched_seconds = time.perf_counter() - t_rows
    total = n + untouched
    await asyncio.sleep(2)

    since = datetime.now(UTC)
    t0 = time.perf_counter()
    await conveyor.set_pipeline_status(name, PipelineStatus.PAUSED, by="bench")
    ack_seconds = time.perf_counter() - t0
    progress = common.Progress("store shows Paused", total)
    fan_out_seconds: float | None = None
    signalled = rounds = 0
    paused = 0
    while paused < total and time.perf_counter() - t0 < max_wait:
        paused = await common.read(common.count_tasks, store.reader, name, TaskStatus.PAUSED)
        progress.set(paused)
        if fan_out_seconds is None:
            # The PipelineWorkflow answers queries from a worker that is busy with the very
            # tasks it pauses; a slow or failed answer only delays this figure.
            with contextlib.suppress(RPCError, TimeoutError):
                async with asyncio.timeout(5):
                    view = await conveyor.describe_pipeline(name)
                if view.sweep is not None and view.sweep.round > 0:
                    fan_out_seconds = time.perf_counter() - t0
                    signalled, rounds = view.sweep.signalled, view.sweep.round
        await asyncio.sleep(0.25)
    store_seconds = time.perf_counter() - t0
    progress.done()

    workflow_times = await common.read(pause_times, store.reader, name, since)
    chosen = random.sample(ids, min(sample, len(ids)))

    async def is_paused(workflow_id: str) -> bool:
        task: TaskClient = conveyor.task(workflow_id)
        try:
            async with asyncio.timeout(10):
                view, _ = await common.query_retrying(task.state, timeout=10)
        except (RPCError, TimeoutError):
            return False
        return view.status == TaskStatus.PAUSED

    answers = await common.bounded(
        16, chosen, is_paused, common.Progress("sampled state queries", len(chosen))
    )
    return ConveyorFigures(
        create_seconds=create_seconds,
        stored_seconds=stored_seconds,
        ack_seconds=ack_seconds,
        store_seconds=store_seconds,
        paused=paused,
        fan_out_seconds=fan_out_seconds,
        signalled=signalled,
        rounds=rounds,
        workflow_times=workflow_times,
        sampled=len(chosen),
        sampled_paused=sum(answers),
        untouched=untouched,
        untouched_seconds=untouched_seconds,
    )


# --------------------------------------------------------------------------- main


async def main_async(args: Any) -> None:
    run = common.run_id()
    common.note(f"machine: {common.machine()}")
    bare: BareFigures | None = None
    with common.bench_store(args.database_url) as store:
        async with common.dev_server() as env:
            client = env.client
            conveyor_queue, bare_queue = f"bench-conveyor-{run}", f"bench-bare-{run}"
            conveyor = ConveyorClient(client, conveyor_queue, update_timeout=120)
            projection = BareProjection()
            workers = (
                build_worker(client, conveyor_queue, sessions=store.sessions),
                Worker(
                    client,
                    task_queue=bare_queue,
                    workflows=[BarePauseWorkflow],
                    activities=[projection.project],
                    workflow_runner=common.bare_runner(),
                ),
            )
            async with workers[0], workers[1]:
                # The bare side first: once paused, the Conveyor tasks keep the shared process
                # busy (re-check rounds, replays) and would slow a baseline measured after them.
                if not args.no_bare:
                    bare = await bare_side(
                        client, bare_queue, run, args.n, args.concurrency, projection.counts
                    )
                conv = await conveyor_side(
                    conveyor,
                    store,
                    f"bench-pause-{run}",
                    args.n,
                    args.concurrency,
                    args.sample,
                    args.max_wait,
                    args.batch,
                    args.untouched,
                )
    report(args, store, conv, bare)


def report(args: Any, store: common.Store, conv: ConveyorFigures, bare: BareFigures | None) -> None:
    started_tasks = args.n
    n = args.n + conv.untouched
    print()
    print(
        f"pause: {started_tasks} started tasks + {conv.untouched} untouched (lazy start), "
        f"creation concurrency {args.concurrency}, fan-out concurrency {FAN_OUT}, "
        f"store {store.engine.dialect.name}"
    )
    rows: list[list[Any]] = [
        [
            f"conveyor: create, {args.batch} at a time, until in the store",
            conv.stored_seconds,
            started_tasks / conv.stored_seconds,
        ],
    ]
    if conv.untouched:
        rows.append(
            [
                "conveyor: untouched rows (create_tasks, lazy)",
                conv.untouched_seconds,
                conv.untouched / conv.untouched_seconds,
            ]
        )
    if bare is not None:
        rows += [
            [
                "bare: create (client calls)",
                bare.create_seconds,
                started_tasks / bare.create_seconds,
            ],
            [
                "bare: create until all projected",
                bare.projected_seconds,
                started_tasks / bare.projected_seconds,
            ],
        ]
    print(common.table(["creation", "s", "tasks/s"], rows))
    print()
    times = conv.workflow_times
    rows = [
        ["conveyor: set_pipeline_status answered", conv.ack_seconds, "", ""],
        [
            "conveyor: fan-out round 0 reported",
            conv.fan_out_seconds if conv.fan_out_seconds is not None else float("nan"),
            "",
            f"{conv.signalled} signalled, {conv.rounds} round(s)",
        ],
        [
            "conveyor: workflows Paused (p50 / p99 / last)",
            max(times) if times else float("nan"),
            f"{common.percentile(times, 50):.1f} / {common.percentile(times, 99):.1f}",
            f"{len(times)} pause events in the timeline",
        ],
        [
            "conveyor: store shows all Paused"
            if conv.paused >= n
            else f"conveyor: store shows {conv.paused} Paused (gave up)",
            conv.store_seconds,
            conv.paused / conv.store_seconds,
            ""
            if conv.paused >= n
            else f"at this rate all {n}: ~{n * conv.store_seconds / max(conv.paused, 1):.0f} s",
        ],
        [
            "conveyor: sampled state queries",
            "",
            "",
            f"{conv.sampled_paused}/{conv.sampled} say Paused",
        ],
    ]
    if bare is not None:
        rows.append(
            [
                "bare: signal all, every pause projected",
                bare.pause_seconds,
                started_tasks / bare.pause_seconds,
                "",
            ]
        )
    print(common.table(["pause", "s", "tasks/s", "notes"], rows))
    if bare is not None:
        print(f"ratio conveyor / bare pause time: {conv.store_seconds / bare.pause_seconds:.2f}")
        print(
            f"ratio conveyor / bare creation rate (until stored): "
            f"{bare.projected_seconds / conv.stored_seconds:.2f}"
        )
        if conv.untouched:
            print(
                f"target (lazy start): pause of {started_tasks} started + {conv.untouched} "
                f"untouched <= 1.2x the bare fan-out to {started_tasks}: "
                f"{common.verdict(conv.store_seconds <= 1.2 * bare.pause_seconds)}"
            )
    met = (
        conv.paused >= n
        and conv.store_seconds < TARGET_SECONDS
        and conv.sampled_paused == conv.sampled
    )
    print(f"target: every task Paused within {TARGET_SECONDS:.0f} s: {common.verdict(met)}")


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("-n", type=int, default=10_000, help="running tasks to pause")
    p.add_argument("-c", "--concurrency", type=int, default=64, help="task creations in flight")
    p.add_argument("--sample", type=int, default=100, help="tasks whose state query is checked")
    p.add_argument(
        "--batch",
        type=int,
        default=500,
        help="tasks created before waiting for the store to hold them",
    )
    p.add_argument("--no-bare", action="store_true", help="skip the bare baseline")
    p.add_argument(
        "--untouched",
        type=int,
        default=0,
        help="tasks also created lazily (rows, no workflow) that the pause must hold too",
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=900.0,
        help="seconds to wait for every task to be Paused before reporting what was",
    )
    asyncio.run(main_async(p.parse_args()))
    common.hard_exit(0)


if __name__ == "__main__":
    main()
