"""A small client for Prometheus' HTTP query API; errors are typed so callers can say what went wrong."""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx


class PrometheusError(Exception):
    """Prometheus could not answer: unreachable, timed out, or rejected the query."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def query(url: str, promql: str, *, timeout: float = 5.0) -> list[Sample]:
    """An instant query; returns the vector (NaN samples dropped)."""
    try:
        r = httpx.get(f"{url.rstrip('/')}/api/v1/query", params={"query": promql}, timeout=timeout)
    except httpx.HTTPError as e:
        raise PrometheusError(f"Prometheus at {url} is unreachable: {type(e).__name__}: {e}") from e
    try:
        body = r.json()
    except ValueError as e:
        raise PrometheusError(f"Prometheus at {url} answered {r.status_code} with no JSON") from e
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus rejected the query: {body.get('errorType')}: {body.get('error')}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return [Sample({}, float(data["result"][1]))]
    out = []
    for item in data["result"]:
        v = float(item["value"][1])
        if not math.isnan(v):
            out.append(Sample(item.get("metric", {}), v))
    return out


def scalar(url: str, promql: str) -> float | None:
    """The single value of an aggregated query, or None when there is no data."""
    samples = query(url, promql)
    return samples[0].value if samples else None
