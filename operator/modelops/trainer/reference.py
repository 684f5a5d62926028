"""Reference distributions recorded at training time, for drift detection against live traffic.

Numeric: `edges` are the interior quantile edges (ascending, de-duplicated) and an implicit last
+Inf bin; the bin of a value v is the number of edges < v, so v == edge falls in that edge's bin.
That is exactly Prometheus' `le` bucket semantics, so the server can export a histogram with
these edges as buckets and the operator can compare `increase()` of each bucket with `shares`.
`samples` is the number of rows counted: the drift test treats the reference as a sample of
that size, not as exact proportions (a small training set has noisy bins of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def bin_index(edges: Sequence[float] | np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin of each value: the count of edges strictly below it (le semantics)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")


def numeric_bins(values: np.ndarray, bins: int) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.float64)
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(values, quantiles))
    counts = np.bincount(bin_index(edges, values), minlength=len(edges) + 1)
    return {"edges": [float(e) for e in edges], "shares": _shares(counts), "samples": int(counts.sum())}


def category_bins(values: Sequence[Any], categories: Sequence[str] | None = None) -> dict[str, Any]:
    """Shares per category (as str); `categories` fixes the order and keeps zero-share ones."""
    labels = np.asarray([str(v) for v in values], dtype=object)
    cats = list(categories) if categories is not None else sorted(set(labels.tolist()))
    position = {c: i for i, c in enumerate(cats)}
    counts = np.bincount([position[v] for v in labels.tolist()], minlength=len(cats))
    return {"categories": cats, "shares": _shares(counts), "samples": int(counts.sum())}


def _shares(counts: np.ndarray) -> list[float]:
    total = int(counts.sum())
    return [float(c) / total for c in counts] if total else [0.0] * len(counts)
