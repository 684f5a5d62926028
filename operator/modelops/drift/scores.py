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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

EPS = 1e-4
"""PSI smoothing: every share is floored at this before the log (see `psi`)."""

PSI_MODERATE = 0.1
PSI_MAJOR = 0.25

Method = Literal["psi", "ks", "jensenShannon"]
Band = Literal["none", "moderate", "major"]


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
