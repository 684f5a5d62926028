"""The Helm chart against the real API server, with the real helm (built from its Go module).

- `helm template` with every part on passes `kubectl apply --server-side --dry-run=server`:
  schemas, CEL, RBAC validation and admission run on every object (the Prometheus Operator and
  cert-manager kinds against the stand-in CRDs test_install.py uses).
- `helm install -n <ns> --create-namespace` installs for real, as the README says: the chart's
  Namespace (restricted Pod Security) is applied over the one Helm creates, the operator's pod is
  admitted, `helm upgrade` changes the image in the Deployment and in the settings, and
  `helm uninstall` succeeds and removes what it installed, except the namespace (kept: it holds
  the release's records) and the CRDs (Helm never deletes crds/).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import wait_for
from tests.integration.test_install import FIXTURES, kubectl
from tests.support.helm import CHART, helm

pytestmark = pytest.mark.cluster


def _exists(kubeconfig: Path, kind: str, name: str) -> bool:
    return kubectl(kubeconfig, "get", kind, name, "--ignore-not-found", "-o", "name").stdout.strip() != ""


def _established(kubeconfig: Path, name: str) -> bool:
    """Polled rather than `kubectl wait`, which fails on a CRD whose status has no conditions yet."""
    crd = json.loads(kubectl(kubeconfig, "get", "crd", name, "-o", "json").stdout)
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def chart_kinds(cluster: Any) -> Iterator[Path]:
    """The chart's CRDs (crds/) and the stand-ins for the monitoring and cert-manager kinds; only
    what did not exist is created, and only that is removed afterwards (but our own CRDs)."""
    kc = cluster.kubeconfig
    created: list[str] = []
    crds = [
        d for f in sorted((CHART / "crds").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d
    ]
    stand_ins = [d for d in yaml.safe_load_all((FIXTURES / "standin-crds.yaml").read_text()) if d]
    for crd in crds + stand_ins:
        name = crd["metadata"]["name"]
        if not _exists(kc, "crd", name):
            kubectl(kc, "apply", "--server-side", "-f", "-", input=yaml.safe_dump(crd))
            created.append(name)
        wait_for(lambda name=name: _established(kc, name), timeout=60, message=f"crd/{name} Established")
    yield kc
    # Ours stay (the session's other tests use them, as after test_install.py); the others go,
    # waited for, so a later module that checks for them never sees one on its way out.
    for name in reversed([n for n in created if not n.endswith(".modelops.dev")]):
        kubectl(kc, "delete", "crd", name, "--ignore-not-found", "--wait=true", "--timeout=120s", check=False)


def test_every_part_passes_server_side_dry_run(chart_kinds: Path, namespace: str) -> None:
    rendered = helm(
        "template",
        "modelops",
        CHART,
        "--namespace",
        namespace,
        "--include-crds",
        "--set",
        "webhook.enabled=true",
        "--set",
        "peering.enabled=true",
        "--kubeconfig",
        chart_kinds,
    ).stdout
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered) if d}
    assert {"Namespace", "Deployment", "ServiceMonitor", "Certificate", "ClusterKopfPeering"} <= kinds
    out = kubectl(
        chart_kinds,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        "-",
        input=rendered,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_helm_install_upgrade_and_uninstall(chart_kinds: Path) -> None:
    kc = chart_kinds
    ns, release = f"mo-helm-{secrets.token_hex(3)}", "modelops"
    # --take-ownership: the cluster-wide objects (ClusterRoles) may already be there from the
    # kustomize install other tests apply; a user switching from kustomize to Helm does the same.
    base = ("--namespace", ns, "--kubeconfig", str(kc))
    install = helm("install", release, CHART, *base, "--create-namespace", "--take-ownership", check=False)
    try:
        assert install.returncode == 0, install.stdout + install.stderr
        assert "STATUS: deployed" in install.stdout
        labels = json.loads(kubectl(kc, "get", "namespace", ns, "-o", "json").stdout)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"

        def pod() -> dict[str, Any] | None:
            items = json.loads(
                kubectl(
                    kc, "get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=operator", "-o", "json"
                ).stdout
            )["items"]
            return items[0] if items else None

        admitted = wait_for(
            pod, timeout=120, message="the operator pod (admitted under restricted Pod Security)"
        )
        assert admitted["spec"]["serviceAccountName"] == "modelops-operator"

        helm("upgrade", release, CHART, *base, "--set", "image.tag=0.2.0")
        dep = json.loads(kubectl(kc, "get", "deployment", "modelops-operator", "-n", ns, "-o", "json").stdout)
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/modelops/modelops:0.2.0"
        cm = json.loads(kubectl(kc, "get", "configmap", "modelops-settings", "-n", ns, "-o", "json").stdout)
        assert cm["data"]["MODELOPS_IMAGE"] == "ghcr.io/modelops/modelops:0.2.0"
        assert "REVISION: 2" in helm("status", release, *base).stdout
    finally:
        uninstall = helm("uninstall", release, *base, "--wait", "--timeout", "180s", check=False)
        kept = kubectl(
            kc, "get", "namespace", ns, "--ignore-not-found", "-o", "jsonpath={.status.phase}"
        ).stdout
        kubectl(kc, "delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
    assert uninstall.returncode == 0, uninstall.stdout + uninstall.stderr
    assert not _exists(kc, "clusterrolebinding", "modelops-operator")
    assert kubectl(kc, "get", "deployments", "-n", ns, "-o", "name").stdout == ""
    # The namespace held the release's records, so the chart keeps it (helm.sh/resource-policy).
    assert kept == "Active" and "kept due to the resource policy" in uninstall.stdout + uninstall.stderr
    assert _exists(kc, "crd", "modelversions.modelops.dev"), "Helm never deletes crds/"
