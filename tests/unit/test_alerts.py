"""The PrometheusRule's alerts, checked and unit-tested by the real promtool.

The rule groups are taken out of manifests/monitoring/prometheusrule.yaml (what users install) into a
plain rules file, so what promtool tests is exactly what ships. tests/fixtures/alerts_test.yaml has a
firing case for every alert, and cases that must not fire beside it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULE = ROOT / "manifests" / "monitoring" / "prometheusrule.yaml"
UNIT_TESTS = ROOT / "tests" / "fixtures" / "alerts_test.yaml"
RULES_FILE = "modelops-rules.yaml"  # the name alerts_test.yaml's rule_files refers to

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)"
)


def _groups() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULE.read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    return doc["spec"]["groups"]


def _alerts() -> list[str]:
    return [rule["alert"] for group in _groups() for rule in group["rules"] if "alert" in rule]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The rule groups as a promtool rules file, next to a copy of the unit tests."""
    (tmp_path / RULES_FILE).write_text(yaml.safe_dump({"groups": _groups()}, sort_keys=False))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    return tmp_path


def _promtool(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_promtool_check_rules(rules_dir: Path) -> None:
    """Every expression parses, every template renders, no duplicate rules."""
    out = _promtool(rules_dir, "check", "rules", RULES_FILE)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_unit_tests_pass(rules_dir: Path) -> None:
    """Each alert fires on its scenario (labels and annotations exactly) and stays quiet on the others."""
    out = _promtool(rules_dir, "test", "rules", UNIT_TESTS.name)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_firing_unit_test() -> None:
    """No alert ships without a scenario in which it is expected to fire."""
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    assert tests["rule_files"] == [RULES_FILE]
    firing = {
        case["alertname"]
        for group in tests["tests"]
        for case in group.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert set(_alerts()) <= firing, f"alerts without a firing test: {set(_alerts()) - firing}"


def test_the_alerts_the_issue_asks_for_exist() -> None:
    """Drift, retrain failure, stuck version, serving errors, canary rollback, no champion."""
    required = {
        "ModelOpsDriftHigh",
        "ModelOpsRetrainFailed",
        "ModelOpsVersionStuck",
        "ModelOpsServingErrorRateHigh",
        "ModelOpsCanaryRolledBack",
        "ModelOpsNoChampion",
    }
    assert required <= set(_alerts())


def test_alerts_carry_severity_and_text() -> None:
    """Routing needs a severity; the person paged needs a summary and a next step."""
    for group in _groups():
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
                assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
