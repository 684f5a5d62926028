"""The dashboard is complete for Grafana's own dashboard schema, as provisioning tools need it.

Grafana fills missing panel options (legend, tooltip, graphMode, reduceOptions, ...) with defaults
when it imports a dashboard; provisioning tools and dashboard linters that read the JSON with the
schema's types do not. The `grafana-schema` harness (tests/cluster/go/grafana-schema) decodes the
dashboard with `UnmarshalJSONStrict` of grafana-foundation-sdk's `dashboard.Dashboard`, every panel
type's options and fieldConfig checked against that type's schema, and prints every required field
that is missing, every unknown field and every ill-typed value, naming the panel.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.harness import harness

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "monitoring" / "dashboards" / "modelops.json"


@pytest.fixture(scope="module")
def check() -> Any:
    binary = harness("grafana-schema")

    def run(dashboard: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), "-"], input=json.dumps(dashboard), capture_output=True, text=True, timeout=60
        )

    return run


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panel(dashboard: dict[str, Any], kind: str) -> tuple[int, dict[str, Any]]:
    return next((i, p) for i, p in enumerate(dashboard["panels"]) if p["type"] == kind)


def test_shipped_dashboard_is_complete_for_the_schema(check: Any) -> None:
    out = check(_dashboard())
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_the_configmap_ships_that_file() -> None:
    """The Grafana sidecar's ConfigMap is generated from the very file checked above."""
    kustomization = yaml.safe_load((DASHBOARD.parents[1] / "kustomization.yaml").read_text())
    files = [f for g in kustomization["configMapGenerator"] for f in g.get("files", [])]
    assert "modelops.json=dashboards/modelops.json" in files


def test_a_missing_required_option_is_named_with_its_panel(check: Any) -> None:
    dashboard = _dashboard()
    broken = copy.deepcopy(dashboard)
    ts_index, ts = _panel(broken, "timeseries")
    del ts["options"]["legend"]
    stat_index, stat = _panel(broken, "stat")
    del stat["options"]["graphMode"]
    del stat["options"]["reduceOptions"]["calcs"]
    out = check(broken)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines == [
        f'panel {stat_index} "{stat["title"]}" (stat): options.graphMode: required field is missing from input',
        f'panel {stat_index} "{stat["title"]}" (stat): options.reduceOptions.calcs: '
        "required field is missing from input",
        f'panel {ts_index} "{ts["title"]}" (timeseries): options.legend: required field is missing from input',
    ]


def test_unknown_fields_and_wrong_types_are_reported(check: Any) -> None:
    broken = _dashboard()
    ts_index, ts = _panel(broken, "timeseries")
    ts["options"]["legend"]["showLegnd"] = True
    ts["options"]["tooltip"]["mode"] = 1
    out = check(broken)
    assert out.returncode == 1
    assert f'panel {ts_index} "{ts["title"]}" (timeseries): options.legend' in out.stdout
    assert "showLegnd" in out.stdout
    assert "options.tooltip.mode" in out.stdout
