"""A first end-to-end pass of a task through the real dev server."""

from __future__ import annotations

import uuid

from conveyor.client import ConveyorClient
from tests.support.pipelines import label_review
from workflows.messages import Claim, NodeStatus, Review, Submit, TaskStatus, Verdict


def rid() -> str:
    return uuid.uuid4().hex


async def test_label_review_happy_path(conveyor: ConveyorClient) -> None:
    pipeline = label_review()
    created = await conveyor.create_task(pipeline, f"doc-{rid()}", {"text": "great product"})
    task = conveyor.task(created.workflow_id)
    claim = await task.send(Claim(request_id=rid(), contributor="ana", roles=["labeler"]))
    assert claim.node == "label" and claim.token
    await task.send(
        Submit(
            request_id=rid(),
            contributor="ana",
            node="label",
            token=claim.token,
            values={"label": "positive"},
        )
    )
    review = await task.send(Claim(request_id=rid(), contributor="bo", roles=["reviewer"]))
    assert review.node == "check"
    assert review.token is not None
    await task.send(
        Review(
            request_id=rid(),
            contributor="bo",
            node="check",
            token=review.token,
            verdict=Verdict.PASS,
        )
    )
    view = await task.result()
    assert view.status == TaskStatus.FINISHED
    nodes = {n.name: n for n in view.nodes}
    assert nodes["label"].values == {"label": "positive", "notes": None}
    assert nodes["check"].status == NodeStatus.FINISHED
