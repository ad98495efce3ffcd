"""Bulk evaluation for every interface: resolve and check evaluators against a pipeline, start
a ``BulkEvaluate`` workflow, read its progress.

The CLI (``evaluate start|status|cancel``), the HTTP API and the web app all go through these;
:class:`~conveyor.connect.CliError` carries what is wrong with the caller's input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from conveyor.connect import CliError
from workflows.bulk_evaluate import BulkEvaluateWorkflow
from workflows.bulk_evaluate_messages import BulkEvaluateInput, BulkEvaluateProgress, NodeEvaluator
from workflows.graph import NodeKind, Pipeline, PipelineInvalid
from workflows.graph_checks import validate_pipeline

# --------------------------------------------------------------------------- evaluators


def current_pipeline(versions: Sequence[tuple[str, Pipeline]], name: str) -> Pipeline:
    """The current version among ``pipeline_versions``' answer, or a :class:`CliError`."""
    if not versions:
        raise CliError(
            f"pipeline {name!r} is not in the store; check the name (tasks of a pipeline "
            "record it when they start)"
        )
    return versions[0][1]


def evaluators_by_name(pipeline: Pipeline, refs: Sequence[str]) -> list[NodeEvaluator]:
    """``NODE.NAME`` references resolved against ``pipeline``'s nodes.

    Raises:
        CliError: naming every reference that does not resolve, with what does exist.
    """
    nodes = pipeline.node_map()
    known = [f"{n.name}.{e.name}" for n in pipeline.nodes for e in n.evaluators]
    found: list[NodeEvaluator] = []
    problems: list[str] = []
    for ref in refs:
        node_name, dot, name = ref.partition(".")
        node = nodes.get(node_name)
        spec = next((e for e in node.evaluators if e.name == name), None) if node else None
        if not dot or spec is None:
            problems.append(f"{ref!r}")
            continue
        found.append(NodeEvaluator(node=node_name, evaluator=spec))
    if problems:
        choices = ", ".join(known) if known else "none: give them with --file instead"
        raise CliError(
            f"no evaluator {', '.join(problems)} in pipeline {pipeline.name!r} "
            f"(current version); write NODE.NAME, one of: {choices}"
        )
    return list({e.key: e for e in found}.values())


def check_evaluators(pipeline: Pipeline, evaluators: Sequence[NodeEvaluator]) -> None:
    """Check evaluators against ``pipeline`` as if they were part of it.

    They are added to (or replace the same-named evaluators of) their nodes and the whole
    definition is validated, so every rule of a pipeline file applies: the node must exist and
    accept evaluators, targets must be fields available there, judge templates must parse.

    Raises:
        CliError: listing every problem found.
    """
    nodes = pipeline.node_map()
    problems: list[str] = []
    for ev in evaluators:
        node = nodes.get(ev.node)
        if node is None:
            problems.append(
                f"node {ev.node!r} is not in pipeline {pipeline.name!r}; its nodes are "
                + ", ".join(nodes)
            )
        elif node.kind not in (NodeKind.SUBTASK, NodeKind.REVIEW):
            problems.append(
                f"node {ev.node!r} is a {node.kind.value} node; evaluators check the "
                "submissions of subtask and review nodes"
            )
    if not problems:
        raw = pipeline.model_dump(mode="json", exclude_defaults=True)
        for node_raw in raw["nodes"]:
            added = {
                e.evaluator.name: e.evaluator for e in evaluators if e.node == node_raw["name"]
            }
            if not added:
                continue
            kept = [e for e in node_raw.get("evaluators", []) if e["name"] not in added]
            node_raw["evaluators"] = kept + [
                e.model_dump(mode="json", exclude_defaults=True) for e in added.values()
            ]
        try:
            validate_pipeline(raw)
        except PipelineInvalid as err:
            problems += [str(p) for p in err.problems]
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise CliError(
            f"the evaluators do not fit pipeline {pipeline.name!r} (current version):\n{lines}"
        )


# --------------------------------------------------------------------------- workflow


async def start_bulk_evaluation(
    client: Client, task_queue: str, request: BulkEvaluateInput, workflow_id: str
) -> WorkflowHandle[Any, BulkEvaluateProgress]:
    """Start the workflow, or attach to it if one with this id is running."""
    names = ", ".join(e.key.split("@")[0] for e in request.evaluators)
    return await client.start_workflow(
        BulkEvaluateWorkflow.run,
        request,
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"bulk evaluation of {request.pipeline}: {names}"[:200],
    )


async def current_progress(
    handle: WorkflowHandle[Any, BulkEvaluateProgress],
) -> BulkEvaluateProgress:
    """The progress of a running bulk evaluation, or the summary of a closed one."""
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CliError(
                f"no bulk evaluation {handle.id!r}; the id is printed by `evaluate start`"
            ) from None
        raise
    if description.status == WorkflowExecutionStatus.RUNNING:
        return await handle.query(BulkEvaluateWorkflow.progress)
    if description.status == WorkflowExecutionStatus.COMPLETED:
        return await handle.result()
    how = description.status.name.lower() if description.status else "unknown"
    raise CliError(f"bulk evaluation {handle.id!r} ended: {how}")
