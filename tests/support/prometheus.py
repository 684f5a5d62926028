"""The real Prometheus server (Debian's package), on a free loopback port, scraping the model servers
exactly as a Prometheus managed by the Prometheus Operator would through the shipped PodMonitor.

prometheus-operator turns a PodMonitor into a scrape job with `kubernetes_sd_configs` (role pod) and
a fixed list of relabellings (pkg/prometheus/promcfg.go, generatePodMonitorConfig): keep running
pods whose labels match the selector and whose container port has the endpoint's name, then set
`namespace`, `container`, `pod`, `job` (<namespace>/<PodMonitor name>) and `endpoint` (the port
name); `instance` is the address. `podmonitor_scrape_config` generates the same relabellings from
manifests/monitoring/podmonitor.yaml as built by kustomize. The one substitution: the kubelet
stand-in publishes each server as a file_sd target carrying the `__meta_kubernetes_pod_*` labels
Kubernetes service discovery would attach (from the pod object), with the address where the
process really listens, because the simulated pods have no routable IP. On the real node
(`kubernetes_sd`) the same job discovers the pods through the API server instead, as production
does. Everything after discovery is Prometheus' own relabelling, so a server label that collides
with a target label is renamed `exported_<name>` here exactly as in production.
"""

from __future__ import annotations

import functools
import gzip as gzip_module
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.cluster.localcluster import _die_with_parent

from .kubelet import free_port

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests" / "monitoring"


def sanitize(name: str) -> str:
    """A Kubernetes label name as a Prometheus label name (what SD and prometheus-operator do)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


@functools.cache
def shipped_podmonitor() -> dict[str, Any]:
    """The PodMonitor as users install it (`kubectl kustomize manifests/monitoring`)."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(MONITORING)], capture_output=True, text=True, check=True, timeout=60
    )
    (pm,) = [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "PodMonitor"]
    return pm


def file_sd(files: list[str]) -> dict[str, Any]:
    """Discovery from the stand-in's target files (simulated pods have no routable IP)."""
    return {"file_sd_configs": [{"files": files, "refresh_interval": "1s"}]}


def kubernetes_sd(kubeconfig: Path, namespaces: list[str] | None = None) -> dict[str, Any]:
    """Discovery of real pods through the API server, as prometheus-operator configures it; in
    every namespace unless told (a PodMonitor's `namespaceSelector: {any: true}`)."""
    sd: dict[str, Any] = {"role": "pod", "kubeconfig_file": str(kubeconfig)}
    if namespaces is not None:
        sd["namespaces"] = {"names": namespaces}
    return {"kubernetes_sd_configs": [sd]}


def podmonitor_scrape_config(
    pm: dict[str, Any], discovery: dict[str, Any], scrape_interval: str | None = None
) -> list[dict[str, Any]]:
    """prometheus-operator's scrape config for each podMetricsEndpoint of `pm`, discovering by `discovery`
    (:func:`file_sd` or :func:`kubernetes_sd`).

    Follows generatePodMonitorConfig for what the shipped PodMonitor uses (matchLabels, port, path,
    interval, honorLabels); anything else in the PodMonitor fails loudly rather than being ignored.
    """
    spec, meta = pm["spec"], pm["metadata"]
    supported = {"selector", "namespaceSelector", "podMetricsEndpoints"}
    assert set(spec) <= supported, f"PodMonitor fields this generator does not model: {set(spec) - supported}"
    selector = spec["selector"]
    assert set(selector) <= {"matchLabels"}, selector
    jobs = []
    for i, ep in enumerate(spec["podMetricsEndpoints"]):
        assert set(ep) <= {"port", "path", "interval", "honorLabels"}, ep
        relabel: list[dict[str, Any]] = [
            {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
            # the running filter (filterRunning defaults to true)
            {
                "action": "drop",
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "(Failed|Succeeded)",
            },
        ]
        for key in sorted(selector.get("matchLabels") or {}):
            relabel.append(
                {
                    "action": "keep",
                    "source_labels": [
                        f"__meta_kubernetes_pod_label_{sanitize(key)}",
                        f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}",
                    ],
                    "regex": f"({selector['matchLabels'][key]});true",
                }
            )
        relabel += [
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": ep["port"],
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
            {"target_label": "endpoint", "replacement": ep["port"]},
            # sharding with one shard ($(SHARD) is 0)
            {
                "source_labels": ["__address__"],
                "target_label": "__tmp_hash",
                "modulus": 1,
                "action": "hashmod",
            },
            {"source_labels": ["__tmp_hash"], "regex": "0", "action": "keep"},
        ]
        jobs.append(
            {
                "job_name": f"podMonitor/{meta['namespace']}/{meta['name']}/{i}",
                "honor_labels": bool(ep.get("honorLabels", False)),
                **discovery,
                "scrape_interval": scrape_interval or ep.get("interval", "30s"),
                "metrics_path": ep.get("path", "/metrics"),
                "relabel_configs": relabel,
            }
        )
    return jobs


def pod_targets(pod: Any, address: str) -> list[dict[str, Any]]:
    """The targets Kubernetes SD (role pod) makes of a pod: one per container port, with its meta labels.

    `pod` is a kubernetes.client V1Pod; every port gets `address` (where the stand-in runs the process).
    """
    meta, spec = pod.metadata, pod.spec
    common = {
        "__meta_kubernetes_namespace": meta.namespace,
        "__meta_kubernetes_pod_name": meta.name,
        "__meta_kubernetes_pod_uid": meta.uid,
        "__meta_kubernetes_pod_node_name": spec.node_name or "",
        "__meta_kubernetes_pod_phase": "Running",  # the stand-in runs the container
        "__meta_kubernetes_pod_ready": "true",
    }
    for key, value in (meta.labels or {}).items():
        common[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
        common[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
    out = []
    for container in spec.containers:
        for port in container.ports or []:
            labels = {
                **common,
                "__meta_kubernetes_pod_container_name": container.name,
                "__meta_kubernetes_pod_container_init": "false",
                "__meta_kubernetes_pod_container_port_name": port.name or "",
                "__meta_kubernetes_pod_container_port_number": str(port.container_port),
                "__meta_kubernetes_pod_container_port_protocol": port.protocol or "TCP",
            }
            out.append({"targets": [address], "labels": labels})
    return out


class PrometheusServer:
    def __init__(
        self,
        workdir: Path,
        scrape_interval: str = "1s",
        discovery: dict[str, Any] | None = None,
        binary: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """`scrape_interval` replaces the PodMonitor's 15s so tests see data within seconds.

        `discovery` defaults to the stand-in's target files; `binary` to Debian's prometheus
        (:func:`kubernetes_sd_prometheus` for `kubernetes_sd`); `host` is where it listens (a
        real node's address, for an operator running in a pod).
        """
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.scrape_interval = scrape_interval
        self.discovery = discovery
        self.host = host
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.targets_dir = workdir / "targets"
        self.targets_dir.mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_targets(self, group: str, targets: list[dict[str, object]]) -> None:
        """Replace a file_sd group in one step. The temporary file is this call's own: two callers
        sharing one name raced, and the loser's rename found it gone (a server thread died of it)."""
        with tempfile.NamedTemporaryFile("w", dir=self.targets_dir, prefix=f".{group}.", delete=False) as f:
            f.write(json.dumps(targets))
        Path(f.name).rename(self.targets_dir / f"{group}.json")

    def start(self) -> PrometheusServer:
        binary = self.binary or shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(
                "prometheus is not installed (apt-get install prometheus); .ci/run installs it"
            )
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": podmonitor_scrape_config(
                shipped_podmonitor(),
                self.discovery or file_sd([str(self.targets_dir / "*.json")]),
                self.scrape_interval,
            ),
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = (self.workdir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        raise TimeoutError("prometheus did not become ready in 30s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class MisbehavingPrometheus:
    """A stand-in for Prometheus' query API that answers wrongly: a fixed body, or one trickled slowly.

    Only for faults the real server cannot be made to produce (malformed or trickling answers);
    everything else is tested against the real Prometheus. `answer` may be changed while it runs.
    """

    def __init__(
        self, answer: bytes, *, status: int = 200, trickle_seconds: float = 0.0, gzip: bool = False
    ) -> None:
        """`gzip`: compress the answer, as the real Prometheus does when the client accepts it."""
        self.answer, self.status, self.trickle_seconds, self.gzip = answer, status, trickle_seconds, gzip
        self.queries: list[str] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("query", [""])[0]
                stand_in.queries.append(query)
                body = stand_in.answer
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json")
                if stand_in.gzip:
                    body = gzip_module.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if stand_in.trickle_seconds <= 0:
                        self.wfile.write(body)
                        return
                    for i in range(len(body)):  # one byte at a time: each read succeeds in time
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        if stand_in._stop.wait(stand_in.trickle_seconds):
                            return
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def log_message(self, *args: object) -> None:
                pass

        self._stop = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="bad-prometheus", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MisbehavingPrometheus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


def kubernetes_sd_prometheus() -> str:
    """A Prometheus with kubernetes_sd_configs, built from its Go module and cached (build.sh).

    Debian 12's package (2.42) is built without Kubernetes discovery: loading such a config fails
    with "field kubernetes_sd_configs not found in type config.ScrapeConfig".
    """
    build = Path(__file__).resolve().parents[1] / "cluster" / "go" / "build.sh"
    out = subprocess.run([str(build), "--prometheus"], stdout=subprocess.PIPE, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]
