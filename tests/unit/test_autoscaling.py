"""spec.serving.autoscaling: validation, the rendered HPA, who sizes the Deployment, and canary arithmetic."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from modelops.api.modelversion import Serving
from modelops.k8s.cache import strip
from modelops.k8s.kube import FIELD_MANAGER, owns
from modelops.lifecycle import resources
from modelops.lifecycle.canary import split_total
from modelops.lifecycle.modelversion import CanaryView, ChampionView, DeploymentView
from modelops.lifecycle.observed import autoscaled_size, champion_view
from tests.unit.test_canary import steps_spec
from tests.unit.test_modelversion_lifecycle import NOW, served_world
from tests.unit.test_resources import ARTIFACT, SETTINGS, SPEC

CPU = {"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilization": 70}
RPS = {"minReplicas": 1, "maxReplicas": 4, "targetRequestsPerSecond": 2.5}


# --- validation (the same words as the CRD's CEL rules) ----------------------------------------------


@pytest.mark.parametrize(
    ("autoscaling", "words"),
    [
        ({"maxReplicas": 3}, "exactly one of targetCPUUtilization, targetRequestsPerSecond"),
        (
            {"maxReplicas": 3, "targetCPUUtilization": 50, "targetRequestsPerSecond": 5},
            "exactly one of targetCPUUtilization, targetRequestsPerSecond",
        ),
        ({"minReplicas": 4, "maxReplicas": 3, "targetCPUUtilization": 50}, "minReplicas must not exceed"),
        ({"minReplicas": 0, "maxReplicas": 3, "targetCPUUtilization": 50}, "greater than or equal to 1"),
    ],
)
def test_invalid_autoscaling_is_refused(autoscaling, words):
    with pytest.raises(ValidationError, match=words):
        Serving.model_validate({"autoscaling": autoscaling})


def test_capture_needs_a_single_autoscaled_server():
    with pytest.raises(ValidationError, match=r"autoscaling\.maxReplicas 1"):
        Serving.model_validate({"capture": {}, "autoscaling": {"maxReplicas": 2, "targetCPUUtilization": 50}})
    Serving.model_validate({"capture": {}, "autoscaling": {"maxReplicas": 1, "targetCPUUtilization": 50}})


def test_the_serving_size_is_the_minimum_when_autoscaled():
    assert Serving.model_validate({"replicas": 3}).size() == 3
    assert Serving.model_validate({"replicas": 3, "autoscaling": CPU}).size() == 2


# --- rendering ---------------------------------------------------------------------------------------


def spec_with(autoscaling):
    return SPEC.model_copy(update={"serving": Serving.model_validate({"autoscaling": autoscaling})})


def test_cpu_hpa_targets_the_version_deployment():
    hpa = resources.server_hpa("churn-v3", "ml", spec_with(CPU), (2, 6))
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["metadata"]["name"] == "churn-v3-server"
    assert hpa["metadata"]["labels"]["modelops.dev/version"] == "churn-v3"
    assert hpa["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelops"  # watched like the others
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "churn-v3-server",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ]


def test_requests_per_second_hpa_reads_the_pods_metric_an_adapter_serves():
    hpa = resources.server_hpa("churn-v3", "ml", spec_with(RPS), (1, 4))
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "modelops_server_requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": "2500m"},
            },
        }
    ]


@pytest.mark.parametrize(("value", "text"), [(10, "10"), (2.5, "2500m"), (0.1, "100m"), (1.0, "1")])
def test_quantities_are_written_as_the_api_server_returns_them(value, text):
    assert resources.milli(value) == text


def test_an_autoscaled_deployment_leaves_replicas_to_its_hpa():
    spec = spec_with(CPU)
    owned = resources.server_deployment("churn-v3", "ml", spec, ARTIFACT, "ab" * 32, 2, SETTINGS)
    left = resources.server_deployment("churn-v3", "ml", spec, ARTIFACT, "ab" * 32, None, SETTINGS)
    assert owned["spec"]["replicas"] == 2 and "replicas" not in left["spec"]
    assert {k: v for k, v in owned["spec"].items() if k != "replicas"} == left["spec"]


# --- who owns spec.replicas (managedFields) ------------------------------------------------------------


def deployment(*entries):
    return {"metadata": {"name": "d", "managedFields": list(entries)}, "spec": {"replicas": 3}}


def entry(manager, operation, fields):
    return {"manager": manager, "operation": operation, "fieldsV1": fields}


def test_ownership_of_replicas_survives_the_cache_strip():
    ours = entry(FIELD_MANAGER, "Apply", {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}})
    hpa = entry("kube-controller-manager", "Update", {"f:spec": {"f:replicas": {}}})
    d = strip(deployment(ours))
    assert owns(d, FIELD_MANAGER, ("f:spec", "f:replicas"))
    assert "f:template" not in d["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
    # the HPA wrote a new size: the field moved to it, we own nothing to hand over
    d = strip(deployment(entry(FIELD_MANAGER, "Apply", {"f:spec": {"f:template": {}}}), hpa))
    assert not owns(d, FIELD_MANAGER, ("f:spec", "f:replicas"))
    # an Update by our manager name is not an apply of ours
    assert not owns(
        deployment(entry(FIELD_MANAGER, "Update", {"f:spec": {"f:replicas": {}}})),
        FIELD_MANAGER,
        ("f:spec", "f:replicas"),
    )


# --- the plan: HPA bounds ----------------------------------------------------------------------------


def test_a_serving_champion_gets_the_spec_bounds_and_a_drained_one_none():
    w = served_world(serving={"autoscaling": CPU, "drainSeconds": 30})
    p = w.step(deployment=None)
    assert p.replicas == 2 and p.autoscale == (2, 6)  # created at minReplicas
    p = w.step(deployment=DeploymentView(2, 2), champion=ChampionView("v1", recorded="v1"))
    assert p.phase == "Serving" and p.autoscale == (2, 6)
    # the HPA scaled it to 5 and three are still starting: the champion serves (its minimum is ready)
    p = w.step(deployment=DeploymentView(5, 2), champion=ChampionView("v1", recorded="v1"))
    assert p.phase == "Serving" and p.autoscale == (2, 6)
    assert next(c for c in w.status.conditions if c.type == "Ready").status == "True"
    p = w.step(deployment=DeploymentView(5, 5), champion=ChampionView("v2"))
    assert p.phase == "Superseded" and p.autoscale == (2, 6)  # draining: still autoscaled
    w.now = NOW + timedelta(seconds=31)
    p = w.step(deployment=DeploymentView(5, 5), champion=ChampionView("v2"))
    assert p.replicas == 0 and p.autoscale is None  # an HPA cannot hold 0: the operator scales it down


def test_the_champion_sharing_with_a_canary_is_pinned_through_its_hpa():
    w = served_world(name="v1", serving={"autoscaling": CPU})
    w.step(deployment=DeploymentView(5, 5), champion=ChampionView("v1", recorded="v1"))
    p = w.step(deployment=DeploymentView(5, 5), champion=ChampionView("v1", recorded="v1"), canary_split=4)
    assert p.replicas == 4 and p.stable_pool and p.autoscale == (4, 4)
    p = w.step(deployment=DeploymentView(4, 4), champion=ChampionView("v1", recorded="v1"))
    assert p.autoscale == (2, 6)  # the canary ended: the spec's bounds again


def test_champion_size_is_what_its_hpa_chose():
    auto = {"minReplicas": 2, "maxReplicas": 6}
    assert autoscaled_size(auto, None) == 2 and autoscaled_size(auto, 0) == 2
    assert autoscaled_size(auto, 5) == 5 and autoscaled_size(auto, 9) == 6
    mv = {"spec": {"serving": {"replicas": 1, "autoscaling": {**auto, "targetCPUUtilization": 50}}}}
    view = champion_view("v1", mv, None, DeploymentView(5, 5))
    assert view.replicas == 5 and view.autoscaled
    assert (
        champion_view("v1", {"spec": {"serving": {"replicas": 3}}}, None, DeploymentView(5, 5)).replicas == 3
    )


def test_split_total_keeps_the_size_the_canary_began_with():
    assert split_total(4, False, (1, 2)) == 4  # fixed size: the spec decides, as before
    assert split_total(3, True, (1, 4)) == 5  # autoscaled, pinned to 4: the split of 5 stays
    assert split_total(5, True, (None, None)) == 5  # first step: the HPA's current size


def test_canary_beside_an_autoscaled_champion_splits_its_current_size():
    """The HPA had the champion at 8: a 25 % step is 2 + 6, and stays so while the champion shrinks to 6."""
    serving = steps_spec()
    serving["autoscaling"] = {"minReplicas": 1, "maxReplicas": 4, "targetCPUUtilization": 60}

    def champ(replicas, ready):
        return ChampionView(
            "v1",
            {"accuracy": 0.9},
            replicas=8,
            deployment=DeploymentView(replicas, ready),
            pool=True,
            autoscaled=True,
        )

    w = served_world(name="v2", serving=serving)
    p = w.step(deployment=None, champion=champ(8, 8))
    assert p.replicas == 2 and p.autoscale == (2, 2)  # the canary is pinned too
    p = w.step(deployment=DeploymentView(2, 2, pool_pods=2), champion=champ(8, 8))
    assert p.canary_status["canaryReplicas"] == 2 and p.canary_status["stableReplicas"] == 6
    # pinned at 6 now, the champion's view says 6: the split still comes from 8
    shrunk = ChampionView(
        "v1", {"accuracy": 0.9}, replicas=6, deployment=DeploymentView(6, 6), pool=True, autoscaled=True
    )
    w.now = NOW + timedelta(seconds=5)
    p = w.step(deployment=DeploymentView(2, 2, pool_pods=2), champion=shrunk)
    assert p.canary_status["stableReplicas"] == 6 and p.canary_status["stepStarted"]
    w.now = NOW + timedelta(seconds=70)
    p = w.step(
        deployment=DeploymentView(2, 2, pool_pods=2), champion=shrunk, canary=CanaryView(50, 0.0, 0.01)
    )
    assert p.canary_status["step"] == 2 and p.canary_status["canaryReplicas"] == 4
    assert p.canary_status["stableReplicas"] == 4 and p.autoscale == (4, 4)
