"""Report the training result to the ModelVersion, so the operator can read it after the pod is gone.

Choice: merge-patch `status.training` of the ModelVersion through its status subresource.
- It survives the pod and the Job: pod logs and termination messages vanish with the pod, and a
  termination message is capped at 4 KiB, too small for reference bins of many features.
- It is bound to this exact run twice over: the body carries `jobUid` (the operator ignores a
  result whose jobUid is not its current Job's, so a late write from an old Job cannot win), and
  the write is a compare-and-swap on the ModelVersion we were started for: read it, check its
  uid, patch with its resourceVersion. (A `metadata.uid` in a /status patch is NOT a
  precondition: the status strategy copies the stored metadata before validation, so the API
  server silently ignores it; a resourceVersion is checked first. Proved in
  tests/integration/test_modelversion.py against the real API server.)
- It needs no second kind: a separate result object (ConfigMap) would need its own RBAC, owner
  references and garbage collection, and the operator would have to watch two kinds.
- The trainer's RBAC is one rule: `patch` on `modelversions/status`.
Every field of TrainingResult is sent, with explicit nulls, because a JSON merge patch keeps keys
it is not told about: a success after a failed attempt must clear the old `message`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelops.api.modelversion import TrainingResult

from .errors import ReportError

GROUP, VERSION, PLURAL = "modelops.dev", "v1alpha1", "modelversions"
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Target:
    """Which ModelVersion to report to, and which Job run this is."""

    name: str
    namespace: str
    uid: str | None = None
    job_uid: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Target | None:
        env = dict(os.environ if env is None else env)
        name, namespace = env.get("MODELOPS_MV_NAME"), env.get("MODELOPS_MV_NAMESPACE")
        if not name or not namespace:
            return None
        return cls(name, namespace, env.get("MODELOPS_MV_UID") or None, env.get("MODELOPS_JOB_UID") or None)


def patch_body(result: TrainingResult, target: Target) -> dict[str, Any]:
    """The merge patch: every TrainingResult field (nulls included) under status.training."""
    fields = result.model_copy(update={"job_uid": target.job_uid}).model_dump(by_alias=True, mode="json")
    return {"status": {"training": fields}}


def send(
    body: dict[str, Any],
    target: Target,
    api: Any = None,
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Patch with retries on transient API errors; a 404 or a different uid is final.

    With a uid to bind to, each attempt reads the version, checks the uid and patches with the
    resourceVersion it read, so a version re-created under the same name never gets our result;
    a 409 means someone wrote in between, and we read again.
    """
    from kubernetes.client.exceptions import ApiException

    api = api or _custom_objects_api()
    where = f"ModelVersion {target.namespace}/{target.name}"
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            payload = body
            if target.uid:
                current = api.get_namespaced_custom_object_status(
                    GROUP, VERSION, target.namespace, PLURAL, target.name
                )
                meta = current.get("metadata", {})
                if meta.get("uid") != target.uid:
                    raise ReportError(f"{where} was replaced (uid is no longer {target.uid}); not recorded")
                payload = {**body, "metadata": {"resourceVersion": meta.get("resourceVersion")}}
            api.patch_namespaced_custom_object_status(
                GROUP, VERSION, target.namespace, PLURAL, target.name, payload
            )
            return
        except ReportError:
            raise
        except ApiException as exc:
            if exc.status == 404:
                raise ReportError(f"{where} not found: it was deleted, result not recorded") from None
            retry = exc.status in TRANSIENT_STATUS or (exc.status == 409 and target.uid)
            if not retry or attempt == attempts:
                raise ReportError(f"cannot patch {where}: HTTP {exc.status} {exc.reason}") from None
            if exc.status == 409:
                continue  # lost a compare-and-swap to another writer: read again at once
        except Exception as exc:  # connection refused, timeouts, DNS: transient on a pod's start-up
            if attempt == attempts:
                raise ReportError(f"cannot reach the API server: {type(exc).__name__}: {exc}") from None
        sleep(delay)
        delay = min(delay * 2, 8.0)


def _custom_objects_api() -> Any:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except Exception as exc:
            raise ReportError(f"no in-cluster config and no usable KUBECONFIG: {exc}") from None
    return client.CustomObjectsApi()
