"""The operator is a controller, not a poller: events wake it, and a steady state costs no writes.

The operator runs with its default slow resync (300 s), so anything that happens within
seconds here happened because a watch event woke the right object. Its requests are
counted in the API server's audit log by its user agents (`modelops-operator/…` for its
client, `kopf/…` for Kopf's watches, finalizers and Events).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support.kubelet import EXIT_CODE, MESSAGE, RESULT
from tests.support.simulate import Simulator, modelversion
from tests.support.wait import eventually

GROUP, VERSION = "modelops.dev", "v1alpha1"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
OPERATOR_AGENTS = ("modelops-operator/", "kopf/")


def operator_requests(audit_log: Path, namespace: str, since: float) -> list[dict[str, Any]]:
    """The operator's completed requests about `namespace` after `since` (epoch seconds)."""
    out = []
    with audit_log.open() as fh:
        for line in fh:
            ev = json.loads(line)
            if ev.get("stage") != "ResponseComplete" or not str(ev.get("userAgent", "")).startswith(
                OPERATOR_AGENTS
            ):
                continue
            if (ev.get("objectRef") or {}).get("namespace") != namespace:
                continue
            stamp = ev["stageTimestamp"].replace("Z", "+00:00")
            if datetime.fromisoformat(stamp).timestamp() >= since:
                out.append(ev)
    return out


def summary(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ev in events:
        ref = ev.get("objectRef") or {}
        key = (
            f"{ev['verb']} {ref.get('resource')}{'/' + ref['subresource'] if ref.get('subresource') else ''}"
        )
        counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.fixture
def audit_log(cluster: Any) -> Path:
    if cluster.audit_log is None:
        pytest.skip("reads the local cluster's audit log")
    assert cluster.audit_log.exists(), f"no audit log at {cluster.audit_log}"
    return cluster.audit_log


def test_a_failed_job_wakes_its_version_at_once(mvs, storage, operator, api_client, namespace):
    """No timer could have fired: the Job's watch event moved the version."""
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    mvs.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "modelversions", modelversion("v1", "m")
    )
    pod = eventually(
        lambda: next(
            (
                p
                for p in core.list_namespaced_pod(namespace, label_selector="modelops.dev/version=v1").items
                if p.status.phase == "Running"
            ),
            None,
        ),
        timeout=60,
        what="the training pod to run",
    )
    core.patch_namespaced_pod(
        pod.metadata.name,
        namespace,
        {
            "metadata": {
                "annotations": {RESULT: "Failed", EXIT_CODE: "2", MESSAGE: "error: column 'y' not found"}
            }
        },
    )

    def job_failed_at() -> float | None:
        job = batch.read_namespaced_job("v1-train", namespace)
        failed = any(c.type == "Failed" and c.status == "True" for c in job.status.conditions or [])
        return time.monotonic() if failed else None

    failed_at = eventually(job_failed_at, timeout=60, interval=0.05, what="the Job to fail")
    st = eventually(
        lambda: s if (s := mvs.status("v1")).get("phase") == "Failed" else None,
        timeout=10,
        interval=0.05,
        what="the version to see its failed Job (a watch event, not the 300 s resync)",
    )
    latency = time.monotonic() - failed_at
    print(f"Job failed → version Failed in {latency:.2f}s")
    assert "column 'y' not found" in st["message"]


def test_serving_versions_cost_no_writes(mvs, storage, operator, api_client, namespace, audit_log):
    """100 champions Serving, nothing changing: the operator writes nothing and reads nothing per object."""
    n = 100
    sim = Simulator(api_client, namespace)
    for i in range(n):
        mvs.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "modelversions", modelversion(f"m{i}-v1", f"m{i}")
        )
    took = sim.run_until([f"m{i}-v1" for i in range(n)], "Serving", timeout=600)
    print(f"{n} versions created → Serving in {took:.0f}s")
    time.sleep(5)  # let the last promotions' own echoes (status, Events) settle
    since = time.time()
    window = 120
    time.sleep(window + 2)  # the audit log batches for up to 1 s
    seen = operator_requests(audit_log, namespace, since)
    writes = [e for e in seen if e["verb"] in WRITES]
    reads = [e for e in seen if e["verb"] in ("get", "list")]
    assert not writes, f"operator wrote at steady state: {summary(writes)}"
    assert not reads, f"operator read outside its watches: {summary(reads)}"
    for i in (0, n - 1):
        assert mvs.phase(f"m{i}-v1") == "Serving"
