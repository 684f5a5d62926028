"""The operator as a real process (`modelops run`), so tests can SIGKILL and restart it; or, on a real
node, installed from manifests/ and running as the shipped Deployment's pod."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.cluster.localcluster import _die_with_parent

from .kubelet import free_port


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        logdir: Path,
        *,
        args: tuple[str, ...] = ("--standalone",),
        **env: str,
    ) -> None:
        """`args`: `modelops run`'s own beside `--namespace` (e.g. `--peering=…`); `env`: settings."""
        self.kubeconfig, self.namespace, self.logdir = kubeconfig, namespace, logdir
        self.args, self.env = args, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.metrics_port = free_port()

    @property
    def log(self) -> Path:
        return self.logdir / f"operator-{self.namespace}.log"

    def start(self) -> OperatorProcess:
        self.runs += 1
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "MODELOPS_METRICS_PORT": str(self.metrics_port),
            "MODELOPS_IMAGE": "modelops:test",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        fh = self.log.open("ab")
        fh.write(f"\n===== operator run {self.runs} =====\n".encode())
        fh.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelops.cli", "run", *self.args, "--namespace", self.namespace],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # started from the main thread: dies with the test process
        )
        return self

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Its /metrics as (name, sorted labels) → value, read with prometheus_client's parser."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def freeze(self) -> None:
        """SIGSTOP: alive to the API server (its leases and peering records) but doing nothing."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no clean-up, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout: float) -> float | None:
        """SIGTERM, as the kubelet stops a pod: the seconds it took to exit, None if it had not
        within `timeout`."""
        if not self.proc or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGTERM)
        os.killpg(self.proc.pid, signal.SIGCONT)  # a frozen one handles it too
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.terminate(15) is None:
            self.kill()

    def tail(self, lines: int = 80) -> str:
        return (
            "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
        )


ROOT = Path(__file__).resolve().parents[2]
SHIPPED_IMAGE = "ghcr.io/modelops/modelops:0.1.0"
OPERATOR_NS = "modelops-system"


class OperatorCrashed(AssertionError):
    """The operator's container exited: its log says why."""


class OperatorDeployment:
    """The install as users apply it (`kubectl apply --server-side -k manifests/`: CRDs, namespace,
    ServiceAccount, RBAC, settings, the restricted Deployment), with only the image swapped for the
    one built here, as manifests/kustomization.yaml tells users to, and `settings` over the ConfigMap's."""

    log = f"kubectl -n {OPERATOR_NS} logs deploy/modelops-operator"

    def __init__(self, kubeconfig: Path, image: str, **settings: str) -> None:
        self.kubeconfig, self.image, self.settings = kubeconfig, image, settings

    def _kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        out = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", "--request-timeout=60s", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {out.stderr.strip()}")
        return out.stdout

    def rendered(self) -> list[dict[str, Any]]:
        text = self._kubectl("kustomize", str(ROOT / "manifests"))
        assert text.count(SHIPPED_IMAGE) == 2, "the Deployment's image and MODELOPS_IMAGE in the settings"
        docs = [d for d in yaml.safe_load_all(text.replace(SHIPPED_IMAGE, self.image)) if d]
        (settings,) = [
            d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "modelops-settings"
        ]
        unknown = set(self.settings) - set(settings["data"])
        assert not unknown, f"not settings of the shipped ConfigMap: {unknown}"
        settings["data"].update(self.settings)
        return docs

    def install(self) -> OperatorDeployment:
        self._kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(self.rendered()))
        return self

    def wait_ready(self, api: client.ApiClient, timeout: float = 300) -> client.V1Pod:
        """The operator pod Ready; a restart or exit fails at once with the container's last words."""
        core = client.CoreV1Api(api)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = core.list_namespaced_pod(
                OPERATOR_NS, label_selector="app.kubernetes.io/component=operator"
            )
            for pod in pods.items:
                for cs in pod.status.container_statuses or []:
                    if cs.restart_count or (cs.state and cs.state.terminated):
                        raise OperatorCrashed(f"{pod.metadata.name} exited:\n{self.tail(30)}")
                    if cs.ready:
                        return pod
            time.sleep(1)
        raise TimeoutError(f"the operator Deployment not Ready in {timeout:.0f}s:\n{self.tail(30)}")

    def tail(self, lines: int = 80) -> str:
        return self._kubectl(
            "-n",
            OPERATOR_NS,
            "logs",
            "deploy/modelops-operator",
            f"--tail={lines}",
            "--all-containers",
            check=False,
        )

    def stop(self) -> None:
        """Nothing to do: the pod goes with the node (drained at teardown)."""
