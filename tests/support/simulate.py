"""Plays the trainer and the kubelet for many versions at once (scale tests and the benchmark).

kwok holds the operator's pods (tests/cluster/kwok/modelops.yaml); this finishes each held
trainer pod with a report written exactly as the real trainer writes it (its patch body,
bound to the Job's uid) and makes server pods Ready. Nothing in the operator knows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelops.api.modelversion import TrainingResult
from modelops.trainer.report import Target, patch_body
from tests.helpers import default_modelversion
from tests.support.kubelet import READY, RESULT

GROUP, VERSION = "modelops.dev", "v1alpha1"
SELECTOR = "app.kubernetes.io/managed-by=modelops"
MOVED = "bench.modelops.dev/simulated"
"""Label the simulator puts on a pod it has moved on, so each pass lists only the pods still to move
(the operator reads no such label: it changes nothing it sees)."""
WRITERS = 16
"""Threads moving pods on in one step (the API client's connection pool must hold them)."""


def modelversion(name: str, model: str, **spec: Any) -> dict[str, Any]:
    """`tests.helpers.default_modelversion` for simulated training: no retry (a failed Job shows
    at once), the estimator's default parameters, and a gate every simulated report passes."""
    training = {
        "dataset": {"uri": "sklearn:iris"},
        "estimator": {"class": "LogisticRegression"},
        "backoffLimit": 0,
    }
    gates = {"gates": [{"metric": "accuracy", "min": 0.5}]}
    return default_modelversion(name, model, **{"training": training, "validation": gates, **spec})


def report(name: str, job_uid: str) -> dict[str, Any]:
    result = TrainingResult.model_validate(
        {
            "succeeded": True,
            "metrics": {"accuracy": 0.95},
            "datasetDigest": "sha256:" + "0" * 64,
            "artifact": {"uri": f"pvc://modelops-artifacts/{name}/model.skops", "sha256": "ab" * 32},
        }
    )
    return patch_body(result, Target(name=name, namespace="", job_uid=job_uid))


class Simulator:
    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.ns = namespace
        self.reported: set[str] = set()
        self.finished: set[str] = set()
        self.readied: set[str] = set()
        self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="simulator")
        """One pool for every pass: a pass runs twice a second, and starting WRITERS threads each
        time cost the benchmark's 2 cores what the operator needs."""

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def step(self) -> int:
        """One pass over the held pods; returns how many were moved on.

        Lists are read as plain JSON (the client's model objects cost seconds per pass at the
        benchmark's 10,000 versions), and only Running pods not yet moved on; a trainer pod's Job
        uid is its ownerReference, so no Job is listed. The pods are moved on from WRITERS threads:
        one write at a time reached about 3 pods a second on a loaded API server, which held
        10,000 versions in Training for hours."""
        selector = f"{SELECTOR},!{MOVED}"
        pods = self._list(self.core.list_namespaced_pod, selector, field_selector="status.phase=Running")
        return sum(self._pool.map(self._move_on, pods))

    def _move_on(self, pod: dict[str, Any]) -> int:
        """Report a trainer pod's training and finish it, or make a server pod ready: 1 if moved."""
        meta = pod["metadata"]
        name, labels, ann = meta["name"], meta.get("labels") or {}, meta.get("annotations") or {}
        version, component = labels.get("modelops.dev/version"), labels.get("app.kubernetes.io/component")
        if not version:
            return 0
        if component == "trainer" and name not in self.finished:
            job_uid = next((o["uid"] for o in meta.get("ownerReferences") or [] if o["kind"] == "Job"), None)
            if job_uid is None:
                return 0
            if version not in self.reported:
                self._patch_status(version, report(version, job_uid))
                self.reported.add(version)
            self._annotate(name, {RESULT: "Succeeded"})
            self.finished.add(name)
            return 1
        if component == "server" and name not in self.readied and READY not in ann:
            self._annotate(name, {READY: "true"})
            self.readied.add(name)
            return 1
        return 0

    def _list(self, method: Any, selector: str = SELECTOR, **kwargs: Any) -> list[dict[str, Any]]:
        resp = method(self.ns, label_selector=selector, _preload_content=False, **kwargs)
        return json.loads(resp.data)["items"]

    def run_until(self, names: Iterable[str], phase: str, timeout: float) -> float:
        """Step until every named version reaches `phase`; returns the seconds it took."""
        wanted, started = set(names), time.monotonic()
        while True:
            self.step()
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "modelversions")[
                "items"
            ]
            phases = {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in items}
            if all(phases.get(n) == phase for n in wanted):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                behind = sorted(n for n in wanted if phases.get(n) != phase)
                raise AssertionError(
                    f"{len(behind)} not {phase} after {timeout}s, e.g. {behind[:5]}: "
                    f"{[phases.get(n) for n in behind[:5]]}"
                )
            time.sleep(0.5)

    def _patch_status(self, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.ns, "modelversions", name, body
        )

    def _annotate(self, pod: str, annotations: dict[str, str]) -> None:
        try:
            body = {"metadata": {"annotations": annotations, "labels": {MOVED: "true"}}}
            self.core.patch_namespaced_pod(pod, self.ns, body)
        except ApiException as e:
            if e.status != 404:
                raise
