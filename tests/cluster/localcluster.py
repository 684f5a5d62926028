"""A real, throw-away Kubernetes control plane on loopback, with kwok playing the nodes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real binaries (built by
``go/build.sh``), so admission, RBAC, OpenAPI validation, garbage collection and the workload
controllers behave as in production; kwok stands in for kubelets on two fake nodes and plays pod
lifecycles from the stage files in ``kwok/``. Every port is picked free and every file lives in the
cluster directory, so several clusters can run side by side.

    with LocalCluster() as cluster:
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from tests.cluster import pki
from tests.cluster.node import NODE_IP, NODE_NAME, RealNode

HERE = Path(__file__).resolve().parent
BUILD_SH = HERE / "go" / "build.sh"
STAGES_DIR = HERE / "kwok"
STATE_FILE = "state.json"

NODE_NAMES = ("kwok-node-0", "kwok-node-1")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "service-cidr-controller",
    # PersistentVolumes: binding, and the protection finalizers that admission adds to PVCs/PVs.
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    # Removes the not-ready taint that admission puts on every new Node once kwok reports it Ready.
    "node-lifecycle-controller",
    # spec.serving.autoscaling: the real HPA controller sizes the Deployments (no metrics API here:
    # it still holds them within minReplicas..maxReplicas, which is what the tests check).
    "horizontal-pod-autoscaler-controller",
)
_STOP_GRACE = 10.0
# Stopped tier by tier: clients first, then the API server (which drains requests), etcd last.
# Stopped together, etcd goes first and the API server hangs until SIGKILL.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: [system:kube-controller-manager, system:kube-scheduler, system:apiserver, kwok-controller]
  - level: None
    userGroups: [system:nodes, "system:serviceaccounts:kube-system"]
  - level: None
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  - level: Metadata
"""
"""Tests count the operator's requests by verb from this log (its user agent names it)."""

_STOP_TIERS = (("kwok", "kube-scheduler", "kube-controller-manager"), ("kube-apiserver",), ("etcd",))


class ClusterError(RuntimeError):
    """The cluster could not be started; the message says which component and where its log is."""


class _PortTaken(ClusterError):
    """A component lost the race for a port we picked; starting again with new ports fixes it."""


def find_binaries(node: bool = False) -> Path:
    """The directory holding the cluster binaries: $MODELOPS_CLUSTER_BIN, else what build.sh prints.

    build.sh returns at once when its cache is warm; cold, it compiles for many minutes. ``node``
    adds kubelet and kube-proxy (for a real node).
    """
    if env := os.environ.get("MODELOPS_CLUSTER_BIN"):
        return Path(env).resolve()
    args = [str(BUILD_SH), "--node"] if node else [str(BUILD_SH)]
    out = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise ClusterError(f"{BUILD_SH} printed no bin directory")
    return Path(lines[-1]).resolve()


def kubectl_on_path(build: bool = True, env: MutableMapping[str, str] = os.environ) -> str | None:
    """Make `kubectl` resolvable in `env`'s PATH (and so in every subprocess); returns its path.

    The system's kubectl when it has one. Otherwise the one `build.sh --kubectl` builds from the
    same wrapper module as the control plane (cached beside it; cold, minutes), with its folder
    appended to PATH, as the Makefile does, so it never shadows a system kubectl. With
    ``build=False`` only an already cached one is used; None when there is none.
    """
    if found := shutil.which("kubectl", path=env.get("PATH")):
        return found
    folder = Path(
        subprocess.run(
            [str(BUILD_SH), "--kubectl-dir"], stdout=subprocess.PIPE, text=True, check=True
        ).stdout.strip()
    )
    if not (folder / "kubectl").exists():
        if not build:
            return None
        subprocess.run([str(BUILD_SH), "--kubectl"], stdout=subprocess.DEVNULL, check=True)
    env["PATH"] = os.pathsep.join(p for p in (env.get("PATH"), str(folder)) if p)
    return shutil.which("kubectl", path=env["PATH"])


def _free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now; all held open together so they are distinct."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the test process dies, even by SIGKILL.

    SIGKILL, not SIGTERM: with nobody left to wait for it, a draining API server can linger for
    seconds, and a disposable cluster has nothing worth shutting down cleanly.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def api_ready(directory: Path, server: str, path: str = "/readyz") -> bool:
    """GET ``path`` on the API server of the cluster in ``directory`` as its admin; True on 200."""
    pki_dir = directory / "pki"
    try:
        context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
    except OSError:
        return False
    return _http_ok(server + path, context)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def kill_process_groups(pids: dict[str, int], expect: dict[str, str] | None = None) -> None:
    """Stop components tier by tier: SIGTERM each process group, wait, then SIGKILL what is left.

    Each component leads its own group (start_new_session), so this also takes any child it spawned.
    ``expect`` maps a name to a string its command line must contain, so a recycled pid is never hit.
    """
    known = {name for tier in _STOP_TIERS for name in tier}
    tiers = [*_STOP_TIERS, tuple(n for n in pids if n not in known)]
    for tier in tiers:
        targets = {}
        for name in tier:
            pid = pids.get(name)
            if pid is None or not _alive(pid):
                continue
            if expect and expect.get(name) and expect[name] not in _cmdline(pid):
                continue
            targets[name] = pid
        for pid in targets.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE
        while time.monotonic() < deadline and any(_alive(p) for p in targets.values()):
            time.sleep(0.05)
        for pid in targets.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@dataclass
class _Component:
    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None


_live: set[LocalCluster] = set()
_hooks_installed = False
_hooks_lock = threading.Lock()


def _stop_live_clusters() -> None:
    for cluster in list(_live):
        cluster.stop(keep=True)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Stop our clusters, then die of the same signal as we would have without this handler."""
    _stop_live_clusters()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup_hooks() -> None:
    """atexit covers normal exits and Ctrl-C; SIGTERM/SIGHUP would otherwise skip it."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        atexit.register(_stop_live_clusters)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                if signal.getsignal(sig) is signal.SIG_DFL:
                    signal.signal(sig, _on_signal)


class LocalCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on 127.0.0.1.

    ``directory`` defaults to a fresh temporary directory, removed on a clean stop. With
    ``detach=True`` the processes outlive this Python process (for ``python -m tests.cluster up``);
    otherwise they are stopped at exit, on SIGTERM/SIGHUP, and (via PR_SET_PDEATHSIG) when the thread
    that started them dies, so a killed test run leaves nothing behind.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        bin_dir: str | Path | None = None,
        detach: bool = False,
        start_timeout: float = 120.0,
        real_node: bool = False,
        profiling: bool = False,
    ) -> None:
        self._temporary = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="modelops-cluster-")).resolve()
        self._bin_dir = Path(bin_dir).resolve() if bin_dir else None
        self.detach = detach
        self.start_timeout = start_timeout
        self.kubeconfig = self.directory / "kubeconfig"
        self.logs = self.directory / "logs"
        self.server = ""
        self.startup_seconds: float | None = None
        self._components: list[_Component] = []
        self._stopped = True
        self.real_node = real_node
        """A real kubelet + containerd + kube-proxy node (tests/cluster/node.py) instead of kwok's."""
        self.node: RealNode | None = None
        self.profiling = profiling
        """kube-apiserver's /debug/pprof on (for benchmarks that look inside it); off by default."""

    # -- public API -----------------------------------------------------------------------------------

    @property
    def simulated(self) -> bool:
        """Pods are played by kwok stages (held ModelOps pods honour sim.modelops.dev/* annotations)."""
        return not self.real_node

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_binaries(node=self.real_node)
        return self._bin_dir

    def start(self) -> LocalCluster:
        """Start every component and return once the API is ready and both nodes are schedulable."""
        bin_dir = self.bin_dir
        begin = time.monotonic()
        self._stopped = False
        if not self.detach:
            _install_cleanup_hooks()
            _live.add(self)
        try:
            if self.real_node:
                self.node = RealNode(self.directory, "", None, bin_dir, self._spawn_node)
                self.node.prepare()
            for attempt in range(3):
                try:
                    self._start_once(bin_dir)
                    break
                except _PortTaken:
                    self._terminate(node=False)  # the node is prepared, not started: keep its lock and IP
                    if attempt == 2:
                        raise
            if self.node is not None:
                self.node.start()
            self._wait_until_ready(begin + self.start_timeout)
        except BaseException:
            self.stop(keep=True)
            raise
        self.startup_seconds = time.monotonic() - begin
        self._write_state()
        return self

    def stop(self, keep: bool | None = None) -> None:
        """Stop every process. Files stay when ``keep`` is true (logs for a post-mortem) or when the
        directory was the caller's; a temporary directory is removed otherwise."""
        _live.discard(self)
        if self._stopped:
            return
        self._stopped = True
        self._terminate()
        if keep:
            print(f"local cluster stopped; logs kept in {self.logs}", file=sys.stderr)
        elif self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(keep=exc_type is not None)

    # -- start-up -------------------------------------------------------------------------------------

    def _start_once(self, bin_dir: Path) -> None:
        for sub in ("pki", "etcd", "kwok"):
            shutil.rmtree(self.directory / sub, ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        pki_dir = self.directory / "pki"
        pki_dir.mkdir(parents=True)
        etcd_port, peer_port, api_port = _free_ports(3)
        # A real node's pods reach the API through the kubernetes Service, which must point at an
        # address outside their own loopback: NODE_IP, on the host's lo.
        address = NODE_IP if self.real_node else "127.0.0.1"
        self.server = f"https://{address}:{api_port}"

        ca = pki.CertificateAuthority(pki_dir)
        serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server_ips=("127.0.0.1", "10.96.0.1", NODE_IP),
        )
        sa = pki.service_account_keys(pki_dir)
        kubeconfigs = {}
        for stem, user, org in (
            ("admin", "modelops-admin", "system:masters"),
            ("controller-manager", "system:kube-controller-manager", None),
            ("scheduler", "system:kube-scheduler", None),
            ("kwok", "kwok-controller", "system:masters"),
        ):
            pair = ca.issue(stem, user, organization=org)
            target = self.kubeconfig if stem == "admin" else pki_dir / f"{stem}.kubeconfig"
            kubeconfigs[stem] = pki.write_kubeconfig(
                target, server=self.server, ca_pem=ca.cert_pem, client=pair, name="modelops-local"
            )

        if self.node is not None:
            self.node.server, self.node.ca = self.server, ca
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._components = []
        self._spawn(
            "etcd",
            [
                str(bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",  # a test cluster's data is worthless after a crash anyway
                "--log-level=warn",
            ],
        )
        self._wait_for("etcd", lambda: _http_ok(f"{etcd_url}/health"), time.monotonic() + 30)

        self._spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={address}",
                f"--advertise-address={address}",
                f"--secure-port={api_port}",
                f"--cert-dir={pki_dir}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                f"--profiling={str(self.profiling).lower()}",
                *self._audit_flags(),
                *(
                    self._real_node_flags(ca)
                    if self.real_node
                    # Only loopback is advertised, which Endpoints validation rejects; no pod could
                    # reach the API through the kubernetes Service anyway (kwok runs no containers).
                    else ["--endpoint-reconciler-type=none"]
                ),
            ],
        )
        self._wait_for("kube-apiserver", lambda: self._api_ok("/readyz"), time.monotonic() + 60)

        self._spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfigs['controller-manager']}",
                "--leader-elect=false",
                "--secure-port=0",  # no serving port: nothing to collide on, nothing scrapes it
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.cert}",
                "--use-service-account-credentials=true",
                "--cluster-name=modelops-local",
                "--horizontal-pod-autoscaler-sync-period=5s",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfigs['scheduler']}",
                "--leader-elect=false",
                "--secure-port=0",
            ],
        )
        if self.real_node:
            return
        kwok_args = [
            str(bin_dir / "kwok"),
            f"--kubeconfig={kubeconfigs['kwok']}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            f"--cidr={POD_CIDR}",
            "--node-lease-duration-seconds=40",
        ]
        kwok_args += [f"--config={p}" for p in sorted(STAGES_DIR.glob("*.yaml"))]
        # KWOK_WORKDIR keeps a developer's ~/.kwok/kwok.yaml (which kwok would load) out of the picture.
        self._spawn("kwok", kwok_args, env={"KWOK_WORKDIR": str(self.directory / "kwok")})

    def _real_node_flags(self, ca: pki.CertificateAuthority) -> list[str]:
        """The API server talks to the kubelet (logs, exec) as a cluster admin, by InternalIP."""
        client = ca.issue(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters"
        )
        return [
            f"--kubelet-client-certificate={client.cert}",
            f"--kubelet-client-key={client.key}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _spawn_node(self, name: str, args: list[str], env: dict[str, str] | None) -> subprocess.Popen[bytes]:
        pass_fds = () if self.node is None or self.node._lock_fd is None else (self.node._lock_fd,)
        self._spawn(name, args, env, pass_fds=pass_fds if name == "containerd" else ())
        process = self._components[-1].process
        assert process is not None
        return process

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
    ) -> None:
        log = self.logs / f"{name}.log"
        component = _Component(name, args, log)
        with open(log, "ab") as out:
            out.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(args)}\n".encode())
            out.flush()
            component.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                preexec_fn=None if self.detach or not self._in_main_thread() else _die_with_parent,
                pass_fds=pass_fds,
            )
        self._components.append(component)

    @staticmethod
    def _in_main_thread() -> bool:
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits: only safe from the main thread.
        return threading.current_thread() is threading.main_thread()

    def _wait_until_ready(self, deadline: float) -> None:
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException

        api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        try:
            core = client.CoreV1Api(api_client)
            for index, name in enumerate(() if self.real_node else NODE_NAMES):
                try:
                    core.create_node(self._node(index, name))
                except ApiException as e:
                    if e.status != 409:
                        raise

            def default_sa() -> bool:
                try:
                    core.read_namespaced_service_account("default", "default")
                    return True
                except ApiException as e:
                    if e.status == 404:
                        return False
                    raise

            self._wait_for("the default ServiceAccount (kube-controller-manager)", default_sa, deadline)

            def nodes_schedulable() -> bool:
                nodes = {n.metadata.name: n for n in core.list_node().items}
                return all(
                    name in nodes
                    and any(
                        c.type == "Ready" and c.status == "True" for c in nodes[name].status.conditions or []
                    )
                    and not nodes[name].spec.taints
                    for name in NODE_NAMES
                )

            if self.real_node:

                def real_node_ready() -> bool:
                    try:
                        node = core.read_node(NODE_NAME)
                    except ApiException as e:
                        if e.status == 404:
                            return False
                        raise
                    ready = any(
                        c.type == "Ready" and c.status == "True" for c in node.status.conditions or []
                    )
                    return ready and not node.spec.taints

                self._wait_for(f"node {NODE_NAME} Ready and untainted (kubelet)", real_node_ready, deadline)
            else:
                self._wait_for("both kwok nodes Ready and untainted", nodes_schedulable, deadline)
        finally:
            api_client.close()

    @staticmethod
    def _node(index: int, name: str) -> dict[str, Any]:
        # Room for bench/operator_scale.py's 10,000 versions (a server pod each, requesting 1m/1Mi):
        # at 250 pods a node, half of 1,000 versions waited for a node, not for the operator.
        resources = {"cpu": "32", "memory": "128Gi", "pods": "6000", "ephemeral-storage": "500Gi"}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node-role.kubernetes.io/agent": "",
                    "type": "kwok",
                },
            },
            "spec": {},
            "status": {
                "allocatable": resources,
                "capacity": resources,
                # Distinct InternalIPs (TEST-NET-2, never routed) so pods get a hostIP, as on kubelets.
                "addresses": [
                    {"type": "InternalIP", "address": f"198.51.100.{10 + index}"},
                    {"type": "Hostname", "address": name},
                ],
            },
        }

    def _wait_for(self, what: str, ready: Callable[[], bool], deadline: float) -> None:
        """Poll ``ready`` until true, failing fast (with the log tail) if any component has exited."""
        while True:
            for c in self._components:
                if c.process and c.process.poll() is not None:
                    tail = _tail(c.log)
                    if "address already in use" in tail:
                        raise _PortTaken(f"{c.name}: port taken")
                    raise ClusterError(
                        f"{c.name} exited with {c.process.returncode} while waiting for {what}; "
                        f"log {c.log}:\n{tail}"
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}; component logs in {self.logs}")
            time.sleep(0.2)

    # -- audit --------------------------------------------------------------------------------------

    @property
    def audit_log(self) -> Path:
        """One JSON audit event per line: every request except the control plane's own and kwok's."""
        return self.logs / "audit.log"

    def _audit_flags(self) -> list[str]:
        policy = self.directory / "pki" / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
            "--audit-log-maxsize=200",
        ]

    # -- probes ---------------------------------------------------------------------------------------

    def _api_ok(self, path: str) -> bool:
        return api_ready(self.directory, self.server, path)

    # -- shutdown and state ---------------------------------------------------------------------------

    def _terminate(self, node: bool = True) -> None:
        if self.node is not None and node:
            pids = {c.name: c.process.pid for c in self._components if c.process}
            api_up = any(
                c.name == "kube-apiserver" and c.process and c.process.poll() is None
                for c in self._components
            )
            self.node.stop(
                self.kubeconfig if api_up and self.kubeconfig.exists() else None,
                lambda names: kill_process_groups({n: pids[n] for n in names if n in pids}),
            )
        kill_process_groups({c.name: c.process.pid for c in self._components if c.process})
        for c in self._components:
            if c.process:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    c.process.wait(timeout=1)

    def _write_state(self) -> None:
        state = {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "bin_dir": str(self.bin_dir),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "startup_seconds": round(self.startup_seconds or 0, 2),
            "real_node": self.real_node,
            "components": {
                c.name: {"pid": c.process.pid, "binary": c.args[0], "log": str(c.log)}
                for c in self._components
                if c.process
            },
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def read_state(directory: Path) -> dict[str, Any] | None:
    """The state file of a cluster started with ``detach=True`` in ``directory``, if any."""
    try:
        state: dict[str, Any] = json.loads((directory / STATE_FILE).read_text())
        return state
    except (OSError, ValueError):
        return None


def component_status(state: dict[str, Any]) -> Iterator[tuple[str, int, bool]]:
    """(name, pid, alive) for every component in a state file; a recycled pid counts as dead."""
    for name, info in state.get("components", {}).items():
        pid = int(info["pid"])
        yield name, pid, _alive(pid) and info["binary"] in _cmdline(pid)


def stop_detached(directory: Path) -> bool:
    """Stop a cluster started with ``detach=True``; False when the directory holds no state file."""
    state = read_state(directory)
    if state is None:
        return False
    components = state.get("components", {})
    if state.get("real_node"):
        node = RealNode(directory, state["server"], None, Path(state["bin_dir"]), None)
        with contextlib.suppress(OSError, ValueError):
            node._sysctls = json.loads((directory / "node-sysctls.json").read_text())
        pids = {name: int(info["pid"]) for name, info in components.items()}
        expect = {name: info["binary"] for name, info in components.items()}
        node.stop(
            Path(state["kubeconfig"]) if api_ready(directory, state["server"]) else None,
            lambda names: kill_process_groups(
                {n: pids[n] for n in names if n in pids}, expect={n: expect[n] for n in names if n in expect}
            ),
        )
    kill_process_groups(
        {name: int(info["pid"]) for name, info in components.items()},
        expect={name: info["binary"] for name, info in components.items()},
    )
    (directory / STATE_FILE).unlink(missing_ok=True)
    return True
