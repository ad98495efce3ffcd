"""Worker memory: RSS of a worker process holding ``-n`` open tasks.

Run by hand: ``.venv/bin/python -m bench.worker_memory [-n 10000]``.

Each configuration runs its worker in a subprocess on a task queue of its own, against this
run's dev server and store:

* ``conveyor, python worker.py``: the real entry point, unchanged (``max_cached_workflows``
  at its default, 1000);
* ``conveyor, worker.py, cache N``: the same entry point with ``CONVEYOR_MAX_CACHED_WORKFLOWS``
  set to ``-n``, so every task stays cached;
* ``bare, ...``: a bare workflow defined here (waits for a claim, answers a query), with the
  default cache and with cache ``-n``: the baseline in the same run.

For each: RSS once the worker polls; then, for the first worker of a kind, ``-n`` tasks are
created (Conveyor: until the store holds them all; the next worker of the same kind takes over
the same task queue and tasks); each task is touched once with a ``state`` query (a task not
in the cache is replayed into it) and RSS is read again (psutil when installed, else
``/proc/<pid>/status``), with the peak (VmHWM). Target: under 1 GiB with every task cached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    import bench._common as common
    from conveyor.client import ConveyorClient
    from workflows.graph import Pipeline

TARGET_MIB = 1024.0
DEFAULT_CACHE = 1000
"""``Worker(max_cached_workflows=...)``'s default in temporalio 1.35."""
READY_LINE = "worker polling task queue"

Touch = Callable[[], Awaitable[int]]
"""Queries every task of a kind once; returns the retries needed."""


# --------------------------------------------------------------------------- the bare baseline


@workflow.defn(name="BenchBareWait")
class BareWaitWorkflow:
    """An open task and nothing else: waits for a claim, answers a query."""

    @workflow.init
    def __init__(self, key: str) -> None:
        self._key = key
        self._holder: str | None = None

    @workflow.run
    async def run(self, key: str) -> str:
        await workflow.wait_condition(lambda: self._holder is not None)
        return self._holder or ""

    @workflow.signal
    def claim(self, contributor: str) -> None:
        self._holder = contributor

    @workflow.query
    def state(self) -> str:
        return f"{self._key}: {self._holder or 'available'}"


# --------------------------------------------------------------------------- child processes


def run_child(max_cached: int | None) -> None:
    """The bare worker process of one configuration (``--child bare``); Conveyor's
    configurations run ``worker.py`` itself."""
    asyncio.run(_bare_child(max_cached))
    common.hard_exit(0)


async def _bare_child(max_cached: int | None) -> None:
    address = os.environ["CONVEYOR_TEMPORAL_ADDRESS"]
    queue = os.environ["CONVEYOR_TASK_QUEUE"]
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[BareWaitWorkflow],
        max_cached_workflows=max_cached if max_cached is not None else DEFAULT_CACHE,
        workflow_runner=common.bare_runner(),
    )
    async with worker:
        print(f"{READY_LINE} {queue!r}", file=sys.stderr, flush=True)
        await stop.wait()


# --------------------------------------------------------------------------- measuring


@dataclass
class Config:
    name: str
    kind: str
    max_cached: int | None

    def command(self) -> list[str]:
        if self.kind == "conveyor":  # the cache size comes from CONVEYOR_MAX_CACHED_WORKFLOWS
            return [sys.executable, str(common.ROOT / "worker.py")]
        cmd = [sys.executable, "-m", "bench.worker_memory", "--child", self.kind]
        if self.max_cached is not None:
            cmd += ["--max-cached", str(self.max_cached)]
        return cmd


@dataclass
class Figures:
    config: Config
    idle_mib: float
    created_mib: float
    touched_mib: float
    peak_mib: float
    create_seconds: float | None
    """None when the tasks were created for an earlier configuration of the same kind."""
    touch_seconds: float
    n: int
    query_retries: int
    wft_timeouts: int
    """Workflow task completions the server no longer took (the task had timed out)."""


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_ready(process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while READY_LINE not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker not polling after {timeout:.0f}s; see {log}")
        await asyncio.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def measure(
    config: Config,
    client: Client,
    address: str,
    store: common.Store,
    run: str,
    args: Any,
    logs: Path,
    touches: dict[str, Touch],
) -> Figures:
    """Start the configuration's worker, create the tasks of its kind (the first time only:
    later workers of the same kind take over the same task queue and tasks), touch each task
    once, read RSS, stop the worker."""
    queue = f"bench-mem-{run}-{config.kind}"
    log = logs / f"{queue}-{len(touches)}-{config.max_cached}.log"
    env = {
        **os.environ,
        "CONVEYOR_TEMPORAL_ADDRESS": address,
        "CONVEYOR_TASK_QUEUE": queue,
        "CONVEYOR_DATABASE_URL": store.url,
        "CONVEYOR_SHUTDOWN_GRACE": "5",
        "PYTHONPATH": str(common.ROOT),
    }
    env.pop("CONVEYOR_MAX_CACHED_WORKFLOWS", None)
    if config.kind == "conveyor" and config.max_cached is not None:
        env["CONVEYOR_MAX_CACHED_WORKFLOWS"] = str(config.max_cached)
    common.note(f"--- {config.name}: {' '.join(config.command()[1:])}")
    with log.open("wb") as out:
        process = subprocess.Popen(
            config.command(), cwd=common.ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        await wait_ready(process, log)
        await asyncio.sleep(2)
        idle = common.rss_mb(process.pid)
        started = time.perf_counter()
        create_seconds: float | None = None
        touch = touches.get(config.kind)
        if touch is None:
            if config.kind == "conveyor":
                pipeline = common.label_review(queue)
                touch = await create_conveyor(client, queue, pipeline, store, args)
            else:
                touch = await create_bare(client, queue, args)
            touches[config.kind] = touch
            create_seconds = time.perf_counter() - started
        created = common.rss_mb(process.pid)
        started = time.perf_counter()
        query_retries = await touch()
        touch_seconds = time.perf_counter() - started
        await asyncio.sleep(2)
        return Figures(
            config=config,
            idle_mib=idle,
            created_mib=created,
            touched_mib=common.rss_mb(process.pid),
            peak_mib=peak_mib(process.pid),
            create_seconds=create_seconds,
            touch_seconds=touch_seconds,
            n=args.n,
            query_retries=query_retries,
            wft_timeouts=log.read_text(errors="replace").count("Task not found when completing"),
        )
    finally:
        stop(process)
        # Queries to tasks the stopped worker had cached wait for the server to notice that
        # its sticky queue has no poller before going to the next worker.
        await asyncio.sleep(args.handover)


async def create_conveyor(
    client: Client, queue: str, pipeline: Pipeline, store: common.Store, args: Any
) -> Touch:
    conveyor = ConveyorClient(client, queue, update_timeout=120)

    async def create(i: int) -> str:
        created = await conveyor.create_task(pipeline, f"k{i}", {"text": common.SAMPLE_TEXT})
        return created.workflow_id

    ids = await common.create_in_batches(
        args.n,
        args.batch,
        args.concurrency,
        create,
        lambda count: common.wait_for_store(store.reader, pipeline.name, count, label=""),
        label="create, until in the store",
    )

    async def touch() -> int:
        async def query(workflow_id: str) -> int:
            _, retries = await common.query_retrying(conveyor.task(workflow_id).state)
            return retries

        return sum(await common.bounded(32, ids, query, common.Progress("state queries", len(ids))))

    return touch


async def create_bare(client: Client, queue: str, args: Any) -> Touch:
    async def start(i: int) -> Any:
        return await client.start_workflow(
            BareWaitWorkflow.run, f"k{i}", id=f"{queue}/{i}", task_queue=queue
        )

    async def settled(count: int) -> None:
        # A worker answers queries in order of its backlog: the last one answered, the
        # batch is in.
        last = client.get_workflow_handle(f"{queue}/{count - 1}")
        await common.query_retrying(lambda: last.query(BareWaitWorkflow.state))

    handles = await common.create_in_batches(
        args.n, args.batch, args.concurrency, start, settled, label="create"
    )

    async def touch() -> int:
        async def query(handle: Any) -> int:
            _, retries = await common.query_retrying(lambda: handle.query(BareWaitWorkflow.state))
            return retries

        return sum(
            await common.bounded(32, handles, query, common.Progress("state queries", len(handles)))
        )

    return touch


async def main_async(args: Any) -> None:
    run = common.run_id()
    common.note(f"machine: {common.machine()}")
    n = args.n
    configs = [
        Config("conveyor, python worker.py (cache 1000)", "conveyor", None),
        Config(f"conveyor, worker.py, cache {n}", "conveyor", n),
    ]
    if not args.no_bare:
        configs += [
            Config(f"bare, cache {DEFAULT_CACHE}", "bare", None),
            Config(f"bare, cache {n}", "bare", n),
        ]
    results: list[Figures] = []
    logs = Path(tempfile.mkdtemp(prefix="conveyor-bench-logs-"))
    touches: dict[str, Touch] = {}
    with common.bench_store(args.database_url) as store:
        async with common.dev_server() as env:
            address = common.server_address(env)
            for config in configs:
                results.append(
                    await measure(config, env.client, address, store, run, args, logs, touches)
                )
    report(args, store, results, logs)


def report(args: Any, store: common.Store, results: list[Figures], logs: Path) -> None:
    print()
    print(
        f"worker memory: {args.n} open tasks per configuration, store "
        f"{store.engine.dialect.name} (worker logs in {logs})"
    )
    rows = []
    for f in results:
        cached = min(f.n, f.config.max_cached or DEFAULT_CACHE)
        per_task = (f.touched_mib - f.idle_mib) * 1024 / cached
        rows.append(
            [
                f.config.name,
                f.idle_mib,
                f.created_mib,
                f.touched_mib,
                f.peak_mib,
                f"{per_task:.0f}",
                f"{f.n / f.create_seconds:.0f}" if f.create_seconds else "(same tasks)",
                f"{f.n / f.touch_seconds:.0f}",
                f.query_retries,
                f.wft_timeouts,
            ]
        )
    print(
        common.table(
            [
                "worker",
                "idle MiB",
                "created MiB",
                "touched MiB",
                "peak MiB",
                "KiB/cached task",
                "created/s",
                "queries/s",
                "query retries",
                "late WFTs",
            ],
            rows,
        )
    )
    by_name = {f.config.name: f for f in results}
    conv_all = by_name.get(f"conveyor, cache {args.n}")
    bare_all = by_name.get(f"bare, cache {args.n}")
    if conv_all and bare_all:
        print(
            f"ratio conveyor / bare RSS with every task cached: "
            f"{conv_all.touched_mib / bare_all.touched_mib:.2f}"
        )
    if conv_all:
        met = conv_all.peak_mib < TARGET_MIB
        print(
            f"target: under {TARGET_MIB:.0f} MiB with {args.n} tasks cached "
            f"(peak {conv_all.peak_mib:.0f} MiB): {common.verdict(met)}"
        )


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("-n", type=int, default=10_000, help="open tasks per configuration")
    p.add_argument("-c", "--concurrency", type=int, default=64, help="task creations in flight")
    p.add_argument(
        "--batch",
        type=int,
        default=500,
        help="tasks created before waiting for the worker to take them in",
    )
    p.add_argument("--no-bare", action="store_true", help="skip the bare baseline")
    p.add_argument(
        "--handover",
        type=float,
        default=12.0,
        help="seconds between stopping one worker and starting the next",
    )
    p.add_argument("--child", choices=["bare"], help=argparse.SUPPRESS)
    p.add_argument("--max-cached", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        run_child(args.max_cached)
        return
    asyncio.run(main_async(args))
    common.hard_exit(0)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
