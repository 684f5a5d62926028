"""spec.serving.autoscaling on the real API server, with the real HPA controller (kube-controller-manager):
the owned HPA, replicas left to it (server-side apply field ownership), and the HPA going with the version."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.support.wait import eventually

pytestmark = pytest.mark.cluster

AUTOSCALING = {"minReplicas": 1, "maxReplicas": 3, "targetCPUUtilization": 80}


def replicas_managers(dep: client.V1Deployment) -> set[str]:
    """Who owns spec.replicas: every managedFields entry that holds f:spec.f:replicas."""
    out = set()
    for e in dep.metadata.managed_fields or []:
        if "f:replicas" in ((e.fields_v1 or {}).get("f:spec") or {}):
            out.add(f"{e.manager}/{e.operation}")
    return out


def test_an_autoscaled_version_owns_an_hpa_that_sizes_its_servers(mvs, kubelet, operator):
    hpas = client.AutoscalingV2Api(mvs.core.api_client)
    mvs.create("iris-v1", serving={"autoscaling": AUTOSCALING, "drainSeconds": 0})
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    uid = mvs.get("iris-v1")["metadata"]["uid"]

    hpa = eventually(
        lambda: hpas.read_namespaced_horizontal_pod_autoscaler("iris-v1-server", mvs.ns),
        timeout=30,
        what="the HPA",
    )
    assert [(o.kind, o.name, o.uid, o.controller) for o in hpa.metadata.owner_references] == [
        ("ModelVersion", "iris-v1", uid, True)
    ]
    ref = hpa.spec.scale_target_ref
    assert (ref.api_version, ref.kind, ref.name) == ("apps/v1", "Deployment", "iris-v1-server")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 3)
    [metric] = hpa.spec.metrics
    assert metric.type == "Resource" and metric.resource.name == "cpu"
    assert metric.resource.target.average_utilization == 80

    # created at minReplicas, then handed over: our field manager no longer owns spec.replicas
    def handed_over() -> client.V1Deployment | None:
        dep = mvs.apps.read_namespaced_deployment("iris-v1-server", mvs.ns)
        return dep if "modelops/Apply" not in replicas_managers(dep) else None

    dep = eventually(handed_over, timeout=60, what="spec.replicas handed over to the HPA")
    assert dep.spec.replicas == 1, replicas_managers(dep)

    # a new minimum goes to the HPA, and the HPA (not the operator) resizes the Deployment
    mvs.patch("iris-v1", {"spec": {"serving": {"autoscaling": {"minReplicas": 2}}}})
    eventually(
        lambda: (
            hpas.read_namespaced_horizontal_pod_autoscaler("iris-v1-server", mvs.ns).spec.min_replicas == 2
        ),
        timeout=30,
        what="the HPA's new minimum",
    )
    dep = eventually(
        lambda: (d := mvs.apps.read_namespaced_deployment("iris-v1-server", mvs.ns)).spec.replicas == 2 and d,
        timeout=90,
        what="the HPA controller to scale the Deployment to 2",
    )
    owners = replicas_managers(dep)
    assert "modelops/Apply" not in owners and owners, owners

    # the HPA's size stands: a later change the operator applies does not take replicas back
    mvs.apps.patch_namespaced_deployment_scale("iris-v1-server", mvs.ns, {"spec": {"replicas": 3}})
    mvs.patch("iris-v1", {"spec": {"serving": {"drainSeconds": 5}}})
    gen = mvs.get("iris-v1")["metadata"]["generation"]
    eventually(
        lambda: mvs.status("iris-v1").get("observedGeneration") == gen, timeout=60, what="the change seen"
    )
    mvs.patch("iris-v1", {"spec": {"serving": {"resources": {"requests": {"cpu": "150m"}}}}})
    eventually(
        lambda: (
            mvs.apps.read_namespaced_deployment("iris-v1-server", mvs.ns)
            .spec.template.spec.containers[0]
            .resources.requests["cpu"]
            == "150m"
        ),
        timeout=60,
        what="the operator to apply the new server resources",
    )
    assert mvs.apps.read_namespaced_deployment("iris-v1-server", mvs.ns).spec.replicas == 3
    eventually(
        lambda: mvs.status("iris-v1")["serving"]["readyReplicas"] == 3, timeout=120, what="3 servers ready"
    )
    assert mvs.champion_of("iris") == "iris-v1"

    # the HPA goes with the version
    mvs.delete("iris-v1")
    eventually(
        lambda: (
            not [
                h
                for h in hpas.list_namespaced_horizontal_pod_autoscaler(mvs.ns).items
                if h.metadata.name == "iris-v1-server"
            ]
        ),
        timeout=90,
        what="the HPA to be garbage-collected with its version",
    )


def test_a_superseded_autoscaled_version_loses_its_hpa_when_scaled_down(mvs, kubelet, operator):
    hpas = client.AutoscalingV2Api(mvs.core.api_client)
    mvs.create("iris-v1", serving={"autoscaling": AUTOSCALING, "drainSeconds": 0})
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    eventually(
        lambda: hpas.read_namespaced_horizontal_pod_autoscaler("iris-v1-server", mvs.ns),
        timeout=30,
        what="HPA",
    )
    mvs.create("iris-v2")
    mvs.wait_phase("iris-v2", "Serving", timeout=180)
    mvs.wait_phase("iris-v1", "Superseded")
    eventually(
        lambda: mvs.apps.read_namespaced_deployment("iris-v1-server", mvs.ns).spec.replicas == 0,
        timeout=60,
        what="iris-v1 scaled to 0 (by the operator: an HPA cannot)",
    )
    assert "iris-v1-server" not in [
        h.metadata.name for h in hpas.list_namespaced_horizontal_pod_autoscaler(mvs.ns).items
    ]
