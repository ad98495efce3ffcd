"""Regex evaluators run on RE2: catastrophic patterns finish in linear time, patterns that need
backtracking are refused when the pipeline loads, and valid patterns mean what they mean in
Python's ``re``."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.client import ConveyorClient
from conveyor.pipelines import parse_text
from tests.support.actors import claim, rid, submit
from workflows.evaluators import evaluate_programmatic, evaluator_problems
from workflows.graph import EvaluatorSpec, PipelineInvalid
from workflows.graph_checks import validate_pipeline
from workflows.messages import SaveDraft
from workflows.patterns import PatternError, compile_pattern


def regex(pattern: str, **settings: Any) -> EvaluatorSpec:
    return EvaluatorSpec.model_validate(
        {"name": "shape", "kind": "regex", "fields": ["answer"], "pattern": pattern, **settings}
    )


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        (r"^(a+)+$", "a" * 40 + "b"),
        (r"^(a|a)*$", "a" * 40 + "b"),
        (r"^(a|aa)+$", "a" * 5000 + "b"),
        (r"(x+x+)+y", "x" * 5000),
        (r"^(\w+\s?)*$", "word " * 2000 + "!"),
    ],
)
@pytest.mark.parametrize("mode", ["inline", "hidden"])
def test_a_catastrophic_pattern_runs_in_linear_time(pattern: str, text: str, mode: str) -> None:
    # On Python's re the first case alone takes minutes (2 ** 40 ways to split the a's).
    started = time.perf_counter()
    record = evaluate_programmatic(regex(pattern, mode=mode), "write", {"answer": text})
    elapsed = time.perf_counter() - started
    assert record.error is None and record.passed is False
    assert elapsed < 0.5, f"{pattern} took {elapsed:.2f}s"


@pytest.mark.parametrize(
    ("pattern", "phrase"),
    [
        (r"(a)\1", "backreferences"),
        (r"foo(?=bar)", "lookahead or lookbehind"),
        (r"(?<!x)foo", "lookahead or lookbehind"),
        (r"(?>a+)b", "atomic groups"),
        (r"a*+b", "possessive quantifiers"),
        (r"(?P<x>a)(?P=x)", "backreferences"),
    ],
)
def test_patterns_that_need_backtracking_are_refused_at_load(pattern: str, phrase: str) -> None:
    [problem] = evaluator_problems(regex(pattern), {"answer": None})
    assert problem.startswith("pattern uses something the linear-time regex engine does not")
    assert phrase in problem and "rewrite the pattern without them" in problem


def test_a_refused_pattern_names_the_node_and_evaluator_in_a_definition() -> None:
    text = """
name: shapes
nodes:
  - {name: start, kind: start, next: [write]}
  - name: write
    kind: subtask
    roles: [writer]
    fields: [{name: answer, type: short_text}]
    evaluators:
      - {name: echo, kind: regex, fields: [answer], pattern: '(a)\\1'}
    next: [end]
  - {name: end, kind: end}
"""
    with pytest.raises(PipelineInvalid) as info:
        validate_pipeline(parse_text(text))
    [problem] = info.value.problems
    assert problem.where == "node 'write' evaluator 'echo'"
    assert "backreferences" in problem.message


def test_an_over_long_repeat_count_gets_its_own_reason() -> None:
    with pytest.raises(PatternError, match="repeat counts go up to 1000"):
        compile_pattern("a{2000}")


def test_a_refused_pattern_at_run_time_is_an_error_record() -> None:
    # A definition validated before the engine changed may still carry one: it cannot run.
    record = evaluate_programmatic(regex(r"(a)\1"), "write", {"answer": "aa"})
    assert record.passed is None and record.error and "backreferences" in record.error


PATTERNS = [
    r"\d+",
    r"^\w+$",
    r"^hello",
    r"^42$",
    r"^(positive|negative)$",
    r"[\d\s]+x",
    r"[^\w]",
    r"[]a]",
    r"[^]a]",
    r"a{,3}b$",
    r"\u00e9",
    r"\W\S\D",
    r"a\Z",
    r"(?m)^a$",
    r"(?i)HELLO",
    r"[\w-]+@x",
    r"\s+",
]
TEXTS = [
    "order 123 shipped",
    "héllo",
    "Hello",
    "42",
    "42\n",
    "positive\n",
    "٣ x",  # an Arabic-Indic digit: \d in Python
    "é",
    "]",
    "aaab",
    "a\u00a0b",  # a no-break space: \s in Python
    "a\n",
    "x_y-z@x",
    "\x1c",
    "",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_valid_patterns_mean_what_they_mean_in_python(pattern: str) -> None:
    ours, python = compile_pattern(pattern), re.compile(pattern)
    for text in TEXTS:
        assert bool(ours.search(text)) == bool(python.search(text)), (pattern, text)


@given(st.sampled_from(PATTERNS), st.text(alphabet="a1 _-\n\t\u00a0٣éÉ]x@", max_size=12))
def test_valid_patterns_agree_with_python_on_any_text(pattern: str, text: str) -> None:
    assert bool(compile_pattern(pattern).search(text)) == bool(re.compile(pattern).search(text))


async def test_an_inline_catastrophic_regex_answers_a_draft_at_once(
    conveyor: ConveyorClient,
) -> None:
    # Before: ^(a+)+$ on 26 a's and a b held the workflow task (and the worker) for 5 s; 40 a's
    # would take days. The draft's inline verdict now comes back with the update.
    pipeline = validate_pipeline(
        {
            "name": f"shape-{rid()[:8]}",
            "nodes": [
                {"name": "start", "kind": "start", "next": ["answer"]},
                {
                    "name": "answer",
                    "kind": "subtask",
                    "fields": [{"name": "reply", "type": "long_text"}],
                    "evaluators": [
                        {
                            "name": "shape",
                            "kind": "regex",
                            "fields": ["reply"],
                            "pattern": "^(a+)+$",
                            "mode": "inline",
                        }
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )
    created = await conveyor.create_task(pipeline, f"t-{rid()}", {})
    task = conveyor.task(created.workflow_id)
    token = await claim(task, "ana", [], "answer")
    started = time.perf_counter()
    draft = await task.send(
        SaveDraft(
            request_id=rid(),
            contributor="ana",
            node="answer",
            token=token,
            values={"reply": "a" * 40 + "b"},
        )
    )
    took = time.perf_counter() - started
    assert [(e.criterion, e.passed) for e in draft.evaluations] == [("shape", False)]
    assert took < 5.0, took  # an update round trip; before, hours
    result = await submit(task, "ana", "answer", token, {"reply": "a" * 40})
    assert [(e.criterion, e.passed) for e in result.evaluations] == [("shape", True)]
