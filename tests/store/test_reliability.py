"""Krippendorff's alpha, Cohen's kappa and pair agreement (store/reliability.py): against the
libraries on random data, against hand computation on small examples."""

from __future__ import annotations

import math
import random

import krippendorff
import numpy as np
import pytest

from store import reliability
from store.reliability import Level, alpha, alpha_closed_form, kappa, pair_agreement

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": two observers, binary
# values, ten units. Coincidences: o00 = 10, o11 = 2, o01 = o10 = 4; n0 = 14, n1 = 6, n = 20.
# alpha = 1 - (n - 1) * o01 / (n0 * n1) = 1 - 19 * 4 / 84 = 8 / 84.
OBSERVER_A = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
OBSERVER_B = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]


def random_reliability_data(seed: int, level: Level) -> np.ndarray:
    """Five coders, forty units, zero to five values per unit (NaN: no value)."""
    rng = random.Random(seed)
    data = np.full((5, 40), np.nan)
    for unit in range(40):
        for coder in rng.sample(range(5), rng.randint(0, 5)):
            if level == Level.NOMINAL:
                data[coder, unit] = rng.randint(0, 3)
            elif level == Level.ORDINAL:
                data[coder, unit] = rng.choice([1, 2, 3, 4, 5, 7])
            else:
                data[coder, unit] = rng.choice([0.5, 2.25, 3.0, 10.0, -4.0])
    return data


def units_of(data: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in data[:, u] if not math.isnan(v)] for u in range(data.shape[1])]


def test_alpha_of_the_classic_two_observer_example() -> None:
    units = [[a, b] for a, b in zip(OBSERVER_A, OBSERVER_B, strict=True)]
    assert alpha(units, Level.NOMINAL) == pytest.approx(8 / 84)
    assert alpha_closed_form(units, Level.NOMINAL) == pytest.approx(8 / 84)


@pytest.mark.parametrize("level", list(Level))
@pytest.mark.parametrize("seed", range(8))
def test_alpha_equals_the_krippendorff_package(level: Level, seed: int) -> None:
    data = random_reliability_data(seed, level)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement=level.value)
    units = units_of(data)
    assert alpha(units, level) == pytest.approx(expected, abs=1e-12)
    assert alpha_closed_form(units, level) == pytest.approx(expected, abs=1e-12)


def test_large_inputs_take_the_closed_form_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = random_reliability_data(3, Level.INTERVAL)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    monkeypatch.setattr(reliability, "LIBRARY_CELLS", 1)
    monkeypatch.setattr(krippendorff, "alpha", None)  # would fail if called
    assert alpha(units_of(data), Level.INTERVAL) == pytest.approx(expected, abs=1e-12)


def test_date_times_in_seconds_keep_their_precision() -> None:
    # Seconds since 1970 are about 1.7e9: squared sums must not swallow a few seconds.
    base = 1_772_000_000.0
    units = [[base, base + 2], [base + 86400, base + 86401], [base + 5, base + 5]]
    shifted = [[v - base for v in u] for u in units]
    assert alpha(units, Level.INTERVAL) == pytest.approx(alpha(shifted, Level.INTERVAL))
    assert alpha_closed_form(units, Level.INTERVAL) == pytest.approx(alpha(shifted, Level.INTERVAL))


def test_alpha_is_none_when_undefined() -> None:
    assert alpha([], Level.NOMINAL) is None
    assert alpha([["a"], ["b"]], Level.NOMINAL) is None  # no unit with two values
    assert alpha([["a", "a"], ["a", "a", "a"]], Level.NOMINAL) is None  # no variation
    assert alpha_closed_form([[2.0, 2.0]], Level.INTERVAL) is None


def test_kappa_by_hand() -> None:
    # The two observers above: po = 6/10; pe = 0.8 * 0.6 + 0.2 * 0.4 = 0.56;
    # kappa = (0.6 - 0.56) / (1 - 0.56) = 1/11.
    assert kappa(OBSERVER_A, OBSERVER_B, Level.NOMINAL) == pytest.approx(1 / 11)
    # Quadratic weights over 1..3: observed weighted disagreement 1 (the pair 2/3), expected
    # (1/3) * sum of a_i * b_j * (i - j)^2 = (8 + 3 + 4) / 3 = 5; kappa = 1 - 1/5.
    assert kappa([1, 2, 3], [1, 3, 3], Level.ORDINAL) == pytest.approx(0.8)
    # Whole numbers fill their scale: 1, 2 and 5 sit at 0, 1 and 4 of 1..5. Observed: (2, 5)
    # is 3 apart, 9; expected (1/3) * (1*2*16 + 1*(1 + 2*9) + 1*16) = 67/3; 1 - 27/67.
    assert kappa([1, 2, 5], [1, 5, 5], Level.ORDINAL) == pytest.approx(40 / 67)


def test_kappa_is_none_when_undefined() -> None:
    assert kappa([], [], Level.NOMINAL) is None
    assert kappa(["x", "x"], ["x", "x"], Level.NOMINAL) is None
    assert kappa([1.0, 2.0], [1.0, 2.5], Level.INTERVAL) is None
    assert kappa(["x", "y"], ["y", "x"], Level.NOMINAL) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="differ in length"):
        kappa([1], [1, 2], Level.NOMINAL)


def test_pair_agreement() -> None:
    assert pair_agreement(["a", "a", "b"], lambda x, y: x == y) == pytest.approx(1 / 3)
    assert pair_agreement([3, 4, 5], lambda x, y: abs(x - y) <= 1) == pytest.approx(2 / 3)
    assert pair_agreement(["a"], lambda x, y: x == y) is None
