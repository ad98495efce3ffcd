"""Consensus: a k = 3 node against three chained single-person nodes, and the claim of a place.

Run by hand: ``.venv/bin/python -m bench.consensus [-n 200] [-c 16]``.

Throughput: two pipelines doing the same work per task, in the same run on the same dev server
and store: ``consensus`` (one node, ``annotators: 3``) and ``chain`` (three single-person
nodes one after another, the way three answers per item were collected before consensus).
Each task gets three claims and three submits from three different people; on the consensus
node the three work at once (as people do), on the chain each waits for the node before it.
``-n`` tasks per side, ``-c`` in flight, timed from the first claim to the last task's end.
Prints tasks/s for both and the ratio consensus / chain (target: at least 1.0).

Claim latency: fresh consensus tasks, started at creation (``task_start: eager``, so no claim
includes a workflow start); their places are claimed one at a time (the first place of every
task, then the second, then the third, so consecutive claims meet different workflows),
interleaved with a bare Temporal update (``bench.claim_latency``'s bare workflow, one per
claim), so both sides see the same machine at the same moment. Prints p50/p90/p99 and the
ratio of the p99s (target: at most 1.5).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.client import Client, WorkflowHandle
    from temporalio.worker import Worker

    import bench._common as common
    from bench.claim_latency import BareClaimWorkflow, bare_claim
    from conveyor.client import ConveyorClient, TaskClient, new_request_id
    from worker import build_worker
    from workflows.graph import Pipeline, StartMode
    from workflows.graph_checks import validate_pipeline
    from workflows.messages import Claim, Submit

TARGET_RATIO = 1.0
TARGET_P99_RATIO = 1.5
FIELDS: list[dict[str, Any]] = [
    {"name": "text", "type": "long_text", "source": "predefined"},
    {"name": "sentiment", "type": "select", "options": ["positive", "negative", "neutral"]},
]


def consensus_pipeline(name: str) -> Pipeline:
    return validate_pipeline(
        {
            "name": name,
            "nodes": [
                {"name": "start", "kind": "start", "next": ["label"]},
                {
                    "name": "label",
                    "kind": "subtask",
                    "roles": ["labeler"],
                    "consensus": {"annotators": 3, "on_disagreement": "quarantine"},
                    "fields": FIELDS,
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


def chain_pipeline(name: str) -> Pipeline:
    names = ["label_1", "label_2", "label_3"]
    nodes: list[dict[str, Any]] = [{"name": "start", "kind": "start", "next": [names[0]]}]
    for i, node in enumerate(names):
        fields = [
            {**f, "name": f"{f['name']}_{i + 1}"} if f["name"] == "sentiment" else dict(f)
            for f in FIELDS
            if f["name"] != "text" or i == 0
        ]
        nodes.append(
            {
                "name": node,
                "kind": "subtask",
                "roles": ["labeler"],
                "fields": fields,
                "next": [names[i + 1] if i + 1 < len(names) else "end"],
            }
        )
    nodes.append({"name": "end", "kind": "end"})
    return validate_pipeline({"name": name, "nodes": nodes})


async def place(task: TaskClient, who: str, node: str, field: str) -> None:
    """One person's claim and submit on ``node``."""
    claimed = await task.send(
        Claim(request_id=new_request_id(), contributor=who, roles=["labeler"], node=node)
    )
    assert claimed.token is not None
    await task.send(
        Submit(
            request_id=new_request_id(),
            contributor=who,
            node=node,
            token=claimed.token,
            values={field: "positive"},
        )
    )


async def work_consensus(task: TaskClient, i: int) -> None:
    people = [f"p{(i + j) % 50}" for j in range(3)]
    await asyncio.gather(*(place(task, who, "label", "sentiment") for who in people))
    await task.result()


async def work_chain(task: TaskClient, i: int) -> None:
    for j in range(3):
        await place(task, f"p{(i + j) % 50}", f"label_{j + 1}", f"sentiment_{j + 1}")
    await task.result()


async def main_async(args: Any) -> None:
    run = common.run_id()
    common.note(f"machine: {common.machine()}")
    with common.bench_store(args.database_url) as store:
        async with common.dev_server() as env:
            client: Client = env.client
            queue, bare_queue = f"bench-consensus-{run}", f"bench-bare-{run}"
            conveyor = ConveyorClient(client, queue, update_timeout=60)
            conveyor.attach_store(store.sessions)
            consensus = consensus_pipeline(f"bench-consensus-{run}")
            chain = chain_pipeline(f"bench-chain-{run}")
            worker = build_worker(client, queue, sessions=store.sessions)
            bare_worker = Worker(
                client,
                task_queue=bare_queue,
                workflows=[BareClaimWorkflow],
                workflow_runner=common.bare_runner(),
            )
            async with worker, bare_worker:
                rates: dict[str, float] = {}
                # Alternate the sides in two halves so neither always runs on a warmer system.
                order = [("chain", chain, work_chain), ("consensus", consensus, work_consensus)]
                for label, pipeline, work in order + order[::-1]:
                    tag = f"{label}-{len(rates)}"
                    n = args.n // 2
                    rows = [{"key": f"{tag}-{i}", "text": common.SAMPLE_TEXT} for i in range(n)]
                    await conveyor.create_tasks(pipeline, rows, key_column="key")
                    tasks = [conveyor.task(f"{pipeline.name}/{tag}-{i}") for i in range(n)]
                    started = time.perf_counter()

                    async def one(
                        i: int, tasks: list[TaskClient] = tasks, work: Any = work
                    ) -> None:
                        await work(tasks[i], i)

                    await common.bounded(
                        args.c, range(n), one, common.Progress(f"{label} tasks", n)
                    )
                    elapsed = time.perf_counter() - started
                    rates[label] = rates.get(label, 0.0) + elapsed
                per_side = {k: (args.n // 2 * 2) / v for k, v in rates.items()}

                # Claim latency: three places per fresh consensus task, against a bare update.
                # Both sides claim on running workflows: the tasks start at creation (eager),
                # so no claim here includes a workflow start (bench.lazy_start measures that).
                total = args.claims + args.warmup
                tasks = total // 3 + 1
                eager = consensus.model_copy(
                    update={"name": f"bench-places-{run}", "task_start": StartMode.EAGER}
                )
                rows = [{"key": f"claims-{i}", "text": common.SAMPLE_TEXT} for i in range(tasks)]
                await conveyor.create_tasks(eager, rows, key_column="key")
                await common.wait_for_store(store.reader, eager.name, tasks, label="tasks stored")
                await asyncio.sleep(2)

                async def start_bare(i: int) -> WorkflowHandle[Any, Any]:
                    return await client.start_workflow(
                        BareClaimWorkflow.run, "label", id=f"bare-{run}/{i}", task_queue=bare_queue
                    )

                bares = await common.bounded(
                    16, range(total), start_bare, common.Progress("start bare workflows", total)
                )
                bare: list[float] = []
                conv: list[float] = []
                progress = common.Progress("claims", total)
                for i in range(total):
                    # Place 1 on every task, then place 2, then 3: consecutive claims go to
                    # different workflows, as the bare side's do.
                    task = conveyor.task(f"{eager.name}/claims-{i % tasks}")
                    first = i % 2 == 0
                    if first:
                        b = await bare_claim(bares[i])
                    started = time.perf_counter()
                    result = await task.send(
                        Claim(
                            request_id=new_request_id(),
                            contributor=f"c{i // tasks}",
                            roles=["labeler"],
                            node="label",
                        )
                    )
                    c = time.perf_counter() - started
                    assert result.token is not None
                    if not first:
                        b = await bare_claim(bares[i])
                    if i >= args.warmup:
                        bare.append(b)
                        conv.append(c)
                    progress.tick()
                progress.done()
    report(args, store, per_side, bare, conv)


def report(
    args: Any,
    store: common.Store,
    rates: dict[str, float],
    bare: list[float],
    conv: list[float],
) -> None:
    print()
    print(
        f"consensus throughput: {args.n // 2 * 2} tasks per side, {args.c} in flight, "
        f"store {store.engine.dialect.name}"
    )
    print(
        common.table(
            ["side", "tasks/s"],
            [
                ["three chained single-person nodes", rates["chain"]],
                ["one consensus node (k = 3)", rates["consensus"]],
            ],
        )
    )
    ratio = rates["consensus"] / rates["chain"]
    print(f"ratio consensus / chain: {ratio:.2f}")
    print(f"ratio target >= {TARGET_RATIO}: {common.verdict(ratio >= TARGET_RATIO)}")
    print()
    print(f"claim of a consensus place: {len(conv)} claims per side, interleaved with bare")
    print(
        common.table(
            ["side", "claims", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"],
            [
                common.latency_row("bare update", bare, mean=True),
                common.latency_row("consensus place", conv, mean=True),
            ],
        )
    )
    p50 = common.percentile(conv, 50) / common.percentile(bare, 50)
    p99 = common.percentile(conv, 99) / common.percentile(bare, 99)
    print(f"ratio consensus / bare: p50 {p50:.2f}, p99 {p99:.2f}")
    print(f"p99 ratio target <= {TARGET_P99_RATIO}: {common.verdict(p99 <= TARGET_P99_RATIO)}")


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("-n", type=int, default=200, help="tasks per side (throughput)")
    p.add_argument("-c", type=int, default=16, help="tasks in flight (throughput)")
    p.add_argument("--claims", type=int, default=300, help="measured claims per side")
    p.add_argument("--warmup", type=int, default=30, help="unmeasured claims per side first")
    args = p.parse_args()
    asyncio.run(main_async(args))
    common.hard_exit()


if __name__ == "__main__":
    main()
