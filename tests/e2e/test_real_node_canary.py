"""Canaries on the real node: the operator pod analyses real server containers from what the
session's Prometheus scraped of them (found by Kubernetes discovery, the shipped PodMonitor's
relabelling), and moves real pods and a real HTTPRoute.

`replicas` mode: requests go from the host to the model's stable ClusterIP, each on a new
connection, and kube-proxy's iptables rules choose the endpoint; the share each version served is
counted at the server pods (their own request counters) and must be within 5 points of the
step's weight. `gatewayAPI` mode: the HTTPRoute (standard CRDs from the Gateway API Go module)
carries exactly the step's weights; there is no gateway data plane, so the test sends the canary's
backend, its own Service's ClusterIP, what a gateway would. A breach at step 1 (a p99 threshold no
request meets, or feedback labels that say the canary is wrong) rolls back to 100/0 at once.

Moved from the kwok suite: the breaches need no fault from the container, and the servers'
latency, predictions and feedback are the real ones. The node and the operator pod are the
session's (tests/e2e/conftest.py); this module has its own namespace.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.support.gatewayapi import standard_crds
from tests.support.realnode import Cluster, Versions, kubectl, marks
from tests.support.servers import (
    cluster_address,
    endpoint_versions,
    send_new_connections,
    served_by_pod,
    wait_proxied,
)
from tests.support.traffic import IrisTraffic
from tests.support.wait import eventually

pytestmark = marks()

NS = "real-canary"
REQUESTS = 2000
TOLERANCE = 5.0
"""Points of share: at 2,000 requests that is 5.2 binomial standard deviations at 25 %."""


def canary(mvs: Versions, name: str) -> dict[str, Any]:
    return mvs.status(name).get("canary") or {}


def step_in_effect(mvs: Versions, name: str, step: int) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        c = canary(mvs, name)
        return c if c.get("step") == step and c.get("stepStarted") and mvs.phase(name) == "Canary" else None

    return check


@pytest.fixture(autouse=True)
def released(mvs: Versions) -> Iterator[None]:
    """Each test has a model of its own; its versions are deleted when it ends, and their server
    pods waited for, so that the next test's pods find the node's 2 cores free."""
    yield
    for name in mvs.names():
        mvs.delete(name)
    eventually(
        lambda: not mvs.names() and not mvs.pods("app.kubernetes.io/component=server"),
        timeout=180,
        what="the test's versions and server pods gone",
    )


def champion_and_canary(mvs: Versions, model: str, canary: dict[str, Any], replicas: int = 1) -> str:
    """`<model>-v1` Serving as the champion, then `<model>-v2` created as its canary; its name."""
    serving = {"replicas": replicas, "drainSeconds": 0}
    mvs.create(f"{model}-v1", model, serving=serving)
    mvs.wait_phase(f"{model}-v1", "Serving")
    mvs.create(f"{model}-v2", model, serving={**serving, "rollout": {"strategy": "Canary", "canary": canary}})
    return f"{model}-v2"


def measure_share(mvs: Versions, model: str, name: str, step: int) -> float:
    """The share of REQUESTS through the stable ClusterIP that `name`'s pods answered, counted
    at the pods and checked against the replies."""
    ip, port = cluster_address(mvs.api, mvs.ns, model)
    before = served_by_pod(mvs.api, mvs.ns, model)
    answered = send_new_connections(ip, port, REQUESTS)
    after = served_by_pod(mvs.api, mvs.ns, model)
    assert canary(mvs, name).get("step") == step, "the step moved on while the traffic was sent"
    assert set(before) == set(after), (before, after)
    counted: Counter[str] = Counter()
    for pod, (version, n) in after.items():
        counted[version] += n - before[pod][1]
    assert sum(counted.values()) == REQUESTS, (counted, before, after)
    assert counted == answered, (counted, answered)
    return 100.0 * counted[name] / REQUESTS


def test_replicas_canary_gets_its_share_of_live_traffic_and_is_promoted(mvs: Versions) -> None:
    model = "share"
    spec = {
        "traffic": "replicas",
        # Each share is measured inside its step: 2,000 new connections through kube-proxy take
        # about 10 s here.
        "steps": [{"weight": 25, "pause": "60s"}, {"weight": 50, "pause": "60s"}],
        "minRequests": 20,
        "maxErrorRate": 0.05,
        "maxP99LatencySeconds": 5.0,
        "maxPredictionDivergence": 0.5,
        "minPredictions": 100,
    }
    canary_name = champion_and_canary(mvs, model, spec, replicas=4)
    for step, weight, pods in ((1, 25, (1, 3)), (2, 50, (2, 2))):
        c = eventually(step_in_effect(mvs, canary_name, step), timeout=300, what=f"step {step} in effect")
        assert c["weight"] == weight and (c["canaryReplicas"], c["stableReplicas"]) == pods
        want = {canary_name: pods[0], f"{model}-v1": pods[1]}
        # The EndpointSlice follows the pods a moment later (a champion pod being deleted for the
        # step is still listed for a while), and kube-proxy's rules follow the EndpointSlice.
        eventually(
            lambda want=want: endpoint_versions(mvs.api, mvs.ns, model) == want,
            timeout=90,
            what=f"endpoints {want}",
        )
        wait_proxied(mvs.api, mvs.ns, model)
        out = kubectl(mvs.real.kubeconfig, "-n", mvs.ns, "get", "mv", canary_name).stdout
        assert f"{step}/2" in out and str(weight) in out, out
        share = measure_share(mvs, model, canary_name, step)
        print(f"step {step}: canary served {share:.1f}% of {REQUESTS} ClusterIP requests (weight {weight}%)")
        assert abs(share - weight) <= TOLERANCE, f"step {step}: canary served {share:.1f}%, weight {weight}%"
    mvs.wait_phase(canary_name, "Serving", timeout=300)
    assert mvs.champion_of(model) == canary_name
    mvs.wait_phase(f"{model}-v1", "Superseded")
    mvs.wait_event(canary_name, "CanaryStepPassed")
    eventually(
        lambda: set(endpoint_versions(mvs.api, mvs.ns, model)) == {canary_name},
        timeout=120,
        what="the stable Service to select the new champion alone",
    )


def test_a_breach_at_step_one_rolls_back_to_100_0(mvs: Versions) -> None:
    model = "breach"
    spec = {
        "steps": [{"weight": 50, "pause": "60s"}, {"weight": 75, "pause": "60s"}],
        "minRequests": 20,
        "maxP99LatencySeconds": 0.0000001,  # every request breaches
    }
    canary_name = champion_and_canary(mvs, model, spec, replicas=2)
    eventually(step_in_effect(mvs, canary_name, 1), timeout=300, what="step 1 in effect")
    stop = threading.Event()
    ip, port = cluster_address(mvs.api, mvs.ns, model)

    def traffic() -> None:
        while not stop.is_set() and mvs.phase(canary_name) == "Canary":
            with contextlib.suppress(AssertionError):  # endpoints going under the rollback
                send_new_connections(ip, port, 50, threads=2)
            stop.wait(0.5)

    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        st = mvs.wait_phase(canary_name, "Rejected", timeout=180)
    finally:
        stop.set()
        t.join(timeout=60)
    assert "step 1/2" in st["message"] and "p99" in st["message"], st["message"]
    assert st["canary"]["weight"] == 0
    mvs.wait_event(canary_name, "CanaryRolledBack")
    # 100/0: the stable Service selects the champion alone, at its full size again.
    eventually(
        lambda: mvs.champion_of(model) == f"{model}-v1", timeout=30, what="the stable Service on the champion"
    )
    eventually(
        lambda: mvs.apps.read_namespaced_deployment(f"{model}-v1-server", mvs.ns).spec.replicas == 2,
        timeout=30,
        what="the champion to scale back to 2",
    )
    eventually(
        lambda: endpoint_versions(mvs.api, mvs.ns, model) == {f"{model}-v1": 2},
        timeout=120,
        what="2 champion endpoints and no canary",
    )


@pytest.fixture(scope="module")
def gateway_api(real: Cluster) -> None:
    kubectl(real.kubeconfig, "apply", "--server-side", "-f", str(standard_crds()))
    kubectl(
        real.kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/httproutes.gateway.networking.k8s.io",
    )


def create_route(mvs: Versions, model: str, rules: list[dict[str, Any]], **spec: Any) -> None:
    """An HTTPRoute named after the model, every rule sending everything to its stable Service."""
    for rule in rules:
        rule["backendRefs"] = [{"name": model, "port": 80}]
    client.CustomObjectsApi(mvs.api).create_namespaced_custom_object(
        "gateway.networking.k8s.io",
        "v1",
        mvs.ns,
        "httproutes",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": model},
            "spec": {"parentRefs": [{"name": "public"}], "rules": rules, **spec},
        },
    )


def read_route(mvs: Versions, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(mvs.api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", mvs.ns, "httproutes", name
    )


def route_weights(mvs: Versions, name: str) -> list[list[tuple[str, int]]]:
    return [
        [(b["name"], b.get("weight", 1)) for b in r.get("backendRefs") or []]
        for r in read_route(mvs, name)["spec"]["rules"]
    ]


def backend(mvs: Versions, service: str) -> Callable[[], str | None]:
    """A Service's ClusterIP URL once the Service exists (the canary's own, which the route's
    canary backendRef names): where a gateway would send that backend's share."""

    def url() -> str | None:
        try:
            return mvs.url(service)
        except client.ApiException:
            return None

    return url


def test_gateway_api_canary_sets_exact_route_weights(mvs: Versions, gateway_api: None) -> None:
    model = "routed"
    create_route(
        mvs,
        model,
        [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}]},
        ],
        hostnames=["iris.example.com"],
    )
    spec = {
        "traffic": "gatewayAPI",
        "httpRoute": model,
        "steps": [{"weight": 10, "pause": "20s"}, {"weight": 50, "pause": "20s"}],
        "minRequests": 5,
        "maxP99LatencySeconds": 5.0,
    }
    canary_name = champion_and_canary(mvs, model, spec)
    with IrisTraffic(backend(mvs, f"{canary_name}-server"), pause=0.05):
        for step, weight in ((1, 10), (2, 50)):
            c = eventually(step_in_effect(mvs, canary_name, step), timeout=300, what=f"step {step} in effect")
            assert c["weight"] == weight and c["effectiveWeight"] == weight
            want = [(model, 100 - weight), (f"{canary_name}-server", weight)]
            assert route_weights(mvs, model) == [want, want]
        mvs.wait_phase(canary_name, "Serving", timeout=300)
    assert mvs.champion_of(model) == canary_name
    eventually(
        lambda: route_weights(mvs, model) == [[(model, 100)], [(model, 100)]],
        timeout=30,
        what="the route to send everything to the stable Service",
    )
    route = read_route(mvs, model)
    assert route["spec"]["hostnames"] == ["iris.example.com"], "the user's fields stay"
    assert route["spec"]["rules"][1]["matches"][0]["path"]["value"] == "/predict"


def test_a_gateway_api_canary_whose_analysis_fails_is_rolled_back_and_the_route_returns_to_100_0(
    mvs: Versions, gateway_api: None
) -> None:
    """The route held 90/10 during step 1; the canary breaches its p99 threshold, is Rejected, and
    in the same pass every rule of the HTTPRoute sends everything to the stable Service again (the
    canary's backendRef removed), which still selects the champion alone; the canary's Deployment
    and Service are deleted."""
    model = "unrouted"
    create_route(mvs, model, [{"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}]}, {}])
    spec = {
        "traffic": "gatewayAPI",
        "httpRoute": model,
        "steps": [{"weight": 10, "pause": "60s"}, {"weight": 50, "pause": "60s"}],
        "minRequests": 5,
        "maxP99LatencySeconds": 0.0000001,  # every request breaches
    }
    canary_name = champion_and_canary(mvs, model, spec)
    c = eventually(step_in_effect(mvs, canary_name, 1), timeout=300, what="step 1 in effect")
    assert c["weight"] == 10 and c["effectiveWeight"] == 10
    split = [(model, 90), (f"{canary_name}-server", 10)]
    assert route_weights(mvs, model) == [split, split]
    with IrisTraffic(backend(mvs, f"{canary_name}-server"), pause=0.05):
        st = mvs.wait_phase(canary_name, "Rejected", timeout=180)
    assert "step 1/2" in st["message"] and "p99" in st["message"], st["message"]
    assert st["canary"]["weight"] == 0 and st["canary"]["effectiveWeight"] == 0
    everything = [(model, 100)]
    eventually(
        lambda: route_weights(mvs, model) == [everything, everything],
        timeout=30,
        what="every rule of the route back to the stable Service at 100",
    )
    assert mvs.champion_of(model) == f"{model}-v1" and mvs.phase(f"{model}-v1") == "Serving"
    mvs.wait_event(canary_name, "CanaryRolledBack")
    eventually(
        lambda: any(
            "TrafficShifted" in e and f"{model}: 0% to {canary_name}" in e for e in mvs.events(canary_name)
        ),
        timeout=30,
        what="the TrafficShifted Event for 0%",
    )

    def canary_objects_gone() -> bool:
        deps = mvs.apps.list_namespaced_deployment(mvs.ns).items
        svcs = mvs.core.list_namespaced_service(mvs.ns).items
        return f"{canary_name}-server" not in {d.metadata.name for d in deps} | {
            s.metadata.name for s in svcs
        }

    eventually(canary_objects_gone, timeout=60, what="the canary's Deployment and Service deleted")
    rules = read_route(mvs, model)["spec"]["rules"]
    assert rules[0]["matches"][0]["path"]["value"] == "/v2", "the user's matches stay"


def test_a_canary_less_accurate_than_the_champion_on_the_same_window_is_rolled_back(mvs: Versions) -> None:
    """Online accuracy from /feedback labels, canary against champion, read from Prometheus."""
    model = "accuracy"
    spec = {
        "weight": 50,
        "analysisSeconds": 120,
        "minRequests": 20,
        "maxP99LatencySeconds": 5.0,
        "maxAccuracyDrop": 0.1,
        "minLabels": 30,
    }
    canary_name = champion_and_canary(mvs, model, spec)
    eventually(step_in_effect(mvs, canary_name, 1), timeout=300, what="step 1 in effect")
    # The same traffic to both; the labels that come back say the canary is wrong every time.
    canary_url, champion_url = mvs.url(f"{canary_name}-server"), mvs.url(f"{model}-v1-server")
    with IrisTraffic(canary_url, wrong_labels=True, pause=0.1), IrisTraffic(champion_url, pause=0.1):
        st = mvs.wait_phase(canary_name, "Rejected", timeout=180)
    assert "online accuracy" in st["message"] and "vs champion" in st["message"], st["message"]
    assert st["canary"]["weight"] == 0
    eventually(
        lambda: mvs.champion_of(model) == f"{model}-v1",
        timeout=30,
        what="the stable Service to select the champion alone",
    )
