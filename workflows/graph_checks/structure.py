"""The graph and the node kinds: pipeline settings, unique names, one start and one end, edges,
reachability, cycles, which settings apply to which kind, gates, reviews, subtasks and roles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from workflows import expr
from workflows.graph import CONSENSUS_KEYS, FieldSource, LimitAction, NodeKind, NodeSpec
from workflows.graph_checks.core import _CheckerCore, _suggest
from workflows.graph_checks.paths import _on_or_behind_cycles, _walk, shortest_cycle
from workflows.graph_checks.skeleton import _HUMAN_KINDS, PIPELINE, _Node

# Node settings and the kinds they apply to. ``name``, ``kind``, ``title`` and ``instructions``
# apply to every kind; ``next`` on gates and end nodes has its own, more specific message.
_NODE_SETTINGS: dict[str, frozenset[NodeKind]] = {
    "next": frozenset({NodeKind.START, NodeKind.SUBTASK, NodeKind.REVIEW, NodeKind.ADJUDICATE}),
    "roles": _HUMAN_KINDS | {NodeKind.ADJUDICATE},
    "consensus": frozenset({NodeKind.SUBTASK}),
    "adjudicates": frozenset({NodeKind.ADJUDICATE}),
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


class _StructureChecks(_CheckerCore):
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
        consensus = self.consensus_reference(ref)
        if consensus is not None or (
            not dot and ref in CONSENSUS_KEYS and not self.field_owners(ref)
        ):
            sources = (
                [consensus]
                if consensus is not None
                else [n.name for n in self.consensus_nodes() if n.name]
            )
            if any(s in self.ancestors(gate.name or "") for s in sources):
                return None
            return (
                f"condition refers to '{ref}', a consensus figure, but no consensus node "
                f"{'named ' + repr(consensus) + ' ' if consensus else ''}comes before this gate; "
                "route on it after the consensus node"
            )
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


def _is_default(model: type[BaseModel], key: str, raw: Mapping[str, Any]) -> bool:
    """Whether ``raw[key]`` is the model default, e.g. ``fields: []`` in a dumped gate."""
    info = model.model_fields.get(key)
    if info is None:
        return False
    return bool(raw[key] == info.get_default(call_default_factory=True))
