"""Consensus, end to end: three blind answers per text, one more while they disagree, and an
adjudicator for what they could not agree on.

Run against the local system (``./scripts/dev`` in another terminal, then, with the
environment its banner prints)::

    .venv/bin/python examples/consensus.py [PIPELINE_NAME]

It applies ``examples/consensus-label.yaml`` under the name ``consensus-demo`` (or the one
given), creates three texts, and lets five labelers work them through the work queue as people
would (each takes the next place the queue offers them and answers it). The answers are
scripted so that the first text agrees at once (3 of 3), the second needs a fourth person (2 of
3 is below the pipeline's threshold of three quarters; 3 of 4 reaches it), and the third still
disagrees with five and goes to a lead, who settles it with a reason. Then it prints
each text's answers, merged answer, agreement and how it ended.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from conveyor.client import new_request_id
from conveyor.connect import connect_conveyor
from conveyor.pipelines import load_pipeline_file
from conveyor.workqueue import NoWorkAvailable, next_work
from workflows.messages import Adjudicate, Claim, NodeStatus, Submit, TaskStatus
from workflows.pipeline_messages import PipelineStatus

TEXTS = {
    "agrees": "Fast delivery and the blender is great.",
    "one-more": "It works, I suppose. The lid is a bit loose.",
    "settled": "Great, it broke on day two. Exactly what I wanted.",
}
ANSWERS: dict[str, list[str]] = {
    # per text, the sentiment each next annotator gives
    "agrees": ["positive", "positive", "positive"],
    "one-more": ["neutral", "positive", "neutral", "neutral"],
    "settled": ["positive", "negative", "neutral", "negative", "positive"],
}
LABELERS = ["ana", "bo", "cy", "di", "eve"]


async def main(name: str) -> None:
    async with await connect_conveyor() as conveyor:
        if conveyor.untouched is None:
            raise SystemExit(
                "no store found: start ./scripts/dev and use the environment it prints"
            )
        sessions = conveyor.untouched.sessions
        definition = load_pipeline_file(str(Path(__file__).parent / "consensus-label.yaml"))
        pipeline = definition.model_copy(update={"name": name})
        applied = await conveyor.apply_pipeline(pipeline, by="example")
        if applied.status == PipelineStatus.DRAFT:
            await conveyor.set_pipeline_status(name, PipelineStatus.ACTIVE, by="example")
        rows = [{"key": key, "text": text} for key, text in TEXTS.items()]
        await conveyor.create_tasks(name, rows, key_column="key")
        print(f"created {len(rows)} texts in {name}; each needs 3 blind answers (up to 5)")

        given = {key: 0 for key in TEXTS}
        for round_ in range(10):
            worked = False
            for who in LABELERS:
                try:
                    claimed = await next_work(conveyor, sessions, who, ["labeler"], pipeline=name)
                except NoWorkAvailable:
                    continue
                key = claimed.item.workflow_id.split("/", 1)[1]
                sentiment = ANSWERS[key][min(given[key], len(ANSWERS[key]) - 1)]
                given[key] += 1
                token = claimed.result.token
                assert token is not None
                result = await conveyor.task(claimed.item.workflow_id).send(
                    Submit(
                        request_id=new_request_id(),
                        contributor=who,
                        node="label",
                        token=token,
                        values={"sentiment": sentiment, "intensity": 3},
                    )
                )
                print(f"  {who:<4} {key:<9} {sentiment:<9} {result.message}")
                worked = True
            if not worked and round_ > 0:
                break
            await asyncio.sleep(0.5)  # the queue follows the workflows a moment later

        settled = conveyor.task(f"{name}/settled")
        claimed_settle = await settled.send(
            Claim(request_id=new_request_id(), contributor="lea", roles=["lead"], node="settle")
        )
        assert claimed_settle.token is not None
        view = await settled.state()
        label = next(n for n in view.nodes if n.name == "label")
        assert label.consensus is not None
        picked = next(a.by for a in label.consensus.answers if a.values["sentiment"] == "negative")
        await settled.send(
            Adjudicate(
                request_id=new_request_id(),
                contributor="lea",
                node="settle",
                token=claimed_settle.token,
                pick=picked,
                reason="the praise is sarcastic",
            )
        )
        print(f"  lea settled 'settled' with {picked}'s answer: the praise is sarcastic")

        print()
        for key in TEXTS:
            await finish_double_check(conveyor, f"{name}/{key}")
            print(summary(key, await conveyor.task(f"{name}/{key}").state()))


async def finish_double_check(conveyor: Any, workflow_id: str) -> None:
    """A lead confirms labels the gate sent for a double-check (low confidence)."""
    task = conveyor.task(workflow_id)
    view = await task.state()
    check = next(n for n in view.nodes if n.name == "double_check")
    if check.status != NodeStatus.AVAILABLE:
        return  # confident enough: the gate did not send it for a double-check
    claimed = await task.send(
        Claim(request_id=new_request_id(), contributor="lea", roles=["lead"], node="double_check")
    )
    assert claimed.token is not None
    await task.send(
        Submit(
            request_id=new_request_id(),
            contributor="lea",
            node="double_check",
            token=claimed.token,
            values={"confirmed": True},
        )
    )


def summary(key: str, view: Any) -> str:
    label = next(n for n in view.nodes if n.name == "label")
    item = label.consensus
    result = item.result
    answers = ", ".join(f"{a.by}={a.values['sentiment']}" for a in item.answers)
    how = "agreed" if result.agreed else f"settled by {result.adjudicated_by}"
    done = "finished" if view.status == TaskStatus.FINISHED else str(view.status)
    return (
        f"{key:<9} {len(item.answers)} answers ({answers})\n"
        f"          final {label.values['sentiment']!r}, agreement {result.agreement:.2f}, "
        f"confidence {result.confidence:.2f}, {how}; task {done}"
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "consensus-demo"))
