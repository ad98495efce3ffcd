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

The package, by concern: ``checker`` (:func:`check_pipeline`, :data:`MAX_NODES`, the checker
that runs every check), ``skeleton`` (the lenient reading of the raw nodes, the report),
``paths`` (reachability and cycles), ``core`` (the helpers every check shares), ``schema``
(pydantic errors as problems), ``structure`` (the graph: start and end, edges, reachability,
cycles, gates, reviews, subtasks), ``fields``, ``templates`` (prompt templates),
``evaluators`` and ``chains``.
"""

from __future__ import annotations

from workflows.graph_checks.checker import MAX_NODES as MAX_NODES
from workflows.graph_checks.checker import chain_problems, check_pipeline, validate_pipeline
from workflows.graph_checks.paths import shortest_cycle
from workflows.graph_checks.skeleton import PIPELINE as PIPELINE

__all__ = ["chain_problems", "check_pipeline", "shortest_cycle", "validate_pipeline"]
