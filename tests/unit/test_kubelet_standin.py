"""The kubelet stand-in maps the container's paths into a per-pod root, and only those."""

import sys
from pathlib import Path
from types import SimpleNamespace

from tests.support.kubelet import Kubelet

ROOT = Path("/scratch/pod/root")
MOUNTS = {
    "/": ROOT,
    "/artifacts": ROOT / "artifacts",
    "/tmp": ROOT / "tmp",
    "/mnt/pvc/data": ROOT / "mnt/pvc/data",
}


def test_paths_at_under_and_above_mounts_go_into_the_pod_root():
    assert Kubelet._map("/artifacts", MOUNTS) == f"{ROOT}/artifacts"
    assert Kubelet._map("/artifacts/iris/v1", MOUNTS) == f"{ROOT}/artifacts/iris/v1"
    assert Kubelet._map("/mnt/pvc", MOUNTS) == f"{ROOT}/mnt/pvc"  # a parent of a mount (MODELOPS_PVC_ROOT)
    assert Kubelet._map("/etc/hosts", MOUNTS) == "/etc/hosts"
    assert Kubelet._map("relative/path", MOUNTS) == "relative/path"
    assert Kubelet._map("/artifactsX", MOUNTS) == "/artifactsX"


def test_the_host_interpreter_is_never_remapped_even_under_a_mounted_path(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/tmp/clone/.venv/bin/python")
    k = object.__new__(Kubelet)
    k.kubeconfig = "/kc"
    k.workdir = Path("/work")
    k.pod_identity = False
    container = SimpleNamespace(command=["modelops", "train"], args=["--store", "/artifacts"], env=[])
    pod = SimpleNamespace(spec=SimpleNamespace(service_account_name=None))
    argv, _ = k._environment(pod, container, MOUNTS)
    assert argv[:3] == ["/tmp/clone/.venv/bin/python", "-m", "modelops.cli"]
    assert argv[3:] == ["train", "--store", f"{ROOT}/artifacts"]
