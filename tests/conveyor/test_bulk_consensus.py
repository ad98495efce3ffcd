"""Exports of consensus nodes on SQLite and PostgreSQL: the wide shape's columns (figures,
adjudication, numbered answers) and the long shape's rows (one per answer, every round), for
tasks driven through the engine and written by the projection (``apply_batch``)."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from conveyor.bulk import (
    EXPORT_FORMATS,
    ExportFormat,
    ExportStateMismatch,
    NoConsensusNodes,
    Progress,
    check_shape,
    export,
    exporting,
)
from store.db import transaction
from store.explorer import TaskFilter
from tests.conveyor.test_bulk import run_cli
from tests.support.explorer_data import build_tasks, project, project_fast, rename
from workflows import engine
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    Adjudicate,
    Claim,
    Command,
    ProjectionBatch,
    Review,
    Submit,
    TaskState,
    Verdict,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def votes(name: str) -> Pipeline:
    """Two consensus nodes: ``label`` (three answers, settled by ``settle`` when they disagree)
    and ``tone`` (two answers, reviewed by ``check``: a fail opens a new round). ``tone`` has a
    field named ``by``, so its annotator columns move to ``tone.consensus.by.<j>``."""
    return validate_pipeline(
        {
            "name": name,
            "claim_timeout": "30m",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["label"]},
                {
                    "name": "label",
                    "kind": "subtask",
                    "roles": ["labeler"],
                    "consensus": {
                        "annotators": 3,
                        "threshold": 0.66,
                        "rules": {"intensity": {"tolerance": 1}},
                    },
                    "fields": [
                        {"name": "text", "type": "long_text", "source": "predefined"},
                        {
                            "name": "sentiment",
                            "type": "select",
                            "options": ["positive", "negative", "neutral"],
                        },
                        {"name": "intensity", "type": "rating", "min": 1, "max": 5},
                        {
                            "name": "topics",
                            "type": "multi_select",
                            "options": ["price", "quality"],
                            "required": False,
                        },
                        {"name": "notes", "type": "short_text", "required": False},
                    ],
                    "next": ["settle"],
                },
                {"name": "settle", "kind": "adjudicate", "roles": ["lead"], "next": ["tone"]},
                {
                    "name": "tone",
                    "kind": "subtask",
                    "roles": ["labeler"],
                    "consensus": {"annotators": 2, "on_disagreement": "quarantine"},
                    "fields": [
                        {"name": "level", "type": "select", "options": ["calm", "angry"]},
                        {"name": "by", "type": "short_text", "required": False},
                    ],
                    "next": ["check"],
                },
                {"name": "check", "kind": "review", "roles": ["lead"], "next": ["end"]},
                {"name": "end", "kind": "end"},
            ],
        }
    )


@dataclass
class Driver:
    """One task driven through the pure engine; remembers when each answer was given."""

    pipeline: Pipeline
    key: str
    created: datetime
    state: TaskState = field(init=False)
    events: list[Any] = field(default_factory=list)
    at: dict[tuple[str, str, int], str] = field(default_factory=dict)
    """(node, annotator, round) -> when the answer was accepted (ISO 8601)."""
    n: int = 0

    def __post_init__(self) -> None:
        start = engine.start_task(
            self.pipeline, self.key, {"text": f"text of {self.key}"}, engine.Context(self.created)
        )
        self.state, self.events = start.state, list(start.events)

    def send(self, command: Command) -> str | None:
        self.n += 1
        now = self.created + timedelta(minutes=self.n)
        out = engine.apply(
            self.pipeline, self.state, command, engine.Context(now=now, token=f"t{self.n}")
        )
        assert out.accepted, out.result
        self.state = out.state
        self.events += out.events
        return out.result.token

    def rid(self) -> str:
        return f"{self.key}-{self.n}"

    def answer(self, node: str, who: str, values: dict[str, Any], round_: int = 1) -> None:
        token = self.send(
            Claim(request_id=self.rid(), contributor=who, roles=["labeler"], node=node)
        )
        self.send(
            Submit(
                request_id=self.rid(), contributor=who, node=node, token=token or "", values=values
            )
        )
        moment = self.created + timedelta(minutes=self.n)
        self.at[(node, who, round_)] = moment.isoformat()

    def lead(self, node: str, command: Any) -> None:
        token = self.send(
            Claim(request_id=self.rid(), contributor="lea", roles=["lead"], node=node)
        )
        self.send(command(token or ""))

    def batch(self) -> ProjectionBatch:
        return ProjectionBatch(
            view=engine.task_view(self.state, f"{self.pipeline.name}/{self.key}"),
            events=self.events,
            pipeline=self.pipeline,
            blocked=engine.self_review_blocked(self.pipeline, self.state.nodes),
        )


def consensus_tasks(name: str) -> dict[str, Driver]:
    """``agreed``: three answers that agree; ``settled``: three that do not, adjudicated, then
    ``tone`` answered twice (a failed review between the rounds); ``open``: one answer so far;
    ``fresh``: none."""
    pipeline = votes(name)
    tasks = {
        key: Driver(pipeline, key, T0 + timedelta(hours=i))
        for i, key in enumerate(["agreed", "settled", "open", "fresh"])
    }
    agreed = tasks["agreed"]
    agreed.answer("label", "ann", {"sentiment": "positive", "intensity": 4, "topics": ["price"]})
    agreed.answer(
        "label",
        "bob",
        {"sentiment": "positive", "intensity": 5, "topics": ["price", "quality"], "notes": "=cmd"},
    )
    agreed.answer("label", "cat", {"sentiment": "negative", "intensity": 4, "topics": ["price"]})

    settled = tasks["settled"]
    settled.answer("label", "ann", {"sentiment": "positive", "intensity": 2})
    settled.answer("label", "bob", {"sentiment": "negative", "intensity": 4})
    settled.answer("label", "cat", {"sentiment": "neutral", "intensity": 2, "notes": "sarcasm?"})
    settled.lead(
        "settle",
        lambda token: Adjudicate(
            request_id=settled.rid(),
            contributor="lea",
            node="settle",
            token=token,
            pick="bob",
            values={"intensity": 3},
            reason="-sarcasm, not praise",
        ),
    )
    settled.answer("tone", "ann", {"level": "calm", "by": "=HYPERLINK(1)"})
    settled.answer("tone", "bob", {"level": "calm"})
    settled.lead(
        "check",
        lambda token: Review(
            request_id=settled.rid(),
            contributor="lea",
            node="check",
            token=token,
            verdict=Verdict.FAIL,
            reason="both missed the anger",
        ),
    )
    settled.answer("tone", "cat", {"level": "angry"}, round_=2)
    settled.answer("tone", "dan", {"level": "angry", "by": "a customer"}, round_=2)

    tasks["open"].answer("label", "ann", {"sentiment": "neutral", "intensity": 3})
    return tasks


def fresh_name() -> str:
    return f"votes-{uuid.uuid4().hex[:8]}"


def plain_tasks(sessions: sessionmaker[Session], n: int) -> str:
    """A fresh pipeline without consensus nodes (label-review), ``n`` tasks in the store."""
    name = f"plain-{uuid.uuid4().hex[:8]}"
    project_fast(sessions, rename(build_tasks("bulk", 9)[:n], name), events=False)
    return name


@pytest.fixture
def stored(sessions: sessionmaker[Session]) -> tuple[str, dict[str, Driver]]:
    """A fresh consensus pipeline whose four tasks the projection wrote."""
    name = fresh_name()
    tasks = consensus_tasks(name)
    project(sessions, [t.batch() for t in tasks.values()])
    return name, tasks


# --------------------------------------------------------------------------- wide

BASE_COLUMNS = [
    "workflow_id",
    "task_key",
    "pipeline_hash",
    "status",
    "hold_reason",
    "current_nodes",
    "assignees",
    "created_at",
    "updated_at",
    "finished_at",
    "node_status.label",
    "node_status.settle",
    "node_status.tone",
    "node_status.check",
    "label.text",
    "label.sentiment",
    "label.intensity",
    "label.topics",
    "label.notes",
    "tone.level",
    "tone.by",
    "tags",
]


def label_answer_columns(j: int) -> list[str]:
    return [f"label.{k}.{j}" for k in ("by", "at", "sentiment", "intensity", "topics", "notes")]


def tone_answer_columns(j: int) -> list[str]:
    return [f"tone.consensus.by.{j}", f"tone.at.{j}", f"tone.level.{j}", f"tone.by.{j}"]


FIGURES = ("merged", "agreement", "confidence")
CONSENSUS_COLUMNS = [
    "label.agreement",
    "label.confidence",
    "label.agreed",
    "label.answers",
    "label.round",
    "label.adjudicated_by",
    "label.adjudication_reason",
    "label.picked",
    *(f"label.{f}.{k}" for f in ("sentiment", "intensity", "topics") for k in FIGURES),
    *label_answer_columns(1),
    *label_answer_columns(2),
    *label_answer_columns(3),
    "tone.agreement",
    "tone.confidence",
    "tone.agreed",
    "tone.answers",
    "tone.round",
    "tone.adjudicated_by",
    "tone.adjudication_reason",
    "tone.picked",
    "tone.level.merged",
    "tone.level.agreement",
    "tone.level.confidence",
    *tone_answer_columns(1),
    *tone_answer_columns(2),
]
WIDE_COLUMNS = BASE_COLUMNS + CONSENSUS_COLUMNS


def expected_wide(tasks: dict[str, Driver]) -> dict[str, dict[str, Any]]:
    """Each task's consensus columns, worked out by hand (unlisted columns are None)."""
    agreed, settled, opened = tasks["agreed"], tasks["settled"], tasks["open"]
    third, two_thirds = 0.333333, 0.666667
    out: dict[str, dict[str, Any]] = {
        "agreed": {
            # 2 of 3 say positive; intensities 4, 5, 4 all within 1 of the median 4; topics:
            # pairwise Jaccard 1/2, 1, 1/2; the item takes the lowest of the three.
            "label.sentiment": "positive",
            "label.intensity": 4,
            "label.topics": ["price"],
            "label.agreement": two_thirds,
            "label.confidence": two_thirds,
            "label.agreed": True,
            "label.answers": 3,
            "label.round": 1,
            "label.sentiment.merged": "positive",
            "label.sentiment.agreement": two_thirds,
            "label.sentiment.confidence": two_thirds,
            "label.intensity.merged": 4,
            "label.intensity.agreement": 1.0,
            "label.intensity.confidence": 1.0,
            "label.topics.merged": ["price"],
            "label.topics.agreement": two_thirds,
            "label.topics.confidence": 0.833333,  # overlap with the merge: 1, 1/2, 1
            "label.by.1": "ann",
            "label.at.1": agreed.at[("label", "ann", 1)],
            "label.sentiment.1": "positive",
            "label.intensity.1": 4,
            "label.topics.1": ["price"],
            "label.by.2": "bob",
            "label.at.2": agreed.at[("label", "bob", 1)],
            "label.sentiment.2": "positive",
            "label.intensity.2": 5,
            "label.topics.2": ["price", "quality"],
            "label.notes.2": "=cmd",
            "label.by.3": "cat",
            "label.at.3": agreed.at[("label", "cat", 1)],
            "label.sentiment.3": "negative",
            "label.intensity.3": 4,
            "label.topics.3": ["price"],
            "tone.round": 1,  # open, nobody has answered yet
        },
        "settled": {
            # The adjudicator took bob's answer and corrected its intensity: those are the
            # final values; the engine's merge stays in the .merged columns.
            "label.sentiment": "negative",
            "label.intensity": 3,
            "label.agreement": third,
            "label.confidence": third,
            "label.agreed": False,
            "label.answers": 3,
            "label.round": 1,
            "label.adjudicated_by": "lea",
            "label.adjudication_reason": "-sarcasm, not praise",
            "label.picked": "bob",
            "label.sentiment.merged": "positive",  # a three-way tie: the first answer
            "label.sentiment.agreement": third,
            "label.sentiment.confidence": third,
            "label.intensity.merged": 2,
            "label.intensity.agreement": two_thirds,
            "label.intensity.confidence": two_thirds,
            "label.topics.merged": None,  # nobody chose a topic: no merged value
            "label.topics.agreement": 1.0,
            "label.topics.confidence": 1.0,
            "label.by.1": "ann",
            "label.at.1": settled.at[("label", "ann", 1)],
            "label.sentiment.1": "positive",
            "label.intensity.1": 2,
            "label.by.2": "bob",
            "label.at.2": settled.at[("label", "bob", 1)],
            "label.sentiment.2": "negative",
            "label.intensity.2": 4,
            "label.by.3": "cat",
            "label.at.3": settled.at[("label", "cat", 1)],
            "label.sentiment.3": "neutral",
            "label.intensity.3": 2,
            "label.notes.3": "sarcasm?",
            # tone: round 2's answers only (round 1's are in the long shape)
            "tone.level": "angry",
            "tone.agreement": 1.0,
            "tone.confidence": 1.0,
            "tone.agreed": True,
            "tone.answers": 2,
            "tone.round": 2,
            "tone.level.merged": "angry",
            "tone.level.agreement": 1.0,
            "tone.level.confidence": 1.0,
            "tone.consensus.by.1": "cat",
            "tone.at.1": settled.at[("tone", "cat", 2)],
            "tone.level.1": "angry",
            "tone.consensus.by.2": "dan",
            "tone.at.2": settled.at[("tone", "dan", 2)],
            "tone.level.2": "angry",
            "tone.by.2": "a customer",
        },
        "open": {
            "label.round": 1,
            "label.by.1": "ann",
            "label.at.1": opened.at[("label", "ann", 1)],
            "label.sentiment.1": "neutral",
            "label.intensity.1": 3,
        },
        "fresh": {"label.round": 1},
    }
    return out


def cell(value: Any) -> str:
    """The CSV text of a value, spelled out independently of the code under test."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return str(value)


def read_csv(content: bytes) -> tuple[list[str], list[dict[str, str]]]:
    header, *rows = csv.reader(io.StringIO(content.decode(), newline=""))
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def read_records(fmt: ExportFormat, content: bytes, member: str = "tasks") -> list[Any]:
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            content = archive.read(f"{member}.jsonl")
    if fmt in ("jsonl", "zip"):
        return [json.loads(line) for line in content.splitlines()]
    return list(json.loads(content))


def test_wide_exports_carry_every_answer_and_the_merge(
    sessions: sessionmaker[Session], stored: tuple[str, dict[str, Driver]], tmp_path: Path
) -> None:
    name, tasks = stored
    want = expected_wide(tasks)
    keys = list(tasks)
    for fmt in EXPORT_FORMATS:
        out = tmp_path / f"wide.{fmt}"
        report = export(sessions, name, None, fmt, out)
        assert (report.rows, report.shape, report.answers) == (4, "wide", None)
        assert report.columns == WIDE_COLUMNS
        content = out.read_bytes()
        if fmt == "csv":
            header, rows = read_csv(content)
            assert header == WIDE_COLUMNS
            assert [r["task_key"] for r in rows] == keys
            for row in rows:
                cells = {c: cell(want[row["task_key"]].get(c)) for c in CONSENSUS_COLUMNS}
                for c in ("label.sentiment", "label.intensity", "label.topics", "tone.level"):
                    cells[c] = cell(want[row["task_key"]].get(c))
                assert {c: row[c] for c in cells} == cells, row["task_key"]
            # Formula-looking answers and reasons are neutralised, like every other cell.
            settled = rows[1]
            assert settled["label.adjudication_reason"] == "'-sarcasm, not praise"
            assert rows[0]["label.notes.2"] == "'=cmd"
            assert rows[0]["label.agreement"] == "0.666667" and rows[0]["label.agreed"] == "true"
            continue
        records = read_records(fmt, content)
        assert [r["task_key"] for r in records] == keys
        for record in records:
            assert list(record) == WIDE_COLUMNS
            expected = want[record["task_key"]]
            got = {c: record[c] for c in CONSENSUS_COLUMNS}
            assert got == {c: expected.get(c) for c in CONSENSUS_COLUMNS}, record["task_key"]
        assert records[0]["label.notes.2"] == "=cmd"  # JSON is for programs: unchanged
    with zipfile.ZipFile(tmp_path / "wide.zip") as archive:
        assert archive.namelist() == ["tasks.csv", "tasks.jsonl", "manifest.json"]
        assert archive.read("tasks.csv") == (tmp_path / "wide.csv").read_bytes()
        manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["shape"], manifest["rows"], manifest["tasks"]) == ("wide", 4, 4)
    assert manifest["columns"] == WIDE_COLUMNS


def test_a_wide_export_is_the_same_page_by_page_and_filtered(
    sessions: sessionmaker[Session],
    stored: tuple[str, dict[str, Driver]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One page per task writes what one page does, and so does (on PostgreSQL) the ``COPY``
    with its consensus cells formatted in Python, whole and cut into one-row pages, with rows
    it formats entirely in Python (lists) and rows it does not; a filter keeps its rows'
    consensus columns."""
    name, _ = stored
    whole = io.BytesIO()
    export(sessions, name, None, "csv", whole)
    paged = io.BytesIO()
    export(sessions, name, None, "csv", paged, page_size=1)
    assert paged.getvalue() == whole.getvalue()
    monkeypatch.setattr(exporting, "_copy_supported", lambda sessions: False)
    for page_size in (1, 100):
        python = io.BytesIO()
        export(sessions, name, None, "csv", python, page_size=page_size)
        assert python.getvalue() == whole.getvalue()
    monkeypatch.undo()
    _, rows = read_csv(whole.getvalue())
    one = io.BytesIO()
    export(sessions, name, TaskFilter(workflow_ids=[f"{name}/settled"]), "csv", one)
    _, [row] = read_csv(one.getvalue())
    assert row == rows[1]


# --------------------------------------------------------------------------- long

LONG_COLUMNS = [
    "workflow_id",
    "task_key",
    "pipeline_hash",
    "status",
    "node",
    "round",
    "answer_no",
    "counted",
    "annotator",
    "answered_at",
    "answer.sentiment",
    "answer.intensity",
    "answer.topics",
    "answer.notes",
    "answer.level",
    "answer.by",
    "final.sentiment",
    "final.intensity",
    "final.topics",
    "final.notes",
    "final.level",
    "final.by",
    "agreement",
    "confidence",
    "agreed",
    "adjudicated_by",
]


def expected_long(name: str, tasks: dict[str, Driver]) -> list[dict[str, Any]]:
    """Every answer, as its own row, worked out by hand."""
    rows: list[dict[str, Any]] = []

    def add(key: str, node: str, who: str, round_: int, no: int, counted: bool, **v: Any) -> None:
        task = tasks[key]
        answer = {f: None for f in ("sentiment", "intensity", "topics", "notes", "level", "by")}
        answer.update(v.pop("answer"))
        final = {f: None for f in answer}
        final.update(v.pop("final"))
        rows.append(
            {
                "workflow_id": f"{name}/{key}",
                "task_key": key,
                "pipeline_hash": task.pipeline.content_hash(),
                "status": "In Progress",
                "node": node,
                "round": round_,
                "answer_no": no,
                "counted": counted,
                "annotator": who,
                "answered_at": task.at[(node, who, round_)],
                **{f"answer.{f}": value for f, value in answer.items()},
                **{f"final.{f}": value for f, value in final.items()},
                "agreement": v.get("agreement"),
                "confidence": v.get("confidence"),
                "agreed": v.get("agreed"),
                "adjudicated_by": v.get("adjudicated_by"),
            }
        )

    final: dict[str, Any] = {"sentiment": "positive", "intensity": 4, "topics": ["price"]}
    item: dict[str, Any] = {"agreement": 0.666667, "confidence": 0.666667, "agreed": True}
    add("agreed", "label", "ann", 1, 1, True, answer=dict(final), final=final, **item)
    bob = {"sentiment": "positive", "intensity": 5, "topics": ["price", "quality"], "notes": "=cmd"}
    add("agreed", "label", "bob", 1, 2, True, answer=bob, final=final, **item)
    cat = {"sentiment": "negative", "intensity": 4, "topics": ["price"]}
    add("agreed", "label", "cat", 1, 3, True, answer=cat, final=final, **item)

    final = {"sentiment": "negative", "intensity": 3}
    item = {"agreement": 0.333333, "confidence": 0.333333, "agreed": False, "adjudicated_by": "lea"}
    ann = {"sentiment": "positive", "intensity": 2}
    add("settled", "label", "ann", 1, 1, True, answer=ann, final=final, **item)
    bob = {"sentiment": "negative", "intensity": 4}
    add("settled", "label", "bob", 1, 2, True, answer=bob, final=final, **item)
    cat = {"sentiment": "neutral", "intensity": 2, "notes": "sarcasm?"}
    add("settled", "label", "cat", 1, 3, True, answer=cat, final=final, **item)
    final = {"level": "angry"}
    item = {"agreement": 1.0, "confidence": 1.0, "agreed": True}
    ann = {"level": "calm", "by": "=HYPERLINK(1)"}
    add("settled", "tone", "ann", 1, 1, False, answer=ann, final=final, **item)
    add("settled", "tone", "bob", 1, 2, False, answer={"level": "calm"}, final=final, **item)
    add("settled", "tone", "cat", 2, 1, True, answer={"level": "angry"}, final=final, **item)
    dan = {"level": "angry", "by": "a customer"}
    add("settled", "tone", "dan", 2, 2, True, answer=dan, final=final, **item)

    ann = {"sentiment": "neutral", "intensity": 3}
    add("open", "label", "ann", 1, 1, True, answer=ann, final={})
    return rows


def test_long_exports_have_one_row_per_answer(
    sessions: sessionmaker[Session], stored: tuple[str, dict[str, Driver]], tmp_path: Path
) -> None:
    name, tasks = stored
    want = expected_long(name, tasks)
    for fmt in EXPORT_FORMATS:
        out = tmp_path / f"long.{fmt}"
        report = export(sessions, name, None, fmt, out, shape="long")
        assert (report.rows, report.shape, report.answers) == (4, "long", 11)
        assert report.columns == LONG_COLUMNS
        content = out.read_bytes()
        if fmt == "csv":
            header, rows = read_csv(content)
            assert header == LONG_COLUMNS
            assert rows == [{k: cell(v) for k, v in r.items()} for r in want]
            assert rows[6]["answer.by"] == "'=HYPERLINK(1)"  # neutralised
            assert rows[6]["counted"] == "false" and rows[6]["round"] == "1"
            continue
        records = read_records(fmt, content, "answers")
        assert records == want
        assert all(list(r) == LONG_COLUMNS for r in records)
    with zipfile.ZipFile(tmp_path / "long.zip") as archive:
        assert archive.namelist() == ["answers.csv", "answers.jsonl", "manifest.json"]
        assert archive.read("answers.csv") == (tmp_path / "long.csv").read_bytes()
        manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["shape"], manifest["rows"], manifest["tasks"]) == ("long", 11, 4)
    assert manifest["columns"] == LONG_COLUMNS
    assert set(manifest["files"]) == {"answers.csv", "answers.jsonl"}


class Crash(Exception):
    pass


def crash_at(tasks: int) -> Progress:
    def progress(done: int, total: int) -> None:
        if done >= tasks:
            raise Crash(f"killed at {done}/{total}")

    return progress


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_an_interrupted_long_export_continues_where_it_stopped(
    sessions: sessionmaker[Session],
    stored: tuple[str, dict[str, Driver]],
    tmp_path: Path,
    fmt: ExportFormat,
) -> None:
    name, _ = stored
    whole = io.BytesIO()
    export(sessions, name, None, fmt, whole, shape="long")
    out = tmp_path / f"answers.{fmt}"
    with pytest.raises(Crash, match="killed at 1/4"):
        export(sessions, name, None, fmt, out, crash_at(1), page_size=1, shape="long")
    state = json.loads((tmp_path / f"answers.{fmt}.part.state").read_text())
    assert (state["shape"], state["rows"], state["answers"]) == ("long", 1, 3)
    with pytest.raises(ExportStateMismatch, match=f"unfinished {fmt} long export"):
        export(sessions, name, None, fmt, out, page_size=1)  # the wide shape: refused
    resumed: list[int] = []
    report = export(
        sessions, name, None, fmt, out, page_size=1, shape="long", on_resume=resumed.append
    )
    assert resumed == [1] and (report.rows, report.answers, report.resumed_rows) == (4, 11, 1)
    assert out.read_bytes() == whole.getvalue()


def test_long_needs_a_consensus_node(
    sessions: sessionmaker[Session], stored: tuple[str, dict[str, Driver]], tmp_path: Path
) -> None:
    plain = plain_tasks(sessions, 5)
    folder = tmp_path / "exports"
    out = folder / "answers.csv"
    with pytest.raises(NoConsensusNodes, match="has no consensus node") as refused:
        export(sessions, plain, None, "csv", out, shape="long")
    assert refused.value.code == "no_consensus_nodes"
    assert list(folder.iterdir()) == [], "nothing is written, no lock is left"
    with transaction(sessions) as session:
        with pytest.raises(NoConsensusNodes):
            check_shape(session, plain, "long")
        check_shape(session, plain, "wide")
        check_shape(session, stored[0], "long")
    # The wide shape of a pipeline without consensus nodes has no consensus columns.
    report = export(sessions, plain, None, "csv", io.BytesIO())
    assert report.columns[-1] == "tags" and report.rows == 5


def test_a_long_export_holds_one_page_at_a_time(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    name = fresh_name()
    template = consensus_tasks(name)["agreed"].batch()
    tasks = 1500
    project_fast(sessions, [padded(template, i, 3000) for i in range(tasks)], events=False)
    out = tmp_path / "answers.csv"
    tracemalloc.start()
    try:
        report = export(sessions, name, None, "csv", out, page_size=50, shape="long")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.rows, report.answers) == (tasks, 3 * tasks)
    size = out.stat().st_size
    assert size > 13_000_000  # every answer's notes are 3,000 characters
    assert peak < 4_000_000, f"peak {peak:,} bytes for a {size:,}-byte export"


def padded(batch: ProjectionBatch, i: int, pad: int) -> ProjectionBatch:
    """``batch`` as task ``p{i:05d}``, each ``label`` answer with ``pad`` characters of notes."""
    view = batch.view
    key = f"p{i:05d}"
    nodes = []
    for node in view.nodes:
        item = node.consensus
        if item is not None and node.name == "label":
            answers = [
                a.model_copy(update={"values": {**a.values, "notes": f"{i} " + "n" * pad}})
                for a in item.answers
            ]
            node = node.model_copy(
                update={"consensus": item.model_copy(update={"answers": answers})}
            )
        nodes.append(node)
    return ProjectionBatch(
        view=view.model_copy(
            update={
                "workflow_id": f"{view.pipeline}/{key}",
                "task_key": key,
                "created_at": view.created_at + timedelta(seconds=i),
                "nodes": nodes,
            }
        ),
        events=[],
        pipeline=batch.pipeline,
        blocked=batch.blocked,
    )


# --------------------------------------------------------------------------- command line


def test_the_export_command_takes_a_shape(
    store_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    url = store_sessions.kw["bind"].url.render_as_string(hide_password=False)
    name = fresh_name()
    tasks = consensus_tasks(name)
    project(store_sessions, [t.batch() for t in tasks.values()])

    out = tmp_path / "answers.csv"
    done = run_cli("export", "--pipeline", name, "--shape", "long", "--out", str(out), url=url)
    assert done.returncode == 0, done.stderr
    assert f"exported 11 answer(s) of 4 task(s) of {name} to {out} (csv, long)" in done.stdout
    header, rows = read_csv(out.read_bytes())
    assert header == LONG_COLUMNS
    assert rows == [{k: cell(v) for k, v in r.items()} for r in expected_long(name, tasks)]

    wide = tmp_path / "tasks.csv"
    done = run_cli("export", "--pipeline", name, "--out", str(wide), url=url)
    assert done.returncode == 0, done.stderr
    assert read_csv(wide.read_bytes())[0] == WIDE_COLUMNS

    plain = plain_tasks(store_sessions, 3)
    refused = run_cli(
        "export", "--pipeline", plain, "--shape", "long", "--out", str(tmp_path / "x.csv"), url=url
    )
    assert refused.returncode == 3, refused.stderr
    assert f"error: pipeline {plain!r} has no consensus node" in refused.stderr
    assert "wide shape" in refused.stderr and not (tmp_path / "x.csv").exists()
