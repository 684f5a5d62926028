"""A real Kubernetes node on this machine: containerd + runc + CNI bridge + kubelet + kube-proxy.

The node joins a :class:`~tests.cluster.localcluster.LocalCluster` whose API server binds
:data:`NODE_IP`, an address on ``lo`` that pods can reach through the bridge (127.0.0.1 is the
pod's own loopback). No image is ever pulled: the pause, base and project images are built by
``node/images.sh`` and imported into containerd, whose content store is cached outside the
repository so a warm start imports nothing. kubelet and kube-proxy use fixed ports and host paths,
so one node per machine, behind a machine-wide lock. Teardown drains, then removes every process,
mount, netns, veth, bridge, iptables chain and cgroup the node made, and restores the sysctls the
kubelet and the bridge changed (facts: /work/shared/REAL-NODE.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import pki

HERE = Path(__file__).resolve().parent
IMAGES_SH = HERE / "node" / "images.sh"

NODE_NAME = "modelops-node"
NODE_IP = "192.0.2.10"
"""TEST-NET-1 (never routed), on ``lo``: the node's InternalIP and the API server's address."""
NODE_POD_CIDR = "10.244.0.0/24"
BRIDGE = "modelops0"
CNI_NETWORK = "modelops"
CNI_BIN_DIR = "/usr/lib/cni"
LOCK_FILE = Path("/run/lock/modelops-node.lock")
RUN_DIR = Path("/run/modelops-node")
KUBELET_ROOT = Path("/var/lib/modelops-node/kubelet")
SYSCTLS = (
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv4.conf.all.route_localnet",
)
"""Host settings the kubelet, kube-proxy or the bridge plugin change; restored on teardown."""
CHAIN_PREFIXES = ("KUBE-", "CNI-")
DRAIN_TIMEOUT = 120.0


def cache_dir() -> Path:
    base = (
        os.environ.get("MODELOPS_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelops"
    )
    return Path(base)


def containerd_root() -> Path:
    """containerd's content store and snapshots: kept between runs, so images import once."""
    return cache_dir() / "node" / "containerd"


class NodeError(RuntimeError):
    """The real node could not start or be cleaned up; the message names the step and the log."""


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    archive: Path


def build_images(which: str = "all") -> dict[str, Image]:
    """Build (or find cached) the node's images; cold this takes many minutes, warm a second."""
    out = subprocess.run([str(IMAGES_SH), which], stdout=subprocess.PIPE, text=True, check=True)
    images = {}
    for line in out.stdout.splitlines():
        name, tag, archive = line.split()
        images[name] = Image(name, tag, Path(archive))
    return images


def _run(args: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = _sysctl_path(name).read_text().strip()
    return values


def iptables_chains() -> list[str]:
    """``table/chain`` of every chain the node's components create (KUBE-*, CNI-*), v4 and v6."""
    found = []
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            out = _run([f"{tool}-save", "-t", table], check=False).stdout
            found += [
                f"{tool}/{table}/{line[1:].split()[0]}"
                for line in out.splitlines()
                if line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES)
            ]
    return found


def _remove_chains() -> None:
    """Delete KUBE-*/CNI-* chains and every rule that jumps to them, table by table."""
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            out = _run([f"{tool}-save", "-t", table], check=False).stdout
            chains = [
                line[1:].split()[0]
                for line in out.splitlines()
                if line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES)
            ]
            if not chains:
                continue
            for line in out.splitlines():
                if line.startswith("-A ") and any(f"-j {c}" in line or f"-g {c}" in line for c in chains):
                    parts = line.split()
                    if not parts[1].startswith(CHAIN_PREFIXES):
                        _run([tool, "-t", table, "-D", *parts[1:]], check=False)
            for c in chains:
                _run([tool, "-t", table, "-F", c], check=False)
            for c in chains:
                _run([tool, "-t", table, "-X", c], check=False)


def node_mounts() -> list[str]:
    """Mount points under the node's directories (pod volumes, rootfs, netns handles)."""
    roots = (str(KUBELET_ROOT), str(RUN_DIR), str(containerd_root()))
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(roots):
            points.append(point)
    return points


def node_links() -> list[str]:
    """The bridge and any veth still enslaved to it."""
    out = _run(["ip", "-j", "link", "show"], check=False).stdout or "[]"
    return [
        link["ifname"]
        for link in json.loads(out)
        if link.get("ifname") == BRIDGE or link.get("master") == BRIDGE
    ]


def netns_names() -> set[str]:
    try:
        return {p.name for p in Path("/run/netns").iterdir()}
    except OSError:
        return set()


def node_cgroups() -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob("*/kubepods*") if p.is_dir()]


def node_processes() -> list[tuple[int, str]]:
    """Processes of the node: kubelet, kube-proxy, our containerd, and shims started by it."""
    found = []
    markers = (str(RUN_DIR), str(KUBELET_ROOT), f"--hostname-override={NODE_NAME}")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmd for m in markers):
            found.append((int(proc.name), cmd.strip()))
    return [(pid, cmd) for pid, cmd in found if pid != os.getpid()]


def _lo_has_ip() -> bool:
    out = _run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], check=False).stdout
    return f" {NODE_IP}/" in out


def add_node_ip() -> None:
    """The node's address lives on ``lo``: this kernel has no dummy interfaces."""
    if not _lo_has_ip():
        _run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo"])


def remove_node_ip() -> None:
    if _lo_has_ip():
        _run(["ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo"], check=False)


@dataclass
class RealNode:
    """containerd, kubelet and kube-proxy for the cluster in ``directory`` (its pki/ and logs/)."""

    directory: Path
    server: str
    ca: pki.CertificateAuthority | None
    bin_dir: Path
    spawn: Callable[[str, list[str], dict[str, str] | None], subprocess.Popen[bytes]] | None
    images: dict[str, Image] = field(default_factory=dict)
    _lock_fd: int | None = None
    _sysctls: dict[str, str] = field(default_factory=dict)
    _netns_before: set[str] = field(default_factory=set)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return RUN_DIR / "containerd" / "containerd.sock"

    @property
    def node_dir(self) -> Path:
        return self.directory / "node"

    # -- start ----------------------------------------------------------------------------------

    def acquire_lock(self) -> int:
        """Machine-wide: kubelet's ports and /var/lib/kubelet/device-plugins are not per cluster.

        The fd is inherited by containerd, so a detached node keeps the lock while it runs.
        """
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise NodeError(f"another real node holds {LOCK_FILE} (one node per machine)") from None
                time.sleep(1)
        os.set_inheritable(fd, True)
        self._lock_fd = fd
        return fd

    def prepare(self) -> None:
        """Before the API server starts: lock, record host state, clear leftovers, add the node IP."""
        begin = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.acquire_lock()
        if leftovers := node_processes():
            # A previous run died without teardown: its node is ours to clean (we hold the lock).
            print(f"real node: cleaning leftovers of a previous run: {leftovers}", file=sys.stderr)
            self._force_cleanup()
        saved = self.directory / "node-sysctls.json"
        self._sysctls = read_sysctls()
        pristine = LOCK_FILE.with_suffix(".sysctls.json")
        if pristine.exists():  # a crashed run changed them: restore the values from before it
            with contextlib.suppress(ValueError, OSError):
                self._sysctls = json.loads(pristine.read_text())
        pristine.write_text(json.dumps(self._sysctls))
        saved.write_text(json.dumps(self._sysctls))
        self._netns_before = netns_names()
        add_node_ip()
        if not self.images:
            self.images = build_images("all")
        self.timings["prepare"] = time.monotonic() - begin

    def start(self) -> None:
        """After the API server is ready: containerd, images, CNI, kubelet, kube-proxy."""
        begin = time.monotonic()
        self.node_dir.mkdir(parents=True, exist_ok=True)
        for d in (RUN_DIR, KUBELET_ROOT, containerd_root()):
            d.mkdir(parents=True, exist_ok=True)
        self._write_cni()
        self._start_containerd()
        self._import_images()
        self.timings["containerd+images"] = time.monotonic() - begin
        credentials = self._credentials()
        self._start_kubelet(credentials["kubelet"])
        self._start_kube_proxy(credentials["kube-proxy"])
        self.timings["node processes"] = time.monotonic() - begin

    def _credentials(self) -> dict[str, Path]:
        assert self.ca is not None, "start() needs the cluster's CA"
        pki_dir = self.directory / "pki"
        out = {}
        for stem, user, org in (
            ("kubelet", f"system:node:{NODE_NAME}", "system:nodes"),
            ("kube-proxy", "system:kube-proxy", None),
        ):
            pair = self.ca.issue(stem, user, organization=org)
            out[stem] = pki.write_kubeconfig(
                pki_dir / f"{stem}.kubeconfig",
                server=self.server,
                ca_pem=self.ca.cert_pem,
                client=pair,
                name="modelops-local",
            )
        return out

    def _write_cni(self) -> None:
        conf_dir = self.node_dir / "cni"
        conf_dir.mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # kube-proxy masquerades what needs it; no per-pod CNI chains to leak.
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": NODE_POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(RUN_DIR / "cni-ipam"),
                    },
                }
            ],
        }
        (conf_dir / "10-modelops.conflist").write_text(json.dumps(conflist, indent=2))

    def _start_containerd(self) -> None:
        config = f"""\
version = 2
root = "{containerd_root()}"
state = "{RUN_DIR / "containerd-state"}"
# The VM lacks CAP_SYS_RESOURCE: runc must not try to lower oom_score_adj.
oom_score = 0
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.images["pause"].tag}"
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{self.node_dir / "cni"}"
"""
        (self.socket.parent).mkdir(parents=True, exist_ok=True)
        path = self.node_dir / "containerd.toml"
        path.write_text(config)
        assert self.spawn is not None
        proc = self.spawn("containerd", ["containerd", f"--config={path}"], None)
        deadline = time.monotonic() + 60
        while _run(self._ctr("version"), check=False).returncode != 0:
            if proc.poll() is not None:
                raise NodeError(f"containerd exited {proc.returncode}; log {self.directory / 'logs'}")
            if time.monotonic() > deadline:
                raise NodeError("containerd did not answer within 60s")
            time.sleep(0.2)

    def _ctr(self, *args: str) -> list[str]:
        return ["ctr", f"--address={self.socket}", "--namespace=k8s.io", *args]

    def _import_images(self) -> None:
        """Import each image once: the content store outlives the node (see containerd_root)."""
        present = set(_run(self._ctr("images", "ls", "-q")).stdout.split())
        for image in self.images.values():
            if image.name == "base" or image.tag in present:
                continue
            begin = time.monotonic()
            _run(self._ctr("images", "import", str(image.archive)), timeout=900)
            self.timings[f"import {image.name}"] = time.monotonic() - begin
            present = set(_run(self._ctr("images", "ls", "-q")).stdout.split())
            if image.tag not in present:
                raise NodeError(f"imported {image.archive} but containerd lists no {image.tag}: {present}")
        self._prune_images()

    def _prune_images(self) -> None:
        """Drop every image that is not one of ours now (older builds, and the digest and ID
        references the CRI adds for them), so the cached store holds one project image, not one
        per code change (≈ 0.9 GB unpacked each)."""
        rows = [line.split() for line in _run(self._ctr("images", "ls")).stdout.splitlines()[1:]]
        wanted = {image.tag for image in self.images.values()}
        keep = {row[2] for row in rows if len(row) > 2 and row[0] in wanted}
        stale = [row[0] for row in rows if len(row) > 2 and row[2] not in keep]
        if stale:
            _run(self._ctr("images", "rm", "--sync", *stale), check=False, timeout=300)

    def _start_kubelet(self, kubeconfig: Path) -> None:
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.ca.cert)},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            # Imported images cannot be pulled again: never garbage-collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # A shared disk may be fuller than a dedicated node's: evict only when nearly out.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "podCIDR": NODE_POD_CIDR,
            "clusterDomain": "cluster.local",
            "resolvConf": "/etc/resolv.conf",
            "maxPods": 60,
            "serializeImagePulls": False,
            "registerNode": True,
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
            "shutdownGracePeriod": "0s",
        }
        path = self.node_dir / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config))
        assert self.spawn is not None and self.ca is not None
        self.spawn(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={path}",
                f"--kubeconfig={kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                f"--root-dir={KUBELET_ROOT}",
                f"--cert-dir={self.node_dir / 'kubelet-pki'}",
                "--node-labels=type=real,modelops.dev/real-node=true",
                "--v=1",
            ],
            None,
        )

    def _start_kube_proxy(self, kubeconfig: Path) -> None:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": "10.244.0.0/16",
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # Leave host conntrack settings alone: nothing to restore, nothing to need CAP_SYS_ADMIN for.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False},
        }
        path = self.node_dir / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config))
        assert self.spawn is not None
        self.spawn(
            "kube-proxy",
            [str(self.bin_dir / "kube-proxy"), f"--config={path}", f"--hostname-override={NODE_NAME}"],
            None,
        )

    # -- teardown -------------------------------------------------------------------------------

    def drain(self, kubeconfig: Path, timeout: float = DRAIN_TIMEOUT) -> None:
        """Cordon, then delete every pod on the node and wait until the kubelet has stopped them,
        so that CNI DEL removes each pod's veth and netns the ordinary way."""
        kubectl = ["kubectl", f"--kubeconfig={kubeconfig}", "--request-timeout=20s"]
        if _run([*kubectl, "get", "node", NODE_NAME], check=False).returncode != 0:
            return
        _run([*kubectl, "cordon", NODE_NAME], check=False)
        _run(
            [
                *kubectl,
                "delete",
                "pods",
                "--all-namespaces",
                f"--field-selector=spec.nodeName={NODE_NAME}",
                "--grace-period=5",
                "--wait=false",
            ],
            check=False,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = _run(self._ctr("tasks", "ls", "-q"), check=False)
            if out.returncode != 0 or not out.stdout.split():
                break
            time.sleep(1)

    def stop(self, kubeconfig: Path | None, stop_processes: Callable[[tuple[str, ...]], None]) -> None:
        """Drain, stop kubelet/kube-proxy/containerd, then remove whatever is left on the host."""
        begin = time.monotonic()
        if kubeconfig is not None:
            with contextlib.suppress(Exception):
                self.drain(kubeconfig)
        stop_processes(("kube-proxy", "kubelet"))
        self._remove_containers()
        stop_processes(("containerd",))
        self._force_cleanup()
        self.timings["teardown"] = time.monotonic() - begin
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _remove_containers(self) -> None:
        """Kill and delete what the kubelet left (sandboxes it had not garbage-collected yet)."""
        if _run(self._ctr("version"), check=False).returncode != 0:
            return
        for cid in _run(self._ctr("tasks", "ls", "-q"), check=False).stdout.split():
            _run(self._ctr("tasks", "kill", "-s", "SIGKILL", cid), check=False)
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline and _run(self._ctr("tasks", "ls", "-q"), check=False).stdout.split()
        ):
            for cid in _run(self._ctr("tasks", "ls", "-q"), check=False).stdout.split():
                _run(self._ctr("tasks", "delete", "-f", cid), check=False)
            time.sleep(0.5)
        for cid in _run(self._ctr("containers", "ls", "-q"), check=False).stdout.split():
            _run(self._ctr("containers", "delete", cid), check=False)

    def _force_cleanup(self) -> None:
        """Idempotent: everything a node may leave on the host, whether or not it stopped cleanly."""
        for pid, _cmd in node_processes():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while node_processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        kube_proxy = self.bin_dir / "kube-proxy"
        if kube_proxy.exists():
            _run([str(kube_proxy), "--cleanup", "--v=0"], check=False)
        for point in sorted(node_mounts(), key=len, reverse=True):
            _run(["umount", "-l", point], check=False)
        for name in netns_names() - self._netns_before:
            if name.startswith("cni-"):
                _run(["ip", "netns", "delete", name], check=False)
        for link in node_links():
            _run(["ip", "link", "delete", link], check=False)
        _remove_chains()
        for top in node_cgroups():
            for d in sorted(
                (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            ):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
        self.restore_sysctls()
        remove_node_ip()
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        shutil.rmtree(KUBELET_ROOT, ignore_errors=True)

    def restore_sysctls(self) -> None:
        for name, value in self._sysctls.items():
            with contextlib.suppress(OSError):
                if _sysctl_path(name).read_text().strip() != value:
                    _sysctl_path(name).write_text(value)
        if self._sysctls:
            LOCK_FILE.with_suffix(".sysctls.json").unlink(missing_ok=True)


def leftovers(sysctls_before: dict[str, str] | None = None) -> dict[str, Any]:
    """What a stopped node left on the host; empty values mean nothing (the teardown test's check)."""
    found: dict[str, Any] = {
        "processes": node_processes(),
        "mounts": node_mounts(),
        "netns": sorted(n for n in netns_names() if n.startswith("cni-")),
        "links": node_links(),
        "iptables chains": iptables_chains(),
        "cgroups": [str(p) for p in node_cgroups()],
        "node ip on lo": _lo_has_ip(),
    }
    if sysctls_before is not None:
        now = read_sysctls()
        found["sysctls changed"] = {k: (v, now.get(k)) for k, v in sysctls_before.items() if now.get(k) != v}
    return found


def wait_node_ready(core: Any, deadline: float) -> Iterator[None]:
    """Yield while the node is not yet Ready (lets the caller check its processes between polls)."""
    while time.monotonic() < deadline:
        try:
            node = core.read_node(NODE_NAME)
            if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []):
                return
        except Exception as e:  # not registered yet
            if getattr(e, "status", None) not in (404, None):
                raise
        yield
    raise NodeError(f"node {NODE_NAME} not Ready in time")
