"""Merging a consensus item's answers: per field, how far the answers agree and what the one
merged answer is, with a confidence.

The rules (see :class:`~workflows.graph.AgreementRule` and :class:`~workflows.graph.Aggregation`):

- ``majority`` (select, boolean, pairwise): agreement and confidence are the share of answers
  equal to the most common one; the merge is that answer, a tie broken by the field's ``tie``
  rule (the tied answer given first, the first in option order, or no majority at all).
- ``tolerance`` (number, integer, rating, datetime): agreement and confidence are the share of
  answers within ``tolerance`` of the median (seconds for date-times); the merge is the mean
  (rounded for integer and rating fields) or the median (the lower middle answer for integer,
  rating and datetime fields, so it is one of the answers).
- ``overlap`` (multi_select): agreement is the mean Jaccard overlap of every pair of answers;
  the merge is every option at least ``vote_threshold`` of the answers chose (set vote), and the
  confidence the mean overlap of each answer with the merge.
- ``rank`` (ranking): agreement is the mean Kendall rank correlation of every pair of answers
  (a negative correlation counts 0); the merge is the Borda count order, and the confidence the
  mean correlation of each answer with the merge.
- Free text does not vote: it has no merged value (``carry``, the answers stay per annotator)
  or it sends every item to the adjudicator (``adjudicate``).

An item agrees when every counted field's agreement reaches the node's ``threshold``; its
agreement and confidence are the lowest over the counted fields. Alpha and kappa are dataset
figures (the store's analytics), never a per-item rule.

Pure and deterministic, imports no I/O: it runs inside the task workflow.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from datetime import datetime
from itertools import combinations
from typing import Any

from workflows.graph import (
    Aggregation,
    AgreementRule,
    ConsensusSpec,
    FieldSpec,
    FieldType,
    NodeSpec,
    TieRule,
)
from workflows.messages import Answer, ConsensusResult, FieldConsensus

_DIGITS = 6
"""Figures are rounded so the same answers always give the same recorded numbers."""


def merge(spec: NodeSpec, answers: Sequence[Answer]) -> ConsensusResult:
    """The merged answer of ``answers`` on consensus node ``spec``."""
    consensus = spec.consensus
    assert consensus is not None
    inputs = spec.input_fields()
    counted = {f.name for f in consensus.voting(inputs)}
    fields: dict[str, FieldConsensus] = {}
    values: dict[str, Any] = {}
    agreed = True
    for fld in inputs:
        given = [a.values.get(fld.name) for a in answers]
        merged, ok = _merge_field(consensus, fld, given)
        fields[fld.name] = merged
        if merged.value is not None:
            values[fld.name] = merged.value
        if consensus.aggregation_for(fld) == Aggregation.ADJUDICATE:
            agreed = False
        if fld.name in counted and (
            not ok or merged.agreement is None or merged.agreement < consensus.threshold
        ):
            agreed = False
    figures = [fields[name] for name in counted if name in fields]
    agreement = min((f.agreement for f in figures if f.agreement is not None), default=None)
    confidence = min((f.confidence for f in figures if f.confidence is not None), default=None)
    return ConsensusResult(
        values=values,
        fields=fields,
        agreement=agreement,
        confidence=confidence,
        agreed=agreed,
        answers=len(answers),
    )


def _merge_field(
    consensus: ConsensusSpec, fld: FieldSpec, given: list[Any]
) -> tuple[FieldConsensus, bool]:
    """One field's figures and merged value, and whether it has a clear merge (not a tie under
    ``tie: disagree``)."""
    rule = consensus.rule_for(fld)
    aggregate = consensus.aggregation_for(fld)
    settings = consensus.rules.get(fld.name)
    tie = settings.tie if settings else TieRule.FIRST
    names = {"rule": rule.value, "aggregate": aggregate.value}
    if rule == AgreementRule.NONE:
        return FieldConsensus(**names), True
    if all(value is None for value in given):  # an optional field nobody filled
        return FieldConsensus(agreement=1.0, confidence=1.0, **names), True
    agreement: float | None
    confidence: float | None
    ok = True
    if rule == AgreementRule.MAJORITY:
        agreement = _majority_share(given)
    elif rule == AgreementRule.TOLERANCE:
        tolerance = settings.tolerance if settings and settings.tolerance is not None else 0.0
        agreement = _within_tolerance(fld, given, tolerance)
    elif rule == AgreementRule.OVERLAP:
        agreement = _mean(_jaccard(a, b) for a, b in combinations(given, 2))
    else:  # RANK
        agreement = _mean(max(0.0, _kendall(a, b)) for a, b in combinations(given, 2))
    confidence = agreement
    value: Any = None
    if aggregate == Aggregation.MAJORITY:
        value, ok = _majority(fld, given, tie)
        if not ok:
            confidence = 0.0
    elif aggregate in (Aggregation.MEAN, Aggregation.MEDIAN):
        value = _central(fld, given, aggregate)
    elif aggregate == Aggregation.SET_VOTE:
        threshold = settings.vote_threshold if settings else 0.5
        value = _set_vote(fld, given, threshold)
        confidence = _mean(_jaccard(a, value) for a in given)
    elif aggregate == Aggregation.BORDA:
        value = _borda(fld, given)
        confidence = _mean(max(0.0, _kendall(a, value)) for a in given)
    return (
        FieldConsensus(
            value=value,
            agreement=_round(agreement),
            confidence=_round(confidence),
            **names,
        ),
        ok,
    )


# --------------------------------------------------------------------------- agreement


def _key(value: Any) -> str:
    """A value as a comparable, hashable key (lists and dicts compared by content)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _majority_share(given: list[Any]) -> float | None:
    if not given:
        return None
    counts: dict[str, int] = {}
    for value in given:
        counts[_key(value)] = counts.get(_key(value), 0) + 1
    return max(counts.values()) / len(given)


def _number(fld: FieldSpec, value: Any) -> float | None:
    """A numeric answer as a number (a datetime as seconds since the epoch)."""
    if value is None or isinstance(value, bool):
        return None
    if fld.type == FieldType.DATETIME:
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _within_tolerance(fld: FieldSpec, given: list[Any], tolerance: float) -> float | None:
    numbers = [_number(fld, v) for v in given]
    present = [n for n in numbers if n is not None]
    if not given:
        return None
    if not present:
        return 1.0 if all(v is None for v in given) else 0.0
    middle = statistics.median(present)
    close = sum(1 for n in numbers if n is not None and abs(n - middle) <= tolerance + 1e-9)
    return close / len(given)


def _as_set(value: Any) -> set[str]:
    if isinstance(value, list):
        return {_key(v) for v in value}
    return set() if value is None else {_key(value)}


def _jaccard(a: Any, b: Any) -> float:
    left, right = _as_set(a), _as_set(b)
    if not left and not right:
        return 1.0
    return len(left & right) / len(left | right)


def _kendall(a: Any, b: Any) -> float:
    """Kendall's tau between two rankings over the items both contain (1: same order)."""
    if not isinstance(a, list) or not isinstance(b, list):
        return 0.0
    shared = [_key(x) for x in a if _key(x) in {_key(y) for y in b}]
    where = {_key(x): i for i, x in enumerate(b)}
    pairs = list(combinations(shared, 2))
    if not pairs:
        return 1.0
    concordant = sum(1 for x, y in pairs if where[x] < where[y])
    return (2 * concordant - len(pairs)) / len(pairs)


def _mean(values: Any) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, _DIGITS)


# --------------------------------------------------------------------------- aggregation


def _majority(fld: FieldSpec, given: list[Any], tie: TieRule) -> tuple[Any, bool]:
    if not given:
        return None, True
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    by_key: dict[str, Any] = {}
    for i, value in enumerate(given):
        key = _key(value)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
        by_key.setdefault(key, value)
    top = max(counts.values())
    tied = [k for k, c in counts.items() if c == top]
    if len(tied) == 1:
        return by_key[tied[0]], True
    if tie == TieRule.DISAGREE:
        return None, False
    if tie == TieRule.OPTION_ORDER:
        order = _option_order(fld)
        chosen = min(tied, key=lambda k: (order.get(k, len(order)), k))
        return by_key[chosen], True
    return by_key[min(tied, key=lambda k: first[k])], True


def _option_order(fld: FieldSpec) -> dict[str, int]:
    if fld.type == FieldType.BOOLEAN:
        return {_key(False): 0, _key(True): 1}
    options = list(fld.options or [])
    if fld.type == FieldType.PAIRWISE:
        options.append("tie")
    return {_key(o): i for i, o in enumerate(options)}


def _central(fld: FieldSpec, given: list[Any], aggregate: Aggregation) -> Any:
    pairs = [(n, v) for v in given if (n := _number(fld, v)) is not None]
    if not pairs:
        return None
    whole = fld.type in (FieldType.INTEGER, FieldType.RATING)
    if aggregate == Aggregation.MEAN:
        mean = sum(n for n, _ in pairs) / len(pairs)
        return round(mean) if whole else _round(mean)
    if whole or fld.type == FieldType.DATETIME:
        low = statistics.median_low([n for n, _ in pairs])
        return next(v for n, v in pairs if n == low)
    return _round(statistics.median([n for n, _ in pairs]))


def _set_vote(fld: FieldSpec, given: list[Any], threshold: float) -> list[Any]:
    votes: dict[str, int] = {}
    by_key: dict[str, Any] = {}
    for value in given:
        for item in value if isinstance(value, list) else []:
            key = _key(item)
            votes[key] = votes.get(key, 0) + 1
            by_key.setdefault(key, item)
    chosen = [k for k, c in votes.items() if c / len(given) >= threshold - 1e-9]
    order = _option_order(fld)
    return [by_key[k] for k in sorted(chosen, key=lambda k: (order.get(k, len(order)), k))]


def _borda(fld: FieldSpec, given: list[Any]) -> list[Any]:
    points: dict[str, int] = {}
    by_key: dict[str, Any] = {}
    for value in given:
        if not isinstance(value, list):
            continue
        for place, item in enumerate(value):
            key = _key(item)
            points[key] = points.get(key, 0) + len(value) - place
            by_key.setdefault(key, item)
    order = _option_order(fld)
    ranked = sorted(points, key=lambda k: (-points[k], order.get(k, len(order)), k))
    return [by_key[k] for k in ranked]
