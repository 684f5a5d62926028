"""From Prometheus samples to per-feature drift results and the online metric; pure, no I/O.

The model server exports one histogram per numeric feature whose buckets are exactly the
reference's interior edges plus +Inf, and one counter per categorical feature labelled by
category (unseen categories as `__other__`). `promql.feature_buckets` / `feature_categories`
return `increase()` of those over the window; here they become live counts on the reference
bins and a score per feature. Too few samples is `Unknown`, which never counts as drift.

Samples are anything with `.labels` and `.value` (`modelops.prometheus.Sample`); this layer
does not import the client, so it stays free of I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, Literal, Protocol

import numpy as np

from modelops.api.modelversion import Bin
from modelops.api.retrainpolicy import DriftTrigger, PerformanceTrigger

from .scores import Band, Correction, Method, decide, distances, drift_statistics, normalise, psi_band

Span = Literal["interval", "window"]
SPAN_LABEL = "span"

OTHER = "__other__"
"""The category label the server uses for values not seen at training time."""

Result = Literal["Drifted", "Stable", "Unknown"]
OnlineResult = Literal["Breached", "Healthy", "Unknown"]


class SampleLike(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def value(self) -> float: ...


class DriftDataError(ValueError):
    """Live data cannot be lined up with the reference (missing buckets, malformed reference)."""


def _le(text: str) -> float:
    """A Prometheus `le` label ("0.5", "1e+06", "+Inf") as a float."""
    try:
        return float(text)
    except ValueError as e:
        raise DriftDataError(f"bucket label le={text!r} is not a number") from e


def _same_edge(a: float, b: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _check(reference: Bin) -> None:
    if reference.edges is not None:
        edges = reference.edges
        if len(reference.shares) != len(edges) + 1:
            raise DriftDataError(
                f"reference has {len(edges)} edges but {len(reference.shares)} shares (want {len(edges) + 1})"
            )
        if any(b <= a for a, b in pairwise(edges)):
            raise DriftDataError(f"reference edges are not strictly ascending: {edges}")
    elif reference.categories is not None:
        if len(reference.shares) != len(reference.categories):
            raise DriftDataError(
                f"reference has {len(reference.categories)} categories but {len(reference.shares)} shares"
            )
    else:
        raise DriftDataError("reference has neither edges nor categories")


def reference_shares(reference: Bin) -> list[float]:
    """The reference shares aligned with `live_bins`: categories get a trailing `__other__` bin (share 0)
    unless the reference already has one."""
    _check(reference)
    shares = [float(s) for s in reference.shares]
    if reference.categories is not None and OTHER not in reference.categories:
        shares.append(0.0)
    return shares


def live_bins(reference: Bin, samples: Iterable[SampleLike]) -> tuple[list[float], float]:
    """Live counts per reference bin, and their total, from one feature's samples.

    Numeric: samples carry cumulative `le` counts. Each interior edge and +Inf must be present
    (matched with `math.isclose`, since the label is the edge printed as a Go float); buckets at
    other `le` values are ignored, because cumulative counts at our edges are still exact. The
    per-bin count is the cumulative count minus the highest one below it: a dip (counter resets
    seen differently by `increase()` per bucket) gives that bin 0 instead of a negative count,
    and the total stays the +Inf count when the data is consistent.

    Categorical: counts by `category`; anything not in the reference goes to `__other__`.
    Raises DriftDataError when buckets are missing or the reference is malformed.
    """
    _check(reference)
    samples = list(samples)
    if reference.edges is not None:
        bounds = [*(float(e) for e in reference.edges), math.inf]
        cumulative: list[float | None] = [None] * len(bounds)
        for s in samples:
            le = s.labels.get("le")
            if le is None:
                raise DriftDataError(f"bucket sample without an le label: {dict(s.labels)}")
            value = _le(le)
            for i, bound in enumerate(bounds):
                if _same_edge(value, bound):
                    cumulative[i] = (cumulative[i] or 0.0) + max(0.0, float(s.value))
                    break
        missing = [_fmt(b) for b, c in zip(bounds, cumulative, strict=True) if c is None]
        if missing:
            raise DriftDataError(
                f"live histogram is missing buckets le={', '.join(missing)} "
                "(was the server built from a different reference?)"
            )
        counts, highest = [], 0.0
        for c in cumulative:
            assert c is not None
            counts.append(max(0.0, c - highest))
            highest = max(highest, c)
        return counts, math.fsum(counts)

    assert reference.categories is not None
    categories = list(reference.categories)
    index = {c: i for i, c in enumerate(categories)}
    if OTHER not in index:
        index[OTHER] = len(categories)
    counts = [0.0] * len(set(index.values()))
    for s in samples:
        cat = s.labels.get("category", OTHER)
        counts[index.get(cat, index[OTHER])] += max(0.0, float(s.value))
    return counts, math.fsum(counts)


def _fmt(edge: float) -> str:
    return "+Inf" if edge == math.inf else f"{edge:g}"


@dataclass(frozen=True)
class FeatureEval:
    """One feature's verdict. `score` is None when there was nothing to score."""

    score: float | None
    samples: int
    result: Result
    band: Band | None = None
    """PSI band (none/moderate/major), for method psi only."""
    error: str | None = None
    p_value: float | None = None
    """Of the chi-square test against the reference, before the correction across features."""
    span: Span | None = None
    """The live data judged: the newest interval, or the whole window."""

    def wire(self) -> dict[str, Any]:
        """As written to status.features[name]; nulls kept so a merge patch clears old values."""
        return {
            "score": None if self.score is None else round(self.score, 6),
            "samples": self.samples,
            "result": self.result,
            "band": self.band,
            "error": self.error,
            "pValue": None if self.p_value is None else float(f"{self.p_value:.4g}"),
            "span": self.span,
        }


@dataclass(frozen=True)
class DriftEvaluation:
    """All watched features, and the summary a policy acts on."""

    method: Method
    threshold: float
    features: Mapping[str, FeatureEval] = field(default_factory=dict)
    error: str | None = None
    """Why nothing could be evaluated at all (e.g. the champion has no reference)."""
    alpha: float = 0.01
    correction: Correction = "benjaminiHochberg"
    importance: Mapping[str, float] = field(default_factory=dict)
    """The champion's permutation importance per feature: a drifted important feature is named first."""

    @property
    def drifted(self) -> list[str]:
        names = [n for n, f in self.features.items() if f.result == "Drifted"]
        return sorted(names, key=lambda n: (-self.importance.get(n, 0.0), n))

    @property
    def max_score(self) -> float | None:
        scores = [f.score for f in self.features.values() if f.score is not None]
        return max(scores) if scores else None

    @property
    def samples(self) -> int:
        return max((f.samples for f in self.features.values()), default=0)

    @property
    def result(self) -> Result:
        """Drifted if any feature drifted; Stable if at least one was judged and none drifted;
        Unknown when no feature could be judged (too few samples or no data)."""
        results = {f.result for f in self.features.values()}
        if "Drifted" in results:
            return "Drifted"
        if "Stable" in results:
            return "Stable"
        return "Unknown"

    def summary(self) -> str:
        """One line for conditions and Events."""
        if self.error:
            return self.error
        if not self.features:
            return "no features to evaluate"
        top = self.max_score
        head = f"{self.result.lower()}: max {self.method} {top:.3g}" if top is not None else "unknown"
        if self.drifted:
            parts = ", ".join(_drifted_part(n, self.features[n]) for n in self.drifted)
            head += f" (threshold {self.threshold:g}, alpha {self.alpha:g}; drifted {parts})"
        unknown = sorted(n for n, f in self.features.items() if f.result == "Unknown")
        if unknown:
            why = {self.features[n].error or f"{self.features[n].samples} samples" for n in unknown}
            head += f"; unknown {', '.join(unknown)} ({'; '.join(sorted(why))})"
        return head


def _drifted_part(name: str, f: FeatureEval) -> str:
    text = f"{name}={f.score:.3g}" if f.score is not None else name
    return text + (f" p={f.p_value:.2g}" if f.p_value is not None else "")


def _by_feature(samples: Iterable[SampleLike]) -> dict[str, list[SampleLike]]:
    out: dict[str, list[SampleLike]] = {}
    for s in samples:
        name = s.labels.get("feature")
        if name is not None:
            out.setdefault(name, []).append(s)
    return out


def reference_size(reference: Bin, fallback: float | None) -> float | None:
    """Rows the reference shares were counted from: recorded in the Bin, else the caller's fallback."""
    size = reference.samples if reference.samples is not None else fallback
    return float(size) if size is not None and size > 0 else None


def _split_spans(samples: Sequence[SampleLike]) -> dict[Span, list[SampleLike]]:
    out: dict[Span, list[SampleLike]] = {"interval": [], "window": []}
    for s in samples:
        out["interval" if s.labels.get(SPAN_LABEL) == "interval" else "window"].append(s)
    return out


def evaluate_feature(
    reference: Bin,
    samples: Sequence[SampleLike],
    method: Method,
    threshold: float,
    min_samples: int,
    *,
    alpha: float = 0.01,
    reference_samples: float | None = None,
) -> FeatureEval:
    """Score and test one feature on its own (no correction); see `evaluate_features`.

    Any problem with the data makes it Unknown with the reason, never Drifted.
    """
    f = _measure(reference, samples, method, min_samples, reference_samples)
    if f.score is None or f.p_value is None:
        return f
    drifted = bool(decide(np.array([f.score]), np.array([f.p_value]), threshold, alpha, "none")[0])
    return _verdict(f, drifted)


def _verdict(f: FeatureEval, drifted: bool) -> FeatureEval:
    return FeatureEval(
        score=f.score,
        samples=f.samples,
        result="Drifted" if drifted else "Stable",
        band=f.band,
        error=f.error,
        p_value=f.p_value,
        span=f.span,
    )


def _measure(
    reference: Bin,
    samples: Sequence[SampleLike],
    method: Method,
    min_samples: int,
    reference_samples: float | None,
) -> FeatureEval:
    """Distance and p-value of one feature, result Unknown until the correction has run."""
    try:
        _check(reference)
        spans = _split_spans(samples)
        if not spans["interval"] and not spans["window"]:  # no traffic: no series yet
            return FeatureEval(score=None, samples=0, result="Unknown")
        span: Span = "window"
        counts, total = live_bins(reference, spans["window"]) if spans["window"] else ([], 0.0)
        if spans["interval"]:
            newest, newest_total = live_bins(reference, spans["interval"])
            if round(newest_total) >= min_samples or not spans["window"]:
                counts, total, span = newest, newest_total, "interval"
    except DriftDataError as e:
        return FeatureEval(score=None, samples=0, result="Unknown", error=str(e))
    n = round(total)
    if n < min_samples or total <= 0:
        return FeatureEval(score=None, samples=n, result="Unknown", span=span)
    shares = reference_shares(reference)
    if not math.isclose(math.fsum(shares), 1.0, rel_tol=1e-6) or any(x < 0 for x in shares):
        return FeatureEval(None, n, "Unknown", error=f"reference shares do not sum to 1: {shares}", span=span)
    # Unknown reference size (recorded before it was): count it as large as the live sample,
    # which only makes the test more cautious than the truth unless the reference was smaller.
    size = reference_size(reference, None) or reference_samples or total
    categorical = reference.edges is None
    value, p = drift_statistics(
        method,
        np.asarray(shares) * size,
        np.asarray(counts),
        categorical=categorical,
        quantile=not categorical,
    )
    v = float(value)
    return FeatureEval(
        score=v,
        samples=n,
        result="Unknown",
        band=psi_band(v) if method == "psi" else None,
        p_value=float(p),
        span=span,
    )


def evaluate_features(
    reference: Mapping[str, Bin],
    bucket_samples: Iterable[SampleLike],
    category_samples: Iterable[SampleLike],
    method: Method,
    threshold: float,
    min_samples: int,
    features: Sequence[str] | None = None,
    *,
    alpha: float = 0.01,
    correction: Correction = "benjaminiHochberg",
    reference_samples: float | None = None,
) -> DriftEvaluation:
    """Every watched feature (default: all in the reference) scored and tested against its reference.

    A feature drifts when its score is at or above `threshold` and its test rejects at `alpha`
    after `correction` across the features that were judged. Fewer than `min_samples` live
    samples, no data, or data that does not line up → Unknown for that feature, and it does not
    count in the correction. `reference_samples` is the reference size to assume for Bins that do
    not record one (the champion's training rows); without either, the live count is assumed.
    """
    if not reference:
        return DriftEvaluation(
            method,
            threshold,
            {},
            error="the champion recorded no reference distribution",
            alpha=alpha,
            correction=correction,
        )
    buckets, categories = _by_feature(bucket_samples), _by_feature(category_samples)
    out: dict[str, FeatureEval] = {}
    for name in sorted(features if features is not None else reference):
        ref = reference.get(name)
        if ref is None:
            out[name] = FeatureEval(None, 0, "Unknown", error=f"feature {name} has no reference distribution")
            continue
        live = buckets.get(name, []) if ref.edges is not None else categories.get(name, [])
        out[name] = _measure(ref, live, method, min_samples, reference_samples)
    judged = [n for n, f in out.items() if f.score is not None and f.p_value is not None]
    if judged:
        values = np.array([out[n].score for n in judged], dtype=np.float64)
        p_values = np.array([out[n].p_value for n in judged], dtype=np.float64)
        drifted = decide(values, p_values, threshold, alpha, correction)
        for n, d in zip(judged, drifted, strict=True):
            out[n] = _verdict(out[n], bool(d))
    return DriftEvaluation(method, threshold, out, alpha=alpha, correction=correction)


def evaluate_drift(
    trigger: DriftTrigger,
    reference: Mapping[str, Bin],
    bucket_samples: Iterable[SampleLike],
    category_samples: Iterable[SampleLike],
    reference_samples: float | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftEvaluation:
    """`evaluate_features` with the settings of a policy's drift trigger, drifted features in the
    order of the champion's feature importance."""
    ev = evaluate_features(
        reference,
        bucket_samples,
        category_samples,
        trigger.method,
        trigger.threshold,
        trigger.min_samples,
        trigger.features,
        alpha=trigger.alpha,
        correction=trigger.correction,
        reference_samples=reference_samples,
    )
    return replace(ev, importance=dict(importance or {}))


# --- how fast a step change is acted on ----------------------------------------------------------


def mixture_fraction(
    reference: Sequence[float], shifted: Sequence[float], method: Method, threshold: float
) -> float | None:
    """The least share f of post-change rows in a judged sample for its score to reach `threshold`.

    A sample that straddles a step change is the mixture (1 - f) x reference + f x shifted; every
    score here grows with f, so bisection finds the crossing. None when even f = 1 stays below
    the threshold (the shift is too small ever to be called). Large-n limit: no smoothing, and
    the test is assumed to reject (true once n is well above minSamples for such shifts).
    """
    e = np.asarray(normalise(reference, "reference"))
    q = np.asarray(normalise(shifted, "shifted"))

    def at(f: float) -> float:
        return float(distances(method, e, (1 - f) * e + f * q))

    if at(1.0) < threshold:
        return None
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if at(mid) < threshold else (lo, mid)
    return hi


def evaluations_to_act(
    interval: float, look_back: float, consecutive: int, fraction: float
) -> tuple[int, int]:
    """(best, worst) count of evaluations after a step change until a policy acts on it.

    `look_back` is the span of data judged: the interval when the newest interval alone holds
    `minSamples` (then each evaluation judges data no other evaluation judged), else the window.
    Evaluation k after the step judges a sample whose post-change share is
    f_k = min(1, (k - 1 + phi) x interval / look_back), phi in (0, 1] the part of the first
    interval after the step. It is Drifted from the least k >= fraction x look_back / interval
    + 1 - phi on, and the policy acts `consecutive - 1` evaluations later:
        best (phi = 1):  ceil(fraction x look_back / interval) + consecutive - 1
        worst (phi → 0): one evaluation more.
    Newest interval (look_back = interval): `consecutive` or `consecutive + 1` evaluations.
    Window of 10 intervals and a shift that needs 35 % new data: first called at the 4th or 5th
    evaluation, acted on at the 5th or 6th with `consecutive: 2` (issue 14 saw the 4th and 5th).
    """
    if interval <= 0 or look_back < interval or consecutive < 1 or not 0 < fraction <= 1:
        raise ValueError("need interval > 0, look_back >= interval, consecutive >= 1, 0 < fraction <= 1")
    best = max(1, math.ceil(fraction * look_back / interval - 1e-9))
    return best + consecutive - 1, best + consecutive


def online_metric(
    labelled: float | None,
    correct: float | None,
    abs_error_sum: float | None,
    metric: Literal["accuracy", "mae"],
    min_labels: int,
) -> float | None:
    """Online accuracy (correct / labelled) or MAE (absolute error / labelled) from feedback counters.

    None (Unknown) when fewer than `min_labels` labels arrived in the window. `increase()`
    extrapolates, so accuracy is clamped to [0, 1]. Missing series count as 0.
    """
    n = labelled or 0.0
    if round(n) < min_labels or n <= 0:
        return None
    if metric == "accuracy":
        return min(1.0, max(0.0, (correct or 0.0) / n))
    if metric == "mae":
        return max(0.0, (abs_error_sum or 0.0) / n)
    raise ValueError(f"unknown online metric {metric!r}")


@dataclass(frozen=True)
class OnlineEval:
    """The online metric and whether it crossed the policy's floor (or ceiling)."""

    metric: str
    value: float | None
    labels: int
    result: OnlineResult
    floor: float | None = None
    ceiling: float | None = None

    def wire(self) -> dict[str, Any]:
        """As written to status.online."""
        return {
            "metric": self.metric,
            "value": None if self.value is None else round(self.value, 6),
            "labels": self.labels,
            "result": self.result,
            "floor": self.floor,
            "ceiling": self.ceiling,
        }

    def summary(self) -> str:
        if self.value is None:
            return f"online {self.metric} unknown ({self.labels} labels)"
        bound = f"floor {self.floor:g}" if self.floor is not None else f"ceiling {self.ceiling:g}"
        return f"online {self.metric} {self.value:.4g} over {self.labels} labels ({bound}): {self.result.lower()}"


def evaluate_online(
    trigger: PerformanceTrigger,
    labelled: float | None,
    correct: float | None,
    abs_error_sum: float | None,
) -> OnlineEval:
    """Breached when the metric is below the floor or above the ceiling; Unknown without enough labels."""
    value = online_metric(labelled, correct, abs_error_sum, trigger.metric, trigger.min_labels)
    labels = round(labelled or 0.0)
    if value is None:
        result: OnlineResult = "Unknown"
    elif (trigger.floor is not None and value < trigger.floor) or (
        trigger.ceiling is not None and value > trigger.ceiling
    ):
        result = "Breached"
    else:
        result = "Healthy"
    return OnlineEval(trigger.metric, value, labels, result, trigger.floor, trigger.ceiling)
