"""ModelVersion controller: observe, plan (pure), act, record. The same path for every trigger."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from modelops import GROUP, VERSION, metrics
from modelops.api.base import try_parse_time
from modelops.api.modelversion import PHASES, ModelVersion
from modelops.drift import promql
from modelops.k8s.kube import Conflict, Kube
from modelops.lifecycle import naming, resources
from modelops.lifecycle.conditions import Cond, apply_conditions
from modelops.lifecycle.modelversion import CanaryView, Observed, Plan, plan, primary_metric
from modelops.prometheus import EVALUATION_SECONDS, Deadline, PrometheusError, scalar

from . import runtime

PLURAL = "modelversions"
log = logging.getLogger(__name__)


def promotion_token(body: dict[str, Any]) -> str | None:
    """A promotion request from Git (spec) or a person (annotation); changing either asks again."""
    spec_req = (body.get("spec", {}).get("promotion") or {}).get("request")
    ann_req = (body["metadata"].get("annotations") or {}).get(naming.ANNOTATION_PROMOTE)
    parts = [f"spec:{spec_req}" if spec_req else "", f"annotation:{ann_req}" if ann_req else ""]
    token = "|".join(p for p in parts if p)
    return token or None


def observe_canary(url: str, namespace: str, model: str, version: str, window_seconds: int) -> CanaryView:
    """The canary's traffic, within one deadline; any failure or malformed answer is an error view,
    which the planner judges inconclusive (after its grace) like an unreachable Prometheus."""
    window = f"{max(window_seconds, 10)}s"
    deadline = Deadline(EVALUATION_SECONDS)
    try:
        reqs = scalar(url, promql.requests(namespace, model, version, window), deadline=deadline) or 0.0
        err = p99 = None
        if reqs:
            err = scalar(url, promql.error_rate(namespace, model, version, window), deadline=deadline)
            p99_query = promql.p99_latency(namespace, model, version, window)
            p99 = scalar(url, p99_query, deadline=deadline, finite=False)  # +Inf: above the last bucket
    except PrometheusError as e:
        return CanaryView(error=str(e))
    return CanaryView(requests=reqs, error_rate=err, p99_seconds=p99)


def observe(body: dict[str, Any], mv: ModelVersion, kube: Kube) -> Observed:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    spec = mv.spec
    champion = kube.champion(ns, spec.model)
    canary = None
    if mv.status.phase == "Canary" and spec.serving.rollout.canary:
        started = try_parse_time(mv.status.timestamps.get("canaryStarted"))
        elapsed = (runtime.now() - started).total_seconds() if started else 0
        window = min(int(elapsed) + 1, spec.serving.rollout.canary.analysis_seconds)
        canary = observe_canary(runtime.settings().prometheus_url, ns, spec.model, name, window)
    return Observed(
        name=name,
        generation=meta.get("generation", 1),
        spec=spec,
        status=mv.status,
        now=runtime.now(),
        job=kube.job_view(ns, naming.job_name(name)),
        deployment=kube.deployment_view(ns, naming.deployment_name(name), spec.model, name),
        champion=champion,
        promotion_request=promotion_token(body),
        canary=canary,
    )


def act(body: dict[str, Any], mv: ModelVersion, p: Plan, kube: Kube) -> bool:
    """Make the world match the plan. Returns True when this version took the stable Service."""
    meta = body["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    spec, st = mv.spec, runtime.settings()
    if p.ensure_job:
        kube.apply(resources.training_job(name, ns, uid, spec, st), owner=body)
        kopf.info(body, reason="Created", message=f"Created Job {naming.job_name(name)}")
    artifact = mv.status.training.artifact if mv.status.training else None
    if p.replicas is not None and artifact is not None:
        dep = resources.server_deployment(name, ns, spec, artifact.uri, artifact.sha256, p.replicas, st)
        kube.apply(dep, owner=body)
        kube.apply(resources.version_service(name, ns, spec, st), owner=body)
    elif p.replicas is None:
        if kube.delete("apps/v1", "Deployment", ns, naming.deployment_name(name)):
            kopf.info(body, reason="Deleted", message=f"Deleted Deployment {naming.deployment_name(name)}")
        kube.delete("v1", "Service", ns, naming.version_service_name(name))
    if p.promote:
        try:
            previous = kube.take_stable_service(resources.stable_service(spec.model, ns, name), owner=body)
        except Conflict as e:
            raise kopf.TemporaryError(f"lost a promotion race ({e}); deciding again", delay=1) from e
        kind = "rollback" if mv.status.timestamps.get("promoted") else "promotion"
        metrics.PROMOTIONS.labels(ns, spec.model, kind).inc()
        text = f"Promoted {name} to champion of {spec.model}" + (
            f", replacing {previous}" if previous else ""
        )
        kopf.info(body, reason="Promoted", message=text)
        return True
    return False


def record(body: dict[str, Any], mv: ModelVersion, p: Plan, kube: Kube) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    now = runtime.ts()
    status = mv.status
    conds = apply_conditions(
        [c.model_dump(by_alias=True, exclude_none=True) for c in status.conditions],
        p.conditions,
        generation=meta.get("generation"),
        now=now,
    )
    metrics_ = status.training.metrics if status.training else {}
    patch: dict[str, Any] = {
        "phase": p.phase,
        "message": p.message,
        "observedGeneration": meta.get("generation"),
        "conditions": conds,
        "champion": p.champion,
        "primaryMetric": primary_metric(mv.spec, metrics_),
    }
    recorded = (body.get("status") or {}).get("timestamps") or {}
    new_times = {k: v for k, v in p.timestamps.items() if recorded.get(k) != v}
    if new_times:
        patch["timestamps"] = new_times  # a merge patch: the earlier steps' times stay
    if p.handled_promotion:
        patch["handledPromotion"] = p.handled_promotion
    if p.replicas is not None:
        svc = naming.version_service_name(name)
        patch["serving"] = {
            "deployment": naming.deployment_name(name),
            "service": svc,
            "endpoint": f"http://{svc}.{ns}.svc",
            "replicas": p.replicas,
        }
    else:
        patch["serving"] = None
    kube.patch_status_changes(PLURAL, body, patch)
    runtime.post_events(body, p.events)
    if p.events and p.events[-1][1] == "CanaryRolledBack":
        metrics.ROLLBACKS.labels(ns, mv.spec.model).inc()
    metrics.seen_model(ns, mv.spec.model)
    metrics.set_phase(ns, mv.spec.model, name, p.phase, PHASES)
    metrics.CHAMPION.labels(ns, mv.spec.model, name).set(1 if p.champion else 0)


def reconcile(body: dict[str, Any], kube: Kube | None = None) -> Plan | None:
    """Observe → plan → act → record; safe to run any number of times, from any point."""
    kube = kube or runtime.kube()
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return None
    with runtime.measured("ModelVersion"):
        try:
            mv = ModelVersion.model_validate(body)
        except ValidationError as e:
            reject_invalid(body, e, kube)
            raise kopf.PermanentError(f"invalid spec: {e.errors()[0]['msg']}") from e
        # Re-read: a timer's body may be older than the status written by a handler a moment ago.
        fresh = kube.get_modelversion(meta["namespace"], meta["name"])
        if fresh is None:
            return None
        body, mv = fresh, ModelVersion.model_validate(fresh)
        p = plan(observe(body, mv, kube))
        if act(body, mv, p, kube):
            record(body, mv, p, kube)
            fresh = kube.get_modelversion(meta["namespace"], meta["name"]) or body
            body, mv = fresh, ModelVersion.model_validate(fresh)
            p = plan(observe(body, mv, kube))
            act(body, mv, p, kube)
        record(body, mv, p, kube)
        return p


def reject_invalid(body: dict[str, Any], error: ValidationError, kube: Kube) -> None:
    """A spec the CRD schema let through but the model refuses: say exactly what is wrong, once."""
    first = error.errors()[0]
    where = ".".join(str(x) for x in first["loc"])
    msg = f"invalid spec at {where}: {first['msg']}"
    conds = apply_conditions(
        (body.get("status") or {}).get("conditions") or [],
        [Cond("Ready", "False", "InvalidSpec", msg), Cond("Stalled", "True", "InvalidSpec", msg)],
        generation=body["metadata"].get("generation"),
        now=runtime.ts(),
    )
    kube.patch_status(
        PLURAL,
        body["metadata"]["namespace"],
        body["metadata"]["name"],
        # observedGeneration: this generation WAS observed (and refused); without it kstatus and
        # Argo CD's health check keep waiting for the operator instead of showing Degraded.
        {
            "phase": "Failed",
            "message": msg,
            "conditions": conds,
            "observedGeneration": body["metadata"].get("generation"),
        },
    )
    kopf.warn(body, reason="InvalidSpec", message=msg)


@kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile")
@kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile")
@kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile")
def on_change(body: kopf.Body, **_: Any) -> None:
    runtime.run_locked(dict(body), reconcile, wait=True)


@kopf.timer(GROUP, VERSION, PLURAL, id="converge", interval=runtime.RECONCILE_INTERVAL, initial_delay=1)
def on_timer(body: kopf.Body, **_: Any) -> None:
    runtime.run_locked(dict(body), reconcile, wait=False)


@kopf.on.delete(GROUP, VERSION, PLURAL, id="cleanup")
def on_delete(body: kopf.Body, **_: Any) -> None:
    """Kopf's finalizer holds the object until, if retention asked for it, its artifacts are gone."""
    meta, spec = body["metadata"], body.get("spec", {})
    ns, name = meta["namespace"], meta["name"]
    metrics.forget_version(ns, spec.get("model", ""), name, PHASES)
    if (meta.get("annotations") or {}).get(naming.ANNOTATION_DELETE_ARTIFACTS) != "true":
        return
    mv = ModelVersion.model_validate(dict(body))
    kube = runtime.kube()
    job_name = naming.cleanup_job_name(name)
    job = kube.job_view(ns, job_name)
    if job is None:
        # Not owned by the version being deleted: the TTL controller removes it once done.
        kube.apply(resources.cleanup_job(name, ns, mv.spec, runtime.settings()))
        kopf.info(body, reason="DeletingArtifacts", message=f"Created Job {job_name} to delete the artifacts")
        raise kopf.TemporaryError("waiting for the artifact clean-up Job", delay=2)
    if job.failed:
        kopf.warn(
            body, reason="ArtifactCleanupFailed", message=f"Job {job_name} failed: {job.failure_message}"
        )
        raise kopf.TemporaryError(f"artifact clean-up failed: {job.failure_message}", delay=30)
    if not job.succeeded:
        raise kopf.TemporaryError("waiting for the artifact clean-up Job", delay=2)
    kopf.info(body, reason="DeletedArtifacts", message=f"Deleted the artifacts of {name}")
