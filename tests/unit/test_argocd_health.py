"""The Argo CD health checks (manifests/argocd/argocd-cm.yaml) through Argo CD's own code.

The `argocd-health` harness (tests/cluster/go/argocd-health, built from the argo-cd v3 module) hands
the shipped argocd-cm ConfigMap to Argo CD's SettingsManager, which parses its
`resource.customizations.health.<group_kind>` keys into resource overrides exactly as the application
controller does (the ConfigMap is only seen with Argo CD's part-of label), and assesses each sample
object with gitops-engine's `health.GetResourceHealth` over `lua.ResourceHealthOverrides`: the script
runs in gopher-lua with Argo CD's sandbox (base, table, package and a safe os library; no string
library, so no string methods) and a one-second deadline, and an invalid status becomes Unknown.

The samples are not written by hand: their statuses come from the operator's own planner and record
paths (tests/support/argocd_samples.py, checked in as tests/fixtures/argocd_health.yaml); there is one
for every ModelVersion phase and every RetrainPolicy state, and the expected health of each is stated
here.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops.api.modelversion import PHASES
from tests.support.argocd_samples import SAMPLES, render
from tests.support.harness import harness

ROOT = Path(__file__).resolve().parents[2]
HEALTH_DIR = ROOT / "manifests" / "argocd" / "health"
ARGOCD_CM = ROOT / "manifests" / "argocd" / "argocd-cm.yaml"
FIXTURE = ROOT / "tests" / "fixtures" / "argocd_health.yaml"
CASES = {kind: [{"name": n, "obj": o} for n, o in make().items()] for kind, make in SAMPLES.items()}
"""Generated now from the code, not read from the fixture (which is checked for staleness below)."""
READY_MANUAL = (
    "deployed; waiting for manual promotion (annotate modelops.dev/promote or set spec.promotion.request)"
)
EXPECT: dict[str, dict[str, tuple[str, str]]] = {
    "modelversion": {
        "no status yet": ("Progressing", "Waiting for the operator"),
        "pending (a status without a phase, defaulted by the API server)": (
            "Progressing",
            "Waiting for the operator to observe generation 1",
        ),
        "training": ("Progressing", "Training: training"),
        "deploying": ("Progressing", "Deploying: deploying: 0/1 replicas ready"),
        "champion serving": ("Healthy", "Serving: champion, accuracy=0.9737"),
        "spec changed, not observed yet": ("Progressing", "Waiting for the operator to observe generation 2"),
        "superseded, kept for rollback": ("Healthy", "Superseded: superseded by iris-v2; draining"),
        "retired": ("Healthy", "Retired: retired"),
        "training failed": (
            "Degraded",
            "Failed: training failed: dataset sklearn:iris has no column 'species'",
        ),
        "rejected by its gates (a correct outcome, but it will never be Ready)": (
            "Degraded",
            "Rejected: rejected: accuracy 0.85 < min 0.9",
        ),
        "server failed while deploying": ("Degraded", "Failed: server failed: artifact sha256 mismatch"),
        "deployed, waiting for manual promotion": ("Suspended", f"Deploying: {READY_MANUAL}"),
        "canary under analysis": (
            "Progressing",
            "Canary: canary step 1/1 at 10%: analysing: 3 requests, 60/300s",
        ),
        "canary with malformed metrics, rolled back as inconclusive": (
            "Degraded",
            "Rejected: canary rolled back at step 1/1: analysis inconclusive after 120s: "
            "Prometheus answered malformed data: Field required at data",
        ),
        "canary passed, waiting for manual promotion": (
            "Suspended",
            "Canary: canary passed (error rate 0.00%, p99 12ms over 250 requests); waiting for manual promotion",
        ),
        "invalid spec": ("Degraded", "Failed: invalid spec at spec.bogus: Extra inputs are not permitted"),
        # gitops-engine answers for an object with a deletionTimestamp before any health script runs
        # (the script's own "Being deleted" branch is never reached in Argo CD; Lua 5.1 alone missed that).
        "being deleted": ("Progressing", "Pending deletion"),
    },
    "retrainpolicy": {
        "no status yet": ("Progressing", "Waiting for the operator"),
        "evaluating, all stable": ("Healthy", "watching iris (champion iris-v1)"),
        "spec changed, not observed yet": ("Progressing", "Waiting for the operator to observe generation 2"),
        "waiting for the first evaluation": ("Healthy", "watching iris (champion iris-v1)"),
        "suspended": ("Suspended", "Suspended: drift and performance are evaluated, no retrain is started"),
        "suspend requested, not observed yet": (
            "Progressing",
            "Waiting for the operator to observe generation 2",
        ),
        "the model has no champion yet": (
            "Progressing",
            "no champion for model iris: nothing to evaluate or retrain from",
        ),
        "Prometheus unreachable": (
            "Degraded",
            "Prometheus query failed, drift and performance cannot trigger: "
            "Prometheus at http://prometheus:9090 is unreachable: ConnectError",
        ),
        "Prometheus answers malformed data": (
            "Degraded",
            "Prometheus query failed, drift and performance cannot trigger: "
            "Prometheus answered malformed data: Input should be a valid list at data.vector.result",
        ),
        "retraining (the child has its own health)": (
            "Healthy",
            "retraining iris (champion iris-v1); in flight: iris-r1-uid-i Training",
        ),
        "invalid spec": (
            "Degraded",
            "invalid spec: String should match pattern '^([0-9]+(ms|s|m|h|d))+$' at spec.interval",
        ),
    },
}
SCRIPTS = {"modelversion": "ModelVersion", "retrainpolicy": "RetrainPolicy"}
STATES = {"Healthy", "Progressing", "Degraded", "Suspended"}

Assess = Callable[[Path, list[dict[str, Any]]], list[dict[str, str]]]


@pytest.fixture(scope="module")
def argocd() -> Assess:
    """Argo CD's verdict on each sample under the health checks of an argocd-cm file."""
    binary = harness("argocd-health")

    def assess(cm: Path, samples: list[dict[str, Any]]) -> list[dict[str, str]]:
        out = subprocess.run(
            [str(binary), str(cm), "-"],
            input=json.dumps(samples),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        results: list[dict[str, str]] = json.loads(out.stdout)
        assert [r["name"] for r in results] == [s["name"] for s in samples]
        return results

    return assess


@pytest.fixture(scope="module")
def shipped(argocd: Assess) -> dict[str, dict[str, dict[str, str]]]:
    """Every sample of both kinds through the shipped argocd-cm, in one run of the harness."""
    samples = [
        {"name": f"{kind}/{case['name']}", "obj": case["obj"]} for kind in SCRIPTS for case in CASES[kind]
    ]
    out: dict[str, dict[str, dict[str, str]]] = {kind: {} for kind in SCRIPTS}
    for result in argocd(ARGOCD_CM, samples):
        kind, name = result["name"].split("/", 1)
        out[kind][name] = result
    return out


def _cases() -> list[Any]:
    return [
        pytest.param(kind, case, id=f"{kind}: {case['name']}") for kind in SCRIPTS for case in CASES[kind]
    ]


@pytest.mark.parametrize(("kind", "case"), _cases())
def test_health_of_sample_object(
    shipped: dict[str, dict[str, dict[str, str]]], kind: str, case: dict[str, Any]
) -> None:
    """Each sample object gets the health state (and message) a person watching Argo CD should see."""
    assert (case["obj"]["apiVersion"], case["obj"]["kind"]) == ("modelops.dev/v1alpha1", SCRIPTS[kind])
    result = shipped[kind][case["name"]]
    assert result.get("error") is None, result["error"]
    assert (result["status"], result["message"]) == EXPECT[kind][case["name"]]


def test_every_modelversion_phase_has_a_sample() -> None:
    phases = {(case["obj"].get("status") or {}).get("phase") for case in CASES["modelversion"]}
    assert phases - {None} == set(PHASES)


@pytest.mark.parametrize("kind", SCRIPTS)
def test_every_sample_has_an_expectation_and_every_state_a_sample(kind: str) -> None:
    """Healthy, Progressing, Degraded and Suspended are each exercised for both kinds."""
    assert [case["name"] for case in CASES[kind]] == list(EXPECT[kind])
    assert {status for status, _ in EXPECT[kind].values()} == STATES


def test_samples_are_the_operators_own_statuses() -> None:
    """The fixture is what the planner and record paths write today (regenerate: python -m tests.support.argocd_samples)."""
    assert FIXTURE.read_text() == render(), "stale: run `python -m tests.support.argocd_samples`"


@pytest.mark.parametrize("kind", SCRIPTS)
def test_scripts_use_only_what_argo_cd_provides(kind: str) -> None:
    """No library Argo CD leaves closed (string, math, io, ...), even on paths the samples miss."""
    code = "\n".join(line.split("--", 1)[0] for line in (HEALTH_DIR / f"{kind}.lua").read_text().splitlines())
    assert not re.search(r"\b(string|math|io|debug|coroutine|package)\s*\.", code)
    assert not re.search(r"\b(require|dofile|loadfile|load|loadstring)\s*\(", code)
    assert not re.search(r"\)\s*:\s*\w+\s*\(|\"\s*:\s*\w+\s*\(", code), "string method call"


def test_argocd_cm_snippet_embeds_exactly_the_lua_files() -> None:
    """The argocd-cm snippet users install carries the very scripts tested here, byte for byte."""
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    expected = {
        f"resource.customizations.health.modelops.dev_{kind}": (HEALTH_DIR / f"{name}.lua").read_text()
        for name, kind in SCRIPTS.items()
    }
    assert cm["data"] == expected


def _cm_with(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    edit(cm)
    path = tmp_path / "argocd-cm.yaml"
    path.write_text(yaml.safe_dump(cm))
    return path


def _first(kind: str) -> list[dict[str, Any]]:
    return [next(c for c in CASES[kind] if c["name"] == "champion serving")]


def test_argo_cd_sandbox_refuses_string_methods(argocd: Assess, tmp_path: Path) -> None:
    """The harness really runs Argo CD's sandbox: a string method, fine in plain Lua, fails there."""
    key = "resource.customizations.health.modelops.dev_ModelVersion"

    def edit(cm: dict[str, Any]) -> None:
        cm["data"][key] = cm["data"][key].replace(
            "local hs = {", "local kind = obj.kind:lower()\nlocal hs = {", 1
        )

    [result] = argocd(_cm_with(tmp_path, edit), _first("modelversion"))
    assert "attempt to index a non-table object(string)" in result.get("error", ""), result


def test_invalid_health_status_becomes_unknown(argocd: Assess, tmp_path: Path) -> None:
    key = "resource.customizations.health.modelops.dev_ModelVersion"

    def edit(cm: dict[str, Any]) -> None:
        cm["data"][key] = 'return {status = "Fine", message = "ok"}'

    [result] = argocd(_cm_with(tmp_path, edit), _first("modelversion"))
    assert (result["status"], result["message"]) == ("Unknown", "Lua returned an invalid health status")


def test_a_configmap_argo_cd_does_not_select_checks_nothing(argocd: Assess, tmp_path: Path) -> None:
    """Without Argo CD's part-of label the settings manager never sees the ConfigMap."""

    def edit(cm: dict[str, Any]) -> None:
        del cm["metadata"]["labels"]["app.kubernetes.io/part-of"]

    binary = harness("argocd-health")
    out = subprocess.run(
        [str(binary), str(_cm_with(tmp_path, edit)), "-"],
        input=json.dumps(_first("modelversion")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "argocd-cm" in out.stderr and "not found" in out.stderr, out.stderr
