"""Tasks per second through label-review with an LLM node, against bare Temporal.

Run by hand: ``.venv/bin/python -m bench.throughput [-n 200] [-c 16]``.

Conveyor: ``examples/label-review.yaml`` with an LLM node first (model ``openai/fake`` on the
local fake OpenAI server), driven by simulated contributors: claim label, submit, claim check,
review pass, then wait for the task to finish. Baseline, in the same run and on the same dev
server: a bare Temporal workflow defined here, with no Conveyor logic, doing the same work per
task: one LLM-like activity (httpx to the same fake server), the same four updates (a validator
rejects a claim until the node is open) and one no-op "projection" activity. Both sides start
N tasks with at most ``-c`` in flight; each task is created, worked and awaited to completion.

Prints tasks/s for both sides and the ratio Conveyor / bare (target: at least 0.6).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import httpx
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
    from temporalio.worker import Worker

    import bench._common as common
    from activities.llm import LlmSettings
    from conveyor.client import ConveyorClient, new_request_id
    from tests.support.fake_openai import FakeOpenAI
    from worker import build_worker
    from workflows.graph import Pipeline
    from workflows.messages import TaskStatus

TARGET_RATIO = 0.6
BARE_LLM_ACTIVITY = "bench_bare_llm"
BARE_PROJECT_ACTIVITY = "bench_bare_project"


# --------------------------------------------------------------------------- the bare baseline


@dataclass
class BareInput:
    text: str
    api_base: str


@dataclass
class BareCommand:
    request_id: str
    contributor: str
    node: str
    token: str | None = None
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class BareResult:
    request_id: str
    seq: int
    token: str | None = None


@workflow.defn(name="BenchBareTask")
class BareTaskWorkflow:
    """The same shape of work as a label-review task with an LLM node, and nothing else."""

    @workflow.init
    def __init__(self, input: BareInput) -> None:
        self._open = "suggest"
        self._holder: str | None = None
        self._token: str | None = None
        self._seq = 0
        self._values: dict[str, str] = {}

    @workflow.run
    async def run(self, input: BareInput) -> int:
        self._values["suggestion"] = await workflow.execute_activity(
            BARE_LLM_ACTIVITY,
            input,
            result_type=str,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        self._open = "label"
        await workflow.wait_condition(
            lambda: self._open == "end" and workflow.all_handlers_finished()
        )
        await workflow.execute_activity(
            BARE_PROJECT_ACTIVITY,
            self._seq,
            result_type=int,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return self._seq

    def _answer(self, command: BareCommand, token: str | None = None) -> BareResult:
        self._seq += 1
        return BareResult(request_id=command.request_id, seq=self._seq, token=token)

    @workflow.update
    def claim(self, command: BareCommand) -> BareResult:
        self._holder = command.contributor
        self._token = str(workflow.uuid4())
        return self._answer(command, self._token)

    @claim.validator
    def _claim_ok(self, command: BareCommand) -> None:
        if command.node != self._open or self._holder is not None:
            raise ValueError(f"{command.node} is not available")

    @workflow.update
    def submit(self, command: BareCommand) -> BareResult:
        self._values.update(command.values)
        self._holder = None
        self._open = "check"
        return self._answer(command)

    @submit.validator
    def _submit_ok(self, command: BareCommand) -> None:
        if command.node != "label" or self._open != "label" or command.token != self._token:
            raise ValueError("not your claim")

    @workflow.update
    def review(self, command: BareCommand) -> BareResult:
        self._holder = None
        self._open = "end"
        return self._answer(command)

    @review.validator
    def _review_ok(self, command: BareCommand) -> None:
        if command.node != "check" or self._open != "check" or command.token != self._token:
            raise ValueError("not your claim")


class BareActivities:
    """The bare workflow's activities: an LLM call over plain httpx, and a no-op projection."""

    def __init__(self) -> None:
        self._http: httpx.AsyncClient | None = None

    @activity.defn(name=BARE_LLM_ACTIVITY)
    async def llm(self, input: BareInput) -> str:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=60)
        response = await self._http.post(
            f"{input.api_base}/chat/completions",
            json={
                "model": "fake",
                "max_tokens": 32,
                "messages": [
                    {"role": "system", "content": "You suggest the sentiment of a text."},
                    {"role": "user", "content": f"Text: {input.text}"},
                ],
            },
            headers={"Authorization": "Bearer bench-key"},
        )
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    @activity.defn(name=BARE_PROJECT_ACTIVITY)
    async def project(self, seq: int) -> int:
        return seq


def bare_worker(client: Client, task_queue: str, activities: BareActivities) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BareTaskWorkflow],
        activities=[activities.llm, activities.project],
        workflow_runner=common.bare_runner(),
    )


# --------------------------------------------------------------------------- drivers


@dataclass
class TaskRun:
    """One task, created, worked and finished."""

    workflow_id: str
    seconds: float
    command_latencies: list[float]
    claim_retries: int
    results: list[tuple[int, float]]
    """``(seq, monotonic time the answer arrived)`` of each accepted command."""


async def bare_task(
    client: Client, task_queue: str, api_base: str, workflow_id: str, slot: int
) -> TaskRun:
    started = time.monotonic()
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        BareTaskWorkflow.run,
        BareInput(text=common.SAMPLE_TEXT, api_base=api_base),
        id=workflow_id,
        task_queue=task_queue,
    )
    latencies: list[float] = []
    results: list[tuple[int, float]] = []

    async def send(update: Any, command: BareCommand) -> BareResult:
        sent = time.monotonic()
        result: BareResult = await handle.execute_update(update, command, id=command.request_id)
        now = time.monotonic()
        latencies.append(now - sent)
        results.append((result.seq, now))
        return result

    labeler, reviewer = f"labeler-{slot}", f"reviewer-{slot}"
    claim, retries = await common.claim_until_accepted(
        lambda: send(BareTaskWorkflow.claim, BareCommand(new_request_id(), labeler, "label")),
        WorkflowUpdateFailedError,
    )
    await send(
        BareTaskWorkflow.submit,
        BareCommand(new_request_id(), labeler, "label", claim.token, {"label": "positive"}),
    )
    check, more = await common.claim_until_accepted(
        lambda: send(BareTaskWorkflow.claim, BareCommand(new_request_id(), reviewer, "check")),
        WorkflowUpdateFailedError,
    )
    await send(
        BareTaskWorkflow.review, BareCommand(new_request_id(), reviewer, "check", check.token)
    )
    await handle.result()
    return TaskRun(
        workflow_id, time.monotonic() - started, latencies, retries + more, results=results
    )


async def conveyor_task(
    conveyor: ConveyorClient, pipeline: Pipeline, key: str, slot: int
) -> TaskRun:
    started = time.monotonic()
    created = await conveyor.create_task(pipeline, key, {"text": common.SAMPLE_TEXT})
    task = conveyor.task(created.workflow_id)
    flow = await common.label_and_pass(task, f"labeler-{slot}", f"reviewer-{slot}")
    view = await task.result()
    if view.status != TaskStatus.FINISHED:
        raise RuntimeError(f"{created.workflow_id} ended {view.status}, not Finished")
    return TaskRun(
        created.workflow_id,
        time.monotonic() - started,
        flow.latencies,
        flow.claim_retries,
        results=[(r.seq, at) for r, at in flow.results],
    )


@dataclass
class Phase:
    name: str
    tasks: int
    seconds: float
    runs: list[TaskRun]

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    def latencies(self) -> list[float]:
        return [x for r in self.runs for x in r.command_latencies]


async def run_phase(
    name: str, n: int, concurrency: int, one: Callable[[int, int], Awaitable[TaskRun]]
) -> Phase:
    """``n`` tasks, at most ``concurrency`` in flight; ``one(index, slot)`` runs a task."""
    slots: asyncio.Queue[int] = asyncio.Queue()
    for s in range(concurrency):
        slots.put_nowait(s)

    async def task(i: int) -> TaskRun:
        slot = await slots.get()
        try:
            return await one(i, slot)
        finally:
            slots.put_nowait(slot)

    progress = common.Progress(name, n)
    started = time.perf_counter()
    runs = await common.bounded(concurrency, range(n), task, progress)
    return Phase(name, n, time.perf_counter() - started, runs)


async def history_shape(client: Client, workflow_id: str) -> tuple[int, int, int, int]:
    """``(events, activities, workflow tasks, bytes)`` in one finished workflow's history
    (bytes: the serialised events, payloads included)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kinds = [e.event_type for e in history.events]
    return (
        len(kinds),
        kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        sum(e.ByteSize() for e in history.events),
    )


async def history_bytes(client: Client, workflow_id: str) -> list[tuple[str, int, int]]:
    """``(event type, events, bytes)`` of one finished workflow's history, largest first."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    sizes: dict[str, list[int]] = {}
    for event in history.events:
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
        sizes.setdefault(name, []).append(event.ByteSize())
    return sorted(
        ((name, len(found), sum(found)) for name, found in sizes.items()),
        key=lambda row: -row[2],
    )


# --------------------------------------------------------------------------- main


@dataclass
class Sides:
    """Everything needed to run a phase of either side."""

    client: Client
    conveyor: ConveyorClient
    pipeline: Pipeline
    bare_queue: str
    api_base: str
    run: str

    def bare(self, tag: str) -> Callable[[int, int], Awaitable[TaskRun]]:
        return lambda i, slot: bare_task(
            self.client, self.bare_queue, self.api_base, f"bare-{self.run}-{tag}/{i}", slot
        )

    def conveyor_side(self, tag: str) -> Callable[[int, int], Awaitable[TaskRun]]:
        return lambda i, slot: conveyor_task(self.conveyor, self.pipeline, f"{tag}-{i}", slot)


async def main_async(args: Any) -> None:
    run = common.run_id()
    common.note(f"machine: {common.machine()}")
    with FakeOpenAI() as llm, common.bench_store(args.database_url) as store:
        async with common.dev_server() as env:
            client = env.client
            conveyor_queue, bare_queue = f"bench-conveyor-{run}", f"bench-bare-{run}"
            conveyor = ConveyorClient(client, conveyor_queue, update_timeout=120)
            sides = Sides(
                client=client,
                conveyor=conveyor,
                pipeline=common.llm_label_review(f"bench-tp-{run}", llm.base_url),
                bare_queue=bare_queue,
                api_base=llm.base_url,
                run=run,
            )
            acts = BareActivities()
            workers = (
                build_worker(
                    client,
                    conveyor_queue,
                    sessions=store.sessions,
                    llm=LlmSettings(api_base=llm.base_url, api_key="bench-key"),
                ),
                bare_worker(client, bare_queue, acts),
            )
            async with workers[0], workers[1]:
                if args.warmup:
                    await run_phase("warm-up bare", args.warmup, args.concurrency, sides.bare("w"))
                    await run_phase(
                        "warm-up conveyor",
                        args.warmup,
                        args.concurrency,
                        sides.conveyor_side("w"),
                    )
                bare: list[Phase] = []
                conv: list[Phase] = []
                for r in range(args.rounds):
                    bare.append(
                        await run_phase(f"bare r{r}", args.n, args.concurrency, sides.bare(f"r{r}"))
                    )
                    conv.append(
                        await run_phase(
                            f"conveyor r{r}",
                            args.n,
                            args.concurrency,
                            sides.conveyor_side(f"r{r}"),
                        )
                    )
                shapes = {
                    "bare": await history_shape(client, bare[-1].runs[0].workflow_id),
                    "conveyor": await history_shape(client, conv[-1].runs[0].workflow_id),
                }
                heaviest = await history_bytes(client, conv[-1].runs[0].workflow_id)
            common.note(
                "conveyor history bytes by event type: "
                + ", ".join(
                    f"{name} {count}x {size / 1024:.1f} KiB" for name, count, size in heaviest[:5]
                )
            )
            report(args, store, bare, conv, shapes, llm_requests=len(llm.requests))


def report(
    args: Any,
    store: common.Store,
    bare: list[Phase],
    conv: list[Phase],
    shapes: dict[str, tuple[int, int, int, int]],
    llm_requests: int,
) -> None:
    def row(name: str, phases: list[Phase]) -> list[Any]:
        tasks = sum(p.tasks for p in phases)
        seconds = sum(p.seconds for p in phases)
        latencies = [x for p in phases for x in p.latencies()]
        task_seconds = [r.seconds for p in phases for r in p.runs]
        retries = sum(r.claim_retries for p in phases for r in p.runs)
        events, activities, wfts, size = shapes[name]
        return [
            name,
            tasks,
            seconds,
            tasks / seconds,
            common.ms(common.percentile(latencies, 50)),
            common.ms(common.percentile(latencies, 99)),
            common.percentile(task_seconds, 50),
            common.percentile(task_seconds, 99),
            f"{retries / tasks:.1f}",
            f"{events}/{activities}/{wfts}",
            f"{size / 1024:.1f}",
        ]

    print()
    print(
        f"throughput: {args.n} tasks x {args.rounds} round(s), concurrency {args.concurrency}, "
        f"store {store.engine.dialect.name}, {llm_requests} fake LLM requests"
    )
    print(
        common.table(
            [
                "side",
                "tasks",
                "s",
                "tasks/s",
                "cmd p50 ms",
                "cmd p99 ms",
                "task p50 s",
                "task p99 s",
                "claim retries/task",
                "events/activities/WFTs",
                "history KiB",
            ],
            [row("bare", bare), row("conveyor", conv)],
        )
    )
    for b, c in zip(bare, conv, strict=True):
        print(
            f"  {b.name}: {b.rate:.1f}/s   {c.name}: {c.rate:.1f}/s   ratio {c.rate / b.rate:.2f}"
        )
    ratio = sum(p.tasks for p in conv) / sum(p.seconds for p in conv)
    ratio /= sum(p.tasks for p in bare) / sum(p.seconds for p in bare)
    print(
        f"ratio conveyor / bare tasks/s: {ratio:.2f} "
        f"(target >= {TARGET_RATIO}: {common.verdict(ratio >= TARGET_RATIO)})"
    )


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("-n", type=int, default=200, help="tasks per side and round")
    p.add_argument("-c", "--concurrency", type=int, default=16, help="tasks in flight per side")
    p.add_argument("--rounds", type=int, default=1, help="bare then conveyor, this many times")
    p.add_argument("--warmup", type=int, default=10, help="unmeasured tasks per side first")
    asyncio.run(main_async(p.parse_args()))
    common.hard_exit(0)


if __name__ == "__main__":
    main()
