"""No definition text can crash, stall or exhaust the parser and validator that the CLI and the
API share (``conveyor.pipelines.parse_text`` then ``validate_pipeline``): limits are checked
before anything recursive walks the input, and every refusal is one problem naming the limit.
``starter.py pipeline validate`` runs here as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.pipelines import (
    MAX_DEFINITION_CHARS,
    MAX_DEPTH,
    MAX_EXPANDED_NODES,
    MAX_NUMBER_CHARS,
    parse_text,
)
from workflows.graph import PipelineInvalid
from workflows.graph_checks import MAX_NODES, validate_pipeline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llm-draft-edit.yaml"
DEEP = 100_000

DEEP_JSON_LIST = "[" * DEEP + "]" * DEEP
DEEP_JSON_OBJECT = '{"a":' * DEEP + "1" + "}" * DEEP
DEEP_YAML_BLOCK = "\n".join(" " * i + "- " for i in range(2_000))
DEEP_YAML_MAPPING = "\n".join(" " * i + "a:" for i in range(2_000))
HUGE_INT = "9" * DEEP
HUGE_FLOAT = "1." + "9" * DEEP


def problem_of(text: str, *, json_only: bool) -> str:
    """The single problem parse + validate report for ``text``; any other outcome fails."""
    with pytest.raises(PipelineInvalid) as info:
        validate_pipeline(parse_text(text, json_only=json_only))
    [problem] = info.value.problems
    assert "\n" not in problem.message
    return problem.message


@pytest.mark.parametrize(
    ("text", "json_only"),
    [
        (DEEP_JSON_LIST, True),
        (DEEP_JSON_OBJECT, True),
        (DEEP_JSON_LIST, False),  # JSON text sent as YAML
        (DEEP_JSON_OBJECT, False),
        (DEEP_YAML_BLOCK, False),
        (DEEP_YAML_MAPPING, False),
        ('{"name": "x", "nodes": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}", True),
    ],
    ids=["json-list", "json-object", "json-as-yaml", "object-as-yaml", "block", "mapping", "33"],
)
def test_deep_nesting_is_refused_before_parsing_recurses(text: str, json_only: bool) -> None:
    started = time.perf_counter()
    message = problem_of(text, json_only=json_only)
    assert f"nested more than {MAX_DEPTH} levels deep" in message and "flatten" in message
    assert time.perf_counter() - started < 5


def test_aliases_cannot_nest_deeper_than_the_text_does() -> None:
    # each alias adds a level the composer never sees: 50 levels from 50 short lines
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 50)]
    assert "once its aliases are expanded" in problem_of("\n".join(lines), json_only=False)
    assert "an alias refers to a value containing" in problem_of("a: &a [*a]", json_only=False)


@pytest.mark.parametrize(
    ("text", "json_only"),
    [
        ('{"name": ' + HUGE_INT + "}", True),
        ('{"name": ' + HUGE_FLOAT + "}", True),
        ("name: " + HUGE_INT, False),
        ("name: 0b" + "1" * DEEP, False),
        ("name: !!int '" + HUGE_INT + "'", False),
    ],
    ids=["json-int", "json-float", "yaml-int", "yaml-binary", "yaml-tagged"],
)
def test_huge_numbers_are_refused_with_the_limit(text: str, json_only: bool) -> None:
    message = problem_of(text, json_only=json_only)
    assert f"over the limit of {MAX_NUMBER_CHARS}" in message
    assert "4300" not in message and "sys.set_int_max_str_digits" not in message


def test_too_many_yaml_values_are_refused_as_they_are_read() -> None:
    # 500,000 values in 2 MB took the pure-Python parser 11 s to build and then refuse; the
    # line shows it now stops reading at the limit (timings are too noisy on a shared machine)
    message = problem_of("\n".join(["- 1"] * 500_000), json_only=False)
    assert f"more than {MAX_EXPANDED_NODES:,} values" in message and "line 200000," in message


def test_a_huge_text_is_refused_before_parsing() -> None:
    text = json.dumps({"name": "x", "description": "a" * MAX_DEFINITION_CHARS})
    assert f"over the limit of {MAX_DEFINITION_CHARS:,}" in problem_of(text, json_only=True)


def test_a_huge_string_under_the_limit_is_an_ordinary_problem() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["name"] = "n" * 1_000_000
    with pytest.raises(PipelineInvalid) as info:
        validate_pipeline(parse_text(json.dumps(raw), json_only=True))
    assert all(len(p.message) < 2_000 for p in info.value.problems)


def test_too_many_nodes_are_refused_before_the_graph_checks() -> None:
    nodes = [{"name": f"n{i}", "kind": "subtask"} for i in range(MAX_NODES + 1)]
    message = problem_of(json.dumps({"name": "big", "nodes": nodes}), json_only=True)
    assert f"over the limit of {MAX_NODES:,}" in message and "chains" in message


def test_deep_but_under_the_limit_validates_without_recursing_out() -> None:
    # the deepest value the parser lets through, in every place a definition takes a mapping
    deep: Any = "x"
    for _ in range((MAX_DEPTH - 5) // 2):  # a field mapping is 5 levels down
        deep = {"k": [deep]}
    raw = yaml.safe_load(EXAMPLE.read_text())
    for place in (raw, raw["nodes"][1], raw["nodes"][1]["fields"][0]):
        place["extra"] = deep
    text = json.dumps(raw)
    with pytest.raises(PipelineInvalid) as info:
        validate_pipeline(parse_text(text, json_only=True))
    assert sum("unknown setting 'extra'" in p.message for p in info.value.problems) == 3


def test_claim_timeouts_that_are_not_durations() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text())
    for value, phrase in ((float("inf"), "finite"), ("9" * 5000 + "s", "too long a number")):
        raw["claim_timeout"] = value
        with pytest.raises(PipelineInvalid) as info:
            validate_pipeline(raw)
        assert any(phrase in p.message for p in info.value.problems)


# --- definition-shaped garbage --------------------------------------------------------------

KEYS = ["name", "nodes", "kind", "fields", "next", "type", "source", "llm", "prompt", "system"]
KEYS += ["evaluators", "pattern", "chains", "options", "branches", "claim_timeout", "roles"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["start", "end", "subtask", "llm", "regex", "{{ text }}", "1h", "(a)\\1"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5),
    ),
    max_leaves=40,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


BASE = yaml.safe_load(EXAMPLE.read_text())
PATHS = _paths(BASE)


def _replaced(path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    raw = json.loads(json.dumps(BASE))
    place = raw
    for step in path[:-1]:
        place = place[step]
    place[path[-1]] = value
    return raw


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(PATHS), VALUES, st.booleans())
def test_definition_shaped_garbage_is_only_ever_a_list_of_problems(
    path: tuple[Any, ...], value: Any, as_yaml: bool
) -> None:
    raw = _replaced(path, value)
    text = yaml.safe_dump(raw) if as_yaml else json.dumps(raw)
    try:
        validate_pipeline(parse_text(text, json_only=not as_yaml))
    except PipelineInvalid as err:
        assert err.problems and all(p.message for p in err.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet="[]{}:-,&*!| \n\"'#?a1.e", max_size=200), st.booleans())
def test_any_text_is_parsed_or_refused(text: str, json_only: bool) -> None:
    try:
        validate_pipeline(parse_text(text, json_only=json_only))
    except PipelineInvalid as err:
        assert err.problems


# --- the CLI as operators run it ------------------------------------------------------------


async def validate_file(path: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "starter.py"),
        "pipeline",
        "validate",
        str(path),
        cwd=ROOT,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode()


CLI_CASES = {
    "deep.json": (DEEP_JSON_LIST, "nested more than"),
    "deep.yaml": (DEEP_JSON_OBJECT, "nested more than"),
    "block.yaml": (DEEP_YAML_BLOCK, "nested more than"),
    "number.json": ('{"name": ' + HUGE_INT + "}", "over the limit of"),
    "number.yaml": ("name: " + HUGE_INT, "over the limit of"),
    "types.yaml": ("name: [1]\nnodes: {a: 1}\nchains: 3\nclaim_timeout: .inf\n", "nodes"),
}


async def test_the_cli_refuses_every_case_readably_with_exit_3(tmp_path: Path) -> None:
    for name, (text, phrase) in CLI_CASES.items():
        path = tmp_path / name
        path.write_text(text)
        code, err = await validate_file(path)
        assert code == 3, (name, err)
        assert "Traceback" not in err and "RecursionError" not in err, (name, err)
        assert "sys.set_int_max_str_digits" not in err, (name, err)
        assert phrase in err, (name, err)
        if name != "types.yaml":  # one problem: one line
            assert err.startswith("invalid pipeline: file: ") and err.count("\n") == 1, err
            assert str(path) in err, err
        else:  # several: a heading, then one line each
            assert all(line.startswith("  - ") for line in err.splitlines()[1:]), err
