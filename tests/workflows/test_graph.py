"""Pipeline validation: each check on its own, many problems at once, files and examples."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.pipelines import load_pipeline_file, load_raw
from workflows.graph import Pipeline, PipelineInvalid, Problem
from workflows.graph_checks import check_pipeline, validate_pipeline

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE = """
name: t
nodes:
  - {name: start, kind: start, next: [label]}
  - name: label
    kind: subtask
    roles: [labeler]
    fields:
      - {name: text, type: long_text, source: predefined}
      - {name: label, type: select, options: [spam, ham]}
    next: [check]
  - {name: check, kind: review, roles: [reviewer], next: [end]}
  - {name: end, kind: end}
"""

GATED = """
name: g
nodes:
  - {name: start, kind: start, next: [classify]}
  - name: classify
    kind: subtask
    fields:
      - {name: ticket, type: long_text, source: predefined}
      - {name: category, type: select, options: [urgent, other]}
    next: [route]
  - name: route
    kind: gate
    branches:
      - {when: 'category == "urgent"', to: urgent}
    default: end
  - name: urgent
    kind: subtask
    fields: [{name: reply, type: long_text}]
    next: [end]
  - {name: end, kind: end}
"""


def load(text: str) -> dict[str, Any]:
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


def problems(raw: Any) -> list[Problem]:
    with pytest.raises(PipelineInvalid) as info:
        check_pipeline(raw)
    return info.value.problems


def only_problem(raw: Any) -> Problem:
    found = problems(raw)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def assert_only(raw: Any, where: str, phrase: str) -> None:
    problem = only_problem(raw)
    assert problem.where == where
    assert phrase in problem.message, problem.message


# --- the valid baselines ------------------------------------------------------------------


@pytest.mark.parametrize("text", [BASE, GATED])
def test_baselines_are_valid(text: str) -> None:
    pipeline = check_pipeline(load(text))
    assert isinstance(pipeline, Pipeline)
    assert validate_pipeline(load(text)) == pipeline


def test_a_dumped_pipeline_validates_again() -> None:
    pipeline = check_pipeline(load(GATED))
    # A dump carries every default (fields: [] on a gate…); those are not misplaced settings.
    assert check_pipeline(pipeline.model_dump(mode="json")) == pipeline
    assert check_pipeline(pipeline.model_dump()) == pipeline


# --- structure ------------------------------------------------------------------------------


def test_not_a_mapping() -> None:
    assert_only(["nodes"], "pipeline", "must be a mapping with name and nodes, not list")


def test_unknown_field_type() -> None:
    raw = load(BASE)
    field(raw, "label", "label")["type"] = "strng"
    problem = only_problem(raw)
    assert problem.where == "node 'label' field 'label'"
    assert problem.message.startswith("unknown field type 'strng'")
    assert "use one of: short_text, long_text, code" in problem.message


def test_unknown_node_kind() -> None:
    raw = load(BASE)
    node(raw, "check")["kind"] = "reveiw"
    problem = only_problem(raw)
    assert problem.where == "node 'check'"
    assert "unknown node kind 'reveiw' (did you mean 'review'?)" in problem.message
    assert "start, subtask, review, gate, adjudicate, end" in problem.message


def test_unknown_node_setting_suggests_the_right_one() -> None:
    raw = load(BASE)
    node(raw, "check")["max_rereview"] = 2
    assert_only(
        raw, "node 'check'", "unknown setting 'max_rereview' (did you mean 'max_rereviews'?)"
    )


def test_unknown_field_setting() -> None:
    raw = load(BASE)
    field(raw, "label", "label")["choices"] = ["a"]
    assert_only(raw, "node 'label' field 'label'", "unknown setting 'choices'")


def test_unknown_pipeline_setting_lists_the_allowed_ones() -> None:
    raw = load(BASE)
    raw["owner"] = "me"
    assert_only(raw, "pipeline", "unknown setting 'owner'; allowed settings: name, description")


def test_unknown_llm_setting() -> None:
    raw = load(BASE)
    node(raw, "label")["fields"].append(
        {"name": "draft", "type": "long_text", "source": "llm", "llm": {"prompt": "x", "temp": 1}}
    )
    assert_only(raw, "node 'label' field 'draft'", "unknown setting 'llm.temp'")


def test_missing_required_settings() -> None:
    raw = load(BASE)
    del field(raw, "label", "label")["type"]
    assert_only(raw, "node 'label' field 'label'", "missing required setting 'type'")
    raw = load(BASE)
    del raw["name"]
    assert_only(raw, "pipeline", "missing required setting 'name'")


def test_field_without_name_is_numbered() -> None:
    raw = load(BASE)
    del field(raw, "label", "label")["name"]
    assert_only(raw, "node 'label' field #2", "missing required setting 'name'")


def test_bad_names() -> None:
    raw = load(BASE)
    raw["name"] = "my pipeline"
    assert_only(raw, "pipeline", "pipeline name 'my pipeline' is not allowed")
    raw = load(BASE)
    field(raw, "label", "label")["name"] = "the-label"
    assert_only(raw, "node 'label' field 'the-label'", "field name 'the-label' is not allowed")


def test_next_written_as_a_string() -> None:
    raw = load(BASE)
    node(raw, "check")["next"] = "end"
    assert_only(raw, "node 'check'", "must be a list of node names, e.g. next: [end]")


def test_yaml_booleans_in_options_get_a_hint() -> None:
    raw = load(BASE)
    field(raw, "label", "label")["options"] = yaml.safe_load("[yes, no]")
    found = problems(raw)
    assert {p.where for p in found} == {"node 'label' field 'label'"}
    assert all("put it in quotes" in p.message for p in found)


def test_claim_timeout() -> None:
    raw = load(BASE)
    raw["claim_timeout"] = "30m"
    assert check_pipeline(raw).claim_timeout_seconds == 1800
    raw["claim_timeout"] = "soon"
    assert_only(raw, "pipeline", "claim_timeout 'soon' is not a duration; write e.g. 90s, 30m")


def test_bad_claim_timeout_does_not_hide_node_problems() -> None:
    raw = load(BASE)
    raw["claim_timeout"] = "soon"
    field(raw, "label", "label")["type"] = "strng"
    assert [p.where for p in problems(raw)] == ["pipeline", "node 'label' field 'label'"]


def test_claim_limits_must_be_at_least_one() -> None:
    raw = load(BASE)
    raw["claim_limits"] = {"labeler": 0, "reviewer": 2}
    assert_only(raw, "pipeline", "claim_limits for role 'labeler' is 0; use 1 or more")


def test_roles_must_be_non_empty() -> None:
    raw = load(BASE)
    node(raw, "label")["roles"] = ["labeler", " "]
    assert_only(raw, "node 'label'", "roles contains an empty name")
    raw = load(BASE)
    node(raw, "label")["roles"] = [3]
    assert_only(raw, "node 'label'", "setting 'roles[0]'")


def test_structural_and_topology_problems_are_reported_together() -> None:
    raw = load(BASE)
    field(raw, "label", "label")["type"] = "strng"
    node(raw, "check")["next"] = ["end", "ned"]
    found = problems(raw)
    assert [p.where for p in found] == ["node 'label' field 'label'", "node 'check'"]
    assert "leads to 'ned', which is not defined" in found[1].message
    assert "did you mean 'end'" in found[1].message


# --- topology -------------------------------------------------------------------------------


def test_missing_start() -> None:
    raw = load(BASE)
    raw["nodes"] = [n for n in raw["nodes"] if n["name"] != "start"]
    assert_only(raw, "pipeline", "there is no start node; add exactly one with kind: start")


def test_missing_end() -> None:
    raw = load(BASE)
    raw["nodes"] = [n for n in raw["nodes"] if n["name"] != "end"]
    node(raw, "check")["next"] = []
    assert_only(raw, "pipeline", "there is no end node")


def test_second_start() -> None:
    raw = load(BASE)
    raw["nodes"].append({"name": "begin", "kind": "start", "next": ["label"]})
    assert_only(raw, "node 'begin'", "a second start node (the first is 'start')")


def test_second_end() -> None:
    raw = load(BASE)
    raw["nodes"].append({"name": "finish", "kind": "end"})
    found = problems(raw)
    assert found[0].where == "node 'finish'"
    assert "a second end node (the first is 'end')" in found[0].message


def test_duplicate_node_names() -> None:
    raw = load(BASE)
    raw["nodes"].insert(3, {"name": "check", "kind": "review", "next": ["end"]})
    found = problems(raw)
    assert found[0] == Problem(
        where="node 'check'", message="duplicate node name 'check'; node names must be unique"
    )


def test_edge_to_unknown_node() -> None:
    raw = load(BASE)
    node(raw, "label")["next"] = ["check", "x"]
    assert_only(
        raw, "node 'label'", "node 'label' leads to 'x', which is not defined; define it or fix"
    )


def test_start_leads_only_to_subtasks() -> None:
    raw = load(BASE)
    node(raw, "start")["next"] = ["label", "check"]
    found = problems(raw)
    assert found[0].where == "node 'start'"
    assert "start leads to 'check', a review node; start may only lead to subtask" in (
        found[0].message
    )


def test_start_leads_nowhere() -> None:
    raw = load(BASE)
    node(raw, "start")["next"] = []
    found = problems(raw)
    assert found[0] == Problem(
        where="node 'start'", message="start leads nowhere; set next to the first subtask(s)"
    )


def test_start_with_incoming_edges() -> None:
    raw = load(BASE)
    node(raw, "check")["next"] = ["end", "start"]
    found = problems(raw)
    assert found[0].where == "node 'start'"
    assert "start has incoming edges (from 'check')" in found[0].message
    assert any("cycle start -> label -> check -> start" in p.message for p in found)


def test_end_with_outgoing_edges() -> None:
    raw = load(BASE)
    raw["nodes"].insert(
        3,
        {
            "name": "extra",
            "kind": "subtask",
            "fields": [{"name": "x", "type": "boolean"}],
            "next": ["end"],
        },
    )
    node(raw, "end")["next"] = ["extra"]
    found = problems(raw)
    assert Problem(where="node 'end'", message="end must not lead anywhere; remove its next") in (
        found
    )


def test_unreachable_node() -> None:
    raw = load(BASE)
    raw["nodes"].insert(
        3,
        {
            "name": "orphan",
            "kind": "subtask",
            "fields": [{"name": "x", "type": "boolean"}],
            "next": ["end"],
        },
    )
    assert_only(raw, "node 'orphan'", "not reachable from start (nothing leads to it)")


def test_node_that_cannot_reach_end() -> None:
    raw = load(BASE)
    node(raw, "label")["next"] = ["check", "side"]
    raw["nodes"].insert(
        3, {"name": "side", "kind": "subtask", "fields": [{"name": "x", "type": "boolean"}]}
    )
    assert_only(raw, "node 'side'", "node 'side' cannot reach end: it leads nowhere")


def test_cycle_names_the_path() -> None:
    raw = load(BASE)
    node(raw, "check")["next"] = ["end", "label"]
    found = problems(raw)
    cycle = [p for p in found if "cycle" in p.message]
    assert len(cycle) == 1
    assert cycle[0].where == "node 'label'"
    assert "cycle label -> check -> label" in cycle[0].message
    assert "rework loops are implied by review nodes" in cycle[0].message


def test_self_loop() -> None:
    raw = load(BASE)
    node(raw, "label")["next"] = ["check", "label"]
    found = problems(raw)
    assert any("cycle label -> label" in p.message for p in found)


# --- gates ----------------------------------------------------------------------------------


def test_gate_needs_branches() -> None:
    raw = load(GATED)
    node(raw, "route")["branches"] = []
    node(raw, "classify")["next"] = ["route", "urgent"]
    assert_only(raw, "node 'route'", "gate has no branches; add at least one")


def test_gate_needs_default() -> None:
    raw = load(GATED)
    del node(raw, "route")["default"]
    node(raw, "urgent")["next"] = ["end"]
    found = problems(raw)
    assert (
        Problem(
            where="node 'route'",
            message="gate needs a default: the node to take when no condition matches",
        )
        in found
    )


def test_gate_must_not_use_next() -> None:
    raw = load(GATED)
    node(raw, "route")["next"] = ["end"]
    assert_only(raw, "node 'route'", "gate nodes do not use next; route with branches")


def test_gate_condition_must_parse() -> None:
    raw = load(GATED)
    node(raw, "route")["branches"][0]["when"] = "__import__('os').system('x')"
    assert_only(raw, "node 'route'", "branch 1 condition: ")


def test_gate_condition_syntax_error() -> None:
    raw = load(GATED)
    node(raw, "route")["branches"][0]["when"] = "category =="
    assert_only(raw, "node 'route'", "is not a valid expression")


def test_gate_condition_unknown_field() -> None:
    raw = load(GATED)
    node(raw, "route")["branches"][0]["when"] = 'categroy == "urgent"'
    problem = only_problem(raw)
    assert problem.where == "node 'route'"
    assert "condition refers to unknown field 'categroy'" in problem.message
    assert "known fields: ticket, category, reply" in problem.message


def test_gate_condition_qualified_references() -> None:
    raw = load(GATED)
    node(raw, "route")["branches"][0]["when"] = 'classify.category == "urgent"'
    check_pipeline(raw)
    node(raw, "route")["branches"][0]["when"] = 'classify.catgory == "urgent"'
    assert_only(raw, "node 'route'", "node 'classify' has no field 'catgory'")
    node(raw, "route")["branches"][0]["when"] = 'clasify.category == "urgent"'
    assert_only(raw, "node 'route'", "there is no node 'clasify'")


def test_gate_condition_on_a_field_filled_downstream() -> None:
    raw = load(GATED)
    node(raw, "route")["branches"][0]["when"] = 'reply == "x"'
    assert_only(raw, "node 'route'", "which is filled by 'urgent' after this gate")


def test_gate_condition_on_predefined_data() -> None:
    raw = load(GATED)
    node(raw, "route")["branches"][0]["when"] = 'contains(ticket, "outage")'
    check_pipeline(raw)


def test_gate_branch_missing_to() -> None:
    raw = load(GATED)
    del node(raw, "route")["branches"][0]["to"]
    node(raw, "classify")["next"] = ["route", "urgent"]
    assert_only(raw, "node 'route'", "branch 1: missing required setting 'to'")


# --- reviews --------------------------------------------------------------------------------


def test_review_with_no_predecessor() -> None:
    raw = load(BASE)
    node(raw, "label")["next"] = ["end"]
    node(raw, "start")["next"] = ["label"]
    found = problems(raw)
    assert (
        Problem(
            where="node 'check'",
            message=(
                "review node 'check' has nothing to review: nothing leads to it; place it right "
                "after the subtask it reviews"
            ),
        )
        in found
    )


def test_review_with_two_predecessors() -> None:
    raw = load(BASE)
    raw["nodes"].insert(
        2,
        {
            "name": "other",
            "kind": "subtask",
            "fields": [{"name": "x", "type": "boolean"}],
            "next": ["check"],
        },
    )
    node(raw, "start")["next"] = ["label", "other"]
    assert_only(raw, "node 'check'", "has nothing to review: it follows 2 nodes ('label', 'other')")


def test_review_must_follow_a_subtask() -> None:
    raw = load(GATED)
    node(raw, "route")["default"] = "check"
    raw["nodes"].insert(4, {"name": "check", "kind": "review", "next": ["end"]})
    assert_only(raw, "node 'check'", "it follows 'route', a gate node")


def test_review_names_what_it_reviews() -> None:
    raw = load(BASE)
    node(raw, "check")["reviews"] = "label"
    assert check_pipeline(raw).reviewed_node(check_pipeline(raw).node("check")) == "label"
    node(raw, "check")["reviews"] = "start"
    assert_only(raw, "node 'check'", "it reviews 'start', but the node before it is 'label'")


def test_escalation_needs_a_role() -> None:
    raw = load(BASE)
    node(raw, "check")["on_limit"] = "escalate"
    assert_only(raw, "node 'check'", "on_limit: escalate needs escalation_role")
    node(raw, "check")["escalation_role"] = "admin"
    check_pipeline(raw)


@pytest.mark.parametrize("source", ["llm", "predefined"])
def test_review_fields_are_for_the_reviewer(source: str) -> None:
    raw = load(BASE)
    spec: dict[str, Any] = {"name": "verdict", "type": "long_text", "source": source}
    if source == "llm":
        spec["llm"] = {"prompt": "Judge {{ label }}"}
    node(raw, "check")["fields"] = [spec]
    assert_only(raw, "node 'check' field 'verdict'", f"source '{source}' is not allowed here")


def test_review_input_fields_are_fine() -> None:
    raw = load(BASE)
    node(raw, "check")["fields"] = [{"name": "quality", "type": "rating"}]
    check_pipeline(raw)


# --- settings that do not apply -------------------------------------------------------------


@pytest.mark.parametrize(
    ("node_name", "setting", "value", "kind"),
    [
        ("route", "fields", [{"name": "z", "type": "boolean"}], "gate"),
        ("route", "max_rereviews", 1, "gate"),
        ("classify", "branches", [{"when": "True", "to": "end"}], "subtask"),
        ("classify", "rejection_routing", "same_person", "subtask"),
        ("start", "roles", ["labeler"], "start"),
        ("end", "fields", [{"name": "z", "type": "boolean"}], "end"),
    ],
)
def test_settings_that_do_not_apply(node_name: str, setting: str, value: Any, kind: str) -> None:
    raw = load(GATED)
    node(raw, node_name)[setting] = value
    assert_only(raw, f"node '{node_name}'", f"setting '{setting}' does not apply to {kind} nodes")


# --- subtasks and fields --------------------------------------------------------------------


def test_subtask_needs_fields() -> None:
    raw = load(BASE)
    node(raw, "label")["fields"] = []
    assert_only(raw, "node 'label'", "subtask has no fields")


def test_subtask_needs_work_to_do() -> None:
    raw = load(BASE)
    node(raw, "label")["fields"] = [{"name": "text", "type": "long_text", "source": "predefined"}]
    assert_only(raw, "node 'label'", "subtask has only predefined/static fields")


def test_field_names_unique_across_the_pipeline() -> None:
    raw = load(GATED)
    field(raw, "urgent", "reply")["name"] = "category"
    assert_only(
        raw, "node 'urgent' field 'category'", "field name 'category' is already used by node"
    )


def test_field_names_unique_within_a_node() -> None:
    raw = load(BASE)
    node(raw, "label")["fields"].append({"name": "label", "type": "short_text"})
    assert_only(raw, "node 'label' field 'label'", "already used by this node")


def test_the_same_predefined_column_may_appear_twice() -> None:
    raw = load(GATED)
    node(raw, "urgent")["fields"].insert(
        0, {"name": "ticket", "type": "long_text", "source": "predefined"}
    )
    check_pipeline(raw)
    field(raw, "urgent", "ticket")["type"] = "short_text"
    assert_only(raw, "node 'urgent' field 'ticket'", "declared as long_text on node 'classify'")


@pytest.mark.parametrize(
    ("settings", "phrase"),
    [
        ({"type": "select", "options": ["a"]}, "select fields need at least 2 options, got 1"),
        ({"type": "select"}, "select fields need at least 2 options, got 0"),
        ({"type": "multi_select", "options": ["a"]}, "need at least 2 options"),
        ({"type": "ranking", "options": []}, "need at least 2 options"),
        ({"type": "pairwise", "options": ["a", "b", "c"]}, "exactly 2 options, got 3"),
        ({"type": "select", "options": ["a", "b", "a"]}, "option 'a' is listed more than once"),
        ({"type": "select", "options": ["a", " "]}, "options contains an empty value"),
        ({"type": "number", "min": 5, "max": 1}, "min 5 is greater than max 1"),
        ({"type": "rating", "min": 7}, "min 7 is greater than max 5"),
        ({"type": "rating", "min": 0.5}, "rating min must be a whole number"),
        ({"type": "multi_select", "options": ["a", "b"], "max": 3}, "max 3 is more than the 2"),
        ({"type": "multi_select", "options": ["a", "b"], "min": -1}, "use a whole number >= 0"),
        ({"type": "short_text", "min_length": 5, "max_length": 2}, "min_length 5 is greater"),
        ({"type": "long_text", "options": ["a", "b"]}, "'options' does not apply to long_text"),
        ({"type": "short_text", "min": 1}, "'min' does not apply to short_text"),
        ({"type": "number", "max_length": 3}, "'max_length' does not apply to number"),
        ({"type": "select", "options": ["a", "b"], "allow_tie": True}, "'allow_tie' does not"),
        ({"type": "short_text", "language": "python"}, "'language' does not apply"),
        ({"type": "long_text", "source": "llm"}, "source 'llm' needs an llm setting"),
        ({"type": "long_text", "llm": {"prompt": "x"}}, "'llm' only applies to fields with"),
        ({"type": "long_text", "source": "llm", "llm": {"prompt": " "}}, "llm prompt is empty"),
        ({"type": "long_text", "source": "static"}, "source 'static' needs a value"),
        ({"type": "long_text", "value": "x"}, "'value' only applies to static fields"),
        (
            {"type": "long_text", "source": "llm", "llm": {"prompt": "x"}, "prefill": "text"},
            "'prefill' only applies to input fields",
        ),
    ],
)
def test_field_settings(settings: dict[str, Any], phrase: str) -> None:
    raw = load(BASE)
    node(raw, "label")["fields"].append({"name": "extra", **settings})
    assert_only(raw, "node 'label' field 'extra'", phrase)


def test_prefill_must_name_a_field() -> None:
    raw = load(BASE)
    node(raw, "label")["fields"].append({"name": "answer", "type": "long_text", "prefill": "txt"})
    assert_only(raw, "node 'label' field 'answer'", "prefill names 'txt', which is not a field")


def test_prefill_must_come_from_upstream() -> None:
    raw = load(GATED)
    field(raw, "classify", "ticket")["source"] = "input"
    field(raw, "classify", "ticket")["prefill"] = "reply"
    assert_only(raw, "node 'classify' field 'ticket'", "does not come before this node")


def test_prefill_from_upstream_and_predefined_fields() -> None:
    raw = load(GATED)
    field(raw, "urgent", "reply")["prefill"] = "category"
    check_pipeline(raw)
    field(raw, "urgent", "reply")["prefill"] = "ticket"
    check_pipeline(raw)


# --- many problems at once, in document order -----------------------------------------------

MANY = """
name: many
claim_timeout: soon
claim_limits: {labeler: 0}
nodes:
  - {name: start, kind: start, next: [route, label]}
  - name: label
    kind: subtask
    roles: [labeler]
    nxt: [end]
    fields:
      - {name: text, type: strng}
      - {name: choice, type: select, options: [a]}
      - {name: score, type: number, min: 5, max: 1}
  - name: route
    kind: gate
    next: [end]
    branches:
      - {when: "choice == 'a' and bogus > 1", to: missing}
      - {when: "__import__('os')", to: end}
  - {name: check, kind: review, on_limit: escalate}
  - name: orphan
    kind: subtask
    fields: [{name: choice, type: short_text}]
    next: [loop]
  - name: loop
    kind: subtask
    fields: [{name: x, type: boolean, prefill: nope}]
    next: [orphan]
  - {name: end, kind: end, next: [start]}
"""


def test_every_problem_is_reported_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(MANY)
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline_file(path)
    found = [(p.where, p.message) for p in info.value.problems]
    expected = [
        ("pipeline", "claim_timeout 'soon' is not a duration"),
        ("pipeline", "claim_limits for role 'labeler' is 0"),
        ("node 'start'", "start leads to 'route', a gate node"),
        ("node 'start'", "start has incoming edges (from 'end')"),
        ("node 'start'", "cycle start -> route -> end -> start"),
        ("node 'label'", "unknown setting 'nxt' (did you mean 'next'?)"),
        ("node 'label'", "cannot reach end"),
        ("node 'label' field 'text'", "unknown field type 'strng'"),
        ("node 'label' field 'choice'", "need at least 2 options"),
        ("node 'label' field 'score'", "min 5 is greater than max 1"),
        ("node 'route'", "leads to 'missing', which is not defined"),
        ("node 'route'", "gate nodes do not use next"),
        ("node 'route'", "gate needs a default"),
        ("node 'route'", "branch 1 condition refers to unknown field 'bogus'"),
        ("node 'route'", "branch 1 condition refers to 'choice', which is filled by"),
        ("node 'route'", "branch 2 condition: \"__import__('os')\" uses a call"),
        ("node 'check'", "not reachable from start"),
        ("node 'check'", "cannot reach end"),
        ("node 'check'", "review node 'check' has nothing to review"),
        ("node 'check'", "on_limit: escalate needs escalation_role"),
        ("node 'orphan'", "not reachable from start"),
        ("node 'orphan'", "cycle orphan -> loop -> orphan"),
        ("node 'orphan' field 'choice'", "field name 'choice' is already used by node 'label'"),
        ("node 'loop'", "not reachable from start"),
        ("node 'loop' field 'x'", "prefill names 'nope', which is not a field"),
        ("node 'end'", "end must not lead anywhere"),
    ]
    assert len(found) == len(expected), "\n".join(f"{w}: {m}" for w, m in found)
    for (where, message), (want_where, phrase) in zip(found, expected, strict=True):
        assert where == want_where
        assert phrase in message, message
    assert "26 problem(s)" in str(info.value)


def test_problem_order_is_stable() -> None:
    first = [str(p) for p in problems(load(MANY))]
    assert first == [str(p) for p in problems(load(MANY))]


# --- files ----------------------------------------------------------------------------------


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))


def test_the_examples_exist() -> None:
    names = {p.name for p in example_files()}
    assert {
        "label-review.yaml",
        "triage-gate.yaml",
        "fan-out-join.yaml",
        "llm-draft-edit.yaml",
    } <= names


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_examples_validate(path: Path) -> None:
    pipeline = load_pipeline_file(path)
    assert pipeline.description
    assert check_pipeline(pipeline.model_dump(mode="json")) == pipeline


def test_label_review_example() -> None:
    pipeline = load_pipeline_file(EXAMPLES / "label-review.yaml")
    assert pipeline.claim_timeout_seconds == 1800
    check = pipeline.node("check")
    assert check.max_rereviews == 2
    assert check.rejection_routing == "same_person"
    assert pipeline.reviewed_node(check) == "label"
    assert [f.name for f in pipeline.dataset_fields()] == ["text"]


def test_llm_draft_example_has_an_llm_node() -> None:
    pipeline = load_pipeline_file(EXAMPLES / "llm-draft-edit.yaml")
    assert pipeline.node("draft").is_llm_node
    assert pipeline.node("edit").is_human
    assert pipeline.node("edit").fields[0].prefill == "draft_answer"


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(load(BASE)))
    assert load_pipeline_file(path).name == "t"


@pytest.mark.parametrize(
    ("name", "content", "phrase"),
    [
        ("p.txt", "name: x", "unsupported file type '.txt'; write the pipeline as .yaml"),
        ("p.yaml", "", "the file is empty"),
        ("p.yaml", "name: x\nnodes: [\n  - a\n", "invalid YAML at line"),
        (
            "p.yaml",
            "name: x\nnodes:\n  - {name: a, next: [b], next: [c]}\n",
            "duplicate key 'next'",
        ),
        ("p.json", '{"name": "x",\n "nodes": [}', "invalid JSON at line 2, column 12"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: str, phrase: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PipelineInvalid) as info:
        load_raw(path)
    [problem] = info.value.problems
    assert problem.where == "file"
    assert phrase in problem.message
    assert str(path) in problem.message


def test_yaml_errors_give_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: x\nnodes:\n  - name: a\n    kind: [subtask\n")
    with pytest.raises(PipelineInvalid) as info:
        load_raw(path)
    assert "invalid YAML at line 5, column 1: expected ',' or ']'" in (
        info.value.problems[0].message
    )


def test_a_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    # six levels of ten aliases stand for a million values in a few hundred bytes
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcde", "bcdef", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines))
    with pytest.raises(PipelineInvalid) as info:
        load_raw(path)
    problem = info.value.problems[0]
    assert problem.where == "file" and str(path) in problem.message
    assert "expands to too many values" in problem.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline_file(tmp_path / "nope.yaml")
    assert info.value.problems == [
        Problem(where="file", message=f"{tmp_path / 'nope.yaml'}: no such file; check the path")
    ]
