"""``starter.py user …`` and ``starter.py api``: users and keys from the command line, and the
API served by uvicorn as an operator runs it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

import starter
from store.db import make_engine, migrate

ROOT = Path(__file__).resolve().parents[2]


async def run(argv: list[str]) -> int:
    # starter.main runs its own event loop: give it a thread.
    return await asyncio.to_thread(starter.main, argv)


async def test_user_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    migrate(make_engine(url))
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", url)

    assert (
        await run(
            [
                "user",
                "create",
                "ana",
                "--role",
                "contributor",
                "--roles",
                "labeler,reviewer",
                "--label",
                "laptop",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("cvk_") and len(key) > 40
    assert "shown once" in err and "contributor (labeler, reviewer)" in err

    assert await run(["user", "create", "root", "--role", "admin"]) == 0
    capsys.readouterr()
    assert await run(["user", "create", "x", "--role", "contributor"]) == 3
    assert "needs at least one contributor role" in capsys.readouterr().err
    assert await run(["user", "create", "y", "--role", "viewer", "--roles", "labeler"]) == 3
    capsys.readouterr()

    assert await run(["user", "key", "ana"]) == 0
    second = capsys.readouterr().out.strip()
    assert second.startswith("cvk_") and second != key
    assert await run(["user", "revoke", "ana", "--prefix", key[:12]]) == 0
    assert "revoked 1 key(s)" in capsys.readouterr().out

    assert await run(["user", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ana" in listing and "labeler,reviewer" in listing and "root" in listing
    assert f"{key[:12]}…  revoked" in listing and f"{second[:12]}…  live" in listing
    assert "laptop" in listing

    assert await run(["user", "disable", "ana"]) == 0
    assert "disabled" in capsys.readouterr().out
    assert await run(["user", "key", "ana"]) == 3
    assert "disabled" in capsys.readouterr().err
    assert await run(["user", "key", "nobody"]) == 3
    assert "no user named 'nobody'" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_api_command_serves_the_api(client: Client, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}"
    migrate(make_engine(url))
    port = free_port()
    env = {
        **os.environ,
        "CONVEYOR_DATABASE_URL": url,
        "CONVEYOR_DATA_DIR": str(tmp_path),
        "CONVEYOR_TEMPORAL_ADDRESS": client.service_client.config.target_host,
    }
    made = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        "user",
        "create",
        "root",
        "--role",
        "admin",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await made.communicate()
    key = out.decode().strip()
    assert made.returncode == 0 and key.startswith("cvk_")

    server = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        "api",
        "--port",
        str(port),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            for _ in range(300):
                try:
                    r = await http.get("/openapi.json")
                    break
                except httpx.TransportError:
                    assert server.returncode is None, "the server exited"
                    await asyncio.sleep(0.1)
            assert r.status_code == 200 and r.json()["info"]["title"] == "Conveyor API"
            assert (await http.get("/docs")).status_code == 200
            headers = {"Authorization": f"Bearer {key}"}
            r = await http.get("/api/v1/me", headers=headers)
            assert r.status_code == 200 and r.json()["role"] == "admin"
            assert (await http.get("/api/v1/me")).status_code == 401
            # Temporal is reached through the settings: an unknown pipeline is a clean 404
            r = await http.get("/api/v1/pipelines/not-applied", headers=headers)
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_pipeline"
    finally:
        server.terminate()
        await server.wait()
