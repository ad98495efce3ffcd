"""A script using the client library as the README shows exits cleanly, every time."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from conveyor.client import ClientClosed, ConveyorClient
from conveyor.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent

SCRIPT = """
import asyncio

from conveyor import ConveyorClient, TaskStatus, UnknownPipeline, load_pipeline_file


async def main() -> None:
    async with await ConveyorClient.connect() as conveyor:
        pipeline = load_pipeline_file("examples/label-review.yaml")
        await conveyor.create_task(pipeline, "close-{run}", {{"text": "t"}})
        async for workflow_id, _ in conveyor.list_tasks(status=TaskStatus.PENDING):
            break
        try:
            await conveyor.describe_pipeline("no-such-pipeline")
        except UnknownPipeline:
            pass
    print("done")


asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_client_script_exits_0_every_time(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CONVEYOR_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "CONVEYOR_TASK_QUEUE": "client-close-no-worker",
    }
    codes = []
    for run in range(20):
        script = tmp_path / f"script{run}.py"
        script.write_text(SCRIPT.format(run=run))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert "done" in out.decode(), out.decode()
        codes.append(proc.returncode)
    assert codes == [0] * 20


async def test_close_is_idempotent_and_final(temporal_env: WorkflowEnvironment) -> None:
    settings = Settings(temporal_address=temporal_env.client.service_client.config.target_host)
    conveyor = await ConveyorClient.connect(settings)
    assert conveyor.client.namespace == "default"
    await conveyor.close()
    await conveyor.close()
    try:
        conveyor.task("a/b")
    except ClientClosed as err:
        assert "closed" in str(err)
    else:
        raise AssertionError("a closed client still made a task handle")


def test_the_readmes_python_examples_import_what_exists() -> None:
    """Every ``from conveyor… import …`` line of the README's Python blocks imports."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    lines = [
        line
        for block in blocks
        for line in block.splitlines()
        if re.match(r"from (conveyor|workflows)[\w.]* import ", line)
    ]
    assert any(line.startswith("from conveyor import ") for line in lines), lines
    for line in lines:
        exec(line, {})  # raises ImportError for a name the library does not have
