"""Thin Kubernetes I/O around the pure lifecycle: read views, apply manifests, write status.

Writes use server-side apply with our field manager, so re-applying the same desired
object is a no-op and a restarted operator adopts what it made before.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from modelops import GROUP, VERSION
from modelops.lifecycle import naming
from modelops.lifecycle.modelversion import ChampionView, DeploymentView, JobView

FIELD_MANAGER = "modelops"
log = logging.getLogger(__name__)


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
        res = self.dyn.resources.get(api_version=api_version, kind=kind)
        try:
            self.dyn.delete(res, name=name, namespace=namespace, body={"propagationPolicy": "Background"})
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    # --- ModelVersion ----------------------------------------------------------------------
    def get_modelversion(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions", name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list_modelversions(self, namespace: str, model: str | None = None) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions")["items"]
        return [i for i in items if model is None or i.get("spec", {}).get("model") == model]

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": status}
        )

    # --- views ----------------------------------------------------------------------------
    def job_view(self, namespace: str, name: str) -> JobView | None:
        try:
            job = self.batch.read_namespaced_job(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
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
        try:
            dep = self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        st = dep.status
        selector = ",".join(f"{k}={v}" for k, v in naming.server_selector(model, version).items())
        failure = self._pod_termination_message(namespace, selector)
        return DeploymentView(
            replicas=dep.spec.replicas or 0,
            ready_replicas=st.ready_replicas or 0,
            up_to_date=(st.observed_generation or 0) >= (dep.metadata.generation or 0),
            pod_failure=failure,
        )

    def champion(self, namespace: str, model: str) -> ChampionView | None:
        """Who the stable Service points at, with the metrics the challenger must beat."""
        try:
            svc = self.core.read_namespaced_service(naming.stable_service_name(model), namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        name = (svc.spec.selector or {}).get(naming.LABEL_VERSION)
        if not name:
            return None
        mv = self.get_modelversion(namespace, name)
        metrics = ((mv or {}).get("status", {}).get("training") or {}).get("metrics") or {}
        return ChampionView(name=name, metrics={k: float(v) for k, v in metrics.items()})

    # --- promotion ------------------------------------------------------------------------
    def take_stable_service(self, desired: dict[str, Any], owner: dict[str, Any]) -> str | None:
        """Point the model's stable Service at `owner`; optimistic concurrency makes racing promotions safe.

        Returns the previous champion. Raises Conflict when another promotion won the race.
        """
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        ref = owner_reference(owner, controller=False)
        try:
            svc = self.core.read_namespaced_service(name, ns).to_dict()
        except ApiException as e:
            if e.status != 404:
                raise
            body = {**desired, "metadata": {**desired["metadata"], "ownerReferences": [ref]}}
            try:
                self.core.create_namespaced_service(ns, body)
            except ApiException as e2:
                if e2.status == 409:
                    raise Conflict(f"stable Service {name} was created concurrently") from e2
                raise
            return None
        previous = (svc["spec"].get("selector") or {}).get(naming.LABEL_VERSION)
        owners = [o for o in (svc["metadata"].get("owner_references") or []) if o["uid"] != ref["uid"]]
        owners_wire = [
            {
                "apiVersion": o["api_version"],
                "kind": o["kind"],
                "name": o["name"],
                "uid": o["uid"],
                "controller": False,
                "blockOwnerDeletion": True,
            }
            for o in owners
        ] + [ref]
        patch = {
            "metadata": {
                "resourceVersion": svc["metadata"]["resource_version"],
                "annotations": desired["metadata"]["annotations"],
                "labels": desired["metadata"]["labels"],
                "ownerReferences": owners_wire,
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
