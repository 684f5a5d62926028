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
- The real operator, authenticated with its ServiceAccount's token, takes a model to Serving and
  lets it be deleted, and the API server never refuses it anything on the way.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cluster.localcluster import _die_with_parent
from tests.helpers import wait_for
from tests.support.gatewayapi import standard_crds
from tests.support.kubelet import free_port
from tests.support.operator import OperatorProcess
from tests.support.prometheus import PrometheusServer

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


# --- the operator, as its ServiceAccount ----------------------------------------------------------
def _service_account_kubeconfig(admin: Path, path: Path) -> Path:
    """A kubeconfig that authenticates with a fresh token of the operator's ServiceAccount."""
    token = kubectl(admin, "create", "token", OPERATOR_SA, "-n", OPERATOR_NS, "--duration=1h").stdout.strip()
    cluster = json.loads(
        kubectl(admin, "config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": cluster["cluster"]}],
                "users": [{"name": OPERATOR_SA, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": OPERATOR_SA}}],
                "current-context": "sa",
            }
        )
    )
    who = kubectl(path, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who.stdout == OPERATOR, who.stdout
    return path


class Refused(AssertionError):
    """The API server answered the operator 403."""


def _refusals(op: OperatorProcess) -> list[str]:
    log = op.log.read_text(errors="replace") if op.log.exists() else ""
    return [line for line in log.splitlines() if "Forbidden" in line or "(403)" in line]


@pytest.mark.timeout(420)
def test_operator_as_its_service_account_runs_a_model_lifecycle(
    installed: Path,
    namespace: str,
    kubelet: Any,
    mvs: Any,
    prometheus: PrometheusServer,
    tmp_path: Path,
) -> None:
    """The RBAC is enough in practice: train, validate, deploy, promote, delete; never a 403."""
    kubeconfig = _service_account_kubeconfig(installed, tmp_path / "operator.kubeconfig")
    op = OperatorProcess(str(kubeconfig), namespace, tmp_path, MODELOPS_PROMETHEUS_URL=prometheus.url).start()

    def until(check: Any, what: str, timeout: float) -> None:
        """Poll `check`, but stop at the first refusal in the operator's log (a missing permission)."""

        def step() -> bool:
            if refused := _refusals(op):
                raise Refused("the API server refused the operator:\n" + "\n".join(refused[:20]))
            return bool(check())

        wait_for(step, timeout=timeout, message=what)

    try:
        mvs.create("iris-v1")
        until(lambda: mvs.phase("iris-v1") == "Serving", "iris-v1 to be Serving", timeout=240)
        assert mvs.status("iris-v1")["champion"] is True
        assert mvs.champion_of("iris") == "iris-v1"
        mvs.delete("iris-v1")
        until(
            lambda: (
                not kubectl(
                    installed,
                    "get",
                    "modelversion",
                    "iris-v1",
                    "-n",
                    namespace,
                    "--ignore-not-found",
                    "-o",
                    "name",
                ).stdout
            ),
            "iris-v1 to be deleted (the operator removes its finalizer)",
            timeout=60,
        )
    except BaseException:
        print(f"\n----- operator log ({op.log}) -----\n{op.tail(150)}")
        with contextlib.suppress(Exception):
            print(f"status: {mvs.status('iris-v1')}\nevents: {mvs.events('iris-v1')}")
        raise
    finally:
        op.stop()
    assert not _refusals(op)


# --- the operator exactly as the shipped Deployment runs it ---------------------------------------
def _rendered_operator(kubeconfig: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The operator container and the ConfigMap data it reads, as `kubectl kustomize manifests/` renders them."""
    docs = [d for d in yaml.safe_load_all(kubectl(kubeconfig, "kustomize", ROOT / "manifests").stdout) if d]
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "modelops-operator"]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    settings: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        name = source["configMapRef"]["name"]
        (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
        settings.update(cm["data"])
    return container, settings


def _entrypoint() -> list[str]:
    """The image's ENTRYPOINT (exec form), which a container without `command` runs."""
    lines = [
        ln for ln in (ROOT / "images" / "Dockerfile").read_text().splitlines() if ln.startswith("ENTRYPOINT")
    ]
    return json.loads(lines[-1].split(None, 1)[1])


class ShippedOperator(OperatorProcess):
    """The operator container as a host process, started as the kubelet would start it.

    argv is the image's ENTRYPOINT plus the container's args; the environment is the settings
    ConfigMap (envFrom) and the container's env. What differs on a host, and only that: `modelops`
    is this interpreter's module; each container port is mapped to a free host port (in args and
    in settings whose value is that port number, as the Deployment's comment says they must
    match); the API server is reached with a kubeconfig holding the ServiceAccount's token (what
    the projected token and in-cluster config give the pod); MODELOPS_PROMETHEUS_URL names the
    test's Prometheus, since the in-cluster Service name does not resolve on the host.
    """

    def __init__(self, kubeconfig: Path, logdir: Path, prometheus_url: str) -> None:
        super().__init__(str(kubeconfig), "all-namespaces", logdir)
        container, settings = _rendered_operator(kubeconfig)
        assert "command" not in container, "the Deployment relies on the image's ENTRYPOINT"
        self.ports = {p["name"]: (p["containerPort"], free_port()) for p in container.get("ports", [])}
        argv = [*_entrypoint(), *container.get("args", [])]
        for inside, outside in self.ports.values():
            argv = [a.replace(f":{inside}/", f":{outside}/") for a in argv]
            settings = {k: str(outside) if v == str(inside) else v for k, v in settings.items()}
        assert argv[0] == "modelops", argv
        self.argv = [sys.executable, "-m", "modelops.cli", *argv[1:]]
        env = {e["name"]: e.get("value", "") for e in container.get("env", []) if "value" in e}
        env.update(
            {e["name"]: "modelops-operator-test" for e in container.get("env", []) if "valueFrom" in e}
        )
        self.environment = {**settings, **env, "MODELOPS_PROMETHEUS_URL": prometheus_url}

    def start(self) -> ShippedOperator:
        self.runs += 1
        env = {**os.environ, **self.environment, "KUBECONFIG": self.kubeconfig, "PYTHONUNBUFFERED": "1"}
        for name in [k for k in env if k.startswith("MODELOPS_") and k not in self.environment]:
            del env[name]  # nothing from the test's own environment reaches the operator
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return self

    def probe(self, name: str = "health", path: str = "/healthz") -> bool:
        """The startup/liveness probe's httpGet against the mapped port."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.ports[name][1]}{path}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@contextlib.contextmanager
def _model_namespace(
    api_client: Any, admin: Path, tmp_path: Path, prometheus: PrometheusServer
) -> Iterator[tuple[str, Any]]:
    """A second namespace prepared as the `namespace`, `storage` and `kubelet` fixtures prepare theirs."""
    from kubernetes import client as k8s

    from tests.integration.conftest import provide_storage
    from tests.support.kubelet import Kubelet

    core = k8s.CoreV1Api(api_client)
    name = f"t-shipped-{secrets.token_hex(3)}"
    core.create_namespace(
        {"metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "modelops-tests"}}}
    )
    kubelet = None
    try:
        wait_for(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=30,
            message=f"ServiceAccount {name}/default",
            ignore=(k8s.ApiException,),
        )
        provide_storage(api_client, name, tmp_path / f"pv-{name}", "modelops-trainer")
        kubelet = Kubelet(
            api_client,
            name,
            str(admin),
            tmp_path / f"kubelet-{name}",
            on_targets=prometheus.set_targets,
        ).start()
        yield name, kubelet
    finally:
        if kubelet is not None:
            kubelet.stop()
            prometheus.set_targets(name, [])
        with contextlib.suppress(k8s.ApiException):
            core.delete_persistent_volume(f"artifacts-{name}")
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespace(name, propagation_policy="Background")


@pytest.mark.timeout(600)
def test_shipped_operator_serves_models_in_two_namespaces(
    installed: Path,
    namespace: str,
    kubelet: Any,
    mvs: Any,
    api_client: Any,
    prometheus: PrometheusServer,
    tmp_path: Path,
) -> None:
    """Issue 15: the Deployment's own command, arguments, settings and ServiceAccount, cluster-wide.

    Its startup probe passes, a ModelVersion of the same name reaches Serving in two namespaces
    (so the trainer and server commands as the operator renders them run too, through the kubelet
    stand-in, which executes each pod's command and args), the API server refuses it nothing, and
    the real Prometheus, scraping as the shipped PodMonitor does, keeps the two namespaces' series
    apart: the operator's queries for one namespace never count the other's requests.
    """
    from modelops.drift import promql
    from modelops.prometheus import query
    from tests.support.versions import ModelVersions

    kubeconfig = _service_account_kubeconfig(installed, tmp_path / "operator.kubeconfig")
    op = ShippedOperator(kubeconfig, tmp_path, prometheus.url).start()

    def until(check: Any, what: str, timeout: float) -> Any:
        def step() -> Any:
            if op.proc is not None and op.proc.poll() is not None:
                raise AssertionError(f"the operator exited with {op.proc.returncode}")
            if refused := _refusals(op):
                raise Refused("the API server refused the operator:\n" + "\n".join(refused[:20]))
            return check()

        return wait_for(step, timeout=timeout, message=what)

    try:
        until(op.probe, "the startup probe (/healthz on the health port)", timeout=120)
        with _model_namespace(api_client, installed, tmp_path, prometheus) as (other, other_kubelet):
            both = [(mvs, kubelet), (ModelVersions(api_client, other, str(installed)), other_kubelet)]
            for versions, _ in both:
                versions.create("iris-v1")
            for versions, _ in both:
                until(
                    lambda v=versions: v.phase("iris-v1") == "Serving",
                    f"iris-v1 Serving in {versions.ns}",
                    300,
                )
                assert versions.champion_of("iris") == "iris-v1"
            for versions, stand_in in both:
                assert any(t.startswith("iris-v1-train") for t in stand_in.trainings), stand_in.trainings
                assert stand_in.server_for("iris-v1") is not None, f"no server ran in {versions.ns}"

            def scraped(ns: str) -> bool:
                return bool(query(prometheus.url, promql.requests(ns, "iris", "iris-v1", "5m")))

            # The requests must land after the series' first sample, or increase() cannot see them.
            until(lambda: scraped(namespace), f"the server in {namespace} scraped by Prometheus", 60)
            url = kubelet.server_for("iris-v1").url
            row = {
                "sepal length (cm)": 5.1,
                "sepal width (cm)": 3.5,
                "petal length (cm)": 1.4,
                "petal width (cm)": 0.2,
            }
            for _ in range(30):
                assert httpx.post(f"{url}/predict", json={"instances": [row]}, timeout=5).status_code == 200

            def counted(ns: str) -> float:
                samples = query(prometheus.url, promql.requests(ns, "iris", "iris-v1", "5m"))
                return samples[0].value if samples else 0.0

            until(lambda: counted(namespace) >= 25, f"the requests in {namespace} in Prometheus", 60)
            assert counted(other) == 0.0, "the other namespace's query counted these requests"
            (series, *_) = query(
                prometheus.url, f'modelops_server_requests_total{{namespace="{namespace}",handler="predict"}}'
            )
            assert not [k for k in series.labels if k.startswith("exported_")], series.labels
            assert series.labels["endpoint"] == "http" and series.labels["container"] == "server"
            assert series.labels["job"] == "modelops-system/modelops-servers"
            assert series.labels["pod"].startswith("iris-v1-server-")
    except BaseException:
        print(f"\n----- operator log ({op.log}) -----\n{op.tail(150)}")
        raise
    finally:
        op.stop()
    assert not _refusals(op)
