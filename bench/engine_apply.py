"""Cost of one engine command on a task that remembers a full answer log and timeline.

Run by hand: ``.venv/bin/python -m bench.engine_apply``. Prints the time per ``engine.apply``
next to a baseline measured in the same run: deep-copying the same state once, which is what
each command cost before the engine copied only the mutable parts.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.support.pipelines import label_review
from workflows import engine
from workflows.messages import Claim, Tag

N = 300


def main() -> None:
    pipeline = label_review()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    state = engine.start_task(pipeline, "k", {"text": "x"}, engine.Context(now=now)).state
    for i in range(engine.RESPONSES_KEPT + 200):
        command = Tag(request_id=f"r{i}", by="ops", tags=[f"t{i}"])
        state = engine.apply(pipeline, state, command, engine.Context(now=now)).state

    start = time.perf_counter()
    for _ in range(N):
        state.model_copy(deep=True)
    baseline = (time.perf_counter() - start) / N

    start = time.perf_counter()
    for i in range(N):
        claim = Claim(request_id=f"c{i}", contributor="ana", roles=["labeler"])
        engine.apply(pipeline, state, claim, engine.Context(now=now, token="t"))
    per_command = (time.perf_counter() - start) / N

    print(
        f"state: {len(state.responses)} answers, {len(state.timeline)} events, "
        f"{len(state.tags)} tags"
    )
    print(f"{'measure':<40} {'ms':>8}")
    print(f"{'baseline: deep copy of the state':<40} {baseline * 1000:>8.3f}")
    print(f"{'engine.apply (claim)':<40} {per_command * 1000:>8.3f}")
    print(f"ratio apply / baseline: {per_command / baseline:.3f}")


if __name__ == "__main__":
    main()
