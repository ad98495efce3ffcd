"""Plain statistics for LLM and Evaluation Analytics: percentiles, agreement, rank correlation.

Pure functions over finite sequences, standard library only. Empty input gives ``None`` (no
value), never 0: an analytics report must not show a made-up number. Functions over pairs
(``a[i]`` with ``b[i]``) raise :class:`ValueError` when the two sequences differ in length.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0 <= q <= 100) by linear interpolation between closest ranks.

    The same definition as numpy's default (``method="linear"``) and PostgreSQL's
    ``percentile_cont``: sorted values ``x``, position ``p = q / 100 * (n - 1)``, result
    ``x[floor(p)] + (x[ceil(p)] - x[floor(p)]) * (p - floor(p))``.

    Returns:
        None when ``values`` is empty.

    Raises:
        ValueError: ``q`` is outside 0..100 (use 95 for the 95th percentile, not 0.95).
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be between 0 and 100, not {q}")
    data = sorted(float(v) for v in values)
    if not data:
        return None
    position = q / 100 * (len(data) - 1)
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


def median(values: Iterable[float]) -> float | None:
    """The 50th percentile (the mean of the two middle values for an even count)."""
    return percentile(values, 50)


def mean(values: Iterable[float]) -> float | None:
    """The arithmetic mean, or None for no values."""
    data = [float(v) for v in values]
    return math.fsum(data) / len(data) if data else None


def _pairs(a: Sequence[object], b: Sequence[object]) -> int:
    if len(a) != len(b):
        raise ValueError(f"paired values differ in length: {len(a)} and {len(b)}")
    return len(a)


def percent_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """The fraction of pairs with equal labels (0.9 means 90%); None for no pairs."""
    n = _pairs(a, b)
    if n == 0:
        return None
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / n


def cohens_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' labels (any hashable values): chance-corrected agreement.

    ``kappa = (po - pe) / (1 - pe)`` with ``po`` the observed agreement and ``pe`` the agreement
    expected by chance, ``sum over labels of p_a(label) * p_b(label)``. Computed with exact
    fractions, so the ``pe == 1`` case is found reliably.

    ``pe == 1`` means both raters gave one and the same label to every item: kappa is then
    undefined (0 / 0). It is reported as 1.0 when they agree everywhere (``po == 1``, which
    ``pe == 1`` implies) and 0.0 otherwise, so a unanimous pair never shows as disagreement.

    Returns:
        None for no pairs.
    """
    n = _pairs(a, b)
    if n == 0:
        return None
    observed = Fraction(sum(1 for x, y in zip(a, b, strict=True) if x == y), n)
    counts_a, counts_b = Counter(a), Counter(b)
    expected = sum(
        (Fraction(counts_a[label], n) * Fraction(counts_b[label], n) for label in counts_a),
        Fraction(0),
    )
    if expected == 1:
        return 1.0 if observed == 1 else 0.0
    return float((observed - expected) / (1 - expected))


def mean_absolute_error(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The mean of ``|a[i] - b[i]|``; None for no pairs."""
    n = _pairs(a, b)
    if n == 0:
        return None
    return math.fsum(abs(float(x) - float(y)) for x, y in zip(a, b, strict=True)) / n


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the average of the ranks they span (``[1, 2.5, 2.5]``)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        shared = (start + end) / 2 + 1
        for i in order[start : end + 1]:
            out[i] = shared
        start = end + 1
    return out


def pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson's correlation; None for fewer than 2 pairs or when either side is constant."""
    n = _pairs(a, b)
    if n < 2:
        return None
    mean_a, mean_b = math.fsum(a) / n, math.fsum(b) / n
    cov = math.fsum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    var_a = math.fsum((x - mean_a) ** 2 for x in a)
    var_b = math.fsum((y - mean_b) ** 2 for y in b)
    if var_a == 0 or var_b == 0:
        return None
    r = cov / math.sqrt(var_a * var_b)
    return max(-1.0, min(1.0, r))  # rounding must not leave [-1, 1]


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties averaged).

    Returns:
        None for fewer than 2 pairs, or when either side has a single distinct value (zero
        variance: the correlation is undefined, not 0).
    """
    _pairs(a, b)
    return pearson(ranks(a), ranks(b))


@dataclass(frozen=True)
class Bin:
    """One histogram bin: values ``low <= v < high`` (the last bin also holds ``v == high``)."""

    low: float
    high: float
    count: int


def histogram(
    values: Iterable[float],
    bins: int = 10,
    *,
    low: float | None = None,
    high: float | None = None,
) -> list[Bin]:
    """Counts of ``values`` in ``bins`` equal-width bins from ``low`` to ``high``.

    The range defaults to the values' minimum and maximum; when it is a single point ``v`` the
    bins span ``v - 0.5 .. v + 0.5`` (as numpy does). Values outside an explicit range and NaNs
    are not counted.

    Returns:
        The bins in order; an empty list when there are no values and no explicit range.

    Raises:
        ValueError: ``bins`` < 1, or ``low`` > ``high``.
    """
    if bins < 1:
        raise ValueError(f"a histogram needs at least one bin, not {bins}")
    data = [float(v) for v in values if not math.isnan(v)]
    if low is None or high is None:
        if not data:
            return []
        low = min(data) if low is None else low
        high = max(data) if high is None else high
    if low > high:
        raise ValueError(f"histogram range is reversed: low {low} > high {high}")
    if low == high:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / bins
    edges = [low + width * i for i in range(bins)] + [high]
    counts = [0] * bins
    for v in data:
        if v < low or v > high:
            continue
        i = min(int((v - low) / width), bins - 1)
        # The division can land one bin off at an edge: the printed edges are the truth.
        if v < edges[i]:
            i -= 1
        elif v >= edges[i + 1] and i < bins - 1:
            i += 1
        counts[i] += 1
    return [Bin(edges[i], edges[i + 1], counts[i]) for i in range(bins)]
