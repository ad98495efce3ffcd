"""``./scripts/dev`` as a new user and an operator run it: options, taken ports, its own
Temporal failing, and a banner whose commands work pasted into a new terminal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.test_starter import free_port

ROOT = Path(__file__).resolve().parent.parent
EXIT_UNAVAILABLE = 4


def clean_env() -> dict[str, str]:
    """This environment without CONVEYOR_* settings (dev must be told through options)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}


async def start_dev(*args: str, cwd: Path = ROOT) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "dev"),
        *args,
        cwd=cwd,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


async def read_banner(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    banner = ""
    async with asyncio.timeout(90):
        while "Press Ctrl-C to stop." not in banner:
            line = await proc.stdout.readline()
            if not line:
                break
            banner += line.decode()
    return banner


async def stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(30):
        return await proc.wait()


async def dev_exits(*args: str) -> tuple[int, str, float]:
    """Run ``./scripts/dev`` expecting it to stop by itself; its code, output and seconds."""
    started = time.monotonic()
    proc = await start_dev(*args)
    try:
        async with asyncio.timeout(60):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
    return proc.returncode or 0, out.decode(), time.monotonic() - started


def pasted(command: str, cwd: Path) -> tuple[int, str]:
    """Run ``command`` as a new terminal would: a clean environment, another directory."""
    import subprocess

    done = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={os.environ['HOME']}", "bash", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


@pytest.mark.slow
async def test_dev_with_options_busy_ports_and_pasted_commands(tmp_path: Path) -> None:
    temporal, ui, web, metrics, app_metrics = (free_port() for _ in range(5))
    ports = {
        "--port": temporal,
        "--ui-port": ui,
        "--web-port": web,
        "--metrics-port": metrics,
        "--app-metrics-port": app_metrics,
    }
    options = [x for option, port in ports.items() for x in (option, str(port))]
    proc = await start_dev("--no-demo", "--ephemeral", *options, "--data-dir", str(tmp_path))
    try:
        banner = await read_banner(proc)
        assert "Conveyor is running." in banner, banner
        assert f"127.0.0.1:{temporal}   (started by dev; state kept in memory)" in banner
        assert f"http://127.0.0.1:{ui}/namespaces/default/workflows" in banner
        assert f"Web app            http://127.0.0.1:{web}/" in banner
        assert f"SDK metrics :{metrics}, app metrics :{app_metrics}" in banner
        # The worker serves worker.py's two metrics endpoints.
        assert "temporal_" in await asyncio.to_thread(get, f"http://127.0.0.1:{metrics}/metrics")
        assert "conveyor_store_up 1" in await asyncio.to_thread(
            get, f"http://127.0.0.1:{app_metrics}/metrics"
        )

        # Every command the banner prints works pasted into a new terminal elsewhere.
        lines = banner.split("in another terminal (from any directory):\n")[1].splitlines()
        export = lines[0].strip()
        assert export.startswith("export ")
        assert f"CONVEYOR_TEMPORAL_ADDRESS=127.0.0.1:{temporal}" in export
        assert "CONVEYOR_DATABASE_URL=sqlite:///" in export
        commands = [line.strip() for line in lines[1:] if "starter.py" in line]
        assert commands and all(c.startswith(f"{ROOT}/.venv/bin/python ") for c in commands)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        for command in commands:
            code, out = await asyncio.to_thread(pasted, f"{export}\n{command}", elsewhere)
            assert code == 0, (command, out)
        code, out = await asyncio.to_thread(
            pasted, f"{export}\n{commands[0].replace('task list', 'pipeline list')}", elsewhere
        )
        assert code == 0 and "no pipelines yet" in out, out
        assert list(elsewhere.iterdir()) == []

        # Each port taken: a second dev stops at once, naming the port and the option, and
        # attaches to nothing.
        others = {option: free_port() for option in ports}
        for option, port in ports.items():
            args = {**others, option: port}
            code, out, took = await dev_exits(
                "--no-demo",
                "--ephemeral",
                "--data-dir",
                str(tmp_path / "second"),
                *[x for o, p in args.items() for x in (o, str(p))],
            )
            assert code == EXIT_UNAVAILABLE, out
            assert f"port {port} (" in out and f"choose another with {option}" in out, out
            assert "Conveyor is running" not in out
            assert took < 30, f"{option}: {took:.1f}s"
    finally:
        code = await stop(proc)
    assert code == 0


async def test_dev_names_the_temporal_address_option(tmp_path: Path) -> None:
    taken = free_port()
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        code, out, _ = await dev_exits(
            "--no-demo",
            "--ephemeral",
            "--data-dir",
            str(tmp_path),
            "--port",
            str(taken),
            "--web-port",
            str(free_port()),
            "--metrics-port",
            "0",
            "--app-metrics-port",
            "0",
        )
    assert code == EXIT_UNAVAILABLE
    assert f"port {taken} (the Temporal frontend) is already in use" in out
    assert f"--temporal-address 127.0.0.1:{taken}" in out


async def test_dev_says_when_its_own_temporal_fails(tmp_path: Path) -> None:
    (tmp_path / "temporal.db").mkdir()  # the dev server cannot open its database
    code, out, _ = await dev_exits(
        "--no-demo",
        "--data-dir",
        str(tmp_path),
        "--port",
        str(free_port()),
        "--web-port",
        str(free_port()),
        "--metrics-port",
        "0",
        "--app-metrics-port",
        "0",
    )
    assert code == EXIT_UNAVAILABLE, out
    assert "the Temporal dev server exited with code" in out
    assert "unable to open database file" in out
    assert "Conveyor is running" not in out


async def test_dev_attaches_only_when_told(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = temporal_env.client.service_client.config.target_host
    proc = await start_dev(
        "--no-demo",
        "--ephemeral",
        "--temporal-address",
        address,
        "--data-dir",
        str(tmp_path),
        "--web-port",
        str(free_port()),
        "--metrics-port",
        "0",
        "--app-metrics-port",
        "0",
    )
    try:
        banner = await read_banner(proc)
        assert f"{address}   (not started by dev: --temporal-address)" in banner, banner
        assert re.search(rf"export .*CONVEYOR_TEMPORAL_ADDRESS={re.escape(address)}", banner)
    finally:
        assert await stop(proc) == 0


@pytest.mark.parametrize("option", ["--no-demo", "--ephemeral"])
def test_scripts_pass_options_through(option: str) -> None:
    """``scripts/_venv.sh`` takes the extras from CONVEYOR_EXTRAS, never from the options."""
    import subprocess

    done = subprocess.run(
        ["bash", "-c", f'set -- {option}; source scripts/_venv.sh; echo "ok $*"'],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip().endswith(f"ok {option}"), done.stderr
