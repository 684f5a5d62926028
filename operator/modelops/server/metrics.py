"""The server's Prometheus metrics, every series labelled with model and version.

Label names never collide with a target label a scrape attaches (prometheus-operator's PodMonitor
adds namespace, pod, container, endpoint, job, instance; a ServiceMonitor also service): a
colliding label would be renamed `exported_<name>` and every query on it would find nothing.
So the HTTP handler of a request is `handler`, not `endpoint`; `COLLIDING` is checked in tests.

One custom Collector keeps plain counters (numpy arrays and dicts) and renders them with
prometheus-client's metric families at scrape time. Why not Counter/Histogram objects: each
feature needs its OWN buckets (its reference edges, so live bucket shares line up with the
reference shares), and updating them must be one vectorised numpy step per request rather than
one locked `.observe()` per value. All updates happen on the event loop thread, so no lock.

Counters for every known label value (each class, each category and `__other__`) exist from the
first scrape at 0, so `increase()` over a window also counts a series' first increments.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .model import ServedModel

COLLIDING = frozenset({"endpoint", "namespace", "pod", "service", "job", "instance", "container"})
"""Target labels of Prometheus and the Prometheus Operator, which the server must not export."""
OTHER = "__other__"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def le_label(edge: float) -> str:
    """How a bucket bound is written in `le` (and in the reference-share gauge's `bin`)."""
    return floatToGoString(edge)


class _NumericBins:
    """Histograms of several numeric columns at once, each with its own edges (le semantics)."""

    def __init__(self, names: list[str], edges: list[list[float]]) -> None:
        self.names = names
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        width = max((len(e) for e in edges), default=0)
        # Edges padded with +Inf: `value > +Inf` is never true, so padding never counts.
        self.padded = np.full((len(names), max(width, 1)), np.inf)
        for j, e in enumerate(self.edges):
            self.padded[j, : len(e)] = e
        sizes = [len(e) + 1 for e in self.edges]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.counts = np.zeros(int(sum(sizes)), dtype=np.int64)
        self.sums = np.zeros(len(names), dtype=np.float64)

    def observe(self, X: np.ndarray) -> None:
        """X is rows x len(names), float64. Bin of v = number of edges < v."""
        if not self.names or X.shape[0] == 0:
            return
        if X.shape[0] * self.padded.size <= 1 << 16:
            bins = (X[:, :, None] > self.padded[None, :, :]).sum(axis=2)
        else:  # large batches: one searchsorted per column, no big temporary
            bins = np.column_stack(
                [np.searchsorted(e, X[:, j], side="left") for j, e in enumerate(self.edges)]
            )
        self.counts += np.bincount((bins + self.offsets).ravel(), minlength=self.counts.size)
        self.sums += X.sum(axis=0)

    def buckets(self, j: int) -> tuple[list[tuple[str, float]], float]:
        start = int(self.offsets[j])
        counts = np.cumsum(self.counts[start : start + len(self.edges[j]) + 1])
        bounds = [le_label(e) for e in self.edges[j]] + ["+Inf"]
        return [(b, float(c)) for b, c in zip(bounds, counts, strict=True)], float(self.sums[j])


INFERENCE_HANDLERS = ("infer", "predict")
"""Handlers whose successful-request series exist from the start, at zero (see ServerMetrics)."""


class ServerMetrics(Collector):
    """Everything /metrics exposes; cheap to update from the request path.

    The inference series start at zero rather than at the first request: `increase()` cannot see
    the requests counted before a series' first sample, so a burst served between the server's
    start and its first scrape would otherwise never reach a canary or decay query.
    """

    def __init__(self, model_name: str, version: str) -> None:
        self.model_name, self.version = model_name, version
        self.requests: dict[tuple[str, str], int] = {(h, "200"): 0 for h in INFERENCE_HANDLERS}
        self.latency: dict[str, list[float]] = {  # handler -> [bucket counts..., sum]
            h: [0.0] * (len(LATENCY_BUCKETS) + 2) for h in INFERENCE_HANDLERS
        }
        self.ready = 0
        self.rows = 0
        self.feedback_labelled = 0
        self.feedback_correct = 0
        self.feedback_unmatched = 0
        self.feedback_abs_error = 0.0
        self.feedback_count = 0
        self.model: ServedModel | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- wiring ----------------------------------------------------------------------------------
    def attach(self, model: ServedModel) -> None:
        """Set up the data metrics from the model's schema and reference (called once loaded)."""
        ref = model.metadata.get("reference") or {}
        numeric = [f for f in model.features if not f.categorical]
        self.numeric_idx = np.asarray([i for i, f in enumerate(model.features) if not f.categorical])
        # A feature without reference edges still gets a histogram: a single +Inf bucket.
        edges = [(ref.get(f.name) or {}).get("edges") or [] for f in numeric]
        self.numeric = _NumericBins([f.name for f in numeric], edges)
        self.categorical: list[tuple[int, str, dict[str, int]]] = []
        for i, f in enumerate(model.features):
            if f.categorical:
                cats = list((ref.get(f.name) or {}).get("categories") or f.categories)
                self.categorical.append((i, f.name, dict.fromkeys([*cats, OTHER], 0)))
        pred_ref = model.metadata.get("predictionReference") or {}
        if model.classification:
            assert model.classes is not None
            self.class_labels = [str(c) for c in model.classes]
            self.class_counts = np.zeros(len(self.class_labels), dtype=np.int64)
        else:
            self.pred_bins = _NumericBins(["prediction"], [pred_ref.get("edges") or []])
        self.reference = ref
        self.prediction_reference = pred_ref
        self.model = model

    def observe_request(self, handler: str, code: int, seconds: float) -> None:
        key = (handler, str(code))
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(handler)
        if hist is None:
            hist = self.latency[handler] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        hist[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        hist[-1] += seconds

    def observe_rows(self, X: np.ndarray, predictions: np.ndarray) -> None:
        """Feature and prediction distributions of one accepted batch."""
        model = self.model
        assert model is not None
        self.rows += X.shape[0]
        if self.numeric.names:
            if model.all_numeric:
                self.numeric.observe(X)
            else:
                self.numeric.observe(X[:, self.numeric_idx].astype(np.float64))
        for i, _, counts in self.categorical:
            for v in X[:, i].tolist():
                if v in counts:
                    counts[v] += 1
                else:
                    counts[OTHER] += 1
        if model.classification:
            assert model.classes is not None
            idx = np.searchsorted(model.classes, predictions)  # classes_ is sorted (np.unique)
            self.class_counts += np.bincount(idx, minlength=len(self.class_labels))
        else:
            self.pred_bins.observe(np.asarray(predictions, dtype=np.float64).reshape(-1, 1))

    # -- exposition ------------------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        base = [self.model_name, self.version]
        mv = ["model", "version"]

        ready = GaugeMetricFamily(
            "modelops_server_model_ready", "1 once the model is loaded and serving.", labels=mv
        )
        ready.add_metric(base, self.ready)
        yield ready

        requests = CounterMetricFamily(
            "modelops_server_requests",
            "HTTP requests by handler and status code.",
            labels=[*mv, "handler", "code"],
        )
        for (handler, code), n in sorted(self.requests.items()):
            requests.add_metric([*base, handler, code], n)
        yield requests

        latency = HistogramMetricFamily(
            "modelops_server_request_duration_seconds",
            "Request latency by handler.",
            labels=[*mv, "handler"],
        )
        bounds = [le_label(b) for b in LATENCY_BUCKETS] + ["+Inf"]
        for handler, hist in sorted(self.latency.items()):
            cumulative = np.cumsum(hist[:-1])
            latency.add_metric(
                [*base, handler], list(zip(bounds, cumulative.tolist(), strict=True)), sum_value=hist[-1]
            )
        yield latency

        rows = CounterMetricFamily("modelops_server_rows", "Rows predicted.", labels=mv)
        rows.add_metric(base, self.rows)
        yield rows

        yield from self._feedback(base, mv)
        if self.model is not None:
            yield from self._data(base, mv)

    def _feedback(self, base: list[str], mv: list[str]) -> Iterator[Metric]:
        labelled = CounterMetricFamily(
            "modelops_server_feedback_labelled", "Predictions that received a ground-truth label.", labels=mv
        )
        labelled.add_metric(base, self.feedback_labelled)
        yield labelled
        unmatched = CounterMetricFamily(
            "modelops_server_feedback_unmatched",
            "Labels whose request id was unknown, evicted or already labelled.",
            labels=mv,
        )
        unmatched.add_metric(base, self.feedback_unmatched)
        yield unmatched
        if self.model is None or self.model.classification:
            correct = CounterMetricFamily(
                "modelops_server_feedback_correct", "Labelled predictions that were right.", labels=mv
            )
            correct.add_metric(base, self.feedback_correct)
            yield correct
        if self.model is not None and not self.model.classification:
            # A summary without quantiles: its _sum and _count series are
            # modelops_server_feedback_absolute_error_sum / _count, both counters in PromQL terms.
            err = Metric(
                "modelops_server_feedback_absolute_error",
                "Absolute error of labelled predictions.",
                "summary",
            )
            err.add_sample(
                "modelops_server_feedback_absolute_error_sum",
                dict(zip(mv, base, strict=True)),
                self.feedback_abs_error,
            )
            err.add_sample(
                "modelops_server_feedback_absolute_error_count",
                dict(zip(mv, base, strict=True)),
                self.feedback_count,
            )
            yield err

    def _data(self, base: list[str], mv: list[str]) -> Iterator[Metric]:
        features = HistogramMetricFamily(
            "modelops_server_feature_value",
            "Live values of each numeric feature; buckets are that feature's reference quantile edges.",
            labels=[*mv, "feature"],
        )
        for j, name in enumerate(self.numeric.names):
            buckets, total = self.numeric.buckets(j)
            features.add_metric([*base, name], buckets, sum_value=total)
        yield features

        categories = CounterMetricFamily(
            "modelops_server_feature_category",
            "Live values of each categorical feature; unseen categories count as __other__.",
            labels=[*mv, "feature", "category"],
        )
        for _, name, counts in self.categorical:
            for cat, n in counts.items():
                categories.add_metric([*base, name, cat], n)
        yield categories

        shares = GaugeMetricFamily(
            "modelops_server_feature_reference_share",
            "Share of training rows per bin (bin = the bucket's le, or the category).",
            labels=[*mv, "feature", "bin"],
        )
        for name, ref in self.reference.items():
            if ref.get("edges") is not None:
                bins = [le_label(e) for e in ref["edges"]] + ["+Inf"]
            else:
                bins = list(ref.get("categories") or [])
            for b, share in zip(bins, ref.get("shares") or [], strict=False):
                shares.add_metric([*base, name, b], share)
        yield shares

        pred_ref = self.prediction_reference
        pred_shares = GaugeMetricFamily(
            "modelops_server_prediction_reference_share",
            "Share of training predictions per bin (bin = the bucket's le, or the class).",
            labels=[*mv, "bin"],
        )
        pred_bins = (
            [le_label(e) for e in pred_ref["edges"]] + ["+Inf"]
            if pred_ref.get("edges") is not None
            else list(pred_ref.get("categories") or [])
        )
        for b, share in zip(pred_bins, pred_ref.get("shares") or [], strict=False):
            pred_shares.add_metric([*base, b], share)
        yield pred_shares

        if self.model is not None and self.model.classification:
            classes = CounterMetricFamily(
                "modelops_server_prediction_class", "Predictions per class.", labels=[*mv, "class"]
            )
            for label, n in zip(self.class_labels, self.class_counts.tolist(), strict=True):
                classes.add_metric([*base, label], n)
            yield classes
        else:
            values = HistogramMetricFamily(
                "modelops_server_prediction_value",
                "Predicted values; buckets are the reference quantile edges of the training predictions.",
                labels=mv,
            )
            buckets, total = self.pred_bins.buckets(0)
            values.add_metric(base, buckets, sum_value=total)
            yield values
