"""PromQL builders for the series `modelops serve` exports; pure strings, no I/O.

Every selector names the namespace as well as model and version: two namespaces may hold a
model and version of the same names, and their series must never mix. `namespace` is the
target label a Prometheus scraping through the shipped PodMonitor attaches (prometheus-operator
sets it from the pod's namespace); the server itself exports no label that any scrape attaches
(`HANDLER`, not `endpoint`), so nothing is renamed to `exported_*`.
"""

from __future__ import annotations

HANDLER = "handler"
"""The server's label for the HTTP handler of a request (`endpoint` is a target label of the PodMonitor)."""
INFERENCE_HANDLERS = "infer|predict"
"""Requests that carry predictions; probes and scrapes are not traffic."""


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"')


def _sel(namespace: str, model: str, version: str, extra: str = "") -> str:
    parts = [f'namespace="{_esc(namespace)}"', f'model="{_esc(model)}"', f'version="{_esc(version)}"']
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


INFERENCE = f'{HANDLER}=~"{INFERENCE_HANDLERS}"'


def requests(namespace: str, model: str, version: str, window: str) -> str:
    s = _sel(namespace, model, version, INFERENCE)
    return f"sum(increase(modelops_server_requests_total{s}[{window}]))"


def error_rate(namespace: str, model: str, version: str, window: str) -> str:
    err = _sel(namespace, model, version, f'{INFERENCE},code=~"5.."')
    total = requests(namespace, model, version, window)
    return f"(sum(increase(modelops_server_requests_total{err}[{window}])) or vector(0)) / {total}"


def p99_latency(namespace: str, model: str, version: str, window: str) -> str:
    s = _sel(namespace, model, version, INFERENCE)
    return f"histogram_quantile(0.99, sum by (le) (rate(modelops_server_request_duration_seconds_bucket{s}[{window}])))"


def _newest_and_window(
    metric: str, by: str, namespace: str, model: str, version: str, window: str, interval: str | None
) -> str:
    """Counts over the window, and with `interval` also over the newest interval, told apart by `span`.

    The window uses `increase()`, which is reset-safe but extrapolates to the range's ends (by up
    to range / (range - scrape interval); 2.5 % for 10m at a 15s scrape). Over one short
    interval that would inflate the counts, and with them the chi-square statistic, by up to a
    third (60s at a 15s scrape), so the newest interval is the exact difference of each series' counter over
    `offset interval`, clamped at 0: a series that restarted in the interval, or did not exist at
    its start, contributes nothing for that interval (fewer samples, never made-up ones).
    """
    sel = _sel(namespace, model, version)
    whole = f"sum by ({by}) (increase({metric}{sel}[{window}]))"
    if interval is None:
        return whole
    newest = f"sum by ({by}) (clamp_min({metric}{sel} - {metric}{sel} offset {interval}, 0))"
    return (
        f'label_replace({newest}, "span", "interval", "", "")'
        f' or label_replace({whole}, "span", "window", "", "")'
    )


def feature_buckets(
    namespace: str, model: str, version: str, window: str, interval: str | None = None
) -> str:
    """Cumulative live counts per feature and `le` bucket over the window (and the newest interval)."""
    return _newest_and_window(
        "modelops_server_feature_value_bucket", "feature, le", namespace, model, version, window, interval
    )


def feature_categories(
    namespace: str, model: str, version: str, window: str, interval: str | None = None
) -> str:
    """Live counts per feature and category over the window (and the newest interval)."""
    return _newest_and_window(
        "modelops_server_feature_category_total",
        "feature, category",
        namespace,
        model,
        version,
        window,
        interval,
    )


def feedback(namespace: str, model: str, version: str, window: str) -> dict[str, str]:
    s = _sel(namespace, model, version)
    return {
        "labelled": f"sum(increase(modelops_server_feedback_labelled_total{s}[{window}]))",
        "correct": f"sum(increase(modelops_server_feedback_correct_total{s}[{window}]))",
        "absolute_error": f"sum(increase(modelops_server_feedback_absolute_error_sum{s}[{window}]))",
    }


def seconds(duration: str) -> float:
    """Parse a Prometheus-style duration (1h30m, 90s, 250ms, 2d)."""
    import re

    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(n) * units[u] for n, u in parts)


def prediction_classes(namespace: str, model: str, version: str, window: str) -> str:
    """Predictions per class over the window (classifiers)."""
    s = _sel(namespace, model, version)
    return f"sum by (class) (increase(modelops_server_prediction_class_total{s}[{window}]))"


def prediction_buckets(namespace: str, model: str, version: str, window: str) -> str:
    """Cumulative predictions per `le` bound of the version's own prediction histogram (regressors)."""
    s = _sel(namespace, model, version)
    return f"sum by (le) (increase(modelops_server_prediction_value_bucket{s}[{window}]))"
