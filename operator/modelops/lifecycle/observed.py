"""What the planners see of the world, and how each view is built from an API object.

The views are small and frozen: the watch cache keeps them (not whole Pods or Jobs), so
memory stays flat per object, and the planners never see a raw Kubernetes dictionary.
The builders take the wire form (camelCase dictionaries, as a watch delivers them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from modelops.api.base import try_parse_time

from . import naming


@dataclass(frozen=True)
class PodView:
    """Only what decides a failure (the last non-zero exit of any container, with its message),
    and whether the pod is in its model's traffic pool (the stable Service's shared label)."""

    name: str
    created: str = ""
    failure: str | None = None
    output: str | None = None
    """The termination message of a container that exited 0 (a resolve Job's report)."""
    pool: bool = False


@dataclass(frozen=True)
class JobView:
    uid: str
    active: int = 0
    succeeded: int = 0
    completed: int = 0
    """Pods that succeeded (an Indexed Job: completion indexes done)."""
    failed: bool = False
    failure_message: str | None = None
    finished_at: datetime | None = None
    created: datetime | None = None
    output: str | None = None
    """A completed Job's report: the termination message of its newest successful pod."""


@dataclass(frozen=True)
class DeploymentView:
    replicas: int
    ready_replicas: int
    up_to_date: bool = True
    pod_failure: str | None = None
    pool_pods: int = 0
    """Pods carrying the traffic-pool label."""


@dataclass(frozen=True)
class ChampionView:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    recorded: str | None = None
    """Who the stable Service's modelops.dev/champion annotation names (the last promotion)."""
    artifact_uri: str | None = None
    sha256: str | None = None
    """The champion's artifact: what a challenger's training Job loads to score it on the same data."""
    replicas: int = 1
    """The champion's own serving size: what a replicas canary splits. spec.serving.replicas, or for an
    autoscaled champion the size its HorizontalPodAutoscaler chose (its Deployment's replicas)."""
    autoscaled: bool = False
    """The champion's size is its HorizontalPodAutoscaler's (spec.serving.autoscaling)."""
    deployment: DeploymentView | None = None
    pool: bool = False
    """The stable Service selects the traffic pool (champion and canary pods), not one version."""


@dataclass(frozen=True)
class CanaryView:
    """The canary and the champion over the same window (the canary's own figures unprefixed)."""

    requests: float = 0.0
    error_rate: float | None = None
    p99_seconds: float | None = None
    error: str | None = None
    champion_requests: float = 0.0
    champion_error_rate: float | None = None
    champion_p99_seconds: float | None = None
    labelled: float = 0.0
    correct: float = 0.0
    abs_error: float = 0.0
    champion_labelled: float = 0.0
    champion_correct: float = 0.0
    champion_abs_error: float = 0.0
    predictions: Mapping[str, float] = field(default_factory=dict)
    """Predictions per class, or cumulative per `le` bound (regressors, see prediction_buckets)."""
    champion_predictions: Mapping[str, float] = field(default_factory=dict)
    prediction_buckets: bool = False


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """The one-line reason a container left with a non-zero code, as the kubelet recorded it."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    failure = output = None
    for cs in status.get("containerStatuses") or []:
        done = ((cs.get("state") or {}).get("terminated")) or {}
        if done and not done.get("exitCode") and done.get("message"):
            output = str(done["message"]).strip()
        for state in (cs.get("state"), cs.get("lastState")):
            term = (state or {}).get("terminated")
            if term and term.get("exitCode"):
                text = str(term.get("message") or term.get("reason") or "").strip()
                failure = text.splitlines()[-1] if text else f"exit code {term['exitCode']}"
                break
        if failure:
            break
    pool = (meta.get("labels") or {}).get(naming.LABEL_POOL) == naming.POOL_VALUE
    return PodView(
        name=meta.get("name", ""),
        created=meta.get("creationTimestamp") or "",
        failure=failure,
        output=output,
        pool=pool,
    )


def newest_failure(pods: Iterable[PodView]) -> str | None:
    for pod in sorted(pods, key=lambda p: p.created, reverse=True):
        if pod.failure:
            return pod.failure
    return None


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def job_view(job: Mapping[str, Any], pods: Iterable[PodView] = ()) -> JobView:
    st = job.get("status") or {}
    failed = _condition(job, "Failed")
    complete = _condition(job, "Complete")
    finished = try_parse_time(st.get("completionTime"))
    message = None
    if failed:
        finished = try_parse_time(failed.get("lastTransitionTime"))
        message = newest_failure(pods) or f"{failed.get('reason')}: {failed.get('message')}"
    return JobView(
        uid=(job.get("metadata") or {}).get("uid", ""),
        active=st.get("active") or 0,
        succeeded=1 if complete else 0,
        completed=st.get("succeeded") or 0,
        failed=failed is not None,
        failure_message=message,
        finished_at=finished,
        created=try_parse_time((job.get("metadata") or {}).get("creationTimestamp")),
        output=next((p.output for p in sorted(pods, key=lambda p: p.created, reverse=True) if p.output), None)
        if complete
        else None,
    )


def deployment_view(dep: Mapping[str, Any], pods: Iterable[PodView] = ()) -> DeploymentView:
    st, meta = dep.get("status") or {}, dep.get("metadata") or {}
    pods = list(pods)
    return DeploymentView(
        replicas=(dep.get("spec") or {}).get("replicas") or 0,
        ready_replicas=st.get("readyReplicas") or 0,
        up_to_date=(st.get("observedGeneration") or 0) >= (meta.get("generation") or 0),
        pod_failure=newest_failure(pods),
        pool_pods=sum(1 for p in pods if p.pool),
    )


OWN_KEY_PREFIXES = ("modelops.dev/", "app.kubernetes.io/")
"""The label and annotation keys this operator writes on its children; `Kube.ensure` compares only
what it writes, so keys other controllers add (a Deployment's revision) decide nothing."""


def _own_keys(keys: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (keys or {}).items() if k.startswith(OWN_KEY_PREFIXES)}


def wake_signature(kind: str, body: Mapping[str, Any]) -> object:
    """What of an owned child can change its version's next plan or `ensure()`: an update that leaves
    this equal wakes no one. It is the planner's view of the child, less what no decision reads (a
    Job's running-pod count; whether a Deployment with no ready pod has observed its generation,
    since readiness needs a ready pod either way), with the generation (a spec change), our own
    labels and annotations, the owners and the deletion mark. Of an HPA ("hpas") nothing but those:
    its status, rewritten at every scaling, decides nothing."""
    meta = body.get("metadata") or {}
    view: object = None
    if kind == "jobs":
        view = replace(job_view(body), active=0)
    elif kind == "deployments":
        dep = deployment_view(body)
        view = replace(dep, up_to_date=True) if dep.ready_replicas == 0 and dep.replicas > 0 else dep
    return (
        view,
        meta.get("generation"),
        _own_keys(meta.get("labels")),
        _own_keys(meta.get("annotations")),
        [dict(o) for o in meta.get("ownerReferences") or []],
        meta.get("deletionTimestamp"),
    )


def selected_version(service: Mapping[str, Any] | None) -> str | None:
    """The version a model's stable Service selects: who the champion is. While a replicas canary
    runs it selects the traffic pool instead, and the champion is the one its annotation names."""
    if not service:
        return None
    selector = (service.get("spec") or {}).get("selector") or {}
    if selector.get(naming.LABEL_POOL) == naming.POOL_VALUE and naming.LABEL_VERSION not in selector:
        return ((service.get("metadata") or {}).get("annotations") or {}).get(naming.ANNOTATION_CHAMPION)
    return selector.get(naming.LABEL_VERSION) or None


def selects_pool(service: Mapping[str, Any] | None) -> bool:
    selector = ((service or {}).get("spec") or {}).get("selector") or {}
    return selector.get(naming.LABEL_POOL) == naming.POOL_VALUE


def servable(version: Mapping[str, Any] | None, model: str) -> bool:
    """Whether a ModelVersion may be a model's champion: it exists, is of that model, is not being
    deleted, and was trained and validated (a stable Service pointing elsewhere is broken)."""
    if not version or (version.get("spec") or {}).get("model") != model:
        return False
    if (version.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conds = ((version.get("status") or {}).get("conditions")) or []
    return any(c.get("type") == "Validated" and c.get("status") == "True" for c in conds)


def champion_view(
    name: str,
    champion: Mapping[str, Any] | None,
    service: Mapping[str, Any] | None = None,
    deployment: DeploymentView | None = None,
) -> ChampionView:
    """The champion with the metrics a challenger must beat, its artifact, the promotion on record,
    and what a canary beside it needs: its size, its Deployment, whether the Service selects the pool."""
    training = ((champion or {}).get("status") or {}).get("training") or {}
    metrics = training.get("metrics") or {}
    artifact = training.get("artifact") or {}
    recorded = (((service or {}).get("metadata") or {}).get("annotations") or {}).get(
        naming.ANNOTATION_CHAMPION
    )
    serving = ((champion or {}).get("spec") or {}).get("serving") or {}
    replicas = serving.get("replicas")
    auto = serving.get("autoscaling")
    if auto:
        replicas = autoscaled_size(auto, deployment.replicas if deployment else None)
    return ChampionView(
        name=name,
        metrics={k: float(v) for k, v in metrics.items()},
        recorded=recorded,
        artifact_uri=artifact.get("uri"),
        sha256=artifact.get("sha256"),
        replicas=1 if replicas is None else int(replicas),
        deployment=deployment,
        pool=selects_pool(service),
        autoscaled=bool(auto),
    )


def autoscaled_size(autoscaling: Mapping[str, Any], current: int | None) -> int:
    """The size an autoscaled version serves at: its Deployment's replicas (the HPA's choice) within
    [minReplicas, maxReplicas]; minReplicas before there is one, or while it is scaled to 0."""
    low = int(autoscaling.get("minReplicas") or 1)
    high = int(autoscaling.get("maxReplicas") or low)
    if not current:
        return low
    return min(max(current, low), high)
