"""Fault suite: drive tasks to the end while workers, Temporal and PostgreSQL are knocked over.

Run by hand::

    .venv/bin/python -m bench.faults --tasks 1000 --workers 2 --kill-every 5 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/faults \\
        --restart-server --restart-postgres

What runs: a file-backed Temporal dev server (``--db-filename``, so its state survives a
restart), ``--workers`` worker processes (``python worker.py``), a local fake OpenAI server and
N tasks of a pipeline ``start -> draft (LLM) -> edit (person) -> check (review) -> end``. Simulated
contributors (asyncio, bounded concurrency) claim ``edit``, submit, claim ``check`` and pass it.
A command that gets no answer (no worker, server down, connection refused) is sent again with
the *same* ``request_id``, so a repeat is answered from the task's memory instead of acting twice.

Meanwhile a chaos loop SIGKILLs a random worker every ``--kill-every`` seconds and starts a
replacement; once (``--restart-server``) it stops the dev server and starts it again on the same
database file and port; once (``--restart-postgres``, PostgreSQL stores only) it restarts the
PostgreSQL cluster with ``pg_ctlcluster``. If PostgreSQL cannot be restarted here, the run says
so and the table marks the check as skipped; it never pretends.

Checks, per task: the task is Finished (workflow and store); the store holds exactly one
``submit`` row per accepted submission the workflow counts (``attempts``), numbered 1..attempts,
and the contributors' own log agrees (each request_id accepted once); one review row per pass;
the LLM node's values equal what the fake server answers for that prompt (answers are derived
from the prompt text), in the workflow and in the store's ``llm`` row; ``reconcile`` (no fix)
finds no drift and no orphan for 100% of tasks. Prints a table; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from conveyor.client import CommandRejected, ConveyorClient, NoWorkerResponded, TaskClient
from conveyor.devserver import start_dev_server, wait_until_ready
from conveyor.reconcile import ReconcileReport, reconcile
from store.db import make_engine, migrate, normalize_url, session_factory
from store.models import ReviewRow, SubmissionRow, TaskRow
from tests.support.fake_openai import FakeOpenAI
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    Claim,
    Command,
    CommandResult,
    Review,
    Submit,
    TaskStatus,
    TaskView,
    Verdict,
)

ROOT = Path(__file__).resolve().parent.parent
FAKE_MODEL = "openai/fake"
# What the caller may see while a worker, the server or the store is down: try again.
TRANSIENT: tuple[type[BaseException], ...] = (
    NoWorkerResponded,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    RPCError,
    ConnectionError,
    OSError,
    TimeoutError,
)

_T = TypeVar("_T")


# --------------------------------------------------------------------------- the pipeline


def llm_answer(prompt: str) -> str:
    """The fake model's answer: derived from the prompt, so every task's answer is known."""
    return "draft-" + hashlib.sha256(prompt.encode()).hexdigest()[:20]


def _fake_reply(request_json: dict[str, Any]) -> str:
    users = [
        m.get("content") for m in request_json.get("messages") or [] if m.get("role") == "user"
    ]
    return llm_answer(str(users[-1]) if users else "")


def question(i: int) -> str:
    return f"How do I reset password number {i}?"


def prompt_of(i: int) -> str:
    """The LLM node's rendered prompt for task ``i`` (the template below)."""
    return f"Question: {question(i)}"


def faults_pipeline(name: str, api_base: str) -> Pipeline:
    """start -> draft (LLM) -> edit (editor) -> check (reviewer review) -> end."""
    return validate_pipeline(
        {
            "name": name,
            "claim_timeout": "30m",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["draft"]},
                {
                    "name": "draft",
                    "kind": "subtask",
                    "fields": [
                        {"name": "question", "type": "long_text", "source": "predefined"},
                        {
                            "name": "draft_answer",
                            "type": "long_text",
                            "source": "llm",
                            "llm": {
                                "model": FAKE_MODEL,
                                "api_base": api_base,
                                "system": "You answer support questions briefly.",
                                "prompt": "Question: {{ question }}",
                            },
                        },
                    ],
                    "next": ["edit"],
                },
                {
                    "name": "edit",
                    "kind": "subtask",
                    "roles": ["editor"],
                    "fields": [{"name": "answer", "type": "long_text", "prefill": "draft_answer"}],
                    "next": ["check"],
                },
                {
                    "name": "check",
                    "kind": "review",
                    "roles": ["reviewer"],
                    "max_rereviews": 2,
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def note(message: str) -> None:
    sys.stderr.write(f"[faults {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


class DevServer:
    """A file-backed dev server that can be stopped and started again on the same file/port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.ui_port = free_port()
        self.db_file = workdir / "temporal.db"
        self.log_file = workdir / "temporal.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Client:
        self.proc = start_dev_server(
            port=self.port, ui_port=self.ui_port, db_file=self.db_file, log_file=self.log_file
        )
        return await wait_until_ready(self.address, timeout=60)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)

    async def restart(self, down_seconds: float = 1.0) -> None:
        await self.stop()
        await asyncio.sleep(down_seconds)
        await self.start()
        self.restarts += 1


class Workers:
    """``python worker.py`` processes; SIGKILL one at random and start a replacement."""

    def __init__(self, env: dict[str, str], workdir: Path, seed: int) -> None:
        self.env = env
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.kills = 0
        self.random = random.Random(seed)
        self.logs: dict[int, Path] = {}

    def spawn(self) -> None:
        self.started += 1
        path = self.workdir / f"worker-{self.started}.log"
        with path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        self.logs[proc.pid] = path

    def ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """The worker logged that it polls (its imports and connection are done)."""
        path = self.logs.get(proc.pid)
        return proc.poll() is None and path is not None and b"polling" in path.read_bytes()

    def all_ready(self) -> bool:
        """Every worker polls (a kill before that would only test start-up)."""
        return all(self.ready(p) for p in self.procs)

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Until every worker polls."""
        deadline = time.monotonic() + timeout
        while not self.all_ready() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    def kill_one(self) -> bool:
        """SIGKILL one polling worker; False when none is polling yet (nothing killed)."""
        alive = [p for p in self.procs if self.ready(p)]
        if not alive:
            return False
        victim = self.random.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        self.procs.remove(victim)
        self.kills += 1
        return True

    def revive(self, count: int) -> None:
        """Replace workers that died on their own (not counted as kills)."""
        self.procs = [p for p in self.procs if p.poll() is None]
        while len(self.procs) < count:
            self.spawn()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs.clear()


def restart_postgres(url: str) -> str | None:
    """Restart the PostgreSQL cluster serving ``url``; None on success, else why it could not."""
    if make_url(str(normalize_url(url))).get_backend_name() != "postgresql":
        return "the store is not PostgreSQL"
    if not shutil.which("pg_lsclusters") or not shutil.which("pg_ctlcluster"):
        return "pg_lsclusters/pg_ctlcluster not found (not a Debian-style PostgreSQL install)"
    port = make_url(str(normalize_url(url))).port or 5432
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    cluster = None
    for line in listing.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == str(port):
            cluster = (parts[0], parts[1])
    if cluster is None:
        return f"no local cluster listens on port {port}"
    done = subprocess.run(
        ["pg_ctlcluster", cluster[0], cluster[1], "restart", "-m", "fast"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"pg_ctlcluster restart failed: {(done.stderr or done.stdout).strip()}"
    return None


def ensure_postgres_database(url: str) -> None:
    """Create the database of a PostgreSQL ``url`` if it does not exist yet."""
    parsed = make_url(str(normalize_url(url)))
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
            )
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()


# --------------------------------------------------------------------------- contributors


@dataclass
class Tally:
    retries: int = 0
    """Commands (or reads) sent again after no answer / an unreachable server."""
    rejections: int = 0
    """Claims refused because the node was not open yet (retried with a new request_id)."""
    accepted: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(workflow_id, node, command, request_id) of every accepted command, once each."""
    submitted: dict[str, dict[str, Any]] = field(default_factory=dict)
    """workflow_id -> the values the editor submitted."""


async def persist(
    call: Callable[[], Awaitable[_T]], tally: Tally, *, timeout: float, what: str
) -> _T:
    """Await ``call`` until it answers, retrying transient failures (same arguments)."""
    deadline = time.monotonic() + timeout
    pause = 0.2
    while True:
        try:
            return await call()
        except CommandRejected:
            raise
        except TRANSIENT as err:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: still failing after {timeout:.0f}s: {err}") from err
            tally.retries += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, 3.0)


async def send(task: TaskClient, command: Command, tally: Tally, timeout: float) -> CommandResult:
    """Send ``command`` until answered; every repeat carries the same request_id."""
    result = await persist(
        lambda: task.send(command), tally, timeout=timeout, what=f"{task.workflow_id} {command}"
    )
    node = getattr(command, "node", None) or ""
    tally.accepted.append((task.workflow_id, node, result.command, command.request_id))
    return result


async def claim(
    task: TaskClient, who: str, role: str, node: str, tally: Tally, timeout: float
) -> str:
    """Claim ``node``; a refusal (not open yet) is retried with a fresh request_id."""
    deadline = time.monotonic() + timeout
    while True:
        command = Claim(request_id=os.urandom(16).hex(), contributor=who, roles=[role], node=node)
        try:
            result = await send(task, command, tally, timeout)
        except CommandRejected:
            if time.monotonic() > deadline:
                raise
            tally.rejections += 1
            await asyncio.sleep(0.3)
            continue
        assert result.token is not None
        return result.token


async def work_task(
    conveyor: ConveyorClient,
    pipeline: Pipeline,
    i: int,
    tally: Tally,
    *,
    timeout: float,
    think: float,
) -> None:
    """Create task ``i`` and take it to the end as an editor and a reviewer would."""
    created = await persist(
        lambda: conveyor.create_task(pipeline, f"t{i}", {"question": question(i)}),
        tally,
        timeout=timeout,
        what=f"create t{i}",
    )
    task = conveyor.task(created.workflow_id)
    rng = random.Random(i)
    editor, reviewer = f"editor-{i % 7}", f"reviewer-{i % 5}"
    token = await claim(task, editor, "editor", "edit", tally, timeout)
    await asyncio.sleep(rng.random() * think)
    values = {"answer": f"{llm_answer(prompt_of(i))} (edited by {editor})"}
    submit = Submit(
        request_id=os.urandom(16).hex(), contributor=editor, node="edit", token=token, values=values
    )
    await send(task, submit, tally, timeout)
    tally.submitted[task.workflow_id] = values
    token = await claim(task, reviewer, "reviewer", "check", tally, timeout)
    await asyncio.sleep(rng.random() * think)
    review = Review(
        request_id=os.urandom(16).hex(),
        contributor=reviewer,
        node="check",
        token=token,
        verdict=Verdict.PASS,
    )
    await send(task, review, tally, timeout)


async def wait_finished(task: TaskClient, tally: Tally, timeout: float) -> TaskView:
    deadline = time.monotonic() + timeout
    while True:
        view = await persist(task.state, tally, timeout=timeout, what=f"{task.workflow_id} state")
        if view.status == TaskStatus.FINISHED:
            return view
        if time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- checks


@dataclass
class Check:
    name: str
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: str | None = None

    def record(self, ok: bool, problem: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failed.append(problem)

    @property
    def ok(self) -> bool:
        return not self.failed


def _store_rows(
    sessions: sessionmaker[Session], pipeline: str
) -> tuple[dict[str, str], list[SubmissionRow], list[ReviewRow]]:
    with sessions() as session:
        statuses: dict[str, str] = {
            wf: status
            for wf, status in session.execute(
                select(TaskRow.workflow_id, TaskRow.status).where(TaskRow.pipeline_name == pipeline)
            )
        }
        ids = list(statuses)
        subs = list(
            session.scalars(select(SubmissionRow).where(SubmissionRow.workflow_id.in_(ids)))
        )
        reviews = list(session.scalars(select(ReviewRow).where(ReviewRow.workflow_id.in_(ids))))
        return statuses, subs, reviews


def check_tasks(
    views: dict[int, TaskView],
    sessions: sessionmaker[Session],
    pipeline: str,
    tally: Tally,
    llm: FakeOpenAI,
) -> list[Check]:
    finished = Check("every task Finished (workflow and store)")
    submits = Check("submissions: one store row per counted attempt, none twice")
    reviews = Check("reviews: one store row per pass")
    llm_kept = Check("LLM results kept (workflow and store equal the model's answer)")
    statuses, subs, review_rows = _store_rows(sessions, pipeline)
    log = Counter(rid for _, _, _, rid in tally.accepted)
    twice = [rid for rid, n in log.items() if n > 1]
    accepted_submits = Counter(wf for wf, node, cmd, _ in tally.accepted if cmd == "submit")
    sub_by_task: dict[tuple[str, str, str], list[SubmissionRow]] = {}
    for row in subs:
        sub_by_task.setdefault((row.workflow_id, row.node, row.kind), []).append(row)
    rev_by_task = Counter((r.workflow_id, r.node) for r in review_rows)
    asked = {r.message_text("user") for r in llm.requests}
    for i, view in sorted(views.items()):
        wf = view.workflow_id
        nodes = {n.name: n for n in view.nodes}
        finished.record(
            view.status == TaskStatus.FINISHED and statuses.get(wf) == TaskStatus.FINISHED.value,
            f"{wf}: workflow {view.status}, store {statuses.get(wf)}",
        )
        edit = nodes["edit"]
        rows = sub_by_task.get((wf, "edit", "submit"), [])
        attempts = sorted(r.attempt or 0 for r in rows)
        submits.record(
            edit.attempts == len(rows) == accepted_submits[wf] == 1
            and attempts == list(range(1, edit.attempts + 1))
            and edit.values == tally.submitted.get(wf)
            and all(r.values == edit.values for r in rows),
            f"{wf}: workflow attempts {edit.attempts}, store submit rows {attempts}, "
            f"contributor accepted {accepted_submits[wf]}, values {edit.values!r}",
        )
        check = nodes["check"]
        reviews.record(
            check.passes == rev_by_task[(wf, "check")] == 1,
            f"{wf}: workflow passes {check.passes}, store reviews {rev_by_task[(wf, 'check')]}",
        )
        want = llm_answer(prompt_of(i))
        draft = nodes["draft"]
        llm_rows = sub_by_task.get((wf, "draft", "llm"), [])
        llm_kept.record(
            draft.values.get("draft_answer") == want
            and prompt_of(i) in asked
            and bool(llm_rows)
            and all(r.values.get("draft_answer") == want for r in llm_rows),
            f"{wf}: workflow {draft.values!r}, store {[r.values for r in llm_rows]!r}, "
            f"asked {prompt_of(i) in asked}",
        )
    once = Check("contributor log: each request_id accepted once")
    once.record(not twice, f"request_ids accepted more than once: {twice[:5]}")
    once.passed = len(log) if not twice else 0
    return [finished, submits, reviews, llm_kept, once]


async def reconcile_until_clean(
    conveyor: ConveyorClient,
    sessions: sessionmaker[Session],
    pipeline: str,
    tally: Tally,
    timeout: float,
) -> ReconcileReport:
    """Reconcile (no fix), again while the last projections drain, until clean or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        report = await persist(
            lambda: reconcile(conveyor, sessions, pipeline=pipeline),
            tally,
            timeout=timeout,
            what="reconcile",
        )
        if report.clean or time.monotonic() > deadline:
            return report
        await asyncio.sleep(1.0)


# --------------------------------------------------------------------------- the run


@dataclass
class FaultConfig:
    tasks: int = 1000
    workers: int = 2
    kill_every: float = 5.0
    max_kills: int | None = None
    database_url: str | None = None
    restart_server: bool = True
    restart_postgres: bool = False
    concurrency: int = 64
    think: float = 1.0
    """Upper bound of a contributor's pause before submit and review, in seconds."""
    timeout: float = 600.0
    """How long one command, wait or reconcile may keep retrying."""
    seed: int = 7
    workdir: Path | None = None
    faults_after_llm: bool = False
    """Create every task and wait for its LLM node before injecting faults (keeps CI's kill
    count small); the full run kills workers throughout, LLM calls included."""
    llm_delay: float = 0.0
    """Seconds the fake model takes to answer, so that kills land in the middle of LLM calls
    (the call's heartbeat times out and another worker retries it)."""


@dataclass
class FaultReport:
    tasks: int
    kills: int
    server_restarts: int
    postgres_restarts: int
    postgres_skipped: str | None
    retries: int
    rejections: int
    elapsed: float
    checks: list[Check]
    reconcile: ReconcileReport | None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> list[str]:
        return [f"{c.name}: {p}" for c in self.checks for p in c.failed[:10]]

    def table(self) -> str:
        from bench._common import table

        rows: list[list[Any]] = [
            ["tasks", self.tasks],
            ["worker SIGKILLs", self.kills],
            ["dev server restarts", self.server_restarts],
            [
                "PostgreSQL restarts",
                self.postgres_restarts
                if self.postgres_skipped is None
                else f"0 (skipped: {self.postgres_skipped})",
            ],
            ["command/read retries", self.retries],
            ["claims refused (node not open)", self.rejections],
            ["elapsed (s)", round(self.elapsed, 1)],
        ]
        for c in self.checks:
            verdict = f"skipped: {c.skipped}" if c.skipped else ("ok" if c.ok else "FAILED")
            rows.append([c.name, f"{verdict} ({c.passed} passed, {len(c.failed)} failed)"])
        return table(["fault suite", "value"], rows)


async def run_faults(config: FaultConfig) -> FaultReport:
    """Run the suite; the report says what happened and which checks held."""
    own_workdir = config.workdir is None
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="conveyor-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = config.database_url or f"sqlite:///{workdir / 'conveyor.db'}"
    ensure_postgres_database(url)
    engine = make_engine(url, pool_pre_ping=True)
    migrate(engine)
    sessions = session_factory(engine)
    server = DevServer(workdir)
    tally = Tally()
    started = time.monotonic()
    pg_restarts = 0
    pg_skipped: str | None = None
    if not config.restart_postgres:
        pg_skipped = "not asked for (--restart-postgres)"

    def slow_reply(request_json: dict[str, Any]) -> str:
        time.sleep(config.llm_delay)
        return _fake_reply(request_json)

    with FakeOpenAI(default_reply=slow_reply if config.llm_delay else _fake_reply) as llm:
        client = await server.start()
        task_queue = f"faults-{os.urandom(4).hex()}"
        env = {
            **os.environ,
            "CONVEYOR_TEMPORAL_ADDRESS": server.address,
            "CONVEYOR_TASK_QUEUE": task_queue,
            "CONVEYOR_DATABASE_URL": url,
            "CONVEYOR_METRICS_PORT": "0",
            "CONVEYOR_APP_METRICS_PORT": "0",
            "CONVEYOR_LLM_API_BASE": llm.base_url,
            "CONVEYOR_LLM_API_KEY": "fake-key",
            "CONVEYOR_SHUTDOWN_GRACE": "5",
            "PYTHONUNBUFFERED": "1",
        }
        workers = Workers(env, workdir, config.seed)
        for _ in range(config.workers):
            workers.spawn()
        await workers.wait_ready()
        note(f"{config.workers} workers polling; starting {config.tasks} tasks")
        started = time.monotonic()
        conveyor = ConveyorClient(client, task_queue, update_timeout=15)
        pipeline = faults_pipeline(f"faults-{os.urandom(3).hex()}", llm.base_url)
        done = 0
        stop = asyncio.Event()

        async def chaos() -> None:
            nonlocal pg_restarts, pg_skipped
            server_due = config.restart_server
            pg_due = config.restart_postgres
            next_kill = time.monotonic() + config.kill_every
            settling = False  # replacements are starting: the next kill waits for them
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                if stop.is_set():
                    return
                workers.revive(config.workers)
                progress = done / config.tasks
                if server_due and progress >= 0.3:
                    server_due = False
                    note(f"restarting the dev server ({done}/{config.tasks} tasks done)")
                    await server.restart()
                    note("dev server back")
                elif pg_due and progress >= 0.6:
                    pg_due = False
                    note(f"restarting PostgreSQL ({done}/{config.tasks} tasks done)")
                    why = await asyncio.to_thread(restart_postgres, url)
                    if why is None:
                        pg_restarts += 1
                        note("PostgreSQL back")
                    else:
                        pg_skipped = why
                        note(f"PostgreSQL restart not possible: {why}")
                elif settling:
                    # Not awaited in one go: a restart that falls due meanwhile goes first.
                    if workers.all_ready():
                        settling = False
                        next_kill = time.monotonic() + config.kill_every
                elif time.monotonic() >= next_kill and (
                    config.max_kills is None or workers.kills < config.max_kills
                ):
                    if workers.kill_one():
                        note(f"SIGKILLed a worker (kill {workers.kills}), started a replacement")
                    else:
                        note("no worker polling to kill (all starting up); waiting for them")
                    workers.revive(config.workers)
                    settling = True

        gate = asyncio.Semaphore(config.concurrency)
        views: dict[int, TaskView] = {}

        async def one(i: int) -> None:
            nonlocal done
            async with gate:
                await work_task(
                    conveyor, pipeline, i, tally, timeout=config.timeout, think=config.think
                )
                workflow_id = f"{pipeline.name}/t{i}"
                views[i] = await wait_finished(conveyor.task(workflow_id), tally, config.timeout)
            done += 1
            if done % max(1, config.tasks // 10) == 0:
                note(f"{done}/{config.tasks} tasks finished")

        if config.faults_after_llm:
            creation = asyncio.Semaphore(config.concurrency)

            async def drafted(i: int) -> None:
                async with creation:
                    await persist(
                        lambda: conveyor.create_task(pipeline, f"t{i}", {"question": question(i)}),
                        tally,
                        timeout=config.timeout,
                        what=f"create t{i}",
                    )
                    task = conveyor.task(f"{pipeline.name}/t{i}")
                    deadline = time.monotonic() + config.timeout
                    while time.monotonic() < deadline:
                        view = await persist(
                            task.state, tally, timeout=config.timeout, what="state"
                        )
                        if {n.name: n for n in view.nodes}["draft"].values.get("draft_answer"):
                            return
                        await asyncio.sleep(0.3)

            await asyncio.gather(*(drafted(i) for i in range(config.tasks)))
            note(f"{config.tasks} tasks created, LLM drafts in; injecting faults from now on")
        chaos_task = asyncio.create_task(chaos())
        try:
            await asyncio.gather(*(one(i) for i in range(config.tasks)))
            stop.set()
            await chaos_task
            workers.revive(config.workers)
            elapsed = time.monotonic() - started
            report = await reconcile_until_clean(
                conveyor, sessions, pipeline.name, tally, timeout=min(config.timeout, 120)
            )
            rec = Check("reconcile: store equals workflows (no fix)")
            drifted = {d.workflow_id: d.problems for d in report.drifted}
            for i in range(config.tasks):
                wf = f"{pipeline.name}/t{i}"
                rec.record(wf not in drifted, f"{wf}: {drifted.get(wf)}")
            if report.checked != config.tasks:
                rec.failed.append(f"checked {report.checked} tasks, not {config.tasks}")
            if report.orphans:
                rec.failed.append(f"store rows without a workflow: {report.orphans[:5]}")
            # The store is read after reconcile found it caught up (projection is asynchronous).
            checks = check_tasks(views, sessions, pipeline.name, tally, llm)
            checks.append(rec)
            chaos_check = Check("faults injected as asked")
            chaos_check.record(workers.kills > 0, "no worker was killed")
            if config.restart_server:
                chaos_check.record(server.restarts == 1, f"server restarts {server.restarts}")
            checks.append(chaos_check)
        finally:
            stop.set()
            if not chaos_task.done():
                chaos_task.cancel()
                with contextlib.suppress(BaseException):
                    await chaos_task
            workers.stop_all()
            await server.stop()
            engine.dispose()
            if own_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
    return FaultReport(
        tasks=config.tasks,
        kills=workers.kills,
        server_restarts=server.restarts,
        postgres_restarts=pg_restarts,
        postgres_skipped=pg_skipped,
        retries=tally.retries,
        rejections=tally.rejections,
        elapsed=elapsed,
        checks=checks,
        reconcile=report,
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description="Drive tasks to the end while killing workers and restarting Temporal "
        "and PostgreSQL; then check nothing was lost or applied twice.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--kill-every", type=float, default=5.0, help="seconds between SIGKILLs")
    p.add_argument("--database-url", default=None, help="store URL (default: SQLite in a tmp dir)")
    p.add_argument("--restart-server", action="store_true", help="restart the dev server once")
    p.add_argument("--restart-postgres", action="store_true", help="restart PostgreSQL once")
    p.add_argument("--concurrency", type=int, default=64, help="tasks worked at once")
    p.add_argument("--think", type=float, default=1.0, help="max contributor pause (s)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--faults-after-llm",
        action="store_true",
        help="create all tasks and wait for their LLM drafts before injecting faults",
    )
    p.add_argument(
        "--llm-delay", type=float, default=0.0, help="seconds the fake model takes per answer"
    )
    p.add_argument("--keep", type=Path, default=None, help="keep logs and databases here")
    args = p.parse_args()
    report = asyncio.run(
        run_faults(
            FaultConfig(
                tasks=args.tasks,
                workers=args.workers,
                kill_every=args.kill_every,
                database_url=args.database_url,
                restart_server=args.restart_server,
                restart_postgres=args.restart_postgres,
                concurrency=args.concurrency,
                think=args.think,
                seed=args.seed,
                workdir=args.keep,
                faults_after_llm=args.faults_after_llm,
                llm_delay=args.llm_delay,
            )
        )
    )
    print(report.table())
    if not report.ok:
        for line in report.failures():
            print(f"FAILED {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
