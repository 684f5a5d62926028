"""A canary on real traffic: the real API server, the operator, real model servers and real Prometheus.

`replicas` mode: requests go to the model's stable Service the way kube-proxy sends them, to an
endpoint chosen uniformly among the Service's ready endpoints (EndpointSlices written by the
real endpointslice controller); the kubelet stand-in runs each endpoint's pod as a host process,
so a chosen endpoint is reached at that process. The share each version served is counted at
the servers (their own request counters), and must be within 5 points of the step's weight.
`gatewayAPI` mode: the HTTPRoute (standard CRDs from the Gateway API Go module) carries exactly
the step's weights. A breach at step 1 rolls back to 100/0 at once, in either mode.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
from collections import Counter
from typing import Any

import httpx
import pytest
from kubernetes import client

from tests.integration.conftest import kubectl
from tests.support.gatewayapi import standard_crds
from tests.support.traffic import ROWS, IrisTraffic
from tests.support.wait import eventually

pytestmark = pytest.mark.cluster

REQUESTS = 2000
TOLERANCE = 5.0
REQUEST_LINE = re.compile(r"^modelops_server_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.M)


def endpoints(api: client.ApiClient, namespace: str, service: str) -> list[str]:
    """Pod names of the Service's ready endpoints, as kube-proxy reads them from EndpointSlices."""
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    out = []
    for s in slices.items:
        for ep in s.endpoints or []:
            if ep.conditions and ep.conditions.ready and ep.target_ref is not None:
                out.append(ep.target_ref.name)
    return sorted(out)


def served(kubelet: Any) -> Counter[str]:
    """predict requests answered, per version, read from each server's own /metrics."""
    out: Counter[str] = Counter()
    for srv in list(kubelet.servers.values()):
        try:
            text = httpx.get(f"{srv.url}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        for labels, value in REQUEST_LINE.findall(text):
            if 'handler="predict"' in labels:
                out[srv.version] += float(value)
    return out


def send_through_service(
    api: client.ApiClient, namespace: str, kubelet: Any, n: int, seed: int = 7
) -> Counter[str]:
    """`n` predict requests, each to an endpoint of the stable Service chosen uniformly at random;
    returns the versions of the endpoints chosen (the servers' own counts are read separately)."""
    pods = endpoints(api, namespace, "iris")
    assert pods, "the stable Service has no ready endpoints"
    urls = {p: kubelet.servers[p].url for p in pods if p in kubelet.servers}
    assert set(urls) == set(pods), f"endpoints without a running server: {set(pods) - set(urls)}"
    rnd = random.Random(seed)
    picks = [rnd.choice(pods) for _ in range(n)]
    chosen: Counter[str] = Counter(kubelet.servers[p].version for p in picks)
    lock = threading.Lock()
    failures: list[str] = []

    def worker(part: list[str]) -> None:
        with httpx.Client(timeout=10) as c:
            for pod in part:
                row = ROWS[rnd.randrange(len(ROWS))]
                try:
                    r = c.post(f"{urls[pod]}/predict", json={"instances": [row]})
                    if r.status_code != 200:
                        with lock:
                            failures.append(f"{pod}: {r.status_code}")
                except httpx.HTTPError as e:
                    with lock:
                        failures.append(f"{pod}: {e}")

    threads = [threading.Thread(target=worker, args=(picks[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    return chosen


def canary(mvs, name: str) -> dict[str, Any]:
    return mvs.status(name).get("canary") or {}


def step_in_effect(mvs, name: str, step: int):
    def check():
        c = canary(mvs, name)
        return c if c.get("step") == step and c.get("stepStarted") and mvs.phase(name) == "Canary" else None

    return check


def measure_share(mvs, api_client, kubelet, name: str, step: int) -> float:
    before = served(kubelet)
    send_through_service(api_client, mvs.ns, kubelet, REQUESTS)
    after = served(kubelet)
    assert canary(mvs, name).get("step") == step, "the step moved on while the traffic was sent"
    canary_n = after[name] - before[name]
    total = sum(after.values()) - sum(before.values())
    assert total == REQUESTS, (before, after)
    return 100.0 * canary_n / total


def test_replicas_canary_gets_its_share_of_live_traffic_and_is_promoted(mvs, kubelet, operator, api_client):
    mvs.create("iris-v1", serving={"replicas": 4, "drainSeconds": 0})
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    eventually(
        lambda: len(endpoints(api_client, mvs.ns, "iris")) == 4, timeout=90, what="4 champion endpoints"
    )
    spec = {
        "traffic": "replicas",
        "steps": [{"weight": 25, "pause": "60s"}, {"weight": 50, "pause": "60s"}],
        "minRequests": 20,
        "maxErrorRate": 0.05,
        "maxP99LatencySeconds": 5.0,
        "maxPredictionDivergence": 0.5,
        "minPredictions": 100,
    }
    mvs.create(
        "iris-v2",
        serving={"replicas": 4, "drainSeconds": 0, "rollout": {"strategy": "Canary", "canary": spec}},
    )
    figures = {}
    for step, weight, pods in ((1, 25, (1, 3)), (2, 50, (2, 2))):
        c = eventually(step_in_effect(mvs, "iris-v2", step), timeout=180, what=f"step {step} in effect")
        assert c["weight"] == weight and (c["canaryReplicas"], c["stableReplicas"]) == pods
        want = {"iris-v2": pods[0], "iris-v1": pods[1]}

        def settled(want=want):
            # The EndpointSlice follows the pods a moment later (a champion pod being deleted for
            # the step is still listed for a while), as kube-proxy's view does.
            eps = endpoints(api_client, mvs.ns, "iris")
            by_version = Counter(kubelet.servers[p].version for p in eps if p in kubelet.servers)
            return by_version if by_version == want and len(eps) == sum(want.values()) else None

        eventually(settled, timeout=60, what=f"the Service's endpoints to be {want}")
        out = kubectl(mvs.kubeconfig, "-n", mvs.ns, "get", "mv", "iris-v2").stdout
        assert f"{step}/2" in out and str(weight) in out, out
        share = measure_share(mvs, api_client, kubelet, "iris-v2", step)
        figures[step] = share
        print(f"step {step}: canary served {share:.1f}% of {REQUESTS} requests (weight {weight}%)")
        assert abs(share - weight) <= TOLERANCE, f"step {step}: canary served {share:.1f}%, weight {weight}%"
    mvs.wait_phase("iris-v2", "Serving", timeout=240)
    assert mvs.champion_of("iris") == "iris-v2"
    mvs.wait_phase("iris-v1", "Superseded")
    mvs.wait_event("iris-v2", "CanaryStepPassed")
    eventually(
        lambda: (
            {
                kubelet.servers[p].version
                for p in endpoints(api_client, mvs.ns, "iris")
                if p in kubelet.servers
            }
            == {"iris-v2"}
        ),
        timeout=90,
        what="the stable Service to select the new champion alone",
    )


def test_a_breach_at_step_one_rolls_back_to_100_0(mvs, kubelet, operator, api_client):
    mvs.create("iris-v1", serving={"replicas": 4, "drainSeconds": 0})
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    spec = {
        "steps": [{"weight": 25, "pause": "60s"}, {"weight": 50, "pause": "60s"}],
        "minRequests": 20,
        "maxP99LatencySeconds": 0.0000001,  # every request breaches
    }
    mvs.create(
        "iris-v2",
        serving={"replicas": 4, "drainSeconds": 0, "rollout": {"strategy": "Canary", "canary": spec}},
    )
    eventually(step_in_effect(mvs, "iris-v2", 1), timeout=180, what="step 1 in effect")
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set() and mvs.phase("iris-v2") == "Canary":
            with contextlib.suppress(AssertionError):  # endpoints changing under the rollback
                send_through_service(api_client, mvs.ns, kubelet, 100)
            stop.wait(0.5)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        st = mvs.wait_phase("iris-v2", "Rejected", timeout=120)
    finally:
        stop.set()
        t.join(timeout=30)
    assert "step 1/2" in st["message"] and "p99" in st["message"], st["message"]
    assert st["canary"]["weight"] == 0
    mvs.wait_event("iris-v2", "CanaryRolledBack")
    # 100/0: the stable Service selects the champion alone, at its full size again.
    eventually(
        lambda: mvs.champion_of("iris") == "iris-v1",
        timeout=30,
        what="the stable Service to select the champion alone",
    )
    eventually(
        lambda: mvs.apps.read_namespaced_deployment("iris-v1-server", mvs.ns).spec.replicas == 4,
        timeout=30,
        what="the champion to scale back to 4",
    )
    eventually(
        lambda: (
            [
                kubelet.servers[p].version
                for p in endpoints(api_client, mvs.ns, "iris")
                if p in kubelet.servers
            ]
            == ["iris-v1"] * 4
        ),
        timeout=90,
        what="4 champion endpoints and no canary",
    )


@pytest.fixture(scope="session")
def gateway_api(cluster: Any) -> None:
    kubectl(str(cluster.kubeconfig), "apply", "--server-side", "-f", str(standard_crds()))
    kubectl(
        str(cluster.kubeconfig),
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/httproutes.gateway.networking.k8s.io",
    )


def route_weights(api: client.ApiClient, namespace: str, name: str) -> list[list[tuple[str, int]]]:
    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", name
    )
    return [
        [(b["name"], b.get("weight", 1)) for b in r.get("backendRefs") or []] for r in route["spec"]["rules"]
    ]


def test_gateway_api_canary_sets_exact_route_weights(mvs, kubelet, operator, api_client, gateway_api):
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        "gateway.networking.k8s.io",
        "v1",
        mvs.ns,
        "httproutes",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "iris"},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "hostnames": ["iris.example.com"],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                        "backendRefs": [{"name": "iris", "port": 80}],
                    },
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}],
                        "backendRefs": [{"name": "iris", "port": 80}],
                    },
                ],
            },
        },
    )
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    spec = {
        "traffic": "gatewayAPI",
        "httpRoute": "iris",
        "steps": [{"weight": 10, "pause": "20s"}, {"weight": 50, "pause": "20s"}],
        "minRequests": 5,
        "maxP99LatencySeconds": 5.0,
    }
    mvs.create("iris-v2", serving={"drainSeconds": 0, "rollout": {"strategy": "Canary", "canary": spec}})
    srv = eventually(lambda: kubelet.server_for("iris-v2"), timeout=120, what="the canary's server")
    stop = threading.Event()

    def traffic() -> None:  # what a gateway would send the canary's backend (no data plane here)
        with httpx.Client(timeout=5) as c:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    c.post(f"{srv.url}/predict", json={"instances": [ROWS[0]]})
                stop.wait(0.05)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        for step, weight in ((1, 10), (2, 50)):
            c = eventually(step_in_effect(mvs, "iris-v2", step), timeout=120, what=f"step {step} in effect")
            assert c["weight"] == weight and c["effectiveWeight"] == weight
            want = [("iris", 100 - weight), ("iris-v2-server", weight)]
            assert route_weights(api_client, mvs.ns, "iris") == [want, want]
        mvs.wait_phase("iris-v2", "Serving", timeout=180)
    finally:
        stop.set()
        t.join(timeout=10)
    assert mvs.champion_of("iris") == "iris-v2"
    eventually(
        lambda: route_weights(api_client, mvs.ns, "iris") == [[("iris", 100)], [("iris", 100)]],
        timeout=30,
        what="the route to send everything to the stable Service",
    )
    route = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", mvs.ns, "httproutes", "iris"
    )
    assert route["spec"]["hostnames"] == ["iris.example.com"], "the user's fields stay"
    assert route["spec"]["rules"][1]["matches"][0]["path"]["value"] == "/predict"


def test_a_gateway_api_canary_whose_analysis_fails_is_rolled_back_and_the_route_returns_to_100_0(
    mvs, kubelet, operator, api_client, gateway_api
):
    """The route held 90/10 during step 1; the canary breaches its p99 threshold, is Rejected, and
    in the same pass every rule of the HTTPRoute sends everything to the stable Service again (the
    canary's backendRef removed), which still selects the champion alone; the canary's Deployment
    and Service are deleted."""
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io",
        "v1",
        mvs.ns,
        "httproutes",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "iris"},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                        "backendRefs": [{"name": "iris", "port": 80}],
                    },
                    {"backendRefs": [{"name": "iris", "port": 80}]},
                ],
            },
        },
    )
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    spec = {
        "traffic": "gatewayAPI",
        "httpRoute": "iris",
        "steps": [{"weight": 10, "pause": "60s"}, {"weight": 50, "pause": "60s"}],
        "minRequests": 5,
        "maxP99LatencySeconds": 0.0000001,  # every request breaches
    }
    mvs.create("iris-v2", serving={"drainSeconds": 0, "rollout": {"strategy": "Canary", "canary": spec}})
    c = eventually(step_in_effect(mvs, "iris-v2", 1), timeout=180, what="step 1 in effect")
    assert c["weight"] == 10 and c["effectiveWeight"] == 10
    split = [("iris", 90), ("iris-v2-server", 10)]
    assert route_weights(api_client, mvs.ns, "iris") == [split, split]
    srv = kubelet.server_for("iris-v2")
    assert srv is not None
    # What the gateway would send the canary's backend (no data plane here); Prometheus scrapes it.
    with IrisTraffic(srv.url, pause=0.05):
        st = mvs.wait_phase("iris-v2", "Rejected", timeout=180)
    assert "step 1/2" in st["message"] and "p99" in st["message"], st["message"]
    assert st["canary"]["weight"] == 0 and st["canary"]["effectiveWeight"] == 0
    everything = [("iris", 100)]
    eventually(
        lambda: route_weights(api_client, mvs.ns, "iris") == [everything, everything],
        timeout=30,
        what="every rule of the route back to the stable Service at 100",
    )
    assert mvs.champion_of("iris") == "iris-v1" and mvs.phase("iris-v1") == "Serving"
    mvs.wait_event("iris-v2", "CanaryRolledBack")
    eventually(
        lambda: any("TrafficShifted" in e and "iris: 0% to iris-v2" in e for e in mvs.events("iris-v2")),
        timeout=30,
        what="the TrafficShifted Event for 0%",
    )

    def canary_objects_gone() -> bool:
        deps = mvs.apps.list_namespaced_deployment(mvs.ns).items
        svcs = mvs.core.list_namespaced_service(mvs.ns).items
        return "iris-v2-server" not in {d.metadata.name for d in deps} | {s.metadata.name for s in svcs}

    eventually(canary_objects_gone, timeout=60, what="the canary's Deployment and Service deleted")
    route = custom.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", mvs.ns, "httproutes", "iris"
    )
    assert route["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/v2", "the user's matches stay"


def test_a_canary_less_accurate_than_the_champion_on_the_same_window_is_rolled_back(mvs, kubelet, operator):
    """Online accuracy from /feedback labels, canary against champion, read from the real Prometheus."""
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    spec = {
        "weight": 50,
        "analysisSeconds": 120,
        "minRequests": 20,
        "maxP99LatencySeconds": 5.0,
        "maxAccuracyDrop": 0.1,
        "minLabels": 30,
    }
    mvs.create("iris-v2", serving={"drainSeconds": 0, "rollout": {"strategy": "Canary", "canary": spec}})
    eventually(step_in_effect(mvs, "iris-v2", 1), timeout=180, what="step 1 in effect")
    canary_srv, champion_srv = kubelet.server_for("iris-v2"), kubelet.server_for("iris-v1")
    assert canary_srv is not None and champion_srv is not None
    # The same traffic to both; the labels that come back say the canary is wrong every time.
    with IrisTraffic(canary_srv.url, wrong_labels=True, pause=0.1), IrisTraffic(champion_srv.url, pause=0.1):
        st = mvs.wait_phase("iris-v2", "Rejected", timeout=150)
    assert "online accuracy" in st["message"] and "vs champion" in st["message"], st["message"]
    assert st["canary"]["weight"] == 0
    eventually(
        lambda: mvs.champion_of("iris") == "iris-v1",
        timeout=30,
        what="the stable Service to select the champion alone",
    )
