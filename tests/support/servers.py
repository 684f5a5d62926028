"""The real node's model servers as a client and kube-proxy see them: predicts to a ClusterIP, each
on a new connection; what each server pod has answered, from its own /metrics; and the ready
endpoints of a Service, as the EndpointSlice controller writes them, and as kube-proxy has
programmed them into this host's iptables. Shared by the real-node modules that measure a canary's
share of traffic (test_real_node, test_real_node_canary)."""

from __future__ import annotations

import re
import subprocess
import threading
from collections import Counter

import httpx
from kubernetes import client

from tests.support.wait import eventually

IRIS = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}
REQUEST_LINE = re.compile(r"^modelops_server_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.M)


def served_by_pod(api: client.ApiClient, ns: str, model: str) -> dict[str, tuple[str, float]]:
    """predict requests each server pod of `model` has answered, read from its own /metrics
    (the pod's IP is reachable from the host through the bridge): pod -> (version, count)."""
    pods = client.CoreV1Api(api).list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/component=server,modelops.dev/model={model}"
    )
    out = {}
    for p in pods.items:
        if p.status.phase != "Running" or p.metadata.deletion_timestamp or not p.status.pod_ip:
            continue
        port = p.spec.containers[0].ports[0].container_port
        try:
            text = httpx.get(f"http://{p.status.pod_ip}:{port}/metrics", timeout=10).text
        except httpx.HTTPError:  # not listening yet, or going: the callers compare pod sets
            continue
        count = sum(
            float(value)
            for labels, value in REQUEST_LINE.findall(text)
            if 'handler="predict"' in labels and 'code="200"' in labels
        )
        out[p.metadata.name] = (p.metadata.labels["modelops.dev/version"], count)
    return out


def send_new_connections(ip: str, port: int, n: int, threads: int = 4) -> Counter[str]:
    """`n` predicts to ip:port, each on a new TCP connection (kube-proxy picks an endpoint per
    connection, so keep-alive would pin a client to one pod); returns the versions that answered."""
    answered: Counter[str] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def worker(count: int) -> None:
        with httpx.Client(timeout=10, headers={"Connection": "close"}) as c:
            for _ in range(count):
                try:
                    r = c.post(f"http://{ip}:{port}/predict", json={"instances": [IRIS]})
                    r.raise_for_status()
                    with lock:
                        answered[r.json()["model_version"]] += 1
                except httpx.HTTPError as e:
                    with lock:
                        failures.append(str(e))

    pool = [threading.Thread(target=worker, args=(n // threads + (i < n % threads),)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not failures, failures[:5]
    return answered


def _ready(api: client.ApiClient, ns: str, service: str) -> list[client.V1Endpoint]:
    """`service`'s ready endpoints, as kube-proxy reads them from EndpointSlices."""
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={service}"
    )
    return [ep for s in slices.items for ep in s.endpoints or [] if ep.conditions and ep.conditions.ready]


def ready_endpoints(api: client.ApiClient, ns: str, service: str) -> list[str]:
    """The pods behind `service`'s ready endpoints."""
    return sorted(ep.target_ref.name for ep in _ready(api, ns, service) if ep.target_ref is not None)


def ready_addresses(api: client.ApiClient, ns: str, service: str) -> list[str]:
    """The IPs of `service`'s ready endpoints."""
    return sorted(address for ep in _ready(api, ns, service) for address in ep.addresses)


def proxied_addresses(ip: str, port: int) -> list[str]:
    """The endpoint IPs kube-proxy's iptables rules send ip:port to now (KUBE-SERVICES ->
    KUBE-SVC-* -> KUBE-SEP-* DNAT), read from this host's nat table. kube-proxy rewrites them a
    moment after the EndpointSlice changes, longer when the machine is loaded."""
    rules = subprocess.run(["iptables-save", "-t", "nat"], check=True, capture_output=True, text=True).stdout
    lines = [line.split() for line in rules.splitlines() if line.startswith("-A ")]

    def jumps(chain: str, prefix: str, *must: str) -> list[str]:
        return [
            words[words.index("-j") + 1]
            for words in lines
            if words[1] == chain
            and "-j" in words
            and words[words.index("-j") + 1].startswith(prefix)
            and all(m in words for m in must)
        ]

    return sorted(
        words[words.index("--to-destination") + 1].rsplit(":", 1)[0]
        for svc in jumps("KUBE-SERVICES", "KUBE-SVC-", f"{ip}/32", str(port))
        for sep in jumps(svc, "KUBE-SEP-")
        for words in lines
        if words[1] == sep and "--to-destination" in words
    )


def wait_proxied(api: client.ApiClient, ns: str, service: str, timeout: float = 60) -> None:
    """Until kube-proxy's rules for `service` send to exactly its ready endpoints: a share
    measured before that mixes the old split with the new."""
    ip, port = cluster_address(api, ns, service)
    eventually(
        lambda: (want := ready_addresses(api, ns, service)) and proxied_addresses(ip, port) == want,
        timeout=timeout,
        what=f"kube-proxy's rules for {ns}/{service} to match its ready endpoints",
    )


def endpoint_versions(api: client.ApiClient, ns: str, model: str) -> Counter[str]:
    """The versions behind the model's stable Service's ready endpoints, by the pods' labels
    ("?" for an endpoint whose pod is not a running server)."""
    versions = {pod: version for pod, (version, _) in served_by_pod(api, ns, model).items()}
    return Counter(versions.get(p, "?") for p in ready_endpoints(api, ns, model))


def cluster_address(api: client.ApiClient, ns: str, service: str) -> tuple[str, int]:
    """The Service's ClusterIP and first port, which kube-proxy routes from this host."""
    svc = client.CoreV1Api(api).read_namespaced_service(service, ns)
    return svc.spec.cluster_ip, svc.spec.ports[0].port
