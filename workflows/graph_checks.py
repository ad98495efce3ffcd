"""Whole-pipeline checks: every problem in a pipeline definition, reported at once.

:func:`validate_pipeline` (also named :func:`check_pipeline`) validates the
structure with the pydantic models, translating their errors into :class:`Problem` s that name
the node and field, and then checks the graph and the settings that only make sense together:
one start and one end, reachability, cycles, gate conditions, what each review reviews, unique
field names, options, prefills, evaluators and human ratings, LLM field groups, the fields
each prompt template refers to (seed data or fields filled upstream), and chains (no chain to
the pipeline itself, one chain per target and trigger, mappings that name fields and valid
JSON paths). The graph checks run on a
lenient skeleton read straight from the raw definition, so a structural mistake in one node never
hides a topology mistake elsewhere: the operator fixes the file in one pass.

Deterministic, no I/O: imported inside the workflow sandbox. Reading files lives in
``conveyor/pipelines.py``.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateSyntaxError, meta
from pydantic import BaseModel, ValidationError

from workflows import expr, templates
from workflows.chains import is_field_name, parse_path
from workflows.evaluators import HUMAN_RATING_TYPES, evaluator_problems
from workflows.graph import (
    ChainSpec,
    ChainTrigger,
    EvaluatorKind,
    EvaluatorMode,
    EvaluatorSpec,
    FieldSource,
    FieldSpec,
    FieldType,
    GateBranch,
    JudgeOutput,
    JudgeSpec,
    LimitAction,
    LlmSpec,
    NodeKind,
    NodeSpec,
    PiiKind,
    Pipeline,
    PipelineInvalid,
    Problem,
    RejectionRouting,
    parse_duration,
)

__all__ = ["chain_problems", "check_pipeline", "shortest_cycle", "validate_pipeline"]

PIPELINE = "pipeline"

_OPTION_TYPES = frozenset(
    {FieldType.SELECT, FieldType.MULTI_SELECT, FieldType.RANKING, FieldType.PAIRWISE}
)
_RANGE_TYPES = frozenset(
    {FieldType.NUMBER, FieldType.INTEGER, FieldType.RATING, FieldType.MULTI_SELECT}
)
_LENGTH_TYPES = frozenset(
    {FieldType.SHORT_TEXT, FieldType.LONG_TEXT, FieldType.CODE, FieldType.URL}
)
_HUMAN_KINDS = frozenset({NodeKind.SUBTASK, NodeKind.REVIEW})

# Node settings and the kinds they apply to. ``name``, ``kind``, ``title`` and ``instructions``
# apply to every kind; ``next`` on gates and end nodes has its own, more specific message.
_NODE_SETTINGS: dict[str, frozenset[NodeKind]] = {
    "next": frozenset({NodeKind.START, NodeKind.SUBTASK, NodeKind.REVIEW}),
    "roles": _HUMAN_KINDS,
    "fields": _HUMAN_KINDS,
    "evaluators": _HUMAN_KINDS,
    "reviews": frozenset({NodeKind.REVIEW}),
    "rejection_routing": frozenset({NodeKind.REVIEW}),
    "prevent_self_review": frozenset({NodeKind.REVIEW}),
    "max_rereviews": frozenset({NodeKind.REVIEW}),
    "on_limit": frozenset({NodeKind.REVIEW}),
    "escalation_role": frozenset({NodeKind.REVIEW}),
    "branches": frozenset({NodeKind.GATE}),
    "default": frozenset({NodeKind.GATE}),
}

# Which model a pydantic error location points into, for "unknown setting" suggestions.
_SETTINGS_OF: dict[str, type[BaseModel]] = {
    "pipeline": Pipeline,
    "node": NodeSpec,
    "field": FieldSpec,
    "llm": LlmSpec,
    "branch": GateBranch,
    "evaluator": EvaluatorSpec,
    "judge": JudgeSpec,
    "chain": ChainSpec,
}

_ENUM_NOUNS: dict[str, tuple[str, Sequence[str]]] = {
    "kind": ("node kind", [k.value for k in NodeKind]),
    "type": ("field type", [t.value for t in FieldType]),
    "source": ("field source", [s.value for s in FieldSource]),
    "rejection_routing": ("rejection routing", [r.value for r in RejectionRouting]),
    "on_limit": ("limit action", [a.value for a in LimitAction]),
}

# The same key names another enum inside an evaluator or its judge.
_SCOPED_ENUM_NOUNS: dict[tuple[str, str], tuple[str, Sequence[str]]] = {
    ("evaluator", "kind"): ("evaluator kind", [k.value for k in EvaluatorKind]),
    ("evaluator", "mode"): ("evaluator mode", [m.value for m in EvaluatorMode]),
    ("evaluator", "pii"): ("pii kind", [k.value for k in PiiKind]),
    ("judge", "output"): ("judge output", [o.value for o in JudgeOutput]),
    ("chain", "trigger"): ("chain trigger", [t.value for t in ChainTrigger]),
}


_NAME_RULES = {
    "pipeline": "use letters, digits, '.', '_' and '-', starting with a letter or digit",
    "node": "use letters, digits, '_' and '-', starting with a letter or '_'",
    "field": (
        "use letters, digits and '_', starting with a letter or '_' "
        "(conditions and templates refer to fields by name)"
    ),
    "evaluator": (
        "use letters, digits and '_', starting with a letter or '_' "
        "(results are grouped by the evaluator's name)"
    ),
}


@dataclass
class _Field:
    """A field as written, with its validated spec when the field on its own is valid."""

    index: int
    name: str | None
    spec: FieldSpec | None


@dataclass
class _Evaluator:
    """An evaluator as written, with its validated spec when it is valid on its own."""

    index: int
    name: str | None
    spec: EvaluatorSpec | None


@dataclass
class _Node:
    """The lenient skeleton of one node: enough to check the graph even if the node is invalid."""

    index: int
    raw: Mapping[str, Any]
    name: str | None
    kind: NodeKind | None
    next: list[str]
    branches: list[tuple[str | None, str | None]]
    """(when, to) per branch, as written."""
    default: str | None
    fields: list[_Field]
    spec: NodeSpec | None
    evaluators: list[_Evaluator] = field(default_factory=list)

    def successors(self) -> list[str]:
        gate_targets = [to for _, to in self.branches if to is not None]
        if self.default is not None:
            gate_targets.append(self.default)
        if self.kind == NodeKind.GATE:
            targets = gate_targets
        elif self.kind is None:
            # Unknown kind: follow every edge written so reachability stays meaningful.
            targets = self.next + gate_targets
        else:
            targets = self.next
        return list(dict.fromkeys(targets))


@dataclass
class _Report:
    """Problems in document order: pipeline first, then each node, its fields after it."""

    entries: list[tuple[tuple[int, int], int, Problem]] = field(default_factory=list)

    def add(self, where: str, message: str, node: int = -1, fld: int = -1) -> None:
        key = (node + 1, fld + 1)
        self.entries.append((key, len(self.entries), Problem(where=where, message=message)))

    def problems(self) -> list[Problem]:
        return [problem for _, _, problem in sorted(self.entries, key=lambda e: (e[0], e[1]))]


def check_pipeline(raw: Any) -> Pipeline:
    """Validate a raw pipeline definition (parsed YAML or JSON) as a whole.

    Args:
        raw: The definition: a mapping with ``name``, ``nodes`` and optional settings.

    Returns:
        The validated :class:`Pipeline`.

    Raises:
        PipelineInvalid: With every problem found, in document order; each names where
            (``pipeline``, ``node 'x'`` or ``node 'x' field 'y'``) and how to fix it.
    """
    if not isinstance(raw, Mapping):
        raise PipelineInvalid(
            [
                Problem(
                    where=PIPELINE,
                    message=(
                        "a pipeline definition must be a mapping with name and nodes, "
                        f"not {type(raw).__name__}"
                    ),
                )
            ]
        )
    nodes = raw.get("nodes")
    if isinstance(nodes, list) and len(nodes) > MAX_NODES:
        raise PipelineInvalid(
            [
                Problem(
                    where=PIPELINE,
                    message=(
                        f"the pipeline has {len(nodes):,} nodes, over the limit of {MAX_NODES:,}; "
                        "split the work into pipelines joined by chains"
                    ),
                )
            ]
        )
    return _Checker(raw).run()


validate_pipeline = check_pipeline
"""Parse and check a pipeline definition, reporting every problem at once (the name callers
outside the engine use; see :func:`check_pipeline`)."""


MAX_NODES = 1_000
"""The most nodes a pipeline may have (checks grow with the square of the node count; the
examples have 4 to 8)."""


class _Checker:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.report = _Report()
        raw_nodes = raw.get("nodes")
        self.raw_nodes: list[Any] = list(raw_nodes) if isinstance(raw_nodes, list) else []
        self.nodes = [_skeleton(i, n) for i, n in enumerate(self.raw_nodes)]
        # The first node of each name is the one in the graph; later ones are reported.
        self.by_name: dict[str, _Node] = {}
        for node in self.nodes:
            if node.name is not None:
                self.by_name.setdefault(node.name, node)
        self.graph_nodes = list(self.by_name.values())
        self.succ: dict[str, list[str]] = {
            n.name: [s for s in n.successors() if s in self.by_name]
            for n in self.graph_nodes
            if n.name is not None
        }
        self.pred: dict[str, list[str]] = {name: [] for name in self.succ}
        for name, targets in self.succ.items():
            for target in targets:
                self.pred[target].append(name)
        self._ancestors: dict[str, set[str]] = {}
        self._field_specs: dict[str, FieldSpec | None] | None = None

    # --- helpers -------------------------------------------------------------------------

    def where(self, node: int, fld: int = -1) -> str:
        skeleton = self.nodes[node] if 0 <= node < len(self.nodes) else None
        label = f"node '{skeleton.name}'" if skeleton and skeleton.name else f"node #{node + 1}"
        if fld < 0:
            return label
        name = None
        if skeleton is not None and 0 <= fld < len(skeleton.fields):
            name = skeleton.fields[fld].name
        return f"{label} field '{name}'" if name else f"{label} field #{fld + 1}"

    def evaluator_where(self, node: int, ev: int) -> tuple[str, int]:
        """``node 'x' evaluator 'y'``, and its place in the report (after the node's fields)."""
        skeleton = self.nodes[node] if 0 <= node < len(self.nodes) else None
        name = None
        if skeleton is not None and 0 <= ev < len(skeleton.evaluators):
            name = skeleton.evaluators[ev].name
        label = f"evaluator '{name}'" if name else f"evaluator #{ev + 1}"
        order = (len(skeleton.fields) if skeleton else 0) + ev
        return f"{self.where(node)} {label}", order

    def evaluator_problem(self, node: _Node, ev: _Evaluator, message: str) -> None:
        where, order = self.evaluator_where(node.index, ev.index)
        self.report.add(where, message, node.index, order)

    def raw_chains(self) -> list[Any]:
        chains = self.raw.get("chains")
        return list(chains) if isinstance(chains, list) else []

    def chain_where(self, index: int) -> str:
        """``chain #1 (to 'b')``: chains have no names, so their place and target say which."""
        chains = self.raw_chains()
        raw = chains[index] if 0 <= index < len(chains) else None
        to = raw.get("to") if isinstance(raw, Mapping) else None
        return f"chain #{index + 1}" + (f" (to '{to}')" if isinstance(to, str) and to else "")

    def chain_problem(self, index: int, message: str) -> None:
        # Chains come after the nodes in a file, and so in the report.
        self.report.add(self.chain_where(index), message, len(self.nodes) + index)

    def node_problem(self, node: _Node, message: str) -> None:
        self.report.add(self.where(node.index), message, node.index)

    def field_problem(self, node: _Node, fld: _Field, message: str) -> None:
        self.report.add(self.where(node.index, fld.index), message, node.index, fld.index)

    def ancestors(self, name: str) -> set[str]:
        """Every node with a path to ``name`` (``name`` itself only if on a cycle)."""
        if name not in self._ancestors:
            self._ancestors[name] = _walk(name, self.pred)
        return self._ancestors[name]

    def field_owners(self, field_name: str) -> list[tuple[_Node, _Field]]:
        return [(n, f) for n in self.graph_nodes for f in n.fields if f.name == field_name]

    def known_fields(self) -> str:
        names = dict.fromkeys(f.name for n in self.graph_nodes for f in n.fields if f.name)
        return ", ".join(names) or "(none: no node defines fields)"

    # --- the checks ----------------------------------------------------------------------

    def run(self) -> Pipeline:
        data = self.prepare()
        pipeline: Pipeline | None = None
        try:
            pipeline = Pipeline.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self.translate(error)
        self.check_pipeline_settings()
        self.check_names()
        self.check_start_end()
        self.check_edges()
        self.check_reachability()
        self.check_cycles()
        for node in self.nodes:
            self.check_settings_apply(node)
            if node.kind == NodeKind.GATE:
                self.check_gate(node)
            elif node.kind == NodeKind.REVIEW:
                self.check_review(node)
            elif node.kind == NodeKind.SUBTASK:
                self.check_subtask(node)
            if node.kind in _HUMAN_KINDS:
                self.check_roles(node)
        self.check_fields()
        for node in self.nodes:
            if node.kind in _HUMAN_KINDS:
                self.check_groups(node)
                self.check_evaluators(node)
        self.check_chains()
        problems = self.report.problems()
        if problems or pipeline is None:
            raise PipelineInvalid(problems)
        return pipeline

    def prepare(self) -> dict[str, Any]:
        """A copy of the raw definition with ``claim_timeout`` resolved.

        The model converts ``claim_timeout`` itself, but a bad duration there would stop
        pydantic before it looks at any node; resolving it here keeps every error visible.
        """
        data = dict(self.raw)
        if "claim_timeout" in data:
            value = data.pop("claim_timeout")
            if "claim_timeout_seconds" in data:
                self.report.add(
                    PIPELINE,
                    "both claim_timeout and claim_timeout_seconds are set; keep one of them",
                )
            else:
                try:
                    data["claim_timeout_seconds"] = parse_duration(value)
                except ValueError as exc:
                    self.report.add(PIPELINE, str(exc))
        return data

    def translate(self, error: Mapping[str, Any]) -> None:
        """Turn one pydantic error into a Problem naming the node and field."""
        loc = list(error["loc"])
        node_i = fld_i = -1
        scope = "pipeline"
        where = PIPELINE
        if len(loc) >= 2 and loc[0] == "chains" and isinstance(loc[1], int):
            node_i, where = len(self.nodes) + loc[1], self.chain_where(loc[1])
            loc, scope = loc[2:], "chain"
        elif len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
            node_i, loc, scope = loc[1], loc[2:], "node"
            where = self.where(node_i)
            if len(loc) >= 2 and loc[0] == "fields" and isinstance(loc[1], int):
                fld_i, loc, scope = loc[1], loc[2:], "field"
                where = self.where(node_i, fld_i)
            elif len(loc) >= 2 and loc[0] == "evaluators" and isinstance(loc[1], int):
                where, fld_i = self.evaluator_where(node_i, loc[1])
                loc, scope = loc[2:], "evaluator"
                if loc[:1] == ["judge"]:
                    scope = "judge"
        prefix = ""
        if scope == "node" and len(loc) >= 2 and loc[0] == "branches" and isinstance(loc[1], int):
            prefix, loc, scope = f"branch {loc[1] + 1}: ", loc[2:], "branch"
        if scope == "field" and loc[:1] == ["llm"]:
            scope = "llm"
        message = prefix + _describe(error, loc, scope)
        self.report.add(where, message, node_i, fld_i)

    def check_pipeline_settings(self) -> None:
        limits = self.raw.get("claim_limits")
        if isinstance(limits, Mapping):
            for role, limit in limits.items():
                if not isinstance(role, str) or not role.strip():
                    self.report.add(PIPELINE, "claim_limits has an empty role name; remove it")
                elif isinstance(limit, int) and not isinstance(limit, bool) and limit < 1:
                    self.report.add(
                        PIPELINE,
                        f"claim_limits for role '{role}' is {limit}; use 1 or more "
                        "(leave the role out for no limit)",
                    )
        if "nodes" in self.raw and isinstance(self.raw["nodes"], list) and not self.raw["nodes"]:
            self.report.add(PIPELINE, "nodes is empty; add a start, your subtasks and an end")

    def check_names(self) -> None:
        for node in self.nodes:
            if node.name is not None and self.by_name[node.name] is not node:
                self.node_problem(
                    node, f"duplicate node name '{node.name}'; node names must be unique"
                )

    def check_start_end(self) -> None:
        if not self.nodes:
            return  # nothing to say beyond the structural problem already reported
        for kind in (NodeKind.START, NodeKind.END):
            found = [n for n in self.nodes if n.kind == kind]
            if not found:
                self.report.add(
                    PIPELINE, f"there is no {kind.value} node; add exactly one with kind: {kind}"
                )
            for extra in found[1:]:
                first = found[0].name or f"#{found[0].index + 1}"
                self.node_problem(
                    extra,
                    f"a second {kind.value} node (the first is '{first}'); a pipeline has "
                    f"exactly one {kind.value}",
                )
        start = self.start()
        if start is not None and start.name is not None:
            if not start.successors():
                self.node_problem(start, "start leads nowhere; set next to the first subtask(s)")
            for target in start.successors():
                target_kind = self.by_name[target].kind if target in self.by_name else None
                if target_kind is not None and target_kind != NodeKind.SUBTASK:
                    self.node_problem(
                        start,
                        f"start leads to '{target}', a {target_kind.value} node; start may only "
                        "lead to subtask nodes",
                    )
            if self.pred.get(start.name):
                sources = ", ".join(f"'{p}'" for p in self.pred[start.name])
                self.node_problem(
                    start,
                    f"start has incoming edges (from {sources}); nothing may lead back to start",
                )
        end = self.end()
        if end is not None and end.successors():
            self.node_problem(end, "end must not lead anywhere; remove its next")

    def start(self) -> _Node | None:
        return next((n for n in self.nodes if n.kind == NodeKind.START), None)

    def end(self) -> _Node | None:
        return next((n for n in self.nodes if n.kind == NodeKind.END), None)

    def check_edges(self) -> None:
        names = list(self.by_name)
        for node in self.nodes:
            if node.name is None:
                continue
            for target in node.successors():
                if target not in self.by_name:
                    self.node_problem(
                        node,
                        f"node '{node.name}' leads to '{target}', which is not defined; "
                        f"define it or fix the name{_suggest(target, names)}",
                    )

    def check_reachability(self) -> None:
        start, end = self.start(), self.end()
        if start is not None and start.name in self.succ:
            reached = _walk(start.name, self.succ) | {start.name}
            for node in self.graph_nodes:
                # A second start is unreachable by nature; it is reported as a second start.
                if node.name not in reached and node.kind != NodeKind.START:
                    detail = "" if self.pred.get(node.name or "") else " (nothing leads to it)"
                    self.node_problem(
                        node,
                        f"not reachable from start{detail}; add it to the next of an upstream "
                        "node, or remove it",
                    )
        if end is None or end.name not in self.succ:
            return
        for node in self.graph_nodes:
            # Report the root causes only: a node that leads nowhere. Nodes upstream of it, or
            # with only undefined targets, or on a closed cycle already get their own message.
            if node is end or node.kind in (NodeKind.GATE, NodeKind.END) or node.successors():
                continue
            self.node_problem(
                node,
                f"node '{node.name}' cannot reach end: it leads nowhere; set next "
                "(e.g. next: [end]) so every path finishes at end",
            )

    def check_cycles(self) -> None:
        on_cycles = _on_or_behind_cycles(self.succ, self.pred)  # linear; usually empty
        seen: set[str] = set()
        for node in self.graph_nodes:
            name = node.name
            assert name is not None
            if name not in on_cycles or name in seen or name not in self.ancestors(name):
                continue
            component = self.ancestors(name) & (_walk(name, self.succ) | {name})
            seen |= component
            # Never None: the node is on a cycle within its component.
            path = shortest_cycle(name, self.succ, component) or [name, name]
            self.node_problem(
                node,
                f"cycle {' -> '.join(path)}; a pipeline must not loop (rework loops are implied "
                f"by review nodes and must not be drawn): remove the edge {path[-2]} -> {path[-1]}",
            )

    def check_settings_apply(self, node: _Node) -> None:
        if node.kind is None:
            return
        for key, kinds in _NODE_SETTINGS.items():
            if key not in node.raw or node.kind in kinds or _is_default(NodeSpec, key, node.raw):
                continue
            if key == "next" and node.kind == NodeKind.GATE:
                self.node_problem(
                    node,
                    "gate nodes do not use next; route with branches (when/to) and default",
                )
            elif key == "next" and node.kind == NodeKind.END:
                continue  # reported by check_start_end as an outgoing edge of end
            else:
                self.node_problem(
                    node, f"setting '{key}' does not apply to {node.kind.value} nodes"
                )

    def check_gate(self, node: _Node) -> None:
        if not node.branches:
            self.node_problem(
                node, "gate has no branches; add at least one (when: <condition>, to: <node>)"
            )
        if node.default is None and node.raw.get("default") is None:
            self.node_problem(
                node,
                "gate needs a default: the node to take when no condition matches",
            )
        for i, (when, _) in enumerate(node.branches, start=1):
            if when is None:
                continue  # the structural check reports a missing or non-text condition
            try:
                refs = expr.references(when)
            except expr.ExprError as exc:
                self.node_problem(node, f"branch {i} condition: {exc}")
                continue
            for ref in sorted(refs):
                message = self.reference_problem(node, ref)
                if message:
                    self.node_problem(node, f"branch {i} {message}")

    def reference_problem(self, gate: _Node, ref: str) -> str | None:
        """Why a gate condition cannot use ``ref``, or None when it can."""
        node_name, dot, field_name = ref.partition(".")
        if dot:
            owner = self.by_name.get(node_name)
            if owner is None:
                return (
                    f"condition refers to unknown field '{ref}': there is no node "
                    f"'{node_name}'; known fields: {self.known_fields()}"
                )
            names = [f.name for f in owner.fields if f.name]
            if field_name not in names:
                listed = ", ".join(names) or "none"
                return (
                    f"condition refers to unknown field '{ref}': node '{node_name}' has no "
                    f"field '{field_name}' (its fields: {listed})"
                )
            owners = [(owner, f) for f in owner.fields if f.name == field_name]
        else:
            owners = self.field_owners(ref)
            if not owners:
                return (
                    f"condition refers to unknown field '{ref}'{_suggest(ref, self.all_fields())}"
                    f"; known fields: {self.known_fields()}"
                )
        if self.available_at(gate, owners):
            return None
        where = ", ".join(f"'{n.name}'" for n, _ in owners)
        return (
            f"condition refers to '{ref}', which is filled by {where} after this gate or on "
            "another branch, so it has no value here; use a field filled upstream of the gate"
        )

    def all_fields(self) -> list[str]:
        return [f.name for n in self.graph_nodes for f in n.fields if f.name]

    def available_at(self, node: _Node, owners: Iterable[tuple[_Node, _Field]]) -> bool:
        """Whether one of ``owners`` has a value by the time ``node`` runs."""
        upstream = self.ancestors(node.name or "")
        for owner, fld in owners:
            if fld.spec is not None and fld.spec.source in (
                FieldSource.PREDEFINED,
                FieldSource.STATIC,
            ):
                return True  # seed data and fixed content exist from the start
            if owner.name in upstream:
                return True
        return False

    def check_review(self, node: _Node) -> None:
        preds = (
            self.pred.get(node.name or "", []) if self.by_name.get(node.name or "") is node else []
        )
        reviews = node.raw.get("reviews")
        prefix = f"review node '{node.name}' has nothing to review"
        if not preds:
            self.node_problem(
                node, f"{prefix}: nothing leads to it; place it right after the subtask it reviews"
            )
        elif len(preds) > 1:
            listed = ", ".join(f"'{p}'" for p in preds)
            self.node_problem(
                node,
                f"{prefix}: it follows {len(preds)} nodes ({listed}); a review must follow "
                "exactly one subtask (add one review per subtask)",
            )
        else:
            pred = self.by_name[preds[0]]
            if pred.kind is not None and pred.kind != NodeKind.SUBTASK:
                self.node_problem(
                    node,
                    f"{prefix}: it follows '{pred.name}', a {pred.kind.value} node; a review "
                    "must directly follow the subtask it reviews",
                )
            if isinstance(reviews, str) and reviews != pred.name:
                self.node_problem(
                    node,
                    f"{prefix}: it reviews '{reviews}', but the node before it is '{pred.name}'; "
                    f"set reviews: {pred.name} or remove the setting",
                )
        spec = node.spec
        on_limit = spec.on_limit if spec else node.raw.get("on_limit")
        role = spec.escalation_role if spec else node.raw.get("escalation_role")
        if on_limit == LimitAction.ESCALATE and not role:
            self.node_problem(
                node,
                "on_limit: escalate needs escalation_role (the role that handles escalated tasks)",
            )
        if isinstance(role, str) and not role.strip():
            self.node_problem(node, "escalation_role is empty; name a role or remove it")
        for fld in node.fields:
            if fld.spec is not None and fld.spec.source in (
                FieldSource.LLM,
                FieldSource.PREDEFINED,
            ):
                self.field_problem(
                    node,
                    fld,
                    f"review fields are filled by the reviewer; source '{fld.spec.source.value}' "
                    "is not allowed here (use input or static)",
                )

    def check_subtask(self, node: _Node) -> None:
        if not node.fields:
            self.node_problem(
                node,
                "subtask has no fields; add at least one (an input field for a person, or an "
                "llm field for a model)",
            )
            return
        specs = [f.spec for f in node.fields]
        if all(s is not None for s in specs) and not any(
            s.source in (FieldSource.INPUT, FieldSource.LLM) for s in specs if s is not None
        ):
            self.node_problem(
                node,
                "subtask has only predefined/static fields, so nobody works on it; add an "
                "input field (a person fills it) or an llm field (a model fills it)",
            )

    def check_roles(self, node: _Node) -> None:
        roles = node.raw.get("roles")
        if isinstance(roles, list) and any(isinstance(r, str) and not r.strip() for r in roles):
            self.node_problem(node, "roles contains an empty name; remove it")

    def check_fields(self) -> None:
        first_seen: dict[str, tuple[_Node, _Field]] = {}
        for node in self.nodes:
            if node.kind not in _HUMAN_KINDS:
                continue
            for fld in node.fields:
                if fld.name is not None:
                    self.check_unique(node, fld, first_seen)
                if fld.spec is not None:
                    for message in _field_problems(fld.spec):
                        self.field_problem(node, fld, message)
                    if fld.spec.prefill is not None and fld.spec.source == FieldSource.INPUT:
                        prefill = self.prefill_problem(node, fld.spec.prefill)
                        if prefill:
                            self.field_problem(node, fld, prefill)
                    if fld.spec.llm is not None and fld.spec.source == FieldSource.LLM:
                        for what, source in (
                            ("llm system", fld.spec.llm.system),
                            ("llm prompt", fld.spec.llm.prompt),
                        ):
                            for message in self.template_problems(node, source, what, own=False):
                                self.field_problem(node, fld, message)
                    if fld.spec.evaluates and fld.spec.source == FieldSource.INPUT:
                        for message in self.rating_problems(node, fld.spec):
                            self.field_problem(node, fld, message)

    def check_unique(
        self, node: _Node, fld: _Field, first_seen: dict[str, tuple[_Node, _Field]]
    ) -> None:
        assert fld.name is not None
        earlier = first_seen.setdefault(fld.name, (node, fld))
        if earlier == (node, fld):
            return
        other_node, other = earlier
        # The same predefined column may be shown on several nodes (e.g. the text to label,
        # again for its reviewer); it is one value of the task's seed data.
        if (
            fld.spec is not None
            and other.spec is not None
            and fld.spec.source == other.spec.source == FieldSource.PREDEFINED
        ):
            if fld.spec.type != other.spec.type:
                self.field_problem(
                    node,
                    fld,
                    f"predefined field '{fld.name}' is declared as {other.spec.type.value} on "
                    f"node '{other_node.name}' and as {fld.spec.type.value} here; use one type",
                )
            return
        owner = "this node" if other_node is node else f"node '{other_node.name}'"
        self.field_problem(
            node,
            fld,
            f"field name '{fld.name}' is already used by {owner}; field names must be unique "
            "across the pipeline (conditions and templates refer to fields by name)",
        )

    def field_specs(self) -> dict[str, FieldSpec | None]:
        """Every field name of the pipeline with its spec (None where the field is invalid)."""
        if self._field_specs is None:
            self._field_specs = {}
            for n in self.graph_nodes:
                for f in n.fields:
                    if f.name is not None:
                        self._field_specs.setdefault(f.name, f.spec)
        return self._field_specs

    def unknown_field(self, name: str) -> str:
        """The end of a message about ``name``, which is not a field: a suggestion and the list."""
        if name in self.by_name:
            return (
                f"; '{name}' is a node, not a field: name one of its fields (known fields: "
                f"{self.known_fields()})"
            )
        return f"{_suggest(name, self.all_fields())}; known fields: {self.known_fields()}"

    def upstream_problem(self, node: _Node, name: str, *, own: bool, when: str) -> str | None:
        """Why field ``name`` has no value ``when`` something of ``node`` runs, or None.

        The reason is a phrase naming the field (``'x', filled by 'y', which does not come
        before this node``). ``own``: the node's own fields have values too (they do after its
        submission).
        """
        owners = self.field_owners(name)
        if not owners or self.available_at(node, owners):
            return None
        if own and any(owner is node for owner, _ in owners):
            return None
        if any(owner is node for owner, _ in owners):
            return f"'{name}', a field of this same node, which has no value yet {when}"
        where = ", ".join(f"'{n.name}'" for n, _ in owners)
        return f"'{name}', filled by {where}, which does not come before this node"

    def template_problems(self, node: _Node, source: str, what: str, *, own: bool) -> list[str]:
        """Problems with one prompt template: its syntax and the variables it reads.

        A template may read seed data (predefined fields) and fields of nodes upstream of
        ``node`` (and, with ``own``, ``node``'s own fields): the task data it is rendered over.
        """
        # Parsed and analysed, never rendered nor folded: see workflows/templates.py.
        try:
            parsed = templates.SANDBOX.parse(source)
            includes = list(meta.find_referenced_templates(parsed))
            internals = templates.internal_reads(parsed)
            refused = templates.refused_constants(parsed)
            names = templates.undeclared_names(parsed)
        except TemplateSyntaxError as exc:
            detail = (exc.message or "invalid syntax").rstrip(".")
            return [f"{what} template has a syntax error on line {exc.lineno}: {detail}; fix it"]
        except RecursionError:
            return [
                f"{what} template nests expressions too deeply (brackets, filters or "
                "operators inside each other) to be checked; write it more simply"
            ]
        problems: list[str] = []
        if includes:
            problems.append(
                f"{what} template uses include, import or extends; a prompt template stands "
                "alone, so write the text into it"
            )
        for read in internals:
            problems.append(
                f"{what} template reads {read}, a Python internal; a template may only read "
                "task data: write the field itself (e.g. {{ text }}) or a key of it "
                "(e.g. {{ text.label }})"
            )
        for reason in refused:
            problems.append(
                f"{what} template computes a value the sandbox refuses: {reason}; write the "
                "value you mean instead of computing it"
            )
        when = "when the judge runs" if own else "when the model runs"
        for name in sorted(names):
            if name in templates.JINJA_GLOBALS and not self.field_owners(name):
                problems.append(
                    f"{what} template uses '{name}', a Jinja global that prompt templates do "
                    "not have; a template may only use seed data and upstream fields, so put "
                    f"the value in a field (known fields: {self.known_fields()})"
                )
                continue
            if not self.field_owners(name):
                problems.append(
                    f"{what} template refers to '{name}', which is not a field of this "
                    f"pipeline{self.unknown_field(name)}"
                )
                continue
            upstream = self.upstream_problem(node, name, own=own, when=when)
            if upstream:
                problems.append(
                    f"{what} template refers to {upstream}; a template may only use seed data "
                    "(predefined fields) and fields filled upstream"
                    + (" or on this node" if own else "")
                )
        return problems

    def rating_problems(self, node: _Node, spec: FieldSpec) -> list[str]:
        """Problems with the fields a human rating field ``evaluates``."""
        problems: list[str] = []
        for name in spec.evaluates or []:
            if name == spec.name:
                problems.append(
                    f"evaluates names the field itself ('{name}'); name the fields this rating "
                    "is about"
                )
            elif not self.field_owners(name):
                problems.append(
                    f"evaluates '{name}', which is not a field of this pipeline"
                    f"{self.unknown_field(name)}"
                )
            else:
                reason = self.upstream_problem(node, name, own=True, when="at submission")
                if reason:
                    problems.append(
                        f"evaluates {reason}; rate fields of this node or of upstream nodes"
                    )
        return problems

    def check_groups(self, node: _Node) -> None:
        """LLM fields of one group share one model call, so their settings must be equal."""
        first_of: dict[str, tuple[_Field, LlmSpec]] = {}
        for fld in node.fields:
            spec = fld.spec
            if spec is None or spec.group is None or spec.llm is None:
                continue
            if spec.source != FieldSource.LLM:
                continue  # reported by the field's own checks
            first, llm = first_of.setdefault(spec.group, (fld, spec.llm))
            if first is fld or llm == spec.llm:
                continue
            differ = [
                key for key in LlmSpec.model_fields if getattr(llm, key) != getattr(spec.llm, key)
            ]
            self.field_problem(
                node,
                fld,
                f"field '{fld.name}' is in group '{spec.group}' with '{first.name}', but their "
                f"llm settings differ ({', '.join(differ)}); one model call fills a group, so "
                "give its fields identical llm settings (or a different group)",
            )

    def check_evaluators(self, node: _Node) -> None:
        known = self.field_specs()
        seen: set[str] = set()
        for ev in node.evaluators:
            if ev.name is not None:
                if ev.name in seen:
                    self.evaluator_problem(
                        node,
                        ev,
                        f"duplicate evaluator name '{ev.name}' on this node; evaluator names "
                        "must be unique per node (results are grouped by name)",
                    )
                seen.add(ev.name)
            spec = ev.spec
            if spec is None:
                continue  # the structural check reports what is wrong
            for message in evaluator_problems(spec, known):
                self.evaluator_problem(node, ev, message)
            targets = list(dict.fromkeys(spec.fields))
            if spec.kind == EvaluatorKind.EXACT_MATCH and spec.reference:
                targets.append(spec.reference)
            for name in targets:
                reason = self.upstream_problem(node, name, own=True, when="when the evaluator runs")
                if reason:
                    self.evaluator_problem(
                        node,
                        ev,
                        f"evaluates {reason}, so it has no value when the evaluator runs; "
                        "evaluate fields of this node or of upstream nodes",
                    )
            if spec.judge is not None and spec.kind == EvaluatorKind.LLM_JUDGE:
                for what, source in (
                    ("judge system", spec.judge.system),
                    ("judge prompt", spec.judge.prompt),
                ):
                    for message in self.template_problems(node, source, what, own=True):
                        self.evaluator_problem(node, ev, message)

    def prefill_problem(self, node: _Node, source: str) -> str | None:
        owners = self.field_owners(source)
        if not owners:
            return (
                f"prefill names '{source}', which is not a field of this pipeline"
                f"{_suggest(source, self.all_fields())}; known fields: {self.known_fields()}"
            )
        if self.available_at(node, owners):
            return None
        where = ", ".join(f"'{n.name}'" for n, _ in owners)
        return (
            f"prefill names '{source}' of {where}, which does not come before this node; "
            "prefill from a field filled upstream"
        )

    # --- chains ----------------------------------------------------------------------------

    def check_chains(self) -> None:
        """Each chain on its own and against the others; the targets are checked when the
        definition is applied (they may not exist yet)."""
        name = self.raw.get("name") if isinstance(self.raw.get("name"), str) else None
        first: dict[tuple[str, str], int] = {}
        for index, raw in enumerate(self.raw_chains()):
            if not isinstance(raw, Mapping):
                continue  # reported by the structural check
            to = raw.get("to") if isinstance(raw.get("to"), str) else None
            trigger = raw.get("trigger", ChainTrigger.ON_TASK_COMPLETION.value)
            if to is not None and to == name:
                self.chain_problem(
                    index,
                    f"a chain to its own pipeline is a cycle ({name} -> {name}): each task it "
                    "creates would create another; chain to a different pipeline",
                )
            if to is not None and trigger in {t.value for t in ChainTrigger}:
                earlier = first.setdefault((to, trigger), index)
                if earlier != index:
                    self.chain_problem(
                        index,
                        f"a second {trigger} chain to '{to}' (chain #{earlier + 1} is the "
                        "first); one source task creates one target task per trigger, so merge "
                        "their mapping and values into one chain",
                    )
            mapping = raw.get("mapping")
            mapping = mapping if isinstance(mapping, Mapping) else {}
            for target_field, source in mapping.items():
                if not isinstance(target_field, str) or not is_field_name(target_field):
                    self.chain_problem(
                        index,
                        f"mapping key {target_field!r} is not a field name; a mapping goes "
                        "from the target's field to a source field or JSON path, e.g. "
                        "mapping: {summary: $.label.notes}",
                    )
                if isinstance(source, str):
                    problem = self.chain_source_problem(source)
                    if problem is not None:
                        self.chain_problem(index, f"mapping for '{target_field}': {problem}")
            values = raw.get("values")
            for target_field in values if isinstance(values, Mapping) else {}:
                if not isinstance(target_field, str) or not is_field_name(target_field):
                    self.chain_problem(
                        index,
                        f"values key {target_field!r} is not a field name; values sets the "
                        "target's fields to constants, e.g. values: {origin: import}",
                    )
                elif target_field in mapping:
                    self.chain_problem(
                        index,
                        f"'{target_field}' is set by both mapping and values; keep one of them",
                    )

    def chain_source_problem(self, source: str) -> str | None:
        """Why a mapping's source cannot be read from this pipeline's task data, if so.

        Task data holds every field by name and as ``node.field``; a JSON path must start with
        one of those keys (what follows depends on the values, so it is not checked).
        """
        try:
            steps = parse_path(source)
        except ValueError as exc:
            return str(exc)
        keys = {f.name: None for n in self.graph_nodes for f in n.fields if f.name}
        keys.update(
            {f"{n.name}.{f.name}": None for n in self.graph_nodes for f in n.fields if f.name}
        )
        if not source.startswith("$"):
            if source in keys:
                return None
            return (
                f"'{source}' is not a field of this pipeline{_suggest(source, keys)}; "
                f"known fields: {self.known_fields()}"
            )
        if not steps or not isinstance(steps[0], str):
            return f"JSON path {source!r} must start with a field, e.g. $.label or $.node.field"
        if steps[0] in keys:
            return None
        if len(steps) >= 2 and isinstance(steps[1], str) and f"{steps[0]}.{steps[1]}" in keys:
            return None
        return (
            f"JSON path {source!r} starts with '{steps[0]}', which is not a field of this "
            f"pipeline{_suggest(steps[0], keys)}; known fields: {self.known_fields()}"
        )


def chain_problems(pipeline: Pipeline) -> list[Problem]:
    """The problems of ``pipeline``'s chains alone (see :meth:`_Checker.check_chains`), for a
    definition that was built in code rather than read through :func:`check_pipeline`."""
    checker = _Checker(pipeline.model_dump(mode="json"))
    checker.check_chains()
    return checker.report.problems()


# --- skeleton --------------------------------------------------------------------------------


def _skeleton(index: int, raw: Any) -> _Node:
    """Read what the graph checks need from a raw node, ignoring whatever is malformed."""
    if not isinstance(raw, Mapping):
        return _Node(index, {}, None, None, [], [], None, [], None)
    name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name") else None
    raw_kind = raw.get("kind")
    kinds = {k.value: k for k in NodeKind}
    kind = kinds.get(raw_kind) if isinstance(raw_kind, str) else None
    nxt = raw.get("next")
    next_names = [nxt] if isinstance(nxt, str) else _strings(nxt)
    branches: list[tuple[str | None, str | None]] = []
    if isinstance(raw.get("branches"), list):
        for branch in raw["branches"]:
            if isinstance(branch, Mapping):
                when, to = branch.get("when"), branch.get("to")
                branches.append(
                    (when if isinstance(when, str) else None, to if isinstance(to, str) else None)
                )
            else:
                branches.append((None, None))
    default = raw.get("default") if isinstance(raw.get("default"), str) else None
    fields: list[_Field] = []
    if isinstance(raw.get("fields"), list):
        for j, raw_field in enumerate(raw["fields"]):
            fname = raw_field.get("name") if isinstance(raw_field, Mapping) else None
            fields.append(
                _Field(
                    j, fname if isinstance(fname, str) and fname else None, _valid_field(raw_field)
                )
            )
    evaluators: list[_Evaluator] = []
    if isinstance(raw.get("evaluators"), list):
        for j, raw_evaluator in enumerate(raw["evaluators"]):
            ename = raw_evaluator.get("name") if isinstance(raw_evaluator, Mapping) else None
            evaluators.append(
                _Evaluator(
                    j,
                    ename if isinstance(ename, str) and ename else None,
                    _valid_evaluator(raw_evaluator),
                )
            )
    spec: NodeSpec | None
    try:
        spec = NodeSpec.model_validate(raw)
    except ValidationError:
        spec = None
    return _Node(index, raw, name, kind, next_names, branches, default, fields, spec, evaluators)


def _valid_field(raw: Any) -> FieldSpec | None:
    try:
        return FieldSpec.model_validate(raw)
    except ValidationError:
        return None


def _valid_evaluator(raw: Any) -> EvaluatorSpec | None:
    try:
        return EvaluatorSpec.model_validate(raw)
    except ValidationError:
        return None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _on_or_behind_cycles(succ: Mapping[str, list[str]], pred: Mapping[str, list[str]]) -> set[str]:
    """The nodes a topological sort cannot place: every node on a cycle (and those after one).

    Linear in the graph, so an acyclic pipeline of any size is cleared at once and the per-node
    cycle search runs only where a cycle is.
    """
    waiting = {name: len(set(sources)) for name, sources in pred.items()}
    ready = deque(name for name, count in waiting.items() if count == 0)
    while ready:
        name = ready.popleft()
        del waiting[name]
        for target in set(succ.get(name, [])):
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    return set(waiting)


def _walk(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    """Every node reachable from ``start`` along ``edges`` (``start`` only if on a cycle)."""
    found: set[str] = set()
    queue = deque(edges.get(start, []))
    while queue:
        name = queue.popleft()
        if name not in found:
            found.add(name)
            queue.extend(edges.get(name, []))
    return found


def shortest_cycle(
    start: str, edges: Mapping[str, Sequence[str]], within: set[str] | None = None
) -> list[str] | None:
    """The shortest path ``start -> … -> start`` along ``edges`` (only through ``within``, when
    given), or None if there is none. Used for node cycles here and for chain loops between
    pipelines (the client's check when a definition is applied)."""
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        name = queue.popleft()
        for target in edges.get(name, []):
            if within is not None and target not in within:
                continue
            if target == start:
                path = [name]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if target not in parents:
                parents[target] = name
                queue.append(target)
    return None


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _is_default(model: type[BaseModel], key: str, raw: Mapping[str, Any]) -> bool:
    """Whether ``raw[key]`` is the model default, e.g. ``fields: []`` in a dumped gate."""
    info = model.model_fields.get(key)
    if info is None:
        return False
    return bool(raw[key] == info.get_default(call_default_factory=True))


# --- structural errors -----------------------------------------------------------------------


def _path(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: Mapping[str, Any], loc: Sequence[Any], scope: str) -> str:
    """A readable message for one pydantic error at ``loc`` inside ``scope``."""
    kind = error["type"]
    value = error.get("input")
    key = loc[-1] if loc else None
    path = _path(loc)
    if kind == "missing":
        return f"missing required setting '{path}'"
    if kind == "extra_forbidden":
        allowed = list(_SETTINGS_OF[scope].model_fields)
        if scope == "pipeline":
            allowed.append("claim_timeout")
        suggestion = _suggest(str(key), allowed)
        return f"unknown setting '{path}'" + (
            suggestion or f"; allowed settings: {', '.join(allowed)}"
        )
    # A list item's key is its index; the enum is named by the list (pii: [emial]).
    enum_key = loc[-2] if isinstance(key, int) and len(loc) >= 2 else key
    nouns = _SCOPED_ENUM_NOUNS.get((scope, str(enum_key)))
    if nouns is None and scope not in ("evaluator", "judge"):
        nouns = _ENUM_NOUNS.get(str(enum_key))
    if kind == "enum" and nouns is not None:
        noun, choices = nouns
        suggestion = _suggest(str(value), choices)
        return f"unknown {noun} '{value}'{suggestion}; use one of: {', '.join(choices)}"
    if kind == "string_pattern_mismatch" and key == "match" and scope == "evaluator":
        return f"match {value!r} is not allowed; use any, all or none"
    if kind == "string_pattern_mismatch" and key == "to" and scope == "chain":
        return f"chain target {value!r} is not a pipeline name; {_NAME_RULES['pipeline']}"
    if kind == "string_pattern_mismatch" and key == "name" and scope in _NAME_RULES:
        return f"{scope} name {value!r} is not allowed; {_NAME_RULES[scope]}"
    if kind == "list_type" and key == "next" and isinstance(value, str):
        return f"setting 'next' must be a list of node names, e.g. next: [{value}]"
    if kind in ("model_type", "dict_type") and not loc:
        return {
            "node": "each node must be a mapping with at least name and kind",
            "field": "each field must be a mapping with at least name and type",
            "branch": "each branch must be a mapping with when and to",
            "evaluator": "each evaluator must be a mapping with at least name, kind and fields",
            "chain": "each chain must be a mapping with at least to (the target pipeline)",
        }.get(scope, f"expected a mapping, got {type(value).__name__}")
    message = f"setting '{path}': {error['msg']}" if path else error["msg"]
    if kind == "string_type" and isinstance(value, bool):
        # YAML 1.1 reads yes/no/on/off as booleans, a classic surprise in option lists.
        message += " (YAML reads yes/no/on/off/true/false as booleans; put it in quotes)"
    return message


# --- field settings --------------------------------------------------------------------------


def _field_problems(spec: FieldSpec) -> list[str]:
    """Problems with one field's settings that pydantic cannot see on its own."""
    problems: list[str] = []
    ftype = spec.type.value
    if spec.options is not None and spec.type not in _OPTION_TYPES:
        problems.append(f"setting 'options' does not apply to {ftype} fields")
    if spec.allow_tie and spec.type != FieldType.PAIRWISE:
        problems.append(f"setting 'allow_tie' does not apply to {ftype} fields")
    for key in ("min", "max"):
        if getattr(spec, key) is not None and spec.type not in _RANGE_TYPES:
            problems.append(f"setting '{key}' does not apply to {ftype} fields")
    for key in ("min_length", "max_length"):
        if getattr(spec, key) is not None and spec.type not in _LENGTH_TYPES:
            problems.append(f"setting '{key}' does not apply to {ftype} fields")
    if spec.language is not None and spec.type != FieldType.CODE:
        problems.append(f"setting 'language' does not apply to {ftype} fields")
    problems += _option_problems(spec)
    problems += _range_problems(spec)
    if (
        spec.min_length is not None
        and spec.max_length is not None
        and spec.min_length > spec.max_length
    ):
        problems.append(
            f"min_length {spec.min_length} is greater than max_length {spec.max_length}"
        )
    problems += _source_problems(spec)
    problems += _rating_field_problems(spec)
    return problems


def _option_problems(spec: FieldSpec) -> list[str]:
    if spec.type not in _OPTION_TYPES:
        return []
    options = spec.options or []
    problems: list[str] = []
    if spec.type == FieldType.PAIRWISE:
        if len(options) != 2:
            problems.append(
                f"pairwise fields compare exactly 2 options, got {len(options)}; "
                "list the two items under options"
            )
    elif len(options) < 2:
        problems.append(
            f"{spec.type.value} fields need at least 2 options, got {len(options)}; "
            "list them under options"
        )
    repeated = [o for i, o in enumerate(options) if o in options[:i]]
    for option in dict.fromkeys(repeated):
        problems.append(f"option '{option}' is listed more than once; options must be unique")
    if any(not o.strip() for o in options):
        problems.append("options contains an empty value; remove it")
    return problems


def _range_problems(spec: FieldSpec) -> list[str]:
    problems: list[str] = []
    low, high = spec.min, spec.max
    if spec.type == FieldType.RATING:
        for key, bound in (("min", low), ("max", high)):
            if bound is not None and not float(bound).is_integer():
                problems.append(f"rating {key} must be a whole number, got {bound}")
        # Ratings default to 1..5, so min: 7 alone is as wrong as min: 7, max: 5.
        low = 1 if low is None else low
        high = 5 if high is None else high
    if spec.type == FieldType.MULTI_SELECT:
        count = len(spec.options or [])
        for key, bound in (("min", low), ("max", high)):
            if bound is not None and (bound < 0 or not float(bound).is_integer()):
                problems.append(f"multi_select {key} counts choices; use a whole number >= 0")
        if high is not None and count >= 2 and high > count:
            problems.append(f"max {high:g} is more than the {count} options")
        if high is not None and high < 1:
            problems.append("max must be at least 1, or nothing could be chosen")
    if low is not None and high is not None and low > high:
        problems.append(f"min {low:g} is greater than max {high:g}")
    return problems


def _source_problems(spec: FieldSpec) -> list[str]:
    problems: list[str] = []
    source = spec.source
    if source == FieldSource.LLM and spec.llm is None:
        problems.append(
            "source 'llm' needs an llm setting with a prompt, e.g. "
            "llm: {model: conveyor/offline, prompt: '...'}"
        )
    if source != FieldSource.LLM and spec.llm is not None:
        problems.append(f"setting 'llm' only applies to fields with source: llm (this is {source})")
    if spec.llm is not None and not spec.llm.prompt.strip():
        problems.append("llm prompt is empty; write the prompt template")
    if source == FieldSource.STATIC and spec.value is None:
        problems.append("source 'static' needs a value (the fixed content to show)")
    if source != FieldSource.STATIC and spec.value is not None:
        problems.append(
            f"setting 'value' only applies to static fields (this is {source}); "
            "to seed an input field use prefill"
        )
    if spec.prefill is not None and source != FieldSource.INPUT:
        problems.append(f"setting 'prefill' only applies to input fields (this is {source})")
    if spec.group is not None:
        if source != FieldSource.LLM:
            problems.append(
                f"setting 'group' only applies to fields with source: llm (this is {source})"
            )
        elif not spec.group.strip():
            problems.append("group is empty; name the group or remove the setting")
    return problems


def _rating_field_problems(spec: FieldSpec) -> list[str]:
    """Settings of a human rating field (``evaluates`` / ``criterion``) on their own."""
    problems: list[str] = []
    if spec.evaluates is None:
        if spec.criterion is not None:
            problems.append(
                "setting 'criterion' only applies with evaluates (it names the criterion a "
                "rating is recorded under); add evaluates or remove criterion"
            )
        return problems
    if spec.source != FieldSource.INPUT:
        problems.append(
            "setting 'evaluates' only applies to input fields (a person's rating of other "
            f"fields; this is {spec.source})"
        )
    elif spec.type not in HUMAN_RATING_TYPES:
        allowed = ", ".join(t.value for t in FieldType if t in HUMAN_RATING_TYPES)
        problems.append(
            f"a rating field holds a score or a label, so evaluates needs one of the types "
            f"{allowed} (this is {spec.type.value})"
        )
    if not spec.evaluates:
        problems.append("evaluates is empty; name the fields this rating is about, or remove it")
    repeated = [n for i, n in enumerate(spec.evaluates) if n in spec.evaluates[:i]]
    for name in dict.fromkeys(repeated):
        problems.append(f"evaluates lists '{name}' more than once; list it once")
    if spec.criterion is not None and not spec.criterion.strip():
        problems.append("criterion is empty; name the criterion or remove it (default: the field)")
    return problems
