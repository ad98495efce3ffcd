"""What Consensus Analytics returns: frozen pydantic models, and the error it raises."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from store.reliability import Level
from workflows.errors import Invalid
from workflows.graph import FieldType

DEFAULT_MIN_SHARED = 5
"""Pairs of contributors are listed when they answered at least this many of the same items."""


class NotConsensus(Invalid, ValueError):
    """The pipeline has no consensus node, or the node asked for is not one."""

    code = "not_consensus"


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class FieldAgreement(FrozenModel):
    """How far a node's annotators agree on one counted field, over its items."""

    field: str
    type: FieldType
    level: Level | None
    """None: free text, not compared."""
    unit: str
    """What alpha counts as one unit: ``item``, ``item x option`` (multi_select) or
    ``item x ranked item`` (ranking)."""
    items: int
    """Items with at least two answers giving this field (the items compared)."""
    answers: int
    """The answers giving this field on those items."""
    alpha: float | None
    """Krippendorff's alpha; None when undefined (no item with two answers, or no variation)."""
    percent_agreement: float | None
    """The mean over items of the share of agreeing pairs of answers."""
    note: str | None = None
    """Why a figure is missing, when it is."""


class FinalAgreement(FrozenModel):
    """How often one contributor's answers on a field agree with the items' final answers."""

    field: str
    compared: int
    """Their answers on items with a final answer that gives this field."""
    agreed: int
    share: float | None
    """``agreed / compared``; None when nothing was compared."""


class ContributorAgreement(FrozenModel):
    """One contributor's answers on a node."""

    contributor: str
    answers: int
    fields: list[FinalAgreement]


class PairField(FrozenModel):
    """Two contributors on one field, over the items both answered."""

    field: str
    items: int
    """Shared items where both gave this field."""
    percent_agreement: float | None
    kappa: float | None
    """Cohen's kappa (weighted for ordinal fields); None for interval fields, or when both gave
    one and the same value throughout."""


class PairAgreement(FrozenModel):
    """Two contributors who answered at least ``min_shared`` of the same items."""

    a: str
    b: str
    shared: int
    fields: list[PairField]


class NodeAgreement(FrozenModel):
    """One consensus node's agreement figures."""

    node: str
    items: int
    """Items (tasks) of the node with at least one answer in their current round."""
    final: int
    """Items with a final answer: agreed, or settled by an adjudicator."""
    adjudicated: int
    answers: int
    contributors: int
    fields: list[FieldAgreement]
    by_contributor: list[ContributorAgreement]
    pairs: list[PairAgreement]
    """Sorted by the two names; only pairs with at least ``min_shared`` shared items."""


class ConsensusAgreement(FrozenModel):
    """Agreement analytics of a pipeline's consensus nodes."""

    pipeline: str
    min_shared: int
    nodes: list[NodeAgreement]
