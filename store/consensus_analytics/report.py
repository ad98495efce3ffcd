"""The report over a pipeline's consensus nodes: :func:`consensus_agreement`."""

from __future__ import annotations

from sqlalchemy.orm import Session

from store.consensus_analytics.fields import counted_fields
from store.consensus_analytics.models import DEFAULT_MIN_SHARED, ConsensusAgreement
from store.consensus_analytics.rows import consensus_nodes, node_rows
from store.consensus_analytics.tally import NodeTally
from store.explorer import TaskFilter


def consensus_agreement(
    session: Session,
    pipeline: str,
    *,
    node: str | None = None,
    criteria: TaskFilter | None = None,
    min_shared: int = DEFAULT_MIN_SHARED,
) -> ConsensusAgreement:
    """Agreement figures of ``pipeline``'s consensus nodes (or of ``node``), sorted by node.

    Args:
        node: one consensus node (default: every one).
        criteria: count only the tasks this Data Explorer filter selects.
        min_shared: list pairs of contributors who answered at least this many of the same
            items.

    Raises:
        UnknownPipeline: no pipeline of that name was applied.
        NotConsensus: the pipeline has no consensus node, or ``node`` is not one.
        ValueError: ``min_shared`` is below 1.
    """
    if min_shared < 1:
        raise ValueError(f"min_shared must be at least 1, not {min_shared}")
    versions, wanted = consensus_nodes(session, pipeline, node)
    tallies = {name: NodeTally(counted_fields(versions, name)) for name in wanted}
    # In any order: every figure is a sum over items.
    for name, _, consensus, values in node_rows(session, pipeline, wanted, criteria):
        tallies[name].add(consensus, values)
    return ConsensusAgreement(
        pipeline=pipeline,
        min_shared=min_shared,
        nodes=[tallies[name].report(name, min_shared) for name in wanted],
    )
