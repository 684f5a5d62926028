"""spec.serving.autoscaling on the real node, with the real HPA controller (kube-controller-manager):
the owned HPA, replicas left to it (server-side apply field ownership), the extra server containers
it asks for started and Ready, and the HPA going with the version.

Moved from the kwok suite: nothing here needs a fault on cue. The node has no metrics server, so the
HPA sizes only to its minimum (below it) and otherwise holds what it finds, as a real cluster's HPA
does while its metrics are missing. The node and the operator pod are the session's
(tests/e2e/conftest.py); this module has its own namespace and PV.
"""

from __future__ import annotations

from kubernetes import client

from tests.support.realnode import Versions, marks
from tests.support.wait import eventually

pytestmark = marks()

NS = "real-autoscaling"

AUTOSCALING = {"minReplicas": 1, "maxReplicas": 3, "targetCPUUtilization": 80}


def replicas_managers(dep: client.V1Deployment) -> set[str]:
    """Who owns spec.replicas: every managedFields entry that holds f:spec.f:replicas."""
    out = set()
    for e in dep.metadata.managed_fields or []:
        if "f:replicas" in ((e.fields_v1 or {}).get("f:spec") or {}):
            out.add(f"{e.manager}/{e.operation}")
    return out


def test_an_autoscaled_version_owns_an_hpa_that_sizes_its_servers(mvs: Versions) -> None:
    hpas = client.AutoscalingV2Api(mvs.core.api_client)
    mvs.create("iris-v1", serving={"autoscaling": AUTOSCALING, "drainSeconds": 0})
    mvs.wait_phase("iris-v1", "Serving")
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
        lambda: mvs.status("iris-v1")["serving"]["readyReplicas"] == 3, timeout=300, what="3 servers ready"
    )
    # three server containers of the new template, started and passing their readiness probe

    def new_servers_ready() -> list[client.V1Pod] | None:
        servers = mvs.pods("app.kubernetes.io/component=server,modelops.dev/version=iris-v1")
        ready = [
            p
            for p in servers
            if not p.metadata.deletion_timestamp
            and p.spec.containers[0].resources.requests["cpu"] == "150m"
            and all(c.ready and c.state.running for c in p.status.container_statuses or [])
        ]
        return ready if len(ready) == 3 else None

    eventually(new_servers_ready, timeout=300, what="3 server containers of the new template Ready")
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


def test_a_superseded_autoscaled_version_loses_its_hpa_when_scaled_down(mvs: Versions) -> None:
    """Its own model: the namespace is the module's, and the first test's iris may still be going."""
    hpas = client.AutoscalingV2Api(mvs.core.api_client)
    mvs.create("rose-v1", "rose", serving={"autoscaling": AUTOSCALING, "drainSeconds": 0})
    mvs.wait_phase("rose-v1", "Serving")
    eventually(
        lambda: hpas.read_namespaced_horizontal_pod_autoscaler("rose-v1-server", mvs.ns),
        timeout=30,
        what="HPA",
    )
    mvs.create("rose-v2", "rose")
    mvs.wait_phase("rose-v2", "Serving")
    mvs.wait_phase("rose-v1", "Superseded")
    eventually(
        lambda: mvs.apps.read_namespaced_deployment("rose-v1-server", mvs.ns).spec.replicas == 0,
        timeout=60,
        what="rose-v1 scaled to 0 (by the operator: an HPA cannot)",
    )
    assert "rose-v1-server" not in [
        h.metadata.name for h in hpas.list_namespaced_horizontal_pod_autoscaler(mvs.ns).items
    ]
