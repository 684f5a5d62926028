"""Drift scores against hand-worked values and scipy."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, false_discovery_control, ks_2samp

from modelops.drift.scores import (
    EPS,
    decide,
    distances,
    drift_statistics,
    homogeneity_test,
    jeffreys,
    jensen_shannon,
    ks,
    normalise,
    psi,
    psi_band,
    reference_weight,
    reject,
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


# --- the test, the correction, the smoothing ------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "live"),
    [
        ([30, 20, 0, 50], [10, 15, 3, 22]),  # a bin empty on one side only
        ([100, 100, 100], [90, 120, 90]),
        ([5, 0, 5, 10], [2, 0, 1, 30]),  # a bin empty on both sides: dropped, 2 df
    ],
)
def test_homogeneity_test_is_pearsons_chi_square_of_the_two_row_table(reference, live):
    stat, df, p = homogeneity_test(reference, live)
    table = [[r, a] for r, a in zip(reference, live, strict=True) if r + a > 0]
    want = chi2_contingency(np.array(table).T, correction=False)
    assert float(stat) == pytest.approx(want.statistic) and int(df) == want.dof
    assert float(p) == pytest.approx(want.pvalue)


def test_homogeneity_test_vectorises_and_handles_empty_rows():
    stat, _, p = homogeneity_test([[30, 20, 50], [10, 10, 10]], [[10, 15, 22], [0, 0, 0]])
    assert float(p[0]) == pytest.approx(
        chi2_contingency([[30, 20, 50], [10, 15, 22]], correction=False).pvalue
    )
    assert p[1] == 1.0 and stat[1] == 0.0  # no live data: nothing to reject


def test_jeffreys_adds_half_a_count_per_bin():
    assert jeffreys([0, 10, 10]).tolist() == pytest.approx([0.5 / 21.5, 10.5 / 21.5, 10.5 / 21.5])
    # one empty live bin of 10: its weight follows the evidence (n), not a fixed 1e-4 floor
    ref = jeffreys([1000.0] * 10)
    floored = psi([0.1] * 10, [0, *[1 / 9] * 9])
    assert floored == pytest.approx(0.70, abs=0.01)  # whatever n is
    at_20 = psi(ref, jeffreys([0, *[20 / 9] * 9]))
    at_100 = psi(ref, jeffreys([0, *[100 / 9] * 9]))
    assert at_20 < 0.15 < at_100 < 0.35 < floored


@pytest.mark.parametrize("seed", range(3))
def test_vectorised_distances_match_the_scalar_scores(seed):
    rng = np.random.default_rng(seed)
    e, a = rng.random((4, 7)), rng.random((4, 7))
    a[:, seed] = 0.0
    e, a = e / e.sum(axis=1, keepdims=True), a / a.sum(axis=1, keepdims=True)
    for method in ("psi", "ks", "jensenShannon"):
        got = distances(method, e, a)
        assert got.tolist() == pytest.approx([score(method, ei, ai) for ei, ai in zip(e, a, strict=True)])
    tv = distances("ks", e, a, categorical=True)
    assert tv.tolist() == pytest.approx([total_variation(ei, ai) for ei, ai in zip(e, a, strict=True)])


def test_benjamini_hochberg_matches_scipy_and_skips_unjudged_features():
    rng = np.random.default_rng(3)
    p = rng.random((500, 6)) ** 4
    p[:, 2] = np.nan
    got = reject(p, 0.05, "benjaminiHochberg")
    for row, mask in zip(p, got, strict=True):
        judged = ~np.isnan(row)
        want = np.zeros(len(row), dtype=bool)
        want[judged] = false_discovery_control(row[judged]) <= 0.05
        assert mask.tolist() == want.tolist()
    assert got.sum() > 100  # the comparison saw rejections, not only empty sets


def test_bonferroni_and_none_by_hand():
    p = [0.004, 0.02, 0.0021, np.nan]
    assert reject(p, 0.01, "bonferroni").tolist() == [False, False, True, False]  # alpha / 3
    assert reject(p, 0.01, "none").tolist() == [True, False, True, False]
    # BH: sorted 0.0021 <= 1/3·0.01, 0.004 <= 2/3·0.01, 0.02 > 0.01
    assert reject(p, 0.01, "benjaminiHochberg").tolist() == [True, False, True, False]
    with pytest.raises(ValueError, match="alpha"):
        reject(p, 1.0)


def test_a_feature_drifts_only_when_effect_and_test_agree():
    values = np.array([0.5, 0.5, 0.05, 0.05])
    p = np.array([1e-6, 0.2, 1e-6, 0.2])
    assert decide(values, p, 0.25, 0.01, "none").tolist() == [True, False, False, False]


def test_reference_weight_only_discounts_quantile_bins():
    assert reference_weight(1000, 10, quantile=False) == 1000
    assert reference_weight(1000, 10, quantile=True) == pytest.approx(1000 * 100 / 102)
    assert reference_weight(60, 20, quantile=True) == pytest.approx(60 * 3 / 5)


def test_drift_statistics_counts_a_bigger_reference_as_more_certain():
    live = np.array([40.0, 25, 20, 15])
    small = drift_statistics("psi", np.array([25.0, 25, 25, 25]), live)
    large = drift_statistics("psi", np.array([250.0, 250, 250, 250]), live)
    assert large[1] < 0.01 < 0.05 < small[1]  # same shares, ten times the rows: significant
    assert large[0] == pytest.approx(small[0])  # the effect size is the same
