"""The ModelVersion life cycle as a pure function: what is observed in, what to do out.

One `plan()` covers creation, update, resume and timers alike (level-based): it never
asks which event woke it, only what the world looks like now. Phase memory that cannot
be re-derived from the world (a version was validated, was champion once) lives in
status conditions and timestamps, which are themselves part of what is observed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from modelops.api.base import format_time, parse_time, try_parse_time
from modelops.api.estimators import LOWER_IS_BETTER
from modelops.api.modelversion import (
    Canary,
    CanaryStatus,
    Comparison,
    Fairness,
    FairnessReport,
    Gate,
    ModelVersionSpec,
    ModelVersionStatus,
    Phase,
    TrainingResult,
    Verdict,
)

from . import naming
from .canary import INCONCLUSIVE_FACTOR, canary_verdict, share, split_replicas, split_total
from .conditions import Cond, apply_conditions, is_true
from .observed import CanaryView, ChampionView, DeploymentView, JobView
from .patches import merge_diff

__all__ = [
    "CanaryView",
    "ChampionView",
    "DeploymentView",
    "JobView",
    "Observed",
    "Plan",
    "canary_verdict",
    "plan",
    "status_patch",
]

NO_RESULT_GRACE_SECONDS = 120.0
"""How long after its Job succeeded a trainer's report may still arrive (API retries)."""


@dataclass(frozen=True)
class Observed:
    name: str
    generation: int
    spec: ModelVersionSpec
    status: ModelVersionStatus
    now: datetime
    job: JobView | None = None
    search_job: JobView | None = None
    """The search's Indexed Job (only looked up when spec.training.search is set)."""
    deployment: DeploymentView | None = None
    champion: ChampionView | None = None
    promotion_request: str | None = None
    canary: CanaryView | None = None
    requested_by: str | None = None
    """The field manager that wrote the promotion request (annotation or spec)."""
    approved_by: str | None = None
    """The modelops.dev/approved-by annotation."""
    canary_split: int | None = None
    """Champion only: the pods a running replicas canary of its model leaves it (None: full size)."""
    route_weights: Mapping[str, int] | None = None
    """gatewayAPI canary: the HTTPRoute's backend weights by Service name (None: the route is missing)."""


EventType = Literal["Normal", "Warning"]


@dataclass
class Plan:
    phase: Phase
    conditions: list[Cond]
    message: str
    ensure_job: bool = False
    """The training Job must exist."""
    ensure_search: bool = False
    """The search's Indexed Job must exist."""
    search_job_uid: str | None = None
    """The completed search Job whose shard files the training Job (to create) merges."""
    replicas: int | None = None
    """Desired server replicas; None means no Deployment (and no version Service)."""
    promote: bool = False
    """Take the model's stable Service now."""
    champion: bool = False
    events: list[tuple[EventType, str, str]] = field(default_factory=list)
    """Events to post, each a decision made in this pass."""
    timestamps: dict[str, str] = field(default_factory=dict)
    """Transition times to add to status.timestamps (never moved once set)."""
    handled_promotion: str | None = None
    requeue_after: float | None = None
    """Seconds until a time-based step is due; None when only a change in the world can move it."""
    primary_metric: str | None = None
    comparison: Verdict | None = None
    """The champion comparison's verdict on same-data numbers (status.comparison)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Audit entries to append to status.history, one per audited Event of this pass."""
    ready_replicas: int = 0
    """Ready server pods, as the Deployment reports them (status.serving.readyReplicas)."""
    canary_status: dict[str, Any] | None = None
    """status.canary as it should be (None: removed)."""
    superseded_by: str | None = None
    """status.supersededBy: the champion that took over, named once per Superseded episode (None: removed)."""
    pool: bool = False
    """This version's server pods carry the traffic-pool label (champion, replicas canary)."""
    stable_pool: bool | None = None
    """Champion only: the stable Service selects the pool (True) or this version (False)."""
    route: tuple[str, int] | None = None
    """gatewayAPI canary: (HTTPRoute, canary weight) to write; weight 0 sends all to the stable Service."""
    champion_seen: str | None = None
    """The champion this plan was decided against: promoting, or setting the stable Service's
    selector, must find it still the champion when acting (`Kube.take_stable_service`)."""
    autoscale: tuple[int, int] | None = None
    """(minReplicas, maxReplicas) of the version's HorizontalPodAutoscaler; None: no HPA, the
    Deployment's replicas are the operator's (`replicas`)."""


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


def fairness_failures(fairness: Fairness | None, report: FairnessReport | None) -> list[str]:
    """The fairness gate: every sensitive feature whose groups differ by more than allowed."""
    if fairness is None:
        return []
    if report is None or report.metric != fairness.metric:
        return [f"fairness {fairness.metric} was not measured by the trainer"]
    out = []
    for feature in fairness.sensitive_features:
        diff = report.differences.get(feature)
        if diff is None:
            out.append(f"fairness for {feature!r} was not measured")
            continue
        if diff > fairness.max_difference + 1e-12:
            groups = [g for g in report.groups if g.feature == feature and g.value is not None]
            spread = ", ".join(f"{g.group}={g.value:.3g}" for g in sorted(groups, key=lambda g: g.value or 0))
            out.append(
                f"fairness: {fairness.metric} differs by {diff:.3g} between groups of {feature!r} "
                f"({spread}) > maxDifference {fairness.max_difference:g}"
            )
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


def comparison_verdict(spec: ModelVersionSpec, comparison: Comparison | None) -> Verdict | None:
    """The champion comparison judged on the trainer's same-data numbers: the challenger must beat
    the champion by minImprovement on EVERY evaluation set (held-out split, and golden set if any).

    None when the spec asks for no comparison or the trainer had no champion to compare with.
    """
    rule = spec.validation.champion
    if rule is None or comparison is None:
        return None
    metric = rule.metric
    base = {"champion": comparison.champion, "champion_sha256": comparison.champion_sha256, "metric": metric}
    if comparison.error:
        return Verdict(verdict="Incomparable", message=comparison.error, **base)
    if not comparison.evaluations:
        return Verdict(verdict="Incomparable", message="no evaluation set was scored", **base)
    parts, wins = [], True
    for ev in comparison.evaluations:
        if metric not in ev.challenger or metric not in ev.champion:
            kind = spec.training.estimator.class_ if spec.training else "imported model's"
            why = f"{metric} was not measured on the {ev.set} set (a {kind} task?)"
            return Verdict(verdict="Incomparable", message=why, **base)
        ok, text = champion_verdict(metric, rule.min_improvement, ev.challenger, ev.champion)
        wins = wins and ok
        parts.append(f"{ev.set} ({ev.rows} rows): {text}")
    verdict = "ChallengerBetter" if wins else "ChampionBetter"
    return Verdict(verdict=verdict, message="; ".join(parts), **base)


def _result_for_job(status: ModelVersionStatus, job: JobView | None) -> TrainingResult | None:
    r = status.training
    if r is None or job is None or r.job_uid != job.uid:
        return None
    return r


# --- shared shapes ------------------------------------------------------------------------------


def _stalled(
    phase: Phase,
    reason: str,
    msg: str,
    *before: Cond,
    ts: str | None = None,
    event: str | None = None,
    now: datetime | None = None,
) -> Plan:
    """A version that stopped for good (Failed, Rejected): not Ready, Stalled, one Warning Event."""
    return Plan(
        phase=phase,
        conditions=[*before, Cond("Ready", "False", phase, msg), Cond("Stalled", "True", reason, msg)],
        message=msg,
        timestamps={ts: format_time(now)} if ts and now else {},
        events=[("Warning", event, msg)] if event else [],
    )


def _progressing(phase: Phase, reason: str, msg: str, *before: Cond, **kw: object) -> Plan:
    """A version on its way: not Ready yet, Reconciling (kstatus: in progress)."""
    return Plan(
        phase=phase,
        conditions=[*before, Cond("Ready", "False", reason, msg), Cond("Reconciling", "True", reason, msg)],
        message=msg,
        **kw,  # type: ignore[arg-type]
    )


def _once(status: ModelVersionStatus, key: str, now: datetime) -> dict[str, str]:
    """A timestamp set when its step first happens, never moved afterwards."""
    return {} if status.timestamps.get(key) else {key: format_time(now)}


def _episode(status: ModelVersionStatus, key: str, *, after: str, now: datetime) -> dict[str, str]:
    """A timestamp of a step that can happen again (promoted, superseded): it describes the
    current episode, so it is set anew when the step it alternates with happened later."""
    mine, other = try_parse_time(status.timestamps.get(key)), try_parse_time(status.timestamps.get(after))
    if mine is not None and (other is None or mine >= other):
        return {}
    return {key: format_time(now)}


# --- the stages -----------------------------------------------------------------------------------


@dataclass
class _Trained:
    """What the training stage hands on: the accepted result and what it said."""

    status: ModelVersionStatus
    cond: Cond
    events: list[tuple[EventType, str, str]]
    timestamps: dict[str, str]


def _training_started(o: Observed) -> str:
    """What the training stage does and in which Job, for its one Event: train here, or import a
    model trained elsewhere."""
    spec, job = o.spec, naming.job_name(o.name)
    if spec.training is not None:
        return f"Training {spec.training.estimator.class_} on {spec.training.dataset.uri} in Job {job}"
    return f"Importing {spec.imported.uri} (scored on {spec.data.uri}) in Job {job}"  # type: ignore[union-attr]


def _training(o: Observed) -> Plan | _Trained:
    """Create the Job, wait for it, accept the trainer's report bound to this Job's uid, or fail."""
    s, spec, now = o.status, o.spec, o.now
    conds = [c.model_dump(by_alias=True) for c in s.conditions]
    events: list[tuple[EventType, str, str]] = []
    timestamps: dict[str, str] = {}
    if not (is_true(conds, "Trained") and s.training is not None and s.training.succeeded):
        result = _result_for_job(s, o.job)
        if o.job is None:
            searched = _search(o)
            if isinstance(searched, Plan):
                return searched
            ts = {"trainingStarted": format_time(now)}
            started: list[tuple[EventType, str, str]] = [("Normal", "TrainingStarted", _training_started(o))]
            if searched is not None:
                ts.update(_searched_at(o))
                started.insert(0, ("Normal", "Searched", _search_done(o)))
            # Said as the passes after the Job exists say it, so the echo of this write changes nothing.
            return _progressing(
                "Training",
                "Training",
                "training",
                Cond("Trained", "False", "Training", "training"),
                ensure_job=True,
                search_job_uid=searched,
                timestamps=ts,
                events=started,
            )
        if (
            spec.training is not None
            and spec.training.search is not None
            and not s.timestamps.get("searched")
        ):
            timestamps.update(_searched_at(o))  # the pass that created the Job lost its write
        if not s.timestamps.get("trainingStarted"):
            # Level-based: the Job's own creation time, even if the pass that created it lost its write.
            timestamps["trainingStarted"] = format_time(o.job.created or now)
            events.append(("Normal", "TrainingStarted", _training_started(o)))
        failure: str | None = None
        reason = "TrainingFailed"
        requeue: float | None = None
        if result is not None and not result.succeeded:
            failure = result.message or "trainer reported failure"
            reason = result.reason or reason
        elif o.job.failed:
            failure = o.job.failure_message or "training Job failed"
        elif o.job.succeeded and result is None:
            waited = (now - o.job.finished_at).total_seconds() if o.job.finished_at else 0.0
            if waited > NO_RESULT_GRACE_SECONDS:
                failure = f"training Job succeeded but the trainer reported no result for {waited:.0f}s"
            requeue = max(1.0, NO_RESULT_GRACE_SECONDS - waited + 1)
        stop: Plan | None = None
        if failure:
            msg = f"training failed: {failure}"
            stop = _stalled(
                "Failed",
                reason,
                msg,
                Cond("Trained", "False", reason, failure),
                ts="failed",
                now=now,
                event=reason,
            )
        elif result is None:
            wait = (
                "training Job finished; waiting for the trainer's report" if o.job.succeeded else "training"
            )
            stop = _progressing(
                "Training",
                "Training",
                wait,
                Cond("Trained", "False", "Training", wait),
                requeue_after=requeue,
            )
        if stop is not None:
            stop.events = [*events, *stop.events]
            stop.timestamps = {**timestamps, **stop.timestamps}
            return stop
        s = s.model_copy(update={"training": result})
        events.append(("Normal", "Trained", f"Trained {spec.model}: {_metric_text(s)}"))
        timestamps["trained"] = format_time(now)
    return _Trained(s, Cond("Trained", "True", "Succeeded", _metric_text(s) or "trained"), events, timestamps)


def _search_what(o: Observed) -> str:
    search = o.spec.training.search
    assert search is not None
    return f"{search.method} search over {search.candidate_count()} candidate(s) in {search.shards()} Job index(es)"


def _search_done(o: Observed) -> str:
    return f"Search finished: {_search_what(o)}; final fit on the best parameters"


def _searched_at(o: Observed) -> dict[str, str]:
    sj = o.search_job
    when = (sj.finished_at if sj else None) or o.now
    return {"searched": format_time(when)}


def _search(o: Observed) -> Plan | str | None:
    """The search before the final fit: start its Indexed Job, wait for every index, fail on a
    failed one. The completed Job's uid (whose shard files the training Job merges), or None when
    the spec has no search. Level-based: only the Job's state decides, so a restart mid-search
    finds the same Job and neither duplicates nor loses it."""
    s, spec, now = o.status, o.spec, o.now
    search = spec.training.search if spec.training else None
    if search is None:
        return None
    sj, what = o.search_job, _search_what(o)
    started = f"Started Job {naming.search_job_name(o.name)}: the {what}"
    shards = search.shards()
    if sj is None:
        msg = f"searching: {what} (0/{shards} done)"
        return _progressing(
            "Training",
            "Searching",
            msg,
            Cond("Trained", "False", "Searching", msg),
            ensure_search=True,
            timestamps={"searchStarted": format_time(now)},
            events=[("Normal", "SearchStarted", started)],
        )
    events: list[tuple[EventType, str, str]] = []
    timestamps: dict[str, str] = {}
    if not s.timestamps.get("searchStarted"):  # the creating pass lost its write: the Job's own time
        timestamps["searchStarted"] = format_time(sj.created or now)
        events.append(("Normal", "SearchStarted", started))
    if sj.failed:
        failure = (sj.failure_message or "search Job failed").removeprefix("error: ")
        msg = f"search failed: {failure}"
        p = _stalled(
            "Failed",
            "SearchFailed",
            msg,
            Cond("Trained", "False", "SearchFailed", failure),
            ts="failed",
            now=now,
            event="SearchFailed",
        )
    elif not sj.succeeded:
        msg = f"searching: {what} ({min(sj.completed, shards)}/{shards} done)"
        p = _progressing("Training", "Searching", msg, Cond("Trained", "False", "Searching", msg))
    else:
        return sj.uid
    p.events = [*events, *p.events]
    p.timestamps = {**timestamps, **p.timestamps}
    return p


def _metric_text(s: ModelVersionStatus) -> str:
    metrics = s.training.metrics if s.training else {}
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))


def _validation(o: Observed, t: _Trained, is_champion: bool) -> Plan | Cond:
    """Metric gates, the fairness gate, then the champion comparison on the same data; once
    Validated, it stays so (the result is immutable)."""
    spec, now = o.spec, o.now
    conds = [c.model_dump(by_alias=True) for c in o.status.conditions]
    if is_true(conds, "Validated"):
        kept = next((c for c in conds if c.get("type") == "Validated"), {})
        return Cond(
            "Validated", "True", str(kept.get("reason") or "GatesPassed"), _cond_message(conds, "Validated")
        )
    result = t.status.training
    metrics = result.metrics if result else {}
    problems = gate_failures(spec.validation.gates, metrics)
    unfair = fairness_failures(spec.validation.fairness, result.fairness if result else None)
    reason = "FairnessGateFailed" if unfair and not problems else "GateFailed"
    problems += unfair
    verdict, passed_reason = "", "GatesPassed"
    if not problems and spec.validation.champion and o.champion and not is_champion:
        v = comparison_verdict(spec, result.comparison if result else None)
        if v is None:
            why = f"the training Job had no champion to score; {o.champion.name} is champion now"
            v = Verdict(verdict="Incomparable", champion=o.champion.name, message=why)
        elif v.champion != o.champion.name:
            why = f"scored against {v.champion}, but {o.champion.name} became champion during training"
            v = Verdict(verdict="Incomparable", champion=o.champion.name, message=why)
        if v.verdict == "ChampionBetter":
            problems.append(f"champion {v.champion} is better on the same data: {v.message}")
            reason = "ChampionBetter"
        elif v.verdict == "Incomparable" and spec.validation.on_incomparable == "Reject":
            problems.append(f"champion {v.champion} cannot be compared (onIncomparable: Reject): {v.message}")
            reason = "ChampionIncomparable"
        elif v.verdict == "Incomparable":
            verdict = f"champion {v.champion} cannot be compared, decided on gates only: {v.message}"
            passed_reason = "GatesOnly"
        else:
            verdict = f"beats champion {v.champion} on the same data: {v.message}"
    if problems:
        msg = "rejected: " + "; ".join(problems)
        p = _stalled(
            "Rejected",
            reason,
            msg,
            t.cond,
            Cond("Validated", "False", reason, msg),
            ts="rejected",
            now=now,
            event="Rejected",
        )
        p.events = [*t.events, *p.events]
        p.timestamps = {**t.timestamps, **p.timestamps}
        return p
    passed = f"{len(spec.validation.gates)} gate(s) passed" + (f"; {verdict}" if verdict else "")
    if spec.validation.fairness is not None:
        fair = spec.validation.fairness
        passed += f"; fairness {fair.metric} within {fair.max_difference:g}"
    if passed_reason == "GatesOnly":
        t.events.append(("Warning", "ChampionIncomparable", verdict))
    t.events.append(("Normal", "Validated", passed))
    t.timestamps["validated"] = format_time(now)
    return Cond("Validated", "True", passed_reason, passed)


def _retired(o: Observed, base: list[Cond]) -> Plan:
    msg = "retired"
    return Plan(
        phase="Retired",
        conditions=[
            *base,
            Cond("Deployed", "False", "Retired", msg),
            Cond("Promoted", "False", "Retired", msg),
            Cond("Ready", "True", "Retired", msg),
        ],
        message=msg,
        replicas=None,
        timestamps=_once(o.status, "retired", o.now),
        events=[] if o.status.phase == "Retired" else [("Normal", "Retired", f"Retired {o.name}")],
    )


def _serving(o: Observed, base: list[Cond], ready: bool, request: str | None, pm: str | None) -> Plan:
    """The champion: serve at full size, or at the part a replicas canary leaves it; it owns the
    stable Service's selector (the pool while such a canary runs); it cannot be retired."""
    dep, full = o.deployment, o.spec.serving.size()
    want = full if o.canary_split is None else o.canary_split
    # Judged against the size planned now, not the one the Deployment holds: a resize this pass
    # writes (a canary's step) reads the same in its echo, where the Deployment is not yet observed.
    ready = (
        dep is not None and dep.ready_replicas >= max(1, want) and (dep.up_to_date or dep.replicas == want)
    )
    notes = ["cannot retire the champion: promote another version first"] if o.spec.retired else []
    deployed = (
        Cond("Deployed", "True", "ReplicasReady", f"{dep.ready_replicas}/{want} replicas ready")
        if (ready and dep)
        else Cond("Deployed", "False", "ReplicasNotReady", _replica_text(dep, want))
    )
    if not ready:  # say why it does not serve: replicas, and the servers' own last words
        why = _replica_text(dep, want) + (f": {dep.pod_failure}" if dep and dep.pod_failure else "")
        notes.insert(0, f"not serving: {why}")
    if o.canary_split is not None:
        notes.append(f"sharing traffic with a canary: {want} of {full} replicas")
    msg = "; ".join(["champion" + (f", {pm}" if pm else ""), *notes])
    conditions = [
        *base,
        deployed,
        Cond("Promoted", "True", "Champion", f"{o.name} is the champion"),
        Cond("Ready", "True" if ready else "False", "Serving" if ready else "ReplicasNotReady", msg),
    ]
    if not ready:
        conditions.append(Cond("Reconciling", "True", "ReplicasNotReady", _replica_text(dep, want)))
    return Plan(
        phase="Serving",
        conditions=conditions,
        message=msg,
        replicas=want,
        champion=True,
        handled_promotion=request or o.status.handled_promotion,
        timestamps=_episode(o.status, "promoted", after="superseded", now=o.now),
        pool=True,
        stable_pool=o.canary_split is not None,
    )


def _superseded(o: Observed, base: list[Cond], ready: bool, request: str | None) -> Plan:
    """A former champion: keeps serving for drainSeconds, then scales to 0 and waits as rollback target."""
    s, spec, now = o.status, o.spec, o.now
    want = spec.serving.size()
    ts = _episode(s, "superseded", after="promoted", now=now)
    since = None if ts else s.timestamps.get("superseded")
    # Named once: were it the model's champion of the day, every later promotion would rewrite
    # every former champion's status (at 10 versions a model, 45 writes for 9 promotions).
    by = (s.superseded_by if since else None) or (o.champion.name if o.champion else None)
    champ = by or "nobody"
    if request:
        p = _promote_when_ready(
            o, base, ready, want, request, ts, phase="Superseded", why=f"rollback requested ({request})"
        )
        p.superseded_by = None if p.promote else by  # still Superseded until it takes the Service
        return p
    left = spec.serving.drain_seconds - _elapsed(since, now) if since else float(spec.serving.drain_seconds)
    drained = left <= 0 if since else spec.serving.drain_seconds == 0
    msg = f"superseded by {champ}" + ("; scaled down" if drained else "; draining")
    return Plan(
        phase="Superseded",
        conditions=[
            *base,
            Cond("Deployed", "False" if drained else "True", "ScaledDown" if drained else "Draining", msg),
            Cond("Promoted", "False", "Superseded", msg),
            Cond("Ready", "True", "Superseded", msg),
        ],
        message=msg,
        replicas=0 if drained else want,
        timestamps=ts,
        events=[] if since else [("Normal", "Superseded", f"Superseded by {champ}")],
        requeue_after=None if drained else max(1.0, left),
        superseded_by=by,
    )


def _rollout(
    o: Observed,
    base: list[Cond],
    ready: bool,
    request: str | None,
    events: list[tuple[EventType, str, str]],
    timestamps: dict[str, str],
) -> Plan:
    """A new version on its way to champion: deploy, optionally canary, then promote."""
    s, spec, now, dep = o.status, o.spec, o.now, o.deployment
    want = spec.serving.size()
    canary = spec.serving.rollout.canary if spec.serving.rollout.strategy == "Canary" else None
    if dep is not None and dep.pod_failure:
        msg = f"server failed: {dep.pod_failure}"
        p = _stalled(
            "Failed",
            "ServerFailed",
            msg,
            *base,
            Cond("Deployed", "False", "ServerFailed", msg),
            ts="failed",
            now=now,
            event="ServerFailed",
        )
        p.replicas = None
        if canary is not None and canary.traffic == "gatewayAPI" and s.canary is not None:
            p.route = (canary.http_route or "", 0)  # the route must not send traffic to a dead canary
        return p
    in_canary = canary is not None and o.champion is not None and not request
    replicas = want
    if in_canary and canary is not None and o.champion is not None:
        step = _canary_step(o, canary, o.champion)
        replicas = step.canary_pods
        ready = dep is not None and dep.up_to_date and dep.ready_replicas >= replicas
        if s.timestamps.get("canaryStarted"):
            # Between steps the canary resizes: still the canary, waiting for its next split.
            return _canary(o, canary, base, _deployed(dep, replicas, ready), replicas, ready, want)
    if not ready:
        msg = f"deploying: {_replica_text(dep, replicas)}"
        return _progressing(
            "Deploying",
            "Deploying",
            msg,
            *base,
            Cond("Deployed", "False", "ReplicasNotReady", msg),
            Cond("Promoted", "False", "NotYet", "waiting for the deployment"),
            replicas=replicas,
            timestamps=_once(s, "deploying", now),
            pool=in_canary and canary is not None and canary.traffic == "replicas",
        )
    deployed = _deployed(dep, replicas, ready)
    if not s.timestamps.get("deployed"):
        timestamps["deployed"] = format_time(now)
        events.append(("Normal", "Deployed", f"Deployment ready with {replicas} replica(s)"))
    if in_canary and canary is not None:
        return _canary(o, canary, base, deployed, replicas, ready, want)
    if spec.promotion.mode == "Manual" and not request:
        msg = "deployed; waiting for manual promotion (annotate modelops.dev/promote or set spec.promotion.request)"
        return Plan(
            phase="Deploying",
            conditions=[
                *base,
                deployed,
                Cond("Promoted", "False", "AwaitingPromotion", msg),
                Cond("Ready", "False", "AwaitingPromotion", msg),
            ],
            message=msg,
            replicas=want,  # kept deployed while it waits: the approver may want to try it
        )
    why = f"promotion requested ({request})" if request else "gates passed; automatic promotion"
    return _promote_when_ready(o, base, ready, want, request, {}, phase="Deploying", why=why)


CANARY_POLL_SECONDS = 5.0
"""How often a canary's metrics are read while it is analysed."""


@dataclass(frozen=True)
class _Step:
    """Where a canary is: its step, that step's split, and whether the split is in effect."""

    index: int
    steps: int
    weight: int
    pause: float
    canary_pods: int
    stable_pods: int | None
    in_effect: bool
    effective: float | None
    entered: str | None
    started: str | None


def _canary_step(o: Observed, canary: Canary, champ: ChampionView, *, advance: bool = False) -> _Step:
    """The current step from status (a new champion starts over), and its split as observed."""
    schedule = canary.schedule()
    cs = o.status.canary
    same = cs is not None and cs.champion == champ.name and 1 <= cs.step <= len(schedule)
    index = cs.step if same and cs is not None else 1
    entered = cs.step_entered if same and cs is not None else None
    started = cs.step_started if same and cs is not None else None
    if advance:
        index, entered, started = index + 1, None, None
    weight, pause = schedule[index - 1]
    dep = o.deployment
    if canary.traffic == "replicas":
        recorded = (cs.canary_replicas, cs.stable_replicas) if same and cs is not None else (None, None)
        pods, stable = split_replicas(weight, split_total(champ.replicas, champ.autoscaled, recorded))
        cd = champ.deployment
        in_effect = (
            champ.pool
            and cd is not None
            and cd.replicas == stable
            and cd.ready_replicas == stable
            and dep is not None
            and dep.replicas == pods
            and dep.ready_replicas >= pods
            and dep.pool_pods >= pods
        )
        effective = share(dep.ready_replicas if dep else 0, cd.ready_replicas if cd else 0)
        return _Step(
            index, len(schedule), weight, pause, pods, stable, in_effect, effective, entered, started
        )
    want = _route_weights(o, champ, weight)
    seen = dict(o.route_weights) if o.route_weights is not None else None
    in_effect = seen == want and dep is not None and dep.ready_replicas >= canary.replicas
    effective = None if seen is None else float(seen.get(naming.version_service_name(o.name), 0))
    return _Step(
        index, len(schedule), weight, pause, canary.replicas, None, in_effect, effective, entered, started
    )


def _route_weights(o: Observed, champ: ChampionView, weight: int) -> dict[str, int]:
    stable = naming.stable_service_name(o.spec.model)
    return {stable: 100 - weight, naming.version_service_name(o.name): weight}


def _canary_status(
    canary: Canary,
    champ: ChampionView,
    step: _Step,
    now: datetime,
    analysis: str | None,
    weight: int | None = None,
) -> dict[str, Any]:
    entered = step.entered or format_time(now)
    started = step.started or (format_time(now) if step.in_effect else None)
    return {
        "step": step.index,
        "steps": step.steps,
        "progress": f"{step.index}/{step.steps}",
        "weight": step.weight if weight is None else weight,
        "effectiveWeight": None if step.effective is None else round(step.effective, 1),
        "traffic": canary.traffic,
        "champion": champ.name,
        "canaryReplicas": step.canary_pods if canary.traffic == "replicas" else None,
        "stableReplicas": step.stable_pods,
        "stepEntered": entered,
        "stepStarted": started,
        "analysis": analysis,
    }


def _canary(
    o: Observed, canary: Canary, base: list[Cond], deployed: Cond, replicas: int, ready: bool, want: int
) -> Plan:
    """One step at a time: bring the split into effect, analyse it for the step's pause, then the
    next step or promotion; a breach (or too little evidence) rolls back to 100/0 at once."""
    s, now = o.status, o.now
    assert o.champion is not None
    champ = o.champion
    started_canary = s.timestamps.get("canaryStarted")
    ts = _once(s, "canaryStarted", now)
    step = _canary_step(o, canary, champ)
    replicas_mode = canary.traffic == "replicas"
    route_name = canary.http_route or ""
    task = (s.training.task if s.training else None) or "classification"
    started = step.started or (format_time(now) if step.in_effect else None)
    if started is None:
        waited = _elapsed(step.entered, now) if step.entered else 0.0
        limit = step.pause * INCONCLUSIVE_FACTOR
        if waited >= limit:
            verdict = "fail"
            why = f"the traffic split of step {step.index} was not in effect after {waited:.0f}s"
        else:
            verdict, why = "wait", f"bringing {step.weight}% of traffic to the canary"
        if not replicas_mode and o.route_weights is None:
            why += f" (HTTPRoute {route_name} not found)"
    else:
        verdict, why = canary_verdict(canary, o.canary, _elapsed(started, now), step.pause, task)
    if verdict == "fail":
        msg = f"canary rolled back at step {step.index}/{step.steps}: {why}"
        p = _stalled(
            "Rejected",
            "CanaryFailed",
            msg,
            *base,
            Cond("Deployed", "False", "RolledBack", msg),
            Cond("Promoted", "False", "CanaryFailed", msg),
            event="CanaryRolledBack",
        )
        p.replicas = None
        p.timestamps = {**ts, "rolledBack": format_time(now), "rejected": format_time(now)}
        p.canary_status = {**_canary_status(canary, champ, step, now, why, weight=0), "effectiveWeight": 0}
        p.route = (route_name, 0) if not replicas_mode else None
        return p
    status = _canary_status(canary, champ, step, now, why)
    route = (route_name, step.weight) if not replicas_mode else None
    events: list[tuple[EventType, str, str]] = []
    if not started_canary:
        events.append(("Normal", "CanaryStarted", f"Canary beside champion {champ.name}"))
    if started and not step.started:
        events.append(
            (
                "Normal",
                "CanaryStep",
                f"Step {step.index}/{step.steps}: {step.weight}% of traffic to the canary",
            )
        )
    if verdict == "pass" and step.index < step.steps:
        # Planned as the next step's first pass plans it, so the echo of this write decides nothing new.
        nxt = _canary_step(o, canary, champ, advance=True)
        entered = CanaryStatus.model_validate(_canary_status(canary, champ, nxt, now, None))
        then = replace(o, status=s.model_copy(update={"canary": entered}))
        dep = o.deployment
        grown = dep is not None and dep.up_to_date and dep.ready_replicas >= nxt.canary_pods
        p = _canary(then, canary, base, _deployed(dep, nxt.canary_pods, grown), nxt.canary_pods, grown, want)
        passed = f"Step {step.index}/{step.steps} passed ({why}); next {nxt.weight}% of traffic"
        p.events = [*events, ("Normal", "CanaryStepPassed", passed), *p.events]
        p.timestamps = {**ts, **p.timestamps}
        return p
    if verdict == "wait" or o.spec.promotion.mode == "Manual":
        waiting = verdict == "wait"
        msg = (
            f"canary step {step.index}/{step.steps} at {step.weight}%: {why}"
            if waiting
            else f"canary passed ({why}); waiting for manual promotion"
        )
        return _progressing(
            "Canary",
            "Canary",
            msg,
            *base,
            deployed,
            Cond("Promoted", "False", "Analysing" if waiting else "AwaitingPromotion", msg),
            replicas=replicas,
            timestamps=ts,
            events=events,
            requeue_after=CANARY_POLL_SECONDS if waiting else None,
            canary_status=status,
            pool=replicas_mode,
            route=route,
        )
    p = _promote_when_ready(o, [*base], ready, want, None, ts, phase="Canary", why=f"canary passed: {why}")
    p.events = [*events, *p.events]
    p.canary_status = status
    p.pool = replicas_mode
    # Promoted: the stable Service now points at this version; the route sends it everything.
    p.route = (route_name, 0 if p.promote else step.weight) if not replicas_mode else None
    return p


# --- the plan ---------------------------------------------------------------------------------------


HISTORY_LIMIT = 20
AUDITED = {
    "Promoting": "Promoted",
    "ChampionChangedByHand": "RolledBack",
    "Rejected": "Rejected",
    "CanaryRolledBack": "Rejected",
    "TrainingFailed": "Failed",
    "DataQualityFailed": "Failed",
    "SearchFailed": "Failed",
    "ServerFailed": "Failed",
    "Retired": "Retired",
}
"""Event reasons that are decisions worth an audit line, and the decision each records."""


def _audit(o: Observed, p: Plan) -> None:
    """One history entry per audited Event, with the same words; promotions say who asked."""
    request = o.promotion_request if o.promotion_request != o.status.handled_promotion else None
    events = []
    for kind, reason, msg in p.events:
        decision = AUDITED.get(reason)
        if decision is None:
            events.append((kind, reason, msg))
            continue
        by, approved = "operator", None
        if reason == "Promoting":
            if o.status.timestamps.get("promoted"):
                decision = "RolledBack"
            if request:
                by = request + (f" (field manager {o.requested_by})" if o.requested_by else "")
                approved = o.approved_by
                msg += f"; requested by {by}" + (f", approved by {approved}" if approved else "")
        events.append((kind, reason, msg))
        entry = {"time": format_time(o.now), "decision": decision, "reason": reason, "message": msg, "by": by}
        if approved:
            entry["approvedBy"] = approved
        p.history.append(entry)
    p.events = events


def plan(o: Observed) -> Plan:
    """Everything the version should look like now, from what is observed; the stages in order."""
    p = _plan(o)
    _audit(o, p)
    p.primary_metric = primary_metric(o.spec, o.status.training.metrics if o.status.training else {})
    p.comparison = comparison_verdict(o.spec, o.status.training.comparison if o.status.training else None)
    p.ready_replicas = o.deployment.ready_replicas if o.deployment else 0
    p.autoscale = autoscale_bounds(o, p)
    p.champion_seen = o.champion.name if o.champion else None
    return p


SLOT_WAIT = "WaitingForServiceSlot"


def waiting_for_service_slot(p: Plan, why: str) -> Plan | None:
    """What to record when acting on `p` stopped at a Service creation with no slot free (`why`):
    a deploying version says it is deployed but waits for its Service, instead of keeping the
    phase of its last completed pass (in a burst, `Training` for 40 minutes while its pods ran).
    None when the plan promotes or is past deploying: it must not claim what has not happened."""
    if p.phase != "Deploying" or p.promote:
        return None
    msg = f"{p.message}; waiting for a Service creation slot ({why})"
    conditions = [
        Cond(c.type, c.status, SLOT_WAIT, msg) if c.type in ("Ready", "Reconciling") else c
        for c in p.conditions
    ]
    return replace(p, message=msg, conditions=conditions)


def autoscale_bounds(o: Observed, p: Plan) -> tuple[int, int] | None:
    """The HPA an autoscaled version has now: the spec's bounds while it serves on its own; one size
    twice while the operator sizes it (a canary beside a champion, the champion sharing with a
    replicas canary), so the HPA holds that size and nobody else writes the Deployment's replicas;
    none while it should have no pods (scaled down, retired, failed): an HPA cannot scale to 0."""
    auto = o.spec.serving.autoscaling
    if auto is None or not p.replicas:
        return None
    canary = (
        o.spec.serving.rollout.strategy == "Canary"
        and o.champion is not None
        and not p.champion
        and p.phase in ("Deploying", "Canary")
    )
    if canary or p.stable_pool:
        return (p.replicas, p.replicas)
    return (auto.min_replicas, auto.max_replicas)


def _plan(o: Observed) -> Plan:
    s, spec = o.status, o.spec
    # The stable Service is owned state. Missing, or selecting something that is not a servable
    # version of this model (no champion is observed then): the champion on record restores it.
    restore = o.champion is None and s.champion and s.phase == "Serving"
    is_champion = restore or (o.champion is not None and o.champion.name == o.name)
    if s.phase in ("Failed", "Rejected") and not is_champion:
        msg = s.message or s.phase
        stalled = next((c for c in s.conditions if c.type == "Stalled"), None)
        p = _stalled(s.phase, stalled.reason if stalled else s.phase, msg)  # as the stopping pass said it
        p.canary_status = s.canary.wire() if s.canary else None  # a rolled-back canary keeps its record
        return p

    trained = _training(o)
    if isinstance(trained, Plan):
        return trained
    validated = _validation(o, trained, is_champion)
    if isinstance(validated, Plan):
        return validated

    base = [trained.cond, validated]
    request = (
        o.promotion_request if o.promotion_request and o.promotion_request != s.handled_promotion else None
    )
    dep, want = o.deployment, spec.serving.size()
    ready = dep is not None and dep.up_to_date and dep.ready_replicas >= max(1, min(want, dep.replicas))
    metrics = trained.status.training.metrics if trained.status.training else {}

    if spec.retired and not is_champion:
        p = _retired(o, base)
    elif is_champion:
        p = _serving(o, base, ready, request, primary_metric(spec, metrics))
        if restore:
            # Promote again at once, whatever the replica count: serving a little beats serving nothing.
            what = f"stable Service {naming.stable_service_name(spec.model)} was missing or pointed elsewhere"
            p.promote = True
            p.events.append(
                ("Warning", "StableServiceRestored", f"Restored: {what}; {o.name} is the champion")
            )
        elif o.champion is not None and o.champion.recorded not in (None, o.name):
            # Someone pointed the Service at this (valid) version by hand: a rollback, recorded as one.
            p.promote = True
            p.events.append(
                (
                    "Normal",
                    "ChampionChangedByHand",
                    f"The stable Service was pointed at {o.name}: recorded as a rollback",
                )
            )
    elif s.timestamps.get("promoted"):
        p = _superseded(o, base, ready, request)
    else:
        p = _rollout(o, base, ready, request, trained.events, trained.timestamps)
    p.events = [*trained.events, *p.events]
    p.timestamps = {**trained.timestamps, **p.timestamps}
    return p


def _promote_when_ready(
    o: Observed,
    base: list[Cond],
    ready: bool,
    want: int,
    request: str | None,
    ts: dict[str, str],
    *,
    phase: Phase,
    why: str,
) -> Plan:
    """Scale to the serving size, and once ready take the stable Service (Manual mode with
    requireApproval: only once someone is named in modelops.dev/approved-by).

    The pass that takes the Service records `promoted`: a candidate that loses the Service to a
    sibling promoted just after it is then Superseded, as any former champion is. Recorded only
    once it saw itself champion, candidates of one model validated at once took the Service from
    each other for as long as they ran (a burst of 10 per model did so for 15 minutes)."""
    dep = o.deployment
    promo = o.spec.promotion
    if request and promo.mode == "Manual" and promo.require_approval and not o.approved_by:
        msg = f"{why}; waiting for approval: annotate {naming.ANNOTATION_APPROVED_BY}=<who>"
        return _progressing(
            phase,
            "AwaitingApproval",
            msg,
            *base,
            Cond(
                "Deployed",
                "True" if ready else "False",
                "ReplicasReady" if ready else "ReplicasNotReady",
                _replica_text(dep, want),
            ),
            Cond("Promoted", "False", "AwaitingApproval", msg),
            replicas=dep.replicas if dep else 0,
            timestamps=ts,
        )
    full = ready and dep is not None and dep.replicas >= want
    msg = f"promoting: {why}" if full else f"{why}; scaling to {want} replica(s) before promotion"
    deployed = (
        Cond("Deployed", "True", "ReplicasReady", _replica_text(dep, want))
        if full
        else Cond("Deployed", "False", "ReplicasNotReady", _replica_text(dep, want))
    )
    return _progressing(
        phase,
        "Promoting",
        msg,
        *base,
        deployed,
        Cond("Promoted", "False", "Promoting", msg),
        replicas=want,
        promote=full,
        handled_promotion=request if full else None,
        timestamps={**ts, **_episode(o.status, "promoted", after="superseded", now=o.now)} if full else ts,
        events=[("Normal", "Promoting", msg)] if full else [],
    )


def _deployed(dep: DeploymentView | None, replicas: int, ready: bool) -> Cond:
    if ready:
        return Cond("Deployed", "True", "ReplicasReady", _replica_text(dep, replicas))
    return Cond("Deployed", "False", "ReplicasNotReady", _replica_text(dep, replicas))


def _replica_text(dep: DeploymentView | None, want: int) -> str:
    """The same words before and after this pass applies the Deployment: its echo changes nothing."""
    return f"{dep.ready_replicas if dep else 0}/{want} replicas ready"


def _cond_message(conds: list[dict[str, object]], type_: str) -> str:
    c = next((c for c in conds if c.get("type") == type_), None)
    return str(c.get("message", "")) if c else ""


# --- the status the plan describes ------------------------------------------------------------------


def status_patch(
    p: Plan,
    current: Mapping[str, Any],
    *,
    namespace: str,
    name: str,
    generation: int | None,
    now: str,
    model: str | None = None,
) -> dict[str, Any]:
    """The minimal merge patch of status that records `p`; empty when nothing changed.

    Conditions keep their lastTransitionTime unless their status flips; timestamps only
    ever gain keys; the serving block is removed when nothing serves.
    """
    conds = apply_conditions(current.get("conditions") or [], p.conditions, generation=generation, now=now)
    desired: dict[str, Any] = {
        "phase": p.phase,
        "message": p.message,
        "observedGeneration": generation,
        "conditions": conds,
        "champion": p.champion,
        "primaryMetric": p.primary_metric,
        "comparison": p.comparison.wire() if p.comparison else None,
        "timestamps": p.timestamps or None,
        "handledPromotion": p.handled_promotion,
        "serving": None,
        "canary": p.canary_status,
        "supersededBy": p.superseded_by,
    }
    if not p.timestamps:
        del desired["timestamps"]
    if p.handled_promotion is None:
        del desired["handledPromotion"]
    if p.history:
        desired["history"] = [*(current.get("history") or []), *p.history][-HISTORY_LIMIT:]
    if p.replicas is not None:
        svc = naming.version_service_name(name)
        desired["serving"] = {
            "deployment": naming.deployment_name(name),
            "service": svc,
            "endpoint": f"http://{svc}.{namespace}.svc",
            "replicas": p.replicas,
            "readyReplicas": p.ready_replicas,
            "card": f"http://{svc}.{namespace}.svc/v2/models/{model}/card" if model else None,
        }
    return merge_diff(current, desired)
