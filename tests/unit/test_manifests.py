"""The install manifests, built by kustomize as users build them, checked without a cluster.

What must hold for a platform engineer to trust `kubectl apply -k manifests/`: every kustomization
builds; RBAC grants the operator exactly what it uses (no wildcards, no escalate/bind/impersonate,
no Secrets) and the trainer only its report; the operator Deployment meets the "restricted" Pod
Security profile; settings, ports, monitors and labels agree with each other and with the operator's
code (metric names, pod labels, trainer ServiceAccount); the examples parse with the API models.
tests/integration/test_install.py then applies the same builds to a real API server.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops import metrics as operator_metrics
from modelops.api.modelversion import ModelVersion
from modelops.api.retrainpolicy import RetrainPolicy
from modelops.lifecycle import naming
from modelops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = (
    "manifests",
    "manifests/base",
    "manifests/monitoring",
    "manifests/argocd",
    "manifests/kopf-peering",
    "manifests/kopf-peering/crds",
    "manifests/webhook",
    "examples/iris",
)
FORBIDDEN_VERBS = {"escalate", "bind", "impersonate", "*"}
OPERATOR_SA = ("modelops-system", "modelops-operator")

# What the operator does, resource by resource: the ClusterRole must grant exactly this.
OPERATOR_RULES: dict[tuple[str, str], set[str]] = {
    ("modelops.dev", "modelversions"): {"get", "list", "watch", "patch", "update", "create", "delete"},
    ("modelops.dev", "retrainpolicies"): {"get", "list", "watch", "patch", "update"},
    ("modelops.dev", "modelversions/status"): {"get", "patch", "update"},
    ("modelops.dev", "retrainpolicies/status"): {"get", "patch", "update"},
    ("modelops.dev", "modelversions/finalizers"): {"update"},
    ("modelops.dev", "retrainpolicies/finalizers"): {"update"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("autoscaling", "horizontalpodautoscalers"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch", "patch"},
    ("gateway.networking.k8s.io", "httproutes"): {"get", "update"},
    ("", "persistentvolumeclaims"): {"get", "list"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("", "namespaces"): {"list", "watch"},
}
PEERING_RULES: dict[tuple[str, str], set[str]] = {
    ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
    ("kopf.dev", "kopfpeerings"): {"get", "list", "watch", "patch"},
}

# The model server's metrics as the contract in issue 6 states them (every series has model and
# version); test_alerts_and_dashboard_use_only_metrics_and_labels_that_exist checks the server's source.
SERVER_METRICS: dict[str, tuple[str, set[str]]] = {
    "modelops_server_requests": ("counter", {"handler", "code"}),
    "modelops_server_request_duration_seconds": ("histogram", {"handler"}),
    "modelops_server_rows": ("counter", set()),
    "modelops_server_feature_value": ("histogram", {"feature"}),
    "modelops_server_prediction_class": ("counter", {"class"}),
    "modelops_server_feedback_labelled": ("counter", set()),
    "modelops_server_feedback_correct": ("counter", set()),
    "modelops_server_model_ready": ("gauge", set()),
}
TARGET_LABELS = {"namespace", "pod", "instance", "job", "container", "service", "endpoint"}


# --- building ------------------------------------------------------------------------------------
@functools.cache
def build(path: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize <path>`, parsed (cached: each build is a subprocess)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (it carries kustomize)")
    out = subprocess.run([kubectl, "kustomize", str(ROOT / path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def find(path: str, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in build(path) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(path: str, kind: str, name: str) -> dict[str, Any]:
    found = find(path, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name} in {path}, found {len(found)}"
    return found[0]


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """A role's rules flattened to (apiGroup, resource) -> verbs."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role.get("rules", []):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_kustomization_builds(path: str) -> None:
    """Each kustomization builds as users build it (kustomize load rules, patches, generators)."""
    docs = build(path)
    assert docs and all({"apiVersion", "kind", "metadata"} <= set(d) for d in docs)


def test_core_install_has_everything() -> None:
    """`kubectl apply -k manifests/` alone gives a working operator."""
    kinds = {(d["kind"], d["metadata"]["name"]) for d in build("manifests")}
    assert {
        ("Namespace", "modelops-system"),
        ("CustomResourceDefinition", "modelversions.modelops.dev"),
        ("CustomResourceDefinition", "retrainpolicies.modelops.dev"),
        ("ServiceAccount", "modelops-operator"),
        ("ClusterRole", "modelops-operator"),
        ("ClusterRoleBinding", "modelops-operator"),
        ("ClusterRole", "modelops-trainer"),
        ("ClusterRole", "modelops-editor"),
        ("ClusterRole", "modelops-viewer"),
        ("ConfigMap", "modelops-settings"),
        ("Deployment", "modelops-operator"),
        ("Service", "modelops-operator"),
    } <= kinds


def test_crds_are_the_generated_ones() -> None:
    """The install carries crds/ as generated (kept fresh by test_crds.py), not a stale copy."""
    for name in ("modelops.dev_modelversions.yaml", "modelops.dev_retrainpolicies.yaml"):
        crd = yaml.safe_load((ROOT / "crds" / name).read_text())
        built = one("manifests", "CustomResourceDefinition", crd["metadata"]["name"])
        assert built["spec"] == crd["spec"]


# --- RBAC ----------------------------------------------------------------------------------------
def _all_roles() -> list[tuple[str, dict[str, Any]]]:
    return [(path, d) for path in KUSTOMIZATIONS for d in build(path) if d["kind"] in {"ClusterRole", "Role"}]


def test_no_role_has_wildcards_escalation_or_secrets() -> None:
    """Least privilege for every role shipped, operator's or people's."""
    roles = _all_roles()
    assert roles
    for path, role in roles:
        where = f"{path}: {role['kind']}/{role['metadata']['name']}"
        for rule in role.get("rules", []):
            assert "nonResourceURLs" not in rule, where
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert not any("*" in v for v in rule.get(field, [])), f"{where}: wildcard in {field}"
            assert not FORBIDDEN_VERBS & set(rule["verbs"]), f"{where}: {rule['verbs']}"
            assert not any(r.split("/")[0] == "secrets" for r in rule["resources"]), f"{where}: secrets"


def test_operator_role_grants_exactly_what_the_operator_uses() -> None:
    """Adding a permission means adding it here too, with the reason in rbac/operator.yaml."""
    assert grants(one("manifests", "ClusterRole", "modelops-operator")) == OPERATOR_RULES


def test_operator_role_is_bound_to_the_operator_service_account_only() -> None:
    """The powerful role reaches one identity."""
    binding = one("manifests", "ClusterRoleBinding", "modelops-operator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "modelops-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "namespace": OPERATOR_SA[0], "name": OPERATOR_SA[1]}
    ]


def test_trainer_may_only_report_its_result_and_is_bound_per_namespace() -> None:
    """A training pod runs user-chosen estimators on user data: it gets one verb on one subresource."""
    assert grants(one("manifests", "ClusterRole", "modelops-trainer")) == {
        ("modelops.dev", "modelversions/status"): {"get", "patch"}
    }
    for path in KUSTOMIZATIONS:
        for d in find(path, "ClusterRoleBinding"):
            assert d["roleRef"]["name"] != "modelops-trainer", f"{path}: trainer bound cluster-wide"


def test_people_roles_aggregate_into_the_builtin_roles() -> None:
    """Namespace editors and viewers need no extra binding to manage or see models."""
    editor = one("manifests", "ClusterRole", "modelops-editor")
    viewer = one("manifests", "ClusterRole", "modelops-viewer")
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert grants(viewer)[("modelops.dev", "modelversions")] == {"get", "list", "watch"}
    assert {"create", "update", "patch", "delete"} <= grants(editor)[("modelops.dev", "modelversions")]
    assert all(verbs <= {"get", "list", "watch"} for verbs in grants(viewer).values())


def test_peering_overlay_adds_only_peering_permissions() -> None:
    """HA adds the peering resources Kopf uses, nothing more."""
    role = one("manifests/kopf-peering", "ClusterRole", "modelops-operator-peering")
    assert grants(role) == PEERING_RULES
    binding = one("manifests/kopf-peering", "ClusterRoleBinding", "modelops-operator-peering")
    assert binding["subjects"][0]["name"] == OPERATOR_SA[1]


# --- the operator Deployment -----------------------------------------------------------------
def _operator(path: str = "manifests") -> tuple[dict[str, Any], dict[str, Any]]:
    dep = one(path, "Deployment", "modelops-operator")
    pod = dep["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod, pod["containers"][0]


def test_namespace_enforces_the_restricted_profile() -> None:
    """The API server, not just this test, keeps the operator pod restricted."""
    labels = one("manifests", "Namespace", "modelops-system")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("path", ["manifests", "manifests/kopf-peering", "manifests/webhook"])
def test_operator_pod_meets_restricted_pod_security(path: str) -> None:
    """The checks of the "restricted" Pod Security Standard, plus a read-only root filesystem."""
    pod, c = _operator(path)
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"))
    assert psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    assert isinstance(uid, int) and uid > 0, "a numeric non-root uid"
    seccomp = csc.get("seccompProfile", psc.get("seccompProfile"))
    assert seccomp == {"type": "RuntimeDefault"}
    assert csc["allowPrivilegeEscalation"] is False
    assert csc.get("privileged", False) is False
    assert csc["capabilities"]["drop"] == ["ALL"] and not csc["capabilities"].get("add")
    assert csc["readOnlyRootFilesystem"] is True
    allowed = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for volume in pod.get("volumes", []):
        assert set(volume) - {"name"} <= allowed, volume
    tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
    assert pod["serviceAccountName"] == OPERATOR_SA[1]


def test_operator_probes_resources_and_ports() -> None:
    """Probes hit Kopf's liveness endpoint where --liveness puts it; ports agree with the settings."""
    _, c = _operator()
    liveness_arg = next(a for a in c["args"] if a.startswith("--liveness="))
    m = re.fullmatch(r"--liveness=http://0\.0\.0\.0:(\d+)(/\S+)", liveness_arg)
    assert m, liveness_arg
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["health"] == int(m.group(1))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": m.group(2), "port": "health"}, probe
    assert c["args"][0] == "run" and "--all-namespaces" in c["args"]
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"]
    settings = one("manifests", "ConfigMap", "modelops-settings")["data"]
    assert ports["metrics"] == int(settings["MODELOPS_METRICS_PORT"])
    assert ports["health"] == int(settings["MODELOPS_HEALTH_PORT"])
    strategy = one("manifests", "Deployment", "modelops-operator")["spec"]["strategy"]["type"]
    assert strategy == "Recreate", "one operator at a time without peering"


def test_settings_reach_the_operator_and_agree_with_the_code() -> None:
    """The ConfigMap is read by Settings.from_env as the operator will read it."""
    _, c = _operator()
    data = one("manifests", "ConfigMap", "modelops-settings")["data"]
    assert c["envFrom"] == [{"configMapRef": {"name": "modelops-settings"}}]
    assert all(v != "" for v in data.values()), "an empty setting is used as is; leave the key out"
    assert data["MODELOPS_IMAGE"] == c["image"], "trainer/server pods should run the operator's image"
    assert re.fullmatch(r"\S+:\d+\.\d+\.\d+", c["image"]), "a pinned image tag"
    parsed = Settings.from_env(data)
    assert parsed.trainer_service_account == "modelops-trainer"
    assert parsed.trainer_image == parsed.server_image == c["image"]
    assert (
        parsed.resync_seconds >= 60 and parsed.workers >= 1 and parsed.api_qps > 0 and parsed.api_burst >= 1
    )
    grace = one("manifests", "Deployment", "modelops-operator")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert 0 < parsed.shutdown_grace_seconds < grace, "the operator must exit before the kubelet kills it"
    assert parsed.api_timeout_seconds > 0
    assert set(data) <= {
        "MODELOPS_IMAGE",
        "MODELOPS_TRAINER_IMAGE",
        "MODELOPS_SERVER_IMAGE",
        "MODELOPS_IMAGE_PULL_POLICY",
        "MODELOPS_PROMETHEUS_URL",
        "MODELOPS_TRAINER_SERVICE_ACCOUNT",
        "MODELOPS_METRICS_PORT",
        "MODELOPS_HEALTH_PORT",
        "MODELOPS_RESYNC_SECONDS",
        "MODELOPS_WORKERS",
        "MODELOPS_API_QPS",
        "MODELOPS_API_BURST",
        "MODELOPS_SERVICE_CREATIONS",
        "MODELOPS_API_TIMEOUT_SECONDS",
        "MODELOPS_SHUTDOWN_GRACE_SECONDS",
        "MODELOPS_NAMESPACES",
        "MALLOC_ARENA_MAX",  # read by glibc, not by Settings
    }


def test_peering_overlay_runs_with_peering_instead_of_standalone() -> None:
    """Kopf refuses to start without the peering object it is told to join."""
    _, c = _operator("manifests/kopf-peering")
    peering = one("manifests/kopf-peering", "ClusterKopfPeering", "modelops")
    assert f"--peering={peering['metadata']['name']}" in c["args"] and "--standalone" not in c["args"]
    crds = {d["metadata"]["name"] for d in find("manifests/kopf-peering/crds", "CustomResourceDefinition")}
    assert crds == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    assert {e["name"] for e in c["env"]} >= {"POD_ID"}


# --- monitoring ----------------------------------------------------------------------------------
def test_service_monitor_scrapes_the_operator_metrics_service() -> None:
    """Selector, namespace and port line up from ServiceMonitor to Service to pod."""
    svc = one("manifests", "Service", "modelops-operator")
    sm = one("manifests/monitoring", "ServiceMonitor", "modelops-operator")
    pod_labels = one("manifests", "Deployment", "modelops-operator")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
    endpoint = sm["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert endpoint["honorLabels"] is True, "keep the model's namespace label on operator series"


def test_pod_monitor_selects_the_serving_pods_the_operator_makes() -> None:
    """The labels and port come from the operator's own naming code, so a rename breaks this test."""
    pm = one("manifests/monitoring", "PodMonitor", "modelops-servers")
    labels = naming.version_labels("iris", "iris-v1", "server")
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        not pm["spec"]["selector"]["matchLabels"].items()
        <= naming.version_labels("iris", "v", "trainer").items()
    )
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    assert pm["spec"]["podMetricsEndpoints"][0] == {"port": "http", "path": "/metrics", "interval": "15s"}


def _dashboard_cm() -> dict[str, Any]:
    return one("manifests/monitoring", "ConfigMap", "modelops-dashboard")


def test_dashboard_configmap_is_picked_up_by_the_grafana_sidecar() -> None:
    cm = _dashboard_cm()
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (name, text), *rest = cm["data"].items()
    assert not rest and name.endswith(".json")
    assert json.loads(text) == json.loads(
        (ROOT / "manifests/monitoring/dashboards/modelops.json").read_text()
    )


def test_dashboard_structure() -> None:
    """Panels the issue asks for, unique ids, a datasource on every query, no undefined variable."""
    dash = json.loads(next(iter(_dashboard_cm()["data"].values())))
    assert dash["uid"] == "modelops"
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in panels}
    assert {
        "Drift score per feature",
        "Versions by phase",
        "Requests per version",
        "Latency per version",
        "Errors per version",
        "Online accuracy",
        "Retrains by reason",
    } <= titles
    defined = {v["name"] for v in dash["templating"]["list"]} | {"__rate_interval", "__interval", "__range"}
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", t["expr"])) | set(re.findall(r"\$\{?(\w+)", p["title"]))
            assert used <= defined, f"{p['title']}: undefined {used - defined}"


def test_distribution_heatmap_never_adds_up_bins_of_different_features() -> None:
    """Each feature has its own bins: the heatmap is repeated per feature and selects exactly one."""
    dash = json.loads(next(iter(_dashboard_cm()["data"].values())))
    (heatmap,) = [p for p in dash["panels"] if p["type"] == "heatmap"]
    assert heatmap.get("repeat") == "feature", (
        "with feature=All one heatmap would sum every feature's buckets"
    )
    for t in heatmap["targets"]:
        assert 'feature="$feature"' in t["expr"], t["expr"]


def test_serving_panels_and_alerts_count_inference_requests_only() -> None:
    """Probes and scrapes are requests too; error share and latency are about predictions."""
    inference = 'handler=~"infer|predict"'
    dash = json.loads(next(iter(_dashboard_cm()["data"].values())))
    for p in dash["panels"]:
        if p.get("title") in ("Latency per version", "Errors per version"):
            assert all(inference in t["expr"] for t in p["targets"]), p["title"]
    rule = yaml.safe_load((ROOT / "manifests/monitoring/prometheusrule.yaml").read_text())
    (alert,) = [
        r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("alert") == "ModelOpsServingErrorRateHigh"
    ]
    selectors = re.findall(r"modelops_server_requests_total\{([^}]*)\}", alert["expr"])
    assert selectors and all(inference in s for s in selectors), selectors


def test_server_labels_collide_with_no_target_label() -> None:
    """A collision is renamed exported_<label> by Prometheus (PodMonitor without honorLabels)."""
    for name, (_, labels) in SERVER_METRICS.items():
        assert not labels & TARGET_LABELS, f"{name}: {labels & TARGET_LABELS}"


def _metric_catalogue() -> dict[str, set[str]]:
    """Every series name the operator and the servers expose -> its labels.

    Operator metrics come from modelops.metrics itself (its collectors' from a sample). The server renders its families in a custom
    collector at scrape time, so its names come from SERVER_METRICS, checked against its source.
    """
    import prometheus_client

    families = {
        v._name: (v._type, set(v._labelnames))
        for v in vars(operator_metrics).values()
        if isinstance(v, prometheus_client.metrics.MetricWrapperBase)
    }
    # The per-version gauges are built at scrape time: their labels are those of a sample.
    states = operator_metrics.VersionStates()
    states.set("ns", "model", "version", "Serving", True)
    for family in states.collect():
        families[family.name] = (family.type, set(family.samples[0].labels))
    server_source = ROOT / "operator" / "modelops" / "server" / "metrics.py"
    for name, (kind, labels) in SERVER_METRICS.items():
        if server_source.exists():
            assert f'"{name}"' in server_source.read_text(), f"the server no longer exports {name}"
        families[name] = (kind, labels | {"model", "version"})
    out: dict[str, set[str]] = {}
    for name, (kind, labels) in families.items():
        suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}[kind]
        for suffix in suffixes:
            out[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return out


def _promql_sources() -> list[tuple[str, str]]:
    rule = yaml.safe_load((ROOT / "manifests/monitoring/prometheusrule.yaml").read_text())
    exprs = [(r.get("alert") or r["record"], r["expr"]) for g in rule["spec"]["groups"] for r in g["rules"]]
    dash = json.loads((ROOT / "manifests/monitoring/dashboards/modelops.json").read_text())
    text = json.dumps(dash)
    exprs += [("dashboard", e) for e in re.findall(r'"(?:expr|query|definition)": "((?:[^"\\]|\\.)*)"', text)]
    return [(where, json.loads(f'"{e}"') if where == "dashboard" else e) for where, e in exprs]


def test_alerts_and_dashboard_use_only_metrics_and_labels_that_exist() -> None:
    """A misspelt metric or label is valid PromQL that silently matches nothing; catch it here."""
    catalogue = _metric_catalogue()
    seen = set()
    for where, expr in _promql_sources():
        # Metric names, not recorded series (level:metric:operation) or label names (modelops_dev_*).
        for name, matchers in re.findall(r"(?<![:\w])(modelops_[a-z0-9_]+)(?![:\w])(?:\{([^}]*)\})?", expr):
            assert name in catalogue, f"{where}: unknown metric {name}"
            seen.add(name)
            labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
            assert labels <= catalogue[name] | TARGET_LABELS, (
                f"{where}: {name} has no label {labels - catalogue[name]}"
            )
        for labels in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
            for label in filter(None, (x.strip() for x in labels.split(","))):
                assert any(label in ls for ls in catalogue.values()) or label in TARGET_LABELS, (
                    f"{where}: {label}"
                )
    assert len(seen) >= 15


# --- Argo CD -------------------------------------------------------------------------------------
def test_argocd_application_points_at_the_examples() -> None:
    """The example Application syncs a directory that exists."""
    app = one("manifests/argocd", "Application", "iris")
    assert (ROOT / app["spec"]["source"]["path"] / "kustomization.yaml").exists()
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]


# --- examples ------------------------------------------------------------------------------------
def test_examples_are_namespace_agnostic() -> None:
    """The example installs into any namespace (`kubectl apply -n NS -k`)."""
    assert all("namespace" not in d["metadata"] for d in build("examples/iris"))


def test_example_model_parses_with_the_api_models() -> None:
    """The example is valid for the operator's pydantic models and says what the issue asks."""
    mv = ModelVersion.model_validate(one("examples/iris", "ModelVersion", "iris-v1"))
    rp = RetrainPolicy.model_validate(one("examples/iris", "RetrainPolicy", "iris"))
    spec = mv.spec
    assert spec.model == rp.spec.model == "iris"
    assert spec.training.dataset.uri == "sklearn:iris"
    assert spec.training.estimator.class_ in {"LogisticRegression", "HistGradientBoostingClassifier"}
    assert [(g.metric, g.min) for g in spec.validation.gates] == [("accuracy", 0.9)]
    assert spec.validation.champion is not None and spec.validation.champion.metric == "accuracy"
    drift = rp.spec.triggers.drift
    assert drift and (drift.method, drift.threshold, drift.min_samples, drift.consecutive) == (
        "psi",
        0.25,
        200,
        2,
    )
    perf = rp.spec.triggers.performance
    assert perf and (perf.metric, perf.floor) == ("accuracy", 0.8)
    assert rp.spec.triggers.schedule and rp.spec.triggers.schedule.every == "2160h"
    assert rp.spec.cooldown == "10m" and rp.spec.template.params
    assert (rp.spec.retention.keep_retired, rp.spec.retention.delete_artifacts) == (2, True)


def test_example_storage_and_trainer_identity_match_what_the_operator_expects() -> None:
    """Training Jobs mount this claim and run as this ServiceAccount by default."""
    mv = ModelVersion.model_validate(one("examples/iris", "ModelVersion", "iris-v1"))
    pvc = one("examples/iris", "PersistentVolumeClaim", mv.spec.storage.pvc)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    sa = Settings().trainer_service_account
    one("examples/iris", "ServiceAccount", sa)
    binding = one("examples/iris", "RoleBinding", sa)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "modelops-trainer",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa}]
    one("manifests", "ClusterRole", binding["roleRef"]["name"])


def test_webhook_overlay_serves_what_the_configuration_calls() -> None:
    """The webhook configuration calls the Service, the Service the operator's webhook port, and the
    paths are the Kopf handler ids; the certificate is cert-manager's, mounted where the settings say."""
    from modelops.controllers.admission import MODELVERSION_WEBHOOK, RETRAINPOLICY_WEBHOOK

    path = "manifests/webhook"
    pod, c = _operator(path)
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    st = Settings.from_env({k: v for k, v in env.items() if v})
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert st.webhook_port == ports["webhook"] == 9443
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == st.webhook_cert_dir)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    cert = one(path, "Certificate", "modelops-webhook")
    assert volume["secret"]["secretName"] == cert["spec"]["secretName"] and mount["readOnly"]
    svc = one(path, "Service", "modelops-webhook")
    assert svc["spec"]["ports"][0]["targetPort"] == "webhook"
    assert (
        svc["spec"]["selector"].items()
        <= one(path, "Deployment", "modelops-operator")["spec"]["template"]["metadata"]["labels"].items()
    )
    (config,) = find(path, "ValidatingWebhookConfiguration")
    ns = cert["metadata"]["namespace"]
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{ns}/modelops-webhook"
    assert f"modelops-webhook.{ns}.svc" in cert["spec"]["dnsNames"]
    calls = {}
    for hook in config["webhooks"]:
        ref = hook["clientConfig"]["service"]
        assert (ref["name"], ref["namespace"], ref["port"]) == (
            "modelops-webhook",
            ns,
            svc["spec"]["ports"][0]["port"],
        )
        assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
        (rule,) = hook["rules"]
        assert rule["operations"] == ["CREATE", "UPDATE"], (
            "never DELETE: a stuck webhook must not block clean-up"
        )
        calls[rule["resources"][0]] = ref["path"]
    assert calls == {
        "modelversions": f"/{MODELVERSION_WEBHOOK}",
        "retrainpolicies": f"/{RETRAINPOLICY_WEBHOOK}",
    }
    # the core install has no webhook: without cert-manager nothing would serve it
    assert not find("manifests", "ValidatingWebhookConfiguration")
    assert "MODELOPS_WEBHOOK_PORT" not in {e["name"] for e in _operator()[1].get("env", [])}


def test_canary_examples_parse_and_split_as_their_comments_say() -> None:
    """examples/iris-canary: both challengers are valid, and 10 % of 10 pods is exactly one pod."""
    from modelops.lifecycle.canary import split_replicas

    folder = ROOT / "examples" / "iris-canary"
    replicas = ModelVersion.model_validate(yaml.safe_load((folder / "modelversion.yaml").read_text()))
    gateway = ModelVersion.model_validate(yaml.safe_load((folder / "modelversion-gateway.yaml").read_text()))
    c = replicas.spec.serving.rollout.canary
    assert c is not None and c.traffic == "replicas"
    assert c.schedule() == [(10, 120.0), (50, 300.0)]
    assert [split_replicas(w, replicas.spec.serving.replicas) for w, _ in c.schedule()] == [(1, 9), (5, 5)]
    g = gateway.spec.serving.rollout.canary
    assert g is not None and g.traffic == "gatewayAPI" and g.http_route == "iris"
    route = yaml.safe_load((folder / "httproute.yaml").read_text())
    assert route["kind"] == "HTTPRoute" and route["metadata"]["name"] == g.http_route


@pytest.mark.parametrize("key", ["MODELOPS_API_TIMEOUT_SECONDS", "MODELOPS_SHUTDOWN_GRACE_SECONDS"])
def test_a_negative_timeout_setting_is_refused_at_start_naming_the_key(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        Settings.from_env({key: "-1"})
    assert Settings.from_env({key: "0"})  # 0: no timeout, or no wait
