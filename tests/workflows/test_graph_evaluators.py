"""Pipeline validation of evaluators, human ratings, prompt templates and LLM field groups."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml

from workflows.graph import EvaluatorKind, Pipeline, PipelineInvalid, Problem
from workflows.graph_checks import check_pipeline

EVALUATED = r"""
name: evaluated
nodes:
  - {name: start, kind: start, next: [draft]}
  - name: draft
    kind: subtask
    fields:
      - {name: question, type: long_text, source: predefined}
      - name: summary
        type: short_text
        source: llm
        group: gen
        llm: {system: "Answer {{ question }} briefly.", prompt: "Summarise: {{ question }}"}
      - name: keywords
        type: short_text
        source: llm
        group: gen
        llm: {system: "Answer {{ question }} briefly.", prompt: "Summarise: {{ question }}"}
      - name: title
        type: short_text
        source: llm
        group: other
        llm: {prompt: "A title for {{ question }}", temperature: 0.7}
    evaluators:
      - {name: has_digits, kind: regex, fields: [summary], pattern: '\d'}
      - {name: short, kind: length, fields: [summary, keywords], max_length: 200}
    next: [answer]
  - name: answer
    kind: subtask
    roles: [writer]
    fields:
      - {name: reply, type: long_text}
      - {name: data, type: code, required: false}
    evaluators:
      - {name: no_pii, kind: pii, fields: [reply], mode: inline}
      - {name: same, kind: exact_match, fields: [reply], reference: summary}
      - {name: polite, kind: keyword, fields: [reply], keywords: [please, thanks]}
      - {name: parses, kind: valid_json, fields: [data]}
      - name: helpful
        kind: llm_judge
        fields: [reply]
        judge:
          system: "You grade answers to {{ question }}."
          prompt: |
            {% for line in reply.splitlines() %}{{ loop.index }}: {{ line }}{% endfor %}
            {% set n = 3 %}{{ summary }} {{ n }} {{ [n, 2] | list }}
          output: rating
          pass_threshold: 4
    next: [check]
  - name: check
    kind: review
    fields:
      - {name: rating, type: rating, evaluates: [reply], criterion: helpful}
      - {name: ok, type: boolean, evaluates: [reply, summary]}
      - {name: tone, type: select, options: [good, bad], evaluates: [reply]}
      - {name: effort, type: integer, evaluates: [reply]}
    evaluators:
      - {name: rated, kind: range, fields: [rating], min: 1, max: 5}
      - name: tone_judge
        kind: llm_judge
        fields: [reply]
        judge:
          prompt: "{{ reply }} (rated {{ tone }})"
          output: categorical
          options: [good, bad]
          pass_values: [good]
    next: [end]
  - {name: end, kind: end}
"""


def load(text: str = EVALUATED) -> dict[str, Any]:
    data = yaml.safe_load(textwrap.dedent(text))
    assert isinstance(data, dict)
    return data


def node(raw: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(n for n in raw["nodes"] if n.get("name") == name)
    return found


def field(raw: dict[str, Any], node_name: str, field_name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        f for f in node(raw, node_name)["fields"] if f["name"] == field_name
    )
    return found


def evaluator(raw: dict[str, Any], node_name: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        e for e in node(raw, node_name)["evaluators"] if e.get("name") == name
    )
    return found


def problems(raw: Any) -> list[Problem]:
    with pytest.raises(PipelineInvalid) as info:
        check_pipeline(raw)
    return info.value.problems


def assert_only(raw: Any, where: str, phrase: str) -> None:
    found = problems(raw)
    assert len(found) == 1, "\n".join(map(str, found))
    assert found[0].where == where
    assert phrase in found[0].message, found[0].message


# --- the valid baseline ---------------------------------------------------------------------


def test_the_baseline_is_valid() -> None:
    pipeline = check_pipeline(load())
    assert isinstance(pipeline, Pipeline)
    kinds = {e.kind for n in pipeline.nodes for e in n.evaluators}
    assert kinds == set(EvaluatorKind)  # one of each kind


def test_a_dumped_pipeline_with_evaluators_validates_again() -> None:
    pipeline = check_pipeline(load())
    # Every default is written out (pii: [email, phone, card] on a regex…): none is misplaced.
    assert check_pipeline(pipeline.model_dump(mode="json")) == pipeline


def test_the_same_evaluator_name_on_two_nodes_is_fine() -> None:
    raw = load()
    node(raw, "answer")["evaluators"].append(
        {"name": "short", "kind": "length", "fields": ["reply"], "min_length": 5}
    )
    check_pipeline(raw)


# --- evaluators: where they go, names ------------------------------------------------------


@pytest.mark.parametrize("node_name", ["start", "end"])
def test_evaluators_only_on_subtasks_and_reviews(node_name: str) -> None:
    raw = load()
    node(raw, node_name)["evaluators"] = [{"name": "x", "kind": "pii", "fields": ["reply"]}]
    assert_only(raw, f"node '{node_name}'", f"setting 'evaluators' does not apply to {node_name}")


def test_evaluator_names_are_unique_per_node() -> None:
    raw = load()
    node(raw, "answer")["evaluators"].append({"name": "no_pii", "kind": "pii", "fields": ["reply"]})
    assert_only(raw, "node 'answer' evaluator 'no_pii'", "duplicate evaluator name 'no_pii'")


def test_an_unnamed_evaluator_is_numbered() -> None:
    raw = load()
    node(raw, "answer")["evaluators"].append({"kind": "pii", "fields": ["reply"]})
    assert_only(raw, "node 'answer' evaluator #6", "missing required setting 'name'")


# --- evaluators: structure ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "phrase"),
    [
        ({"kind": "regx", "pattern": "a"}, "unknown evaluator kind 'regx' (did you mean 'regex'?)"),
        ({"kind": "regex", "patern": "a"}, "unknown setting 'patern' (did you mean 'pattern'?)"),
        ({"kind": "pii", "pii": ["emial"]}, "unknown pii kind 'emial' (did you mean 'email'?)"),
        ({"kind": "pii", "mode": "later"}, "unknown evaluator mode 'later'; use one of: hidden"),
        ({"kind": "keyword", "keywords": ["a"], "match": "some"}, "use any, all or none"),
        ({"kind": "pii", "fields": []}, "setting 'fields'"),
        (
            {"kind": "llm_judge", "judge": {"prompt": "x", "output": "bool"}},
            "unknown judge output 'bool' (did you mean 'boolean'?)",
        ),
        (
            {"kind": "llm_judge", "judge": {"prompt": "x", "tempreature": 1}},
            "unknown setting 'judge.tempreature' (did you mean 'temperature'?)",
        ),
        ({"kind": "llm_judge", "judge": {}}, "missing required setting 'judge.prompt'"),
    ],
)
def test_structural_evaluator_errors_name_the_evaluator(
    settings: dict[str, Any], phrase: str
) -> None:
    raw = load()
    node(raw, "answer")["evaluators"].append({"name": "extra", "fields": ["reply"], **settings})
    assert_only(raw, "node 'answer' evaluator 'extra'", phrase)


def test_bad_evaluator_name() -> None:
    raw = load()
    node(raw, "answer")["evaluators"].append({"name": "no pii", "kind": "pii", "fields": ["reply"]})
    assert_only(raw, "node 'answer' evaluator 'no pii'", "evaluator name 'no pii' is not allowed")


def test_an_evaluator_must_be_a_mapping() -> None:
    raw = load()
    node(raw, "answer")["evaluators"].append("pii")
    assert_only(raw, "node 'answer' evaluator #6", "each evaluator must be a mapping")


# --- evaluators: settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "phrase"),
    [
        ({"kind": "regex"}, "regex evaluators need a pattern"),
        ({"kind": "regex", "pattern": "(a"}, "pattern is not a valid regular expression"),
        ({"kind": "keyword", "keywords": []}, "keyword evaluators need keywords"),
        ({"kind": "exact_match"}, "exact_match evaluators need reference"),
        (
            {"kind": "exact_match", "reference": "sumary"},
            "reference 'sumary' is not a field of this pipeline (did you mean 'summary'?)",
        ),
        ({"kind": "range", "min": 3, "max": 1}, "min 3 is greater than max 1"),
        ({"kind": "length"}, "length evaluators need min_length, max_length or both"),
        ({"kind": "regex", "pattern": "a", "max": 3}, "'max' only applies to range evaluators"),
        ({"kind": "llm_judge"}, "llm_judge evaluators need a judge setting"),
        ({"kind": "pii", "judge": {"prompt": "x"}}, "'judge' only applies to llm_judge"),
        (
            {"kind": "llm_judge", "judge": {"prompt": "x"}, "mode": "inline"},
            "an llm_judge cannot be inline",
        ),
        (
            {
                "kind": "llm_judge",
                "judge": {"prompt": "x", "output": "categorical", "options": ["a"]},
            },
            "categorical judges need at least 2 distinct options",
        ),
        (
            {
                "kind": "llm_judge",
                "judge": {
                    "prompt": "x",
                    "output": "categorical",
                    "options": ["a", "b"],
                    "pass_values": ["c"],
                },
            },
            "judge pass_values has 'c', which is not one of the options",
        ),
        (
            {
                "kind": "llm_judge",
                "judge": {"prompt": "x", "output": "numeric", "min": 2, "max": 1},
            },
            "judge min 2 must be less than max 1",
        ),
        (
            {
                "kind": "llm_judge",
                "judge": {"prompt": "x", "output": "rating", "pass_threshold": 0},
            },
            "pass_threshold 0 is outside the score range 1..5",
        ),
        ({"kind": "pii", "fields": ["rply"]}, "'rply', which is not a field of this pipeline"),
    ],
)
def test_evaluator_settings(settings: dict[str, Any], phrase: str) -> None:
    raw = load()
    node(raw, "answer")["evaluators"].append({"name": "extra", "fields": ["reply"], **settings})
    assert_only(raw, "node 'answer' evaluator 'extra'", phrase)


def test_evaluator_targets_must_be_filled_by_then() -> None:
    raw = load()
    node(raw, "draft")["evaluators"].append({"name": "early", "kind": "pii", "fields": ["reply"]})
    assert_only(
        raw,
        "node 'draft' evaluator 'early'",
        "evaluates 'reply', filled by 'answer', which does not come before this node",
    )


def test_exact_match_reference_must_be_filled_by_then() -> None:
    raw = load()
    node(raw, "draft")["evaluators"].append(
        {"name": "early", "kind": "exact_match", "fields": ["summary"], "reference": "reply"}
    )
    assert_only(raw, "node 'draft' evaluator 'early'", "'reply', filled by 'answer'")


def test_evaluators_may_target_own_upstream_and_seed_fields() -> None:
    raw = load()
    node(raw, "check")["evaluators"].append(
        {
            "name": "all",
            "kind": "length",
            "fields": ["rating", "reply", "question"],
            "max_length": 9,
        }
    )
    check_pipeline(raw)


def test_evaluator_on_an_invalid_field_is_not_told_the_field_is_unknown() -> None:
    raw = load()
    field(raw, "answer", "data")["type"] = "cod"
    assert_only(raw, "node 'answer' field 'data'", "unknown field type 'cod'")


# --- human rating fields --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "phrase"),
    [
        (
            {"type": "long_text", "evaluates": ["reply"]},
            "evaluates needs one of the types boolean, number, integer, select, rating "
            "(this is long_text)",
        ),
        (
            {"type": "number", "source": "static", "value": 1, "evaluates": ["reply"]},
            "setting 'evaluates' only applies to input fields",
        ),
        ({"type": "number", "evaluates": []}, "evaluates is empty"),
        ({"type": "number", "evaluates": ["reply", "reply"]}, "lists 'reply' more than once"),
        ({"type": "number", "criterion": "helpful"}, "'criterion' only applies with evaluates"),
        ({"type": "number", "evaluates": ["reply"], "criterion": " "}, "criterion is empty"),
        ({"type": "number", "evaluates": ["extra"]}, "evaluates names the field itself"),
        (
            {"type": "number", "evaluates": ["rpely"]},
            "evaluates 'rpely', which is not a field of this pipeline (did you mean 'reply'?)",
        ),
    ],
)
def test_rating_fields(settings: dict[str, Any], phrase: str) -> None:
    raw = load()
    node(raw, "check")["fields"].append({"name": "extra", **settings})
    assert_only(raw, "node 'check' field 'extra'", phrase)


def test_rated_fields_must_be_filled_by_then() -> None:
    raw = load()
    node(raw, "draft")["fields"].append({"name": "early", "type": "rating", "evaluates": ["reply"]})
    assert_only(
        raw,
        "node 'draft' field 'early'",
        "evaluates 'reply', filled by 'answer', which does not come before this node; rate "
        "fields of this node or of upstream nodes",
    )


def test_a_rating_may_rate_fields_of_its_own_node() -> None:
    raw = load()
    node(raw, "answer")["fields"].append(
        {"name": "confidence", "type": "rating", "evaluates": ["reply"]}
    )
    check_pipeline(raw)


# --- prompt templates -----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["prompt", "system"])
def test_template_syntax_error(key: str) -> None:
    raw = load()
    field(raw, "draft", "title")["llm"][key] = "Title for {{ question"
    assert_only(
        raw, "node 'draft' field 'title'", f"llm {key} template has a syntax error on line 1"
    )


def test_template_unknown_variable_suggests_a_field() -> None:
    raw = load()
    field(raw, "draft", "title")["llm"]["prompt"] = "Title for {{ questoin }}"
    assert_only(
        raw,
        "node 'draft' field 'title'",
        "llm prompt template refers to 'questoin', which is not a field of this pipeline "
        "(did you mean 'question'?)",
    )


def test_template_naming_a_node() -> None:
    raw = load()
    field(raw, "draft", "title")["llm"]["prompt"] = "Title for {{ start }}"
    assert_only(raw, "node 'draft' field 'title'", "'start' is a node, not a field")


def test_template_may_not_include_other_templates() -> None:
    raw = load()
    field(raw, "draft", "title")["llm"]["prompt"] = "{% include 'header.txt' %}{{ question }}"
    assert_only(raw, "node 'draft' field 'title'", "llm prompt template uses include")


def test_template_variable_filled_downstream() -> None:
    raw = load()
    field(raw, "draft", "title")["llm"]["prompt"] = "Title for {{ reply }}"
    assert_only(
        raw,
        "node 'draft' field 'title'",
        "llm prompt template refers to 'reply', filled by 'answer', which does not come before "
        "this node; a template may only use seed data",
    )


def test_llm_template_may_not_use_its_own_nodes_generated_fields() -> None:
    raw = load()
    field(raw, "draft", "title")["llm"]["prompt"] = "Title for {{ summary }}"
    assert_only(
        raw,
        "node 'draft' field 'title'",
        "'summary', a field of this same node, which has no value yet when the model runs",
    )


def test_judge_template_problems_name_the_evaluator() -> None:
    raw = load()
    evaluator(raw, "draft", "has_digits").update(
        kind="llm_judge",
        pattern=None,
        judge={"prompt": "{{ summary }} vs {{ reply }} and {{ nope }}", "output": "boolean"},
    )
    found = problems(raw)
    assert [(p.where, p.message.split(";")[0]) for p in found] == [
        (
            "node 'draft' evaluator 'has_digits'",
            "judge prompt template refers to 'nope', which is not a field of this pipeline",
        ),
        (
            "node 'draft' evaluator 'has_digits'",
            "judge prompt template refers to 'reply', filled by 'answer', which does not come "
            "before this node",
        ),
    ]


def test_judge_templates_may_not_read_internals_globals_or_huge_constants() -> None:
    raw = load()
    evaluator(raw, "answer", "helpful")["judge"]["prompt"] = (
        "{{ reply.__class__ }} {{ range(3) }} {{ 9 ** 4000000 }}"
    )
    found = problems(raw)
    assert {p.where for p in found} == {"node 'answer' evaluator 'helpful'"}
    assert [p.message.split(";")[0] for p in found] == [
        "judge prompt template reads reply.__class__, a Python internal",
        "judge prompt template computes a value the sandbox refuses: exponent 4000000 is too "
        "large (at most 1000)",
        "judge prompt template uses 'range', a Jinja global that prompt templates do not have",
    ]


def test_judge_system_template_syntax() -> None:
    raw = load()
    evaluator(raw, "answer", "helpful")["judge"]["system"] = "{% if reply %}"
    assert_only(
        raw, "node 'answer' evaluator 'helpful'", "judge system template has a syntax error"
    )


def test_an_invalid_fields_templates_wait_for_the_field_to_be_valid() -> None:
    raw = load()
    field(raw, "draft", "title")["llm"].update(prompt="{{ nope }}", tempreture=1)
    assert_only(raw, "node 'draft' field 'title'", "unknown setting 'llm.tempreture'")


# --- LLM field groups -----------------------------------------------------------------------


def test_a_group_shares_one_llm_setting() -> None:
    raw = load()
    field(raw, "draft", "keywords")["llm"] = {"prompt": "Keywords: {{ question }}", "model": "m"}
    assert_only(
        raw,
        "node 'draft' field 'keywords'",
        "field 'keywords' is in group 'gen' with 'summary', but their llm settings differ "
        "(model, system, prompt)",
    )


def test_group_only_on_llm_fields() -> None:
    raw = load()
    field(raw, "answer", "reply")["group"] = "gen"
    assert_only(
        raw, "node 'answer' field 'reply'", "setting 'group' only applies to fields with source"
    )


def test_group_must_not_be_empty() -> None:
    raw = load()
    field(raw, "draft", "title")["group"] = " "
    assert_only(raw, "node 'draft' field 'title'", "group is empty")


def test_the_same_group_name_on_two_nodes_is_two_groups() -> None:
    raw = load()
    node(raw, "answer")["fields"].append(
        {
            "name": "hint",
            "type": "short_text",
            "source": "llm",
            "group": "gen",
            "llm": {"prompt": "A hint for {{ question }}"},
        }
    )
    check_pipeline(raw)


def test_llm_field_needs_llm() -> None:
    raw = load()
    del field(raw, "draft", "title")["llm"]
    assert_only(raw, "node 'draft' field 'title'", "source 'llm' needs an llm setting")


def test_structured_output_is_fine_anywhere() -> None:
    raw = load()
    field(raw, "draft", "title")["llm"]["structured_output"] = True
    check_pipeline(raw)


# --- many problems at once ------------------------------------------------------------------


def test_evaluator_problems_come_after_the_nodes_fields_in_one_pass() -> None:
    raw = load()
    node(raw, "answer")["evaluators"].insert(0, {"name": "bad", "kind": "regex", "fields": ["x"]})
    field(raw, "answer", "reply")["group"] = "g"
    field(raw, "check", "tone")["evaluates"] = ["reply", "nothing"]
    found = [(p.where, p.message.split(";")[0].split(" (")[0]) for p in problems(raw)]
    assert found == [
        ("node 'answer' field 'reply'", "setting 'group' only applies to fields with source: llm"),
        ("node 'answer' evaluator 'bad'", "regex evaluators need a pattern"),
        (
            "node 'answer' evaluator 'bad'",
            "fields lists 'x', which is not a field of this pipeline",
        ),
        ("node 'check' field 'tone'", "evaluates 'nothing', which is not a field of this pipeline"),
    ]
