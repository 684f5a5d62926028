"""What the real-node suites (tests/e2e/test_real_node*.py) share: the cluster as `make cluster-up
REAL_NODE=1` leaves it, kubectl against it, a model namespace set up as examples/iris does, and
waits on a version's status that print what the cluster and the operator say when they time out.

The fixtures that start the node, install the operator and give each module its namespace are in
tests/e2e/conftest.py, one node for the whole session; the teardown test, which stops it and checks that nothing was left on the
host, is moved to the end of the run there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.cluster.node import RUN_DIR, Image
from tests.support.kubelet import local_persistent_volume
from tests.support.operator import OperatorDeployment
from tests.support.servers import cluster_address
from tests.support.versions import ModelVersions
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "modelops.dev", "v1alpha1"
NS = "real-node"
"""The namespace of examples/iris on the node (test_real_node's)."""
RUN_AS = 65532
SERVING_TIMEOUT = 480.0
"""Generous: under load a cold container start plus training can take minutes on 2 shared cores."""


def skip_reason() -> str | None:
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


def marks() -> list[pytest.MarkDecorator]:
    """A real-node module's pytestmark. Its timeout is the first test's, which pays for the
    session's node start, image import, operator install and first training."""
    found = [pytest.mark.cluster, pytest.mark.real_node, pytest.mark.timeout(1200)]
    if reason := skip_reason():
        found.append(pytest.mark.skip(reason=reason))
    return found


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


def cluster_cli(command: str, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m tests.cluster`, which `make cluster-up` / `make cluster-down` run."""
    return subprocess.run(
        [sys.executable, "-m", "tests.cluster", command, "--dir", str(directory), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )


@dataclass
class Cluster:
    """A detached local cluster with a real node, as `make cluster-up REAL_NODE=1` leaves it."""

    directory: Path
    images: dict[str, Image]

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    def ctr(self, *args: str) -> list[str]:
        return ["ctr", f"--address={RUN_DIR / 'containerd' / 'containerd.sock'}", "--namespace=k8s.io", *args]

    def down(self) -> subprocess.CompletedProcess[str]:
        return cluster_cli("down", self.directory)


def operator_log(real: Cluster, tail: int = 60) -> str:
    return OperatorDeployment(real.kubeconfig, "").tail(tail)


@contextlib.contextmanager
def model_namespace(real: Cluster, api: client.ApiClient, ns: str, folder: Path) -> Iterator[Path]:
    """A model namespace set up as examples/iris does (its claim, the trainer's ServiceAccount and
    RoleBinding), enforcing the restricted Pod Security profile, with a hostPath PV pre-bound to the
    claim (no provisioner here) whose folder belongs to uid 65532 (hostPath volumes get no fsGroup).
    The example's RetrainPolicy is left out: it would query an in-cluster Prometheus there is not.

    On exit the namespace and its PV are deleted and waited for, so that the next module's pods
    find the node's CPU free: each module's servers request some, and the node has 2 cores."""
    core = client.CoreV1Api(api)
    core.create_namespace(
        {"metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    os.chown(folder, RUN_AS, RUN_AS)
    folder.parent.chmod(0o755)
    pv = f"artifacts-{ns}"
    core.create_persistent_volume(local_persistent_volume(pv, ns, "modelops-artifacts", folder))
    for name in ("artifacts-pvc.yaml", "trainer-rbac.yaml"):
        kubectl(real.kubeconfig, "apply", "--server-side", "-n", ns, "-f", str(ROOT / "examples/iris" / name))
    yield folder
    drop_namespace(api, ns)
    with contextlib.suppress(client.ApiException):
        core.delete_persistent_volume(pv)


def on_claim(store: Path, name: str, frame: Any) -> str:
    """`frame` (a DataFrame) as a CSV in data/ on a namespace's artifact claim, whose host folder is
    `store`, owned by the containers' uid; its URI as a version's spec names it."""
    folder = store / "data"
    folder.mkdir(exist_ok=True)
    path = folder / name
    frame.to_csv(path, index=False)
    for p in (folder, path):
        os.chown(p, RUN_AS, RUN_AS)
    return f"pvc://modelops-artifacts/data/{name}"


def drop_namespace(api: client.ApiClient, ns: str, timeout: float = 240) -> None:
    """Delete `ns` and wait until it is gone: its pods stopped and every finalizer let go."""
    core = client.CoreV1Api(api)
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(ns)

    def gone() -> bool:
        try:
            core.read_namespace(ns)
        except client.ApiException as e:
            return e.status == 404
        return False

    eventually(gone, timeout=timeout, what=f"namespace {ns} to be deleted")


def example_version(name: str) -> dict[str, Any]:
    """examples/iris/modelversion.yaml under another name; drainSeconds 0 so that a superseded
    champion scales down at once instead of after the default 30 s."""
    mv = yaml.safe_load((ROOT / "examples/iris/modelversion.yaml").read_text())
    mv["metadata"]["name"] = name
    mv["spec"]["serving"]["drainSeconds"] = 0
    return mv


def explain(real: Cluster, ns: str) -> None:
    """What the cluster and the operator pod say, printed when a wait on the node times out."""
    print(kubectl(real.kubeconfig, "-n", ns, "get", "mv,pods,jobs,events", "-o", "wide", check=False).stdout)
    print(f"----- operator log -----\n{operator_log(real)}")


def status(api: client.ApiClient, name: str, ns: str = NS) -> dict[str, Any]:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, "modelversions", name)
    return obj.get("status") or {}


def wait_status(
    real: Cluster, api: client.ApiClient, name: str, check: Any, what: str, ns: str = NS
) -> dict[str, Any]:
    """Poll `name`'s status until `check(status)`; on timeout print what the cluster and operator say."""
    try:
        return eventually(
            lambda: (st := status(api, name, ns)) and check(st) and st, timeout=SERVING_TIMEOUT, what=what
        )
    except AssertionError:
        explain(real, ns)
        raise


class Versions(ModelVersions):
    """The ModelVersions of one namespace on the node, as tests/integration's `mvs`; a wait that
    times out also prints what the cluster and the operator pod say."""

    wait_timeout = SERVING_TIMEOUT

    def __init__(self, real: Cluster, api: client.ApiClient, ns: str) -> None:
        super().__init__(api, ns, str(real.kubeconfig))
        self.real, self.api = real, api

    def wait_phase(self, name: str, *phases: str, timeout: float | None = None) -> dict[str, Any]:
        try:
            return super().wait_phase(name, *phases, timeout=timeout)
        except AssertionError:
            explain(self.real, self.ns)
            raise

    def url(self, service: str) -> str:
        """The Service's ClusterIP and first port, which kube-proxy routes from this host."""
        ip, port = cluster_address(self.api, self.ns, service)
        return f"http://{ip}:{port}"

    def jobs(self) -> dict[str, Any]:
        return {j.metadata.name: j for j in self.batch.list_namespaced_job(self.ns).items}

    def pods(self, selector: str) -> list[Any]:
        return self.core.list_namespaced_pod(self.ns, label_selector=selector).items
