"""Drift scores between a reference distribution and live data on the same bins; pure math, no I/O.

Every score takes the reference (expected) and the live (actual) distribution as two
sequences aligned bin by bin. Either may be raw counts or shares: both are normalised
first, so callers can pass Prometheus bucket counts straight in. All scores are 0 for
identical distributions and grow with the shift.

- `psi`: Population Stability Index, sum((a - e) * ln(a / e)), natural log, with the usual
  bands 0.1 / 0.25 (`psi_band`). Unbounded above.
- `ks`: the *binned* Kolmogorov-Smirnov statistic, max |CDF_e - CDF_a| over the bin edges.
  It is the two-sample KS statistic evaluated only at the reference edges, so it is a lower
  bound of the KS statistic of the raw values (which Prometheus does not keep). In [0, 1].
- `total_variation`: 1/2 * sum |e - a|, what KS becomes when bins have no order (categories).
- `jensen_shannon`: the Jensen-Shannon *distance* with base-2 logarithms (the square root of
  the divergence), as `scipy.spatial.distance.jensenshannon(p, q, base=2)`. A metric, in [0, 1].

A distance alone does not say whether the live sample could be noise: its null distribution
depends on the live count n, the number of bins and the size of the reference sample. So each
distance comes with a significance test on the same bins (`homogeneity_test`), p-values are
corrected across features (`reject`), and a feature drifts only when both the distance reaches
the threshold and the corrected test rejects (see `modelops.drift.evaluate`). Those functions
are vectorised over leading axes, so the false-alarm and power simulations run the very code
the operator runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

EPS = 1e-4
"""PSI smoothing: every share is floored at this before the log (see `psi`)."""

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25

Method = Literal["psi", "ks", "jensenShannon"]
Band = Literal["none", "moderate", "major"]
Correction = Literal["benjaminiHochberg", "bonferroni", "none"]

JEFFREYS = 0.5
"""Pseudo-count added to every bin before a distance is taken (the Jeffreys prior, Dirichlet(1/2))."""


def normalise(values: Sequence[float], what: str = "distribution") -> list[float]:
    """Counts or shares → shares summing to 1; refuses what cannot be a distribution."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError(f"{what} has no bins")
    if any(not math.isfinite(v) or v < 0 for v in vals):
        raise ValueError(f"{what} has a negative or non-finite value: {vals}")
    total = math.fsum(vals)
    if total <= 0:
        raise ValueError(f"{what} is empty (all bins are 0)")
    return [v / total for v in vals]


def _pair(expected: Sequence[float], actual: Sequence[float]) -> tuple[list[float], list[float]]:
    if len(expected) != len(actual):
        raise ValueError(f"bins do not line up: {len(expected)} reference vs {len(actual)} live")
    return normalise(expected, "reference"), normalise(actual, "live data")


def _smooth(shares: list[float], eps: float) -> list[float]:
    floored = [max(s, eps) for s in shares]
    total = math.fsum(floored)
    return [s / total for s in floored]


def psi(expected: Sequence[float], actual: Sequence[float], eps: float = EPS) -> float:
    """Population Stability Index of `actual` against `expected` (natural log).

    An empty bin on either side would make ln(a / e) infinite, so each share is floored at
    `eps` and the vector renormalised before the sum. A bin that is empty on one side then
    contributes about |s| * ln(|s| / eps): large but finite, so one new value range cannot
    produce an infinite score. Distributions without empty bins are not changed by this.
    """
    if eps <= 0:
        raise ValueError("eps must be positive")
    e, a = _pair(expected, actual)
    e, a = _smooth(e, eps), _smooth(a, eps)
    return max(0.0, math.fsum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True)))


def ks(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Binned KS statistic: the largest gap between the two cumulative shares at the bin edges."""
    e, a = _pair(expected, actual)
    gap, ce, ca = 0.0, 0.0, 0.0
    for ei, ai in zip(e, a, strict=True):
        ce += ei
        ca += ai
        gap = max(gap, abs(ce - ca))
    return min(1.0, gap)


def total_variation(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Total variation distance, max over all sets of bins of |P(set) - Q(set)|; needs no bin order."""
    e, a = _pair(expected, actual)
    return min(1.0, 0.5 * math.fsum(abs(ei - ai) for ei, ai in zip(e, a, strict=True)))


def _kl2(p: list[float], m: list[float]) -> float:
    return math.fsum(pi * math.log2(pi / mi) for pi, mi in zip(p, m, strict=True) if pi > 0)


def jensen_shannon(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Jensen-Shannon distance, base 2: sqrt((KL(e||m) + KL(a||m)) / 2) with m the mean; in [0, 1].

    Defined for empty bins on either side (m > 0 wherever p > 0), so no smoothing is needed.
    """
    e, a = _pair(expected, actual)
    m = [(ei + ai) / 2 for ei, ai in zip(e, a, strict=True)]
    divergence = (_kl2(e, m) + _kl2(a, m)) / 2
    return min(1.0, math.sqrt(max(0.0, divergence)))


def score(
    method: Method, expected: Sequence[float], actual: Sequence[float], *, categorical: bool = False
) -> float:
    """The drift score a RetrainPolicy asks for.

    KS needs ordered bins; on categories (no order) it is replaced by the total variation
    distance, the supremum of the same |P - Q| over every set of categories.
    """
    if method == "psi":
        return psi(expected, actual)
    if method == "ks":
        return total_variation(expected, actual) if categorical else ks(expected, actual)
    if method == "jensenShannon":
        return jensen_shannon(expected, actual)
    raise ValueError(f"unknown drift method {method!r}")


def psi_band(value: float) -> Band:
    """The conventional reading of a PSI: below 0.1 none, 0.1 up to 0.25 moderate, 0.25 and up major."""
    if value >= PSI_MAJOR:
        return "major"
    if value >= PSI_MODERATE:
        return "moderate"
    return "none"


# --- sample-size-aware parts: smoothing, the test, the correction --------------------------------


def jeffreys(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Counts → shares with half a pseudo-count per bin: (c + 1/2) / (n + k/2), along the last axis.

    The posterior mean under a Jeffreys Dirichlet(1/2, ..., 1/2) prior (the Krichevsky-Trofimov
    estimator). Why not a fixed floor: an empty bin is weak evidence when n is small and strong
    when n is large, and a share floor of 1e-4 makes one empty live bin add about
    share x ln(share / 1e-4) ≈ 0.6 to PSI at 10 bins whatever n is. Here an empty bin of n live
    samples gets share 1/(2n + k), so its contribution shrinks with the evidence, and the
    smoothing fades as n grows (it shifts each share by less than k / 2n).
    """
    c = np.asarray(counts, dtype=np.float64)
    k = c.shape[-1]
    return (c + JEFFREYS) / (c.sum(axis=-1, keepdims=True) + JEFFREYS * k)


def homogeneity_test(
    reference_counts: Sequence[float] | np.ndarray, live_counts: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pearson's chi-square test of homogeneity on the 2 x k table (reference, live) of bin counts.

    Returns (statistic, degrees of freedom, p-value), vectorised over leading axes.

    Two-sample, not goodness-of-fit: the reference shares are themselves estimated from the
    training sample (quantile bins of N rows), so treating them as exact makes the test reject
    too often whenever N is not much larger than the live n — the "held-out rows sit a little
    off the training bins" false alarms. Under H0 both rows are draws from one multinomial and
    X² = sum over both rows and non-empty columns of (O - E)² / E, E = row total x column total / N,
    is asymptotically chi-square with (non-empty columns - 1) degrees of freedom
    (Pearson 1900; Agresti, Categorical Data Analysis, 3rd ed., §3.2). Pearson's X² is used
    rather than the G-test (likelihood ratio) because it stays close to its chi-square law at
    expected counts down to ~1 (Koehler & Larntz 1980, JASA 75:336), where G rejects too often;
    columns empty on both sides carry no information and are dropped from the degrees of freedom.
    With quantile edges the reference column counts are fixed by construction rather than
    multinomial, but the true mass of each bin then varies as Beta with the same variance
    p(1 - p) / N, so the test keeps its level (checked by simulation in the unit tests).
    """
    r = np.asarray(reference_counts, dtype=np.float64)
    a = np.asarray(live_counts, dtype=np.float64)
    r, a = np.broadcast_arrays(r, a)
    rows_r = r.sum(axis=-1, keepdims=True)
    rows_a = a.sum(axis=-1, keepdims=True)
    total = rows_r + rows_a
    column = r + a
    used = column > 0
    safe_total = np.where(total > 0, total, 1.0)
    exp_r = np.where(used, column * rows_r / safe_total, 1.0)
    exp_a = np.where(used, column * rows_a / safe_total, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(used & (exp_r > 0), (r - exp_r) ** 2 / exp_r, 0.0) + np.where(
            used & (exp_a > 0), (a - exp_a) ** 2 / exp_a, 0.0
        )
    stat = terms.sum(axis=-1)
    df = used.sum(axis=-1) - 1
    empty = (rows_r[..., 0] <= 0) | (rows_a[..., 0] <= 0) | (df < 1)
    # chi2.sf without all of scipy.stats (~45 MiB), imported here: scipy.special alone adds
    # ~27 MiB to the operator, which only a policy evaluating drift needs.
    from scipy.special import chdtrc

    p = np.where(empty, 1.0, chdtrc(np.maximum(df, 1), stat))
    return np.where(empty, 0.0, stat), df, p


def reject(
    p_values: Sequence[float] | np.ndarray, alpha: float, correction: Correction = "benjaminiHochberg"
) -> np.ndarray:
    """Which tests reject at `alpha` after correcting for testing many features; last axis = features.

    - `benjaminiHochberg` (Benjamini & Hochberg 1995, JRSS B 57:289): reject the k smallest
      p-values, k the largest with p_(k) <= k/m x alpha. Controls the false discovery rate; when
      no feature drifted that is the chance of any alarm, so an evaluation (which acts when any
      feature drifted) is a false alarm with probability <= alpha — Simes' (1986) global test.
      Valid for independent or positively dependent features (Benjamini & Yekutieli 2001), and
      it loses far less power than Bonferroni when several features drift together.
    - `bonferroni`: reject p <= alpha / m. Family-wise error <= alpha under any dependence,
      at the price of power when there are many features.
    - `none`: p <= alpha per feature; with m features an evaluation raises a false alarm with
      probability up to 1 - (1 - alpha)^m.
    NaN p-values (features that were not judged) are neither rejected nor counted in m.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    p = np.asarray(p_values, dtype=np.float64)
    judged = ~np.isnan(p)
    m = judged.sum(axis=-1, keepdims=True)
    if correction == "none":
        return judged & (p <= alpha)
    if correction == "bonferroni":
        return judged & (p * np.maximum(m, 1) <= alpha)
    if correction == "benjaminiHochberg":
        filled = np.where(judged, p, np.inf)
        order = np.sort(filled, axis=-1)
        ranks = np.arange(1, p.shape[-1] + 1)
        passing = order <= ranks * alpha / np.maximum(m, 1)
        # the largest rank that passes sets the cut; every p-value at or below it is rejected
        has = passing.any(axis=-1, keepdims=True)
        last = p.shape[-1] - 1 - np.argmax(passing[..., ::-1], axis=-1)[..., None]
        cut = np.take_along_axis(order, last, axis=-1)
        return judged & has & (p <= cut)
    raise ValueError(f"unknown correction {correction!r}")


QUANTILE_SLACK = 2.0
"""Reference rows per bin of extra uncertainty for quantile bins; see `reference_weight`."""


def reference_weight(reference_samples: float | np.ndarray, bins: int, quantile: bool) -> float | np.ndarray:
    """How many multinomial rows the reference counts as in the test: N, or N·m/(m + 2) for quantile bins.

    Quantile edges fix every reference bin at m = N/k rows, and the unknown true mass of a bin
    between sample quantiles is a sum of m uniform spacings, Gamma(m)-like (skewness 2/sqrt(m),
    twice a multinomial count's). Its variance matches the multinomial p(1 - p)/N, but its tail
    is heavier, and when the live sample outgrows the reference (n >> N, the reference's noise
    dominates) Pearson's X² then rejects up to 3x too often at 6 rows per bin (simulated).
    Counting the reference as N·m/(m + QUANTILE_SLACK) rows restores the level at every
    n, k and N down to m = 4 in the simulation of the unit tests; it fades when m is large
    (m = 100: 2 %). The constant is chosen by that simulation, not derived. Categorical
    references are plain multinomial counts and keep N.
    """
    n = np.asarray(reference_samples, dtype=np.float64)
    weight = n * (n / bins) / (n / bins + QUANTILE_SLACK) if quantile else n
    return float(weight) if weight.ndim == 0 else weight


def distances(
    method: Method, expected: np.ndarray, actual: np.ndarray, *, categorical: bool = False
) -> np.ndarray:
    """`score` vectorised over leading axes, on shares that already sum to 1 along the last axis."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if method == "psi":
        e, a = np.maximum(e, EPS), np.maximum(a, EPS)
        e, a = e / e.sum(axis=-1, keepdims=True), a / a.sum(axis=-1, keepdims=True)
        return np.maximum(0.0, ((a - e) * np.log(a / e)).sum(axis=-1))
    if method == "ks":
        if categorical:
            return np.minimum(1.0, 0.5 * np.abs(e - a).sum(axis=-1))
        return np.minimum(1.0, np.abs(np.cumsum(e - a, axis=-1)).max(axis=-1))
    if method == "jensenShannon":
        m = (e + a) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            ke = np.where(e > 0, e * np.log2(e / m), 0.0).sum(axis=-1)
            ka = np.where(a > 0, a * np.log2(a / m), 0.0).sum(axis=-1)
        return np.minimum(1.0, np.sqrt(np.maximum(0.0, (ke + ka) / 2)))
    raise ValueError(f"unknown drift method {method!r}")


def drift_statistics(
    method: Method,
    reference_counts: np.ndarray,
    live_counts: np.ndarray,
    *,
    categorical: bool = False,
    quantile: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(distance, p-value) per row of bin counts; what a feature is judged on.

    The distance is the effect size: PSI on Jeffreys-smoothed shares of both sides (`jeffreys`;
    the only score that needs smoothing), KS / total variation and Jensen-Shannon on the plain
    shares (bounded and defined for empty bins). The p-value is `homogeneity_test` with the
    reference counted as `reference_weight` rows. Reference counts are the recorded shares
    times the recorded reference size.
    """
    r = np.asarray(reference_counts, dtype=np.float64)
    a = np.asarray(live_counts, dtype=np.float64)
    r, a = np.broadcast_arrays(r, a)
    if method == "psi":
        value = distances(method, jeffreys(r), jeffreys(a))
    else:
        value = distances(
            method,
            r / r.sum(axis=-1, keepdims=True),
            a / a.sum(axis=-1, keepdims=True),
            categorical=categorical,
        )
    n_ref = r.sum(axis=-1, keepdims=True)
    weight = reference_weight(n_ref, r.shape[-1], quantile)
    r = r * np.divide(weight, n_ref, out=np.zeros_like(n_ref), where=n_ref > 0)
    _, _, p = homogeneity_test(r, a)
    return value, p


def decide(
    values: np.ndarray,
    p_values: np.ndarray,
    threshold: float,
    alpha: float,
    correction: Correction = "benjaminiHochberg",
) -> np.ndarray:
    """Drifted per feature (last axis): the distance reaches `threshold` AND the corrected test rejects.

    Either alone is wrong: the distance alone calls noise drift at small n (its null mean grows
    like bins / n), the test alone calls any tiny shift drift once n is large enough. NaN
    p-values are features that were not judged.
    """
    return reject(p_values, alpha, correction) & (np.asarray(values, dtype=np.float64) >= threshold)
