"""The HTTP server: the API and the web app in one FastAPI application, and ``starter.py api``.

The API (:mod:`conveyor.api`) and the web app (:mod:`conveyor.web`) never import each other;
this module, above both, puts them together. Serve it with uvicorn::

    uvicorn --factory conveyor.server:create_app

or ``python starter.py api --host 127.0.0.1 --port 8000``, which also trusts proxy headers
only from ``CONVEYOR_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from fastapi import FastAPI

from conveyor import web
from conveyor.api import create_api
from conveyor.api.cli import register as register_users
from conveyor.http_common import ApiDeps
from conveyor.settings import Settings

if TYPE_CHECKING:
    import uvicorn

__all__ = ["ApiDeps", "create_app", "register", "server_config"]


def create_app(deps: ApiDeps | None = None) -> FastAPI:
    """The API (under ``/api/v1``) and the web app; ``deps=None`` connects from ``CONVEYOR_*``
    settings when the server starts."""
    app = create_api(deps)
    web.mount(app)
    return app


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``user`` (:mod:`conveyor.api.cli`) and ``api`` to the CLI's subcommands."""
    register_users(sub)
    api = sub.add_parser("api", help="serve the HTTP API (and the web app) with uvicorn")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(handler=cmd_api)


def server_config(host: str, port: int) -> uvicorn.Config:
    """The uvicorn server of ``starter.py api``: proxy headers only from
    ``CONVEYOR_TRUSTED_PROXIES``."""
    import uvicorn

    return uvicorn.Config(
        create_app(),
        host=host,
        port=port,
        log_level="info",
        **Settings.from_env().uvicorn_proxy_options(),
    )


async def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    config = server_config(args.host, args.port)
    print(
        f"Conveyor API on http://{args.host}:{args.port}/api/v1 "
        f"(OpenAPI: /openapi.json, docs: /docs)",
        file=sys.stderr,
        flush=True,
    )
    await uvicorn.Server(config).serve()
    return 0
