"""``task show`` lists a consensus node's places: answered (by whom), claimed, the round, and
the agreement once merged."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.cli.tasks import print_view
from conveyor.pipelines import load_pipeline_file
from tests.workflows.test_engine import Task
from workflows.engine import task_view

PIPELINE = load_pipeline_file(str(Path(__file__).parents[2] / "examples/consensus-label.yaml"))


def test_task_show_lists_the_places(capsys: pytest.CaptureFixture[str]) -> None:
    t = Task(PIPELINE, {"text": "fine"})
    for who in ("ana", "bo", "cy"):
        assert t.claim(who, ["labeler"], node="label", token=who).accepted
    for who in ("ana", "bo"):
        assert t.submit(who, "label", {"sentiment": "positive", "intensity": 3}, token=who).accepted
    print_view(task_view(t.state, "consensus-label/x"), as_json=False)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("label "))
    assert "Claimed      by cy" in line
    assert "[2 of 3 answered (ana, bo), 1 claimed]" in line
    assert t.submit("cy", "label", {"sentiment": "negative", "intensity": 3}, token="cy").accepted
    print_view(task_view(t.state, "consensus-label/x"), as_json=False)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("label "))
    # 2 of 3 is below the example's threshold (0.75): one more place opens.
    assert "[3 of 4 answered (ana, bo, cy); agreement 0.67, no agreement]" in line
