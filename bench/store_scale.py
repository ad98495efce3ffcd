"""The store at scale on PostgreSQL: work queue, Data Explorer and CSV export over 1,000,000 tasks.

Run by hand: ``.venv/bin/python -m bench.store_scale [--tasks 1000000]``.

Creates (or reuses) a dedicated PostgreSQL database, migrates it with ``store.db.migrate`` and
fills it with ``--tasks`` tasks of ``examples/label-review.yaml`` (two pipeline versions) in a
realistic mix of states: node instances with statuses, claims, submissions and reviews (so the
Task Data tab has values), timeline events, tags and contributors. Filling uses ``COPY`` with
the secondary indexes dropped and rebuilt afterwards; a database already filled with the same
number of tasks is reused (``--refill`` fills it again).

Then measures, with a baseline from the same run on the same connection pool:

* work queue ``next``, store side only (no Temporal): candidate selection
  (``claimable``), the reservation under the contributor's lock (limit check included) and the
  release that records the claim, as ``conveyor.workqueue.next_work`` runs them around the
  workflow's claim update. Baseline: a primary-key ``SELECT`` of one task row. Target p99 < 20 ms.
* a Data Explorer page (``store.explorer.page`` with data: 50 rows, 3 filters, sorted), over
  varied filters and sorts, following cursors to deep pages; header counts too. Baseline: the
  same primary-key ``SELECT``. Target p95 < 100 ms.
* a CSV export of every task (``conveyor.bulk.export`` to a file, in a child process so its
  peak RSS is its own). Baseline: a bare ``COPY (SELECT ...) TO STDOUT`` of the same tasks
  and their node rows. Targets >= 100,000 rows/s and peak RSS < 256 MiB.

Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

import bench._common as common
from conveyor.pipelines import load_raw
from conveyor.workqueue import SPREAD, _candidates
from store.db import make_engine, migrate, session_factory, transaction
from store.explorer import Sort, TaskFilter, header_counts, page
from store.models import TaskRow
from store.repositories import ensure_pipeline_version, upsert_contributor
from store.workqueue import drop_reservation, reserve_claim
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import ClaimReservation, NodeStatus, TaskStatus

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
DEFAULT_DATABASE = "conveyor_bench_scale"
PIPELINE = "label-review"
MARK = "conveyor bench.store_scale"
BENCH_TOKEN = "bench-scale-"
"""Claim tokens the ``next`` measurement writes; removed again before and after it."""

BENCH_SEQ = 10_000
"""The event number the measured claims carry (above any in the filled data)."""

TARGET_NEXT_P99_MS = 20.0
TARGET_PAGE_P95_MS = 100.0
TARGET_EXPORT_ROWS_S = 100_000
TARGET_EXPORT_RSS_MIB = 256.0

LABELERS = [f"labeler-{i:03d}" for i in range(200)]
REVIEWERS = [f"reviewer-{i:02d}" for i in range(50)]
LEADS = [f"lead-{i}" for i in range(5)]
TAGS = ["urgent", "batch-7", "sarcasm", "recheck", "gold", "customer-vip"]
LABELS = ["positive", "negative", "neutral"]
WORDS = (  # noqa: SIM905 (a list literal of 55 words is one per line)
    "delivery late support team quickly refund broken package arrived damaged great "
    "price awful service friendly staff slow website easy checkout missing item "
    "replacement excellent quality cheap plastic warranty manager rude polite helpful "
    "order cancelled tracking number courier weekend store return policy invoice "
    "discount coupon battery screen cracked sound loud fabric soft size small colour "
    "faded"
).split()
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- database


def server_and_url(args: argparse.Namespace) -> tuple[str, str]:
    base = args.server.rstrip("/")
    return f"{base}/postgres", f"{base}/{args.database}"


def ensure_database(admin_url: str, name: str, drop: bool) -> None:
    conninfo = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and drop:
            common.note(f"dropping database {name}")
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            common.note(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')


def filled_with(engine: Engine) -> int | None:
    """The task count the database was filled with (None: not filled by this script)."""
    with engine.connect() as conn:
        comment = conn.execute(
            text("SELECT obj_description('tasks'::regclass, 'pg_class')")
        ).scalar()
    if comment and comment.startswith(MARK + ": "):
        return int(comment.split(": ", 1)[1].split()[0])
    return None


def pipelines() -> list[Pipeline]:
    """label-review as two versions: the original, then one with reworded instructions
    (the current one)."""
    raw = load_raw(common.LABEL_REVIEW)
    first = validate_pipeline(raw)
    for node in raw["nodes"]:
        if node["name"] == "label":
            node["instructions"] = "Read the whole text, then choose its overall sentiment."
    return [first, validate_pipeline(raw)]


# --------------------------------------------------------------------------- filling


class Copy:
    """Rows for one table, written with ``COPY ... FROM STDIN`` in big text chunks."""

    def __init__(self, conn: psycopg.Connection[Any], table: str, columns: list[str]):
        self.conn, self.table, self.columns = conn, table, columns
        self.buffer = io.StringIO()
        self.count = 0

    def add(self, *values: Any) -> None:
        self.buffer.write("\t".join(_copy_text(v) for v in values))
        self.buffer.write("\n")
        self.count += 1
        if self.count % 20_000 == 0:
            self.flush()

    def flush(self) -> None:
        data = self.buffer.getvalue()
        if not data:
            return
        cols = ", ".join(f'"{c}"' for c in self.columns)
        with self.conn.cursor() as cur, cur.copy(f"COPY {self.table} ({cols}) FROM STDIN") as cp:
            cp.write(data)
        self.buffer = io.StringIO()


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    text_value = str(value)
    return (
        text_value.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


# (task status, label node, check node, share of tasks)
MIX: list[tuple[TaskStatus, NodeStatus, NodeStatus, float]] = [
    (TaskStatus.FINISHED, NodeStatus.FINISHED, NodeStatus.FINISHED, 0.55),
    (TaskStatus.IN_PROGRESS, NodeStatus.AVAILABLE, NodeStatus.PENDING, 0.17),
    (TaskStatus.IN_PROGRESS, NodeStatus.CLAIMED, NodeStatus.PENDING, 0.04),
    (TaskStatus.IN_PROGRESS, NodeStatus.FINISHED, NodeStatus.AVAILABLE, 0.08),
    (TaskStatus.IN_PROGRESS, NodeStatus.FINISHED, NodeStatus.CLAIMED, 0.02),
    (TaskStatus.PENDING, NodeStatus.PENDING, NodeStatus.PENDING, 0.03),
    (TaskStatus.PAUSED, NodeStatus.AVAILABLE, NodeStatus.PENDING, 0.04),
    (TaskStatus.ESCALATED, NodeStatus.FINISHED, NodeStatus.ESCALATED, 0.03),
    (TaskStatus.QUARANTINED, NodeStatus.FINISHED, NodeStatus.QUARANTINED, 0.02),
    (TaskStatus.FAILED, NodeStatus.FINISHED, NodeStatus.FINISHED, 0.02),
]
_SUBMITTED = (NodeStatus.FINISHED, NodeStatus.SUBMITTED)


def _pick_mix(rng: random.Random) -> tuple[TaskStatus, NodeStatus, NodeStatus]:
    x = rng.random()
    for status, label, check, share in MIX:
        if x < share:
            return status, label, check
        x -= share
    return MIX[0][:3]


def fill(url: str, n: int) -> None:
    """Fill an empty, migrated database with ``n`` tasks."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    versions = pipelines()
    with transaction(sessions) as session:
        for version in versions:
            ensure_pipeline_version(session, version)
        session.execute(
            text("UPDATE pipelines SET current_version = :h WHERE name = :n"),
            {"h": versions[-1].content_hash(), "n": PIPELINE},
        )
        for name in LABELERS:
            upsert_contributor(session, name, ["labeler"])
        for name in REVIEWERS:
            upsert_contributor(session, name, ["reviewer"])
        for name in LEADS:
            upsert_contributor(session, name, ["labeler", "reviewer", "lead"])
    engine.dispose()
    hashes = [v.content_hash() for v in versions]

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET session_replication_role = replica")  # no FK triggers while filling
        conn.execute("SET synchronous_commit = off")
        tables = [
            "tasks",
            "node_instances",
            "timeline_events",
            "submissions",
            "reviews",
            "task_tags",
        ]
        indexes = conn.execute(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
            """,
            [tables],
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        common.note(f"filling {n:,} tasks (dropped {len(indexes)} secondary indexes)")
        started = time.perf_counter()
        _fill_rows(conn, n, hashes)
        conn.commit()
        common.note(f"rows written in {time.perf_counter() - started:.0f}s; rebuilding indexes")
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _name, ddl in indexes:
            conn.execute(ddl)
        conn.execute(f"COMMENT ON TABLE tasks IS '{MARK}: {n} tasks'")
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        common.note("VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
    common.note(f"filled in {time.perf_counter() - started:.0f}s")


def _fill_rows(conn: psycopg.Connection[Any], n: int, hashes: list[str]) -> None:
    rng = random.Random(42)
    tasks = Copy(
        conn,
        "tasks",
        [
            "workflow_id", "pipeline_name", "pipeline_hash", "task_key", "status", "seq", "data",
            "current_nodes", "assignees", "tags", "hold_reason", "search_text", "created_at",
            "updated_at", "finished_at",
        ],
    )  # fmt: skip
    nodes = Copy(
        conn,
        "node_instances",
        [
            "workflow_id", "node", "pipeline_name", "status", "seq", "assignee", "claim_token",
            "claimed_at", "expires_at", "values", "draft", "submitted_by", "submitted_at",
            "attempts", "passes", "failures", "total_failures", "available_since",
            "blocked_contributor",
        ],
    )  # fmt: skip
    events = Copy(
        conn,
        "timeline_events",
        ["workflow_id", "seq", "at", "kind", "actor", "node", "message", "data"],
    )
    submissions = Copy(
        conn,
        "submissions",
        ["workflow_id", "seq", "node", "kind", "actor", "attempt", "values", "at"],
    )
    reviews = Copy(
        conn,
        "reviews",
        ["workflow_id", "seq", "node", "reviewer", "verdict", "reason", "values", "at"],
    )
    tags = Copy(conn, "task_tags", ["workflow_id", "tag"])
    span = timedelta(days=180).total_seconds()
    # Claims in the data are held by a crowd (about two each), not by the contributors whose
    # ``next`` calls are measured: those start under their claim limits.
    crowd = max(1, n // 25)
    progress = common.Progress("fill tasks", n)
    for i in range(n):
        key = f"t{i:07d}"
        wid = f"{PIPELINE}/{key}"
        content_hash = hashes[0] if i < n * 0.3 else hashes[1]
        created = EPOCH + timedelta(seconds=span * i / n + rng.random(), microseconds=i % 997)
        status, label_status, check_status = _pick_mix(rng)
        text_value = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize()
        data = {"text": text_value + "."}
        labeler = rng.choice(LABELERS)
        reviewer = rng.choice(REVIEWERS)
        task_tags = [t for t in TAGS if rng.random() < 0.04]
        seq = 1
        at = created
        events.add(wid, seq, at, "created", "system", None, "task created", {})
        values: dict[str, Any] = {}
        submitted_at = None
        if label_status in _SUBMITTED:
            values = {"label": rng.choice(LABELS)}
            if rng.random() < 0.2:
                values["notes"] = rng.choice(["sarcasm?", "mixed", "=SUM(A1)", "see text"])
            seq += 2
            at = submitted_at = created + timedelta(minutes=rng.randint(1, 600))
            events.add(wid, seq, at, "submitted", labeler, "label", "submitted", {"values": values})
            submissions.add(wid, seq, "label", "submit", labeler, 1, values, at)
        check_done = check_status in (NodeStatus.FINISHED, NodeStatus.QUARANTINED)
        if check_done and status != TaskStatus.FAILED:
            seq += 2
            at = at + timedelta(minutes=rng.randint(1, 600))
            events.add(wid, seq, at, "reviewed", reviewer, "check", "reviewed", {"verdict": "pass"})
            reviews.add(wid, seq, "check", reviewer, "pass", None, values, at)
        updated = at
        finished = at if status in (TaskStatus.FINISHED, TaskStatus.FAILED) else None
        current: list[str] = []
        assignees: list[str] = []
        for node, node_status in (("label", label_status), ("check", check_status)):
            if node_status in (NodeStatus.AVAILABLE, NodeStatus.CLAIMED, NodeStatus.ESCALATED):
                current.append(node)
        start_status = NodeStatus.PENDING if status == TaskStatus.PENDING else NodeStatus.FINISHED
        end_status = NodeStatus.FINISHED if status == TaskStatus.FINISHED else NodeStatus.PENDING
        node_rows = [
            ("start", start_status, None, {}, None),
            ("label", label_status, labeler, values, submitted_at),
            ("check", check_status, reviewer, {}, None),
            ("end", end_status, None, {}, None),
        ]
        for node, node_status, person, node_values, node_submitted in node_rows:
            claimed = node_status == NodeStatus.CLAIMED
            if claimed:
                person = f"crowd-{rng.randrange(crowd):05d}"
                assignees.append(person)
            available = None
            if node_status in (NodeStatus.AVAILABLE, NodeStatus.CLAIMED, NodeStatus.ESCALATED):
                available = created if node == "label" else submitted_at
            nodes.add(
                wid,
                node,
                PIPELINE,
                node_status.value,
                seq,
                person if claimed else None,
                uuid.UUID(int=rng.getrandbits(128)).hex if claimed else None,
                updated if claimed else None,
                updated + timedelta(minutes=30) if claimed else None,
                node_values,
                {},
                labeler if node_submitted else None,
                node_submitted,
                1 if node_submitted else 0,
                1 if node == "check" and check_done else 0,
                0,
                0,
                available,
                labeler if node == "check" else None,
            )
        search = "\n".join([key, *task_tags, data["text"], *map(str, values.values())]).lower()
        hold = "reviewer escalated" if status == TaskStatus.ESCALATED else None
        tasks.add(
            wid, PIPELINE, content_hash, key, status.value, seq, data, current, assignees,
            task_tags, hold, search, created, updated, finished,
        )  # fmt: skip
        for tag in task_tags:
            tags.add(wid, tag)
        if i % 5000 == 0:
            progress.set(i)
    for copy in (tasks, nodes, events, submissions, reviews, tags):
        copy.flush()
    progress.set(n)
    progress.done()


# --------------------------------------------------------------------------- measuring


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def baseline_pk(sessions: sessionmaker[Session], ids: list[str], n: int) -> list[float]:
    """A primary-key SELECT of one task row, in its own transaction, ``n`` times."""
    out = []
    for i in range(n):
        wid = ids[i % len(ids)]

        def one(wid: str = wid) -> None:
            with transaction(sessions) as session:
                session.execute(select(TaskRow.status).where(TaskRow.workflow_id == wid)).one()

        out.append(timed(one))
    return out


def reset_bench_claims(engine: Engine) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            text(
                # seq too: runs before the claim reservations moved into the claim stamped
                # nodes this way; resetting it keeps an old bench store usable.
                "UPDATE node_instances SET status = 'Available', assignee = NULL, "
                "claim_token = NULL, claimed_at = NULL, seq = 1 WHERE claim_token LIKE :t "
                "OR seq >= :stamped"
            ),
            {"t": BENCH_TOKEN + "%", "stamped": BENCH_SEQ - 1},
        )
        conn.execute(text("DELETE FROM claim_reservations"))
        return int(getattr(result, "rowcount", 0))


def measure_next(sessions: sessionmaker[Session], n: int) -> tuple[list[float], dict[str, int]]:
    """The store side of ``next_work``: candidates, then the claim's reservation within the
    claim limit (the claim activity's transaction), then dropping it (as a refused claim does).

    Contributors take turns (most labelers, some reviewers, a few leads with both roles), so
    each holds at most a couple of claims and no claim limit is reached.
    """
    rng = random.Random(7)
    people = [(p, ["labeler"]) for p in LABELERS] + [(p, ["reviewer"]) for p in REVIEWERS]
    people += [(p, ["labeler", "reviewer", "lead"]) for p in LEADS]
    out: list[float] = []
    outcomes: dict[str, int] = {}
    progress = common.Progress("next (store side)", n)
    for i in range(n):
        contributor, roles = people[i % len(people)]
        started = time.perf_counter()
        candidates = _candidates(sessions, contributor, roles, None, SPREAD * 4)
        outcome = "no work"
        if candidates:
            item = rng.choice(candidates[:SPREAD])
            request = ClaimReservation(
                contributor=contributor,
                roles=roles,
                pipeline=item.pipeline,
                workflow_id=item.workflow_id,
                node=item.node,
                seq=BENCH_SEQ,
                limit=1_000,
            )
            with transaction(sessions) as session:
                held = reserve_claim(session, request)
            outcome = "reserved" if held is None else "at limit"
            with transaction(sessions) as session:
                drop_reservation(session, request)
        out.append(time.perf_counter() - started)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        progress.tick()
    progress.done()
    return out, outcomes


def explorer_cases(rng: random.Random) -> Iterator[tuple[str, TaskFilter, Sort, int]]:
    """(label, filter with 3 criteria, sort, pages to follow), in a varied rotation."""
    day = timedelta(days=1)
    while True:
        start = EPOCH + rng.randint(0, 150) * day
        word = rng.choice(WORDS)
        tag = rng.choice(TAGS)
        person = rng.choice(LABELERS)
        yield (
            "in progress + label available + text",
            TaskFilter(
                status=[TaskStatus.IN_PROGRESS],
                node="label",
                node_status=NodeStatus.AVAILABLE,
                text=word,
            ),
            Sort.parse("-created_at"),
            5,
        )
        yield (
            "finished + tag + created window",
            TaskFilter(
                status=[TaskStatus.FINISHED],
                tag=tag,
                created_from=start,
                created_to=start + 20 * day,
            ),
            Sort.parse("created_at"),
            3,
        )
        yield (
            "status x2 + check node + text",
            TaskFilter(
                status=[TaskStatus.IN_PROGRESS, TaskStatus.ESCALATED],
                node="check",
                text=word,
            ),
            Sort.parse("-updated_at"),
            3,
        )
        yield (
            "finished + text + created window, by finished_at",
            TaskFilter(
                status=[TaskStatus.FINISHED],
                text=word,
                created_from=start,
                created_to=start + 30 * day,
            ),
            Sort.parse("-finished_at"),
            3,
        )
        yield (
            "in progress + assignee + node status",
            TaskFilter(
                status=[TaskStatus.IN_PROGRESS, TaskStatus.PAUSED],
                assignee=person,
                node_status=NodeStatus.CLAIMED,
            ),
            Sort.parse("-updated_at"),
            1,
        )
        yield (
            "status + node status + tag, by status",
            TaskFilter(
                status=[TaskStatus.FINISHED, TaskStatus.QUARANTINED],
                node_status=NodeStatus.FINISHED,
                tag=tag,
            ),
            Sort.parse("status"),
            3,
        )


def measure_explorer(
    sessions: sessionmaker[Session], n: int
) -> tuple[list[float], dict[str, list[float]], list[float], int]:
    """Explorer pages (with data, as the Task Data tab shows them), following next cursors."""
    rng = random.Random(11)
    cases = explorer_cases(rng)
    times: list[float] = []
    by_case: dict[str, list[float]] = {}
    counts: list[float] = []
    rows = 0
    progress = common.Progress("explorer pages", n)
    while len(times) < n:
        label, criteria, sort, pages = next(cases)
        cursor: str | None = None
        for _ in range(pages):
            started = time.perf_counter()
            with transaction(sessions) as session:
                result = page(
                    session, PIPELINE, criteria, sort, limit=50, after=cursor, with_data=True
                )
            elapsed = time.perf_counter() - started
            times.append(elapsed)
            by_case.setdefault(label, []).append(elapsed)
            rows += len(result.rows)
            progress.tick()
            cursor = result.next_cursor
            if cursor is None:
                break
    progress.done()
    for _ in range(20):
        started = time.perf_counter()
        with transaction(sessions) as session:
            header_counts(session, PIPELINE)
        counts.append(time.perf_counter() - started)
    return times, by_case, counts, rows


_EXPORT_CHILD = """
import json, resource, sys, time
from conveyor.bulk import export
from store.db import make_engine, session_factory
url, pipeline, path = sys.argv[1:4]
engine = make_engine(url)
sessions = session_factory(engine)
started = time.perf_counter()
report = export(sessions, pipeline, None, "csv", path)
elapsed = time.perf_counter() - started
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1])
print(json.dumps({"rows": report.rows, "seconds": elapsed, "vmhwm_kib": hwm,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def measure_export(url: str, workdir: Path) -> dict[str, Any]:
    target = workdir / "export.csv"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    common.note("CSV export of every task (child process)")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT_CHILD, url, PIPELINE, str(target)],
        check=True,
        capture_output=True,
        text=True,
        cwd=common.ROOT,
    )
    wall = time.perf_counter() - started
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["wall"] = wall
    figures["bytes"] = target.stat().st_size
    figures["children_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    figures["children_maxrss_before_kib"] = before
    target.unlink()
    return figures


def measure_copy(url: str, workdir: Path) -> dict[str, Any]:
    """The bare baseline: COPY the same tasks, with their node statuses and values, to a file."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    target = workdir / "copy.csv"
    query = f"""
        COPY (
            SELECT t.workflow_id, t.task_key, t.pipeline_hash, t.status, t.hold_reason,
                   t.current_nodes, t.assignees, t.created_at, t.updated_at, t.finished_at,
                   l.status, c.status, t.data ->> 'text', l.values ->> 'label',
                   l.values ->> 'notes', t.tags
            FROM tasks t
            LEFT JOIN node_instances l ON l.workflow_id = t.workflow_id AND l.node = 'label'
            LEFT JOIN node_instances c ON c.workflow_id = t.workflow_id AND c.node = 'check'
            WHERE t.pipeline_name = '{PIPELINE}'
            ORDER BY t.created_at, t.workflow_id
        ) TO STDOUT WITH (FORMAT csv, HEADER)
    """
    rows = -1
    started = time.perf_counter()
    with (
        psycopg.connect(conninfo) as conn,
        target.open("wb") as out,
        conn.cursor() as cur,
        cur.copy(query) as copy,
    ):
        for block in copy:
            out.write(block)
            rows += bytes(block).count(b"\n")
    elapsed = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return {"rows": rows, "seconds": elapsed, "bytes": size}


# --------------------------------------------------------------------------- report


def ms_row(name: str, values: list[float], extra: str = "") -> list[Any]:
    return [
        name,
        len(values),
        *(common.ms(common.percentile(values, q)) for q in (50, 95, 99)),
        common.ms(max(values)),
        extra,
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=common._HelpFormatter)
    p.add_argument("--tasks", type=int, default=1_000_000, help="tasks in the store")
    p.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL (no database)")
    p.add_argument("--database", default=DEFAULT_DATABASE, help="the benchmark's own database")
    p.add_argument("--refill", action="store_true", help="drop the database and fill it again")
    p.add_argument("--next-calls", type=int, default=600, help="work-queue next calls")
    p.add_argument("--pages", type=int, default=300, help="explorer pages")
    p.add_argument("--skip-export", action="store_true", help="skip the export measurement")
    p.add_argument("--fill-only", action="store_true", help="fill (or check) the database, stop")
    args = p.parse_args()

    common.note(f"machine: {common.machine()}")
    admin_url, url = server_and_url(args)
    ensure_database(admin_url, args.database, args.refill)
    engine = make_engine(url)
    migrate(engine)
    have = filled_with(engine)
    if have != args.tasks:
        if have is not None or _task_count(engine):
            engine.dispose()
            ensure_database(admin_url, args.database, drop=True)
            engine = make_engine(url)
            migrate(engine)
        fill(url, args.tasks)
    else:
        common.note(f"reusing {args.database}: {have:,} tasks")
    if args.fill_only:
        engine.dispose()
        return
    sessions = session_factory(engine)
    reset_bench_claims(engine)
    with engine.connect() as conn:
        ids = list(
            conn.execute(text("SELECT workflow_id FROM tasks TABLESAMPLE SYSTEM (1) LIMIT 2000"))
            .scalars()
            .all()
        )
        tasks = int(conn.execute(text("SELECT count(*) FROM tasks")).scalar_one())
        sizes: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE relname IN "
                    "('node_instances','timeline_events','submissions','reviews','task_tags')"
                )
            ).all()
        )
    # Warm up the pool, the caches and the statement cache.
    baseline_pk(sessions, ids, 50)

    select1 = []
    for _ in range(500):
        select1.append(timed(lambda: _select1(sessions)))
    pk_next = baseline_pk(sessions, ids, 500)
    _candidates(sessions, LABELERS[0], ["labeler"], None, SPREAD * 4)
    next_times, outcomes = measure_next(sessions, args.next_calls)
    released = reset_bench_claims(engine)
    pk_pages = baseline_pk(sessions, ids, 500)
    page_times, by_case, count_times, page_rows = measure_explorer(sessions, args.pages)

    export_figures: dict[str, Any] | None = None
    copy_figures: dict[str, Any] | None = None
    if not args.skip_export:
        with tempfile.TemporaryDirectory(prefix="conveyor-scale-") as tmp:
            copy_figures = measure_copy(url, Path(tmp))
            export_figures = measure_export(url, Path(tmp))
    engine.dispose()

    print()
    print(
        f"store at scale: PostgreSQL, {tasks:,} tasks of {PIPELINE}; other tables "
        f"(pg_stat estimates): {', '.join(f'{k} {v:,}' for k, v in sorted(sizes.items()))}"
    )
    print(
        "work queue next = store side of conveyor.workqueue.next_work, measured without "
        "Temporal: candidates + reservation (lock, limit check) + release recording the claim"
    )
    print(
        common.table(
            ["measure", "calls", "p50 ms", "p95 ms", "p99 ms", "max ms", "note"],
            [
                ms_row("baseline: SELECT 1", select1),
                ms_row("baseline: task by primary key", pk_next + pk_pages),
                ms_row(
                    "work queue next (store side)",
                    next_times,
                    ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
                ),
                ms_row("explorer page (50 rows, 3 filters)", page_times, f"{page_rows:,} rows"),
                *(ms_row(f"  {label}", values) for label, values in by_case.items()),
                ms_row("explorer header counts", count_times),
            ],
        )
    )
    pk_p99 = common.percentile(pk_next, 99)
    next_p99 = common.ms(common.percentile(next_times, 99))
    page_p95 = common.ms(common.percentile(page_times, 95))
    print(
        f"ratio next p99 / primary-key SELECT p99: {next_p99 / common.ms(pk_p99):.1f}; "
        f"page p95 / primary-key SELECT p95: "
        f"{page_p95 / common.ms(common.percentile(pk_pages, 95)):.1f}"
    )
    next_met = common.verdict(next_p99 < TARGET_NEXT_P99_MS)
    page_met = common.verdict(page_p95 < TARGET_PAGE_P95_MS)
    print(f"next p99 {next_p99:.1f} ms, target < {TARGET_NEXT_P99_MS:.0f} ms: {next_met}")
    print(f"page p95 {page_p95:.1f} ms, target < {TARGET_PAGE_P95_MS:.0f} ms: {page_met}")
    common.note(f"claims recorded and reset: {released}")
    if export_figures is not None and copy_figures is not None:
        rate = export_figures["rows"] / export_figures["seconds"]
        copy_rate = copy_figures["rows"] / copy_figures["seconds"]
        rss = export_figures["vmhwm_kib"] / 1024
        print()
        print(
            common.table(
                ["export", "rows", "s", "rows/s", "MiB written", "peak RSS MiB"],
                [
                    [
                        "baseline: COPY (SELECT ...) TO STDOUT",
                        copy_figures["rows"],
                        copy_figures["seconds"],
                        f"{copy_rate:,.0f}",
                        copy_figures["bytes"] / 2**20,
                        "-",
                    ],
                    [
                        "conveyor.bulk.export csv (child process)",
                        export_figures["rows"],
                        export_figures["seconds"],
                        f"{rate:,.0f}",
                        export_figures["bytes"] / 2**20,
                        rss,
                    ],
                ],
            )
        )
        print(f"ratio export / COPY rows/s: {rate / copy_rate:.2f}")
        rate_met = common.verdict(rate >= TARGET_EXPORT_ROWS_S)
        rss_met = common.verdict(rss < TARGET_EXPORT_RSS_MIB)
        print(f"export {rate:,.0f} rows/s, target >= {TARGET_EXPORT_ROWS_S:,}: {rate_met}")
        print(
            f"export peak RSS (VmHWM) {rss:.0f} MiB, "
            f"target < {TARGET_EXPORT_RSS_MIB:.0f}: {rss_met}"
        )


def _select1(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        session.execute(text("SELECT 1")).scalar_one()


def _task_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM tasks")).scalar_one())


if __name__ == "__main__":
    main()
