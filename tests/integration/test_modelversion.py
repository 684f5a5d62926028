"""ModelVersion through its whole life, with the operator running for real against the API server."""

from __future__ import annotations

import hashlib
import random
import time

import httpx
import pytest

from tests.support.wait import eventually

pytestmark = pytest.mark.cluster

ALL_CONDITIONS = ("Trained", "Validated", "Deployed", "Promoted", "Ready")


def owned_by(obj, uid: str) -> bool:
    return any(o.uid == uid for o in (obj.metadata.owner_references or []))


def test_apply_to_champion(mvs, kubelet, operator):
    mvs.create("iris-v1")
    st = mvs.wait_phase("iris-v1", "Serving")
    mv = mvs.get("iris-v1")
    gen = mv["metadata"]["generation"]
    eventually(
        lambda: all((mvs.condition("iris-v1", t) or {}).get("status") == "True" for t in ALL_CONDITIONS),
        timeout=30,
        what="every condition True",
    )
    for t in ALL_CONDITIONS:
        c = mvs.condition("iris-v1", t)
        assert c["observedGeneration"] == gen and c["lastTransitionTime"] and c["reason"], c
    st = mvs.status("iris-v1")
    assert st["champion"] is True and st["observedGeneration"] == gen
    assert st["training"]["metrics"]["accuracy"] >= 0.8
    assert st["primaryMetric"].startswith("accuracy=")
    assert {"trainingStarted", "trained", "validated", "deployed", "promoted"} <= set(st["timestamps"])
    # the artifact on the claim is the one the status names
    art = kubelet.artifact_dir("modelops-artifacts", "iris", "iris-v1") / "model.skops"
    assert hashlib.sha256(art.read_bytes()).hexdigest() == st["training"]["artifact"]["sha256"]
    # owned children with deterministic names; the stable Service points at the champion
    uid = mv["metadata"]["uid"]
    assert owned_by(mvs.batch.read_namespaced_job("iris-v1-train", mvs.ns), uid)
    dep = mvs.apps.read_namespaced_deployment("iris-v1-server", mvs.ns)
    assert owned_by(dep, uid)
    assert dep.spec.template.spec.containers[0].readiness_probe.http_get.path == "/v2/health/ready"
    assert dep.spec.template.spec.security_context.run_as_non_root is True
    assert mvs.champion_of("iris") == "iris-v1"
    # the real server answers for this version
    srv = kubelet.server_for("iris-v1")
    r = httpx.post(
        f"{srv.url}/predict",
        json={
            "instances": [
                {
                    "sepal length (cm)": 5.1,
                    "sepal width (cm)": 3.5,
                    "petal length (cm)": 1.4,
                    "petal width (cm)": 0.2,
                }
            ]
        },
    )
    assert r.status_code == 200, r.text
    # kubectl tells the story
    from tests.integration.conftest import kubectl

    kubectl(mvs.kubeconfig, "-n", mvs.ns, "wait", "--for=condition=Ready", "mv/iris-v1", "--timeout=10s")
    out = kubectl(mvs.kubeconfig, "-n", mvs.ns, "get", "mv").stdout
    assert "iris-v1" in out and "Serving" in out and "accuracy=" in out
    mvs.wait_event("iris-v1", "Promoted")


def test_second_version_supersedes_and_manual_rollback_restores(mvs, kubelet, operator):
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving")
    mvs.create("iris-v2", parent="iris-v1")
    mvs.wait_phase("iris-v2", "Serving")
    mvs.wait_phase("iris-v1", "Superseded")
    assert mvs.champion_of("iris") == "iris-v2"
    eventually(
        lambda: mvs.apps.read_namespaced_deployment("iris-v1-server", mvs.ns).spec.replicas == 0,
        timeout=30,
        what="the superseded version to scale down",
    )
    mvs.annotate("iris-v1", "modelops.dev/promote", "rollback-1")
    mvs.wait_phase("iris-v1", "Serving")
    mvs.wait_phase("iris-v2", "Superseded")
    assert mvs.champion_of("iris") == "iris-v1"
    assert mvs.status("iris-v1")["handledPromotion"] == "annotation:rollback-1"


def test_the_stable_service_is_owned_state(mvs, kubelet, operator):
    """Deleted → recreated; pointed at nothing → restored; pointed by hand at a valid version → a rollback."""
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving")
    mvs.create("iris-v2", parent="iris-v1", serving={"drainSeconds": 3600})
    mvs.wait_phase("iris-v2", "Serving")
    mvs.wait_phase("iris-v1", "Superseded")

    def annotation() -> str | None:
        return (mvs.core.read_namespaced_service("iris", mvs.ns).metadata.annotations or {}).get(
            "modelops.dev/champion"
        )

    mvs.core.delete_namespaced_service("iris", mvs.ns)
    eventually(lambda: mvs.champion_of("iris") == "iris-v2", timeout=30, what="the Service to be recreated")
    assert mvs.phase("iris-v2") == "Serving" and mvs.phase("iris-v1") == "Superseded"
    mvs.core.patch_namespaced_service(
        "iris", mvs.ns, {"spec": {"selector": {"modelops.dev/version": "nothing"}}}
    )
    eventually(lambda: mvs.champion_of("iris") == "iris-v2", timeout=30, what="the selector to be restored")
    mvs.wait_event("iris-v2", "StableServiceRestored")
    mvs.core.patch_namespaced_service(
        "iris", mvs.ns, {"spec": {"selector": {"modelops.dev/version": "iris-v1"}}}
    )
    mvs.wait_phase("iris-v1", "Serving")
    mvs.wait_phase("iris-v2", "Superseded")
    eventually(lambda: annotation() == "iris-v1", timeout=30, what="the hand-made rollback to be recorded")
    assert mvs.champion_of("iris") == "iris-v1" and mvs.status("iris-v1")["champion"] is True


def test_gate_failure_is_rejected_and_never_served(mvs, kubelet, operator):
    mvs.create(
        "iris-bad",
        validation={"gates": [{"metric": "accuracy", "min": 0.999}]},
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "DecisionTreeClassifier", "params": {"max_depth": 1}},
        },
    )
    st = mvs.wait_phase("iris-bad", "Rejected")
    assert "accuracy" in st["message"] and "< min 0.999" in st["message"]
    assert mvs.condition("iris-bad", "Validated")["reason"] == "GateFailed"
    assert mvs.condition("iris-bad", "Stalled")["status"] == "True"
    eventually(lambda: mvs.status("iris-bad").get("phase") == "Rejected", timeout=5)
    deps = mvs.apps.list_namespaced_deployment(mvs.ns).items
    assert not [d for d in deps if d.metadata.name == "iris-bad-server"]


def test_worse_challenger_loses_to_the_champion(mvs, kubelet, operator):
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving")
    mvs.create(
        "iris-weak",
        parent="iris-v1",
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "DecisionTreeClassifier", "params": {"max_depth": 1}},
        },
        validation={"champion": {"metric": "accuracy", "minImprovement": 0.0}},
    )
    st = mvs.wait_phase("iris-weak", "Rejected")
    assert mvs.condition("iris-weak", "Validated")["reason"] == "ChampionBetter"
    assert "iris-v1" in st["message"]
    assert mvs.champion_of("iris") == "iris-v1"


def test_failed_training_reports_the_trainers_reason(mvs, kubelet, operator):
    mvs.create(
        "iris-nodata",
        training={
            "dataset": {"uri": "file:///nonexistent/data.csv", "target": "y"},
            "estimator": {"class": "LogisticRegression"},
            "backoffLimit": 0,
        },
    )
    st = mvs.wait_phase("iris-nodata", "Failed")
    trained = mvs.condition("iris-nodata", "Trained")
    assert trained["reason"] == "TrainingFailed"
    assert "nonexistent" in trained["message"], trained
    mvs.wait_event("iris-nodata", "TrainingFailed")
    assert "training failed" in st["message"]


def test_tampered_artifact_fails_and_the_champion_keeps_serving(mvs, kubelet, operator):
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving")
    kubelet.hold_servers.add("iris-v2")
    mvs.create("iris-v2")
    eventually(
        lambda: (mvs.status("iris-v2").get("training") or {}).get("artifact"),
        timeout=120,
        what="iris-v2 to be trained",
    )
    art = kubelet.artifact_dir("modelops-artifacts", "iris", "iris-v2") / "model.skops"
    art.write_bytes(art.read_bytes() + b"tampered")
    kubelet.hold_servers.discard("iris-v2")
    st = mvs.wait_phase("iris-v2", "Failed")
    assert "sha256" in st["message"], st
    assert mvs.champion_of("iris") == "iris-v1"
    assert mvs.phase("iris-v1") == "Serving"


def test_racing_promotions_leave_exactly_one_champion(mvs, kubelet, operator):
    for name in ("iris-a", "iris-b", "iris-c"):
        mvs.create(name)
    for name in ("iris-a", "iris-b", "iris-c"):
        mvs.wait_phase(name, "Serving", "Superseded", timeout=180)

    def settled():
        champions = [n for n in ("iris-a", "iris-b", "iris-c") if mvs.status(n).get("champion")]
        return champions if len(champions) == 1 and champions[0] == mvs.champion_of("iris") else None

    champions = eventually(settled, timeout=30, what="exactly one champion")
    others = {"iris-a", "iris-b", "iris-c"} - set(champions)
    assert all(mvs.phase(n) == "Superseded" for n in others)


def test_sigkill_at_random_points_converges_without_duplicates(mvs, kubelet, operator):
    rnd = random.Random(7)
    mvs.create("iris-v1")
    for _ in range(10):
        time.sleep(rnd.uniform(0.3, 2.5))
        operator.kill()
        operator.start()
    mvs.wait_phase("iris-v1", "Serving", timeout=180)
    mvs.create("iris-v2")
    for _ in range(3):
        time.sleep(rnd.uniform(0.3, 2.0))
        operator.kill()
        operator.start()
    mvs.wait_phase("iris-v2", "Serving", timeout=180)
    mvs.wait_phase("iris-v1", "Superseded")
    jobs = [j.metadata.name for j in mvs.batch.list_namespaced_job(mvs.ns).items]
    deps = [d.metadata.name for d in mvs.apps.list_namespaced_deployment(mvs.ns).items]
    svcs = sorted(s.metadata.name for s in mvs.core.list_namespaced_service(mvs.ns).items)
    assert sorted(jobs) == ["iris-v1-train", "iris-v2-train"]
    assert sorted(deps) == ["iris-v1-server", "iris-v2-server"]
    assert svcs == ["iris", "iris-v1-server", "iris-v2-server"]
    assert len(kubelet.trainings) == 2, kubelet.trainings
    assert operator.runs == 14


def test_deleting_a_version_removes_what_it_owns(mvs, kubelet, operator):
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving")
    mvs.delete("iris-v1")

    def gone():
        jobs = mvs.batch.list_namespaced_job(mvs.ns).items
        deps = mvs.apps.list_namespaced_deployment(mvs.ns).items
        svcs = mvs.core.list_namespaced_service(mvs.ns).items
        return not jobs and not deps and not svcs

    eventually(gone, timeout=60, what="the Job, Deployment and Services to be garbage-collected")


def test_metrics_endpoint_reports_phases_and_promotions(mvs, kubelet, operator):
    mvs.create("iris-v1")
    mvs.wait_phase("iris-v1", "Serving")
    samples = operator.samples()
    phase = {"namespace": mvs.ns, "model": "iris", "version": "iris-v1"}
    assert samples[("modelops_version_phase", tuple(sorted({**phase, "phase": "Serving"}.items())))] == 1
    assert samples[("modelops_version_phase", tuple(sorted({**phase, "phase": "Training"}.items())))] == 0
    assert samples[("modelops_champion", tuple(sorted(phase.items())))] == 1
    promo = {"namespace": mvs.ns, "model": "iris", "kind": "promotion"}
    assert samples[("modelops_promotions_total", tuple(sorted(promo.items())))] == 1
    assert samples[("modelops_reconciles_total", (("kind", "ModelVersion"), ("result", "ok")))] > 0


def test_trainer_reports_only_with_its_own_least_privilege_role(mvs, kubelet, operator, api_client):
    """The stand-in runs the trainer with a token for its ServiceAccount: without the binding it is refused."""
    from kubernetes import client

    client.RbacAuthorizationV1Api(api_client).delete_namespaced_role_binding("modelops-trainer", mvs.ns)
    mvs.create(
        "iris-v1",
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "LogisticRegression"},
            "backoffLimit": 0,
        },
    )
    st = mvs.wait_phase("iris-v1", "Failed")
    assert "forbidden" in st["message"].lower() or "403" in st["message"], st["message"]


def test_a_report_for_a_recreated_version_is_refused_by_the_api_server(mvs, api_client):
    """The trainer's patch carries the version's uid: the API server refuses it for a same-named new object."""
    from kubernetes import client

    from modelops.api.modelversion import TrainingResult
    from modelops.trainer.errors import ReportError
    from modelops.trainer.report import Target, patch_body, send

    old_uid = mvs.create("iris-v1")["metadata"]["uid"]
    mvs.delete("iris-v1")
    eventually(
        lambda: (
            "iris-v1"
            not in [
                m["metadata"]["name"]
                for m in mvs.custom.list_namespaced_custom_object(
                    "modelops.dev", "v1alpha1", mvs.ns, "modelversions"
                )["items"]
            ]
        ),
        timeout=30,
        what="deletion",
    )
    new_uid = mvs.create("iris-v1")["metadata"]["uid"]
    api = client.CustomObjectsApi(api_client)
    result = TrainingResult(metrics={"accuracy": 0.5})
    with pytest.raises(ReportError, match="replaced"):
        send(
            patch_body(result, Target("iris-v1", mvs.ns, old_uid, "job-1")),
            Target("iris-v1", mvs.ns, old_uid),
            api=api,
            attempts=1,
        )
    assert "training" not in mvs.status("iris-v1")
    send(
        patch_body(result, Target("iris-v1", mvs.ns, new_uid, "job-1")),
        Target("iris-v1", mvs.ns, new_uid),
        api=api,
    )
    assert mvs.status("iris-v1")["training"]["metrics"] == {"accuracy": 0.5}


def test_a_child_the_api_server_refuses_shows_its_message_on_the_version(mvs, kubelet, operator):
    """requests above limits passes the CRD (comparing quantities is the API server's job) but the
    Job is refused: the version says why, in the API server's words, with one Warning Event."""
    mvs.create(
        "iris-greedy",
        training={
            "dataset": {"uri": "sklearn:iris"},
            "estimator": {"class": "LogisticRegression"},
            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
        },
    )

    def refused():
        c = mvs.condition("iris-greedy", "Ready") or {}
        return c if c.get("reason") == "ApiRefused" else None

    ready = eventually(refused, timeout=60, what="Ready=False ApiRefused")
    assert ready["status"] == "False"
    assert "Job iris-greedy-train refused by the API server (422)" in ready["message"]
    assert "must be less than or equal to cpu limit" in ready["message"], ready["message"]
    assert (mvs.condition("iris-greedy", "Stalled") or {}).get("status") == "True"
    assert mvs.status("iris-greedy").get("message") == ready["message"]
    eventually(
        lambda: any(e.startswith("Warning ApiRefused") for e in mvs.events("iris-greedy")),
        timeout=30,
        what="a Warning Event",
    )
    assert "Traceback" not in operator.tail(400)
    # retried with backoff (5 s, then 10 s, ...), and the same refusal is not posted again
    eventually(
        lambda: (
            sum(
                "refused by the API server (422)" in line and "retrying in" in line
                for line in operator.tail(400).splitlines()
            )
            >= 2
        ),
        timeout=60,
        what="a retry after the backoff",
    )
    assert sum(e.startswith("Warning ApiRefused") for e in mvs.events("iris-greedy")) == 1
