"""Thin Kubernetes I/O around the pure lifecycle: read views, apply manifests, write status.

Writes use server-side apply with our field manager, so re-applying the same desired
object is a no-op and a restarted operator adopts what it made before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from modelops import GROUP, VERSION
from modelops.lifecycle import naming
from modelops.lifecycle.modelversion import ChampionView, DeploymentView, JobView

FIELD_MANAGER = "modelops"
log = logging.getLogger(__name__)


T = TypeVar("T")


def _or_none(read: Callable[[], T]) -> T | None:
    """A read whose 404 means "not there (yet)", which every view treats as an answer, not an error."""
    try:
        return read()
    except ApiException as e:
        if e.status == 404:
            return None
        raise


class Conflict(Exception):
    """Someone else changed the object first; re-read and decide again."""


def load_config() -> None:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def owner_reference(body: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion", f"{GROUP}/{VERSION}"),
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


class Kube:
    def __init__(self, api: client.ApiClient | None = None) -> None:
        self.api = api or client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self._dyn: DynamicClient | None = None

    @property
    def dyn(self) -> DynamicClient:
        if self._dyn is None:
            self._dyn = DynamicClient(self.api)
        return self._dyn

    # --- generic -------------------------------------------------------------------------
    def apply(self, manifest: dict[str, Any], owner: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create or adopt-and-update through server-side apply."""
        body = dict(manifest)
        if owner is not None:
            body["metadata"] = {**body["metadata"], "ownerReferences": [owner_reference(owner)]}
        res = self.dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        out = self.dyn.server_side_apply(
            res,
            body=body,
            namespace=body["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return out.to_dict()

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete in the background; False when it was already gone."""
        res = self.dyn.resources.get(api_version=api_version, kind=kind)
        body = {"propagationPolicy": "Background"}
        return _or_none(lambda: self.dyn.delete(res, name=name, namespace=namespace, body=body)) is not None

    # --- our kinds -------------------------------------------------------------------------
    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return _or_none(
            lambda: self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        )

    def get_modelversion(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("modelversions", namespace, name)

    def list_modelversions(self, namespace: str, model: str | None = None) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions")["items"]
        return [i for i in items if model is None or i.get("spec", {}).get("model") == model]

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": status}
        )

    def patch_status_changes(self, plural: str, body: dict[str, Any], status: dict[str, Any]) -> None:
        """Merge-patch only the status fields that differ from `body`: timers re-run often, most runs change nothing."""
        current = body.get("status") or {}
        changed = {k: v for k, v in status.items() if current.get(k) != v}
        if changed:
            self.patch_status(plural, body["metadata"]["namespace"], body["metadata"]["name"], changed)

    # --- views ----------------------------------------------------------------------------
    def job_view(self, namespace: str, name: str) -> JobView | None:
        job = _or_none(lambda: self.batch.read_namespaced_job(name, namespace))
        if job is None:
            return None
        st = job.status
        failed = any(c.type == "Failed" and c.status == "True" for c in (st.conditions or []))
        complete = any(c.type == "Complete" and c.status == "True" for c in (st.conditions or []))
        finished: datetime | None = st.completion_time
        message = None
        if failed:
            cond = next(c for c in st.conditions if c.type == "Failed")
            finished = cond.last_transition_time
            message = self._pod_termination_message(namespace, f"batch.kubernetes.io/job-name={name}")
            message = message or f"{cond.reason}: {cond.message}"
        return JobView(
            uid=job.metadata.uid,
            active=st.active or 0,
            succeeded=1 if complete else 0,
            failed=failed,
            failure_message=message,
            finished_at=finished,
        )

    def _pod_termination_message(self, namespace: str, selector: str) -> str | None:
        """The one-line reason a container left, as the kubelet recorded it."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp, reverse=True):
            for cs in pod.status.container_statuses or []:
                for state in (cs.state, cs.last_state):
                    term = state.terminated if state else None
                    if term and term.exit_code:
                        text = (term.message or term.reason or f"exit code {term.exit_code}").strip()
                        return text.splitlines()[-1] if text else f"exit code {term.exit_code}"
        return None

    def deployment_view(self, namespace: str, name: str, model: str, version: str) -> DeploymentView | None:
        dep = _or_none(lambda: self.apps.read_namespaced_deployment(name, namespace))
        if dep is None:
            return None
        st = dep.status
        selector = ",".join(f"{k}={v}" for k, v in naming.server_selector(model, version).items())
        failure = self._pod_termination_message(namespace, selector)
        return DeploymentView(
            replicas=dep.spec.replicas or 0,
            ready_replicas=st.ready_replicas or 0,
            up_to_date=(st.observed_generation or 0) >= (dep.metadata.generation or 0),
            pod_failure=failure,
        )

    def champion_version(self, namespace: str, model: str) -> tuple[str, dict[str, Any] | None] | None:
        """The champion's name, from the stable Service's selector, and its ModelVersion if it still exists."""
        svc = _or_none(
            lambda: self.core.read_namespaced_service(naming.stable_service_name(model), namespace)
        )
        name = (svc.spec.selector or {}).get(naming.LABEL_VERSION) if svc is not None else None
        if not name:
            return None
        return name, self.get_modelversion(namespace, name)

    def champion(self, namespace: str, model: str) -> ChampionView | None:
        """Who the stable Service points at, with the metrics the challenger must beat."""
        found = self.champion_version(namespace, model)
        if found is None:
            return None
        name, mv = found
        metrics = ((mv or {}).get("status", {}).get("training") or {}).get("metrics") or {}
        return ChampionView(name=name, metrics={k: float(v) for k, v in metrics.items()})

    # --- promotion ------------------------------------------------------------------------
    def take_stable_service(self, desired: dict[str, Any], owner: dict[str, Any]) -> str | None:
        """Point the model's stable Service at `owner`; optimistic concurrency makes racing promotions safe.

        Returns the previous champion. Raises Conflict when another promotion won the race.
        """
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        ref = owner_reference(owner, controller=False)
        found = _or_none(lambda: self.core.read_namespaced_service(name, ns))
        if found is None:
            body = {**desired, "metadata": {**desired["metadata"], "ownerReferences": [ref]}}
            try:
                self.core.create_namespaced_service(ns, body)
            except ApiException as e:
                if e.status == 409:
                    raise Conflict(f"stable Service {name} was created concurrently") from e
                raise
            return None
        svc = self.api.sanitize_for_serialization(found)  # the wire form: camelCase, like our manifests
        previous = (svc["spec"].get("selector") or {}).get(naming.LABEL_VERSION)
        # Every version that was ever champion stays an owner, so deleting one never takes the Service.
        owners = [
            {**o, "controller": False, "blockOwnerDeletion": True}
            for o in svc["metadata"].get("ownerReferences") or []
            if o["uid"] != ref["uid"]
        ] + [ref]
        patch = {
            "metadata": {
                "resourceVersion": svc["metadata"]["resourceVersion"],
                "annotations": desired["metadata"]["annotations"],
                "labels": desired["metadata"]["labels"],
                "ownerReferences": owners,
            },
            "spec": {"selector": desired["spec"]["selector"]},
        }
        try:
            # A merge patch carrying resourceVersion is a compare-and-swap: 409 if it moved.
            self.core.patch_namespaced_service(name, ns, patch)
        except ApiException as e:
            if e.status == 409:
                raise Conflict(f"stable Service {name} changed while promoting") from e
            raise
        return previous
