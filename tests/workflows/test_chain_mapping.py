"""Pipeline chains without a server: paths, seed data mapping, keys and definition checks."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.client import _chain_loop
from workflows.chains import (
    MAX_CHAIN_KEY_LENGTH,
    ChainMappingError,
    PathNotFound,
    chain_task_key,
    extract,
    map_seed_data,
    parse_path,
)
from workflows.graph import (
    ChainSpec,
    ChainTrigger,
    Pipeline,
    PipelineInvalid,
)
from workflows.graph_checks import chain_problems, validate_pipeline

# What engine.task_data gives for a finished task of SOURCE: by name and as node.field.
DATA: dict[str, Any] = {
    "text": "The parcel came late and broken.",
    "label": "negative",
    "label.label": "negative",
    "topics": ["shipping", "quality"],
    "label.topics": ["shipping", "quality"],
    "meta": {"customer": {"tier": "gold"}, "odd key": 7, "items": [{"sku": "A-1"}]},
}


def source(**extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "src",
        "nodes": [
            {"name": "start", "kind": "start", "next": ["label"]},
            {
                "name": "label",
                "kind": "subtask",
                "fields": [
                    {"name": "text", "type": "long_text", "source": "predefined"},
                    {"name": "label", "type": "select", "options": ["positive", "negative"]},
                    {
                        "name": "topics",
                        "type": "multi_select",
                        "options": ["shipping", "quality", "billing"],
                        "required": False,
                    },
                ],
                "next": ["end"],
            },
            {"name": "end", "kind": "end"},
        ],
    }
    raw.update(extra)
    return raw


def target(name: str = "dst") -> Pipeline:
    return validate_pipeline(
        {
            "name": name,
            "nodes": [
                {"name": "start", "kind": "start", "next": ["check"]},
                {
                    "name": "check",
                    "kind": "subtask",
                    "fields": [
                        {"name": "text", "type": "long_text", "source": "predefined"},
                        {"name": "sentiment", "type": "short_text", "source": "predefined"},
                        {
                            "name": "first_topic",
                            "type": "short_text",
                            "source": "predefined",
                            "required": False,
                        },
                        {
                            "name": "origin",
                            "type": "short_text",
                            "source": "predefined",
                            "required": False,
                        },
                        {
                            "name": "comment",
                            "type": "long_text",
                            "source": "predefined",
                            "required": False,
                        },
                        {"name": "ok", "type": "boolean"},
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("label", "negative"),
        ("label.topics", ["shipping", "quality"]),
        ("$.text", DATA["text"]),
        ("$.label.topics[0]", "shipping"),  # node.field wins over field 'label' (a string)
        ("$.topics[-1]", "quality"),
        ("$.meta.customer.tier", "gold"),
        ("$.meta['odd key']", 7),
        ('$.meta["items"][0].sku', "A-1"),
        ("$['label.label']", "negative"),
    ],
)
def test_extract(path: str, expected: Any) -> None:
    assert extract(DATA, path) == expected


@pytest.mark.parametrize(
    "path",
    ["missing", "$.missing", "$.topics[5]", "$.text[0]", "$.meta.customer.tier.x", "$.label.x"],
)
def test_a_path_that_leads_nowhere(path: str) -> None:
    with pytest.raises(PathNotFound):
        extract(DATA, path)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "empty source"),
        ("two words", "neither a field name"),
        ("$.", "expected a name after '.' at position 2"),
        ("$.a..b", "position 4"),
        ("$[x]", "bad brackets at position 2"),
        ("$.a[0", "bad brackets"),
        ("$a", "unexpected 'a' at position 2"),
        ("$.a b", "unexpected ' '"),
    ],
)
def test_bad_path_syntax_is_a_clear_error(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        parse_path(path)


def test_quoted_keys_are_exact() -> None:
    assert parse_path("$['a.b'][2].c") == ("a.b", 2, "c")
    with pytest.raises(PathNotFound):
        extract({"a.b": 1}, "$['a']['b']")  # two quoted steps are never joined


# --------------------------------------------------------------------------- seed data


def test_fields_by_name_mapping_paths_and_values() -> None:
    chain = ChainSpec(
        to="dst",
        mapping={"sentiment": "label", "first_topic": "$.label.topics[0]"},
        values={"origin": "src"},
    )
    assert map_seed_data(chain, DATA, target()) == {
        "text": DATA["text"],  # same name
        "sentiment": "negative",  # mapping: a field name
        "first_topic": "shipping",  # mapping: a JSON path
        "origin": "src",  # a constant
        # comment: nothing maps to it, so it is left out (empty)
    }


def test_values_win_and_missing_sources_are_left_empty() -> None:
    chain = ChainSpec(
        to="dst",
        mapping={"sentiment": "label", "first_topic": "$.topics[9]", "comment": "$.nothing"},
        values={"sentiment": "overridden"},
    )
    seed = map_seed_data(chain, {"label": "x", "text": None}, target())
    assert seed == {"sentiment": "overridden"}


def test_mapping_a_field_the_target_lacks_names_it() -> None:
    chain = ChainSpec(to="dst", mapping={"sentimnt": "label"}, values={"colour": "red"})
    with pytest.raises(ChainMappingError) as err:
        map_seed_data(chain, DATA, target())
    assert set(err.value.errors) == {"sentimnt", "colour"}
    assert "predefined fields are: text, sentiment, first_topic, origin, comment" in str(err.value)


# --------------------------------------------------------------------------- keys


def test_chain_keys_are_deterministic_and_distinct() -> None:
    task = chain_task_key("src", "doc-1", ChainTrigger.ON_TASK_COMPLETION)
    batch = chain_task_key("src", "doc-1", ChainTrigger.ON_PIPELINE_COMPLETION)
    assert task == chain_task_key("src", "doc-1", ChainTrigger.ON_TASK_COMPLETION) == "src~doc-1"
    assert batch == "src+doc-1"
    # A key containing the other trigger's mark cannot collide: the name ends at the first.
    assert chain_task_key("src", "+doc-1", ChainTrigger.ON_TASK_COMPLETION) != batch
    assert chain_task_key("sr", "c~doc-1", ChainTrigger.ON_TASK_COMPLETION) != task


def test_long_chain_keys_are_hashed_within_the_limit() -> None:
    a = chain_task_key("src", "x" * 400, ChainTrigger.ON_TASK_COMPLETION)
    b = chain_task_key("src", "x" * 399 + "y", ChainTrigger.ON_TASK_COMPLETION)
    assert len(a) == len(b) == MAX_CHAIN_KEY_LENGTH
    assert a != b and a.startswith("src~xxx")
    assert a == chain_task_key("src", "x" * 400, ChainTrigger.ON_TASK_COMPLETION)


# --------------------------------------------------------------------------- definition checks


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(PipelineInvalid) as err:
        validate_pipeline(raw)
    return [str(p) for p in err.value.problems]


def test_a_valid_chain() -> None:
    pipeline = validate_pipeline(
        source(
            chains=[
                {"to": "dst", "mapping": {"sentiment": "$.label.label", "first": "topics"}},
                {"to": "dst", "trigger": "on_pipeline_completion", "values": {"origin": "x"}},
            ]
        )
    )
    assert [c.trigger for c in pipeline.chains] == [
        ChainTrigger.ON_TASK_COMPLETION,
        ChainTrigger.ON_PIPELINE_COMPLETION,
    ]


def test_a_chain_to_itself_is_a_cycle() -> None:
    assert problems(source(chains=[{"to": "src"}])) == [
        "chain #1 (to 'src'): a chain to its own pipeline is a cycle (src -> src): each task "
        "it creates would create another; chain to a different pipeline"
    ]


def test_a_second_chain_with_the_same_target_and_trigger() -> None:
    found = problems(
        source(
            chains=[
                {"to": "dst"},
                {"to": "dst", "trigger": "on_pipeline_completion"},
                {"to": "dst", "trigger": "on_task_completion"},
            ]
        )
    )
    assert len(found) == 1
    assert found[0].startswith(
        "chain #3 (to 'dst'): a second on_task_completion chain to 'dst' (chain #1 is the first)"
    )


def test_every_chain_problem_at_once() -> None:
    found = problems(
        source(
            chains=[
                {"to": "src"},
                {
                    "to": "dst",
                    "mapping": {
                        "bad key": "label",
                        "a": "$.lable",
                        "b": "$[0]",
                        "c": "$.label[",
                        "d": "notes",
                        "e": "label",
                    },
                    "values": {"e": 1, "9x": 2},
                },
                {"to": "dst", "trigger": "later"},
                {"to": "other", "mappings": {}},
                "dst",
            ]
        )
    )
    assert found == [
        "chain #1 (to 'src'): a chain to its own pipeline is a cycle (src -> src): each task "
        "it creates would create another; chain to a different pipeline",
        "chain #2 (to 'dst'): mapping key 'bad key' is not a field name; a mapping goes from "
        "the target's field to a source field or JSON path, e.g. mapping: "
        "{summary: $.label.notes}",
        "chain #2 (to 'dst'): mapping for 'a': JSON path '$.lable' starts with 'lable', which "
        "is not a field of this pipeline (did you mean 'label'?); known fields: text, label, "
        "topics",
        "chain #2 (to 'dst'): mapping for 'b': JSON path '$[0]' must start with a field, e.g. "
        "$.label or $.node.field",
        "chain #2 (to 'dst'): mapping for 'c': JSON path '$.label[': bad brackets at position "
        "8; use [0] for a list item or ['key'] for a key",
        "chain #2 (to 'dst'): mapping for 'd': 'notes' is not a field of this pipeline; known "
        "fields: text, label, topics",
        "chain #2 (to 'dst'): 'e' is set by both mapping and values; keep one of them",
        "chain #2 (to 'dst'): values key '9x' is not a field name; values sets the target's "
        "fields to constants, e.g. values: {origin: import}",
        "chain #3 (to 'dst'): unknown chain trigger 'later'; use one of: on_task_completion, "
        "on_pipeline_completion",
        "chain #4 (to 'other'): unknown setting 'mappings' (did you mean 'mapping'?)",
        "chain #5: each chain must be a mapping with at least to (the target pipeline)",
    ]


def test_chain_problems_of_a_definition_built_in_code() -> None:
    pipeline = validate_pipeline(source()).model_copy(
        update={"chains": [ChainSpec(to="src"), ChainSpec(to="dst"), ChainSpec(to="dst")]}
    )
    assert [p.where for p in chain_problems(pipeline)] == [
        "chain #1 (to 'src')",
        "chain #3 (to 'dst')",
    ]


def test_loops_through_other_pipelines() -> None:
    edges = {"c": ["a", "x"], "a": ["b"], "b": ["c", "d"], "d": []}
    assert _chain_loop("c", edges) == ["c", "a", "b", "c"]
    assert _chain_loop("a", {"a": ["b"], "b": ["d"]}) is None
    assert _chain_loop("a", {"a": ["a"]}) is None  # reported by the definition's own checks


@pytest.mark.parametrize("trigger", [["on_task_completion"], {"a": 1}, 3])
def test_a_trigger_that_is_not_a_string_is_a_problem_not_a_crash(trigger: object) -> None:
    found = problems(source(chains=[{"to": "dst", "trigger": trigger}]))
    assert len(found) == 1
    assert "trigger" in found[0]
