"""Drift scores against hand-worked values and scipy."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from modelops.drift.scores import (
    EPS,
    jensen_shannon,
    ks,
    normalise,
    psi,
    psi_band,
    score,
    total_variation,
)


def test_psi_three_bins_by_hand():
    # expected 50/30/20 %, live counts 40/30/30 → shares 0.4/0.3/0.3
    # (0.4-0.5)·ln(0.4/0.5) + (0.3-0.3)·ln(1) + (0.3-0.2)·ln(0.3/0.2)
    # = 0.1·0.2231435513 + 0 + 0.1·0.4054651081 = 0.0628608659
    assert psi([0.5, 0.3, 0.2], [40, 30, 30]) == pytest.approx(0.0628608659, abs=1e-9)


def test_psi_swap_by_hand_is_major():
    # (0.5-0.25)·ln 2 + 0 + (0.25-0.5)·ln(1/2) = 0.5·ln 2
    value = psi([0.25, 0.25, 0.5], [0.5, 0.25, 0.25])
    assert value == pytest.approx(0.5 * math.log(2), abs=1e-12)
    assert psi_band(value) == "major"


def test_psi_is_zero_for_the_same_distribution_and_ignores_scale():
    assert psi([0.1, 0.2, 0.7], [10, 20, 70]) == pytest.approx(0.0, abs=1e-15)
    assert psi([1, 2, 7], [0.1, 0.2, 0.7]) == pytest.approx(0.0, abs=1e-15)


def test_psi_empty_bin_is_smoothed_to_a_finite_value():
    expected, actual = [0.5, 0.5, 0.0], [0.5, 0.25, 0.25]
    value = psi(expected, actual)
    assert math.isfinite(value)
    # the documented smoothing: floor at EPS, renormalise, then the plain formula
    e = [0.5 / (1 + EPS), 0.5 / (1 + EPS), EPS / (1 + EPS)]
    a = [0.5, 0.25, 0.25]
    by_hand = sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))
    assert value == pytest.approx(by_hand, rel=1e-12)
    # without empty bins smoothing changes nothing
    assert psi([0.5, 0.3, 0.2], [0.4, 0.3, 0.3], eps=1e-9) == pytest.approx(
        psi([0.5, 0.3, 0.2], [0.4, 0.3, 0.3])
    )


def test_psi_bands():
    assert psi_band(0.0) == "none"
    assert psi_band(0.0999) == "none"
    assert psi_band(0.1) == "moderate"
    assert psi_band(0.2499) == "moderate"
    assert psi_band(0.25) == "major"
    assert psi_band(3.0) == "major"


def test_ks_is_the_max_cdf_gap_by_hand():
    # CDFs 0.2/0.5/1.0 vs 0.5/0.8/1.0 → gaps 0.3, 0.3, 0
    assert ks([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]) == pytest.approx(0.3)
    assert ks([20, 30, 50], [20, 30, 50]) == 0.0
    assert ks([1, 0, 0], [0, 0, 1]) == pytest.approx(1.0)


def test_binned_ks_equals_scipy_when_values_sit_on_the_bin_points():
    # every value of a bin at one point: the binned statistic is then the exact KS statistic
    a = np.repeat([1.0, 2.0, 3.0, 4.0], [20, 30, 35, 15])
    b = np.repeat([1.0, 2.0, 3.0, 4.0], [45, 25, 20, 10])
    assert ks([20, 30, 35, 15], [45, 25, 20, 10]) == pytest.approx(ks_2samp(a, b).statistic)


def test_total_variation_by_hand_and_order_free():
    assert total_variation([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]) == pytest.approx(0.3)
    assert total_variation([0.5, 0.2, 0.3], [0.2, 0.5, 0.3]) == pytest.approx(0.3)
    # KS depends on the order of the bins, TV does not
    assert ks([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]) == pytest.approx(0.5)
    assert ks([0.5, 0.0, 0.5], [0.0, 0.5, 0.5]) == pytest.approx(0.5)
    assert total_variation([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_jensen_shannon_matches_scipy_base2(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.random(8), rng.random(8)
    p[seed % 8] = 0.0  # an empty bin is fine for JS
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_jensen_shannon_bounds():
    assert jensen_shannon([1, 0, 0], [0, 1, 0]) == pytest.approx(1.0)
    assert jensen_shannon([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-7)
    # scipy's documented example, in base 2
    assert jensen_shannon([1.0, 0.0], [0.5, 0.5]) == pytest.approx(
        jensenshannon([1.0, 0.0], [0.5, 0.5], base=2)
    )


def test_score_dispatch_and_categorical_ks():
    e, a = [0.5, 0.2, 0.3], [0.2, 0.5, 0.3]
    assert score("psi", e, a) == psi(e, a)
    assert score("jensenShannon", e, a) == jensen_shannon(e, a)
    assert score("ks", e, a) == ks(e, a)
    assert score("ks", e, a, categorical=True) == total_variation(e, a)
    with pytest.raises(ValueError, match="unknown drift method"):
        score("chi2", e, a)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expected", "actual", "match"),
    [
        ([0.5, 0.5], [1, 1, 1], "do not line up"),
        ([0.5, 0.5], [0, 0], "empty"),
        ([0.5, -0.1], [1, 1], "negative"),
        ([], [], "no bins"),
        ([0.5, math.nan], [1, 1], "non-finite"),
    ],
)
def test_bad_input_is_refused(expected, actual, match):
    for fn in (psi, ks, jensen_shannon, total_variation):
        with pytest.raises(ValueError, match=match):
            fn(expected, actual)


def test_normalise():
    assert normalise([1, 3]) == [0.25, 0.75]
