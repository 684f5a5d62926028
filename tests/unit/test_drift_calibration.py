"""The drift rule on simulated data: false alarms on drift-free traffic stay at alpha, real shifts are seen.

1,000 seeded draws per case; each draw is one evaluation (a fresh training sample binned like the
trainer does, and n live rows from the same distribution). The bound allows the binomial noise of
1,000 draws (the 99.9 % quantile of Binomial(1000, alpha): 20 alarms at alpha = 0.01), so a change of
seed does not make the test flaky, while the pre-test rule (PSI >= 0.25 alone) breaks it by a wide
margin in the cases `test_the_old_psi_only_rule_fails_the_same_bound` names.
"""

import numpy as np
import pytest
from scipy.stats import binom, chi2, ncx2

from modelops.api.retrainpolicy import DriftTrigger
from tests.support.drift_simulation import alarms, old_alarms, simulate

DRAWS = 1000
ALPHA = DriftTrigger().alpha
BOUND = binom.ppf(0.999, DRAWS, ALPHA) / DRAWS
CASES = [(n, bins) for n in (100, 300, 1000) for bins in (10, 20)]


@pytest.mark.parametrize("reference_size", [120, 1000], ids=["ref120", "ref1000"])
@pytest.mark.parametrize(("n", "bins"), CASES, ids=[f"n{n}-k{k}" for n, k in CASES])
def test_null_false_alarms_at_most_alpha(n, bins, reference_size):
    rng = np.random.default_rng(1000 * n + bins + reference_size)
    ref, live = simulate(rng, draws=DRAWS, n=n, bins=bins, reference_size=reference_size)
    assert BOUND <= 0.021
    for method in ("psi", "ks", "jensenShannon"):
        # threshold 0: the test alone must hold its level, whatever the effect-size gate adds
        assert alarms(ref, live, method=method, threshold=0.0, alpha=ALPHA).mean() <= BOUND
    assert alarms(ref, live, alpha=ALPHA).mean() <= BOUND  # the default rule: PSI >= 0.25 and the test


@pytest.mark.parametrize("correction", ["benjaminiHochberg", "bonferroni"])
def test_per_evaluation_false_alarms_with_many_features(correction):
    rng = np.random.default_rng(42)
    ref, live = simulate(rng, draws=DRAWS, n=300, bins=10, reference_size=500, features=6)
    corrected = alarms(ref, live, threshold=0.0, alpha=ALPHA, correction=correction).mean()
    uncorrected = alarms(ref, live, threshold=0.0, alpha=ALPHA, correction="none").mean()
    assert corrected <= BOUND
    # without a correction six features alarm about 1 - 0.99^6 ≈ 6 % of the time
    assert uncorrected > 2.5 * BOUND


@pytest.mark.parametrize(
    ("n", "bins", "reference_size"),
    [(100, 10, 120), (100, 20, 120), (300, 20, 120), (100, 20, 1000)],
)
def test_the_old_psi_only_rule_fails_the_same_bound(n, bins, reference_size):
    """Keeps the null test honest: the rule it replaced does not pass it."""
    rng = np.random.default_rng(7 + n + bins)
    ref, live = simulate(rng, draws=DRAWS, n=n, bins=bins, reference_size=reference_size)
    assert old_alarms(ref, live).mean() > 3 * BOUND
    assert alarms(ref, live, alpha=ALPHA).mean() <= BOUND


@pytest.mark.parametrize(("n", "bins"), CASES, ids=[f"n{n}-k{k}" for n, k in CASES])
def test_a_one_sd_shift_is_detected(n, bins):
    rng = np.random.default_rng(n + bins)
    ref, live = simulate(rng, draws=200, n=n, bins=bins, reference_size=1000, shift=1.0)
    assert alarms(ref, live, alpha=ALPHA).mean() >= 0.95


def test_a_quarter_sd_shift_is_below_the_default_effect_size():
    """PSI of a 0.25 sd shift on decile bins is ~0.06, under 0.25: seen by the test, not acted on."""
    rng = np.random.default_rng(5)
    ref, live = simulate(rng, draws=300, n=1000, bins=10, reference_size=5000, shift=0.25)
    assert alarms(ref, live, threshold=0.0, alpha=ALPHA).mean() >= 0.9  # significant
    assert alarms(ref, live, alpha=ALPHA).mean() <= 0.02  # but not big enough to retrain for


def power_at(n: int, bins: int, divergence: float, alpha: float) -> float:
    """Power of Pearson's X² when the live shares sit `divergence` (chi-square divergence) off."""
    df = bins - 1
    return float(ncx2.sf(chi2.isf(alpha, df), df, n * divergence))


def test_min_samples_default_is_where_a_threshold_sized_drift_is_usually_seen():
    """minSamples is derived, not picked: with 10 bins at alpha 0.01, a drift right at the default
    PSI threshold (0.25 ≈ a 0.5 sd shift, chi-square divergence ≈ 0.25) is detected with ~90 %
    power at the default n (noncentral chi-square, noncentrality n x divergence, reference much
    larger than n). Below it a Stable verdict would mostly mean "too little data to tell".
    """
    trig = DriftTrigger()
    assert (trig.method, trig.threshold, trig.alpha) == ("psi", 0.25, 0.01)
    assert 0.85 <= power_at(trig.min_samples, 10, trig.threshold, trig.alpha) < 0.95
    assert power_at(trig.min_samples // 2, 10, trig.threshold, trig.alpha) < 0.5
    # and Pearson's approximation is comfortable there: 10 expected live rows per bin
    assert trig.min_samples / 10 >= 5


def test_the_simulation_judges_like_the_operator():
    """`alarms` (vectorised) and `evaluate_features` (what the controller calls) agree draw by draw."""
    from modelops.api.modelversion import Bin
    from modelops.drift.evaluate import evaluate_features
    from modelops.prometheus import Sample

    rng = np.random.default_rng(11)
    ref, live = simulate(rng, draws=60, n=150, bins=10, reference_size=200, shift=0.6, features=2)
    fast = alarms(ref, live, alpha=ALPHA)
    edges = [float(e) for e in range(1, 10)]  # any 9 ascending edges: only the counts matter here
    les = [f"{e:g}" for e in edges] + ["+Inf"]
    for d in range(60):
        reference = {
            f"f{i}": Bin(edges=edges, shares=list(ref[d, i] / ref[d, i].sum()), samples=int(ref[d, i].sum()))
            for i in range(2)
        }
        samples = [
            Sample({"feature": f"f{i}", "le": le}, float(c))
            for i in range(2)
            for le, c in zip(les, np.cumsum(live[d, i]), strict=True)
        ]
        ev = evaluate_features(reference, samples, [], "psi", 0.25, 100, alpha=ALPHA)
        assert (ev.result == "Drifted") == bool(fast[d])
    assert 0 < fast.sum() < 60  # both verdicts occur
