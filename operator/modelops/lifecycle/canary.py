"""A canary's arithmetic and its analysis, as pure functions.

Traffic: in `replicas` mode the model's stable Service selects the pods of champion and canary
alike (kube-proxy spreads connections evenly over ready endpoints), so the canary's share is its
share of the pods; `split_replicas` picks the split of the champion's size nearest the step's
weight. In `gatewayAPI` mode an HTTPRoute's backendRefs carry the weight exactly.

Analysis: the canary is compared with the champion over the same window, on HTTP health (5xx
share, p99), online accuracy or MAE from feedback labels, and the divergence of their prediction
distributions. Each signal is judged only above its minimum sample count; a breach fails at once,
a pass needs the step's whole pause and every configured signal judged, and too little evidence
waits, then fails as inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from modelops.api.modelversion import Canary
from modelops.drift.scores import jensen_shannon

from .observed import CanaryView

Verdict = Literal["pass", "fail", "wait"]
Task = Literal["classification", "regression"]

INCONCLUSIVE_FACTOR = 3
"""A step without enough evidence is rolled back after this many pauses."""
MIN_PODS = 2
"""One pod of each: the least a replicas split can be made of."""


def split_replicas(weight: int, total: int) -> tuple[int, int]:
    """(canary, champion) pods out of the champion's size whose canary share is nearest `weight` %.

    Rounding (documented in the README): canary = round(total x weight / 100), half up, then kept
    in [1, total - 1] so both versions serve; a total under 2 is raised to 2. So 10 % of 10 pods is
    1 + 9 (exact), 10 % of 4 pods is 1 + 3 (25 %), and any weight with 1 pod is 1 + 1 (50 %).
    """
    n = max(total, MIN_PODS)
    canary = math.floor(n * weight / 100 + 0.5)
    canary = min(max(canary, 1), n - 1)
    return canary, n - canary


def split_total(champion_size: int, autoscaled: bool, recorded: tuple[int | None, int | None]) -> int:
    """The pods a replicas canary splits: the champion's size, except that an autoscaled champion's
    size is the one its HorizontalPodAutoscaler had when the canary began (recorded in status.canary as
    canary + stable pods). The champion is then pinned to the stable part through its HPA, so its
    current size would shrink the total at every step."""
    canary, stable = recorded
    if autoscaled and canary is not None and stable is not None:
        return canary + stable
    return champion_size


def share(canary: int, champion: int) -> float | None:
    """Percent of endpoints that are the canary's; None without any."""
    total = canary + champion
    return None if total <= 0 else 100.0 * canary / total


def route_backends(stable_service: str, canary_service: str, weight: int) -> list[dict[str, object]]:
    """The backendRefs of an HTTPRoute rule for a canary weight; 0 sends everything to the stable Service."""
    refs: list[dict[str, object]] = [{"name": stable_service, "port": 80, "weight": 100 - weight}]
    if weight > 0:
        refs.append({"name": canary_service, "port": 80, "weight": weight})
    return refs


# --- the analysis ----------------------------------------------------------------------------------


def _interpolated_cdf(cumulative: Mapping[float, float], at: list[float]) -> list[float]:
    """A cumulative histogram's count at each point of `at`: linear between two bounds (as
    `histogram_quantile` assumes), 0 below the lowest bound, the last finite count above it."""
    finite = sorted(b for b in cumulative if math.isfinite(b))
    total = cumulative.get(math.inf, max(cumulative.values(), default=0.0))
    out = []
    for x in at:
        if math.isinf(x):
            out.append(total)
            continue
        value, prev = None, None
        for b in finite:
            if x <= b:
                if x == b:
                    value = cumulative[b]
                elif prev is None:
                    value = 0.0
                else:
                    lo = cumulative[prev]
                    value = lo + (cumulative[b] - lo) * (x - prev) / (b - prev)
                break
            prev = b
        out.append(value if value is not None else (cumulative[finite[-1]] if finite else 0.0))
    return out


def prediction_distributions(
    canary: Mapping[str, float], champion: Mapping[str, float], *, buckets: bool
) -> tuple[list[float], list[float]]:
    """Both versions' prediction counts on common bins.

    Classes: the union of class labels. Buckets (regressors): each version's histogram has its own
    edges (its training predictions' quantiles), so both are read at the union of edges, linearly
    within a bucket, and differenced into counts per common bin.
    """
    if not buckets:
        keys = sorted(set(canary) | set(champion))
        return [max(0.0, canary.get(k, 0.0)) for k in keys], [max(0.0, champion.get(k, 0.0)) for k in keys]
    a = {float(k): v for k, v in canary.items()}
    b = {float(k): v for k, v in champion.items()}
    edges = sorted(set(a) | set(b) | {math.inf})
    out = []
    for cum in (a, b):
        points = _interpolated_cdf(cum, edges)
        counts, prev = [], 0.0
        for p in points:
            counts.append(max(0.0, p - prev))
            prev = max(prev, p)
        out.append(counts)
    return out[0], out[1]


def prediction_divergence(view: CanaryView) -> tuple[float | None, float, float]:
    """Jensen-Shannon distance (base 2) of the canary's predictions from the champion's, and both counts."""
    a, b = prediction_distributions(
        view.predictions, view.champion_predictions, buckets=view.prediction_buckets
    )
    na, nb = math.fsum(a), math.fsum(b)
    if na <= 0 or nb <= 0:
        return None, na, nb
    return jensen_shannon(b, a), na, nb


def _online(correct: float, abs_error: float, labelled: float, task: Task) -> float:
    if task == "classification":
        return min(1.0, max(0.0, correct / labelled))
    return max(0.0, abs_error / labelled)


def quality(canary: Canary, view: CanaryView, task: Task) -> tuple[list[str], list[str], list[str]]:
    """(breaches, judged, pending) of the model-quality signals the spec asks for, as sentences."""
    breaches: list[str] = []
    judged: list[str] = []
    pending: list[str] = []
    online = canary.max_accuracy_drop if task == "classification" else canary.max_mae_increase
    wrong_kind = canary.max_mae_increase if task == "classification" else canary.max_accuracy_drop
    if wrong_kind is not None:
        field = "maxMaeIncrease" if task == "classification" else "maxAccuracyDrop"
        breaches.append(f"{field} does not apply to a {task} model")
    if online is not None:
        metric = "accuracy" if task == "classification" else "MAE"
        n, m = round(view.labelled), round(view.champion_labelled)
        if n < canary.min_labels or m < canary.min_labels:
            pending.append(f"{metric}: {n}/{m} labels (canary/champion), need {canary.min_labels} each")
        else:
            mine = _online(view.correct, view.abs_error, view.labelled, task)
            theirs = _online(view.champion_correct, view.champion_abs_error, view.champion_labelled, task)
            worse = (theirs - mine) if task == "classification" else (mine - theirs)
            text = f"online {metric} {mine:.4g} vs champion {theirs:.4g} over {n}/{m} labels"
            if worse > online + 1e-12:
                breaches.append(f"{text}: {worse:+.4g} worse, more than {online:g}")
            else:
                judged.append(text)
    if canary.max_prediction_divergence is not None:
        js, na, nb = prediction_divergence(view)
        if js is None or round(na) < canary.min_predictions or round(nb) < canary.min_predictions:
            pending.append(
                f"divergence: {na:.0f}/{nb:.0f} predictions (canary/champion), need {canary.min_predictions} each"
            )
        elif js > canary.max_prediction_divergence:
            breaches.append(
                f"prediction divergence (Jensen-Shannon) {js:.3g} > {canary.max_prediction_divergence:g}"
            )
        else:
            judged.append(f"prediction divergence {js:.3g}")
    return breaches, judged, pending


def canary_verdict(
    canary: Canary,
    view: CanaryView | None,
    elapsed: float,
    pause: float | None = None,
    task: Task = "classification",
) -> tuple[Verdict, str]:
    """`pass`, `fail` or `wait` for one step, with the reason: a breach fails at once, a pass needs
    the whole pause and every configured signal judged; too little evidence fails after
    INCONCLUSIVE_FACTOR pauses."""
    pause = float(canary.analysis_seconds if pause is None else pause)
    late = elapsed >= pause * INCONCLUSIVE_FACTOR
    if view is None or view.error:
        why = view.error if view and view.error else "no metrics yet"
        if late:
            return "fail", f"analysis inconclusive after {elapsed:.0f}s: {why}"
        return "wait", f"waiting for canary metrics: {why}"
    enough = view.requests >= canary.min_requests
    if enough and view.error_rate is not None and view.error_rate > canary.max_error_rate:
        return (
            "fail",
            f"error rate {view.error_rate:.2%} > {canary.max_error_rate:.2%} over {view.requests:.0f} requests"
            + _versus(view.champion_error_rate, "{:.2%}"),
        )
    if enough and view.p99_seconds is not None and view.p99_seconds > canary.max_p99_latency_seconds:
        return (
            "fail",
            f"p99 latency {view.p99_seconds * 1000:.0f}ms > {canary.max_p99_latency_seconds * 1000:.0f}ms"
            + _versus(
                None if view.champion_p99_seconds is None else view.champion_p99_seconds * 1000, "{:.0f}ms"
            ),
        )
    breaches, judged, pending = quality(canary, view, task)
    if breaches:
        return "fail", "; ".join(breaches)
    if elapsed < pause:
        return "wait", f"analysing: {view.requests:.0f} requests, {elapsed:.0f}/{pause:.0f}s"
    if not enough:
        pending.insert(0, f"{view.requests:.0f}/{canary.min_requests} requests")
    if pending:
        if late:
            return "fail", f"analysis inconclusive after {elapsed:.0f}s: {'; '.join(pending)}"
        return "wait", f"waiting for evidence: {'; '.join(pending)}"
    er = f"{view.error_rate:.2%}" if view.error_rate is not None else "n/a"
    p99 = f"{view.p99_seconds * 1000:.0f}ms" if view.p99_seconds is not None else "n/a"
    return "pass", "; ".join([f"error rate {er}, p99 {p99} over {view.requests:.0f} requests", *judged])


def _versus(value: float | None, fmt: str) -> str:
    return "" if value is None else f" (champion {fmt.format(value)})"
