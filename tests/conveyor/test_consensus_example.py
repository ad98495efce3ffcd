"""``examples/consensus.py`` against the dev server and each store, as a user runs it: five
labelers through the work queue, one text agreeing at once, one after a fourth answer, one
settled by an adjudicator."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.llm import LlmSettings
from worker import build_worker

ROOT = Path(__file__).parents[2]


async def test_the_consensus_example_runs(
    client: Client, db_url: str, sessions: sessionmaker[Session]
) -> None:
    task_queue = f"consensus-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CONVEYOR_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "CONVEYOR_DATABASE_URL": db_url,
        "CONVEYOR_TASK_QUEUE": task_queue,
    }
    async with build_worker(client, task_queue, sessions=sessions, llm=LlmSettings()):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "examples" / "consensus.py"),
            f"consensus-example-{uuid.uuid4().hex[:8]}",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    lines = text.splitlines()
    summary = {
        line.split()[0]: line for line in lines if line[:1].isalpha() and "answers (" in line
    }
    assert summary["agrees"].startswith("agrees    3 answers"), text
    assert summary["one-more"].startswith("one-more  4 answers"), text
    assert summary["settled"].startswith("settled   5 answers"), text
    finals = [line for line in lines if line.strip().startswith("final")]
    assert "final 'positive', agreement 1.00" in finals[0] and "agreed" in finals[0], text
    assert "final 'neutral', agreement 0.75" in finals[1] and "agreed" in finals[1], text
    assert "final 'negative'" in finals[2] and "settled by lea" in finals[2], text
    assert all(line.endswith("task finished") for line in finals), text
