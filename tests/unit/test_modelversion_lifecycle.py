"""The life cycle planner, walked through its phases without a cluster."""

from datetime import UTC, datetime, timedelta

import pytest

from modelops.api.modelversion import FairnessReport, ModelVersionSpec, ModelVersionStatus
from modelops.lifecycle.modelversion import (
    ChampionView,
    DeploymentView,
    JobView,
    Observed,
    Plan,
    champion_verdict,
    gate_failures,
    plan,
    status_patch,
    waiting_for_service_slot,
)
from modelops.lifecycle.patches import merge_patch

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def spec(**over) -> ModelVersionSpec:
    body = {
        "model": "iris",
        "training": {"dataset": {"uri": "sklearn:iris"}, "estimator": {"class": "LogisticRegression"}},
        "validation": {"gates": [{"metric": "accuracy", "min": 0.8}]},
    }
    body.update(over)
    return ModelVersionSpec.model_validate(body)


def result(job_uid="job-1", accuracy=0.95, succeeded=True, message=None):
    return {
        "jobUid": job_uid,
        "succeeded": succeeded,
        "message": message,
        "metrics": {"accuracy": accuracy} if succeeded else {},
        "artifact": {"uri": "pvc://modelops-artifacts/iris/v1/model.skops", "sha256": "ab" * 32},
    }


class World:
    """Feeds each plan back as the next status, as the controller does."""

    def __init__(self, sp: ModelVersionSpec, name="v1"):
        self.name, self.spec, self.status, self.now = name, sp, ModelVersionStatus(), NOW

    def step(self, **observed) -> Plan:
        p = self._plan(observed)
        d = self.status.model_dump(by_alias=True, exclude_none=True)
        patch = status_patch(p, d, namespace="ns", name=self.name, generation=1, now="t")
        self.status = ModelVersionStatus.model_validate(merge_patch(d, patch))
        self.last_patch = patch
        self._assert_settled(p, observed)
        return p

    def _plan(self, observed: dict) -> Plan:
        return plan(
            Observed(
                name=self.name, generation=1, spec=self.spec, status=self.status, now=self.now, **observed
            )
        )

    def _assert_settled(self, p: Plan, observed: dict) -> None:
        """Planning again from the status just written and the children as the operator's own
        writes left them decides nothing new: the watch's echo of those writes can wake no one.
        (A promotion is decided again at once by the controller, so it is not an echo.)"""
        if p.promote:
            return
        seen = dict(observed)
        if p.ensure_job and seen.get("job") is None:
            seen["job"] = JobView(uid="job-new", created=self.now)
        if p.ensure_search and seen.get("search_job") is None:
            seen["search_job"] = JobView(uid="search-new", created=self.now)
        dep = seen.get("deployment")
        if p.replicas is None:
            seen["deployment"] = None
        elif dep is None or dep.replicas != p.replicas:
            ready = dep.ready_replicas if dep else 0
            seen["deployment"] = DeploymentView(p.replicas, ready, up_to_date=False)
        again = self._plan(seen)
        d = self.status.model_dump(by_alias=True, exclude_none=True)
        assert status_patch(again, d, namespace="ns", name=self.name, generation=1, now="t") == {}
        assert again.ensure_job <= p.ensure_job and again.replicas == p.replicas
        assert again.ensure_search <= p.ensure_search
        assert again.promote <= p.promote and not again.events

    def with_result(self, **kw):
        self.status = self.status.model_copy(
            update={"training": ModelVersionStatus.model_validate({"training": result(**kw)}).training}
        )


def cond(status: ModelVersionStatus, type_: str):
    return next((c for c in status.conditions if c.type == type_), None)


def test_happy_path_train_validate_deploy_promote_serve():
    w = World(spec())
    p = w.step()
    assert p.ensure_job and p.phase == "Training" and p.replicas is None
    # One Event says what started and where (the operator posts no separate "Created Job").
    assert [(e[1], e[2].rsplit(" in ", 1)[-1]) for e in p.events] == [("TrainingStarted", "Job v1-train")]
    p = w.step(job=JobView(uid="job-1", active=1))
    assert p.phase == "Training" and not p.ensure_job
    w.with_result()
    p = w.step(job=JobView(uid="job-1", succeeded=1))
    assert p.phase == "Deploying" and p.replicas == 1 and "trained" in p.timestamps
    assert cond(w.status, "Trained").status == "True" and cond(w.status, "Validated").status == "True"
    p = w.step(job=JobView(uid="job-1", succeeded=1), deployment=DeploymentView(1, 1))
    assert p.promote and p.phase == "Deploying"
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", {"accuracy": 0.95}))
    assert p.phase == "Serving" and p.champion and not p.promote
    assert cond(w.status, "Ready").status == "True"
    assert cond(w.status, "Reconciling") is None
    assert {"trained", "validated", "deployed", "promoted"} <= set(w.status.timestamps)


def test_result_of_another_job_run_is_ignored():
    w = World(spec())
    w.step()
    w.with_result(job_uid="old-job")
    p = w.step(job=JobView(uid="job-1", succeeded=1, finished_at=NOW))
    assert p.phase == "Training" and "waiting for the trainer" in p.message


def test_missing_report_fails_after_grace():
    w = World(spec())
    w.step()
    p = w.step(job=JobView(uid="job-1", succeeded=1, finished_at=NOW - timedelta(minutes=5)))
    assert p.phase == "Failed" and "no result" in p.message


def test_job_failure_carries_the_trainers_reason():
    w = World(spec())
    w.step()
    p = w.step(job=JobView(uid="job-1", failed=True, failure_message="error: target column 'y' not found"))
    assert p.phase == "Failed"
    assert "target column 'y' not found" in cond(w.status, "Trained").message
    assert p.events[0][:2] == ("Warning", "TrainingFailed")
    assert cond(w.status, "Stalled").status == "True"
    assert w.step(job=JobView(uid="job-1", failed=True)).phase == "Failed"  # terminal


def test_a_data_quality_failure_fails_with_its_own_reason():
    w = World(spec())
    w.step()
    msg = "data quality: column 'x' has 25.0% missing values, above the limit maxMissingFraction 0.1"
    w.status = w.status.model_copy(
        update={
            "training": ModelVersionStatus.model_validate(
                {
                    "training": {
                        "jobUid": "job-1",
                        "succeeded": False,
                        "message": msg,
                        "reason": "DataQualityFailed",
                    }
                }
            ).training
        }
    )
    p = w.step(job=JobView(uid="job-1", failed=True))
    assert p.phase == "Failed" and "column 'x'" in p.message and "maxMissingFraction 0.1" in p.message
    assert cond(w.status, "Trained").reason == "DataQualityFailed"
    assert cond(w.status, "Stalled").reason == "DataQualityFailed"
    assert p.events[0][:2] == ("Warning", "DataQualityFailed")


def test_the_fairness_gate_rejects_a_biased_version():
    sp = spec(
        validation={
            "gates": [{"metric": "accuracy", "min": 0.8}],
            "fairness": {"sensitiveFeatures": ["group"], "metric": "selection_rate", "maxDifference": 0.1},
        }
    )
    table = {
        "metric": "selection_rate",
        "groups": [
            {"feature": "group", "group": "A", "value": 0.7, "count": 50},
            {"feature": "group", "group": "B", "value": 0.2, "count": 50},
        ],
        "differences": {"group": 0.5},
    }
    w = World(sp)
    w.step()
    w.with_result()
    w.status.training.fairness = FairnessReport.model_validate(table)
    p = w.step(job=JobView(uid="job-1", succeeded=1))
    assert p.phase == "Rejected" and p.replicas is None
    assert cond(w.status, "Validated").reason == "FairnessGateFailed"
    assert "'group'" in p.message and "maxDifference 0.1" in p.message
    # within the limit it passes, and the Validated message says so
    w = World(sp)
    w.step()
    w.with_result()
    w.status.training.fairness = FairnessReport.model_validate({**table, "differences": {"group": 0.05}})
    p = w.step(job=JobView(uid="job-1", succeeded=1))
    assert (
        p.phase == "Deploying" and "fairness selection_rate within 0.1" in cond(w.status, "Validated").message
    )


def test_gate_failure_rejects_and_never_deploys():
    w = World(spec())
    w.step()
    w.with_result(accuracy=0.5)
    p = w.step(job=JobView(uid="job-1", succeeded=1))
    assert p.phase == "Rejected" and p.replicas is None
    assert "accuracy 0.5 < min 0.8" in p.message
    assert w.step(job=JobView(uid="job-1", succeeded=1)).replicas is None


def test_worse_challenger_loses_to_champion():
    w = World(spec(validation={"champion": {"metric": "accuracy", "minImprovement": 0.0}}), name="v2")
    w.step()
    w.with_result(accuracy=0.90)
    same_data = {
        "champion": "v1",
        "championSha256": "cd" * 32,
        "evaluations": [
            {"set": "heldOut", "rows": 38, "challenger": {"accuracy": 0.90}, "champion": {"accuracy": 0.95}}
        ],
    }
    w.status.training.comparison = ModelVersionStatus.model_validate(
        {"training": {"comparison": same_data}}
    ).training.comparison
    p = w.step(job=JobView(uid="job-1", succeeded=1), champion=ChampionView("v1", {"accuracy": 0.95}))
    assert p.phase == "Rejected" and cond(w.status, "Validated").reason == "ChampionBetter"
    assert w.status.comparison.verdict == "ChampionBetter"


def test_champion_comparison_direction():
    assert champion_verdict("accuracy", 0.0, {"accuracy": 0.9}, {"accuracy": 0.9})[0]
    assert not champion_verdict("accuracy", 0.01, {"accuracy": 0.905}, {"accuracy": 0.9})[0]
    assert champion_verdict("rmse", 0.0, {"rmse": 1.0}, {"rmse": 1.5})[0]
    assert not champion_verdict("rmse", 0.0, {"rmse": 2.0}, {"rmse": 1.5})[0]
    assert champion_verdict("accuracy", -0.02, {"accuracy": 0.89}, {"accuracy": 0.9})[0]


def test_gate_messages():
    from modelops.api.modelversion import Gate

    gates = [Gate(metric="accuracy", min=0.9), Gate(metric="rmse", max=1.0), Gate(metric="f1", min=0, max=1)]
    out = gate_failures(gates, {"accuracy": 0.8, "f1": 0.5})
    assert out[0] == "accuracy 0.8 < min 0.9" and out[1].startswith("rmse was not measured")
    assert len(out) == 2


def served_world(name="v1", **sp) -> World:
    w = World(spec(**sp), name=name)
    w.step()
    w.with_result()
    w.step(job=JobView(uid="job-1", succeeded=1))
    return w


def test_a_candidate_that_loses_the_stable_service_to_a_sibling_is_superseded_not_promoted_again():
    """Two candidates of one model ready at once: each takes the stable Service once. The one that
    took it first and lost it to the other is Superseded on its next pass, instead of taking it
    back (each taking it from the other for as long as both ran: a 1,000-version burst over 100
    models in bench/operator_scale.py did so for 15 minutes)."""
    w = served_world("v2", serving={"drainSeconds": 0})
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1"))
    assert p.promote and "promoted" in w.status.timestamps, "the promoting pass records it"
    # v3 took the Service right after v2 did: v2 is a former champion, not a candidate.
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v3"))
    assert p.phase == "Superseded" and not p.promote and p.replicas == 0
    assert ("Normal", "Superseded", "Superseded by v3") in p.events
    p = w.step(deployment=DeploymentView(0, 0), champion=ChampionView("v3"))
    assert p.phase == "Superseded" and not p.promote


def test_superseded_drains_then_scales_down_and_rollback_promotes_again():
    w = served_world(serving={"drainSeconds": 30})
    w.step(deployment=DeploymentView(1, 1))
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1"))
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v2"))
    assert p.phase == "Superseded" and p.replicas == 1 and not p.champion
    w.now = NOW + timedelta(seconds=31)
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v2"))
    assert p.phase == "Superseded" and p.replicas == 0
    assert cond(w.status, "Ready").status == "True"
    # rollback: a promotion request scales it back and promotes once ready
    p = w.step(deployment=DeploymentView(0, 0), champion=ChampionView("v2"), promotion_request="r1")
    assert p.replicas == 1 and not p.promote
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v2"), promotion_request="r1")
    assert p.promote and p.handled_promotion == "r1"
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1"), promotion_request="r1")
    assert p.phase == "Serving"
    # the handled request does not promote again once superseded later
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v3"), promotion_request="r1")
    assert p.phase == "Superseded" and not p.promote


def test_a_second_supersede_starts_a_new_episode_and_drains_again():
    """After a rollback, being superseded again drains for drainSeconds from the new supersede."""
    w = served_world(serving={"drainSeconds": 30})
    w.step(deployment=DeploymentView(1, 1))
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1"))
    first_promoted = w.status.timestamps["promoted"]
    w.now = NOW + timedelta(seconds=10)
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v2"))
    w.now = NOW + timedelta(seconds=100)
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v2"), promotion_request="r1")
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1"), promotion_request="r1")
    assert w.status.timestamps["promoted"] > first_promoted, "a rollback is a new promotion"
    w.now = NOW + timedelta(seconds=200)
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v3"))
    assert p.phase == "Superseded" and p.replicas == 1, "drains again instead of dropping to 0 at once"
    assert p.requeue_after == 30
    assert w.status.timestamps["superseded"] == "2026-11-26T12:03:20Z"
    w.now = NOW + timedelta(seconds=231)
    assert w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v3")).replicas == 0


def test_a_former_champion_names_who_superseded_it_and_later_promotions_write_nothing_to_it():
    """status.supersededBy and the message name the champion that took over, once: were they the
    model's champion of the day, each promotion would rewrite every former champion (a burst of
    10 versions a model over 100 models wrote 1,156 such patches in one minute)."""
    w = served_world(serving={"drainSeconds": 0})
    w.step(deployment=DeploymentView(1, 1))
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1"))
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v2"))
    assert w.status.superseded_by == "v2" and w.status.message == "superseded by v2; scaled down"
    w.step(deployment=DeploymentView(0, 0), champion=ChampionView("v2"))
    for later in ("v3", "v4"):
        p = w.step(deployment=DeploymentView(0, 0), champion=ChampionView(later))
        assert p.phase == "Superseded" and w.last_patch == {}, f"{later}'s promotion rewrote v1"
    # rolled back to, it serves again and no longer names anyone; superseded again, the new one
    w.step(deployment=DeploymentView(0, 0), champion=ChampionView("v4"), promotion_request="r1")
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v4"), promotion_request="r1")
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1"), promotion_request="r1")
    assert p.phase == "Serving" and w.status.superseded_by is None
    w.now = NOW + timedelta(seconds=10)
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v5"), promotion_request="r1")
    assert w.status.superseded_by == "v5"


def test_the_champion_restores_a_missing_or_broken_stable_service():
    w = served_world()
    w.step(deployment=DeploymentView(1, 1))
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", recorded="v1"))
    p = w.step(deployment=DeploymentView(1, 1), champion=None)  # deleted, or selecting a non-version
    assert p.phase == "Serving" and p.promote and p.replicas == 1
    assert ("Warning", "StableServiceRestored") in [(t, r) for t, r, _ in p.events]
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", recorded="v1"))
    assert p.phase == "Serving" and not p.promote and not p.events


def test_a_stable_service_pointed_by_hand_at_a_valid_version_is_a_rollback():
    w = served_world(name="v1")
    w.step(deployment=DeploymentView(1, 1))
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", recorded="v1"))
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v2", recorded="v2"))
    assert w.status.phase == "Superseded"
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", recorded="v2"))
    assert p.phase == "Serving" and p.promote, "records the hand-made choice on the Service"
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", recorded="v1"))
    assert not p.promote


def test_manual_mode_waits_for_a_request():
    w = served_world(promotion={"mode": "Manual"})
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v0"))
    assert p.phase == "Deploying" and not p.promote and "manual promotion" in p.message
    assert p.replicas == 1  # stays deployed while it waits (it was deleted and recreated each pass)
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v0"), promotion_request="go")
    assert p.promote


def test_manual_mode_with_approval_waits_for_an_approver_and_records_who_asked():
    w = served_world(promotion={"mode": "Manual", "requireApproval": True})
    dep, champ = DeploymentView(1, 1), ChampionView("v0")
    p = w.step(
        deployment=dep, champion=champ, promotion_request="annotation:go", requested_by="kubectl-annotate"
    )
    assert not p.promote and "waiting for approval" in p.message
    assert cond(w.status, "Promoted").reason == "AwaitingApproval"
    assert p.replicas == 1, "the deployed version keeps serving its Deployment while it waits"
    p = w.step(
        deployment=dep,
        champion=champ,
        promotion_request="annotation:go",
        requested_by="kubectl-annotate",
        approved_by="alice",
    )
    assert p.promote
    (entry,) = w.status.history
    assert (entry.decision, entry.reason, entry.approved_by) == ("Promoted", "Promoting", "alice")
    assert entry.by == "annotation:go (field manager kubectl-annotate)"
    promoting = next(m for _, r, m in p.events if r == "Promoting")
    assert promoting == entry.message and "approved by alice" in promoting  # the Event says the same


def test_history_records_promotion_rollback_and_rejection_and_is_bounded():
    from modelops.lifecycle.modelversion import HISTORY_LIMIT

    w = served_world(name="v1")
    w.step(deployment=DeploymentView(1, 1))
    assert [h.decision for h in w.status.history] == ["Promoted"]
    assert w.status.history[0].by == "operator"
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", recorded="v1"))
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v2", recorded="v2"))
    assert w.status.phase == "Superseded"
    w.step(
        deployment=DeploymentView(1, 1), champion=ChampionView("v2", recorded="v2"), promotion_request="rb-1"
    )
    assert [h.decision for h in w.status.history] == ["Promoted", "RolledBack"]
    assert w.status.history[-1].by == "rb-1"
    # a steady state adds nothing
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", recorded="v1"))
    w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", recorded="v1"))
    assert len(w.status.history) == 2
    # bounded: the newest entries are kept
    p = Plan(
        phase="Serving", conditions=[], message="", history=[{"time": "t", "decision": "X", "reason": "Y"}]
    )
    current = {
        "history": [{"time": str(i), "decision": "Promoted", "reason": "Promoting"} for i in range(30)]
    }
    out = status_patch(p, current, namespace="ns", name="v1", generation=1, now="t")["history"]
    assert len(out) == HISTORY_LIMIT and out[-1]["decision"] == "X" and out[0]["time"] == "11"
    # a rejection is audited too
    r = World(spec())
    r.step()
    r.with_result(accuracy=0.5)
    r.step(job=JobView(uid="job-1", succeeded=1))
    assert [(h.decision, h.reason) for h in r.status.history] == [("Rejected", "Rejected")]


def test_server_failure_fails_the_version_not_the_champion():
    w = served_world(name="v2")
    p = w.step(
        deployment=DeploymentView(1, 0, pod_failure="artifact sha256 mismatch"), champion=ChampionView("v1")
    )
    assert p.phase == "Failed" and p.replicas is None and not p.promote
    assert "sha256 mismatch" in cond(w.status, "Deployed").message


@pytest.mark.parametrize(
    ("deployment", "why"),
    [
        (DeploymentView(1, 0, pod_failure="OOMKilled"), "not serving: 0/1 replicas ready: OOMKilled"),
        (DeploymentView(1, 0), "not serving: 0/1 replicas ready"),
        (None, "not serving: 0/1 replicas ready"),
    ],
    ids=["crashing", "no ready pods", "deployment gone"],
)
def test_a_champion_that_lost_its_pods_says_why_in_ready(deployment, why):
    """The champion stays champion (its Service keeps pointing at it), but Ready says what is wrong."""
    w = served_world(name="v1")
    p = w.step(deployment=deployment, champion=ChampionView("v1", {"accuracy": 0.95}))
    assert p.phase == "Serving" and p.champion and p.replicas == 1
    ready = cond(w.status, "Ready")
    assert ready.status == "False" and why in ready.message, ready.message
    assert why in p.message


def test_retired_version_has_no_deployment_but_the_champion_cannot_retire():
    w = served_world(retired=True)
    p = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v0"))
    assert p.phase == "Retired" and p.replicas is None
    w2 = served_world(retired=True)
    p = w2.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1"))
    assert p.phase == "Serving" and "cannot retire the champion" in p.message


SEARCH = {"space": {"C": [0.1, 1.0, 10.0], "tol": [1e-4, 1e-3]}, "parallelism": 3}


def searched_spec(**search):
    return spec(
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "LogisticRegression"},
            "search": {**SEARCH, **search},
        }
    )


def test_a_search_runs_as_its_own_job_before_the_training_job():
    w = World(searched_spec())
    p = w.step()
    assert p.ensure_search and not p.ensure_job and p.phase == "Training"
    assert cond(w.status, "Trained").reason == "Searching"
    assert p.message == "searching: grid search over 6 candidate(s) in 3 Job index(es) (0/3 done)"
    assert p.events == [
        (
            "Normal",
            "SearchStarted",
            "Started Job v1-search: the grid search over 6 candidate(s) in 3 Job index(es)",
        )
    ]
    assert "searchStarted" in w.status.timestamps
    p = w.step(search_job=JobView(uid="s-1", active=3, completed=2))
    assert not p.ensure_search and not p.ensure_job and "(2/3 done)" in p.message
    done = JobView(uid="s-1", succeeded=1, completed=3, finished_at=NOW)
    p = w.step(search_job=done)
    assert p.ensure_job and p.search_job_uid == "s-1" and p.phase == "Training"
    assert [e[1] for e in p.events] == ["Searched", "TrainingStarted"]
    assert {"searched", "trainingStarted"} <= set(w.status.timestamps)
    p = w.step(search_job=done, job=JobView(uid="job-1", active=1))
    assert not p.ensure_job and not p.ensure_search and cond(w.status, "Trained").reason == "Training"
    w.with_result()
    p = w.step(search_job=done, job=JobView(uid="job-1", succeeded=1))
    assert p.phase == "Deploying" and cond(w.status, "Trained").status == "True"


def test_a_failed_search_index_fails_the_version_with_its_reason_and_never_trains():
    w = World(searched_spec())
    w.step()
    why = "error: search shard 1 of 3: dataset file not found: /data/iris.csv"
    p = w.step(search_job=JobView(uid="s-1", failed=True, failure_message=why))
    assert p.phase == "Failed" and not p.ensure_job
    assert p.message == "search failed: search shard 1 of 3: dataset file not found: /data/iris.csv"
    trained = cond(w.status, "Trained")
    assert trained.reason == "SearchFailed" and trained.message == why.removeprefix("error: ")
    assert cond(w.status, "Stalled").reason == "SearchFailed"
    assert p.events[-1][:2] == ("Warning", "SearchFailed")
    assert [(h.decision, h.reason) for h in w.status.history] == [("Failed", "SearchFailed")]
    assert w.step(search_job=JobView(uid="s-1", failed=True, failure_message=why)).phase == "Failed"


def test_a_restart_mid_search_adopts_the_job_and_a_lost_write_is_recovered_from_it():
    w = World(searched_spec())
    # No status was ever written (the creating pass died after creating the Job): the Job decides.
    created = NOW - timedelta(minutes=3)
    p = w.step(search_job=JobView(uid="s-1", active=3, created=created))
    assert not p.ensure_search and w.status.timestamps["searchStarted"] == "2026-11-26T11:57:00Z"
    assert [e[1] for e in p.events] == ["SearchStarted"]
    # The training Job exists but the pass that created it lost its status write.
    done = JobView(uid="s-1", succeeded=1, completed=3, finished_at=NOW - timedelta(minutes=1))
    p = w.step(search_job=done, job=JobView(uid="job-1", active=1, created=NOW))
    assert not p.ensure_job and not p.ensure_search
    assert w.status.timestamps["searched"] == "2026-11-26T11:59:00Z"


def test_without_a_search_no_search_job_is_made():
    w = World(spec())
    p = w.step()
    assert p.ensure_job and not p.ensure_search and p.search_job_uid is None


def test_a_deploying_version_waiting_for_a_service_slot_says_so_and_a_promotion_claims_nothing():
    """Acting stopped at the version Service (no creation slot free): the status says Deploying
    and why it waits, not the phase of the last pass; a promotion that stopped so records nothing."""
    w = World(spec())
    w.step()
    w.with_result()
    p = w._plan({"job": JobView(uid="job-1", succeeded=1)})
    assert p.phase == "Deploying" and not p.promote
    waiting = waiting_for_service_slot(p, "1 Service creations in flight (at most 1 at once)")
    assert waiting is not None and waiting.phase == "Deploying" and waiting.replicas == p.replicas
    assert waiting.message.endswith(
        "waiting for a Service creation slot (1 Service creations in flight (at most 1 at once))"
    )
    ready = next(c for c in waiting.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "WaitingForServiceSlot")
    assert {c.type for c in waiting.conditions} == {c.type for c in p.conditions}
    patch = status_patch(waiting, {}, namespace="ns", name="v1", generation=1, now="t")
    assert patch["phase"] == "Deploying" and "waiting for a Service creation slot" in patch["message"]
    promoting = w.step(job=JobView(uid="job-1", succeeded=1), deployment=DeploymentView(1, 1))
    assert promoting.promote and waiting_for_service_slot(promoting, "busy") is None
    serving = w.step(deployment=DeploymentView(1, 1), champion=ChampionView("v1", {"accuracy": 0.95}))
    assert serving.phase == "Serving" and waiting_for_service_slot(serving, "busy") is None
