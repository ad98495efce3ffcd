"""A stand-in for a task whose workflow task fails on every attempt."""

from __future__ import annotations

from typing import Any

from temporalio import workflow


@workflow.defn(name="TaskWorkflow")
class WedgedTaskWorkflow:
    """Fails every workflow task after its ``wedge`` signal, as a bug or an input a workflow
    cannot handle would: register it only on a test's own worker and task queue (with the
    unsandboxed runner), never next to the real ``TaskWorkflow``."""

    @workflow.run
    async def run(self, _: Any) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="wedge")
    def wedge(self) -> None:
        raise RuntimeError("deliberately failing workflow task")
