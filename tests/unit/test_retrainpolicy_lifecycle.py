"""The RetrainPolicy planner and retention, walked through without a cluster or Prometheus."""

from datetime import UTC, datetime, timedelta

import pytest

from modelops.api.modelversion import ModelVersionSpec
from modelops.api.retrainpolicy import RetrainPolicySpec, RetrainPolicyStatus, Template, Trigger
from modelops.drift.evaluate import DriftEvaluation, FeatureEval, OnlineEval
from modelops.lifecycle.conditions import apply_conditions, find
from modelops.lifecycle.datasets import Resolution
from modelops.lifecycle.naming import child_name
from modelops.lifecycle.retrainpolicy import (
    HISTORY_LIMIT,
    Champion,
    Evaluation,
    Observed,
    Plan,
    VersionView,
    child_spec,
    evaluation_due,
    merge_patch,
    next_schedule_time,
    plan,
    released,
    retention_victims,
    rollback_target,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
CREATED = NOW - timedelta(days=1)
UID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def mv_spec(**over) -> ModelVersionSpec:
    body = {
        "model": "iris",
        "training": {
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "RandomForestClassifier", "params": {"n_estimators": 50, "max_depth": 4}},
        },
        "validation": {
            "gates": [{"metric": "accuracy", "min": 0.8}],
            "champion": {"metric": "accuracy", "minImprovement": 0.0},
        },
        "promotion": {"mode": "Auto", "request": "2026-01-01"},
    }
    body.update(over)
    return ModelVersionSpec.model_validate(body)


CHAMP = Champion(name="iris-v1", spec=mv_spec(), metrics={"accuracy": 0.93}, dataset_digest="a" * 64)


def policy(**over) -> RetrainPolicySpec:
    body = {
        "model": "iris",
        "interval": "60s",
        "cooldown": "30m",
        "triggers": {"drift": {"method": "psi", "threshold": 0.25, "minSamples": 100, "consecutive": 2}},
    }
    body.update(over)
    return RetrainPolicySpec.model_validate(body)


def drift(result="Drifted", score=0.4) -> Evaluation:
    f = FeatureEval(score if result != "Unknown" else None, 500 if result != "Unknown" else 3, result)
    return Evaluation(drift=DriftEvaluation("psi", 0.25, {"petal_length": f}))


def online(result="Breached", value=0.6) -> Evaluation:
    return Evaluation(online=OnlineEval("accuracy", value, 200, result, floor=0.8))


NEW_DATA = Resolution(uri="pvc://data/iris/2026-11-26.csv", digest="b" * 64)
SAME_DATA = Resolution(uri="sklearn:iris", digest="a" * 64)

DOWN = Evaluation(error="Prometheus at http://prom:9090 is unreachable: ConnectError: refused")


class World:
    """Feeds each plan's status patch back as the next status, and creates children, as the controller does."""

    def __init__(self, spec=None, champion=CHAMP, versions=None, created=CREATED):
        self.spec = spec or policy()
        self.status = RetrainPolicyStatus()
        self.champion = champion
        self.versions = list(
            versions
            if versions is not None
            else [VersionView("iris-v1", "Serving", created=CREATED - timedelta(days=9), champion=True)]
        )
        self.now = NOW
        self.created = created
        self.data: Resolution | None = NEW_DATA

    def step(self, evaluation=None, request=None, create=True, resolution=None) -> Plan:
        """One pass. A resolve Job the plan asks for finishes at once with `self.data` (new data by
        default) unless `self.data` is None, and the pass that follows it is folded into the result.

        The pass's decisions are read back from what it writes, as `p.trigger` (a new retrain:
        `pending` with a new `sequence`) and `p.committed` (the pending child exists: `pending`
        moved to `lastTrigger`)."""
        p = self._step(evaluation, request, create, resolution)
        if p.resolve is not None and self.data is not None and resolution is None:
            p2 = self._step(None, request, create, self.data)
            p2.trigger = p2.trigger or p.trigger
            p2.events = [*p.events, *p2.events]
            p2.first = p  # type: ignore[attr-defined]
            return p2
        return p

    def _step(self, evaluation, request, create, resolution) -> Plan:
        p = plan(
            Observed(
                name="iris-policy",
                uid=UID,
                spec=self.spec,
                status=self.status,
                now=self.now,
                created=self.created,
                champion=self.champion,
                versions=tuple(self.versions),
                evaluation=evaluation,
                retrain_request=request,
                resolution=resolution if self.status.pending is not None else None,
            )
        )
        p.trigger = Trigger.model_validate(p.status["pending"]) if "sequence" in p.status else None  # type: ignore[attr-defined]
        committed = "lastTrigger" in p.status and "pending" in p.status and p.status["pending"] is None
        p.committed = Trigger.model_validate(p.status["lastTrigger"]) if committed else None  # type: ignore[attr-defined]
        d = self.status.model_dump(by_alias=True)
        conds = d.pop("conditions")
        d = merge_patch(d, p.status)
        d["conditions"] = apply_conditions(conds, p.conditions, generation=1, now=ts(self.now))
        self.status = RetrainPolicyStatus.model_validate(d)
        if p.child and create and all(v.name != p.child.name for v in self.versions):
            self.versions.append(
                VersionView(p.child.name, "Pending", created=self.now, parent=p.child.spec.parent, owned=True)
            )
        return p

    def retrain(self, evaluation=None, request=None) -> Trigger:
        """A step that must trigger, then the step that commits it."""
        p = self.step(evaluation, request)
        assert p.trigger is not None, p.message
        committed = self.step().committed
        assert committed is not None and committed.child == p.trigger.child, committed
        assert committed.model_copy(update={"dataset_uri": None, "dataset_digest": None}) == p.trigger
        return committed

    def tick(self, **delta):
        self.now += timedelta(**delta)

    def set_phase(self, name, phase, **timestamps):
        self.versions = [
            VersionView(
                v.name,
                phase,
                created=v.created,
                parent=v.parent,
                owned=v.owned,
                timestamps={**v.timestamps, **{k: ts(t) for k, t in timestamps.items()}},
            )
            if v.name == name
            else v
            for v in self.versions
        ]

    def cond(self, type_):
        return find([c.model_dump(by_alias=True) for c in self.status.conditions], type_)


# --- drift counting --------------------------------------------------------------------------


def test_consecutive_drifted_evaluations_trigger_and_the_counter_resets():
    w = World()
    p = w.step(drift())
    assert w.status.consecutive_drifted == 1 and p.trigger is None and p.child is None
    assert [e[1] for e in p.events] == ["DriftDetected"]
    w.tick(minutes=1)
    p = w.step(drift())
    assert p.trigger is not None and p.trigger.reason == "drift"
    assert "2 drifted evaluation(s) in a row" in p.trigger.detail
    assert w.status.consecutive_drifted == 0
    assert p.events[-1][:2] == ("Normal", "RetrainTriggered")


def test_stable_resets_the_counter():
    w = World()
    w.step(drift())
    w.tick(minutes=1)
    w.step(drift("Stable", 0.02))
    assert w.status.consecutive_drifted == 0
    w.tick(minutes=1)
    p = w.step(drift())
    assert w.status.consecutive_drifted == 1 and p.trigger is None


def test_unknown_leaves_the_counter_and_never_triggers():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}))
    for _ in range(5):
        p = w.step(drift("Unknown"))
        assert p.trigger is None and w.status.consecutive_drifted == 0
        w.tick(minutes=1)
    assert w.cond("Evaluated")["reason"] == "InsufficientData"
    w = World()
    w.step(drift())
    w.tick(minutes=1)
    p = w.step(drift("Unknown"))
    assert w.status.consecutive_drifted == 1 and p.trigger is None
    w.tick(minutes=1)
    assert w.step(drift()).trigger is not None


def test_a_new_policy_warms_up_for_one_window_before_drift_counts():
    w = World(spec=policy(window="10m"), created=NOW - timedelta(minutes=7))
    for _ in range(3):  # minutes 7, 8, 9 after creation: the window still holds older traffic
        p = w.step(drift())
        assert p.trigger is None and w.status.consecutive_drifted == 0
        assert w.cond("Evaluated")["reason"] == "WarmingUp"
        assert "warming up until 2026-11-26T12:03:00Z" in w.cond("Evaluated")["message"]
        assert "DriftDetected" not in [e[1] for e in p.events]
        w.tick(minutes=1)
    assert w.status.features["petal_length"].result == "Drifted"  # reported all the same
    p = w.step(drift())  # minute 10: the first full window
    assert w.cond("Evaluated")["reason"] == "Drifted" and w.status.consecutive_drifted == 1
    w.tick(minutes=1)
    assert w.step(drift()).trigger is not None


def test_a_newly_promoted_champion_warms_up_for_drift_and_performance():
    spec = policy(window="5m", triggers={"drift": {"consecutive": 1}, "performance": {"floor": 0.8}})
    champion = VersionView(
        "iris-v1",
        "Serving",
        created=CREATED,
        champion=True,
        timestamps={"promoted": ts(NOW - timedelta(minutes=2))},
    )
    w = World(spec=spec, versions=[champion])
    assert w.step(drift()).trigger is None
    w.tick(minutes=1)
    assert w.step(online()).trigger is None
    assert w.cond("Evaluated")["reason"] == "WarmingUp"
    w.tick(minutes=2)  # promoted 5m ago: warmed up
    p = w.step(online())
    assert p.trigger is not None and p.trigger.reason == "performance"


def test_a_stored_streak_alone_never_triggers_without_fresh_evidence():
    w = World()
    w.status = RetrainPolicyStatus(champion="iris-v1", consecutive_drifted=7)
    assert w.step().trigger is None  # no evaluation in this pass
    assert w.step(drift("Unknown")).trigger is None
    assert w.status.consecutive_drifted == 7
    assert w.step(drift()).trigger is not None


def test_prometheus_error_keeps_counter_never_triggers_and_says_so_once():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}, "performance": {"floor": 0.8}}))
    w.status = w.status.model_copy(update={"consecutive_drifted": 5})
    w.status = w.status.model_copy(update={"champion": "iris-v1"})
    p = w.step(DOWN)
    assert p.trigger is None and p.child is None
    assert w.status.consecutive_drifted == 5
    assert w.cond("Evaluated")["status"] == "False"
    assert w.cond("Evaluated")["reason"] == "PrometheusUnreachable"
    assert "ConnectError" in w.cond("Evaluated")["message"]
    assert w.cond("Ready")["status"] == "False" and w.cond("Ready")["reason"] == "PrometheusUnreachable"
    assert [e[:2] for e in p.events] == [("Warning", "PrometheusUnreachable")]
    assert w.status.last_evaluation_time == ts(NOW)
    w.tick(minutes=1)
    p = w.step(DOWN)
    assert p.events == [] and p.trigger is None
    # a pass without an evaluation remembers that Prometheus is down
    p = w.step()
    assert w.cond("Ready")["reason"] == "PrometheusUnreachable"
    w.tick(minutes=1)
    p = w.step(drift("Stable", 0.01))
    assert ("Normal", "PrometheusReachable") in [e[:2] for e in p.events]
    assert w.cond("Ready")["status"] == "True" and w.status.consecutive_drifted == 0


def test_manual_and_schedule_still_act_while_prometheus_is_down():
    w = World()
    p = w.step(DOWN, request="please")
    assert p.trigger is not None and p.trigger.reason == "manual"


def test_champion_change_resets_the_counter():
    w = World()
    w.step(drift())
    assert w.status.consecutive_drifted == 1
    w.champion = Champion("iris-v2", mv_spec(), {})
    w.tick(minutes=1)
    p = w.step(drift())
    assert w.status.consecutive_drifted == 1 and p.trigger is None
    assert w.status.champion == "iris-v2"


def test_features_in_status_follow_the_latest_evaluation():
    w = World()
    w.step(drift())
    assert w.status.features["petal_length"].result == "Drifted"
    assert w.status.last_drift_score == 0.4
    w.tick(minutes=1)
    other = Evaluation(drift=DriftEvaluation("psi", 0.25, {"sepal_width": FeatureEval(0.01, 500, "Stable")}))
    w.step(other)
    assert set(w.status.features) == {"sepal_width"}  # the stale feature is removed by the patch


# --- the child and its creation --------------------------------------------------------------


def test_pending_is_written_first_and_a_crash_before_creation_makes_the_same_child():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}))
    p = w.step(drift(), create=False)  # the operator dies before creating the child
    name = child_name("iris", UID, 1)
    assert p.child is not None and p.child.name == name
    assert w.status.pending is not None and w.status.pending.child == name
    assert w.status.sequence == 1
    w.tick(seconds=30)
    p = w.step(drift())  # restarted: the pending decision is finished, no new one is taken
    assert p.trigger is None and p.child is not None and p.child.name == name
    p = w.step()
    assert p.committed is not None and p.committed.child == name
    assert w.status.pending is None
    assert w.status.last_trigger.child == name and [h.child for h in w.status.history] == [name]
    assert [v.name for v in w.versions if v.owned] == [name]
    p = w.step()  # committing is idempotent
    assert p.committed is None and len(w.status.history) == 1


def test_child_names_are_deterministic_and_sequential():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}, cooldown="1m"))
    first = w.retrain(drift())
    w.set_phase(first.child, "Rejected", rejected=w.now)
    w.tick(minutes=5)
    second = w.retrain(drift())
    assert (first.child, second.child) == (child_name("iris", UID, 1), child_name("iris", UID, 2))
    assert [h.child for h in w.status.history] == [second.child, first.child]  # newest first


def test_a_taken_name_is_skipped():
    taken = VersionView(child_name("iris", UID, 1), "Serving", owned=False)
    w = World(
        spec=policy(triggers={"drift": {"consecutive": 1}}),
        versions=[VersionView("iris-v1", "Serving", champion=True), taken],
    )
    assert w.step(drift()).child.name == child_name("iris", UID, 2)


def test_pending_without_champion_is_abandoned_with_a_warning():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}))
    w.step(drift(), create=False)
    w.champion = None
    p = w.step()
    assert p.child is None and w.status.pending is None
    assert ("Warning", "RetrainAbandoned") in [e[:2] for e in p.events]


def test_history_is_bounded_newest_first():
    old = [Trigger(time=ts(NOW - timedelta(days=i + 1)), reason="drift", child=f"old-{i}") for i in range(25)]
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}))
    w.status = RetrainPolicyStatus.model_validate(
        {"history": [t.wire() for t in old], "lastTrigger": old[0].wire(), "sequence": 25}
    )
    t = w.retrain(drift())
    assert t.child == child_name("iris", UID, 26)
    assert len(w.status.history) == HISTORY_LIMIT
    assert w.status.history[0].child == t.child and w.status.history[1].child == "old-0"


# --- what holds a retrain back ---------------------------------------------------------------


def test_cooldown_holds_a_second_trigger():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}, max_concurrent=5))
    w.retrain(drift())
    w.tick(minutes=10)
    p = w.step(drift())
    assert p.trigger is None
    assert "cooldown until 2026-11-26T12:30:00Z" in p.message
    assert w.cond("Ready")["status"] == "True"
    w.tick(minutes=20)
    assert w.step(drift()).trigger is not None


def test_a_rejected_child_does_not_cause_an_immediate_new_one():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}))
    t = w.retrain(drift())
    w.tick(hours=2)  # training took longer than the cooldown
    w.set_phase(t.child, "Rejected", rejected=w.now)
    w.tick(minutes=1)
    p = w.step(drift())
    assert p.trigger is None and "cooldown until 2026-11-26T14:30:00Z" in p.message
    w.tick(minutes=30)
    assert w.step(drift()).trigger is not None


def test_max_concurrent_counts_children_in_flight():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}, cooldown="1s"))
    t = w.retrain(drift())
    for phase in ("Pending", "Training", "Deploying", "Canary"):
        w.set_phase(t.child, phase)
        w.tick(minutes=1)
        p = w.step(drift(), request=f"manual-{phase}")
        assert p.trigger is None, phase
        assert "maxConcurrent 1" in p.message
        assert w.cond("Ready")["reason"] == "Retraining"
        assert w.status.handled_request is None  # the request waits, it is not dropped
    w.set_phase(t.child, "Serving")
    w.tick(minutes=1)
    p = w.step(drift(), request="manual-Canary")
    assert p.trigger is not None and p.trigger.reason == "manual"


def test_max_concurrent_two_allows_a_second_child():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}, cooldown="1s", max_concurrent=2))
    w.retrain(drift())
    w.tick(minutes=1)
    w.retrain(drift())
    w.tick(minutes=1)
    assert w.step(drift()).trigger is None
    assert len([v for v in w.versions if v.owned]) == 2


def test_suspend_evaluates_but_never_triggers():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}, "schedule": {"every": "1h"}}, suspend=True))
    for _ in range(3):
        p = w.step(drift(), request="now")
        assert p.trigger is None and p.child is None
        w.tick(minutes=1)
    assert w.status.consecutive_drifted == 3
    assert w.status.handled_request is None
    assert w.cond("Ready")["reason"] == "Suspended" and "suspended" in p.message
    assert w.cond("Evaluated")["reason"] == "Drifted"


def test_no_champion_no_trigger_and_the_condition_says_why():
    w = World(champion=None, spec=policy(triggers={"schedule": {"every": "1h"}}))
    p = w.step(drift(), request="please")
    assert p.trigger is None and p.child is None and p.delete == []
    assert w.cond("Ready")["reason"] == "NoChampion"
    assert w.cond("Evaluated")["message"] == "no champion for model iris"
    assert w.status.handled_request is None and w.status.last_evaluation_time is None


# --- manual, schedule, performance, priority -------------------------------------------------


def test_manual_request_is_handled_once_and_bypasses_cooldown():
    w = World()
    t = w.retrain(request="2026-11-26")
    assert t.reason == "manual" and "modelops.dev/retrain=2026-11-26" in t.detail
    assert w.status.handled_request == "2026-11-26"
    w.set_phase(t.child, "Serving")
    w.tick(minutes=1)
    assert w.step(request="2026-11-26").trigger is None
    w.tick(minutes=1)
    t2 = w.retrain(request="again")  # within cooldown: a person asked
    assert t2.reason == "manual" and w.status.handled_request == "again"


def test_schedule_every():
    w = World(spec=policy(triggers={"schedule": {"every": "48h"}}), created=NOW - timedelta(hours=47))
    p = w.step()
    assert p.trigger is None and "next scheduled retrain 2026-11-26T13:00:00Z" in p.message
    w.tick(hours=1)
    t = w.retrain()
    assert t.reason == "schedule" and "every 48h" in t.detail
    assert w.status.last_schedule_time == ts(w.now)
    w.set_phase(t.child, "Serving")
    w.tick(hours=47)
    assert w.step().trigger is None
    w.tick(hours=1)
    assert w.step().trigger.reason == "schedule"


def test_schedule_cron_in_utc():
    spec = policy(triggers={"schedule": {"cron": "0 12 * * *"}})
    w = World(spec=spec, created=NOW - timedelta(hours=1, minutes=1))
    w.now = NOW - timedelta(minutes=1)
    assert w.step().trigger is None
    w.now = NOW
    t = w.retrain()
    assert t.reason == "schedule" and "cron '0 12 * * *'" in t.detail
    w.tick(hours=23, minutes=59)
    p = w.step()
    assert p.trigger is None and "maxConcurrent" not in p.message
    w.tick(minutes=1)
    p = w.step()
    assert p.trigger is None and "maxConcurrent 1" in p.message  # the first child is still Pending
    assert p.requeue_after == 60  # a due but held schedule does not spin
    w.set_phase(t.child, "Serving")
    assert w.step().trigger.reason == "schedule"


def test_next_schedule_time():
    spec = policy(triggers={"schedule": {"cron": "0 3 1 */3 *"}}).triggers.schedule
    assert next_schedule_time(spec, datetime(2026, 2, 10, tzinfo=UTC)) == datetime(2026, 4, 1, 3, tzinfo=UTC)
    every = policy(triggers={"schedule": {"every": "2160h"}}).triggers.schedule
    assert next_schedule_time(every, NOW) == NOW + timedelta(days=90)


def test_invalid_cron_stalls_with_a_reason():
    w = World(spec=policy(triggers={"schedule": {"cron": "every tuesday"}}))
    p = w.step(request="x")
    assert p.trigger is None
    assert w.cond("Ready")["reason"] == "InvalidSchedule" and w.cond("Stalled")["status"] == "True"


def test_performance_trigger():
    w = World(spec=policy(triggers={"performance": {"metric": "accuracy", "floor": 0.8}}))
    assert w.step(online("Healthy", 0.9)).trigger is None
    assert w.step(online("Unknown", None)).trigger is None
    p = w.step(online("Breached", 0.6))
    assert p.trigger is not None and p.trigger.reason == "performance"
    assert ("Warning", "PerformanceDegraded") in [e[:2] for e in p.events]
    assert w.status.online["value"] == 0.6


def test_priority_manual_then_drift_then_performance_then_schedule():
    triggers = {
        "drift": {"consecutive": 1},
        "performance": {"floor": 0.8},
        "schedule": {"every": "1h"},
    }
    both = Evaluation(drift=drift().drift, online=online().online)
    w = World(spec=policy(triggers=triggers))
    t = w.step(both, request="r1").trigger
    assert t.reason == "manual" and "also due: drift, performance, schedule" in t.detail
    assert w.status.last_schedule_time == ts(NOW)  # the schedule is satisfied too
    w = World(spec=policy(triggers=triggers))
    assert w.step(both).trigger.reason == "drift"
    w = World(spec=policy(triggers=triggers))
    assert w.step(online()).trigger.reason == "performance"
    w = World(spec=policy(triggers=triggers))
    assert w.step().trigger.reason == "schedule"


# --- the child's spec ------------------------------------------------------------------------


def test_child_spec_is_the_champion_with_the_template():
    w = World(
        spec=policy(
            triggers={"drift": {"consecutive": 1}},
            template={"datasetUri": "pvc://data/iris-2026-11.csv", "params": {"n_estimators": 200}},
        )
    )
    w.data = Resolution(uri="pvc://data/iris-2026-11.csv", digest="c" * 64)
    child = w.step(drift()).child
    s = child.spec
    assert s.parent == "iris-v1" and s.model == "iris"
    assert s.training.dataset.uri == "pvc://data/iris-2026-11.csv"
    assert s.training.estimator.params == {"n_estimators": 200, "max_depth": 4}
    assert s.validation == CHAMP.spec.validation and s.promotion.mode == "Auto"
    assert s.promotion.request is None  # never inherit the champion's promotion request


def test_template_spec_is_a_json_merge_patch():
    t = Template.model_validate(
        {
            "spec": {
                "training": {"estimator": {"params": {"max_depth": None}}, "split": {"seed": 7}},
                "validation": {"champion": None},
                "serving": {"replicas": 3},
                "model": "other",
                "parent": "nope",
            },
            "params": {"min_samples_leaf": 2},
        }
    )
    s = child_spec(CHAMP, t)
    assert s.training.estimator.params == {"n_estimators": 50, "min_samples_leaf": 2}
    assert s.training.split.seed == 7 and s.training.split.test_size == 0.25
    assert s.validation.champion is None and s.validation.gates == CHAMP.spec.validation.gates
    assert s.serving.replicas == 3
    assert (s.model, s.parent) == ("iris", "iris-v1")
    assert CHAMP.spec.training.estimator.params == {"n_estimators": 50, "max_depth": 4}  # not mutated


def test_named_template_fields_win_over_the_patch_and_params_may_be_null():
    t = Template.model_validate(
        {
            "datasetUri": "sklearn:wine",
            "params": {"max_depth": None},
            "spec": {"training": {"dataset": {"uri": "sklearn:digits"}}},
        }
    )
    s = child_spec(CHAMP, t)
    assert s.training.dataset.uri == "sklearn:wine"
    assert s.training.estimator.params == {"n_estimators": 50, "max_depth": None}


SEARCHED_CHAMP = Champion(
    name="iris-v1",
    spec=mv_spec(
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "RandomForestClassifier", "params": {"n_estimators": 50}},
            "search": {"space": {"max_depth": [2, 4, 8], "min_samples_leaf": [1, 5]}, "parallelism": 3},
        }
    ),
    best_params={"max_depth": 8, "min_samples_leaf": 1},
)


def test_a_child_reuses_the_champions_best_parameters_instead_of_searching_again():
    s = child_spec(SEARCHED_CHAMP, Template())
    assert s.training.search is None
    assert s.training.estimator.params == {"n_estimators": 50, "max_depth": 8, "min_samples_leaf": 1}
    s = child_spec(SEARCHED_CHAMP, Template.model_validate({"params": {"max_depth": 3}}))
    assert s.training.estimator.params["max_depth"] == 3  # the template's params still win


def test_template_search_runs_a_search_for_the_child():
    again = {"space": {"max_depth": [4, 16]}, "parallelism": 2, "cv": 3}
    s = child_spec(SEARCHED_CHAMP, Template.model_validate({"search": again}))
    assert s.training.search is not None and s.training.search.wire()["space"] == {"max_depth": [4, 16]}
    assert s.training.estimator.params == {"n_estimators": 50}
    # Without recorded best parameters (nothing to reuse) the champion's own search runs again.
    unknown = Champion(name="iris-v1", spec=SEARCHED_CHAMP.spec)
    assert child_spec(unknown, Template()).training.search == SEARCHED_CHAMP.spec.training.search


def test_invalid_template_stalls_and_never_triggers():
    bad = {"spec": {"training": {"estimator": {"class": "os.system"}}}}
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}, template=bad))
    p = w.step(drift())
    assert p.trigger is None and p.child is None
    assert w.cond("Ready")["reason"] == "InvalidTemplate" and w.cond("Stalled")["status"] == "True"
    assert "spec.training.estimator.class" in w.cond("Ready")["message"]
    assert ("Warning", "InvalidTemplate") in [e[:2] for e in p.events]
    assert w.step(drift()).events == []  # said once


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7386_examples(target, patch, result):
    assert merge_patch(target, patch) == result


# --- evaluation cadence ----------------------------------------------------------------------


def test_evaluation_due_once_per_interval():
    spec = policy(interval="60s")
    st = RetrainPolicyStatus()
    assert evaluation_due(spec, st, NOW)
    st = RetrainPolicyStatus(last_evaluation_time=ts(NOW))
    assert not evaluation_due(spec, st, NOW + timedelta(seconds=30))
    assert evaluation_due(spec, st, NOW + timedelta(seconds=59.5))  # timer jitter
    assert evaluation_due(spec, st, NOW + timedelta(seconds=61))


def test_requeue_hints():
    w = World()
    p = w.step(drift())
    assert p.requeue_after == 60
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}))
    assert w.step(drift()).requeue_after == 1.0


# --- retention -------------------------------------------------------------------------------


def v(name, phase, days_ago, owned=False, key=None, **kw):
    t = NOW - timedelta(days=days_ago)
    stamps = {key: ts(t)} if key else {}
    return VersionView(name, phase, created=t - timedelta(days=1), owned=owned, timestamps=stamps, **kw)


def test_retention_keeps_the_newest_and_returns_the_rest_oldest_first():
    versions = [
        v("v1", "Retired", 50, key="retired"),
        v("v2", "Superseded", 40, key="superseded"),
        v("v3", "Superseded", 30, key="superseded"),
        v("v4", "Retired", 20, key="retired"),
        v("v5", "Superseded", 10, key="superseded"),
        v("v6", "Serving", 5, champion=True),
    ]
    assert retention_victims(versions, 2, "v6") == ["v1", "v2", "v3"]
    assert retention_victims(versions, 0, "v6") == ["v1", "v2", "v3", "v4"]  # v5 is the rollback target
    assert retention_victims(versions, 10, "v6") == []
    assert rollback_target(versions, "v6") == "v5"


def test_promoted_children_are_released_by_the_policy():
    versions = [
        VersionView("c1", "Serving", owned=True, champion=True),
        VersionView("c0", "Superseded", owned=True, timestamps={"promoted": "2026-01-01T00:00:00Z"}),
        VersionView("c2", "Training", owned=True),
        VersionView("c3", "Rejected", owned=True),
        VersionView("v0", "Superseded", owned=False, timestamps={"promoted": "2025-01-01T00:00:00Z"}),
    ]
    assert released(versions) == ["c0", "c1"]


def test_rollback_target_is_the_previous_champion_by_promotion_time():
    """v1 → v2 → v3, then a rollback to v2: v3 (champion before the rollback) is the target, not v1."""
    versions = [
        VersionView(
            "v1",
            "Superseded",
            timestamps={"promoted": "2026-01-01T00:00:00Z", "superseded": "2026-01-02T00:00:00Z"},
        ),
        VersionView(
            "v3",
            "Superseded",
            timestamps={"promoted": "2026-01-03T00:00:00Z", "superseded": "2026-01-04T00:00:00Z"},
        ),
        VersionView("v2", "Serving", champion=True, timestamps={"promoted": "2026-01-04T00:00:00Z"}),
    ]
    assert rollback_target(versions, "v2") == "v3"
    assert retention_victims(versions, 0, "v2") == ["v1"]


def test_retention_never_touches_champion_rollback_target_or_in_flight():
    versions = [
        v("old-champ", "Superseded", 1, key="superseded"),  # the rollback target
        v("ancient", "Superseded", 90, key="superseded"),
        v("champ", "Serving", 0, champion=True),
        *(v(f"fly-{p}", p, 0, owned=True) for p in ("Pending", "Training", "Deploying", "Canary")),
        v("asked", "Superseded", 80, key="superseded", promotion_requested=True),
        v("going", "Retired", 70, key="retired", deleting=True),
    ]
    victims = retention_victims(versions, 0, "champ")
    assert victims == ["ancient"]
    # the champion by name is protected even if its phase still says Superseded (a rollback)
    versions.append(v("rolled-back", "Superseded", 100, key="superseded"))
    assert "rolled-back" not in retention_victims(versions, 0, "rolled-back")


def test_retention_collects_failed_children_of_the_policy_only():
    versions = [
        v("champ", "Serving", 0, champion=True),
        v("r1", "Rejected", 30, owned=True, key="rejected"),
        v("r2", "Failed", 20, owned=True, key="failed"),
        v("r3", "Rejected", 10, owned=True, key="rejected"),
        v("hand-made", "Rejected", 40, key="rejected"),
    ]
    assert retention_victims(versions, 1, "champ") == ["r1", "r2"]
    assert retention_victims(versions, 3, "champ") == []


def test_retention_without_champion_deletes_nothing():
    versions = [v(f"v{i}", "Superseded", 10 * i, key="superseded") for i in range(1, 6)]
    assert retention_victims(versions, 0, None) == []


def test_retention_falls_back_to_creation_time():
    versions = [
        v("champ", "Serving", 0, champion=True),
        v("a", "Retired", 30),
        v("b", "Retired", 20),
        v("c", "Superseded", 5, key="superseded"),
    ]
    assert retention_victims(versions, 1, "champ") == ["a", "b"]


def test_plan_carries_retention():
    versions = [
        VersionView("iris-v1", "Serving", champion=True),
        v("v0", "Superseded", 10, key="superseded"),
        v("v-1", "Retired", 20, key="retired"),
    ]
    w = World(spec=policy(retention={"keepRetired": 0, "deleteArtifacts": True}), versions=versions)
    p = w.step()
    assert p.delete == ["v-1"] and p.delete_artifacts is True


def test_retention_writes_its_deletions_ahead_and_once():
    """The audit trail of deletions lives on the policy (the version is gone): written in the
    same patch that decides them, and a pass that finds the victim still there (a crash before
    the delete) does not record it twice."""
    versions = [VersionView("iris-v1", "Serving", champion=True), v("v-1", "Retired", 20, key="retired")]
    w = World(spec=policy(retention={"keepRetired": 0, "deleteArtifacts": True}), versions=versions)
    w.step()
    w.tick(minutes=1)
    w.step()  # the delete did not happen: the same victim again
    assert [(d.version, d.artifacts, d.reason) for d in w.status.deletions] == [
        ("v-1", True, "Retired beyond retention.keepRetired (0)")
    ]
    assert w.status.deletions[0].time == ts(NOW)


def test_retention_never_deletes_a_version_a_gitops_tool_manages():
    from modelops.lifecycle.retrainpolicy import VersionView, retention_victims

    t = "2026-11-0{}T00:00:00Z"
    versions = [
        VersionView("v1", "Superseded", timestamps={"superseded": t.format(1)}, gitops_managed=True),
        VersionView("v2", "Superseded", timestamps={"superseded": t.format(2)}),
        VersionView("v3", "Superseded", timestamps={"superseded": t.format(3)}),
        VersionView("v4", "Serving", champion=True),
    ]
    assert retention_victims(versions, 0, "v4") == ["v2"]


def test_failed_evaluations_back_off_and_success_resets():
    from modelops.api.retrainpolicy import RetrainPolicySpec, RetrainPolicyStatus
    from modelops.lifecycle.retrainpolicy import evaluation_due, evaluation_period

    spec = RetrainPolicySpec.model_validate({"model": "iris", "interval": "10s"})
    periods = [evaluation_period(spec, RetrainPolicyStatus(evaluation_failures=n)) for n in range(6)]
    assert periods == [10, 20, 40, 80, 80, 80]
    st = RetrainPolicyStatus(evaluation_failures=2, last_evaluation_time="2026-11-26T00:00:00Z")
    from datetime import UTC, datetime

    assert not evaluation_due(spec, st, datetime(2026, 11, 26, 0, 0, 30, tzinfo=UTC))
    assert evaluation_due(spec, st, datetime(2026, 11, 26, 0, 0, 40, tzinfo=UTC))


# --- the child's data: resolved first, and not made when it is the parent's --------------------


def test_a_drift_retrain_resolves_its_data_before_any_child_exists():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}))
    w.data = None  # the resolve Job has not finished
    p = w.step(drift())
    name = child_name("iris", UID, 1)
    assert p.trigger is not None and p.child is None
    assert p.resolve is not None and (p.resolve.child, p.resolve.uri) == (name, "sklearn:iris")
    assert w.status.pending is not None and w.status.pending.child == name
    assert w.step().resolve == p.resolve  # level-based: asked again until it reports
    p = w.step(resolution=NEW_DATA)
    assert p.child is not None and p.child.name == name
    assert p.child.spec.training.dataset.uri == NEW_DATA.uri
    assert w.status.pending.dataset_digest == NEW_DATA.digest  # a crash now re-creates the same child
    assert w.step().committed.dataset_uri == NEW_DATA.uri


def test_no_new_data_makes_no_child_says_so_and_does_not_loop():
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}, cooldown="30m"))
    w.data = SAME_DATA
    p = w.step(drift())
    assert p.child is None and w.versions == w.versions[:1]
    assert w.status.pending is None and w.status.last_skipped.outcome == "NoNewData"
    assert "holds the data iris-v1 was trained on" in w.status.last_skipped.detail
    assert ("Warning", "NoNewData") in [(t, r) for t, r, _ in p.events]
    assert w.cond("Ready")["reason"] == "NoNewData" and w.cond("Ready")["status"] == "True"
    for _ in range(10):  # the drift stays: no new decision, no new resolve Job during the cooldown
        w.tick(minutes=2)
        p = w.step(drift())
        assert p.trigger is None and p.resolve is None and p.child is None, p.message
    assert w.cond("Ready")["reason"] == "NoNewData"
    w.tick(minutes=11)  # after the cooldown, newer data gets its chance
    w.data = NEW_DATA
    p = w.step(drift())
    assert p.trigger is not None and p.child is not None and p.child.name == child_name("iris", UID, 2)


def test_digests_compare_with_or_without_the_sha256_prefix():
    champ = Champion(name="iris-v1", spec=mv_spec(), dataset_digest="sha256:" + "A" * 64)
    w = World(spec=policy(triggers={"drift": {"consecutive": 1}}), champion=champ)
    w.data = Resolution(uri="sklearn:iris", digest="a" * 64)
    assert w.step(drift()).child is None and w.status.last_skipped.outcome == "NoNewData"


def test_data_that_cannot_be_resolved_is_reported_and_holds_like_a_failed_child():
    w = World(
        spec=policy(triggers={"drift": {"consecutive": 1}}, template={"datasetUri": "pvc://data/iris/"})
    )
    w.data = Resolution(error="no .csv or .parquet file in /mnt/pvc/data/iris")
    p = w.step(drift())
    assert p.child is None and w.status.last_skipped.outcome == "DatasetUnresolved"
    assert ("Warning", "DatasetUnresolved") in [(t, r) for t, r, _ in p.events]
    w.tick(minutes=5)
    assert w.step(drift()).trigger is None  # cooldown


def test_a_manual_retrain_on_the_same_data_is_made_at_once():
    """A person may retrain on the same data (new params); only drift and decay need new data."""
    w = World(spec=policy(template={"params": {"n_estimators": 10}}))
    w.data = None
    p = w.step(request="again")
    assert p.resolve is None and p.child is not None


def test_a_dated_template_is_resolved_for_any_trigger_and_the_child_trains_on_the_result():
    spec = policy(
        template={
            "datasetUri": "pvc://data/iris/%Y-%m-%d.csv",
            "spec": {"training": {"dataset": {"target": "y"}}},
        }
    )
    w = World(spec=spec)
    w.data = None
    p = w.step(request="go")
    assert p.child is None and p.resolve.uri == "pvc://data/iris/%Y-%m-%d.csv" and p.resolve.at == ts(NOW)
    p = w.step(resolution=Resolution(uri="pvc://data/iris/2026-11-26.csv", digest="a" * 64))
    assert p.child is not None and p.child.spec.training.dataset.uri == "pvc://data/iris/2026-11-26.csv"


def test_a_template_with_an_unknown_field_is_an_invalid_template():
    w = World(spec=policy(template={"datasetUri": "pvc://data/iris/%Q.csv"}))
    w.step()
    assert w.cond("Ready")["reason"] == "InvalidTemplate" and "%Q" in w.cond("Ready")["message"]
