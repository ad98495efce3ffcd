"""Claim round trip: a Conveyor claim on a task versus a bare Temporal update.

Run by hand: ``.venv/bin/python -m bench.claim_latency [-n 300]``.

Both sides get ``-n`` fresh workflows, waiting for their first claim: Conveyor tasks of
``examples/label-review.yaml`` (the label node Available) and a bare workflow defined here
whose ``claim`` update has a validator and returns a token, with no Conveyor logic. Then the
claims go out one at a time, interleaved (bare, Conveyor, Conveyor, bare, ...), each on a
workflow of its own, so both sides see the same machine at the same moment. A claim is timed
from the call to its answer (``execute_update``, which waits for the update to complete).

Prints p50/p90/p99 for both sides and the ratio of the p99s (target: at most 1.5). A third side
claims on the same pipeline without ``claim_limits``, so the cost of the limit's reservation (a
local activity inside the claim) shows on its own.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.client import Client, WorkflowHandle
    from temporalio.worker import Worker

    import bench._common as common
    from conveyor.client import ConveyorClient, TaskClient, new_request_id
    from worker import build_worker
    from workflows.messages import Claim

TARGET_P99_RATIO = 1.5


@dataclass
class BareClaim:
    request_id: str
    contributor: str
    node: str


@dataclass
class BareClaimed:
    request_id: str
    token: str


@workflow.defn(name="BenchBareClaim")
class BareClaimWorkflow:
    """Waits for one claim; the update is validated and answered with a token."""

    @workflow.init
    def __init__(self, node: str) -> None:
        self._node = node
        self._holder: str | None = None

    @workflow.run
    async def run(self, node: str) -> str:
        await workflow.wait_condition(lambda: self._holder is not None)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._holder or ""

    @workflow.update
    def claim(self, command: BareClaim) -> BareClaimed:
        self._holder = command.contributor
        return BareClaimed(request_id=command.request_id, token=str(workflow.uuid4()))

    @claim.validator
    def _claim_ok(self, command: BareClaim) -> None:
        if command.node != self._node or self._holder is not None:
            raise ValueError(f"{command.node} is not available")


async def conveyor_claim(task: TaskClient, contributor: str) -> float:
    """One claim of a limited role (label-review's ``claim_limits``), so the claim reserves
    its place within the limit in the store as every such claim does."""
    started = time.perf_counter()
    result = await task.send(
        Claim(request_id=new_request_id(), contributor=contributor, roles=["labeler"], node="label")
    )
    elapsed = time.perf_counter() - started
    assert result.token is not None
    return elapsed


async def bare_claim(handle: WorkflowHandle[Any, Any]) -> float:
    started = time.perf_counter()
    command = BareClaim(request_id=new_request_id(), contributor="ana", node="label")
    await handle.execute_update(BareClaimWorkflow.claim, command, id=command.request_id)
    return time.perf_counter() - started


LABELERS = 100
"""Claims are spread over this many labelers, so nobody reaches the limit while measuring."""


async def main_async(args: Any) -> None:
    run = common.run_id()
    common.note(f"machine: {common.machine()}")
    total = args.n + args.warmup
    with common.bench_store(args.database_url) as store:
        async with common.dev_server() as env:
            client: Client = env.client
            conveyor_queue, bare_queue = f"bench-conveyor-{run}", f"bench-bare-{run}"
            conveyor = ConveyorClient(client, conveyor_queue, update_timeout=60)
            pipeline = common.label_review(f"bench-claim-{run}")
            # The same pipeline without claim limits: what the limit's reservation costs.
            unlimited = pipeline.model_copy(
                update={"name": f"bench-free-{run}", "claim_limits": {}}
            )
            workers = (
                build_worker(client, conveyor_queue, sessions=store.sessions),
                Worker(
                    client,
                    task_queue=bare_queue,
                    workflows=[BareClaimWorkflow],
                    workflow_runner=common.bare_runner(),
                ),
            )
            async with workers[0], workers[1]:

                async def create(i: int) -> TaskClient:
                    created = await conveyor.create_task(
                        pipeline, f"k{i}", {"text": common.SAMPLE_TEXT}
                    )
                    return conveyor.task(created.workflow_id)

                async def create_free(i: int) -> TaskClient:
                    created = await conveyor.create_task(
                        unlimited, f"k{i}", {"text": common.SAMPLE_TEXT}
                    )
                    return conveyor.task(created.workflow_id)

                async def start_bare(i: int) -> WorkflowHandle[Any, Any]:
                    return await client.start_workflow(
                        BareClaimWorkflow.run,
                        "label",
                        id=f"bare-{run}/{i}",
                        task_queue=bare_queue,
                    )

                tasks = await common.bounded(
                    16, range(total), create, common.Progress("create conveyor tasks", total)
                )
                free_tasks = await common.bounded(
                    16, range(total), create_free, common.Progress("create unlimited tasks", total)
                )
                bares = await common.bounded(
                    16, range(total), start_bare, common.Progress("start bare workflows", total)
                )
                # Let every new task write its first events to the store before timing.
                for name in (pipeline.name, unlimited.name):
                    await common.wait_for_store(
                        store.reader, name, total, label="tasks in the store"
                    )
                await asyncio.sleep(2)

                bare: list[float] = []
                conv: list[float] = []
                free: list[float] = []
                progress = common.Progress("claims", total)
                for i in range(total):
                    who = f"labeler-{i % LABELERS}"
                    sides: list[Callable[[], Awaitable[float]]] = [
                        functools.partial(bare_claim, bares[i]),
                        functools.partial(conveyor_claim, tasks[i], who),
                        functools.partial(conveyor_claim, free_tasks[i], who),
                    ]
                    # Rotate who goes first so no side always follows another.
                    shift = i % 3
                    timed: list[float] = [0.0, 0.0, 0.0]
                    for k in range(3):
                        side = (k + shift) % 3
                        timed[side] = await sides[side]()
                    if i >= args.warmup:
                        bare.append(timed[0])
                        conv.append(timed[1])
                        free.append(timed[2])
                    progress.tick()
                    if args.gap:
                        await asyncio.sleep(args.gap)
                progress.done()
    report(args, store, bare, conv, free)


def report(
    args: Any, store: common.Store, bare: list[float], conv: list[float], free: list[float]
) -> None:
    print()
    print(
        f"claim latency: {args.n} claims per side (after {args.warmup} unmeasured), "
        f"interleaved, store {store.engine.dialect.name}"
    )
    print(
        common.table(
            ["side", "claims", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"],
            [
                common.latency_row("bare update", bare, mean=True),
                common.latency_row("conveyor claim", conv, mean=True),
                common.latency_row("  without a limit", free, mean=True),
            ],
        )
    )
    p50 = common.percentile(conv, 50) / common.percentile(bare, 50)
    p99 = common.percentile(conv, 99) / common.percentile(bare, 99)
    print(f"ratio conveyor / bare: p50 {p50:.2f}, p99 {p99:.2f}")
    free50 = common.percentile(free, 50) / common.percentile(bare, 50)
    free99 = common.percentile(free, 99) / common.percentile(bare, 99)
    print(f"ratio conveyor without a claim limit / bare: p50 {free50:.2f}, p99 {free99:.2f}")
    print(f"p99 ratio target <= {TARGET_P99_RATIO}: {common.verdict(p99 <= TARGET_P99_RATIO)}")


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("-n", type=int, default=300, help="measured claims per side")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured claims per side first")
    p.add_argument("--gap", type=float, default=0.0, help="seconds to wait between claim pairs")
    args = p.parse_args()
    limit = common.label_review("bench").claim_limits["labeler"]
    if args.n + args.warmup > LABELERS * limit:
        p.error(
            f"-n plus --warmup may be at most {LABELERS * limit}: {LABELERS} labelers "
            f"hold at most {limit} claims each under label-review's claim limit"
        )
    asyncio.run(main_async(args))
    common.hard_exit(0)


if __name__ == "__main__":
    main()
