"""``starter.py analytics consensus`` and ``analytics dawid-skene`` as operators run them, against
a store (SQLite and, when configured, PostgreSQL) holding consensus node rows: the first test as
a real process, the rest through ``starter.main`` in this process (the same parser, handlers and
exit codes, without a new interpreter importing pandas for every command)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

import starter
from tests.support.consensus_rows import Item, consensus_pipeline, write_items

ROOT = Path(__file__).resolve().parents[2]
# Krippendorff's two-observer example (tests/store/test_reliability.py): alpha 8/84, kappa 1/11.
OBSERVER_A = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
OBSERVER_B = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]


Runner = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run_command(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    """``starter.py analytics ARGS`` against the store at ``url``: (exit code, stdout, stderr)."""

    def call(url: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setenv("CONVEYOR_DATABASE_URL", url)
        capsys.readouterr()
        try:
            code = starter.main(["analytics", *args])
        except SystemExit as exit_:  # argparse refusing an argument
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture
def run(run_command: Runner) -> Runner:
    """``starter.py analytics consensus ARGS``."""
    return lambda url, *args: run_command(url, "consensus", *args)


def as_process(url: str, *args: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), "analytics", *args],
        cwd=ROOT,
        env={**os.environ, "CONVEYOR_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def store(db_url: str, sessions: sessionmaker[Session]) -> tuple[str, str]:
    """Ten items answered by ana and ben (the final answer is ana's); ``(url, pipeline)``."""
    pipeline = consensus_pipeline(f"cli-{uuid.uuid4().hex[:8]}")
    items = [
        Item(
            answers={
                "ana": {"spam": bool(a), "intensity": 3},
                "ben": {"spam": bool(b), "intensity": 4},
            },
            final={"spam": bool(a), "intensity": 3},
            tags=["gold"] if i < 4 else [],
        )
        for i, (a, b) in enumerate(zip(OBSERVER_A, OBSERVER_B, strict=True))
    ]
    write_items(sessions, pipeline, items)
    write_items(sessions, consensus_pipeline("cli-plain", consensus=False), [])
    return db_url, pipeline.name


def test_table(store: tuple[str, str]) -> None:
    url, p = store
    code, out, err = as_process(url, "consensus", p)
    assert code == 0, err
    assert f"{p} / label: 10 items (10 final, 0 adjudicated), 20 answers by 2 contributors" in out
    spam = next(line for line in out.splitlines() if line.startswith("spam "))
    assert spam.split() == ["spam", "boolean", "nominal", "10", "20", "0.095", "60.0%"]
    intensity = next(line for line in out.splitlines() if line.startswith("intensity "))
    # Every item 3 and 4: within the tolerance of 1, so all pairs agree; but alpha sees ten
    # 3-4 pairs and no 3-3 or 4-4 pair. Mid-ranks 5 and 15, distance 100; observed 20 * 100,
    # expected 2 * (10 * 10 / 19) * 100: alpha = 1 - 2000 * 19 / 20000 = -0.9.
    assert intensity.split()[-2:] == ["-0.900", "100.0%"]
    assert "notes: free text is not compared" in out
    ben = next(line for line in out.splitlines() if line.strip().startswith("ben "))
    assert "60.0% of 10" in ben
    pairs = out.split("pairs sharing 5+ items")[1]
    pair = next(line for line in pairs.splitlines() if line.strip().startswith("ana "))
    assert "60.0% / 0.091" in pair


def test_json_and_filters(store: tuple[str, str], run: Runner) -> None:
    url, p = store
    code, out, err = run(url, p, "--node", "label", "--tag", "gold", "--min-shared", "4", "--json")
    assert code == 0, err
    report = json.loads(out)
    (node,) = report["nodes"]
    assert (report["pipeline"], report["min_shared"], node["items"]) == (p, 4, 4)
    assert [(pair["a"], pair["b"], pair["shared"]) for pair in node["pairs"]] == [("ana", "ben", 4)]
    code, out, err = run(url, p, "--status", "Finished", "--json")
    assert code == 0, err
    assert json.loads(out)["nodes"][0]["items"] == 10


def test_csv(store: tuple[str, str], tmp_path: Path, run: Runner) -> None:
    url, p = store
    target = tmp_path / "agreement.csv"
    code, out, err = run(url, p, "--csv", str(target))
    assert code == 0, err
    assert str(target) in out
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    spam = next(r for r in rows if r["table"] == "field" and r["field"] == "spam")
    assert float(spam["alpha"]) == pytest.approx(8 / 84)
    code, out, err = run(url, p, "--csv", "-")
    assert code == 0, err
    assert out.startswith("table,node,field,")


def test_errors(store: tuple[str, str], tmp_path: Path, run: Runner) -> None:
    url, p = store
    code, _, err = run(url, "nope")
    assert code == 3 and "no pipeline named 'nope'" in err
    code, _, err = run(url, "cli-plain")
    assert code == 3 and "has no consensus node" in err
    code, _, err = run(url, p, "--node", "start")
    assert code == 3 and "consensus nodes: label" in err
    code, _, err = run(url, p, "--min-shared", "0")
    assert code == 3 and "must be 1 or more" in err
    code, _, err = run(url, p, "--csv", str(tmp_path / "missing" / "x.csv"))
    assert code == 3 and "cannot write" in err


def test_dawid_skene(store: tuple[str, str], tmp_path: Path, run_command: Runner) -> None:
    url, p = store
    code, out, err = run_command(url, "dawid-skene", p, "--field", "spam")
    assert code == 0, err
    assert f"{p} / label / spam: Dawid-Skene over 10 items" in out
    assert "P(answer given | true answer)" in out
    code, out, err = run_command(url, "dawid-skene", p, "--field", "spam", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["items"], report["labels"]) == (10, ["false", "true"])
    target = tmp_path / "ds.csv"
    code, out, err = run_command(url, "dawid-skene", p, "--field", "spam", "--csv", str(target))
    assert code == 0, err
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert sum(r["table"] == "item" for r in rows) == 10
    code, _, err = run_command(url, "dawid-skene", p)
    assert code == 3 and "name the field of 'label'" in err


def test_dawid_skene_runs_are_stored(store: tuple[str, str], run_command: Runner) -> None:
    url, p = store
    code, out, err = run_command(url, "dawid-skene", p, "--runs")
    assert (code, out.strip()) == (
        0,
        f"no Dawid-Skene run is stored for {p}; run one with "
        f"python starter.py analytics dawid-skene {p}",
    ), err
    code, out, err = run_command(url, "dawid-skene", p, "--latest")
    assert code == 3 and "no Dawid-Skene run is stored" in err

    code, fresh, err = run_command(url, "dawid-skene", p, "--field", "spam", "--as", "lead")
    assert code == 0, err
    assert "stored as run " in fresh
    first = int(fresh.split("stored as run ")[1].split()[0])
    code, out, err = run_command(url, "dawid-skene", p, "--field", "spam", "--dry-run")
    assert code == 0 and "stored as run" not in out, err
    code, out, err = run_command(
        url, "dawid-skene", p, "--field", "spam", "--tag", "gold", "--json"
    )
    assert code == 0 and json.loads(out)["items"] == 4, err
    second = int(err.split("stored as run ")[1].split()[0])
    assert second > first

    code, out, err = run_command(url, "dawid-skene", p, "--runs")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "run",
        "at",
        "by",
        "node",
        "field",
        "items",
        "differing",
        "iterations",
        "tasks",
    ]
    assert [line.split()[0] for line in lines[1:]] == [str(second), str(first)]
    assert lines[1].endswith("tag=gold") and lines[2].endswith("all")
    assert " lead " in lines[2]
    code, out, err = run_command(url, "dawid-skene", p, "--runs", "--json")
    assert [r["id"] for r in json.loads(out)] == [second, first]

    # Read back, a stored run prints what the fresh run printed.
    code, back, err = run_command(url, "dawid-skene", p, "--run", str(first))
    assert code == 0, err
    assert back.split("\nstored run ")[0] == fresh.split("\nstored as run ")[0]
    assert f"stored run {first} of " in back and back.rstrip().endswith("by lead")
    code, out, err = run_command(url, "dawid-skene", p, "--latest", "--json")
    assert json.loads(out)["items"] == 4
    code, out, err = run_command(url, "dawid-skene", p, "--run", str(second + 5))
    assert code == 3 and f"no Dawid-Skene run {second + 5}" in err and "--runs" in err
    code, out, err = run_command(url, "dawid-skene", p, "--latest", "--field", "spam")
    assert code == 3 and "--latest reads what is stored" in err
    code, out, err = run_command(url, "dawid-skene", p, "--runs", "--csv", "-")
    assert code == 3 and "--run N --csv FILE" in err
