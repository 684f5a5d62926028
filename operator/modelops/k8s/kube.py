"""Thin Kubernetes I/O around the pure lifecycle: views from the watch caches, writes only for differences.

Reads come from `Cache` (watch-fed, with our own writes visible at once); nothing here
GETs or LISTs per object. Writes happen only when the desired state differs from the
cached one: server-side apply with our field manager for owned objects (so a restarted
operator adopts what it made), merge patches of status carrying the resourceVersion they
were computed from (a stale plan never overwrites newer state), and deletes only of what
the cache says exists. Every request passes a client-side token bucket (QPS and burst).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from modelops import GROUP, VERSION, __version__
from modelops.lifecycle import naming
from modelops.lifecycle.observed import (
    ChampionView,
    DeploymentView,
    JobView,
    champion_view,
    deployment_view,
    job_view,
    selected_version,
    servable,
)
from modelops.lifecycle.patches import contains

from .cache import Cache, Obj
from .slots import Slots

FIELD_MANAGER = "modelops"
HANDOVER_MANAGER = "modelops-handover"
"""Co-owns a Deployment's replicas for the moment they pass from us to its HorizontalPodAutoscaler."""
USER_AGENT = f"modelops-operator/{__version__}"
"""How the operator's own requests show in audit logs (Kopf's watches say `kopf/<version>`)."""
STATUS_MANAGER = USER_AGENT.split("/")[0]
"""The field manager of our status patches: the API server names it after the user agent."""
log = logging.getLogger(__name__)
CONNECT_TIMEOUT = 10.0

GATEWAY_API = "gateway.networking.k8s.io/v1"
T = TypeVar("T")
PLURAL_KIND = {"modelversions": "versions", "retrainpolicies": "policies"}


def _or_none(read: Callable[[], T]) -> T | None:
    """A call whose 404 means "not there", which callers treat as an answer, not an error."""
    try:
        return read()
    except ApiException as e:
        if e.status == 404:
            return None
        raise


class Conflict(Exception):
    """Someone else changed the object first; the watch will bring the news, then decide again."""


class Refused(Exception):
    """The API server refused a write with a 4xx that retrying as is cannot fix (invalid, forbidden,
    over quota): the controller shows the server's own message on the object and backs off."""

    def __init__(self, kind: str, name: str, status: int, message: str) -> None:
        self.kind, self.name, self.status, self.message = kind, name, status, message
        super().__init__(f"{kind} {name} refused by the API server ({status}): {message}")


REFUSALS = range(400, 500)
RETRIABLE = (404, 409, 429)
"""4xx answers that are not a refusal: gone, conflict (decide again), throttled (retry)."""


def api_message(e: ApiException) -> str:
    """The API server's one-line reason from a Status body, else the HTTP reason."""
    try:
        body = json.loads(e.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(e.reason or e.status)


def refused(e: ApiException, kind: str, name: str) -> Refused | None:
    """The Refused to raise for `e`, or None when `e` is not a refusal."""
    if e.status in REFUSALS and e.status not in RETRIABLE:
        return Refused(kind, name, e.status, api_message(e))
    return None


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


class TokenBucket:
    """Client-side rate limit, as client-go's QPS/Burst: `burst` at once, then `qps` per second."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps, self.burst = qps, max(1, burst)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> None:
        if self.qps <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            self._tokens -= 1
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait:
            time.sleep(wait)


class RateLimitedApiClient(client.ApiClient):
    """The operator's request client: rate-limited, and no request waits for an answer forever.

    The generated client sends no timeout unless each call passes one, so a request on a
    connection that died silently (a failed-over API server, a dropped NAT entry) held its
    worker, and its object's key, until the process ended; client-go notices with HTTP/2 pings.
    """

    limiter: TokenBucket | None = None
    timeout: tuple[float, float] | None = None
    """(connect, read) seconds for a call that gives none."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if self.limiter is not None:
            self.limiter.take()
        if kwargs.get("_request_timeout") is None and self.timeout is not None:
            kwargs["_request_timeout"] = self.timeout
        return super().request(*args, **kwargs)


class Kube:
    def __init__(
        self,
        api: client.ApiClient | None = None,
        cache: Cache | None = None,
        *,
        qps: float = 0,
        burst: int = 1,
        connections: int = 0,
        service_creations: int = 0,
        timeout: float = 0,
    ) -> None:
        """`service_creations`: Service creations in flight at most (0: no cap); see `slots`.
        `timeout`: seconds a request may wait for its answer (0: forever)."""
        if api is None:
            conf = client.Configuration.get_default_copy()
            # urllib3 keeps cpu_count * 5 connections by default; a worker finding none idle opens
            # one and throws it away afterwards (a TLS handshake per request under load).
            conf.connection_pool_maxsize = max(conf.connection_pool_maxsize, connections)
            api = RateLimitedApiClient(conf)
            api.limiter = TokenBucket(qps, burst)
            api.timeout = (min(timeout, CONNECT_TIMEOUT), timeout) if timeout else None
            api.user_agent = USER_AGENT
        self.api = api
        self.cache = cache or Cache()
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self._dyn: DynamicClient | None = None
        self._dyn_lock = threading.Lock()
        self.service_slots = Slots("Service creations", service_creations)
        """Each new Service's ClusterIP is allocated by the API server one at a time."""

    @property
    def dyn(self) -> DynamicClient:
        """Made once: building one reads the API server's discovery (a GET per API group), and the
        workers' first reconciles ask for it at the same moment (32 of them made 183 such GETs)."""
        if self._dyn is None:
            with self._dyn_lock:
                if self._dyn is None:
                    self._dyn = DynamicClient(self.api)
        return self._dyn

    # --- writes --------------------------------------------------------------------------------
    def apply(self, manifest: dict[str, Any], owner: dict[str, Any] | None = None) -> Obj:
        """Create or adopt-and-update through server-side apply."""
        body = _owned(manifest, owner)
        res = self.dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        try:
            out = self.dyn.server_side_apply(
                res,
                body=body,
                namespace=body["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        except ApiException as e:
            if (r := refused(e, body["kind"], body["metadata"]["name"])) is not None:
                raise r from e
            raise
        return out.to_dict()

    def ensure(
        self, kind: str, manifest: dict[str, Any], owner: dict[str, Any] | None = None, *, force: bool = False
    ) -> bool:
        """Apply `manifest` unless the cached object already holds it; True when a write was made.

        `force`: apply even so (a field to give up is left out of the manifest, which `contains`
        cannot see)."""
        meta = manifest["metadata"]
        observed = self.cache.get(kind, meta["namespace"], meta["name"])
        desired = _owned(manifest, owner)
        if observed is not None and contains(observed, desired) and not force:
            return False
        creating_service = kind == "services" and observed is None
        with self.service_slots.take() if creating_service else nullcontext():  # Busy when none is free
            out = self.apply(desired)
        self.cache.wrote(kind, out, settled=True)  # only ever by the owner's reconcile
        return True

    def hand_over_replicas(self, namespace: str, name: str) -> bool:
        """Give up a Deployment's spec.replicas to its HorizontalPodAutoscaler without a jump to 1.

        Server-side apply removes a field that leaves the only applier's manifest, and the API server
        then defaults replicas to 1. So, as the Kubernetes docs describe for handing a field to an HPA,
        the current value is first applied by a second field manager (`modelops-handover`): the field
        is then co-owned, survives our next apply without it, and the handover manager's claim lapses as
        soon as the HPA writes a new size. True when there was something to hand over (then apply
        without replicas at once, even if nothing else changed).
        """
        observed = self.cache.get("deployments", namespace, name)
        if observed is None or not owns(observed, FIELD_MANAGER, ("f:spec", "f:replicas")):
            return False
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": (observed.get("spec") or {}).get("replicas")},
        }
        res = self.dyn.resources.get(api_version="apps/v1", kind="Deployment")
        try:
            self.dyn.server_side_apply(res, body=body, namespace=namespace, field_manager=HANDOVER_MANAGER)
        except ApiException as e:
            if e.status == 409:  # the autoscaler wrote another size meanwhile: it owns the field now
                return True
            raise
        return True

    def delete(self, kind: str, api_version: str, type_: str, namespace: str, name: str) -> bool:
        """Delete in the background what the cache says exists; False (and no request) otherwise."""
        observed = self.cache.get(kind, namespace, name)
        if observed is None or observed["metadata"].get("deletionTimestamp"):
            return False
        res = self.dyn.resources.get(api_version=api_version, kind=type_)
        body = {"propagationPolicy": "Background"}
        _or_none(lambda: self.dyn.delete(res, name=name, namespace=namespace, body=body))
        if not observed["metadata"].get("finalizers"):  # with finalizers it lingers, being deleted
            self.cache.deleted(kind, namespace, name, observed["metadata"].get("uid"))
        return True

    def patch_status(self, plural: str, body: dict[str, Any], status: dict[str, Any]) -> None:
        """Merge-patch status, valid only against the resourceVersion the patch was computed from."""
        meta = body["metadata"]
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        try:
            out = self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], plural, meta["name"], patch
            )
        except ApiException as e:
            if e.status == 409:
                raise Conflict(f"{plural}/{meta['name']} changed since it was read") from e
            raise
        self.cache.wrote(PLURAL_KIND[plural], out, settled=True)  # by the object's own reconcile

    def patch_metadata(
        self, plural: str, namespace: str, name: str, metadata: dict[str, Any], *, settled: bool
    ) -> None:
        out = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, {"metadata": metadata}
        )
        self.cache.wrote(PLURAL_KIND[plural], out, settled=settled)

    def release(self, namespace: str, name: str, owner_uid: str) -> bool:
        """Drop `owner_uid` from a ModelVersion's ownerReferences (a compare-and-swap); False if not there."""
        mv = self.modelversion(namespace, name)
        owners = (mv or {}).get("metadata", {}).get("ownerReferences") or []
        if mv is None or not any(o.get("uid") == owner_uid for o in owners):
            return False
        meta = {
            "resourceVersion": mv["metadata"]["resourceVersion"],
            "ownerReferences": [o for o in owners if o.get("uid") != owner_uid] or None,
        }
        try:
            self.patch_metadata("modelversions", namespace, name, meta, settled=False)  # the policy's write
        except ApiException as e:
            if e.status == 409:
                raise Conflict(f"modelversions/{name} changed while releasing it") from e
            raise
        return True

    def add_finalizer(self, plural: str, body: Obj, finalizer: str) -> bool:
        finalizers = body["metadata"].get("finalizers") or []
        if finalizer in finalizers:
            return False
        self._set_finalizers(plural, body, [*finalizers, finalizer])
        return True

    def remove_finalizer(self, plural: str, body: Obj, finalizer: str) -> bool:
        finalizers = body["metadata"].get("finalizers") or []
        if finalizer not in finalizers:
            return False
        self._set_finalizers(plural, body, [f for f in finalizers if f != finalizer])
        return True

    def _set_finalizers(self, plural: str, body: Obj, finalizers: list[str]) -> None:
        """A merge patch replaces the list whole: the resourceVersion makes it a compare-and-swap."""
        meta = body["metadata"]
        patch = {"resourceVersion": meta["resourceVersion"], "finalizers": finalizers or None}
        try:
            self.patch_metadata(plural, meta["namespace"], meta["name"], patch, settled=True)
        except ApiException as e:
            if e.status == 409:
                raise Conflict(f"{plural}/{meta['name']} changed since it was read") from e
            if e.status != 404:
                raise

    def create_modelversion(self, namespace: str, manifest: dict[str, Any]) -> Obj | None:
        """Create, or None when the name is taken (the caller decides whether to adopt)."""
        try:
            out = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "modelversions", manifest
            )
        except ApiException as e:
            if e.status == 409:
                return None
            if (r := refused(e, "ModelVersion", manifest["metadata"]["name"])) is not None:
                raise r from e
            raise
        self.cache.wrote("versions", out)
        return out

    # --- reads (from the caches) ---------------------------------------------------------------
    def modelversion(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get("versions", namespace, name)

    def policy(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get("policies", namespace, name)

    def modelversions(self, namespace: str, model: str) -> list[Obj]:
        return self.cache.versions_of(namespace, model)

    def job_view(self, namespace: str, name: str, version: str, component: str = "trainer") -> JobView | None:
        job = self.cache.get("jobs", namespace, name)
        if job is None:
            return None
        return job_view(job, self.cache.values("pods", namespace, f"{version}/{component}"))

    def deployment_view(self, namespace: str, name: str, version: str) -> DeploymentView | None:
        dep = self.cache.get("deployments", namespace, name)
        if dep is None:
            return None
        return deployment_view(dep, self.cache.values("pods", namespace, f"{version}/server"))

    def champion_version(self, namespace: str, model: str) -> tuple[str, Obj] | None:
        """The champion: the version the stable Service selects, only if it is a servable version of
        this model (never a name without an object; a broken Service has no champion)."""
        name = selected_version(self.cache.get("services", namespace, naming.stable_service_name(model)))
        mv = self.modelversion(namespace, name) if name else None
        if not name or mv is None or not servable(mv, model):
            return None
        return name, mv

    def champion(self, namespace: str, model: str) -> ChampionView | None:
        found = self.champion_version(namespace, model)
        if found is None:
            return None
        name, _ = found
        return champion_view(
            *found,
            self.cache.get("services", namespace, naming.stable_service_name(model)),
            self.deployment_view(namespace, naming.deployment_name(name), name),
        )

    # --- canary traffic ----------------------------------------------------------------------------
    def label_pool(self, namespace: str, version: str, pool: bool) -> int:
        """Put the traffic-pool label on this version's server pods, or take it off; returns pods patched.

        A pod relabelled keeps running (its ReplicaSet selects by version), so a version joins or
        leaves the stable Service's pool without a restart.
        """
        value = naming.POOL_VALUE if pool else None
        patched = 0
        for pod in self.cache.values("pods", namespace, f"{version}/server"):
            if pod.pool == pool:
                continue
            body = {"metadata": {"labels": {naming.LABEL_POOL: value}}}
            done = _or_none(
                lambda name=pod.name, body=body: self.core.patch_namespaced_pod(name, namespace, body)
            )
            patched += done is not None
        return patched

    def _still_champion(
        self, namespace: str, model: str, expected: str | None, doing: str, mine: str | None = None
    ) -> None:
        """The reconcile decided from the champion it observed; another version's reconcile may have
        taken the stable Service since (the cache has its write). A compare-and-swap on the cached
        resourceVersion alone would then overwrite the new champion's Service with a stale plan.
        `mine`: the acting version, which may already hold it by its own write in this pass."""
        found = self.champion_version(namespace, model)
        now = found[0] if found else None
        if now != expected and (mine is None or now != mine):
            raise Conflict(
                f"stable Service {naming.stable_service_name(model)} selects {now or 'no champion'}, "
                f"not {expected or 'no champion'} as when {doing} was decided"
            )

    def set_stable_selector(
        self, namespace: str, model: str, selector: dict[str, str], champion: str | None
    ) -> bool:
        """The champion's say over its stable Service's selector (pool or itself), as a compare-and-swap,
        only while the champion is still `champion`, the one the plan saw (None: a champion
        restoring a Service that selects no servable version)."""
        name = naming.stable_service_name(model)
        svc = self.cache.get("services", namespace, name)
        if svc is None or (svc.get("spec") or {}).get("selector") == selector:
            return False
        self._still_champion(namespace, model, champion, "setting its selector")
        current = svc["spec"].get("selector") or {}
        patch = {
            "metadata": {"resourceVersion": svc["metadata"]["resourceVersion"]},
            # A merge patch: keys to drop are set to null.
            "spec": {"selector": {**dict.fromkeys(current), **selector}},
        }
        try:
            out = self.core.patch_namespaced_service(name, namespace, patch)
        except ApiException as e:
            if e.status == 409:
                raise Conflict(f"stable Service {name} changed while setting its selector") from e
            raise
        self.cache.wrote("services", self.api.sanitize_for_serialization(out), settled=True)
        return True

    def _route(self, namespace: str, name: str) -> Obj | None:
        try:
            res = self.dyn.resources.get(api_version=GATEWAY_API, kind="HTTPRoute")
        except Exception as e:  # the Gateway API CRDs are not installed
            log.debug("no HTTPRoute kind: %s", e)
            return None
        found = _or_none(lambda: self.dyn.get(res, name=name, namespace=namespace))
        return found.to_dict() if found is not None else None

    def route_weights(self, namespace: str, name: str) -> dict[str, int] | None:
        """The HTTPRoute's backend weights by Service name, read from the API (routes are not
        watched: only a gatewayAPI canary reads one, every few seconds); {} when its rules disagree,
        None when it does not exist."""
        route = self._route(namespace, name)
        if route is None:
            return None
        seen: list[dict[str, int]] = []
        for rule in (route.get("spec") or {}).get("rules") or []:
            seen.append({b["name"]: int(b.get("weight", 1)) for b in rule.get("backendRefs") or []})
        if not seen or any(w != seen[0] for w in seen):
            return {}
        return seen[0]

    def set_route_backends(self, namespace: str, name: str, backends: list[dict[str, Any]]) -> bool:
        """Make every rule of the HTTPRoute send to `backends` (matches and filters stay the user's);
        a replace carrying the resourceVersion read, so a concurrent edit is never overwritten."""
        route = self._route(namespace, name)
        if route is None:
            return False
        rules = (route.get("spec") or {}).get("rules") or [{}]

        def key(refs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
            # The API server defaults group, kind and weight: compare what we set.
            return [(b["name"], b.get("port"), int(b.get("weight", 1))) for b in refs]

        if all(key(r.get("backendRefs") or []) == key(backends) for r in rules):
            return False
        route["spec"]["rules"] = [{**r, "backendRefs": backends} for r in rules]
        res = self.dyn.resources.get(api_version=GATEWAY_API, kind="HTTPRoute")
        try:
            self.dyn.replace(res, body=route, namespace=namespace, name=name)
        except ApiException as e:
            if e.status == 409:
                raise Conflict(f"HTTPRoute {name} changed while setting its weights") from e
            raise
        return True

    # --- promotion -------------------------------------------------------------------------------
    def take_stable_service(
        self, desired: dict[str, Any], owner: dict[str, Any], *, model: str, replacing: str | None
    ) -> str | None:
        """Point the model's stable Service at `owner`, as a compare-and-swap on the cached version,
        if the champion is still `replacing`, the one the promotion was decided against.

        Returns the previous champion. Raises Conflict when another promotion won the race
        (or the cache is behind: either way, decide again once the watch catches up).
        """
        ns, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        ref = owner_reference(owner, controller=False)
        svc = self.cache.get("services", ns, name)
        self._still_champion(ns, model, replacing, "the promotion", mine=owner["metadata"]["name"])
        try:
            if svc is None:
                body = {**desired, "metadata": {**desired["metadata"], "ownerReferences": [ref]}}
                with self.service_slots.take():  # raises Busy when none is free
                    out = self.core.create_namespaced_service(ns, body)
                self.cache.wrote("services", self.api.sanitize_for_serialization(out), settled=True)
                return None
            previous = selected_version(svc)
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
            # A merge patch carrying resourceVersion is a compare-and-swap: 409 if it moved.
            out = self.core.patch_namespaced_service(name, ns, patch)
        except ApiException as e:
            if e.status == 409:
                raise Conflict(f"stable Service {name} changed while promoting") from e
            if (r := refused(e, "Service", name)) is not None:
                raise r from e
            raise
        self.cache.wrote("services", self.api.sanitize_for_serialization(out), settled=True)
        return previous


def owns(obj: dict[str, Any], manager: str, path: tuple[str, ...]) -> bool:
    """Whether `manager` applied the field at `path` (managedFields, as `cache.strip` keeps them)."""
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        node: Any = entry.get("fieldsV1") or {}
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            return True
    return False


def _owned(manifest: dict[str, Any], owner: dict[str, Any] | None) -> dict[str, Any]:
    if owner is None:
        return manifest
    return {**manifest, "metadata": {**manifest["metadata"], "ownerReferences": [owner_reference(owner)]}}
