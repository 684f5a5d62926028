"""Watches: the caches the controllers read, and who wakes up when something changes.

ModelVersions and RetrainPolicies are Kopf resources: Kopf indexes cache them. The Jobs,
Deployments, Services, autoscalers and Pods the operator labels as its own are listed and
watched by reflectors (`k8s/reflector.py`, one thread per kind, with the server-side label
selector OWNED_SELECTOR) that put them in the cache through `Children`, without a Kopf worker,
memory record and index store per object. The event handlers map a change to the keys it
concerns, the `Owns()` pattern of controller-runtime:

- a ModelVersion → itself, the policies of its model (their view of the versions), and while
  it is a canary its champion (which sizes itself to the canary's step);
- a RetrainPolicy → itself;
- a Job, Deployment, Pod or version Service → the version in its `modelops.dev/version` label,
  or, for a policy's resolve Job, the policy in its `modelops.dev/policy` label;
- a model's stable Service → every version of the model (who the champion is) and its policies,
  less the champion when the change is its own write.

The echo of a version's own settled write (its status, its children; see `Cache.echo`) does not
wake the version again: the reconcile that wrote it planned with it already.

Handlers run in the event loop: Kopf's are `async` (no thread per event), and the reflectors
hand theirs over with `call_soon_threadsafe` once the cache holds the object.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
import orjson

from modelops import GROUP, VERSION, metrics
from modelops.k8s.cache import INDEX_PREFIX, Cache, Obj, pack, written_last_by
from modelops.k8s.kube import FIELD_MANAGER, STATUS_MANAGER
from modelops.lifecycle import naming
from modelops.lifecycle.observed import pod_view, selected_version, wake_signature

from . import runtime
from .workqueue import NEW, URGENT

OWNED = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
OWNED_SELECTOR = f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"
CHILDREN: dict[str, tuple[str, ...]] = {
    "jobs": ("batch", "v1", "jobs"),
    "deployments": ("apps", "v1", "deployments"),
    "services": ("v1", "services"),
    "hpas": ("autoscaling", "v2", "horizontalpodautoscalers"),
}
"""Owned kinds cached whole (by their API resource); pods are cached as PodViews by owner."""
POD_LABELS = (naming.LABEL_VERSION, naming.LABEL_COMPONENT, naming.LABEL_POLICY)
"""What a pod's wake-up reads of its labels; kept per pod to wake its owner when it is gone."""


def _labels(body: kopf.Body) -> dict[str, str]:
    return dict(body.get("metadata", {}).get("labels") or {})


# --- indexes (the caches) ------------------------------------------------------------------------
def _whole(kind: str) -> Callable[..., Awaitable[dict[Any, Any]]]:
    """An index keeping each object of `kind` whole (less managedFields, packed), by (namespace, name).

    It leaves our writes' overlay alone: Kopf stores what it returns only once every index handler
    of the event has run, and a reconcile reading in between would find neither (a version that
    had just promoted itself read its own status new and, a moment later, old: it saw no champion
    and was "Superseded by nobody", scaled to 0 for minutes, 18 times in a burst of 10,000). The
    event handlers, which Kopf runs after storing, drop it (`_caught_up`)."""

    async def index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, name): pack(body, kind)}

    return index


kopf.index(GROUP, VERSION, "modelversions", id=INDEX_PREFIX + "versions")(_whole("versions"))
kopf.index(GROUP, VERSION, "retrainpolicies", id=INDEX_PREFIX + "policies")(_whole("policies"))


@kopf.index(GROUP, VERSION, "modelversions", id="modelops_versions_by_model")
async def modelops_versions_by_model(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, spec.get("model", "")): name}


@kopf.index(GROUP, VERSION, "retrainpolicies", id="modelops_policies_by_model")
async def modelops_policies_by_model(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, spec.get("model", "")): name}


class Children:
    """The reflectors' sink: each child into the cache (whole and packed; a pod as its PodView
    under "version/component"), then its wake-up handed to the event loop.

    Runs in the reflector threads: a key is only ever written by the one thread watching it."""

    def __init__(self, cache: Cache, loop: asyncio.AbstractEventLoop) -> None:
        self.cache, self.loop = cache, loop
        self._pods: dict[tuple[str, str], dict[str, str]] = {}
        """(namespace, name) → the POD_LABELS of each cached pod."""

    def keys(self, kind: str) -> list[tuple[str, str]]:
        return list(self._pods) if kind == "pods" else self.cache.keys(kind)

    def event(self, kind: str, type_: str | None, body: Obj) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if kind == "pods":
            self._pod(type_, namespace, name, body)
            self.loop.call_soon_threadsafe(on_pod, type_, namespace, name, body)
            return
        if type_ == "DELETED":
            gone = self.cache.pop(kind, namespace, name)
            if "labels" not in meta:  # a re-list found it gone: the cached copy says whose it was
                if gone is None:
                    return
                body = gone
        else:
            self.cache.put(kind, namespace, name, pack(body, kind))
            self.cache.caught_up(kind, namespace, name, body)
        self.loop.call_soon_threadsafe(_on_child, kind, type_, namespace, name, body)

    def _pod(self, type_: str | None, namespace: str, name: str, body: Obj) -> None:
        key = (namespace, name)
        before = self._pods.pop(key, None)
        if before is not None:
            owner = f"{before.get(naming.LABEL_VERSION)}/{before.get(naming.LABEL_COMPONENT)}"
            self.cache.pop_grouped("pods", namespace, owner, name)
        if type_ == "DELETED":
            if "labels" not in body["metadata"] and before is not None:
                body["metadata"]["labels"] = before
            return
        labels = _labels(body)
        version, component = labels.get(naming.LABEL_VERSION), labels.get(naming.LABEL_COMPONENT)
        if version and component:
            self._pods[key] = {k: labels[k] for k in POD_LABELS if k in labels}
            self.cache.put_grouped("pods", namespace, f"{version}/{component}", name, pod_view(body))


# --- wake-ups ------------------------------------------------------------------------------------
def _wake_version(namespace: str, name: str, priority: int = URGENT) -> None:
    runtime.queues["ModelVersion"].add((namespace, name), priority)


def _wake_owner(namespace: str, name: str) -> None:
    """A version woken by a change to something it owns or reads, unless it waits for a Service
    creation slot: a freed slot wakes it (`Slots.when_free`), and till then every reconcile would
    stop at the same write. Its own changes (a new spec, its deletion) still wake it."""
    if not runtime.awaits_service_slot((namespace, name)):
        _wake_version(namespace, name)


def _wake_policies(namespace: str, model: str) -> None:
    for policy in runtime.cache.names("policies_by_model", namespace, model):
        runtime.queues["RetrainPolicy"].add((namespace, policy))


def _gone(kind: str, namespace: str, name: str, type_: str | None) -> None:
    if type_ == "DELETED":
        runtime.cache.caught_up(kind, namespace, name, None)
        runtime.cache.echo(kind, namespace, name, None)


def _caught_up(kind: str, namespace: str, name: str, type_: str | None, body: kopf.Body) -> None:
    """Kopf's index holds this event's object now: drop the overlay entries it supersedes."""
    if type_ == "DELETED":
        _gone(kind, namespace, name, type_)
    else:
        runtime.cache.caught_up(kind, namespace, name, body)


@kopf.on.event(GROUP, VERSION, "modelversions", id="wake")
async def on_version(type: str | None, namespace: str, name: str, body: kopf.Body, **kwargs: Any) -> None:
    runtime.start(kwargs)
    _caught_up("versions", namespace, name, type, body)
    if type == "DELETED":
        metrics.VERSIONS.forget(namespace, body.get("spec", {}).get("model", ""), name)
    first_sight = type in (None, "ADDED") and not body.get("status")
    # Only a version's own reconcile patches its status (the trainer reports as another manager).
    # A deletion stamps no manager: it always wakes.
    deleting = type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp")
    ours = not deleting and written_last_by(body, STATUS_MANAGER, "status")
    if not runtime.cache.echo("versions", namespace, name, body, older_too=True) and not ours:
        _wake_version(namespace, name, NEW if first_sight else URGENT)
    # A canary's step (or its end) changes what its champion serves: the champion sizes itself.
    # Not an echo for the champion, whichever version wrote it.
    champion = ((body.get("status") or {}).get("canary") or {}).get("champion")
    if champion and champion != name:
        _wake_version(namespace, champion)
    _wake_policies(namespace, body.get("spec", {}).get("model", ""))


@kopf.on.event(GROUP, VERSION, "retrainpolicies", id="wake")
async def on_policy(type: str | None, namespace: str, name: str, body: kopf.Body, **kwargs: Any) -> None:
    runtime.start(kwargs)
    _caught_up("policies", namespace, name, type, body)
    runtime.queues["RetrainPolicy"].add((namespace, name))


_seen: dict[tuple[str, str, str], bytes] = {}


def _signature(kind: str, body: kopf.Body) -> bytes:
    """Jobs, Deployments and HPAs: `wake_signature`. A version Service: any change.

    Kept as a 16-byte digest: only equality is asked of it, and the views with their copies of
    labels and owners took 0.9 KiB a child (tracemalloc, 1,000 versions: 1.8 MiB)."""
    if kind == "services":
        signature: object = (body.get("metadata") or {}).get("resourceVersion")
    else:
        signature = wake_signature(kind, body)
    return hashlib.blake2b(orjson.dumps(signature, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def _only_ours(body: kopf.Body) -> bool:
    managed = (body.get("metadata") or {}).get("managedFields") or []
    return bool(managed) and all(e.get("manager") == FIELD_MANAGER for e in managed)


def _on_child(kind: str, type_: str | None, namespace: str, name: str, body: Obj) -> None:
    _gone(kind, namespace, name, type_)
    labels = _labels(body)
    if kind == "services" and labels.get(naming.LABEL_COMPONENT) == "stable":
        model = labels.get(naming.LABEL_MODEL, "")
        # Our own write is the champion's (a promotion or its canary's selector): it planned with it.
        writer = selected_version(body) if runtime.cache.echo(kind, namespace, name, body) else None
        for version in runtime.cache.names("versions_by_model", namespace, model):
            if version != writer:
                _wake_owner(namespace, version)
        _wake_policies(namespace, model)
        return
    if policy := labels.get(naming.LABEL_POLICY):  # a policy's resolve Job
        runtime.queues["RetrainPolicy"].add((namespace, policy))
        return
    key = (kind, namespace, name)
    before = _seen.pop(key, None)
    after = None if type_ == "DELETED" else _signature(kind, body)
    if after is not None:
        _seen[key] = after
    echo = runtime.cache.echo(kind, namespace, name, body)
    # A child we created, seen before the API's answer reached its creator, is what it planned with.
    echo = echo or (before is None and type_ == "ADDED" and _only_ours(body))
    if (version := labels.get(naming.LABEL_VERSION)) and after != before and not echo:
        _wake_owner(namespace, version)


_pod_failures: dict[tuple[str, str], tuple[str | None, str | None, bool]] = {}
"""What the planners read of each owned pod (PodView): its failure, a resolve pod's report, and
whether it carries the traffic-pool label (a pod absent counts as none of them)."""


def on_pod(type_: str | None, namespace: str, name: str, body: Obj) -> None:
    """Wake the owner only when a pod's failure, a resolve pod's report or its traffic-pool label
    appears, changes or goes: a pod's many status updates while it is scheduled, started and probed
    change nothing the planner sees. A resolve pod wakes its policy, any other its version."""
    key = (namespace, name)
    before = _pod_failures.pop(key, None) or (None, None, False)
    view = None if type_ == "DELETED" else pod_view(body)
    now = (None, None, False) if view is None else (view.failure, view.output, view.pool)
    if type_ != "DELETED":
        _pod_failures[key] = now
    if now == before:
        return
    labels = _labels(body)
    if policy := labels.get(naming.LABEL_POLICY):
        runtime.queues["RetrainPolicy"].add((namespace, policy))
    elif version := labels.get(naming.LABEL_VERSION):
        _wake_owner(namespace, version)
