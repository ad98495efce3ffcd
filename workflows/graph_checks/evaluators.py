"""Evaluators: unique names per node, their settings, the fields they evaluate, judge prompts."""

from __future__ import annotations

from workflows.evaluators import evaluator_problems
from workflows.graph import EvaluatorKind
from workflows.graph_checks.skeleton import _Node
from workflows.graph_checks.templates import _TemplateChecks


class _EvaluatorChecks(_TemplateChecks):
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
