"""RetrainPolicy against real Prometheus, real model servers and the real API server."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.integration.conftest import kubectl
from tests.support.operator import OperatorProcess
from tests.support.prometheus import PrometheusServer
from tests.support.traffic import IrisTraffic
from tests.support.wait import eventually

GROUP, VERSION = "modelops.dev", "v1alpha1"


class Policies:
    def __init__(self, mvs: Any) -> None:
        self.mvs = mvs
        self.custom = mvs.custom
        self.ns = mvs.ns

    def create(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RetrainPolicy",
            "metadata": {"name": name},
            "spec": {"model": "iris", "interval": "2s", "window": "20s", "cooldown": "1h", **spec},
        }
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, "retrainpolicies", body)

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "retrainpolicies", name)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), {})

    def children(self, name: str) -> list[dict[str, Any]]:
        """Every version the policy made (its lineage label stays after a promoted child is released)."""
        return self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, "modelversions", label_selector=f"modelops.dev/policy={name}"
        )["items"]

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except client.ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def annotate(self, name: str, key: str, value: str) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, "retrainpolicies", name, {"metadata": {"annotations": {key: value}}}
        )

    def committed(self, name: str) -> dict[str, Any]:
        """Status once the latest trigger is committed (the child is created between pending and commit)."""

        def done() -> dict[str, Any] | None:
            st = self.status(name)
            return st if st.get("lastTrigger") and not st.get("pending") else None

        return eventually(done, timeout=30, what=f"{name}'s trigger to be committed")

    def evaluations(self, name: str) -> str | None:
        return self.status(name).get("lastEvaluationTime")


@pytest.fixture
def policies(mvs: Any) -> Policies:
    return Policies(mvs)


def serve_champion(mvs: Any, kubelet: Any, name: str = "iris-v1", **spec: Any) -> str:
    mvs.create(
        name,
        validation={
            "gates": [{"metric": "accuracy", "min": 0.8}],
            "champion": {"metric": "accuracy", "minImprovement": 0.0},
        },
        **spec,
    )
    mvs.wait_phase(name, "Serving")
    return eventually(lambda: kubelet.server_for(name), timeout=30, what=f"{name}'s server").url


def wait_evaluations(policies: Policies, name: str, count: int, timeout: float = 60) -> list[str]:
    seen: list[str] = []

    def more() -> bool:
        t = policies.evaluations(name)
        if t and (not seen or seen[-1] != t):
            seen.append(t)
        return len(seen) >= count

    eventually(more, timeout=timeout, interval=0.3, what=f"{count} evaluations of {name}")
    return seen


DRIFT = {"method": "psi", "threshold": 0.25, "minSamples": 100, "consecutive": 2}


def test_closed_loop_drift_retrain_validate_promote_collect(mvs, kubelet, operator, policies):
    serve_champion(mvs, kubelet, "iris-v0")
    url = serve_champion(mvs, kubelet, "iris-v1")
    mvs.wait_phase("iris-v0", "Superseded")
    policies.create("iris", triggers={"drift": DRIFT}, retention={"keepRetired": 0, "deleteArtifacts": True})
    with IrisTraffic(url) as t:
        eventually(lambda: t.sent > 300, timeout=60, what="traffic")
        wait_evaluations(policies, "iris", 5)
        st = policies.status("iris")
        assert policies.children("iris") == [], "drift-free traffic must not retrain (false alarm)"
        assert all(f["result"] == "Stable" for f in st["features"].values()), st["features"]
        assert st["lastDriftScore"] < 0.25
    with IrisTraffic(url, shift={"petal length (cm)": 3.0, "petal width (cm)": 1.5}):
        child = eventually(lambda: policies.children("iris"), timeout=90, what="a retrain on drift")[0]
    name = child["metadata"]["name"]
    st = policies.committed("iris")
    assert st["lastTrigger"]["reason"] == "drift" and st["lastTrigger"]["child"] == name
    assert "petal length (cm)" in st["lastTrigger"]["detail"], st["lastTrigger"]
    assert child["spec"]["parent"] == "iris-v1"
    assert child["metadata"]["ownerReferences"][0]["kind"] == "RetrainPolicy"
    mvs.wait_phase(name, "Serving", timeout=120)
    assert mvs.champion_of("iris") == name
    mvs.wait_phase("iris-v1", "Superseded")
    # retention: v0 is beyond keepRetired=0 and is not the rollback target (v1 is): it goes, files first
    v0_dir = kubelet.artifact_dir("modelops-artifacts", "iris", "iris-v0")

    def v0_gone() -> bool:
        names = {
            m["metadata"]["name"]
            for m in mvs.custom.list_namespaced_custom_object(GROUP, VERSION, mvs.ns, "modelversions")[
                "items"
            ]
        }
        return "iris-v0" not in names and not v0_dir.exists()

    eventually(v0_gone, timeout=90, what="iris-v0 and its artifacts to be collected")
    assert kubelet.artifact_dir("modelops-artifacts", "iris", "iris-v1").exists()
    assert mvs.phase("iris-v1") == "Superseded"
    events = [e for e in mvs.events("iris")]
    assert any("GarbageCollected" in e for e in events), events
    # ownership: the promoted child now belongs to the model, so deleting the policy leaves it serving
    eventually(
        lambda: not mvs.get(name)["metadata"].get("ownerReferences"), timeout=30, what="the champion released"
    )
    policies.custom.delete_namespaced_custom_object(
        GROUP, VERSION, mvs.ns, "retrainpolicies", "iris", propagation_policy="Foreground"
    )
    eventually(lambda: not policies.exists("iris"), timeout=60, what="the policy and its dependents to go")
    assert mvs.phase(name) == "Serving" and mvs.champion_of("iris") == name
    assert mvs.phase("iris-v1") == "Superseded", "the rollback target stays too"


def test_performance_decay_from_feedback_triggers_a_retrain(mvs, kubelet, operator, policies):
    url = serve_champion(mvs, kubelet)
    policies.create("iris", triggers={"performance": {"metric": "accuracy", "floor": 0.8, "minLabels": 50}})
    with IrisTraffic(url, wrong_labels=True):
        child = eventually(lambda: policies.children("iris"), timeout=90, what="a retrain on decay")[0]
    st = policies.committed("iris")
    assert st["lastTrigger"]["reason"] == "performance", st["lastTrigger"]
    assert child["spec"]["parent"] == "iris-v1"


def test_schedule_triggers_and_cooldown_holds_the_next(mvs, kubelet, operator, policies):
    serve_champion(mvs, kubelet)
    policies.create("iris", triggers={"schedule": {"every": "3s"}}, cooldown="1h", maxConcurrent=5)
    eventually(lambda: policies.children("iris"), timeout=60, what="a scheduled retrain")
    st = policies.committed("iris")
    assert st["lastTrigger"]["reason"] == "schedule"
    wait_evaluations(policies, "iris", 4)
    assert len(policies.children("iris")) == 1, "cooldown must hold the next scheduled retrain back"
    assert "cooldown" in policies.condition("iris", "Ready").get("message", "")


def test_manual_request_triggers_once(mvs, kubelet, operator, policies):
    serve_champion(mvs, kubelet)
    policies.create("iris", template={"params": {"C": 0.5}})
    policies.annotate("iris", "modelops.dev/retrain", "please-1")
    child = eventually(lambda: policies.children("iris"), timeout=60, what="a manual retrain")[0]
    assert child["spec"]["training"]["estimator"]["params"]["C"] == 0.5
    st = policies.committed("iris")
    assert st["lastTrigger"]["reason"] == "manual" and st["handledRequest"] == "please-1"
    wait_evaluations(policies, "iris", 3)
    assert len(policies.children("iris")) == 1, "a handled request must not trigger again"


@pytest.fixture
def own_prometheus(tmp_path: Any) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path / "own-prometheus").start()
    yield server
    server.stop()


def test_prometheus_outage_is_reported_and_never_retrains(
    mvs, kubelet, policies, own_prometheus, cluster, namespace, crds, tmp_path
):
    kubelet.on_targets = own_prometheus.set_targets
    op = OperatorProcess(
        str(cluster.kubeconfig), namespace, tmp_path, MODELOPS_PROMETHEUS_URL=own_prometheus.url
    )
    op.start()
    try:
        url = serve_champion(mvs, kubelet)
        policies.create("iris", triggers={"drift": DRIFT})
        with IrisTraffic(url, shift={"petal length (cm)": 3.0}):
            wait_evaluations(policies, "iris", 1)
            own_prometheus.stop()
            cond = eventually(
                lambda: (
                    (c := policies.condition("iris", "Evaluated")).get("reason") == "PrometheusUnreachable"
                    and c
                ),
                timeout=30,
                what="the outage to be reported",
            )
            assert "unreachable" in cond["message"].lower()
            wait_evaluations(policies, "iris", 3)
            assert policies.children("iris") == [], "no retrain while Prometheus is down"
            assert op.proc and op.proc.poll() is None, "the operator keeps running"
            own_prometheus.start()
            eventually(
                lambda: policies.condition("iris", "Evaluated").get("reason") != "PrometheusUnreachable",
                timeout=60,
                what="evaluation to resume",
            )
            eventually(
                lambda: policies.children("iris"), timeout=90, what="the drift to be acted on after recovery"
            )
    finally:
        op.stop()


def deny_children(kubeconfig: str, namespace: str) -> str:
    """Fault injected from outside: the API server refuses every child a policy makes in `namespace`.

    A ValidatingAdmissionPolicy (CEL, built into the API server) matching the label the
    operator puts on children; nothing in the operator knows about it.
    """
    name = f"deny-children-{namespace}"[:63]
    manifest = f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [modelops.dev]
        apiVersions: [v1alpha1]
        operations: [CREATE]
        resources: [modelversions]
  validations:
    - expression: "!has(object.metadata.labels) || !('modelops.dev/policy' in object.metadata.labels)"
      message: "fault injected by the test: no children"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {namespace}}}
"""
    kubectl(kubeconfig, "apply", "-f", "-", input=manifest)
    probe = f"""
apiVersion: modelops.dev/v1alpha1
kind: ModelVersion
metadata: {{name: probe, namespace: {namespace}, labels: {{modelops.dev/policy: probe}}}}
spec:
  model: probe
  training: {{dataset: {{uri: "sklearn:iris"}}, estimator: {{class: LogisticRegression}}}}
"""

    def refused() -> bool:
        r = kubectl(kubeconfig, "create", "--dry-run=server", "-f", "-", input=probe, check=False)
        return r.returncode != 0 and "fault injected" in r.stderr

    eventually(refused, timeout=30, what="the admission policy to take effect")
    return name


def test_operator_killed_between_deciding_and_creating_makes_exactly_one_child(
    mvs, kubelet, policies, prometheus, cluster, namespace, crds, tmp_path
):
    env = {"MODELOPS_PROMETHEUS_URL": prometheus.url}
    kubeconfig = str(cluster.kubeconfig)
    op = OperatorProcess(kubeconfig, namespace, tmp_path, **env).start()
    denial = None
    try:
        serve_champion(mvs, kubelet)
        denial = deny_children(kubeconfig, namespace)
        policies.create("iris")
        policies.annotate("iris", "modelops.dev/retrain", "now")
        pending = eventually(
            lambda: policies.status("iris").get("pending"), timeout=60, what="the decision to be recorded"
        )
        eventually(
            lambda: "fault injected" in op.log.read_text(), timeout=30, what="the refused create to be tried"
        )
        op.kill()  # dies with the decision written and its child refused: the worst moment
        assert policies.children("iris") == [], "the decision is recorded, the child not yet made"
        kubectl(kubeconfig, "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", denial)
        denial = None
        op.start()
        child = eventually(lambda: policies.children("iris"), timeout=60, what="the child after restart")
        assert [c["metadata"]["name"] for c in child] == [pending["child"]]
        eventually(
            lambda: not policies.status("iris").get("pending"), timeout=30, what="the trigger to commit"
        )
        wait_evaluations(policies, "iris", 3)
        assert len(policies.children("iris")) == 1
        assert policies.status("iris")["history"][0]["child"] == pending["child"]
    finally:
        if denial:
            kubectl(
                kubeconfig,
                "delete",
                "validatingadmissionpolicybinding,validatingadmissionpolicy",
                denial,
                check=False,
            )
        op.stop()


def test_random_kills_with_retrains_rollbacks_and_retention_in_flight(mvs, kubelet, operator, policies):
    """The fault-injection suite: the operator is SIGKILLed at random points while manual retrains,
    promotions, a rollback and retention's deletions are in flight. At the end: one champion,
    one child per trigger, no orphan, nothing stuck deleting, the rollback target kept."""
    rnd = random.Random(17)

    def kill_a_few(n: int) -> None:
        for _ in range(n):
            time.sleep(rnd.uniform(0.2, 2.0))
            operator.kill()
            operator.start()

    mvs.create("iris-v1")  # no champion rule: every child that passes its gates is promoted
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    policies.create("iris", cooldown="1s", retention={"keepRetired": 1}, template={"params": {"C": 0.5}})
    tokens = [f"kill-{i}" for i in range(3)]
    for token in tokens:
        policies.annotate("iris", "modelops.dev/retrain", token)
        kill_a_few(3)
        st = eventually(
            lambda t=token: (
                (s := policies.status("iris")).get("handledRequest") == t and not s.get("pending") and s
            ),
            timeout=180,
            what=f"the retrain {token} committed",
        )
        child = st["lastTrigger"]["child"]
        mvs.wait_phase(child, "Serving", timeout=240)
        eventually(lambda c=child: mvs.champion_of("iris") == c, timeout=60, what=f"{child} champion")

    # A rollback to the previous champion, with kills in flight.
    history = [t["child"] for t in policies.status("iris")["history"]]
    target = history[-2]
    mvs.annotate(target, "modelops.dev/promote", "rollback-1")
    kill_a_few(3)
    eventually(lambda: mvs.champion_of("iris") == target, timeout=180, what=f"the rollback to {target}")

    def settled() -> list[dict[str, Any]] | None:
        items = mvs.custom.list_namespaced_custom_object(GROUP, VERSION, mvs.ns, "modelversions")["items"]
        if any(i["metadata"].get("deletionTimestamp") for i in items):
            return None  # still deleting: wait, and fail below if it never ends
        champions = [i["metadata"]["name"] for i in items if (i.get("status") or {}).get("champion")]
        return items if champions == [target] else None

    items = eventually(settled, timeout=180, what="one champion and nothing left deleting")
    names = {i["metadata"]["name"] for i in items}
    history = policies.status("iris")["history"]
    assert len(history) == len(tokens), history  # one child per trigger
    assert len({t["child"] for t in history}) == len(tokens)
    made = [c["metadata"]["name"] for c in policies.children("iris")]
    assert len(made) == len(set(made)) and set(made) <= {t["child"] for t in history}, made
    assert target in names and mvs.phase(target) == "Serving", "the rollback target was kept"
    # No orphan: every Job, Deployment and version Service belongs to a version that exists.
    for kind, items_ in (
        ("Job", mvs.batch.list_namespaced_job(mvs.ns).items),
        ("Deployment", mvs.apps.list_namespaced_deployment(mvs.ns).items),
        ("Service", mvs.core.list_namespaced_service(mvs.ns).items),
    ):
        for obj in items_:
            version = (obj.metadata.labels or {}).get("modelops.dev/version")
            if kind == "Service" and obj.metadata.name == "iris":
                continue  # the stable Service: the champion's
            assert version in names, f"{kind} {obj.metadata.name} outlived its version {version}"
    assert operator.runs == 1 + 3 * (len(tokens) + 1)
