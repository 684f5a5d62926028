"""The install manifests against a real API server: applied, admitted, and least-privilege in fact.

- `kubectl apply --server-side -k manifests/` succeeds (twice: it is idempotent), and the operator's
  pod is admitted in a namespace that enforces the "restricted" Pod Security profile.
- Every YAML file in manifests/ and examples/, and every kustomization build, passes a server-side
  dry run: schemas, CEL rules, RBAC validation and admission all run. The Prometheus Operator,
  Argo CD and cert-manager kinds are checked against stand-in CRDs (tests/fixtures/standin-crds.yaml),
  the HTTPRoute of the canary example against the real Gateway API CRDs.
- The API server's own authorizer (`kubectl auth can-i --as=<service account>`) allows the operator
  what it uses and refuses Secrets, exec, RBAC changes and the rest; the trainer may only report its
  result, in its own namespace; people with edit/view get the ModelOps roles by aggregation.

The operator running as its ServiceAccount, from the shipped Deployment as it is (its ENTRYPOINT,
arguments, settings and probes), is tested as a pod of the real node: tests/e2e/test_real_node.py
takes models through their lives in two namespaces there, reads every 403 it met from its log, and
checks that Prometheus, scraping as the shipped PodMonitor does, keeps the namespaces' series apart.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import wait_for
from tests.support.gatewayapi import standard_crds

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
OPERATOR_NS, OPERATOR_SA = "modelops-system", "modelops-operator"
OPERATOR = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"
BUILDS = ("manifests", "manifests/monitoring", "manifests/argocd", "manifests/kopf-peering", "examples/iris")


def kubectl(
    kubeconfig: Path | str, *args: str | Path, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(map(str, args))} failed:\n{out.stdout}\n{out.stderr}")
    return out


def _exists(kubeconfig: Path, kind: str, name: str) -> bool:
    return kubectl(kubeconfig, "get", kind, name, "--ignore-not-found", "-o", "name").stdout.strip() != ""


@pytest.fixture(scope="module")
def installed(cluster: Any) -> Iterator[Path]:
    """The core install applied as a user would; removed afterwards, except the CRDs others share."""
    kc = cluster.kubeconfig
    kubectl(kc, "apply", "--server-side", "--force-conflicts", "-k", ROOT / "manifests")
    kubectl(
        kc,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modelversions.modelops.dev",
        "crd/retrainpolicies.modelops.dev",
    )
    yield kc
    built = kubectl(kc, "kustomize", ROOT / "manifests").stdout
    keep = [d for d in yaml.safe_load_all(built) if d and d["kind"] != "CustomResourceDefinition"]
    kubectl(
        kc,
        "delete",
        "--ignore-not-found",
        "--wait=false",
        "-f",
        "-",
        input=yaml.safe_dump_all(keep),
        check=False,
    )


@pytest.fixture(scope="module")
def extra_kinds(installed: Path) -> Iterator[Path]:
    """Kopf's peering and the Gateway API CRDs (real), stand-ins for the monitoring, Argo CD and
    cert-manager kinds, and namespace argocd.

    Only what does not exist yet is created, and only that is removed afterwards, so an existing
    cluster with the real Prometheus Operator or Argo CD is left as it was.
    """
    kc = installed
    created: list[tuple[str, str]] = []
    peering = [
        d
        for d in yaml.safe_load_all(kubectl(kc, "kustomize", ROOT / "manifests/kopf-peering/crds").stdout)
        if d
    ]
    stand_ins = [d for d in yaml.safe_load_all((FIXTURES / "standin-crds.yaml").read_text()) if d]
    gateway = [  # the real Gateway API CRDs (examples/iris-canary's HTTPRoute), from their Go module
        d
        for f in sorted(standard_crds().glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") == "CustomResourceDefinition"
    ]
    for crd in peering + stand_ins + gateway:
        name = crd["metadata"]["name"]
        if not _exists(kc, "crd", name):
            kubectl(kc, "apply", "--server-side", "-f", "-", input=yaml.safe_dump(crd))
            created.append(("crd", name))
        kubectl(kc, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
    if not _exists(kc, "namespace", "argocd"):
        kubectl(kc, "create", "namespace", "argocd")
        created.append(("namespace", "argocd"))
    yield kc
    for kind, name in reversed(created):
        kubectl(kc, "delete", kind, name, "--ignore-not-found", "--wait=false", check=False)


# --- install --------------------------------------------------------------------------------------
def test_install_applies_and_is_idempotent(installed: Path) -> None:
    """Re-applying (as GitOps does on every sync) changes nothing and fails on nothing."""
    again = kubectl(installed, "apply", "--server-side", "-k", ROOT / "manifests")
    assert "deployment.apps/modelops-operator serverside-applied" in again.stdout
    ns = json.loads(kubectl(installed, "get", "namespace", OPERATOR_NS, "-o", "json").stdout)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name in ("modelops-operator", "modelops-trainer", "modelops-editor", "modelops-viewer"):
        assert _exists(installed, "clusterrole", name)


def test_operator_pod_is_admitted_under_restricted_pod_security(installed: Path) -> None:
    """The ReplicaSet can only create the pod if PodSecurity admission (enforce=restricted) accepts it."""

    def pods() -> list[dict[str, Any]]:
        out = kubectl(
            installed,
            "get",
            "pods",
            "-n",
            OPERATOR_NS,
            "-l",
            "app.kubernetes.io/component=operator",
            "-o",
            "json",
        )
        return json.loads(out.stdout)["items"]

    def forbidden() -> str:
        return kubectl(
            installed,
            "get",
            "events",
            "-n",
            OPERATOR_NS,
            "--field-selector=reason=FailedCreate",
            "-o",
            "name",
        ).stdout

    found = wait_for(lambda: pods() or forbidden(), timeout=60, message="the operator pod or a FailedCreate")
    assert isinstance(found, list), (
        f"pod refused: {kubectl(installed, 'get', 'events', '-n', OPERATOR_NS).stdout}"
    )
    pod = found[0]
    assert pod["spec"]["serviceAccountName"] == OPERATOR_SA
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


# --- server-side dry runs -------------------------------------------------------------------------
def _yaml_files() -> list[Path]:
    files = [*sorted((ROOT / "manifests").rglob("*.yaml")), *sorted((ROOT / "examples").rglob("*.yaml"))]
    return [f for f in files if f.name != "kustomization.yaml"]


def _dry_run(kubeconfig: Path, text: str, namespace: str) -> subprocess.CompletedProcess[str]:
    """Server-side dry run; objects without a namespace go to `namespace` (as `kubectl apply -n`)."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs, "no objects"
    args = ["apply", "--server-side", "--dry-run=server", "-f", "-"]
    if not any(d["metadata"].get("namespace") for d in docs):
        args += ["-n", namespace]
    return kubectl(kubeconfig, *args, input=text, check=False)


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_passes_server_side_dry_run(extra_kinds: Path, namespace: str, path: Path) -> None:
    """Each file on its own, as a user might apply it."""
    out = _dry_run(extra_kinds, path.read_text(), namespace)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(server dry run)" in out.stdout


@pytest.mark.parametrize("build", BUILDS)
def test_every_kustomization_passes_server_side_dry_run(
    extra_kinds: Path, namespace: str, build: str
) -> None:
    """Each build as a whole, with namespaces and patches applied."""
    text = kubectl(extra_kinds, "kustomize", ROOT / build).stdout
    out = _dry_run(extra_kinds, text, namespace)
    assert out.returncode == 0, out.stdout + out.stderr


def test_invalid_example_is_refused_by_the_api_server(installed: Path, namespace: str) -> None:
    """The dry runs above are not vacuous: a ModelVersion the CRD forbids is refused the same way."""
    mv = yaml.safe_load((ROOT / "examples/iris/modelversion.yaml").read_text())
    mv["spec"]["training"]["estimator"]["class"] = "os.system"
    out = _dry_run(installed, yaml.safe_dump(mv), namespace)
    assert out.returncode != 0 and "spec.training.estimator.class" in out.stderr, out.stderr


# --- RBAC, as the API server's authorizer sees it -------------------------------------------------
def can_i(kubeconfig: Path, user: str, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i` as `user`; resource may carry a subresource after a slash.

    namespace None asks about a cluster-scoped resource, "*" about every namespace at once.
    """
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as={user}"]
    args += [f"--subresource={sub}"] if sub else []
    if namespace == "*":
        args.append("--all-namespaces")
    elif namespace:
        args += ["-n", namespace]
    out = kubectl(kubeconfig, *args, check=False)
    assert out.stdout.strip() in {"yes", "no"}, out.stdout + out.stderr
    return out.stdout.strip() == "yes"


OPERATOR_ALLOWED = [
    *[
        (v, "modelversions.modelops.dev")
        for v in ("get", "list", "watch", "create", "patch", "update", "delete")
    ],
    *[(v, "retrainpolicies.modelops.dev") for v in ("get", "list", "watch", "patch", "update")],
    *[(v, "modelversions.modelops.dev/status") for v in ("get", "patch", "update")],
    *[(v, "retrainpolicies.modelops.dev/status") for v in ("get", "patch", "update")],
    ("update", "modelversions.modelops.dev/finalizers"),
    *[(v, "jobs.batch") for v in ("get", "list", "watch", "create", "patch", "delete")],
    *[(v, "deployments.apps") for v in ("get", "list", "watch", "create", "patch", "delete")],
    *[(v, "services") for v in ("get", "list", "watch", "create", "patch", "update", "delete")],
    *[(v, "pods") for v in ("get", "list", "watch")],
    *[(v, "persistentvolumeclaims") for v in ("get", "list")],
    ("create", "events"),
    ("patch", "events"),
    ("create", "events.events.k8s.io"),
]
OPERATOR_ALLOWED_CLUSTER = [
    ("list", "namespaces"),
    ("watch", "namespaces"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
]
OPERATOR_DENIED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "pods/exec"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/portforward"),
    ("get", "configmaps"),
    ("update", "deployments.apps"),
    ("update", "jobs.batch"),
    ("deletecollection", "modelversions.modelops.dev"),
    ("delete", "retrainpolicies.modelops.dev"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
    ("create", "serviceaccounts/token"),
]
OPERATOR_DENIED_CLUSTER = [
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("impersonate", "users"),
    ("list", "nodes"),
    ("delete", "namespaces"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("list", "clusterkopfpeerings.kopf.dev"),  # only with the kopf-peering overlay
]


def test_operator_service_account_is_allowed_what_it_uses(installed: Path, namespace: str) -> None:
    """Asked of the API server's authorizer, not read from our YAML."""
    missing = [f"{v} {r}" for v, r in OPERATOR_ALLOWED if not can_i(installed, OPERATOR, v, r, namespace)]
    missing += [f"{v} {r}" for v, r in OPERATOR_ALLOWED_CLUSTER if not can_i(installed, OPERATOR, v, r, None)]
    assert not missing, f"the operator may not: {missing}"


def test_operator_service_account_is_refused_everything_else(installed: Path, namespace: str) -> None:
    """No Secrets, no exec, no RBAC changes, no pod creation (only through Jobs/Deployments)."""
    allowed = [f"{v} {r}" for v, r in OPERATOR_DENIED if can_i(installed, OPERATOR, v, r, namespace)]
    allowed += [f"{v} {r}" for v, r in OPERATOR_DENIED_CLUSTER if can_i(installed, OPERATOR, v, r, None)]
    allowed += [
        f"{v} {r} (all namespaces)" for v, r in OPERATOR_DENIED[:3] if can_i(installed, OPERATOR, v, r, "*")
    ]
    assert not allowed, f"the operator may also: {allowed}"


def test_trainer_may_only_report_its_result_in_its_namespace(installed: Path, namespace: str) -> None:
    """The example's RoleBinding grants the trainer exactly its report, only where it trains."""
    kubectl(installed, "apply", "--server-side", "-n", namespace, "-k", ROOT / "examples/iris")
    trainer = f"system:serviceaccount:{namespace}:modelops-trainer"
    wait_for(
        lambda: can_i(installed, trainer, "patch", "modelversions.modelops.dev/status", namespace),
        timeout=30,
        message="the trainer's RoleBinding to take effect",
    )
    assert can_i(installed, trainer, "get", "modelversions.modelops.dev/status", namespace)
    for verb, resource in [
        ("patch", "modelversions.modelops.dev"),
        ("get", "modelversions.modelops.dev"),
        ("create", "modelversions.modelops.dev"),
        ("patch", "retrainpolicies.modelops.dev/status"),
        ("get", "secrets"),
        ("list", "pods"),
    ]:
        assert not can_i(installed, trainer, verb, resource, namespace), f"trainer may {verb} {resource}"
    assert not can_i(installed, trainer, "patch", "modelversions.modelops.dev/status", "default")


def test_people_with_edit_or_view_get_the_modelops_roles(installed: Path, namespace: str) -> None:
    """The editor/viewer ClusterRoles aggregate into the built-in edit and view roles."""
    for user, role in (("ml-engineer", "edit"), ("auditor", "view")):
        kubectl(
            installed,
            "create",
            "rolebinding",
            f"{user}-{role}",
            f"--clusterrole={role}",
            f"--user={user}",
            "-n",
            namespace,
        )
    wait_for(
        lambda: (
            can_i(installed, "ml-engineer", "create", "modelversions.modelops.dev", namespace)
            and can_i(installed, "auditor", "list", "retrainpolicies.modelops.dev", namespace)
        ),
        timeout=30,
        message="ClusterRole aggregation",
    )
    assert can_i(installed, "ml-engineer", "delete", "retrainpolicies.modelops.dev", namespace)
    assert not can_i(installed, "auditor", "create", "modelversions.modelops.dev", namespace)
    assert not can_i(installed, "ml-engineer", "patch", "modelversions.modelops.dev/status", namespace)
