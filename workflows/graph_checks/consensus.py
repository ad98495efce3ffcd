"""Consensus subtasks and adjudicate nodes: the settings of several blind answers per item
(how many, which fields vote and how, what a disagreement does) and the node that settles a
disagreement."""

from __future__ import annotations

from workflows.graph import (
    AGGREGATION_TYPES,
    CONSENSUS_KEYS,
    RULE_TYPES,
    Aggregation,
    AgreementRule,
    Disagreement,
    NodeKind,
    RejectionRouting,
)
from workflows.graph_checks.core import _CheckerCore
from workflows.graph_checks.skeleton import _Node


class _ConsensusChecks(_CheckerCore):
    def check_consensus(self, node: _Node) -> None:
        spec = node.spec
        if spec is None or spec.consensus is None:
            return
        consensus = spec.consensus
        if spec.kind != NodeKind.SUBTASK:
            return  # check_settings_apply reports it
        inputs = spec.input_fields()
        if not inputs:
            self.node_problem(
                node,
                "consensus needs input fields: several people answer the same item; an LLM node "
                "has nobody to agree",
            )
            return
        if consensus.max_annotators is not None and consensus.max_annotators < consensus.annotators:
            self.node_problem(
                node,
                f"consensus max_annotators ({consensus.max_annotators}) is below annotators "
                f"({consensus.annotators}); raise it or remove it for exactly "
                f"{consensus.annotators}",
            )
        if spec.llm_fields():
            self.node_problem(
                node,
                "a consensus node may not have llm fields: their draft would show every "
                "annotator the same answer; generate them in a node before this one",
            )
        by_name = {f.name: f for f in inputs}
        names = [f.name for f in spec.fields]
        for name in consensus.fields or []:
            if name not in by_name:
                self.node_problem(
                    node,
                    f"consensus fields names '{name}', which is not an input field of this node "
                    f"(its input fields: {', '.join(by_name)})",
                )
        for name, rule in consensus.rules.items():
            fld = by_name.get(name)
            if fld is None:
                self.node_problem(
                    node,
                    f"consensus rules name '{name}', which is not an input field of this node "
                    f"(its input fields: {', '.join(by_name)})",
                )
                continue
            if rule.agreement is not None and fld.type not in RULE_TYPES[rule.agreement]:
                fitting = [r.value for r, kinds in RULE_TYPES.items() if fld.type in kinds]
                self.node_problem(
                    node,
                    f"consensus rule for '{name}': agreement '{rule.agreement.value}' does not "
                    f"fit a {fld.type.value} field; use one of: {', '.join(fitting)}",
                )
            if rule.aggregate is not None and fld.type not in AGGREGATION_TYPES[rule.aggregate]:
                fitting = [a.value for a, kinds in AGGREGATION_TYPES.items() if fld.type in kinds]
                self.node_problem(
                    node,
                    f"consensus rule for '{name}': aggregate '{rule.aggregate.value}' does not "
                    f"fit a {fld.type.value} field; use one of: {', '.join(fitting)}",
                )
        voting = consensus.voting(inputs)
        for fld in voting:
            if consensus.rule_for(fld) == AgreementRule.NONE:
                self.node_problem(
                    node,
                    f"consensus field '{fld.name}' is {fld.type.value} text, which does not vote; "
                    "leave it out of consensus fields (its answers are kept per annotator, or "
                    "set its aggregate to adjudicate)",
                )
        forced = any(consensus.aggregation_for(f) == Aggregation.ADJUDICATE for f in inputs)
        if not voting and not forced:
            self.node_problem(
                node,
                "consensus has no field that votes (every input field is free text); add a "
                "select, boolean, number, rating, multi_select or ranking field, or set a text "
                "field's aggregate to adjudicate",
            )
        for key in CONSENSUS_KEYS:
            if key in names:
                self.node_problem(
                    node,
                    f"a consensus node may not have a field named '{key}': the task data "
                    f"carries the item's {key} as {spec.name}.{key}; rename the field",
                )
        adjudicator = [
            n
            for n in self.graph_nodes
            if n.kind == NodeKind.ADJUDICATE and self.adjudicated(n) == spec.name
        ]
        needs_adjudicator = consensus.on_disagreement == Disagreement.ADJUDICATE or forced
        if needs_adjudicator and not adjudicator:
            self.node_problem(
                node,
                "consensus on_disagreement is adjudicate (the default) but no adjudicate node "
                f"settles '{spec.name}'; add one right after it (kind: adjudicate) or set "
                "on_disagreement to escalate or quarantine",
            )
        for review in self.graph_nodes:
            rspec = review.spec
            if (
                review.kind == NodeKind.REVIEW
                and rspec is not None
                and self.pred.get(review.name or "") == [spec.name]
                and rspec.rejection_routing == RejectionRouting.SAME_PERSON
            ):
                self.node_problem(
                    review,
                    f"rejection_routing same_person cannot apply to consensus node '{spec.name}' "
                    "(each person answers an item once; a failed review opens a new round for "
                    "other people); use pool_exclude or pool_include",
                )

    def adjudicated(self, node: _Node) -> str | None:
        raw = node.raw.get("adjudicates")
        if isinstance(raw, str):
            return raw
        preds = self.pred.get(node.name or "", [])
        return preds[0] if len(preds) == 1 else None

    def check_adjudicate(self, node: _Node) -> None:
        preds = (
            self.pred.get(node.name or "", []) if self.by_name.get(node.name or "") is node else []
        )
        prefix = f"adjudicate node '{node.name}' has nothing to settle"
        if len(preds) != 1:
            self.node_problem(
                node,
                f"{prefix}: it must follow exactly one consensus subtask (it follows "
                f"{len(preds)} nodes); place it right after the consensus node",
            )
            return
        pred = self.by_name[preds[0]]
        target = node.raw.get("adjudicates")
        if isinstance(target, str) and target != pred.name:
            self.node_problem(
                node,
                f"{prefix}: it adjudicates '{target}', but the node before it is '{pred.name}'; "
                f"set adjudicates: {pred.name} or remove the setting",
            )
        if pred.kind != NodeKind.SUBTASK or (pred.spec is not None and pred.spec.consensus is None):
            self.node_problem(
                node,
                f"{prefix}: '{pred.name}' before it is not a consensus subtask; add a consensus "
                f"setting to '{pred.name}' (annotators: 3) or remove this node",
            )
        others = [
            n.name
            for n in self.graph_nodes
            if n is not node and n.kind == NodeKind.ADJUDICATE and self.adjudicated(n) == pred.name
        ]
        if others:
            self.node_problem(
                node, f"'{pred.name}' is already settled by '{others[0]}'; keep one adjudicate node"
            )
