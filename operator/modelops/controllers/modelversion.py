"""ModelVersion controller: observe (caches), plan (pure), act and record (only differences).

One reconcile per key, run by the work queue whenever the version, one of its children
(Job, Deployment, Service, Pods) or its model's stable Service changes, or when the plan
asked to be woken; nothing polls.
"""

from __future__ import annotations

import contextlib
from typing import Any

import kopf
from pydantic import ValidationError

from modelops import metrics
from modelops.api.base import try_parse_time
from modelops.api.modelversion import ModelVersion
from modelops.drift import promql
from modelops.k8s.kube import Conflict, Kube, Refused
from modelops.k8s.slots import Busy
from modelops.lifecycle import naming, resources
from modelops.lifecycle.canary import route_backends
from modelops.lifecycle.conditions import Cond, apply_conditions
from modelops.lifecycle.modelversion import Observed, Plan, plan, status_patch, waiting_for_service_slot
from modelops.lifecycle.naming import FINALIZER
from modelops.lifecycle.observed import CanaryView
from modelops.lifecycle.patches import merge_diff
from modelops.prometheus import EVALUATION_SECONDS, Deadline, PrometheusError, query, scalar

from . import runtime
from .workqueue import GONE, WorkQueue

PLURAL = "modelversions"
CONFLICT_RETRY = 0.5
"""A write lost to a newer version of the object: the watch brings it, then decide again."""


def promotion_token(body: dict[str, Any]) -> str | None:
    """A promotion request from Git (spec) or a person (annotation); changing either asks again."""
    spec_req = (body.get("spec", {}).get("promotion") or {}).get("request")
    ann_req = (body["metadata"].get("annotations") or {}).get(naming.ANNOTATION_PROMOTE)
    parts = [f"spec:{spec_req}" if spec_req else "", f"annotation:{ann_req}" if ann_req else ""]
    token = "|".join(p for p in parts if p)
    return token or None


def _manager_of(meta: dict[str, Any], *path: str) -> str | None:
    """The field manager that last wrote a field (managedFields), e.g. kubectl-annotate."""
    for entry in reversed(meta.get("managedFields") or []):
        node: Any = entry.get("fieldsV1") or {}
        for key in path:
            node = node.get(f"f:{key}") if isinstance(node, dict) else None
        if node is not None:
            return entry.get("manager")
    return None


def requested_by(body: dict[str, Any]) -> str | None:
    """Who wrote the promotion request: the annotation's field manager, else the spec field's."""
    meta = body["metadata"]
    if (meta.get("annotations") or {}).get(naming.ANNOTATION_PROMOTE):
        return _manager_of(meta, "metadata", "annotations", naming.ANNOTATION_PROMOTE)
    if (body.get("spec", {}).get("promotion") or {}).get("request"):
        return _manager_of(meta, "spec", "promotion", "request")
    return None


def _version_traffic(
    url: str, namespace: str, model: str, version: str, window: str, deadline: Deadline
) -> dict[str, float | None]:
    reqs = scalar(url, promql.requests(namespace, model, version, window), deadline=deadline) or 0.0
    err = p99 = None
    if reqs:
        err = scalar(url, promql.error_rate(namespace, model, version, window), deadline=deadline)
        p99_query = promql.p99_latency(namespace, model, version, window)
        p99 = scalar(url, p99_query, deadline=deadline, finite=False)  # +Inf: above the last bucket
    fb = {
        k: scalar(url, q, deadline=deadline) or 0.0
        for k, q in promql.feedback(namespace, model, version, window).items()
    }
    return {"requests": reqs, "error_rate": err, "p99": p99, **fb}


def _predictions(
    url: str, namespace: str, model: str, version: str, window: str, deadline: Deadline, buckets: bool
) -> dict[str, float]:
    if buckets:
        samples = query(
            url, promql.prediction_buckets(namespace, model, version, window), deadline=deadline, finite=False
        )
        return {s.labels.get("le", ""): s.value for s in samples}
    samples = query(url, promql.prediction_classes(namespace, model, version, window), deadline=deadline)
    return {s.labels.get("class", ""): s.value for s in samples}


def observe_canary(
    url: str,
    namespace: str,
    model: str,
    version: str,
    window_seconds: int,
    champion: str | None = None,
    regression: bool = False,
) -> CanaryView:
    """The canary and the champion over the same window, within one deadline; any failure or
    malformed answer is an error view, which the planner judges inconclusive (after its grace)
    like an unreachable Prometheus."""
    window = f"{max(window_seconds, 10)}s"
    deadline = Deadline(EVALUATION_SECONDS)
    try:
        mine = _version_traffic(url, namespace, model, version, window, deadline)
        theirs = _version_traffic(url, namespace, model, champion, window, deadline) if champion else {}
        preds = _predictions(url, namespace, model, version, window, deadline, regression)
        champion_preds = (
            _predictions(url, namespace, model, champion, window, deadline, regression) if champion else {}
        )
    except PrometheusError as e:
        return CanaryView(error=str(e))
    return CanaryView(
        requests=mine["requests"] or 0.0,
        error_rate=mine["error_rate"],
        p99_seconds=mine["p99"],
        champion_requests=theirs.get("requests") or 0.0,
        champion_error_rate=theirs.get("error_rate"),
        champion_p99_seconds=theirs.get("p99"),
        labelled=mine["labelled"] or 0.0,
        correct=mine["correct"] or 0.0,
        abs_error=mine["absolute_error"] or 0.0,
        champion_labelled=theirs.get("labelled") or 0.0,
        champion_correct=theirs.get("correct") or 0.0,
        champion_abs_error=theirs.get("absolute_error") or 0.0,
        predictions=preds,
        champion_predictions=champion_preds,
        prediction_buckets=regression,
    )


def canary_split(kube: Kube, namespace: str, model: str, champion: str) -> int | None:
    """The pods a running replicas canary of the model leaves its champion (the fewest, if several)."""
    splits = []
    for mv in kube.modelversions(namespace, model):
        st = mv.get("status") or {}
        cs = st.get("canary") or {}
        if (
            st.get("phase") == "Canary"
            and cs.get("traffic") == "replicas"
            and cs.get("champion") == champion
            and cs.get("stableReplicas") is not None
        ):
            splits.append(int(cs["stableReplicas"]))
    return min(splits) if splits else None


def observe(body: dict[str, Any], mv: ModelVersion, kube: Kube) -> Observed:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    spec, st = mv.spec, mv.status
    canary_spec = spec.serving.rollout.canary if spec.serving.rollout.strategy == "Canary" else None
    canary = route = None
    if st.phase == "Canary" and canary_spec and st.canary and st.canary.step_started:
        started = try_parse_time(st.canary.step_started)
        elapsed = (runtime.now() - started).total_seconds() if started else 0
        regression = st.training is not None and st.training.task == "regression"
        canary = observe_canary(
            runtime.settings().prometheus_url,
            ns,
            spec.model,
            name,
            int(elapsed) + 1,
            st.canary.champion,
            regression,
        )
    if (
        canary_spec
        and canary_spec.traffic == "gatewayAPI"
        and canary_spec.http_route
        and st.phase in ("Deploying", "Canary")
    ):
        route = kube.route_weights(ns, canary_spec.http_route)
    return Observed(
        name=name,
        generation=meta.get("generation", 1),
        spec=spec,
        status=st,
        now=runtime.now(),
        job=kube.job_view(ns, naming.job_name(name), name),
        search_job=kube.job_view(ns, naming.search_job_name(name), name, "searcher")
        if spec.training is not None and spec.training.search is not None
        else None,
        deployment=kube.deployment_view(ns, naming.deployment_name(name), name),
        champion=kube.champion(ns, spec.model),
        promotion_request=promotion_token(body),
        canary=canary,
        requested_by=requested_by(body),
        approved_by=(meta.get("annotations") or {}).get(naming.ANNOTATION_APPROVED_BY) or None,
        canary_split=canary_split(kube, ns, spec.model, name) if st.champion else None,
        route_weights=route,
    )


def act(body: dict[str, Any], mv: ModelVersion, p: Plan, kube: Kube) -> bool:
    """Make the owned objects match the plan, writing only what differs. True when this version
    took the stable Service (decide again at once: it is the champion now)."""
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    spec, st = mv.spec, runtime.settings()
    log = runtime.logger(body)
    if p.ensure_search and kube.ensure(
        "jobs", resources.search_job(name, ns, meta["uid"], spec, st), owner=body
    ):
        log.info("created Job %s", naming.search_job_name(name))
    # The champion at the Job's creation is the one it scores on the same data (a Job is immutable).
    champion = kube.champion(ns, spec.model) if p.ensure_job else None
    if p.ensure_job and kube.ensure(
        "jobs",
        resources.training_job(
            name, ns, meta["uid"], spec, st, champion=champion, search_uid=p.search_job_uid
        ),
        owner=body,
    ):
        log.info("created Job %s", naming.job_name(name))
    artifact = mv.status.training.artifact if mv.status.training else None
    if p.replicas is not None and artifact is not None:
        # The Deployment first: its pods start while the Service waits for a creation slot
        # (Service first, a 1,000-version burst over 100 models took 313 s to all Serving
        # instead of 265 s, for 19 reconciles a version instead of 27).
        ensure_server(body, mv, p, kube)
        if kube.ensure("services", resources.version_service(name, ns, spec, st), owner=body):
            log.info("applied Service %s", naming.version_service_name(name))
    elif p.replicas is None:
        if kube.delete("hpas", "autoscaling/v2", "HorizontalPodAutoscaler", ns, naming.hpa_name(name)):
            log.info("deleted HorizontalPodAutoscaler %s", naming.hpa_name(name))
        if kube.delete("deployments", "apps/v1", "Deployment", ns, naming.deployment_name(name)):
            log.info("deleted Deployment %s", naming.deployment_name(name))
            kopf.info(body, reason="Deleted", message=f"Deleted Deployment {naming.deployment_name(name)}")
        if kube.delete("services", "v1", "Service", ns, naming.version_service_name(name)):
            log.info("deleted Service %s", naming.version_service_name(name))
    if p.replicas is not None and kube.label_pool(ns, name, p.pool):
        log.info(
            "%s the traffic-pool label of Deployment %s's pods",
            "set" if p.pool else "removed",
            naming.deployment_name(name),
        )
    if p.stable_pool is not None:
        selector = (
            naming.pool_selector(spec.model) if p.stable_pool else naming.server_selector(spec.model, name)
        )
        if kube.set_stable_selector(ns, spec.model, selector, champion=p.champion_seen):
            what = "champion and canary pods" if p.stable_pool else f"{name} alone"
            log.info("stable Service %s now selects %s", naming.stable_service_name(spec.model), what)
    took = False
    if p.promote:
        took = promote(body, mv, kube, replacing=p.champion_seen)
    if p.route is not None and p.route[0]:
        route, weight = p.route
        backends = route_backends(
            naming.stable_service_name(spec.model), naming.version_service_name(name), weight
        )
        if kube.set_route_backends(ns, route, backends):
            log.info("HTTPRoute %s: %d%% to the canary", route, weight)
            kopf.info(
                body,
                reason="TrafficShifted",
                message=f"HTTPRoute {route}: {weight}% to {name}, {100 - weight}% to the stable Service",
            )
    return took


def ensure_server(body: dict[str, Any], mv: ModelVersion, p: Plan, kube: Kube) -> None:
    """The server Deployment and, for an autoscaled version, its HorizontalPodAutoscaler.

    Whoever owns a Deployment's spec.replicas decides its size. Without an HPA that is us (server-side
    apply with our field manager). With one, we set replicas only to create the Deployment, or to wake
    it from 0 (an HPA does not scale a target at 0); otherwise our apply leaves the field out, after
    handing it over (`Kube.hand_over_replicas`) so leaving it out does not reset it to 1.
    """
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    spec, st = mv.spec, runtime.settings()
    log = runtime.logger(body)
    artifact = mv.status.training.artifact if mv.status.training else None
    assert artifact is not None and p.replicas is not None
    dep_name = naming.deployment_name(name)
    observed = kube.deployment_view(ns, dep_name, name)
    hpa_sizes = p.autoscale is not None and observed is not None and observed.replicas > 0
    replicas = None if hpa_sizes else p.replicas
    dep = resources.server_deployment(name, ns, spec, artifact.uri, artifact.sha256, replicas, st)
    handed = hpa_sizes and kube.hand_over_replicas(ns, dep_name)
    if handed:
        log.info("handed Deployment %s's replicas over to its HorizontalPodAutoscaler", dep_name)
    if kube.ensure("deployments", dep, owner=body, force=handed):
        what = f"with {replicas} replica(s)" if replicas is not None else "(replicas by its autoscaler)"
        log.info("applied Deployment %s %s", dep_name, what)
    if p.autoscale is not None:
        hpa = resources.server_hpa(name, ns, spec, p.autoscale)
        if kube.ensure("hpas", hpa, owner=body):
            low, high = p.autoscale
            log.info(
                "applied HorizontalPodAutoscaler %s: %d to %d replica(s)", naming.hpa_name(name), low, high
            )
    elif kube.delete("hpas", "autoscaling/v2", "HorizontalPodAutoscaler", ns, naming.hpa_name(name)):
        log.info("deleted HorizontalPodAutoscaler %s", naming.hpa_name(name))


def promote(body: dict[str, Any], mv: ModelVersion, kube: Kube, replacing: str | None) -> bool:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    spec = mv.spec
    log = runtime.logger(body)
    previous = kube.take_stable_service(
        resources.stable_service(spec.model, ns, name), owner=body, model=spec.model, replacing=replacing
    )
    kind = "rollback" if mv.status.timestamps.get("promoted") else "promotion"
    metrics.PROMOTIONS.labels(ns, spec.model, kind).inc()
    text = f"Promoted {name} to champion of {spec.model}" + (f", replacing {previous}" if previous else "")
    log.info("%s", text)
    kopf.info(body, reason="Promoted", message=text)
    return True


def record(body: dict[str, Any], mv: ModelVersion, p: Plan, kube: Kube) -> None:
    """Write the status only where it differs, then the plan's Events and the metrics."""
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    current = body.get("status") or {}
    patch = status_patch(
        p,
        current,
        namespace=ns,
        name=name,
        generation=meta.get("generation"),
        now=runtime.ts(),
        model=mv.spec.model,
    )
    if patch:
        kube.patch_status(PLURAL, body, patch)
        if "phase" in patch:
            runtime.logger(body).info("phase %s → %s: %s", current.get("phase"), p.phase, p.message)
    runtime.post_events(body, p.events)
    if p.events and p.events[-1][1] == "CanaryRolledBack":
        metrics.ROLLBACKS.labels(ns, mv.spec.model).inc()
    metrics.seen_model(ns, mv.spec.model)
    metrics.VERSIONS.set(ns, mv.spec.model, name, p.phase, bool(p.champion))


def reconcile(key: tuple[str, str]) -> float | None:
    """Observe → plan → act → record; safe to run any number of times, from any point.

    Returns when to look again (None: only on events, or the slow resync).
    """
    try:
        return _reconcile(key)
    finally:
        runtime.kube().service_slots.done(key)  # a slot it was woken for and did not take


def _reconcile(key: tuple[str, str]) -> float | None:
    ns, name = key
    kube = runtime.kube()
    body = kube.modelversion(ns, name)
    if body is None:
        return GONE
    if body["metadata"].get("deletionTimestamp"):
        try:
            return finalize(body, kube)
        except Conflict:
            return CONFLICT_RETRY
    with runtime.measured("ModelVersion"):
        try:
            mv = ModelVersion.model_validate(body)
        except ValidationError as e:
            reject_invalid(body, e, kube)
            return None
        p: Plan | None = None
        try:
            if (body["metadata"].get("annotations") or {}).get(naming.ANNOTATION_DELETE_ARTIFACTS) == "true":
                kube.add_finalizer(PLURAL, body, FINALIZER)  # set by hand: honoured like retention's
            p = plan(observe(body, mv, kube))
            took = act(body, mv, p, kube)
            record(body, mv, p, kube)
        except Conflict as e:
            runtime.logger(body).info("%s; deciding again", e)
            return CONFLICT_RETRY
        except Busy as e:
            runtime.logger(body).debug("%s; deciding again when one is done", e)
            kube.service_slots.when_free(key, lambda: QUEUE.add_threadsafe(key))
            waiting = waiting_for_service_slot(p, str(e)) if p is not None else None
            if waiting is not None:  # once: the next wait finds the same status and writes nothing
                with contextlib.suppress(Conflict):  # changed meanwhile: the freed slot decides again
                    record(body, mv, waiting, kube)
            return None  # a freed slot wakes it
        except Refused as e:
            raise runtime.report_refusal(PLURAL, body, e, extra={"message": str(e)}) from e
        return 0.0 if took else p.requeue_after


def reject_invalid(body: dict[str, Any], error: ValidationError, kube: Kube) -> None:
    """A spec the CRD schema let through but the model refuses: say exactly what is wrong, once."""
    first = error.errors()[0]
    where = ".".join(str(x) for x in first["loc"])
    msg = f"invalid spec at {where}: {first['msg']}"
    current = body.get("status") or {}
    generation = body["metadata"].get("generation")
    conds = apply_conditions(
        current.get("conditions") or [],
        [Cond("Ready", "False", "InvalidSpec", msg), Cond("Stalled", "True", "InvalidSpec", msg)],
        generation=generation,
        now=runtime.ts(),
    )
    desired = {"phase": "Failed", "message": msg, "conditions": conds, "observedGeneration": generation}
    patch = merge_diff(current, desired)
    if patch:
        kube.patch_status(PLURAL, body, patch)
        kopf.warn(body, reason="InvalidSpec", message=msg)


QUEUE = WorkQueue("ModelVersion", reconcile, resync=runtime.settings().resync_seconds)
runtime.queues["ModelVersion"] = QUEUE


def finalize(body: dict[str, Any], kube: Kube) -> float | None:
    """A version being deleted whose artifacts must go first: run the clean-up Job, then let go.

    The clean-up Job is not owned by the version (it must outlive it); its TTL removes it, and its
    events wake this version (it carries the version's label).
    """
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return GONE
    log = runtime.logger(body)
    if (meta.get("annotations") or {}).get(naming.ANNOTATION_DELETE_ARTIFACTS) == "true":
        mv = ModelVersion.model_validate(body)
        job_name = naming.cleanup_job_name(name)
        job = kube.job_view(ns, job_name, name, "cleaner")
        if job is None:
            kube.ensure("jobs", resources.cleanup_job(name, ns, mv.spec, runtime.settings()))
            log.info("created Job %s to delete the artifacts", job_name)
            kopf.info(
                body, reason="DeletingArtifacts", message=f"Created Job {job_name} to delete the artifacts"
            )
            return None
        if job.failed:
            msg = f"Job {job_name} failed: {job.failure_message}; trying again in {ARTIFACT_RETRY:.0f}s"
            kopf.warn(body, reason="ArtifactCleanupFailed", message=msg)
            kube.delete("jobs", "batch/v1", "Job", ns, job_name)
            return ARTIFACT_RETRY
        if not job.succeeded:
            return None
        kopf.info(body, reason="DeletedArtifacts", message=f"Deleted the artifacts of {name}")
    kube.remove_finalizer(PLURAL, body, FINALIZER)
    log.info("released the finalizer")
    return GONE


ARTIFACT_RETRY = 30.0
"""A failed artifact clean-up Job is deleted and made anew after this long."""
