"""Reliability figures of several annotators: Krippendorff's alpha, Cohen's kappa, pair agreement.

Pure functions over plain values; no SQL. :mod:`store.consensus_analytics` feeds them a
consensus node's answers.

* :func:`alpha` is Krippendorff's alpha by the ``krippendorff`` package. That package builds
  arrays of ``units x values x values`` cells, so past :data:`LIBRARY_CELLS` (a number field or
  a date-time field over thousands of items has thousands of distinct values) the same figure
  comes from its closed form here, which needs one pass over the values (the two agree to
  floating-point rounding; the tests hold them to it).
* :func:`kappa` is Cohen's kappa of two annotators by scikit-learn.

Both libraries (and numpy) are imported when first used: scikit-learn takes a second or two to
load, which no command of the command line should pay at its start.

A figure that is undefined is ``None``, never 0: no pair of values to compare, or no variation
at all (every value the same, so chance agreement is perfect and ``0 / 0`` remains).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from itertools import combinations
from typing import Any

LIBRARY_CELLS = 4_000_000
"""The most ``units x values x values`` cells :func:`alpha` hands the ``krippendorff`` package
(its largest array then takes 32 MB); larger inputs take the closed form."""


class Level(StrEnum):
    """The level of measurement: which differences between two values count, and how much."""

    NOMINAL = "nominal"
    """Values are equal or not (categories)."""
    ORDINAL = "ordinal"
    """Values are ordered; a difference counts by how many values lie between (by rank)."""
    INTERVAL = "interval"
    """Values are numbers; a difference counts by its square."""


def alpha(units: Iterable[Sequence[Any]], level: Level) -> float | None:
    """Krippendorff's alpha of ``units``: each unit is the values its annotators gave it.

    Who gave which value does not matter to alpha, only which values share a unit. Units with
    fewer than two values are not pairable and do not count. Nominal values may be any hashable
    values; ordinal and interval values are numbers.

    Returns:
        1 for perfect agreement, 0 for agreement at chance level, below 0 for systematic
        disagreement; None when no unit has two values, or every pairable value is the same.
    """
    pairable = [list(u) for u in units if len(u) >= 2]
    if not pairable:
        return None
    domain = _domain(pairable, level)
    if len(domain) < 2:
        return None
    if len(pairable) * len(domain) ** 2 > LIBRARY_CELLS:
        return alpha_closed_form(pairable, level)
    import krippendorff
    import numpy as np

    index = {v: i for i, v in enumerate(domain)}
    counts = np.zeros((len(pairable), len(domain)), dtype=np.int64)
    for row, unit in enumerate(pairable):
        for value in unit:
            counts[row, index[value]] += 1
    codes = np.arange(len(domain)) if level == Level.NOMINAL else np.asarray(domain, dtype=float)
    value = krippendorff.alpha(
        value_counts=counts, value_domain=codes, level_of_measurement=level.value
    )
    return _finite(float(value))


def alpha_closed_form(units: Iterable[Sequence[Any]], level: Level) -> float | None:
    """Krippendorff's alpha computed in one pass, the same figure as :func:`alpha`.

    ``alpha = 1 - (n - 1) * Do / De`` over the ``n`` pairable values, with ``Do`` the sum over
    units of each unit's pairwise distances divided by its values less one, and ``De`` the sum
    of every pairwise distance. Nominal distance is 0 or 1; interval distance the squared
    difference (summed through each unit's variance, which keeps large values such as
    date-times in seconds exact); ordinal distance the squared difference of the values'
    mid-ranks among all pairable values (Krippendorff's ordinal metric is exactly that).
    """
    pairable = [list(u) for u in units if len(u) >= 2]
    n = sum(len(u) for u in pairable)
    if n == 0:
        return None
    if level == Level.NOMINAL:
        observed = math.fsum(
            (len(u) ** 2 - sum(c * c for c in Counter(u).values())) / (len(u) - 1) for u in pairable
        )
        totals = Counter(v for u in pairable for v in u)
        expected = n * n - sum(c * c for c in totals.values())
        if expected == 0:
            return None
        return _finite(1 - (n - 1) * observed / expected)
    numbers = [[float(v) for v in u] for u in pairable]
    if level == Level.ORDINAL:
        ranks = _mid_ranks(Counter(v for u in numbers for v in u))
        numbers = [[ranks[v] for v in u] for u in numbers]
    within = math.fsum(2 * len(u) * _squares(u) / (len(u) - 1) for u in numbers)
    total = 2 * n * _squares([v for u in numbers for v in u]) / (n - 1)
    if total == 0:
        return None
    return _finite(1 - within / total)


def kappa(a: Sequence[Any], b: Sequence[Any], level: Level) -> float | None:
    """Cohen's kappa of two annotators' values on the same items (``a[i]`` with ``b[i]``).

    Nominal values get the plain kappa; ordinal values the quadratic-weighted kappa, over
    every whole number from the lowest to the highest value when the values are whole numbers
    (so the distance between 1 and 5 counts even when nobody chose 3), else over the values
    seen. Interval values (numbers, date-times) get none: kappa counts each distinct number
    as its own category.

    Returns:
        None for interval values, no pairs, or a single value used by both annotators
        throughout (chance agreement is then perfect: kappa is ``0 / 0``).

    Raises:
        ValueError: ``a`` and ``b`` differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"paired values differ in length: {len(a)} and {len(b)}")
    if level == Level.INTERVAL or not a:
        return None
    seen = set(a) | set(b)
    if len(seen) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    if level == Level.ORDINAL:
        labels = _scale(sorted(float(v) for v in seen))
        value = cohen_kappa_score(
            [float(v) for v in a], [float(v) for v in b], labels=labels, weights="quadratic"
        )
    else:
        names = {v: i for i, v in enumerate(sorted(seen, key=repr))}
        value = cohen_kappa_score(
            [names[v] for v in a], [names[v] for v in b], labels=list(range(len(names)))
        )
    return _finite(float(value))


def pair_agreement(values: Sequence[Any], same: Callable[[Any, Any], bool]) -> float | None:
    """The share of pairs of ``values`` (one item's answers) that ``same`` calls equal."""
    pairs = list(combinations(values, 2))
    if not pairs:
        return None
    return sum(1 for x, y in pairs if same(x, y)) / len(pairs)


# --------------------------------------------------------------------------- helpers


def _domain(units: list[list[Any]], level: Level) -> list[Any]:
    values = {v for u in units for v in u}
    if level == Level.NOMINAL:
        return sorted(values, key=repr)
    return sorted(values)


def _mid_ranks(counts: Counter[float]) -> dict[float, float]:
    """Each value's mid-rank: how many values come before it, plus half its own count."""
    ranks: dict[float, float] = {}
    before = 0
    for value in sorted(counts):
        ranks[value] = before + counts[value] / 2
        before += counts[value]
    return ranks


def _squares(values: Sequence[float]) -> float:
    """The sum of squared deviations from the mean."""
    middle = math.fsum(values) / len(values)
    return math.fsum((v - middle) ** 2 for v in values)


def _scale(values: list[float]) -> list[float]:
    """Whole numbers: every one from the lowest to the highest (at most 1,000 of them)."""
    low, high = values[0], values[-1]
    if all(v.is_integer() for v in values) and high - low < 1000:
        return [float(v) for v in range(int(low), int(high) + 1)]
    return values


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
