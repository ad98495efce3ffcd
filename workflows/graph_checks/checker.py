"""The entry points: :func:`check_pipeline` (and its other name, :func:`validate_pipeline`),
:data:`MAX_NODES`, :func:`chain_problems`, and the checker that runs every check in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from workflows.graph import NodeKind, Pipeline, PipelineInvalid, Problem
from workflows.graph_checks.chains import _ChainChecks
from workflows.graph_checks.consensus import _ConsensusChecks
from workflows.graph_checks.evaluators import _EvaluatorChecks
from workflows.graph_checks.fields import _FieldChecks
from workflows.graph_checks.schema import _SchemaChecks
from workflows.graph_checks.skeleton import _HUMAN_KINDS, PIPELINE
from workflows.graph_checks.structure import _StructureChecks


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


class _Checker(
    _SchemaChecks, _StructureChecks, _ConsensusChecks, _FieldChecks, _EvaluatorChecks, _ChainChecks
):
    """Every check, run in document order by :meth:`run`."""

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
                self.check_consensus(node)
            elif node.kind == NodeKind.ADJUDICATE:
                self.check_adjudicate(node)
            if node.kind in _HUMAN_KINDS or node.kind == NodeKind.ADJUDICATE:
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


def chain_problems(pipeline: Pipeline) -> list[Problem]:
    """The problems of ``pipeline``'s chains alone (see :meth:`_Checker.check_chains`), for a
    definition that was built in code rather than read through :func:`check_pipeline`."""
    checker = _Checker(pipeline.model_dump(mode="json"))
    checker.check_chains()
    return checker.report.problems()
