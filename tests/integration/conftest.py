"""Fixtures for the operator's integration tests: CRDs, storage, the kubelet stand-in, Prometheus, the operator.

These modules run on kwok nodes, with trainer and server pods played by the kubelet stand-in
(tests/support/kubelet.py) and the operator as a host process; what a real container proves (the
image, the restricted pod, the shipped Deployment cluster-wide in two namespaces, ClusterIP routing
and a canary's share through kube-proxy, discovery, the model card) is in tests/e2e/test_real_node.py,
and the modules that needed no fault on cue moved whole to the node: the hyperparameter search,
`kubectl modelops`, autoscaling, imports, S3 storage, governance, canaries and champion comparison
(tests/e2e/test_real_node_*.py), as did the operator's lifecycle as its ServiceAccount (every 403
read from its log) and the two namespaces' series kept apart in Prometheus.
Why each module stays here:
- test_admission: no pods at all; CRD schema and CEL rules on the real API server.
- test_webhook: no model pods; the API server calls the operator's webhook at a URL on this host.
- test_cluster: tests the kwok cluster itself (held pods finished by annotation).
- test_install: dry runs and `auth can-i`, no pods.
- test_chart_install: the Helm chart's objects installed, upgraded and removed; its operator pod
  only has to be admitted.
- test_s3_storage: no cluster at all; the trainer, server and clean-up entry points against SeaweedFS.
- test_controller: 100 Serving versions at once, an API server outage through a proxy, a failed
  Job on cue, two operators on one peering object with one of them frozen.
- test_modelversion: faults on cue (a trainer exit and message chosen by the test, a server held
  never-ready, a tampered artifact), the operator SIGKILLed at random points, racing promotions.
  A trainer failing on a missing dataset and a model below its gate also run in real containers
  (tests/e2e/test_real_node.py), where the kubelet records the reason as the termination message.
- test_retrainpolicy: drift and decay over minutes of shifted traffic and 20+ evaluations, the
  operator SIGKILLed between deciding and creating, several retrains per test.
- test_prometheus_faults: malformed and trickling answers from a misbehaving Prometheus stand-in.
- test_dashboard: no pods; PromQL validity against the real Prometheus.
- test_s3_modelversion: a tampered artifact, which needs the version's server held back until the
  test has changed the object (a real container would load the genuine file first).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support.kubelet import Kubelet, local_persistent_volume
from tests.support.operator import OperatorProcess
from tests.support.prometheus import PrometheusServer
from tests.support.versions import ModelVersions
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "modelops.dev", "v1alpha1"


def kubectl(
    kubeconfig: str, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args], input=input, capture_output=True, text=True
    )
    if check and out.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    return out


@pytest.fixture
def trainer_role(cluster: Any) -> str:
    """The trainer's ClusterRole from the install manifests, bound per namespace as users do.

    Applied for every test (idempotent): another test's clean-up may remove the installed one.
    """
    kubectl(
        str(cluster.kubeconfig),
        "apply",
        "--server-side",
        "-f",
        str(ROOT / "manifests/base/rbac/trainer.yaml"),
    )
    return "modelops-trainer"


@pytest.fixture(scope="session")
def crds(cluster: Any) -> None:
    """The CRDs applied and Established. The wait is retried: once, in a CI run, `kubectl wait`
    exited 1 although both of its watches had ended on the condition (the audit log), and this
    session fixture's one failure errored all 137 tests that use it."""
    kubectl(str(cluster.kubeconfig), "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))

    def established() -> bool:
        out = kubectl(
            str(cluster.kubeconfig),
            "wait",
            "--for=condition=Established",
            "--timeout=20s",
            "crd/modelversions.modelops.dev",
            "crd/retrainpolicies.modelops.dev",
            check=False,
        )
        assert out.returncode == 0, f"kubectl wait: {out.stdout}{out.stderr}"
        return True

    eventually(established, timeout=90, interval=1, what="the CRDs to be Established")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus")).start()
    yield server
    server.stop()


def provide_storage(api_client: client.ApiClient, namespace: str, folder: Path, trainer_role: str) -> str:
    """What a model namespace needs before training: the artifact claim, bound to a hostPath PV
    in `folder`, and the trainer's ServiceAccount bound to its ClusterRole. Returns the claim name;
    the PV (cluster-scoped, named artifacts-<namespace>) is the caller's to delete."""
    core = client.CoreV1Api(api_client)
    pv = f"artifacts-{namespace}"
    core.create_persistent_volume(local_persistent_volume(pv, namespace, "modelops-artifacts", folder))
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "modelops-artifacts"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": pv,
                "storageClassName": "",
            },
        },
    )
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "modelops-trainer"}})
    client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "modelops-trainer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": trainer_role},
            "subjects": [{"kind": "ServiceAccount", "name": "modelops-trainer", "namespace": namespace}],
        },
    )
    eventually(
        lambda: (
            core.read_namespaced_persistent_volume_claim("modelops-artifacts", namespace).status.phase
            == "Bound"
        ),
        timeout=30,
        what="the artifact claim to bind",
    )
    return "modelops-artifacts"


@pytest.fixture
def storage(namespace: str, api_client: client.ApiClient, tmp_path: Path, trainer_role: str) -> str:
    """The artifact claim, bound to a hostPath PV, and the trainer's ServiceAccount."""
    yield provide_storage(api_client, namespace, tmp_path / "pv", trainer_role)
    with contextlib.suppress(client.ApiException):
        client.CoreV1Api(api_client).delete_persistent_volume(f"artifacts-{namespace}")


@pytest.fixture
def kubelet(
    namespace: str,
    api_client: client.ApiClient,
    cluster: Any,
    tmp_path: Path,
    prometheus: PrometheusServer,
    storage: str,
) -> Iterator[Kubelet]:
    k = Kubelet(
        api_client,
        namespace,
        str(cluster.kubeconfig),
        tmp_path / "kubelet",
        on_targets=prometheus.set_targets,
    ).start()
    yield k
    k.stop()
    prometheus.set_targets(namespace, [])


@pytest.fixture
def operator(
    request: pytest.FixtureRequest,
    namespace: str,
    cluster: Any,
    crds: None,
    tmp_path: Path,
    prometheus: PrometheusServer,
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        str(cluster.kubeconfig), namespace, tmp_path, MODELOPS_PROMETHEUS_URL=prometheus.url
    ).start()
    yield op
    op.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n----- operator log ({op.log}) -----\n{op.tail(120)}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def mvs(api_client: client.ApiClient, namespace: str, cluster: Any, crds: None) -> ModelVersions:
    return ModelVersions(api_client, namespace, str(cluster.kubeconfig))
