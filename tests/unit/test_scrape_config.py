"""The tests' Prometheus scrapes the model servers as prometheus-operator would from the shipped PodMonitor.

tests/support/prometheus.py generates the relabelling of prometheus-operator's
generatePodMonitorConfig from manifests/monitoring/podmonitor.yaml; here it is checked by the real
promtool and against the target labels prometheus-operator documents, so the integration tests'
Prometheus attaches exactly what production's does (and a server label that collides is renamed).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import file_sd, podmonitor_scrape_config, shipped_podmonitor

needs_tools = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("kubectl") is None,
    reason="needs promtool (Debian prometheus) and kubectl (kustomize)",
)


@needs_tools
def test_generated_scrape_config_is_valid_for_prometheus(tmp_path: Path) -> None:
    jobs = podmonitor_scrape_config(shipped_podmonitor(), file_sd([str(tmp_path / "*.json")]), "1s")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": jobs}))
    out = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


@needs_tools
def test_generated_relabelling_attaches_prometheus_operators_target_labels() -> None:
    pm = shipped_podmonitor()
    (job,) = podmonitor_scrape_config(pm, file_sd(["x.json"]))
    assert job["job_name"] == f"podMonitor/{pm['metadata']['namespace']}/modelops-servers/0"
    assert job["honor_labels"] is False, "the shipped PodMonitor keeps target labels authoritative"
    targets = {r["target_label"]: r for r in job["relabel_configs"] if "target_label" in r}
    assert {"namespace", "container", "pod", "job", "endpoint"} <= set(targets)
    assert targets["endpoint"]["replacement"] == "http"
    assert targets["job"]["replacement"] == f"{pm['metadata']['namespace']}/modelops-servers"
    keeps = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert {"__meta_kubernetes_pod_container_port_name"} <= {s for r in keeps for s in r["source_labels"]}
    for key in pm["spec"]["selector"]["matchLabels"]:
        assert any(
            f"__meta_kubernetes_pod_labelpresent_{key.replace('.', '_').replace('/', '_').replace('-', '_')}"
            in r["source_labels"]
            for r in keeps
        ), key
