"""Canary steps, traffic splits and the quality analysis, without a cluster."""

from datetime import timedelta

import pytest

from modelops.api.modelversion import Canary
from modelops.lifecycle.canary import (
    canary_verdict,
    prediction_distributions,
    prediction_divergence,
    route_backends,
    split_replicas,
)
from modelops.lifecycle.modelversion import CANARY_POLL_SECONDS, CanaryView, ChampionView, DeploymentView
from tests.unit.test_modelversion_lifecycle import NOW, served_world


@pytest.mark.parametrize(
    ("weight", "total", "split"),
    [
        (10, 10, (1, 9)),  # exact
        (50, 4, (2, 2)),
        (25, 4, (1, 3)),
        (10, 4, (1, 3)),  # nearest with one pod of each: 25 %
        (90, 4, (3, 1)),
        (99, 10, (9, 1)),  # never the champion's last pod
        (10, 1, (1, 1)),  # one pod: 50 % is the finest split
        (10, 0, (1, 1)),
        (15, 10, (2, 8)),  # half up
        (33, 3, (1, 2)),
    ],
)
def test_split_replicas(weight, total, split):
    assert split_replicas(weight, total) == split


def test_split_is_the_nearest_share_the_pods_allow():
    for total in range(2, 21):
        for weight in range(1, 100):
            c, s = split_replicas(weight, total)
            assert c + s == total and c >= 1 and s >= 1
            best = min(range(1, total), key=lambda k: abs(100 * k / total - weight))
            assert abs(100 * c / total - weight) <= abs(100 * best / total - weight) + 1e-9


def test_route_backends():
    assert route_backends("iris", "v2-server", 10) == [
        {"name": "iris", "port": 80, "weight": 90},
        {"name": "v2-server", "port": 80, "weight": 10},
    ]
    assert route_backends("iris", "v2-server", 0) == [{"name": "iris", "port": 80, "weight": 100}]


def test_schedule_simple_and_steps():
    assert Canary(weight=20, analysis_seconds=30).schedule() == [(20, 30.0)]
    assert Canary().schedule() == [(10, 120.0)]
    c = Canary.model_validate({"steps": [{"weight": 10, "pause": "60s"}, {"weight": 50, "pause": "2m"}]})
    assert c.schedule() == [(10, 60.0), (50, 120.0)]


# --- the analysis ---------------------------------------------------------------------------------

QUALITY = Canary(
    min_requests=10,
    max_accuracy_drop=0.05,
    min_labels=50,
    max_prediction_divergence=0.2,
    min_predictions=100,
)


def view(**kw):
    base = {
        "requests": 500,
        "error_rate": 0.0,
        "p99_seconds": 0.01,
        "labelled": 200,
        "correct": 190,
        "champion_labelled": 200,
        "champion_correct": 188,
        "predictions": {"0": 100, "1": 100, "2": 100},
        "champion_predictions": {"0": 110, "1": 95, "2": 95},
    }
    return CanaryView(**{**base, **kw})


def test_quality_pass_needs_the_whole_pause():
    assert canary_verdict(QUALITY, view(), 30, 60)[0] == "wait"
    verdict, why = canary_verdict(QUALITY, view(), 61, 60)
    assert verdict == "pass" and "online accuracy 0.95 vs champion 0.94" in why and "divergence" in why


def test_accuracy_drop_breaches_at_once():
    verdict, why = canary_verdict(QUALITY, view(correct=150), 5, 60)
    assert verdict == "fail" and "online accuracy 0.75 vs champion 0.94" in why


def test_divergent_predictions_breach():
    verdict, why = canary_verdict(QUALITY, view(predictions={"0": 300, "1": 0, "2": 0}), 5, 60)
    assert verdict == "fail" and "Jensen-Shannon" in why


def test_too_few_labels_waits_then_fails_inconclusive():
    few = view(labelled=10, correct=2)  # far worse, but 10 labels judge nothing
    assert canary_verdict(QUALITY, few, 5, 60)[0] == "wait"
    verdict, why = canary_verdict(QUALITY, few, 100, 60)
    assert verdict == "wait" and "10/200 labels" in why
    verdict, why = canary_verdict(QUALITY, few, 181, 60)
    assert verdict == "fail" and "inconclusive" in why and "labels" in why


def test_too_few_predictions_for_divergence():
    v = view(champion_predictions={"0": 10, "1": 10, "2": 10})
    assert canary_verdict(QUALITY, v, 100, 60)[0] == "wait"
    assert canary_verdict(QUALITY, v, 200, 60)[0] == "fail"


def test_regressors_are_judged_on_mae():
    c = Canary(min_requests=1, max_mae_increase=0.5, min_labels=10)
    good = CanaryView(100, 0.0, 0.01, labelled=50, abs_error=50, champion_labelled=50, champion_abs_error=40)
    assert canary_verdict(c, good, 61, 60, "regression")[0] == "pass"
    bad = CanaryView(100, 0.0, 0.01, labelled=50, abs_error=100, champion_labelled=50, champion_abs_error=40)
    verdict, why = canary_verdict(c, bad, 5, 60, "regression")
    assert verdict == "fail" and "MAE 2 vs champion 0.8" in why


def test_a_metric_of_the_wrong_kind_is_refused():
    verdict, why = canary_verdict(Canary(max_mae_increase=1.0), view(), 5, 60, "classification")
    assert verdict == "fail" and "maxMaeIncrease does not apply" in why


def test_divergence_of_binned_predictions_with_different_edges():
    # The same uniform distribution on [0, 4], seen through two different sets of bucket bounds
    # (read linearly within a bucket; nothing is known below a histogram's lowest bound).
    a = {"1": 25.0, "2": 50.0, "3": 75.0, "4": 100.0, "+Inf": 100.0}
    b = {"1": 25.0, "4": 100.0, "+Inf": 100.0}
    ca, cb = prediction_distributions(a, b, buckets=True)
    assert sum(ca) == pytest.approx(100) and sum(cb) == pytest.approx(100)
    assert ca == pytest.approx(cb)
    js, _, _ = prediction_divergence(
        CanaryView(predictions=a, champion_predictions=b, prediction_buckets=True)
    )
    assert js == pytest.approx(0.0, abs=1e-9)
    shifted = {"1": 0.0, "4": 0.0, "+Inf": 100.0}
    js, _, _ = prediction_divergence(
        CanaryView(predictions=shifted, champion_predictions=b, prediction_buckets=True)
    )
    assert js == pytest.approx(1.0)


def test_classes_only_one_version_predicts_count():
    a, b = prediction_distributions({"0": 5}, {"1": 5}, buckets=False)
    assert a == [5, 0] and b == [0, 5]


@pytest.mark.parametrize(
    ("v", "elapsed", "verdict"),
    [
        (None, 10, "wait"),
        (None, 400, "fail"),
        (CanaryView(5, 0.5, 0.01), 10, "wait"),  # too few requests to judge a breach
        (CanaryView(50, 0.0, 2.0), 10, "fail"),  # p99 breach
        (CanaryView(5, 0.0, 0.01), 100, "wait"),
        (CanaryView(5, 0.0, 0.01), 400, "fail"),
        (CanaryView(error="prometheus unreachable"), 10, "wait"),
    ],
)
def test_http_verdicts(v, elapsed, verdict):
    c = Canary(analysis_seconds=100, min_requests=10, max_p99_latency_seconds=0.5)
    assert canary_verdict(c, v, elapsed)[0] == verdict


# --- the planner: steps over time -----------------------------------------------------------------


def steps_spec(traffic="replicas"):
    canary = {
        "traffic": traffic,
        "steps": [{"weight": 25, "pause": "60s"}, {"weight": 50, "pause": "60s"}],
        "minRequests": 10,
    }
    if traffic == "gatewayAPI":
        canary["httpRoute"] = "iris"
    return {"replicas": 4, "rollout": {"strategy": "Canary", "canary": canary}}


def champion(replicas=4, ready=4, pool=True):
    return ChampionView(
        "v1", {"accuracy": 0.9}, replicas=4, deployment=DeploymentView(replicas, ready), pool=pool
    )


def test_replicas_canary_walks_its_steps_and_promotes():
    w = served_world(name="v2", serving=steps_spec())
    p = w.step(deployment=None, champion=champion())
    assert p.phase == "Deploying" and p.replicas == 1 and p.pool  # step 1: 1 of 4 pods
    # ready, but the champion has not scaled down to 3 yet: the step's clock does not run
    p = w.step(deployment=DeploymentView(1, 1, pool_pods=1), champion=champion())
    assert p.phase == "Canary" and p.canary_status["stableReplicas"] == 3 and p.canary_status["weight"] == 25
    assert p.canary_status["stepStarted"] is None and p.requeue_after == CANARY_POLL_SECONDS
    assert w.status.canary is not None and w.status.canary.progress == "1/2"
    w.now = NOW + timedelta(seconds=5)
    p = w.step(deployment=DeploymentView(1, 1, pool_pods=1), champion=champion(3, 3))
    assert p.canary_status["stepStarted"] and p.canary_status["effectiveWeight"] == 25.0
    assert ("Normal", "CanaryStep") in [(t, r) for t, r, _ in p.events]
    w.now = NOW + timedelta(seconds=70)
    p = w.step(
        deployment=DeploymentView(1, 1, pool_pods=1),
        champion=champion(3, 3),
        canary=CanaryView(50, 0.0, 0.01),
    )
    assert p.canary_status["step"] == 2 and p.canary_status["weight"] == 50 and p.replicas == 2
    assert p.canary_status["stableReplicas"] == 2 and p.canary_status["stepStarted"] is None
    # resizing between steps: still the canary at step 2, the champion told to make room
    p = w.step(deployment=DeploymentView(2, 1, pool_pods=1), champion=champion(3, 3))
    assert p.phase == "Canary" and p.replicas == 2 and p.canary_status["step"] == 2
    assert p.canary_status["stableReplicas"] == 2 and p.canary_status["stepStarted"] is None
    w.now = NOW + timedelta(seconds=80)
    p = w.step(
        deployment=DeploymentView(2, 2, pool_pods=2),
        champion=champion(2, 2),
        canary=CanaryView(50, 0.0, 0.01),
    )
    assert p.canary_status["stepStarted"] and p.phase == "Canary" and not p.promote
    w.now = NOW + timedelta(seconds=141)
    p = w.step(
        deployment=DeploymentView(2, 2, pool_pods=2),
        champion=champion(2, 2),
        canary=CanaryView(90, 0.0, 0.01),
    )
    assert p.replicas == 4 and not p.promote  # scale to full size first
    p = w.step(
        deployment=DeploymentView(4, 4, pool_pods=4),
        champion=champion(2, 2),
        canary=CanaryView(90, 0.0, 0.01),
    )
    assert p.promote


def test_a_breach_at_step_one_rolls_back_to_100_0():
    w = served_world(name="v2", serving=steps_spec())
    w.step(deployment=DeploymentView(1, 1, pool_pods=1), champion=champion(3, 3))
    w.now = NOW + timedelta(seconds=10)
    p = w.step(
        deployment=DeploymentView(1, 1, pool_pods=1),
        champion=champion(3, 3),
        canary=CanaryView(50, 0.2, 0.01),
    )
    assert (
        p.phase == "Rejected" and p.replicas is None and "step 1/2" in p.message and "error rate" in p.message
    )
    assert p.canary_status["weight"] == 0 and p.events[-1][1] == "CanaryRolledBack"
    p = w.step(deployment=None, champion=champion(3, 3))  # later passes keep the record
    assert p.phase == "Rejected" and w.status.canary is not None and w.status.canary.weight == 0


def test_the_champion_shares_then_takes_back_its_pods():
    from modelops.lifecycle.modelversion import Observed, plan  # noqa: F401

    w = served_world(name="v1", serving={"replicas": 4})
    w.step(deployment=DeploymentView(4, 4), champion=ChampionView("v1", recorded="v1"))
    p = w.step(deployment=DeploymentView(4, 4), champion=ChampionView("v1", recorded="v1"), canary_split=3)
    assert p.phase == "Serving" and p.replicas == 3 and p.stable_pool is True and p.pool
    p = w.step(deployment=DeploymentView(3, 3), champion=ChampionView("v1", recorded="v1"))
    assert p.replicas == 4 and p.stable_pool is False and p.phase == "Serving"
    p = w.step(deployment=DeploymentView(4, 4), champion=ChampionView("v1", recorded="v1"))
    assert w.status.conditions[-1].type != "Reconciling" and "sharing" not in (w.status.message or "")


def test_gateway_canary_sets_exact_route_weights_and_restores_on_breach():
    w = served_world(name="v2", serving=steps_spec("gatewayAPI"))
    champ = ChampionView("v1", replicas=4, deployment=DeploymentView(4, 4))
    p = w.step(deployment=DeploymentView(1, 1), champion=champ)
    assert p.route == ("iris", 25) and p.canary_status["stepStarted"] is None and not p.pool
    p = w.step(deployment=DeploymentView(1, 1), champion=champ, route_weights={"iris": 75, "v2-server": 25})
    assert p.canary_status["stepStarted"] and p.canary_status["effectiveWeight"] == 25
    w.now = NOW + timedelta(seconds=5)
    p = w.step(
        deployment=DeploymentView(1, 1),
        champion=champ,
        route_weights={"iris": 75, "v2-server": 25},
        canary=CanaryView(50, 0.0, 9.0),
    )
    assert p.phase == "Rejected" and p.route == ("iris", 0) and "p99" in p.message


def test_a_split_never_in_effect_fails_the_step():
    w = served_world(name="v2", serving=steps_spec("gatewayAPI"))
    champ = ChampionView("v1", replicas=4, deployment=DeploymentView(4, 4))
    w.step(deployment=DeploymentView(1, 1), champion=champ)  # route missing
    w.now = NOW + timedelta(seconds=181)
    p = w.step(deployment=DeploymentView(1, 1), champion=champ)
    assert p.phase == "Rejected" and "not in effect" in p.message and "HTTPRoute iris not found" in p.message
