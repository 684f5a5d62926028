"""Simulated drift evaluations, vectorised with numpy: the unit tests' null checks and bench/drift_power.py.

One draw is what the operator sees in one evaluation: a training sample of `reference_size`
rows is binned exactly as the trainer bins it (quantile edges, `le` semantics, see
`modelops.trainer.reference`), and `n` live rows, shifted by `shift` standard deviations, are
counted on those bins. A fresh reference per draw, because a real reference is one noisy sample
too (the reason the test is two-sample). The decision is made by the operator's own functions
(`drift_statistics`, `decide`), so a simulation result is a statement about the shipped rule.
"""

from __future__ import annotations

import numpy as np

from modelops.drift.scores import Correction, Method, decide, distances, drift_statistics


def quantile_counts(rng: np.random.Generator, draws: int, reference_size: int, bins: int) -> np.ndarray:
    """Reference bin counts and edges, as `trainer.reference.numeric_bins` makes them, one row per draw."""
    ref = rng.standard_normal((draws, reference_size))
    edges = np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1], axis=1).T
    return _count(ref, edges), edges


def _count(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # bin of v = number of edges strictly below it (searchsorted side="left", Prometheus `le`)
    draws, k = values.shape[0], edges.shape[1] + 1
    out = np.zeros((draws, k))
    for lo in range(0, draws, 100):  # chunks keep the (draws, n, edges) comparison small
        idx = (values[lo : lo + 100, :, None] > edges[lo : lo + 100, None, :]).sum(axis=-1)
        np.add.at(out[lo : lo + 100], (np.arange(idx.shape[0])[:, None], idx), 1.0)
    return out


def simulate(
    rng: np.random.Generator,
    *,
    draws: int,
    n: int,
    bins: int,
    reference_size: int,
    shift: float = 0.0,
    features: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """(reference counts, live counts), shape (draws, features, bins), for independent features.

    Only the first feature is shifted; the others stay null.
    """
    refs, lives = [], []
    for f in range(features):
        ref_counts, edges = quantile_counts(rng, draws, reference_size, bins)
        live = rng.standard_normal((draws, n)) + (shift if f == 0 else 0.0)
        refs.append(ref_counts)
        lives.append(_count(live, edges))
    return np.stack(refs, axis=1), np.stack(lives, axis=1)


def alarms(
    ref_counts: np.ndarray,
    live_counts: np.ndarray,
    *,
    method: Method = "psi",
    threshold: float = 0.25,
    alpha: float = 0.01,
    correction: Correction = "benjaminiHochberg",
) -> np.ndarray:
    """Per draw: did the evaluation call any feature Drifted (what a policy acts on)?"""
    values, p = drift_statistics(method, ref_counts, live_counts)
    return decide(values, p, threshold, alpha, correction).any(axis=-1)


def old_alarms(ref_counts: np.ndarray, live_counts: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """The rule before the test existed: PSI with a 1e-4 share floor at or above the threshold."""
    e = ref_counts / ref_counts.sum(axis=-1, keepdims=True)
    a = live_counts / live_counts.sum(axis=-1, keepdims=True)
    return (distances("psi", e, a) >= threshold).any(axis=-1)
