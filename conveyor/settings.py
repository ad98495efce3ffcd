"""Runtime settings from the environment (prefix ``CONVEYOR_``) and the Temporal connection."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from workflows.options import DEFAULT_TASK_QUEUE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this code runs from (where ``starter.py`` and ``pyproject.toml`` live)."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"CONVEYOR_{name}")
    return value if value not in (None, "") else default


def _flag(name: str) -> bool:
    value = (_env(name) or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"CONVEYOR_{name}={value!r} is not a boolean; use true or false")


def _port(name: str, default: int) -> int | None:
    """A TCP port; ``0`` turns the listener off (``None``)."""
    value = (_env(name) or str(default)).strip()
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"CONVEYOR_{name}={value!r} is not a port; use 1-65535, or 0 for off")
    return port or None


def _count(name: str, default: int | None, *, minimum: int) -> int | None:
    raw = _env(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"CONVEYOR_{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ValueError(f"CONVEYOR_{name}={value} is too small: use {minimum} or more")
    return value


def _proxies(name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (``10.0.0.0/8``), or ``*`` for any."""
    found = tuple(p.strip() for p in (_env(name) or "").split(",") if p.strip())
    for proxy in found:
        if proxy == "*":
            continue
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(
                f"CONVEYOR_{name}: {proxy!r} is not an IP address or network; list the "
                "proxies' addresses, e.g. 127.0.0.1,10.0.0.0/8"
            ) from None
    return found


def resolve_data_dir() -> tuple[Path, str]:
    """The data directory and why it is that one.

    ``CONVEYOR_DATA_DIR`` when set (relative to the current directory); else, in a checkout of
    the project, its ``data/`` folder, whatever the current directory (``./scripts/dev`` keeps
    its state there, and the CLI run from elsewhere finds the same store); else ``./data``.
    Nothing is created.
    """
    configured = _env("DATA_DIR")
    if configured:
        return Path(configured), "set by CONVEYOR_DATA_DIR"
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "starter.py").is_file():
        return PROJECT_ROOT / "data", "the project's data directory (CONVEYOR_DATA_DIR is unset)"
    return Path("data").absolute(), "./data (CONVEYOR_DATA_DIR is unset, no project checkout)"


def store_url() -> str:
    """The store's URL: ``CONVEYOR_DATABASE_URL``, else ``conveyor.db`` in :func:`resolve_data_dir`.

    Unlike ``store.db.database_url`` it creates nothing (for commands that only read).
    """
    return _env("DATABASE_URL") or f"sqlite:///{resolve_data_dir()[0] / 'conveyor.db'}"


@dataclass(frozen=True)
class Settings:
    """Where Temporal is and how to reach it. Secrets are read here and nowhere else."""

    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    tls: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    temporal_api_key: str | None = field(default=None, repr=False)
    data_dir: Path = Path("data")
    update_timeout_seconds: float = 30.0
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = 9464
    """The SDK's Prometheus metrics (``temporal_*``); ``None``: off."""
    app_metrics_port: int | None = 9465
    """Conveyor's Prometheus metrics (``conveyor_*``, from the store); ``None``: off."""
    max_cached_workflows: int = 1000
    """Tasks a worker keeps in memory (about 0.3-0.7 MiB each); others are replayed from their
    history when touched."""
    max_concurrent_workflow_tasks: int | None = None
    """Workflow tasks a worker runs at once (the SDK's default when ``None``). On a small
    machine 10-20 keeps a burst of new tasks waiting on the server instead of timing out inside
    the worker."""
    trusted_proxies: tuple[str, ...] = ()
    """The reverse proxies in front of the web app and API (IP addresses or networks, ``*`` for
    any) whose ``X-Forwarded-Proto`` and ``X-Forwarded-For`` are believed. Empty (the default):
    nobody's, not even 127.0.0.1's, so a local client cannot pose as HTTPS (the sign-in cookie
    is ``Secure`` only over HTTPS)."""

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``CONVEYOR_*`` variables (see the README's configuration table)."""
        return cls(
            temporal_address=_env("TEMPORAL_ADDRESS", "localhost:7233") or "localhost:7233",
            namespace=_env("NAMESPACE", "default") or "default",
            task_queue=_env("TASK_QUEUE", DEFAULT_TASK_QUEUE) or DEFAULT_TASK_QUEUE,
            tls=_flag("TLS") or bool(_env("TLS_CERT")) or bool(_env("TEMPORAL_API_KEY")),
            tls_cert=_env("TLS_CERT"),
            tls_key=_env("TLS_KEY"),
            temporal_api_key=_env("TEMPORAL_API_KEY"),
            data_dir=resolve_data_dir()[0],
            update_timeout_seconds=float(_env("UPDATE_TIMEOUT", "30") or "30"),
            metrics_host=_env("METRICS_HOST", "0.0.0.0") or "0.0.0.0",
            metrics_port=_port("METRICS_PORT", 9464),
            app_metrics_port=_port("APP_METRICS_PORT", 9465),
            max_cached_workflows=_count("MAX_CACHED_WORKFLOWS", 1000, minimum=0) or 0,
            max_concurrent_workflow_tasks=_count("MAX_CONCURRENT_WORKFLOW_TASKS", None, minimum=2),
            trusted_proxies=_proxies("TRUSTED_PROXIES"),
        )

    def uvicorn_proxy_options(self) -> dict[str, Any]:
        """``uvicorn.Config`` arguments: proxy headers only from :attr:`trusted_proxies`
        (uvicorn on its own believes 127.0.0.1)."""
        if not self.trusted_proxies:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": list(self.trusted_proxies)}

    async def connect(self, runtime: Runtime | None = None) -> Client:
        """One long-lived client per process, with the pydantic data converter.

        ``runtime``: the Temporal runtime the client and its workers report metrics to (see
        :func:`conveyor.metrics.sdk_runtime`); the SDK's default runtime when ``None``.
        """
        tls: bool | TLSConfig = self.tls
        if self.tls_cert:
            if not self.tls_key:
                raise ValueError("CONVEYOR_TLS_CERT is set but CONVEYOR_TLS_KEY is not; set both")
            tls = TLSConfig(
                client_cert=Path(self.tls_cert).read_bytes(),
                client_private_key=Path(self.tls_key).read_bytes(),
            )
        return await Client.connect(
            self.temporal_address,
            namespace=self.namespace,
            tls=tls,
            api_key=self.temporal_api_key,
            data_converter=pydantic_data_converter,
            runtime=runtime,
        )
