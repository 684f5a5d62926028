"""Every PromQL expression in the Grafana dashboard is accepted by the real Prometheus.

Grafana would only show "bad_data" on the panel at view time; here each panel query, annotation
query and variable query is sent to the Prometheus the other tests use, with Grafana's variables
replaced by concrete values, and must come back with status "success".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "monitoring" / "dashboards" / "modelops.json"

# What Grafana would put in place of its variables (built-ins and the dashboard's own).
VALUES = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "6h",
    "namespace": "ml-demo",
    "model": "iris",
    "feature": "petal_length",
}
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every `expr` in the dashboard (panel targets, annotations), with where it sits."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield path, value
            else:
                yield from _walk(value, f"{path}/{node.get('title', key) if key == 'targets' else key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def substitute(expr: str) -> str:
    """Replace $var and ${var} as Grafana would; an unknown variable fails the test."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in VALUES, f"unknown Grafana variable ${name} in {expr!r}"
        return VALUES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _queries() -> list[Any]:
    dash = _dashboard()
    found = [pytest.param(expr, id=where) for where, expr in _walk(dash["panels"])]
    found += [pytest.param(expr, id=f"annotation {where}") for where, expr in _walk(dash["annotations"])]
    return found


def _variable_selectors() -> list[Any]:
    out = []
    for var in _dashboard()["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = LABEL_VALUES.match(query)
        assert m, f"variable {var['name']}: expected label_values(...), got {query!r}"
        out.append(pytest.param(m.group("selector"), m.group("label"), id=f"variable {var['name']}"))
    return out


def test_dashboard_has_queries() -> None:
    """Guard against the walk finding nothing (and the checks below passing vacuously)."""
    assert len(_queries()) >= 15


@pytest.mark.parametrize("expr", _queries())
def test_panel_query_is_valid_promql(prometheus: PrometheusServer, expr: str) -> None:
    """Parsed and evaluated by the real Prometheus, with variables substituted."""
    query = substitute(expr)
    r = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=10)
    body = r.json()
    assert body["status"] == "success", f"{query}\n-> {body.get('errorType')}: {body.get('error')}"


@pytest.mark.parametrize(("selector", "label"), _variable_selectors())
def test_variable_query_is_valid(prometheus: PrometheusServer, selector: str | None, label: str) -> None:
    """label_values(selector, label): the selector must be a valid series matcher."""
    params: dict[str, str] = {"match[]": substitute(selector)} if selector else {}
    r = httpx.get(f"{prometheus.url}/api/v1/label/{label}/values", params=params, timeout=10)
    body = r.json()
    assert body["status"] == "success", f"{selector}\n-> {body.get('errorType')}: {body.get('error')}"
