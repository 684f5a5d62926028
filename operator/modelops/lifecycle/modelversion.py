"""The ModelVersion life cycle as a pure function: what is observed in, what to do out.

One `plan()` covers creation, update, resume and timers alike (level-based): it never
asks which event woke it, only what the world looks like now. Phase memory that cannot
be re-derived from the world (a version was validated, was champion once) lives in
status conditions and timestamps, which are themselves part of what is observed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from modelops.api.base import format_time, parse_time
from modelops.api.estimators import LOWER_IS_BETTER
from modelops.api.modelversion import (
    Canary,
    Gate,
    ModelVersionSpec,
    ModelVersionStatus,
    Phase,
    TrainingResult,
)

from .conditions import Cond, is_true

NO_RESULT_GRACE_SECONDS = 120.0
"""How long after its Job succeeded a trainer's report may still arrive (API retries)."""
INCONCLUSIVE_FACTOR = 3
"""A canary without enough traffic is rolled back after this many analysis windows."""


@dataclass(frozen=True)
class JobView:
    uid: str
    active: int = 0
    succeeded: int = 0
    failed: bool = False
    failure_message: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class DeploymentView:
    replicas: int
    ready_replicas: int
    up_to_date: bool = True
    pod_failure: str | None = None


@dataclass(frozen=True)
class ChampionView:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CanaryView:
    requests: float = 0.0
    error_rate: float | None = None
    p99_seconds: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Observed:
    name: str
    generation: int
    spec: ModelVersionSpec
    status: ModelVersionStatus
    now: datetime
    job: JobView | None = None
    deployment: DeploymentView | None = None
    champion: ChampionView | None = None
    promotion_request: str | None = None
    canary: CanaryView | None = None


EventType = Literal["Normal", "Warning"]


@dataclass
class Plan:
    phase: Phase
    conditions: list[Cond]
    message: str
    ensure_job: bool = False
    replicas: int | None = None
    """Desired server replicas; None means no Deployment (and no version Service)."""
    promote: bool = False
    champion: bool = False
    accept_result: bool = False
    events: list[tuple[EventType, str, str]] = field(default_factory=list)
    timestamps: dict[str, str] = field(default_factory=dict)
    handled_promotion: str | None = None
    requeue_after: float | None = None
    query_canary: bool = False


def _elapsed(since: str | None, now: datetime) -> float:
    return max(0.0, (now - parse_time(since)).total_seconds()) if since else 0.0


def primary_metric(spec: ModelVersionSpec, metrics: dict[str, float]) -> str | None:
    """The metric shown by `kubectl get mv`: the champion comparison's, else the first gate's, else a default."""
    order = []
    if spec.validation.champion:
        order.append(spec.validation.champion.metric)
    order += [g.metric for g in spec.validation.gates]
    order += ["accuracy", "r2", "f1", "rmse"]
    for name in order:
        if name in metrics:
            return f"{name}={metrics[name]:.4g}"
    return None


def gate_failures(gates: list[Gate], metrics: dict[str, float]) -> list[str]:
    """Every gate a result fails, as a sentence a person reads."""
    out = []
    for g in gates:
        value = metrics.get(g.metric)
        if value is None:
            out.append(f"{g.metric} was not measured (metrics: {', '.join(sorted(metrics)) or 'none'})")
        elif g.min is not None and value < g.min:
            out.append(f"{g.metric} {value:.4g} < min {g.min:g}")
        elif g.max is not None and value > g.max:
            out.append(f"{g.metric} {value:.4g} > max {g.max:g}")
    return out


def champion_verdict(
    metric: str, min_improvement: float, challenger: dict[str, float], champion: dict[str, float]
) -> tuple[bool, str]:
    """Challenger vs champion on one metric; lower is better for errors (rmse, mae)."""
    if metric not in challenger:
        return False, f"challenger has no {metric}"
    if metric not in champion:
        return True, f"champion has no {metric}; nothing to beat"
    new, old = challenger[metric], champion[metric]
    improvement = (old - new) if metric in LOWER_IS_BETTER else (new - old)
    ok = improvement >= min_improvement - 1e-12
    rel = "beats" if ok else "does not beat"
    return ok, (
        f"{metric} {new:.4g} vs champion {old:.4g}: improvement {improvement:+.4g} {rel} "
        f"required {min_improvement:+.4g}"
    )


def canary_verdict(canary: Canary, view: CanaryView | None, elapsed: float) -> tuple[str, str]:
    """`pass`, `fail` or `wait`, with the reason: a breach fails at once, a pass needs the whole window."""
    if view is None or view.error:
        why = view.error if view and view.error else "no metrics yet"
        if elapsed >= canary.analysis_seconds * INCONCLUSIVE_FACTOR:
            return "fail", f"analysis inconclusive after {elapsed:.0f}s: {why}"
        return "wait", f"waiting for canary metrics: {why}"
    enough = view.requests >= canary.min_requests
    if enough and view.error_rate is not None and view.error_rate > canary.max_error_rate:
        return (
            "fail",
            f"error rate {view.error_rate:.2%} > {canary.max_error_rate:.2%} over {view.requests:.0f} requests",
        )
    if enough and view.p99_seconds is not None and view.p99_seconds > canary.max_p99_latency_seconds:
        return (
            "fail",
            f"p99 latency {view.p99_seconds * 1000:.0f}ms > {canary.max_p99_latency_seconds * 1000:.0f}ms",
        )
    if elapsed < canary.analysis_seconds:
        return "wait", f"analysing: {view.requests:.0f} requests, {elapsed:.0f}/{canary.analysis_seconds}s"
    if not enough:
        if elapsed >= canary.analysis_seconds * INCONCLUSIVE_FACTOR:
            return "fail", f"analysis inconclusive: {view.requests:.0f} < {canary.min_requests} requests"
        return "wait", f"waiting for traffic: {view.requests:.0f}/{canary.min_requests} requests"
    er = f"{view.error_rate:.2%}" if view.error_rate is not None else "n/a"
    p99 = f"{view.p99_seconds * 1000:.0f}ms" if view.p99_seconds is not None else "n/a"
    return "pass", f"error rate {er}, p99 {p99} over {view.requests:.0f} requests"


def _result_for_job(status: ModelVersionStatus, job: JobView | None) -> TrainingResult | None:
    r = status.training
    if r is None or job is None or r.job_uid != job.uid:
        return None
    return r


def _terminal(o: Observed, phase: Phase) -> Plan:
    """Failed and Rejected stay put: nothing is served, the conditions keep their reasons."""
    msg = o.status.message or phase
    return Plan(
        phase=phase,
        conditions=[Cond("Ready", "False", phase, msg), Cond("Stalled", "True", phase, msg)],
        message=msg,
        replicas=None,
    )


def plan(o: Observed) -> Plan:
    s, spec, now = o.status, o.spec, o.now
    conds = [c.model_dump(by_alias=True) for c in s.conditions]
    is_champion = o.champion is not None and o.champion.name == o.name

    if s.phase in ("Failed", "Rejected") and not is_champion:
        return _terminal(o, s.phase)

    # --- training -------------------------------------------------------------------------
    trained = is_true(conds, "Trained") and s.training is not None and s.training.succeeded
    if not trained:
        result = _result_for_job(s, o.job)
        if o.job is None:
            return Plan(
                phase="Training",
                conditions=[
                    Cond("Trained", "False", "JobCreated", f"creating training Job for {spec.model}"),
                    Cond("Ready", "False", "Training", "training"),
                    Cond("Reconciling", "True", "Training", "training"),
                ],
                message="training",
                ensure_job=True,
                timestamps={"trainingStarted": format_time(now)},
                events=[
                    (
                        "Normal",
                        "TrainingStarted",
                        f"Training {spec.training.estimator.class_} on {spec.training.dataset.uri}",
                    )
                ],
                requeue_after=10,
            )
        failure: str | None = None
        if result is not None and not result.succeeded:
            failure = result.message or "trainer reported failure"
        elif o.job.failed:
            failure = o.job.failure_message or "training Job failed"
        elif o.job.succeeded and result is None:
            waited = (now - o.job.finished_at).total_seconds() if o.job.finished_at else 0.0
            if waited > NO_RESULT_GRACE_SECONDS:
                failure = f"training Job succeeded but the trainer reported no result for {waited:.0f}s"
        if failure:
            msg = f"training failed: {failure}"
            return Plan(
                phase="Failed",
                conditions=[
                    Cond("Trained", "False", "TrainingFailed", failure),
                    Cond("Ready", "False", "Failed", msg),
                    Cond("Stalled", "True", "TrainingFailed", msg),
                ],
                message=msg,
                timestamps={"failed": format_time(now)},
                events=[("Warning", "TrainingFailed", msg)],
            )
        if result is None:
            wait = (
                "training Job finished; waiting for the trainer's report" if o.job.succeeded else "training"
            )
            return Plan(
                phase="Training",
                conditions=[
                    Cond("Trained", "False", "Training", wait),
                    Cond("Ready", "False", "Training", wait),
                    Cond("Reconciling", "True", "Training", wait),
                ],
                message=wait,
                requeue_after=5,
            )
        # A result bound to our Job: accept it and fall through to validation.
        s = s.model_copy(update={"training": result})
        trained_now = True
    else:
        trained_now = False

    metrics = s.training.metrics if s.training else {}
    metric_text = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
    trained_cond = Cond("Trained", "True", "Succeeded", metric_text or "trained")
    events: list[tuple[EventType, str, str]] = []
    timestamps: dict[str, str] = {}
    if trained_now:
        events.append(("Normal", "Trained", f"Trained {spec.model}: {metric_text}"))
        timestamps["trained"] = format_time(now)

    # --- validation -----------------------------------------------------------------------
    validated = is_true(conds, "Validated")
    if not validated:
        problems = gate_failures(spec.validation.gates, metrics)
        verdict = ""
        if not problems and spec.validation.champion and o.champion and not is_champion:
            ok, verdict = champion_verdict(
                spec.validation.champion.metric,
                spec.validation.champion.min_improvement,
                metrics,
                o.champion.metrics,
            )
            if not ok:
                problems.append(f"champion {o.champion.name} is better: {verdict}")
        if problems:
            msg = "rejected: " + "; ".join(problems)
            reason = "ChampionBetter" if any(p.startswith("champion ") for p in problems) else "GateFailed"
            return Plan(
                phase="Rejected",
                conditions=[
                    trained_cond,
                    Cond("Validated", "False", reason, msg),
                    Cond("Ready", "False", "Rejected", msg),
                    Cond("Stalled", "True", reason, msg),
                ],
                message=msg,
                accept_result=trained_now,
                timestamps={**timestamps, "rejected": format_time(now)},
                events=[*events, ("Warning", "Rejected", msg)],
            )
        passed = f"{len(spec.validation.gates)} gate(s) passed" + (f"; {verdict}" if verdict else "")
        validated_cond = Cond("Validated", "True", "GatesPassed", passed)
        events.append(("Normal", "Validated", passed))
        timestamps["validated"] = format_time(now)
    else:
        validated_cond = Cond("Validated", "True", "GatesPassed", _cond_message(conds, "Validated"))

    base = [trained_cond, validated_cond]
    request = (
        o.promotion_request if o.promotion_request and o.promotion_request != s.handled_promotion else None
    )
    want = spec.serving.replicas
    dep = o.deployment
    ready = dep is not None and dep.up_to_date and dep.ready_replicas >= max(1, min(want, dep.replicas))
    pm = primary_metric(spec, metrics)

    def done(p: Plan) -> Plan:
        p.events = [*events, *p.events]
        p.timestamps = {**timestamps, **p.timestamps}
        p.accept_result = trained_now
        return p

    # --- retirement -----------------------------------------------------------------------
    if spec.retired and not is_champion:
        msg = "retired"
        return done(
            Plan(
                phase="Retired",
                conditions=[
                    *base,
                    Cond("Deployed", "False", "Retired", msg),
                    Cond("Promoted", "False", "Retired", msg),
                    Cond("Ready", "True", "Retired", msg),
                ],
                message=msg,
                replicas=None,
                timestamps={} if s.timestamps.get("retired") else {"retired": format_time(now)},
                events=[] if s.phase == "Retired" else [("Normal", "Retired", f"Retired {o.name}")],
            )
        )

    # --- the champion ---------------------------------------------------------------------
    if is_champion:
        notes = []
        if spec.retired:
            notes.append("cannot retire the champion: promote another version first")
        deployed = (
            Cond("Deployed", "True", "ReplicasReady", f"{dep.ready_replicas}/{want} replicas ready")
            if (ready and dep)
            else Cond("Deployed", "False", "ReplicasNotReady", _replica_text(dep, want))
        )
        if not ready:  # say why it does not serve: replicas, and the servers' own last words
            why = _replica_text(dep, want) + (f": {dep.pod_failure}" if dep and dep.pod_failure else "")
            notes.insert(0, f"not serving: {why}")
        msg = "; ".join(["champion" + (f", {pm}" if pm else ""), *notes])
        return done(
            Plan(
                phase="Serving",
                conditions=[
                    *base,
                    deployed,
                    Cond("Promoted", "True", "Champion", f"{o.name} is the champion"),
                    Cond(
                        "Ready", "True" if ready else "False", "Serving" if ready else "ReplicasNotReady", msg
                    ),
                ]
                + (
                    []
                    if ready
                    else [Cond("Reconciling", "True", "ReplicasNotReady", _replica_text(dep, want))]
                ),
                message=msg,
                replicas=want,
                champion=True,
                handled_promotion=request or s.handled_promotion,
                timestamps={} if s.timestamps.get("promoted") else {"promoted": format_time(now)},
                requeue_after=None if ready else 5,
            )
        )

    # --- a former champion: superseded, kept for rollback ----------------------------------
    if s.timestamps.get("promoted"):
        since = s.timestamps.get("superseded")
        ts = {} if since else {"superseded": format_time(now)}
        champ = o.champion.name if o.champion else "nobody"
        if request:
            return done(
                _promote_when_ready(
                    o,
                    base,
                    ready,
                    dep,
                    want,
                    request,
                    ts,
                    phase="Superseded",
                    why=f"rollback requested ({request})",
                )
            )
        drained = (
            _elapsed(since, now) >= spec.serving.drain_seconds if since else spec.serving.drain_seconds == 0
        )
        replicas = 0 if drained else want
        msg = f"superseded by {champ}" + ("; scaled down" if drained else "; draining")
        events_ = [] if since else [("Normal", "Superseded", f"Superseded by {champ}")]
        return done(
            Plan(
                phase="Superseded",
                conditions=[
                    *base,
                    Cond(
                        "Deployed",
                        "False" if drained else "True",
                        "ScaledDown" if drained else "Draining",
                        msg,
                    ),
                    Cond("Promoted", "False", "Superseded", msg),
                    Cond("Ready", "True", "Superseded", msg),
                ],
                message=msg,
                replicas=replicas,
                timestamps=ts,
                events=events_,
                requeue_after=None
                if drained
                else max(1.0, spec.serving.drain_seconds - _elapsed(since, now)),
            )
        )

    # --- a new version on its way to champion ----------------------------------------------
    if dep is not None and dep.pod_failure:
        msg = f"server failed: {dep.pod_failure}"
        return done(
            Plan(
                phase="Failed",
                conditions=[
                    *base,
                    Cond("Deployed", "False", "ServerFailed", msg),
                    Cond("Ready", "False", "Failed", msg),
                    Cond("Stalled", "True", "ServerFailed", msg),
                ],
                message=msg,
                replicas=None,
                timestamps={"failed": format_time(now)},
                events=[("Warning", "ServerFailed", msg)],
            )
        )
    canary = spec.serving.rollout.canary if spec.serving.rollout.strategy == "Canary" else None
    in_canary = canary is not None and o.champion is not None and not request
    replicas = canary.replicas if in_canary and canary else want
    if not ready:
        msg = f"deploying: {_replica_text(dep, replicas)}"
        return done(
            Plan(
                phase="Deploying",
                conditions=[
                    *base,
                    Cond("Deployed", "False", "ReplicasNotReady", msg),
                    Cond("Promoted", "False", "NotYet", "waiting for the deployment"),
                    Cond("Ready", "False", "Deploying", msg),
                    Cond("Reconciling", "True", "Deploying", msg),
                ],
                message=msg,
                replicas=replicas,
                timestamps={} if s.timestamps.get("deploying") else {"deploying": format_time(now)},
                requeue_after=5,
            )
        )
    deployed = Cond(
        "Deployed", "True", "ReplicasReady", f"{dep.ready_replicas if dep else 0}/{replicas} replicas ready"
    )
    if not s.timestamps.get("deployed"):
        timestamps["deployed"] = format_time(now)
        events.append(("Normal", "Deployed", f"Deployment ready with {replicas} replica(s)"))

    if in_canary and canary is not None:
        started = s.timestamps.get("canaryStarted")
        ts = {} if started else {"canaryStarted": format_time(now)}
        verdict, why = canary_verdict(canary, o.canary, _elapsed(started, now) if started else 0.0)
        if verdict == "fail":
            msg = f"canary rolled back: {why}"
            return done(
                Plan(
                    phase="Rejected",
                    conditions=[
                        *base,
                        Cond("Deployed", "False", "RolledBack", msg),
                        Cond("Promoted", "False", "CanaryFailed", msg),
                        Cond("Ready", "False", "Rejected", msg),
                        Cond("Stalled", "True", "CanaryFailed", msg),
                    ],
                    message=msg,
                    replicas=None,
                    timestamps={**ts, "rolledBack": format_time(now), "rejected": format_time(now)},
                    events=[("Warning", "CanaryRolledBack", msg)],
                )
            )
        if verdict == "wait" or spec.promotion.mode == "Manual":
            msg = (
                f"canary: {why}"
                if verdict == "wait"
                else f"canary passed ({why}); waiting for manual promotion"
            )
            return done(
                Plan(
                    phase="Canary",
                    conditions=[
                        *base,
                        deployed,
                        Cond(
                            "Promoted",
                            "False",
                            "Analysing" if verdict == "wait" else "AwaitingPromotion",
                            msg,
                        ),
                        Cond("Ready", "False", "Canary", msg),
                        Cond("Reconciling", "True", "Canary", msg),
                    ],
                    message=msg,
                    replicas=replicas,
                    timestamps=ts,
                    events=[]
                    if started
                    else [
                        (
                            "Normal",
                            "CanaryStarted",
                            f"Canary beside champion {o.champion.name}" if o.champion else "Canary started",
                        )
                    ],
                    requeue_after=5,
                    query_canary=True,
                )
            )
        return done(
            _promote_when_ready(
                o, [*base], ready, dep, want, None, ts, phase="Canary", why=f"canary passed: {why}"
            )
        )

    if spec.promotion.mode == "Manual" and not request:
        msg = "deployed; waiting for manual promotion (annotate modelops.dev/promote or set spec.promotion.request)"
        return done(
            Plan(
                phase="Deploying",
                conditions=[
                    *base,
                    deployed,
                    Cond("Promoted", "False", "AwaitingPromotion", msg),
                    Cond("Ready", "False", "AwaitingPromotion", msg),
                ],
                message=msg,
            )
        )
    why = f"promotion requested ({request})" if request else "gates passed; automatic promotion"
    return done(_promote_when_ready(o, base, ready, dep, want, request, {}, phase="Deploying", why=why))


def _promote_when_ready(
    o: Observed,
    base: list[Cond],
    ready: bool,
    dep: DeploymentView | None,
    want: int,
    request: str | None,
    ts: dict[str, str],
    *,
    phase: Phase,
    why: str,
) -> Plan:
    """Scale to the serving size, and once ready take the stable Service."""
    full = ready and dep is not None and dep.replicas >= want
    msg = f"promoting: {why}" if full else f"{why}; scaling to {want} replica(s) before promotion"
    deployed = (
        Cond("Deployed", "True", "ReplicasReady", _replica_text(dep, want))
        if full
        else Cond("Deployed", "False", "ReplicasNotReady", _replica_text(dep, want))
    )
    return Plan(
        phase=phase,
        conditions=[
            *base,
            deployed,
            Cond("Promoted", "False", "Promoting", msg),
            Cond("Ready", "False", "Promoting", msg),
            Cond("Reconciling", "True", "Promoting", msg),
        ],
        message=msg,
        replicas=want,
        promote=full,
        handled_promotion=request if full else None,
        timestamps=ts,
        events=[("Normal", "Promoting", msg)] if full else [],
        requeue_after=1 if full else 5,
    )


def _replica_text(dep: DeploymentView | None, want: int) -> str:
    if dep is None:
        return f"0/{want} replicas ready (no Deployment yet)"
    return f"{dep.ready_replicas}/{want} replicas ready"


def _cond_message(conds: list[dict[str, object]], type_: str) -> str:
    c = next((c for c in conds if c.get("type") == type_), None)
    return str(c.get("message", "")) if c else ""
