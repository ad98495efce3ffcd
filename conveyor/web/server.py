"""Serving the app from inside another asyncio program (``starter.py dev``, the browser tests).

uvicorn's ``Server.serve`` installs its own SIGINT/SIGTERM handlers, which would take Ctrl-C
away from the program that embeds it; :class:`EmbeddedServer` leaves signals to its host.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator, Sequence
from dataclasses import replace

import uvicorn
from fastapi import FastAPI

from conveyor.settings import Settings


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that runs as a task of the host's event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def start_server(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    trusted_proxies: Sequence[str] | None = None,
) -> tuple[EmbeddedServer, asyncio.Task[None]]:
    """Start serving ``app`` in the running loop; returns once it accepts connections.

    Stop it with ``server.should_exit = True`` and await the task. ``trusted_proxies``: whose
    ``X-Forwarded-*`` headers to believe (default: ``CONVEYOR_TRUSTED_PROXIES``, else nobody's).

    Raises:
        RuntimeError: the server could not start (e.g. the port is taken).
    """
    settings = Settings.from_env()
    if trusted_proxies is not None:
        settings = replace(settings, trusted_proxies=tuple(trusted_proxies))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        **settings.uvicorn_proxy_options(),
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            # uvicorn exits (SystemExit) when it cannot bind or start up.
            with contextlib.suppress(BaseException):
                task.result()
            raise RuntimeError(f"the web app could not start on {host}:{port}")
        await asyncio.sleep(0.02)
    return server, task
