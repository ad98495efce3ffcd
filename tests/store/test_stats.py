"""store.stats against values computed by hand on small fixed sets (the working is in the
comments)."""

from __future__ import annotations

import math

import pytest

from store.stats import (
    Bin,
    cohens_kappa,
    histogram,
    mean,
    mean_absolute_error,
    median,
    pearson,
    percent_agreement,
    percentile,
    ranks,
    spearman,
)


def test_percentile_interpolates_linearly() -> None:
    values = [4, 1, 3, 2]  # sorted 1 2 3 4, n - 1 = 3
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 4
    # q=50: position 0.5 * 3 = 1.5 -> 2 + (3 - 2) * 0.5
    assert percentile(values, 50) == pytest.approx(2.5)
    # q=95: position 0.95 * 3 = 2.85 -> 3 + (4 - 3) * 0.85
    assert percentile(values, 95) == pytest.approx(3.85)
    # q=90 of 10..50: position 0.9 * 4 = 3.6 -> 40 + 10 * 0.6
    assert percentile([10, 20, 30, 40, 50], 90) == pytest.approx(46)
    # q=25 of 50,100,150,200,300,310,320: position 1.5 -> 100 + 50 * 0.5
    assert percentile([50, 100, 150, 200, 300, 310, 320], 25) == pytest.approx(125)
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None


def test_percentile_wants_a_percentage() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1, 2], 101)
    with pytest.raises(ValueError):
        percentile([1, 2], -1)


def test_median_and_mean() -> None:
    assert median([3, 1, 2]) == 2
    assert median([1, 2, 3, 4]) == pytest.approx(2.5)
    assert median([]) is None
    assert mean([1, 2, 3, 4]) == pytest.approx(2.5)  # 10 / 4
    assert mean([]) is None


def test_percent_agreement_and_kappa_on_ten_booleans() -> None:
    a = [True] * 6 + [False] * 4
    b = [True] * 5 + [False] * 4 + [True]
    # Agree at 0-4 and 6-8: po = 8/10. a: 6 T, 4 F; b: 6 T (0-4, 9), 4 F.
    # pe = 0.6 * 0.6 + 0.4 * 0.4 = 0.52; kappa = (0.8 - 0.52) / (1 - 0.52) = 0.28 / 0.48 = 7/12
    assert percent_agreement(a, b) == pytest.approx(0.8)
    assert cohens_kappa(a, b) == pytest.approx(7 / 12)


def test_kappa_on_three_categories() -> None:
    a = ["x", "x", "y", "y", "z", "z"]
    b = ["x", "y", "y", "y", "z", "x"]
    # Agree at 0, 2, 3, 4: po = 4/6. a: x2 y2 z2; b: x2 y3 z1.
    # pe = (2*2 + 2*3 + 2*1) / 36 = 1/3; kappa = (2/3 - 1/3) / (1 - 1/3) = 0.5
    assert cohens_kappa(a, b) == pytest.approx(0.5)
    assert percent_agreement(a, b) == pytest.approx(4 / 6)


def test_kappa_edge_cases() -> None:
    # Opposite labels everywhere: po = 0, pe = 0.5*0.5 + 0.5*0.5 = 0.5 -> (0 - 0.5) / 0.5 = -1
    assert cohens_kappa(["t", "f"], ["f", "t"]) == pytest.approx(-1)
    # One label from both raters: pe = 1 (0/0); reported as 1.0 since they agree everywhere.
    assert cohens_kappa(["yes"] * 4, ["yes"] * 4) == 1.0
    # Rater a always "yes", b mixed: pe = 1 * 0.5 = 0.5, po = 0.5 -> 0
    assert cohens_kappa(["yes"] * 4, ["yes", "no", "yes", "no"]) == pytest.approx(0)
    assert cohens_kappa([], []) is None
    assert percent_agreement([], []) is None
    with pytest.raises(ValueError, match="differ in length"):
        cohens_kappa([1, 2], [1])


def test_mean_absolute_error() -> None:
    # |1-2| + |2-2| + |3-5| = 3 -> 3 / 3
    assert mean_absolute_error([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert mean_absolute_error([], []) is None


def test_ranks_average_ties() -> None:
    assert ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert ranks([3, 1, 3, 3]) == [3, 1, 3, 3]  # the three 3s share ranks 2, 3, 4


def test_spearman_without_ties() -> None:
    # d = rank differences 1, -1, 1, -1, 0; sum d^2 = 4; rho = 1 - 6*4 / (5 * (25 - 1)) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1)


def test_spearman_with_ties() -> None:
    # ranks a = 1, 2.5, 2.5, 4; ranks b = 1, 3, 2, 4; both mean 2.5.
    # deviations a: -1.5, 0, 0, 1.5; b: -1.5, 0.5, -0.5, 1.5
    # cov = 2.25 + 0 + 0 + 2.25 = 4.5; var a = 4.5; var b = 2.25 + .25 + .25 + 2.25 = 5
    # rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))


def test_spearman_undefined() -> None:
    assert spearman([1], [2]) is None
    assert spearman([], []) is None
    assert spearman([2, 2, 2], [1, 2, 3]) is None  # zero variance
    assert pearson([1, 2, 3], [5, 5, 5]) is None


def test_histogram_counts_left_closed_bins() -> None:
    values = [0, 0.1, 0.25, 0.5, 0.5, 0.99, 1.0]
    # edges 0, .25, .5, .75, 1: [0,.25) 0 0.1 | [.25,.5) .25 | [.5,.75) .5 .5 | [.75,1] .99 1.0
    assert histogram(values, 4) == [
        Bin(0, 0.25, 2),
        Bin(0.25, 0.5, 1),
        Bin(0.5, 0.75, 2),
        Bin(0.75, 1.0, 2),
    ]


def test_histogram_edges_are_exact() -> None:
    # 0.0, 0.1, ..., 1.0 in 10 bins: one per bin, the last also holds 1.0. 0.1 * 3 is
    # 0.30000000000000004: it must land in [0.3, 0.4), as its printed edges say.
    values = [0.1 * i for i in range(11)]
    assert [b.count for b in histogram(values, 10)] == [1] * 9 + [2]


def test_histogram_ranges() -> None:
    # A single value v: bins span v - 0.5 .. v + 0.5; all land in one bin.
    bins = histogram([3.0, 3.0, 3.0], 10)
    assert (bins[0].low, bins[-1].high) == (2.5, 3.5)
    assert sum(b.count for b in bins) == 3 and max(b.count for b in bins) == 3
    # An explicit range drops what lies outside it (and NaN).
    bins = histogram([-1, 1, 2, 5, 6, float("nan")], 5, low=0, high=5)
    assert [b.count for b in bins] == [0, 1, 1, 0, 1]
    assert histogram([], 10) == []
    assert len(histogram([], 4, low=0, high=1)) == 4
    with pytest.raises(ValueError):
        histogram([1], 0)
    with pytest.raises(ValueError):
        histogram([1], 3, low=2, high=1)
