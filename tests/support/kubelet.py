"""A stand-in for the kubelet's part in the simulated cluster.

kwok moves pods through their phases but runs nothing. For pods the operator made,
kwok holds them (see tests/cluster/kwok) until this stand-in has run the real program
with exactly the container's command, arguments and environment, with volume mount
paths mapped onto local folders, and annotated the pod with the outcome: a trainer's
exit code and termination message, a server's readiness or crash.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client

HOLD_LABEL = "app.kubernetes.io/managed-by"
RESULT = "sim.modelops.dev/result"
READY = "sim.modelops.dev/ready"
EXIT_CODE = "sim.modelops.dev/exit-code"
MESSAGE = "sim.modelops.dev/message"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProc:
    pod: str
    version: str
    model: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Kubelet:
    api: client.ApiClient
    namespace: str
    kubeconfig: str
    workdir: Path
    servers: dict[str, ServerProc] = field(default_factory=dict)
    hold_servers: set[str] = field(default_factory=set)
    starting: dict[str, ServerProc] = field(default_factory=dict)
    """Servers whose process runs but has not answered its readiness probe yet."""
    trainings: list[str] = field(default_factory=list)
    on_targets: Any = None
    pod_identity: bool = True
    """Run containers as their pod's ServiceAccount (a bound token), as a kubelet would project it."""

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.volumes = self.workdir / "volumes"
        self.volumes.mkdir(parents=True, exist_ok=True)
        self._started: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"kubelet-{self.namespace}", daemon=True)
        self._lock = threading.Lock()
        self._publishing = threading.Lock()
        """One publication of the targets at a time: two servers ready at once both publish."""
        self._jobs: set[subprocess.Popen[str]] = set()

    def volume(self, claim: str) -> Path:
        path = self.volumes / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> Kubelet:
        atexit.register(self.stop)  # server processes must not outlive an interrupted run
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set() and not self.servers and not self._jobs:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        for s in [*self.servers.values(), *self.starting.values()]:
            self._kill(s)
        self.servers.clear()
        with self._lock:
            jobs = list(self._jobs)
        for proc in jobs:  # a training run outliving its test would write into the next one's volumes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as e:  # keep playing the kubelet; the test's assertions report failures
                print(f"kubelet stand-in: {type(e).__name__}: {e}", file=sys.stderr)
            self._stop.wait(0.3)

    def _sync(self) -> None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{HOLD_LABEL}=modelops").items
        alive = set()
        for pod in pods:
            name = pod.metadata.name
            component = (pod.metadata.labels or {}).get("app.kubernetes.io/component")
            if pod.metadata.deletion_timestamp:
                continue
            alive.add(name)
            if name in self._started or pod.spec.node_name is None:
                continue
            if component != "server":
                self._started.add(name)
                threading.Thread(target=self._run_to_completion, args=(pod,), daemon=True).start()
            else:
                if (pod.metadata.labels or {}).get("modelops.dev/version") in self.hold_servers:
                    continue
                self._started.add(name)
                threading.Thread(target=self._run_server, args=(pod,), daemon=True).start()
        with self._lock:
            gone = [p for p in self.servers if p not in alive]
            unborn = [s for p, s in self.starting.items() if p not in alive]
        for p in gone:
            self._kill(self.servers.pop(p))
            self._publish_targets()
        for s in unborn:  # deleted before it was ready: its probe loop ends when the process does
            self._kill(s)

    # --- running containers -------------------------------------------------------------------
    def _environment(
        self, pod: Any, container: Any, mounts: dict[str, Path]
    ) -> tuple[list[str], dict[str, str]]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "KUBECONFIG": self._identity(pod, mounts["/"].parent),
            "PYTHONUNBUFFERED": "1",
        }
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = self._map(var.value, mounts)
            elif var.value_from and var.value_from.field_ref:
                env[var.name] = self._field(pod, var.value_from.field_ref.field_path)
            elif var.value_from and var.value_from.secret_key_ref:
                env[var.name] = self._secret(pod, var.value_from.secret_key_ref)
        # Map the container's own paths first; the host's interpreter (which may live under a path
        # the pod also mounts, such as /tmp) is substituted afterwards and never remapped.
        argv = [self._map(a, mounts) for a in [*(container.command or []), *(container.args or [])]]
        if argv and argv[0] == "modelops":
            argv = [sys.executable, "-m", "modelops.cli", *argv[1:]]
        return argv, env

    def _identity(self, pod: Any, scratch: Path) -> str:
        """A kubeconfig with a token for the pod's ServiceAccount, bound to the pod, so RBAC is real."""
        sa = pod.spec.service_account_name
        if not self.pod_identity or not sa or pod.spec.automount_service_account_token is False:
            return str(scratch / "no-credentials")  # like a pod without a token: no API access
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod.metadata.name,
                    "uid": pod.metadata.uid,
                },
            },
        }
        token = self.core.create_namespaced_service_account_token(
            sa, pod.metadata.namespace, request
        ).status.token
        admin = yaml.safe_load(Path(self.kubeconfig).read_text())
        cluster = admin["clusters"][0]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [
                {
                    "name": sa,
                    "context": {"cluster": cluster["name"], "user": sa, "namespace": pod.metadata.namespace},
                }
            ],
            "current-context": sa,
        }
        path = scratch / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    def _secret(self, pod: Any, ref: Any) -> str:
        """A secretKeyRef as the kubelet resolves it (a missing Secret or key fails the container)."""
        import base64

        secret = self.core.read_namespaced_secret(ref.name, pod.metadata.namespace)
        data = secret.data or {}
        if ref.key not in data:
            raise ValueError(f"secret {ref.name} has no key {ref.key}")
        return base64.b64decode(data[ref.key]).decode()

    @staticmethod
    def _field(pod: Any, path: str) -> str:
        if path == "metadata.namespace":
            return pod.metadata.namespace
        if path == "metadata.name":
            return pod.metadata.name
        if path.startswith("metadata.labels['"):
            return (pod.metadata.labels or {}).get(path[len("metadata.labels['") : -2], "")
        if path.startswith("metadata.annotations['"):
            # The downward API, as an Indexed Job's JOB_COMPLETION_INDEX reads its index from the
            # annotation batch.kubernetes.io/job-completion-index the Job controller sets.
            return (pod.metadata.annotations or {}).get(path[len("metadata.annotations['") : -2], "")
        raise ValueError(f"the kubelet stand-in does not resolve fieldRef {path}")

    def _mounts(self, pod: Any, container: Any, scratch: Path) -> dict[str, Path]:
        """A per-pod root: each mount path is a link to its volume's folder, as the kubelet would bind it."""
        volumes = {v.name: v for v in pod.spec.volumes or []}
        root = scratch / "root"
        out: dict[str, Path] = {"/": root}
        for m in container.volume_mounts or []:
            v = volumes[m.name]
            if v.persistent_volume_claim:
                target = self.volume(v.persistent_volume_claim.claim_name)
                if m.sub_path:  # as the kubelet does: the sub-folder, created if missing
                    target = target / m.sub_path
                    target.mkdir(parents=True, exist_ok=True)
            else:
                target = scratch / m.name
                target.mkdir(parents=True, exist_ok=True)
            link = root / m.mount_path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target, target_is_directory=True)
            out[m.mount_path] = link
        return out

    @staticmethod
    def _map(value: str, mounts: dict[str, Path]) -> str:
        """Rewrite an absolute path at, under or above a mount into the pod's root."""
        if not value.startswith("/"):
            return value
        touches = any(
            value == m or value.startswith(m.rstrip("/") + "/") or m.startswith(value.rstrip("/") + "/")
            for m in mounts
            if m != "/"
        )
        return str(mounts["/"]) + value if touches else value

    def _annotate(self, pod: Any, annotations: dict[str, str]) -> None:
        """Report an outcome to kwok, until the API server takes it or the pod is gone: an answer lost
        to a loaded API server would leave the pod in its phase for good, as no kubelet would."""
        body = {"metadata": {"annotations": annotations}}
        while not self._stop.is_set():
            try:
                self.core.patch_namespaced_pod(pod.metadata.name, pod.metadata.namespace, body)
                return
            except client.ApiException as e:
                if e.status == 404:
                    return
                print(
                    f"kubelet stand-in: annotating {pod.metadata.name}: {e.status} {e.reason}",
                    file=sys.stderr,
                )
            except Exception as e:  # a timeout or a dropped connection
                print(f"kubelet stand-in: annotating {pod.metadata.name}: {e}", file=sys.stderr)
            self._stop.wait(1)

    def _run_to_completion(self, pod: Any) -> None:
        container = pod.spec.containers[0]
        scratch = Path(tempfile.mkdtemp(prefix="pod-", dir=self.workdir))
        mounts = self._mounts(pod, container, scratch)
        argv, env = self._environment(pod, container, mounts)
        term = scratch / "termination-log"
        env["MODELOPS_TERMINATION_LOG"] = str(term)
        component = (pod.metadata.labels or {}).get("app.kubernetes.io/component")
        if component == "trainer":
            self.trainings.append(pod.metadata.name)
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        with self._lock:
            self._jobs.add(proc)
        try:
            stdout, stderr = proc.communicate(timeout=600)
        finally:
            with self._lock:
                self._jobs.discard(proc)
        out = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
        (self.workdir / f"{pod.metadata.name}.log").write_text(out.stdout + out.stderr)
        if self._stop.is_set():
            return
        if out.returncode == 0:
            report = term.read_text().strip() if term.exists() else ""
            self._annotate(pod, {RESULT: "Succeeded", MESSAGE: report[:4000]})
        else:
            message = (
                term.read_text().strip()
                if term.exists()
                else (out.stderr.strip().splitlines() or ["failed"])[-1]
            )
            self._annotate(pod, {RESULT: "Failed", EXIT_CODE: str(out.returncode), MESSAGE: message[:1000]})

    def _run_server(self, pod: Any) -> None:
        container = pod.spec.containers[0]
        scratch = Path(tempfile.mkdtemp(prefix="pod-", dir=self.workdir))
        mounts = self._mounts(pod, container, scratch)
        argv, env = self._environment(pod, container, mounts)
        port = free_port()
        if "--port" in argv:
            argv[argv.index("--port") + 1] = str(port)
        argv += ["--host", "127.0.0.1"]
        term = scratch / "termination-log"
        env["MODELOPS_TERMINATION_LOG"] = str(term)
        log = self.workdir / f"{pod.metadata.name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                argv, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        labels = pod.metadata.labels or {}
        srv = ServerProc(
            pod.metadata.name,
            labels.get("modelops.dev/version", ""),
            labels.get("modelops.dev/model", ""),
            port,
            proc,
            log,
        )
        with self._lock:
            self.starting[pod.metadata.name] = srv
        try:
            self._probe_until_ready(pod, srv, term)
        finally:
            with self._lock:
                self.starting.pop(pod.metadata.name, None)

    def _probe_until_ready(self, pod: Any, srv: ServerProc, term: Path) -> None:
        """A readiness probe as the kubelet runs one: for as long as the container runs, however slow
        its start on a loaded machine (a deadline here once left a pod unready for good)."""
        proc, log = srv.proc, srv.log
        while not self._stop.is_set():
            if proc.poll() is not None:
                message = (
                    term.read_text().strip() if term.exists() else log.read_text().strip().splitlines()[-1:]
                )
                self._annotate(
                    pod, {RESULT: "Failed", EXIT_CODE: str(proc.returncode), MESSAGE: str(message)[:1000]}
                )
                return
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{srv.url}/v2/health/ready", timeout=1).status_code == 200:
                    with self._lock:
                        self.servers[pod.metadata.name] = srv
                    self._publish_targets()
                    self._annotate(pod, {READY: "true"})
                    return
            time.sleep(0.2)

    def _kill(self, srv: ServerProc) -> None:
        if srv.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(srv.proc.pid, signal.SIGTERM)
            try:
                srv.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(srv.proc.pid, signal.SIGKILL)
                srv.proc.wait()

    def _publish_targets(self) -> None:
        """Each running server as Kubernetes SD would see its pod (the Prometheus scrape relabels it)."""
        if self.on_targets is None:
            return
        from .prometheus import pod_targets

        with self._publishing:  # the list read last is the one written last
            with self._lock:
                servers = list(self.servers.values())
            targets = []
            for s in servers:
                with contextlib.suppress(client.ApiException):
                    pod = self.core.read_namespaced_pod(s.pod, self.namespace)
                    targets += pod_targets(pod, f"127.0.0.1:{s.port}")
            self.on_targets(self.namespace, targets)

    # --- helpers for tests ---------------------------------------------------------------------
    def not_ready_report(self, lines: int = 15) -> str:
        """The log tail of each server still starting, for a post-mortem of a version stuck deploying."""
        with self._lock:
            starting = list(self.starting.values())
        out = []
        for s in starting:
            tail = s.log.read_text(errors="replace").splitlines()[-lines:] if s.log.exists() else []
            out.append(f"server {s.pod} (pid {s.proc.pid}) not ready yet; log tail:\n" + "\n".join(tail))
        return "\n".join(out)

    def server_for(self, version: str) -> ServerProc | None:
        with self._lock:
            return next((s for s in self.servers.values() if s.version == version), None)

    def artifact_dir(self, claim: str, model: str, version: str) -> Path:
        return self.volume(claim) / model / version


def local_persistent_volume(name: str, namespace: str, claim: str, folder: Path) -> dict[str, Any]:
    """A PV pre-bound to `claim`: the simulated cluster has no provisioner, and the stand-in mounts a folder."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(folder)},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
