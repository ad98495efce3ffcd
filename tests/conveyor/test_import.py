"""Importing CSV, JSON and JSON Lines files: rejects, header checks, re-imports, resuming."""

from __future__ import annotations

import codecs
import csv
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from conveyor.client import ConveyorClient
from conveyor.creation import RowOutcome, SeedRows, create_tasks
from conveyor.importing import (
    HeaderMismatch,
    UnreadableFile,
    csv_template,
    import_file,
)
from conveyor.pipelines import load_pipeline_file
from tests.conveyor.test_creation import idle_conveyor, seeded, unique
from tests.test_starter import run, server_env
from workflows.pipeline_messages import (
    PipelineStatus,
)

ROOT = Path(__file__).resolve().parents[2]

# Line 1 is the header. Rows 2..12: good, bad, repeated, and a record over two lines.
MIXED_CSV = """id,text,count,urgent,topics
a,first,1,yes,bug
b,second,,no,
c,,2,,
d,"two
lines",3,true,bug|ux
e,fifth,-4,,
f,sixth,x,maybe,spam
a,first,1,yes,bug
b,not the second,,,
g,seventh,7,1,"[""ux""]"

h,eighth,8,0,billing
"""
GOOD_KEYS = {"a", "b", "d", "g", "h"}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_csv_with_good_bad_and_repeated_rows_then_imported_again(
    conveyor: ConveyorClient, tmp_path: Path
) -> None:
    pipeline = unique("csv")
    source = write(tmp_path / "tickets.csv", MIXED_CSV)
    rejects = tmp_path / "tickets.rejects.csv"

    report = await import_file(conveyor, pipeline, source, key_column="id", rejects=rejects)
    assert (report.rows, report.created, report.existed) == (10, 5, 1)
    assert (report.rejected, report.errors, report.ok) == (4, 0, False)
    assert [(r.line, r.column) for r in report.rejects] == [
        (4, "text"),
        (7, "count"),
        (8, "count, urgent, topics"),
        (10, "id"),
    ]
    by_line = {r.line: r for r in report.rejects}
    assert "below the minimum" in by_line[7].reason
    assert "also the key of row 1 of this batch, with other data" in by_line[10].reason
    written = read_csv(rejects)
    assert [row["_line"] for row in written] == [str(r.line) for r in report.rejects]
    columns = ["_line", "_column", "_reason", "id", "text", "count", "urgent", "topics"]
    assert list(written[0]) == columns
    assert written[2]["topics"] == "spam" and written[2]["_column"] == "count, urgent, topics"

    view = await conveyor.task(f"{pipeline.name}/d").state()
    assert view.data == {"text": "two\nlines", "count": 3, "urgent": True, "topics": ["bug", "ux"]}
    first_rejects = rejects.read_bytes()

    for _ in range(2):
        again = await import_file(conveyor, pipeline, source, key_column="id", rejects=rejects)
        assert (again.created, again.existed, again.rejected) == (0, 6, report.rejected)
        assert rejects.read_bytes() == first_rejects

    # The rejects file, corrected, imports as it is (its _line/_column/_reason are ignored).
    fixed = [
        {**row, "text": row["text"] or "filled in", "count": "", "urgent": "", "topics": ""}
        for row in written
        if row["id"] != "b"
    ]
    with (tmp_path / "fixed.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(written[0]))
        writer.writeheader()
        writer.writerows(fixed)
    redo = await import_file(conveyor, pipeline, tmp_path / "fixed.csv", key_column="id")
    assert (redo.created, redo.rejected, redo.rejects_path) == (len(fixed), 0, None)


async def test_a_header_that_does_not_fit_is_reported_once_with_both_lists(
    conveyor: ConveyorClient, tmp_path: Path
) -> None:
    pipeline = unique("header")
    source = write(tmp_path / "bad.csv", "key,body,count,colour\nk1,hello,1,red\n")
    rejects = write(tmp_path / "bad.rejects.csv", "an earlier run's rejects\n")
    with pytest.raises(HeaderMismatch) as caught:
        await import_file(conveyor, pipeline, source, key_column="id", rejects=rejects)
    err = caught.value
    assert err.missing == ["id", "text"]
    assert err.unknown == ["key", "body", "colour"]
    assert "missing columns: id, text; unknown columns: key, body, colour" in str(err)
    assert rejects.read_text() == "an earlier run's rejects\n"  # nothing was imported
    # Optional fields may be left out; a repeated column is a mismatch too.
    write(source, "text,text\nx,y\n")
    with pytest.raises(HeaderMismatch, match="repeated columns: text"):
        await import_file(conveyor, pipeline, source)


async def test_json_array_and_json_lines(conveyor: ConveyorClient, tmp_path: Path) -> None:
    pipeline = unique("json")
    items: list[Any] = [
        {"text": "one", "count": 1, "urgent": True, "topics": ["bug"]},
        {"text": "two", "due": "2024-05-01T09:30:00"},
        {"text": 3},
        "not an object",
        {"text": "four", "colour": "red"},
        {"text": "one", "count": "1", "urgent": "yes", "topics": "bug"},  # = the first row
    ]
    # One element per line, after "[" on line 1.
    array = tmp_path / "rows.json"
    write(array, "[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n")
    report = await import_file(
        conveyor, pipeline, array, rejects=tmp_path / "rows.rejects.jsonl", batch_size=2
    )
    assert (report.rows, report.created, report.existed, report.rejected) == (6, 2, 1, 3)
    assert [(r.line, r.column) for r in report.rejects] == [(4, "text"), (5, ""), (6, "colour")]
    assert "not an object" in report.rejects[1].reason
    written = [json.loads(line) for line in (tmp_path / "rows.rejects.jsonl").open()]
    assert written[0] == {
        "_line": 4,
        "_column": "text",
        "_reason": "text: expected text, got int 3",
        "text": 3,
    }
    assert written[1]["_raw"] == "not an object"

    lines = tmp_path / "rows.jsonl"
    body = [json.dumps(i) for i in items[:3]] + ["", "{broken", json.dumps(items[4])]
    write(lines, "\n".join(body) + "\n")
    report = await import_file(conveyor, pipeline, lines, rejects=tmp_path / "l.rejects.jsonl")
    assert (report.created, report.existed, report.rejected) == (0, 2, 3)
    assert [r.line for r in report.rejects] == [3, 5, 6]
    assert "not valid JSON" in report.rejects[1].reason

    # A broken array stops at the broken element; a non-array is refused at once.
    write(array, '[{"text": "five"},\n {"text": "six" "count": 1}]')
    with pytest.raises(UnreadableFile, match="line 2: not valid JSON"):
        await import_file(conveyor, pipeline, array)
    (five,) = await create_tasks(conveyor, pipeline, [{"text": "five"}])
    assert five.outcome == RowOutcome.EXISTS  # imported before the import stopped
    write(array, '{"text": "one"}')
    with pytest.raises(UnreadableFile, match="expected '\\[' at the start"):
        await import_file(conveyor, pipeline, array)


async def test_spreadsheet_csv_with_a_bom_crlf_and_quoted_line_breaks(tmp_path: Path) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes(codecs.BOM_UTF8 + b'text,count\r\n"a\r\nb",1\r\nc,x\r\n\r\nd,2\r\n')
    report = await import_file(None, seeded(), source, dry_run=True)
    assert (report.rows, report.rejected) == (3, 1)
    assert (report.rejects[0].line, report.rejects[0].column) == (4, "count")
    source.write_bytes(b"text\ncaf\xe9\n")
    with pytest.raises(UnreadableFile, match="line 2 is not UTF-8 text"):
        await import_file(None, seeded(), source, dry_run=True)


def write_rows(path: Path, count: int, bad_every: int = 1000) -> set[int]:
    """A CSV of ``count`` rows, every ``bad_every``-th one bad; returns the bad rows' lines."""
    bad_lines = set()
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "count", "urgent", "topics"])
        for i in range(count):
            if i % bad_every == bad_every - 1:
                writer.writerow([f"row {i}", "not a number", "yes", "bug"])
                bad_lines.add(i + 2)
            else:
                writer.writerow([f"row {i} " + "x" * 80, str(i), "no", "bug|ux"])
    return bad_lines


async def test_20000_rows_are_checked_with_their_line_numbers(tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    bad_lines = write_rows(source, 20_000)
    rejects = tmp_path / "big.rejects.csv"
    report = await import_file(None, seeded(), source, rejects=rejects, dry_run=True)
    assert (report.rows, report.rejected, report.valid) == (20_000, 20, 19_980)
    assert {r.line for r in report.rejects} == bad_lines
    assert {row["_line"] for row in read_csv(rejects)} == {str(n) for n in bad_lines}
    assert all("count: 'not a number' is not a whole number" in r.reason for r in report.rejects)


async def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    peaks = []
    for rows in (1_000, 5_000):
        source = tmp_path / f"rows-{rows}.csv"
        write_rows(source, rows, bad_every=10)  # many rejects too
        tracemalloc.start()
        try:
            report = await import_file(
                None, seeded(), source, rejects=tmp_path / "r.csv", dry_run=True, batch_size=250
            )
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert report.rows == rows
    # One batch is held at a time: five times the rows, about the same peak.
    assert peaks[1] < peaks[0] * 1.25 + 64 * 1024, peaks


async def test_an_interrupted_import_resumes_after_its_last_batch(
    client: Client, tmp_path: Path
) -> None:
    conveyor = idle_conveyor(client)
    pipeline = unique("resume")
    source = tmp_path / "many.csv"
    with source.open("w", newline="", encoding="utf-8-sig") as f:  # offsets count the BOM
        writer = csv.writer(f)
        writer.writerow(["text", "count"])
        for i in range(1_200):
            writer.writerow([f"task {i}", "bad" if i % 400 == 7 else str(i)])
    state = tmp_path / "many.state"
    rejects = tmp_path / "many.rejects.csv"
    calls: list[tuple[int, int]] = []

    def stop_after_first_batch(done: int, total: int) -> None:
        calls.append((done, total))
        raise KeyboardInterrupt

    options: dict[str, Any] = {"rejects": rejects, "state_file": state, "batch_size": 400}
    with pytest.raises(KeyboardInterrupt):
        await import_file(conveyor, pipeline, source, progress=stop_after_first_batch, **options)
    saved = json.loads(state.read_text())
    assert (saved["rows"], saved["created"], saved["rejected"]) == (400, 399, 1)
    assert calls[0][1] == source.stat().st_size and 0 < calls[0][0] < calls[0][1]

    resumed_at: list[tuple[int, int]] = []
    report = await import_file(
        conveyor, pipeline, source, on_resume=lambda r, n: resumed_at.append((r, n)), **options
    )
    assert resumed_at == [(400, 401)]
    assert report.resumed_rows == 400
    assert (report.rows, report.created, report.existed, report.rejected) == (1_200, 1_197, 0, 3)
    assert len(report.rejects) == 2  # this run's; the file has all of them
    assert [row["_line"] for row in read_csv(rejects)] == ["9", "409", "809"]
    assert not state.exists()  # complete: nothing to resume

    # Without the state file everything is done again, and nothing is created twice.
    report = await import_file(conveyor, pipeline, source, rejects=rejects, batch_size=5_000)
    assert (report.created, report.existed, report.rejected) == (0, 1_197, 3)


async def test_a_json_import_resumes_by_counting_elements(
    conveyor: ConveyorClient, tmp_path: Path
) -> None:
    pipeline = unique("json-resume")
    source = write(
        tmp_path / "rows.json", json.dumps([{"text": f"t{i}"} for i in range(5)], indent=1)
    )
    state = tmp_path / "rows.state"

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await import_file(conveyor, pipeline, source, state_file=state, batch_size=2, progress=stop)
    report = await import_file(conveyor, pipeline, source, state_file=state, batch_size=2)
    assert (report.resumed_rows, report.rows, report.created, report.existed) == (2, 5, 5, 0)


async def test_a_state_file_for_another_file_is_ignored(
    conveyor: ConveyorClient, tmp_path: Path
) -> None:
    pipeline = unique("stale")
    state = tmp_path / "s.state"
    first = write(tmp_path / "a.csv", "text\none\ntwo\nthree\n")

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await import_file(conveyor, pipeline, first, state_file=state, batch_size=1, progress=stop)
    write(first, "text\nuno\ndos\n")  # the file changed: start over
    report = await import_file(conveyor, pipeline, first, state_file=state, batch_size=1)
    assert (report.resumed_rows, report.rows, report.created) == (0, 2, 2)


def test_templates_are_valid_csv_with_a_valid_example_row() -> None:
    pipelines = [seeded(), *(load_pipeline_file(p) for p in sorted(ROOT.glob("examples/*.yaml")))]
    for pipeline in pipelines:
        for key_column in (None, "id"):
            text = csv_template(pipeline, key_column)
            header, example = list(csv.reader(text.splitlines()))
            checker = SeedRows(pipeline, key_column)
            assert header == checker.columns()
            prepared = checker.prepare(dict(zip(header, example, strict=True)))
            assert prepared.ok, (pipeline.name, prepared.errors)
    assert csv_template(seeded(), "id").splitlines() == [
        "id,text,count,score,urgent,due,topics,order,stars",
        "row-1,Some text to work on.,3,1.5,true,2024-05-01T09:30:00+00:00,billing,a|b|c,3",
    ]


async def test_import_and_template_on_the_command_line(
    temporal_env: WorkflowEnvironment, conveyor: ConveyorClient, tmp_path: Path
) -> None:
    env = server_env(temporal_env, conveyor)
    pipeline = unique("cli")
    pipeline_file = write(tmp_path / "p.json", pipeline.model_dump_json())
    code, out, _ = await run("task", "template", "--pipeline", str(pipeline_file), env=env)
    assert code == 0 and out.startswith("text,count,score,")

    source = write(tmp_path / "data.csv", MIXED_CSV)
    args = ["task", "import", "--pipeline", str(pipeline_file), "--file", str(source)]
    code, out, err = await run(*args, "--key-column", "id", env=env)
    assert code == 1, err
    assert f"into {pipeline.name}: created 5, already there 1, rejected 4" in out
    assert str(tmp_path / "data.rejects.csv") in out
    code, out, _ = await run(*args, "--key-column", "id", "--concurrency", "4", env=env)
    assert code == 1 and "created 0, already there 6, rejected 4" in out

    good = write(tmp_path / "good.csv", "id,text\nz1,fine\n")
    code, out, _ = await run(*args[:-1], str(good), "--key-column", "id", "--paused", env=env)
    assert code == 0 and "created 1, already there 0, rejected 0" in out
    view = await conveyor.task(f"{pipeline.name}/z1").state()
    assert view.status == "Paused"

    code, _, err = await run(*args, env=env)  # no --key-column: "id" is an unknown column
    assert code == 3
    assert err.count("does not fit") == 1 and "unknown columns: id" in err


async def test_import_by_pipeline_name_on_the_command_line(
    temporal_env: WorkflowEnvironment, conveyor: ConveyorClient, tmp_path: Path
) -> None:
    env = server_env(temporal_env, conveyor)
    pipeline = unique("named")
    await conveyor.apply_pipeline(pipeline)  # Draft: a template and a dry run, no tasks
    code, out, _ = await run("task", "template", "--pipeline", pipeline.name, env=env)
    assert code == 0 and out.startswith("text,count,")
    source = write(tmp_path / "rows.jsonl", '{"text": "one"}\n{"text": ""}\n')
    args = ["task", "import", "--pipeline", pipeline.name, "--file", str(source)]
    code, out, _ = await run(*args, "--dry-run", env=env)
    assert code == 1 and "2 row(s), 1 valid, rejected 1" in out
    assert str(tmp_path / "rows.rejects.jsonl") in out
    code, _, err = await run(*args, env=env)
    assert code == 3 and "takes no new tasks" in err

    await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE)
    code, out, _ = await run(*args, env=env)
    assert code == 1 and "created 1, already there 0, rejected 1" in out
    # The client library takes the name too, with the same per-row results.
    (again,) = await conveyor.create_tasks(pipeline.name, [{"text": "one"}])
    assert again.outcome == RowOutcome.EXISTS
