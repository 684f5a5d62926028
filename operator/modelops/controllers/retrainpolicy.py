"""RetrainPolicy controller: evaluate the champion in Prometheus, retrain, and collect old versions.

Order of acting makes a crash harmless: the trigger is written to status (`pending`,
with the child's deterministic name) before the child is created, so a restarted
operator re-creates the same name and adopts it instead of making a second child.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from modelops import GROUP, VERSION, metrics
from modelops.api.base import try_parse_time
from modelops.api.modelversion import ModelVersion, ModelVersionSpec
from modelops.api.retrainpolicy import RetrainPolicy
from modelops.drift import promql
from modelops.drift.evaluate import DriftDataError, evaluate_drift, evaluate_online
from modelops.k8s.kube import Conflict, Kube, Refused, owner_reference
from modelops.lifecycle import naming, resources
from modelops.lifecycle.conditions import Cond, apply_conditions
from modelops.lifecycle.datasets import Resolution, parse_resolution
from modelops.lifecycle.patches import merge_diff
from modelops.lifecycle.retrainpolicy import (
    Champion,
    Child,
    Evaluation,
    Observed,
    Plan,
    VersionView,
    evaluation_due,
    plan,
    warm_up_until,
)
from modelops.prometheus import EVALUATION_SECONDS, Deadline, PrometheusError, query, scalar

from . import runtime
from .modelversion import CONFLICT_RETRY, promotion_token
from .workqueue import GONE, WorkQueue

PLURAL = "retrainpolicies"
log = logging.getLogger(__name__)


GITOPS_ANNOTATIONS = ("argocd.argoproj.io/tracking-id",)
GITOPS_LABELS = ("argocd.argoproj.io/instance",)


def gitops_managed(meta: dict[str, Any]) -> bool:
    """Argo CD marks what it applies (annotation tracking by default, or a label)."""
    ann, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    return any(a in ann for a in GITOPS_ANNOTATIONS) or any(label in labels for label in GITOPS_LABELS)


def version_views(items: list[dict[str, Any]], policy_uid: str) -> list[VersionView]:
    out = []
    for mv in items:
        meta, st = mv["metadata"], mv.get("status") or {}
        token = promotion_token(mv)
        out.append(
            VersionView(
                name=meta["name"],
                phase=st.get("phase", "Pending"),
                created=try_parse_time(meta.get("creationTimestamp")),
                parent=mv.get("spec", {}).get("parent"),
                owned=any(o.get("uid") == policy_uid for o in meta.get("ownerReferences") or []),
                champion=bool(st.get("champion")),
                timestamps=st.get("timestamps") or {},
                deleting=bool(meta.get("deletionTimestamp")),
                promotion_requested=bool(token and token != st.get("handledPromotion")),
                gitops_managed=gitops_managed(meta),
            )
        )
    return out


def champion_of(kube: Kube, namespace: str, model: str) -> tuple[Champion | None, ModelVersion | None]:
    found = kube.champion_version(namespace, model)
    if found is None:
        return None, None
    name, body = found
    mv = ModelVersion.model_validate(body)
    training = mv.status.training
    champion = Champion(
        name=name,
        spec=mv.spec,
        metrics=training.metrics if training else {},
        dataset_digest=training.dataset_digest if training else None,
        best_params=training.search.best_params if training and training.search else None,
    )
    return champion, mv


def evaluate(policy: RetrainPolicy, champion: ModelVersion, name: str, namespace: str) -> Evaluation:
    """Query Prometheus for the champion's own series only, and judge drift and decay.

    All queries share one deadline, so a slow Prometheus holds the policy's reconcile (and a
    manual request waiting behind it) for at most EVALUATION_SECONDS; every failure is an error.
    """
    spec = policy.spec
    url = spec.prometheus.url or runtime.settings().prometheus_url
    model, window, ns = spec.model, spec.window, namespace
    deadline = Deadline(EVALUATION_SECONDS)
    drift = online = None
    try:
        if spec.triggers.drift is not None:
            reference = champion.status.training.reference if champion.status.training else {}
            if not reference:
                return Evaluation(error=f"champion {name} has no reference distribution to compare with")
            buckets = query(
                url,
                promql.feature_buckets(ns, model, name, window, interval=spec.interval),
                deadline=deadline,
            )
            categories = query(
                url,
                promql.feature_categories(ns, model, name, window, interval=spec.interval),
                deadline=deadline,
            )
            rows = champion.status.training.rows.get("train") if champion.status.training else None
            explained = champion.status.training.explanations if champion.status.training else None
            importance = {t.feature: t.importance for t in explained.top} if explained else {}
            drift = evaluate_drift(
                spec.triggers.drift,
                reference,
                buckets,
                categories,
                reference_samples=rows,
                importance=importance,
            )
        if spec.triggers.performance is not None:
            q = promql.feedback(ns, model, name, window)
            online = evaluate_online(
                spec.triggers.performance,
                scalar(url, q["labelled"], deadline=deadline),
                scalar(url, q["correct"], deadline=deadline),
                scalar(url, q["absolute_error"], deadline=deadline),
            )
    except PrometheusError as e:
        return Evaluation(error=str(e))
    except DriftDataError as e:
        return Evaluation(error=f"the champion's metrics do not match its reference: {e}")
    return Evaluation(drift=drift, online=online)


def observe(body: dict[str, Any], policy: RetrainPolicy, kube: Kube, *, fresh_evaluation: bool) -> Observed:
    meta = body["metadata"]
    ns = meta["namespace"]
    now = runtime.now()
    champion, champion_mv = champion_of(kube, ns, policy.spec.model)
    evaluation = None
    if fresh_evaluation and champion and champion_mv and evaluation_due(policy.spec, policy.status, now):
        evaluation = evaluate(policy, champion_mv, champion.name, meta["namespace"])
    return Observed(
        name=meta["name"],
        uid=meta["uid"],
        spec=policy.spec,
        status=policy.status,
        now=now,
        created=try_parse_time(meta.get("creationTimestamp")) or now,
        champion=champion,
        versions=version_views(kube.modelversions(ns, policy.spec.model), meta["uid"]),
        evaluation=evaluation,
        retrain_request=(meta.get("annotations") or {}).get(naming.ANNOTATION_RETRAIN),
        resolution=resolution(kube, ns, policy),
    )


def resolution(kube: Kube, namespace: str, policy: RetrainPolicy) -> Resolution | None:
    """The report of the pending child's resolve Job, from the caches; None while there is none."""
    pending = policy.status.pending
    if pending is None:
        return None
    job = kube.job_view(namespace, naming.resolve_job_name(pending.child), pending.child, "resolver")
    if job is None:
        return None
    if job.failed:
        return parse_resolution(None, job.failure_message or "the resolve Job failed")
    return parse_resolution(job.output, None) if job.succeeded else None


def ensure_resolve_job(body: dict[str, Any], p: Plan, champion: Champion | None, kube: Kube) -> None:
    if p.resolve is None or champion is None:
        return
    r = p.resolve
    job = resources.resolve_job(
        body["metadata"]["name"],
        body["metadata"]["namespace"],
        champion.spec,
        r.child,
        r.uri,
        r.at,
        runtime.settings(),
    )
    if kube.ensure("jobs", job, owner=body):
        name = naming.resolve_job_name(r.child)
        runtime.logger(body).info("created Job %s to resolve %s", name, r.uri)
        kopf.info(body, reason="ResolvingData", message=f"Created Job {name} to resolve {r.uri}")


def write_status(body: dict[str, Any], p: Plan, kube: Kube) -> dict[str, Any]:
    """Patch only what differs; returns the body as it now is (the cache sees our write at once)."""
    meta = body["metadata"]
    current = body.get("status") or {}
    conds = apply_conditions(
        current.get("conditions") or [], p.conditions, generation=meta.get("generation"), now=runtime.ts()
    )
    desired = {**p.status, "conditions": conds, "observedGeneration": meta.get("generation")}
    patch = merge_diff(current, desired)
    if patch:
        kube.patch_status(PLURAL, body, patch)
        return kube.policy(meta["namespace"], meta["name"]) or body
    return body


def create_child(body: dict[str, Any], child: Child, kube: Kube) -> None:
    """Create the child, or adopt it when a previous run already did (same deterministic name)."""
    meta = body["metadata"]
    ns = meta["namespace"]
    spec: ModelVersionSpec = child.spec
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelVersion",
        "metadata": {
            "name": child.name,
            "namespace": ns,
            "labels": {
                naming.LABEL_MODEL: spec.model,
                naming.LABEL_POLICY: meta["name"],
                naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
            },
            "annotations": {"modelops.dev/trigger": f"{child.trigger.reason}: {child.trigger.detail}"[:1000]},
            "ownerReferences": [owner_reference(body)],
        },
        "spec": spec.wire(),
    }
    if kube.create_modelversion(ns, manifest) is None:
        existing = kube.modelversion(ns, child.name) or {}
        owners = existing.get("metadata", {}).get("ownerReferences") or []
        if existing and not any(o.get("uid") == meta["uid"] for o in owners):
            raise kopf.PermanentError(f"ModelVersion {child.name} exists and is not this policy's child")
        return
    runtime.logger(body).info("created ModelVersion %s (%s)", child.name, child.trigger.reason)
    kopf.info(
        body, reason="Retraining", message=f"Created ModelVersion {child.name} ({child.trigger.reason})"
    )
    metrics.RETRAINS.labels(ns, spec.model, child.trigger.reason).inc()


def collect(body: dict[str, Any], p: Plan, kube: Kube) -> None:
    ns = body["metadata"]["namespace"]
    for name in p.delete:
        if p.delete_artifacts:
            mv = kube.modelversion(ns, name)
            if mv is None:
                continue
            finalizers = [f for f in mv["metadata"].get("finalizers") or [] if f != naming.FINALIZER]
            meta = {
                "resourceVersion": mv["metadata"]["resourceVersion"],
                "annotations": {naming.ANNOTATION_DELETE_ARTIFACTS: "true"},
                "finalizers": [*finalizers, naming.FINALIZER],
            }
            kube.patch_metadata(
                "modelversions", ns, name, meta, settled=False
            )  # both at once, never one alone
        if not kube.delete("versions", f"{GROUP}/{VERSION}", "ModelVersion", ns, name):
            continue
        what = " and its artifacts" if p.delete_artifacts else ""
        runtime.logger(body).info("retention deleted ModelVersion %s%s", name, what)
        kopf.info(body, reason="GarbageCollected", message=f"Deleted ModelVersion {name}{what} (retention)")


def record_metrics(namespace: str, policy: RetrainPolicy, o: Observed) -> None:
    metrics.seen_policy(namespace, policy.spec.model)
    ev = o.evaluation
    if ev is None:
        return
    model = policy.spec.model
    if ev.error:
        metrics.EVALUATIONS.labels(namespace, model, "Error").inc()
        return
    if ev.drift is not None:
        metrics.EVALUATIONS.labels(namespace, model, ev.drift.result).inc()
        warming = warm_up_until(o) is not None  # not judged yet: never a Drifted verdict
        for feature, fe in ev.drift.features.items():
            if fe.score is not None:
                metrics.DRIFT_SCORE.labels(namespace, model, feature, ev.drift.method).set(fe.score)
            drifted = 1 if fe.result == "Drifted" and not warming else 0
            metrics.DRIFTED.labels(namespace, model, feature, ev.drift.method).set(drifted)
    if ev.online is not None and ev.online.value is not None:
        metrics.ONLINE_METRIC.labels(namespace, model, ev.online.metric).set(ev.online.value)


def reconcile(key: tuple[str, str]) -> float | None:
    """Observe → plan → act, in the crash-safe order of the planner's docstring; returns when to look again."""
    ns, name = key
    kube = runtime.kube()
    body = kube.policy(ns, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return GONE
    with runtime.measured("RetrainPolicy"):
        try:
            policy = RetrainPolicy.model_validate(body)
        except ValidationError as e:
            first = e.errors()[0]
            msg = f"invalid spec: {first['msg']} at {'.'.join(map(str, first['loc']))}"
            conds = [Cond("Ready", "False", "InvalidSpec", msg), Cond("Stalled", "True", "InvalidSpec", msg)]
            write_status(body, Plan(status={}, conditions=conds, message=msg), kube)
            return None
        try:
            o = observe(body, policy, kube, fresh_evaluation=True)
            p = plan(o)
            body = write_status(body, p, kube)
            record_metrics(ns, policy, o)
            runtime.post_events(body, p.events)
            ensure_resolve_job(body, p, o.champion, kube)
            if p.child is not None:
                create_child(body, p.child, kube)
            for child in p.release:
                if kube.release(ns, child, body["metadata"]["uid"]):
                    runtime.logger(body).info("released promoted ModelVersion %s", child)
            if p.delete:
                collect(body, p, kube)
            if p.child is not None or policy.status.pending is not None:
                # Commit the pending trigger now that its child exists (lastTrigger, history).
                policy = RetrainPolicy.model_validate(body)
                o2 = observe(body, policy, kube, fresh_evaluation=False)
                p2 = plan(o2)
                body = write_status(body, p2, kube)
                runtime.post_events(body, p2.events)
                ensure_resolve_job(body, p2, o2.champion, kube)
                if p2.child is not None:
                    create_child(body, p2.child, kube)
                return p2.requeue_after
        except Conflict as e:
            runtime.logger(body).info("%s; deciding again", e)
            return CONFLICT_RETRY
        except Refused as e:
            raise runtime.report_refusal(PLURAL, kube.policy(ns, name) or body, e) from e
        return p.requeue_after


QUEUE = WorkQueue("RetrainPolicy", reconcile, resync=runtime.settings().resync_seconds)
runtime.queues["RetrainPolicy"] = QUEUE
