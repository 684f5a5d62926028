"""Which updates of an owned Job or Deployment wake its version: only those that can change a plan."""

from __future__ import annotations

import copy
from typing import Any

from modelops.lifecycle.observed import wake_signature

OWN = {"app.kubernetes.io/managed-by": "modelops", "modelops.dev/version": "iris-v1"}


def job(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris-v1-train", "uid": "u1", "generation": 1, "labels": dict(OWN)},
        "status": status,
    }


def deployment(replicas: int = 1, ready: int = 0, observed: int = 1, generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris-v1-server", "generation": generation, "labels": dict(OWN)},
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": ready, "observedGeneration": observed, "replicas": replicas},
    }


def same(kind: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    return wake_signature(kind, a) == wake_signature(kind, b)


def test_a_jobs_running_pod_count_wakes_no_one_but_its_end_does():
    assert same("jobs", job(), job(active=1))
    assert same("jobs", job(active=1), job(active=0))  # the pod ended, the Job is not yet Complete
    complete = job(
        succeeded=1,
        completionTime="2026-11-29T10:00:00Z",
        conditions=[{"type": "Complete", "status": "True"}],
    )
    assert not same("jobs", job(active=1), complete)
    failed = job(conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
    assert not same("jobs", job(active=1), failed)


def test_a_deployment_observing_its_generation_matters_only_with_a_ready_pod_or_none_wanted():
    assert same("deployments", deployment(observed=0), deployment(observed=1))
    assert not same("deployments", deployment(observed=1), deployment(ready=1))
    assert not same(
        "deployments", deployment(ready=1, observed=1, generation=2), deployment(ready=1, observed=2)
    )
    # Scaled to zero: having observed that generation is the whole news.
    assert not same(
        "deployments", deployment(replicas=0, observed=1, generation=2), deployment(replicas=0, observed=2)
    )


def test_only_our_own_labels_and_annotations_count():
    a = deployment(ready=1)
    b = copy.deepcopy(a)
    b["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    b["metadata"]["labels"]["team"] = "fraud"
    assert same("deployments", a, b)
    c = copy.deepcopy(a)
    del c["metadata"]["labels"]["modelops.dev/version"]
    assert not same("deployments", a, c)
    d = copy.deepcopy(a)
    d["metadata"]["deletionTimestamp"] = "2026-11-29T10:00:00Z"
    assert not same("deployments", a, d)


def test_an_hpas_status_wakes_no_one_but_its_spec_does():
    hpa = {"metadata": {"name": "iris-v1-server", "generation": 1, "labels": dict(OWN)}, "status": {}}
    scaled = copy.deepcopy(hpa)
    scaled["status"] = {"currentReplicas": 3, "desiredReplicas": 3}
    assert same("hpas", hpa, scaled)
    changed = copy.deepcopy(hpa)
    changed["metadata"]["generation"] = 2
    assert not same("hpas", hpa, changed)
