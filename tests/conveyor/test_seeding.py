"""Infinite seeding: file, generator and model sources, pacing, restarts, the command line.

Every test runs the production worker (``build_worker``) against the dev server and the session
store; pipelines get fresh names, so the store's counts are per test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from activities.llm import OFFLINE_LABEL, LlmSettings
from activities.seeding import SeedingActivities, parse_llm_rows, read_rows
from conveyor.cli.common import CliError
from conveyor.cli.seed import register, seeder_handle, start_seeder
from conveyor.client import ConveyorClient
from store.db import transaction
from store.models import TaskRow
from tests.support.actors import claim, rid, submit
from tests.support.fake_openai import FakeOpenAI
from worker import build_worker
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import (
    TaskStatus,
)
from workflows.pipeline_messages import (
    PipelineStatus,
)
from workflows.seeder import SeederWorkflow
from workflows.seeder_messages import (
    SEED_BATCH_ACTIVITY,
    FileSource,
    GeneratorSource,
    LlmSource,
    SeedBatch,
    SeedBatchResult,
    SeedCursor,
    SeederInput,
    SeederProgress,
    SeederState,
    StopSeeding,
    seeder_workflow_id,
)

FAST = {"poll_seconds": 0.2, "recheck_seconds": 0.3}


# --------------------------------------------------------------------------- generators
# Referenced by import path, as an operator's own module would be.


def numbers() -> Iterator[dict[str, Any]]:
    """Endless, deterministic; every fourth item has a column the pipeline does not know."""
    i = 0
    while True:
        yield {"text": f"item {i}", "bogus": 1} if i % 4 == 3 else {"text": f"item {i}"}
        i += 1


def five(start: int = 0) -> Iterator[dict[str, Any]]:
    """Five items; resumes at ``start`` itself."""
    for i in range(start, 5):
        yield {"text": f"item {i}"}


def plain() -> Iterator[dict[str, Any]]:
    i = 0
    while True:
        yield {"text": f"item {i}"}
        i += 1


# --------------------------------------------------------------------------- helpers


class FlakySeeding(SeedingActivities):
    """Each batch's first try creates part of its tasks and then dies, as a worker losing its
    connection would; the retry starts again from the same cursor."""

    partial_tries = 0

    @activity.defn(name=SEED_BATCH_ACTIVITY)
    async def seed_batch(self, request: SeedBatch) -> SeedBatchResult:
        if activity.info().attempt == 1 and request.count > 1:
            FlakySeeding.partial_tries += 1
            await super().seed_batch(request.model_copy(update={"count": request.count // 2}))
            raise ApplicationError("connection lost mid-batch")
        return await super().seed_batch(request)


def trivial(name: str) -> Pipeline:
    """start -> label (one predefined text, one choice) -> end: finished by one submit."""
    return validate_pipeline(
        {
            "name": name,
            "nodes": [
                {"name": "start", "kind": "start", "next": ["label"]},
                {
                    "name": "label",
                    "kind": "subtask",
                    "fields": [
                        {"name": "text", "type": "short_text", "source": "predefined"},
                        {"name": "label", "type": "select", "options": ["yes", "no"]},
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


async def active_pipeline(conveyor: ConveyorClient, prefix: str, *, activate: bool = True) -> str:
    name = f"{prefix}-{rid()[:8]}"
    await conveyor.apply_pipeline(trivial(name))
    if activate:
        await conveyor.set_pipeline_status(name, PipelineStatus.ACTIVE)
    return name


def stored(sessions: sessionmaker[Session], pipeline: str) -> dict[str, tuple[str, str]]:
    """The pipeline's tasks in the store: key -> (status, text)."""
    with transaction(sessions) as session:
        rows = session.execute(
            select(TaskRow.task_key, TaskRow.status, TaskRow.data).where(
                TaskRow.pipeline_name == pipeline
            )
        )
        return {key: (status, data.get("text", "")) for key, status, data in rows}


async def until(
    check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 20
) -> None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def start(
    conveyor: ConveyorClient, pipeline: str, source: Any, **options: Any
) -> WorkflowHandle[SeederWorkflow, SeederProgress]:
    request = SeederInput(pipeline=pipeline, source=source, **{**FAST, **options})
    return await start_seeder(conveyor, request)


async def progress(handle: WorkflowHandle[SeederWorkflow, SeederProgress]) -> SeederProgress:
    return await handle.query(SeederWorkflow.progress)


async def finish(conveyor: ConveyorClient, pipeline: str, key: str) -> None:
    task = conveyor.task(f"{pipeline}/{key}")
    token = await claim(task, "ana", [], "label")
    await submit(task, "ana", "label", token, {"label": "yes"})


def file_keys(*positions: tuple[int, int]) -> set[str]:
    return {f"seed-c{c}-r{r}" for c, r in positions}


# --------------------------------------------------------------------------- tests


async def test_file_source_keeps_n_in_flight_and_cycles(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    name = await active_pipeline(conveyor, "seed-file")
    data = tmp_path / "rows.csv"
    data.write_text("text\n" + "".join(f"row {i}\n" for i in range(7)), encoding="utf-8")
    handle = await start(conveyor, name, FileSource(path=str(data)), in_flight=5, batch_size=3)

    first = file_keys(*((0, r) for r in range(5)))
    await until(lambda: set(stored(store_sessions, name)) == first, "5 tasks in flight")
    await asyncio.sleep(0.6)  # a few rounds later: still five, nothing more
    assert set(stored(store_sessions, name)) == first
    assert stored(store_sessions, name)["seed-c0-r3"][1] == "row 3"

    for key in ("seed-c0-r0", "seed-c0-r1", "seed-c0-r2"):
        await finish(conveyor, name, key)
    # Topped up with the file's last two rows, then the first row of the second pass.
    topped = first | file_keys((0, 5), (0, 6), (1, 0))
    await until(lambda: set(stored(store_sessions, name)) == topped, "the seeder to top up")
    rows = stored(store_sessions, name)
    assert rows["seed-c1-r0"][1] == "row 0" and rows["seed-c0-r6"][1] == "row 6"
    assert sum(1 for status, _ in rows.values() if status != TaskStatus.FINISHED) == 5

    # A stop the seeder cannot read is refused, and the seeder runs on.
    for bad in ({"by": 5}, {"reason": "x", "surprise": 1}, [1], None):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("stop", bad, result_type=SeederProgress)
        assert isinstance(refused.value.cause, ApplicationError)
        assert "not a valid stop command" in refused.value.cause.message
        assert refused.value.cause.non_retryable
    assert not (await progress(handle)).done
    final = await handle.execute_update(
        "stop", StopSeeding(by="ops", reason="done"), result_type=SeederProgress
    )
    assert final.state == SeederState.STOPPED and final.note == "stopped by ops: done"
    assert (final.created, final.existed, final.invalid) == (8, 0, 0)
    assert final.cursor == SeedCursor(cycle=1, row=1)
    assert await handle.result() == final
    assert (await progress(handle)).done


async def test_generator_with_max_tasks_skips_invalid_items(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session]
) -> None:
    name = await active_pipeline(conveyor, "seed-gen")
    handle = await start(
        conveyor,
        name,
        GeneratorSource(target=f"{__name__}:numbers"),
        rate_per_minute=6000,
        batch_size=4,
        max_tasks=10,
    )
    async with asyncio.timeout(20):
        summary = await handle.result()

    assert summary.state == SeederState.COMPLETED
    assert (summary.created, summary.existed, summary.invalid) == (10, 0, 3)
    assert summary.cursor.index == 13  # items 3, 7 and 11 were skipped
    assert all("unknown seed field 'bogus'" in r for r in summary.last_invalid)
    valid = [i for i in range(13) if i % 4 != 3]
    await until(lambda: len(stored(store_sessions, name)) == 10, "10 tasks in the store")
    assert {k: text for k, (_, text) in stored(store_sessions, name).items()} == {
        f"seed-g{i}": f"item {i}" for i in valid
    }


async def test_generator_that_ends_and_a_file_without_valid_rows(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    name = await active_pipeline(conveyor, "seed-end")
    handle = await start(
        conveyor,
        name,
        GeneratorSource(target=f"{__name__}:five"),
        in_flight=100,
        batch_size=2,
    )
    async with asyncio.timeout(20):
        summary = await handle.result()
    assert summary.state == SeederState.EXHAUSTED and summary.created == 5
    assert summary.cursor.index == 5

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": "typo"}\n\n[1, 2]\n', encoding="utf-8")
    other = await active_pipeline(conveyor, "seed-bad")
    handle = await start(conveyor, other, FileSource(path=str(bad)), in_flight=3)
    async with asyncio.timeout(20):
        summary = await handle.result()
    assert summary.state == SeederState.FAILED
    assert summary.note is not None and "no row of" in summary.note
    assert "not an object" in summary.note
    assert stored(store_sessions, other) == {}


async def test_llm_source_with_the_offline_model(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session]
) -> None:
    name = await active_pipeline(conveyor, "seed-llm")
    source = LlmSource(
        model="conveyor/offline",
        prompt="Write {{ n }} short support messages for {{ pipeline }} (batch {{ call }}).",
        rows_per_call=3,
    )
    handle = await start(conveyor, name, source, in_flight=4, batch_size=10)
    first = {"seed-l0-0", "seed-l0-1", "seed-l0-2", "seed-l1-0"}
    await until(lambda: set(stored(store_sessions, name)) == first, "4 generated tasks")
    texts = {k: text for k, (_, text) in stored(store_sessions, name).items()}
    assert all(text.startswith(OFFLINE_LABEL) for text in texts.values())
    assert "seed row 0.1" in texts["seed-l0-1"] and "seed row 1.0" in texts["seed-l1-0"]
    now = await progress(handle)
    assert now.llm.calls == 2 and now.llm.cost_usd == 0.0
    assert [p.key for p in now.cursor.pending] == ["seed-l1-1", "seed-l1-2"]

    # Two finish: the rows left over from the second call fill their places, no new call.
    await finish(conveyor, name, "seed-l0-0")
    await finish(conveyor, name, "seed-l0-1")
    topped = first | {"seed-l1-1", "seed-l1-2"}
    await until(lambda: set(stored(store_sessions, name)) == topped, "the leftovers used")
    final = await handle.execute_update("stop", StopSeeding(), result_type=SeederProgress)
    assert final.llm.calls == 2 and final.cursor.pending == []
    assert (final.created, final.invalid) == (6, 0)


async def test_waits_while_the_pipeline_takes_no_tasks(
    conveyor: ConveyorClient, store_sessions: sessionmaker[Session]
) -> None:
    name = await active_pipeline(conveyor, "seed-draft", activate=False)
    handle = await start(conveyor, name, GeneratorSource(target=f"{__name__}:plain"), in_flight=2)

    async def waiting() -> bool:
        p = await progress(handle)
        return p.state == SeederState.WAITING and "Draft" in (p.note or "")

    await until(waiting, "the seeder to wait for the Draft pipeline")
    assert stored(store_sessions, name) == {}
    await conveyor.set_pipeline_status(name, PipelineStatus.ACTIVE)
    await until(lambda: len(stored(store_sessions, name)) == 2, "tasks once Active")
    now = await progress(handle)
    assert now.state == SeederState.RUNNING and now.note is None
    await handle.cancel()  # cancelling ends it too
    async with asyncio.timeout(10):
        summary = await handle.result()
    assert summary.state == SeederState.STOPPED and summary.note == "cancelled"
    assert summary.created == 2


async def test_restarted_mid_way_creates_nothing_twice_and_skips_nothing(
    client: Client,
    fake_llm: FakeOpenAI,
    store_sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task_queue = f"seed-restart-{uuid.uuid4().hex[:8]}"
    conveyor = ConveyorClient(client, task_queue, update_timeout=20)
    llm = LlmSettings(api_base=fake_llm.base_url, api_key="test-key")
    FlakySeeding.partial_tries = 0
    monkeypatch.setattr("worker.SeedingActivities", FlakySeeding)
    worker_a = build_worker(
        client, task_queue, sessions=store_sessions, llm=llm, shutdown_grace=timedelta(seconds=5)
    )
    monkeypatch.undo()

    async with worker_a:
        name = await active_pipeline(conveyor, "seed-restart")
        handle = await start(
            conveyor,
            name,
            GeneratorSource(target=f"{__name__}:plain"),
            in_flight=100,
            batch_size=5,
            max_tasks=40,
            rounds_per_run=3,
        )

        async def some_done() -> bool:
            seen.append(await progress(handle))
            return seen[-1].taken >= 10

        seen: list[SeederProgress] = []
        await until(some_done, "worker A to seed some tasks")
    # Worker A shut down gracefully mid-way; worker B (the production worker) takes over.
    assert 10 <= seen[-1].taken < 40 and FlakySeeding.partial_tries >= 2
    async with build_worker(client, task_queue, sessions=store_sessions, llm=llm):
        async with asyncio.timeout(30):
            summary = await handle.result()
        await until(lambda: len(stored(store_sessions, name)) == 40, "40 tasks in the store")

    assert summary.state == SeederState.COMPLETED and summary.runs > 1
    assert summary.taken == 40 and summary.existed >= 2 and summary.invalid == 0
    assert summary.cursor.index == 40
    # One task per position, each holding that position's item: no duplicates, no gaps.
    assert {k: text for k, (_, text) in stored(store_sessions, name).items()} == {
        f"seed-g{i}": f"item {i}" for i in range(40)
    }
    replayer = Replayer(workflows=[SeederWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await handle.fetch_history())


async def test_command_line_start_status_stop_and_resume(
    client: Client,
    conveyor: ConveyorClient,
    store_sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CONVEYOR_TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setenv("CONVEYOR_TASK_QUEUE", conveyor.task_queue)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="group", required=True))

    async def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(list(argv))
        code = await args.handler(args)
        return code, capsys.readouterr().out

    name = await active_pipeline(conveyor, "seed-cli")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(5)))

    code, out = await run(
        "seed", "start", "--pipeline", name, "--file", str(rows), "--in-flight", "3"
    )
    assert code == 0 and out.strip() == seeder_workflow_id(name)
    with pytest.raises(CliError, match="already running"):
        await run("seed", "start", "--pipeline", name, "--file", str(rows), "--in-flight", "3")
    await until(lambda: len(stored(store_sessions, name)) == 3, "3 tasks")

    code, out = await run("seed", "status", name)
    assert code == 0 and f"seeder:{name}: running: created 3, existed 0, invalid 0" in out
    code, out = await run("seed", "stop", name, "--reason", "enough", "--as", "ops")
    assert code == 0 and "stopped: created 3" in out and "stopped by ops: enough" in out
    code, out = await run("seed", "stop", name, "--json")
    assert json.loads(out)["state"] == "stopped"

    # Started again with the same file: it carries on at row 3, creating nothing twice.
    code, _ = await run(
        "seed", "start", "--pipeline", name, "--file", str(rows), "--in-flight", "4"
    )
    assert code == 0
    await until(lambda: len(stored(store_sessions, name)) == 4, "a fourth task")
    code, out = await run("seed", "stop", name, "--json")
    stopped = json.loads(out)
    assert (stopped["created"], stopped["existed"]) == (1, 0)
    assert set(stored(store_sessions, name)) == file_keys(*((0, r) for r in range(4)))

    with pytest.raises(CliError, match="its own --key-prefix"):
        await run("seed", "start", "--pipeline", name, "--generator", f"{__name__}:plain",
                  "--rate", "60")  # fmt: skip
    code, _ = await run("seed", "start", "--pipeline", name, "--generator", f"{__name__}:plain",
                        "--key-prefix", "gen", "--rate", "6000", "--max-tasks", "2")  # fmt: skip
    async with asyncio.timeout(10):
        done = await seeder_handle(conveyor, name).result()
    assert done.state == SeederState.COMPLETED and done.key_prefix == "gen"
    # The file seeder, again: it carries on after the last seeder with its key prefix.
    code, _ = await run(
        "seed", "start", "--pipeline", name, "--file", str(rows), "--in-flight", "7"
    )
    await until(lambda: "seed-c0-r4" in stored(store_sessions, name), "the file's last row")
    await run("seed", "stop", name)
    assert len(stored(store_sessions, name)) == 7
    with pytest.raises(CliError, match="no seeder"):
        await run("seed", "status", f"nope-{rid()[:6]}")
    with pytest.raises(CliError, match="no pipeline named"):
        await run("seed", "start", "--pipeline", f"nope-{rid()[:6]}", "--file", str(rows),
                  "--in-flight", "1")  # fmt: skip


def test_reading_files_and_model_replies(tmp_path: Path) -> None:
    csv_file = tmp_path / "a.csv"
    csv_file.write_text('text,n\n"two\nlines",1\nx,2,extra\n\ny,\n', encoding="utf-8")
    assert read_rows(csv_file) == [
        {"text": "two\nlines", "n": "1"},
        "the row has more cells than the header has columns",
        {"text": "y", "n": ""},
    ]
    with pytest.raises(ApplicationError, match=r"use a \.csv, \.jsonl or \.json file"):
        read_rows(tmp_path / "rows.txt")
    with pytest.raises(ApplicationError, match="readable by every worker"):
        read_rows(tmp_path / "missing.csv")

    assert parse_llm_rows('{"rows": [{"text": "a"}, {"text": "b"}]}', 1) == [{"text": "a"}]
    assert parse_llm_rows('[{"text": "a"}]', 5) == [{"text": "a"}]
    assert "not JSON" in str(parse_llm_rows("```json\n[]\n```", 5))
    assert "no text" in str(parse_llm_rows("", 5))
    with pytest.raises(ValueError, match="exactly one of in_flight and rate_per_minute"):
        SeederInput(pipeline="p", source=FileSource(path="x.csv"))
