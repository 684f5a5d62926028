"""Every pod real: a ModelVersion trained by a trainer Job and served by a server Deployment whose
pods run as containers of the project's own image on a real node (kubelet + containerd + runc +
CNI bridge + kube-proxy, tests/cluster/node.py), with no kwok and no stand-in in the way.

One cluster for the module (node start ≈ 20-40 s warm); the last test stops it and checks that
nothing was left on the host. The operator runs as a host process here (the Kopf side is covered
elsewhere); what this module proves is what breaks on a first install: the image, the restricted
securityContext, the SA token and PV as uid 65532, Service routing and Prometheus discovery.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config

from tests.cluster.localcluster import LocalCluster
from tests.cluster.node import NODE_NAME, leftovers, read_sysctls
from tests.helpers import wait_for
from tests.support.kubelet import local_persistent_volume
from tests.support.operator import OperatorProcess
from tests.support.prometheus import (
    PrometheusServer,
    kubernetes_sd,
    kubernetes_sd_prometheus,
    shipped_podmonitor,
)
from tests.support.wait import eventually

# Module fixtures (node start, image import, training) count against the first test's timeout.
pytestmark = [pytest.mark.cluster, pytest.mark.real_node, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "modelops.dev", "v1alpha1"
NS = "real-node"
RUN_AS = 65532
SERVING_TIMEOUT = 480.0
"""Generous: under load a cold container start plus training can take minutes on 2 shared cores."""
IRIS = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


def _skip_reason() -> str | None:
    if os.environ.get("MODELOPS_REAL_NODE") == "0":
        return "MODELOPS_REAL_NODE=0"
    if os.geteuid() != 0:
        return "a real node needs root (kubelet, containerd, iptables, mounts)"
    missing = [
        t for t in ("containerd", "ctr", "runc", "buildah", "debootstrap", "iptables") if not shutil.which(t)
    ]
    if missing or not Path("/usr/lib/cni/bridge").exists():
        return f"missing {missing or 'containernetworking-plugins'}: run make deps"
    return None


if reason := _skip_reason():
    pytestmark.append(pytest.mark.skip(reason=reason))


def kubectl(
    kubeconfig: Path, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "--request-timeout=60s", *args],
        input=input,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


@pytest.fixture(scope="module")
def sysctls_before() -> dict[str, str]:
    return read_sysctls()


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory, sysctls_before: dict[str, str]) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("real-node-cluster"), real_node=True, start_timeout=300)
    cluster.start()
    print(f"real node up in {cluster.startup_seconds:.1f}s: {cluster.node.timings if cluster.node else {}}")
    yield cluster
    cluster.stop(keep=True)


@pytest.fixture(scope="module")
def api(real: LocalCluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(real.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def project_image(real: LocalCluster) -> str:
    assert real.node is not None
    return real.node.images["project"].tag


@pytest.fixture(scope="module")
def installed(real: LocalCluster, api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    """CRDs, a namespace enforcing the restricted Pod Security profile, the trainer's RBAC and an
    artifact PV owned by uid 65532 (hostPath volumes get no fsGroup), as an admin would set up."""
    kc = real.kubeconfig
    kubectl(kc, "apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl(kc, "wait", "--for=condition=Established", "--timeout=60s", "crd/modelversions.modelops.dev")
    kubectl(kc, "apply", "--server-side", "-f", str(ROOT / "manifests/base/rbac/trainer.yaml"))
    core = client.CoreV1Api(api)
    core.create_namespace(
        {"metadata": {"name": NS, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    folder = tmp_path_factory.mktemp("real-pv")
    os.chown(folder, RUN_AS, RUN_AS)
    folder.parent.chmod(0o755)
    core.create_persistent_volume(
        local_persistent_volume(f"artifacts-{NS}", NS, "modelops-artifacts", folder)
    )
    core.create_namespaced_persistent_volume_claim(
        NS,
        {
            "metadata": {"name": "modelops-artifacts"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": f"artifacts-{NS}",
                "storageClassName": "",
            },
        },
    )
    core.create_namespaced_service_account(NS, {"metadata": {"name": "modelops-trainer"}})
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        NS,
        {
            "metadata": {"name": "modelops-trainer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "modelops-trainer",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "modelops-trainer", "namespace": NS}],
        },
    )
    wait_for(
        lambda: core.read_namespaced_service_account("default", NS),
        timeout=60,
        message="the namespace's default ServiceAccount",
        ignore=(client.ApiException,),
    )
    return str(folder)


@pytest.fixture(scope="module")
def operator(
    real: LocalCluster, installed: str, project_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        str(real.kubeconfig),
        NS,
        tmp_path_factory.mktemp("real-operator"),
        MODELOPS_IMAGE=project_image,
        MODELOPS_IMAGE_PULL_POLICY="Never",  # nothing can be pulled here: the image was imported
    ).start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def serving(real: LocalCluster, api: client.ApiClient, operator: OperatorProcess) -> dict[str, Any]:
    """iris-v1 applied, trained by a real Job pod and served by a real server pod."""
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        "modelversions",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelVersion",
            "metadata": {"name": "iris-v1"},
            "spec": {
                "model": "iris",
                "training": {
                    "dataset": {"uri": "sklearn:iris"},
                    "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
                },
                "validation": {"gates": [{"metric": "accuracy", "min": 0.8}]},
                "serving": {"drainSeconds": 0},
            },
        },
    )

    def status() -> dict[str, Any]:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, NS, "modelversions", "iris-v1")
        return obj.get("status") or {}

    try:
        return eventually(
            lambda: (st := status()).get("phase") == "Serving" and st,
            timeout=SERVING_TIMEOUT,
            what="iris-v1 Serving on the real node",
        )
    except AssertionError:
        print(kubectl(real.kubeconfig, "-n", NS, "get", "pods,jobs,events", "-o", "wide", check=False).stdout)
        print(f"----- operator log -----\n{operator.tail(100)}")
        raise


def server_pod(api: client.ApiClient) -> client.V1Pod:
    pods = (
        client.CoreV1Api(api)
        .list_namespaced_pod(NS, label_selector="app.kubernetes.io/component=server")
        .items
    )
    running = [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    assert running, [(p.metadata.name, p.status.phase) for p in pods]
    return running[0]


def test_node_is_the_only_node_and_runs_the_imported_images(
    real: LocalCluster, api: client.ApiClient
) -> None:
    assert real.node is not None
    nodes = client.CoreV1Api(api).list_node().items
    assert [n.metadata.name for n in nodes] == [NODE_NAME]
    info = nodes[0].status.node_info
    assert info.container_runtime_version.startswith("containerd://"), info
    out = subprocess.run(
        real.node._ctr("images", "ls", "-q"), capture_output=True, text=True, check=True
    ).stdout
    for name in ("pause", "project"):
        assert real.node.images[name].tag in out.split(), out


def test_modelversion_trained_and_served_by_real_containers(
    real: LocalCluster, api: client.ApiClient, serving: dict[str, Any], installed: str, project_image: str
) -> None:
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    job = batch.read_namespaced_job("iris-v1-train", NS)
    assert job.status.succeeded == 1
    trainers = core.list_namespaced_pod(NS, label_selector="job-name=iris-v1-train").items
    assert trainers and all(p.spec.node_name == NODE_NAME for p in trainers)
    done = [p for p in trainers if p.status.phase == "Succeeded"]
    assert done, [(p.metadata.name, p.status.phase) for p in trainers]
    assert done[0].status.container_statuses[0].image_id, "a container ran from the imported image"
    # The artifact was written to the real PV by uid 65532, and is the one the status names.
    sha = serving["training"]["artifact"]["sha256"]
    artifacts = list(Path(installed).rglob("model.skops"))
    assert artifacts, list(Path(installed).rglob("*"))
    assert artifacts[0].stat().st_uid == RUN_AS
    assert hashlib.sha256(artifacts[0].read_bytes()).hexdigest() == sha
    pod = server_pod(api)
    assert pod.spec.node_name == NODE_NAME
    assert pod.spec.containers[0].image == project_image
    assert all(cs.ready for cs in pod.status.container_statuses), "readiness probe passed in the container"


def test_exec_into_server_shows_uid_65532_and_read_only_root(
    real: LocalCluster, api: client.ApiClient, serving: dict[str, Any]
) -> None:
    pod = server_pod(api).metadata.name
    script = (
        "import os, errno\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n    open('/probe', 'w')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'Seccomp:'))])\n"
    )
    out = kubectl(real.kubeconfig, "-n", NS, "exec", pod, "--", "python", "-c", script).stdout.split("\n")
    assert out[0] == f"{RUN_AS} {RUN_AS}", out
    assert out[1] == "EROFS", out  # read-only root filesystem
    assert out[2] == "['0000000000000000', '2']", out  # no capabilities, seccomp filter (RuntimeDefault)


def test_service_cluster_ip_routes_to_the_server_pod(api: client.ApiClient, serving: dict[str, Any]) -> None:
    svc = client.CoreV1Api(api).read_namespaced_service("iris-v1-server", NS)
    ip, port = svc.spec.cluster_ip, svc.spec.ports[0].port

    def predict() -> dict[str, Any] | None:
        try:
            r = httpx.post(f"http://{ip}:{port}/predict", json={"instances": [IRIS]}, timeout=5)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    # kube-proxy syncs its rules a moment after the endpoints change: poll.
    body = eventually(predict, timeout=60, what=f"POST /predict through ClusterIP {ip}:{port}")
    assert body["predictions"], body


def test_prometheus_scrapes_the_server_pod_found_by_kubernetes_sd(
    real: LocalCluster, api: client.ApiClient, serving: dict[str, Any], tmp_path: Path
) -> None:
    pod = server_pod(api).metadata.name
    prom = PrometheusServer(
        tmp_path / "prometheus",
        discovery=kubernetes_sd(real.kubeconfig, [NS]),
        binary=kubernetes_sd_prometheus(),
    ).start()
    try:

        def up() -> list[Any] | None:
            r = httpx.get(f"{prom.url}/api/v1/query", params={"query": f'up{{pod="{pod}"}} == 1'}, timeout=5)
            return r.json()["data"]["result"] or None

        result = eventually(up, timeout=90, what=f"Prometheus to scrape {pod} found by kubernetes_sd")
        labels = result[0]["metric"]
        # The shipped PodMonitor's relabelling, applied to what kubernetes_sd found.
        pm = shipped_podmonitor()["metadata"]
        assert labels["namespace"] == NS and labels["container"] == "server", labels
        assert labels["job"] == f"{pm['namespace']}/{pm['name']}" and labels["endpoint"] == "http", labels
        # The scrape carried the server's own series, not just a reachable port.
        query = f'count({{__name__=~"modelops_.+", pod="{pod}"}}) > 0'
        eventually(
            lambda: httpx.get(f"{prom.url}/api/v1/query", params={"query": query}, timeout=5).json()["data"][
                "result"
            ],
            timeout=30,
            what="the server's modelops_* series in Prometheus",
        )
    finally:
        prom.stop()


class OperatorCrashed(AssertionError):
    """The operator's container exited: its log says why."""


def test_operator_deployed_from_manifests_serves_a_model(
    real: LocalCluster,
    api: client.ApiClient,
    project_image: str,
    operator: OperatorProcess,
    serving: dict[str, Any],
) -> None:
    """The install as users apply it (ServiceAccount, RBAC, restricted Deployment, args as shipped),
    only the image swapped for the one built here; it then takes over the namespace's models."""
    operator.stop()  # one operator per namespace: the host process hands over
    rendered = kubectl(real.kubeconfig, "kustomize", str(ROOT / "manifests/base")).stdout
    kubectl(
        real.kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input=rendered.replace("ghcr.io/modelops/modelops:0.1.0", project_image),
    )
    core = client.CoreV1Api(api)

    def operator_ready() -> bool:
        pods = core.list_namespaced_pod(
            "modelops-system", label_selector="app.kubernetes.io/component=operator"
        ).items
        for pod in pods:
            for cs in pod.status.container_statuses or []:
                if cs.restart_count or (cs.state and cs.state.terminated):
                    logs = kubectl(
                        real.kubeconfig,
                        "-n",
                        "modelops-system",
                        "logs",
                        pod.metadata.name,
                        "--tail=15",
                        check=False,
                    )
                    raise OperatorCrashed(f"{pod.metadata.name} exited:\n{logs.stdout[-3000:]}")
                if cs.ready:
                    assert pod.spec.node_name == NODE_NAME
                    return True
        return False

    wait_for(operator_ready, timeout=300, message="the operator Deployment Ready", ignore=())
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        "modelversions",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelVersion",
            "metadata": {"name": "flowers-v1"},
            "spec": {
                "model": "flowers",
                "training": {
                    "dataset": {"uri": "sklearn:iris"},
                    "estimator": {"class": "LogisticRegression", "params": {"max_iter": 500}},
                },
                "serving": {"drainSeconds": 0},
            },
        },
    )
    eventually(
        lambda: (
            (
                custom.get_namespaced_custom_object(GROUP, VERSION, NS, "modelversions", "flowers-v1").get(
                    "status"
                )
                or {}
            ).get("phase")
            == "Serving"
        ),
        timeout=SERVING_TIMEOUT,
        what="flowers-v1 Serving, driven by the operator pod",
    )


def test_teardown_leaves_nothing_behind(real: LocalCluster, sysctls_before: dict[str, str]) -> None:
    real.stop(keep=True)
    assert real.node is not None
    print(f"teardown took {real.node.timings.get('teardown', 0):.1f}s")
    found = leftovers(sysctls_before)
    assert not any(found.values()), found
