"""Projection lag: from a command's acceptance to its row in the store, under throughput load.

Run by hand: ``.venv/bin/python -m bench.projection_lag [-n 200] [-c 16]``.

Runs the Conveyor side of ``bench.throughput`` (label-review with an LLM node first, simulated
contributors, ``-c`` tasks in flight). Every accepted command answers with the task's event
sequence number (``CommandResult.seq``); a watcher polls the store's ``tasks`` table every
``--poll`` seconds and records, per command, the time from the answer's arrival to the first
poll that sees ``tasks.seq >= result.seq`` for that task. The poll interval plus one query
(both printed) bound the resolution.

Prints lag p50/p90/p99/max per command kind and overall, next to the command round trip
measured in the same run (the time a contributor already waits).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.llm import LlmSettings
from bench import _common as common
from bench.throughput import Phase, TaskRun, run_phase
from conveyor.client import ConveyorClient
from store.models import TaskRow
from tests.support.fake_openai import FakeOpenAI
from worker import build_worker
from workflows.graph import Pipeline
from workflows.messages import CommandResult, TaskStatus

_CHUNK = 500


@dataclass
class Watcher:
    """Polls the store for tasks whose accepted commands are not visible yet."""

    sessions: sessionmaker[Session]
    interval: float
    pending: dict[str, list[tuple[int, float, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    lags: list[tuple[str, float]] = field(default_factory=list)
    polls: int = 0
    poll_seconds: float = 0.0

    def accepted(self, workflow_id: str, result: CommandResult, at: float) -> None:
        self.pending[workflow_id].append((result.seq, at, result.command))

    def _read(self, ids: Sequence[str]) -> dict[str, int]:
        seqs: dict[str, int] = {}
        with self.sessions() as session:
            for i in range(0, len(ids), _CHUNK):
                rows = session.execute(
                    select(TaskRow.workflow_id, TaskRow.seq).where(
                        TaskRow.workflow_id.in_(ids[i : i + _CHUNK])
                    )
                )
                seqs.update({wf: int(seq) for wf, seq in rows})
        return seqs

    async def run(self, stop: asyncio.Event, drain_timeout: float = 60.0) -> None:
        stopped_at: float | None = None
        while True:
            if stop.is_set():
                stopped_at = stopped_at or time.monotonic()
                if not self.pending or time.monotonic() - stopped_at > drain_timeout:
                    return
            ids = list(self.pending)
            if ids:
                started = time.monotonic()
                seqs = await common.read(self._read, ids)
                seen = time.monotonic()
                self.polls += 1
                self.poll_seconds += seen - started
                for wf in ids:
                    stored = seqs.get(wf, -1)
                    waiting = []
                    for seq, at, kind in self.pending[wf]:
                        if stored >= seq:
                            self.lags.append((kind, seen - at))
                        else:
                            waiting.append((seq, at, kind))
                    if waiting:
                        self.pending[wf] = waiting
                    else:
                        del self.pending[wf]
            await asyncio.sleep(self.interval)


async def conveyor_task(
    conveyor: ConveyorClient, pipeline: Pipeline, key: str, slot: int, watcher: Watcher
) -> TaskRun:
    started = time.monotonic()
    created = await conveyor.create_task(pipeline, key, {"text": common.SAMPLE_TEXT})
    task = conveyor.task(created.workflow_id)
    flow = await common.label_and_pass(
        task, f"labeler-{slot}", f"reviewer-{slot}", on_result=watcher.accepted
    )
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


async def main_async(args: Any) -> None:
    run = common.run_id()
    common.note(f"machine: {common.machine()}")
    with FakeOpenAI() as llm, common.bench_store(args.database_url) as store:
        async with common.dev_server() as env:
            queue = f"bench-conveyor-{run}"
            conveyor = ConveyorClient(env.client, queue, update_timeout=120)
            pipeline = common.llm_label_review(f"bench-lag-{run}", llm.base_url)
            worker = build_worker(
                env.client,
                queue,
                sessions=store.sessions,
                llm=LlmSettings(api_base=llm.base_url, api_key="bench-key"),
            )
            async with worker:
                if args.warmup:
                    idle = Watcher(store.reader, args.poll)
                    await run_phase(
                        "warm-up",
                        args.warmup,
                        args.concurrency,
                        lambda i, slot: conveyor_task(conveyor, pipeline, f"w{i}", slot, idle),
                    )
                watcher = Watcher(store.reader, args.poll)
                stop = asyncio.Event()
                watching = asyncio.create_task(watcher.run(stop))
                phase = await run_phase(
                    "conveyor",
                    args.n,
                    args.concurrency,
                    lambda i, slot: conveyor_task(conveyor, pipeline, f"t{i}", slot, watcher),
                )
                stop.set()
                await watching
    report(args, store, phase, watcher)


def report(args: Any, store: common.Store, phase: Phase, watcher: Watcher) -> None:
    by_kind: dict[str, list[float]] = defaultdict(list)
    for kind, lag in watcher.lags:
        by_kind[kind].append(lag)
    lags = [lag for _, lag in watcher.lags]
    print()
    print(
        f"projection lag: {args.n} tasks, concurrency {args.concurrency}, "
        f"{phase.rate:.1f} tasks/s, store {store.engine.dialect.name}; poll every "
        f"{common.ms(args.poll):.0f} ms, one poll took "
        f"{common.ms(watcher.poll_seconds / max(watcher.polls, 1)):.1f} ms on average"
    )
    rows = [common.latency_row(f"lag: {kind}", values) for kind, values in sorted(by_kind.items())]
    rows.append(common.latency_row("lag: every command", lags))
    rows.append(common.latency_row("command round trip", phase.latencies()))
    print(common.table(["measure", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows))
    missing = sum(len(v) for v in watcher.pending.values())
    if missing:
        print(f"{missing} command(s) never became visible in the store")
    round_trip = common.percentile(phase.latencies(), 50)
    print(f"ratio lag p50 / command round trip p50: {common.percentile(lags, 50) / round_trip:.2f}")


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("-n", type=int, default=200, help="tasks")
    p.add_argument("-c", "--concurrency", type=int, default=16, help="tasks in flight")
    p.add_argument("--warmup", type=int, default=10, help="unmeasured tasks first")
    p.add_argument("--poll", type=float, default=0.01, help="seconds between store polls")
    asyncio.run(main_async(p.parse_args()))
    common.hard_exit(0)


if __name__ == "__main__":
    main()
