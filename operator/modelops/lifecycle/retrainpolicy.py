"""The RetrainPolicy's decisions as pure functions: what is observed in, what to do out.

`plan()` is level-based like the ModelVersion planner: it never asks which event woke it.
The controller observes (the policy, the champion, the model's versions, and, when
`evaluation_due`, a fresh evaluation from Prometheus), calls `plan()`, then acts in this
order, which makes a crash at any point safe:

1. write `plan.status` (a merge patch of status, wire keys) and the conditions;
2. create-or-adopt `plan.child` (deterministic name, ownerReference to the policy);
3. delete `plan.delete` (retention);
4. plan again without an evaluation: the child now exists, so `pending` is committed to
   `lastTrigger` and `history`.

A trigger is first written as `status.pending` (write-ahead) and only then created: if the
operator dies in between, the next plan sees `pending` and re-creates the same child
(same name) instead of deciding anew, so one decision yields exactly one ModelVersion.

Decisions and why:
- Reasons in priority order manual > drift > performance > schedule; the first due wins, the
  others are named in the trigger's detail. A trigger that fires while the schedule is due
  also satisfies the schedule (no second retrain right after).
- Drift and performance act only on a fresh, successful evaluation in this very pass: a
  Prometheus error or an Unknown result never triggers. The drifted counter goes +1 on
  Drifted, back to 0 on Stable, stays on Unknown or error, is reset by a trigger and when
  the champion changes (its history was about another model).
- Cooldown counts from the later of the last trigger and the moment a child of this policy
  was Rejected or Failed, so a bad child does not cause an immediate new one even when its
  training took longer than the cooldown. A manual request bypasses cooldown (a person
  asked) but not `maxConcurrent`, `suspend`, a missing champion or a broken template.
- Manual requests and schedules do not need Prometheus, so they still act while it is down.
- No champion: nothing to evaluate or retrain from; requests wait and the condition says so.
- `suspend`: evaluate and report, never trigger; due triggers wait (a manual request stays
  unhandled until the policy is resumed).
- History is newest first, bounded to `HISTORY_LIMIT`.
- Warm-up: until one full window has passed since the policy was created or the champion was
  promoted, evaluations are reported (`Evaluated` reason `WarmingUp`) but neither drift nor
  performance counts: the window still holds traffic from before, or too little of it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from croniter import croniter

from modelops.api.base import format_time, try_parse_time
from modelops.api.modelversion import ModelVersionSpec
from modelops.api.retrainpolicy import (
    Deletion,
    RetrainPolicySpec,
    RetrainPolicyStatus,
    ScheduleTrigger,
    Template,
    Trigger,
)
from modelops.drift.evaluate import DriftEvaluation, OnlineEval
from modelops.drift.promql import seconds

from .conditions import Cond, find
from .datasets import NEEDS_NEW_DATA, Resolution, is_dynamic, same_data, sample, template_error
from .naming import child_name
from .patches import merge_patch

HISTORY_LIMIT = 20
IN_FLIGHT = ("Pending", "Training", "Deploying", "Canary")
"""Phases of a child that count against `maxConcurrent` (and that retention never touches)."""
RETIRED = ("Superseded", "Retired")
FAILED = ("Rejected", "Failed")
EVALUATION_SLACK = 1.0
"""Seconds of timer jitter tolerated when deciding that an evaluation is due."""
MAX_BACKOFF_EXPONENT = 3
"""After failed evaluations, the next one waits interval x 2^n, n at most this (8x)."""

Reason = Literal["manual", "drift", "performance", "schedule"]
EventType = Literal["Normal", "Warning"]
PROMETHEUS_UNREACHABLE = "PrometheusUnreachable"


# --- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Champion:
    """The version the model's stable Service points at: what children are made from."""

    name: str
    spec: ModelVersionSpec
    metrics: Mapping[str, float] = field(default_factory=dict)
    dataset_digest: str | None = None
    """sha256 of the data it was trained on: a drift retrain on the same bytes is pointless."""
    best_params: Mapping[str, Any] | None = None
    """The parameters its search chose (status.training.search.bestParams), if it searched."""


@dataclass(frozen=True)
class VersionView:
    """One ModelVersion of the policy's model, as far as retraining and retention care."""

    name: str
    phase: str = "Pending"
    """status.phase; a child whose status is not written yet is Pending."""
    created: datetime | None = None
    parent: str | None = None
    owned: bool = False
    """Has an ownerReference to this policy (a child the policy made)."""
    champion: bool = False
    """status.champion: true while it serves as champion (also mid-promotion)."""
    timestamps: Mapping[str, str] = field(default_factory=dict)
    """status.timestamps (superseded, retired, rejected, failed, ...)."""
    deleting: bool = False
    """metadata.deletionTimestamp is set."""
    promotion_requested: bool = False
    """An unhandled promotion (rollback) request is on it: retention keeps it."""
    gitops_managed: bool = False
    """Applied by a GitOps tool (Argo CD tracking): deleting it would only make the tool re-create and retrain it."""


@dataclass(frozen=True)
class Evaluation:
    """One evaluation against Prometheus: results, or the error that prevented them."""

    drift: DriftEvaluation | None = None
    online: OnlineEval | None = None
    error: str | None = None


@dataclass(frozen=True)
class Observed:
    name: str
    uid: str
    spec: RetrainPolicySpec
    status: RetrainPolicyStatus
    now: datetime
    created: datetime
    """The policy's creationTimestamp: the schedule's first anchor."""
    champion: Champion | None = None
    versions: Sequence[VersionView] = ()
    """Every ModelVersion of spec.model."""
    evaluation: Evaluation | None = None
    """None when no evaluation ran in this pass (see `evaluation_due`)."""
    retrain_request: str | None = None
    """The value of the annotation modelops.dev/retrain."""
    resolution: Resolution | None = None
    """What the resolve Job of the pending trigger's child reported; None while it has not finished."""


# --- outputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Child:
    """A ModelVersion to create or adopt, with an ownerReference to the policy."""

    name: str
    spec: ModelVersionSpec
    trigger: Trigger


@dataclass(frozen=True)
class Resolve:
    """A resolve Job to run: turn the data URI (template) into one URI and its digest."""

    child: str
    uri: str
    at: str
    """The trigger time, RFC 3339: fills the template's strftime fields."""


@dataclass
class Plan:
    status: dict[str, Any]
    """A merge patch of status with wire (camelCase) keys; a None value deletes the key."""
    conditions: list[Cond]
    message: str
    child: Child | None = None
    delete: list[str] = field(default_factory=list)
    """ModelVersions retention removes, oldest first."""
    delete_artifacts: bool = False
    release: list[str] = field(default_factory=list)
    """Children promoted to champion whose ownerReference to the policy is to be dropped."""
    events: list[tuple[EventType, str, str]] = field(default_factory=list)
    requeue_after: float | None = None
    resolve: Resolve | None = None
    """The resolve Job that must exist (the pending child's data is not known yet)."""


# --- small pure helpers -------------------------------------------------------------------------


def sequence(status: RetrainPolicyStatus) -> int:
    """Triggers so far (status.sequence); never decreases, unlike the bounded history."""
    raw = status.sequence
    try:
        value = int(raw or 0)
    except (TypeError, ValueError):
        value = 0
    return max(value, len(status.history))


def evaluation_period(spec: RetrainPolicySpec, status: RetrainPolicyStatus) -> float:
    """The interval, doubled for each failed evaluation in a row: an unreachable Prometheus is not hammered."""
    return seconds(spec.interval) * 2 ** min(status.evaluation_failures, MAX_BACKOFF_EXPONENT)


def evaluation_due(spec: RetrainPolicySpec, status: RetrainPolicyStatus, now: datetime) -> bool:
    """Whether to query Prometheus in this pass: once per period, whatever woke the handler."""
    last = try_parse_time(status.last_evaluation_time)
    if last is None:
        return True
    period = evaluation_period(spec, status)
    return (now - last).total_seconds() >= period - min(EVALUATION_SLACK, 0.05 * period)


class NeedsTraining(ValueError):
    """The champion was imported and the template does not say how to train a child."""


def child_spec(champion: Champion, template: Template, dataset_uri: str | None = None) -> ModelVersionSpec:
    """The child's spec: the champion's, with the template applied, and `parent` set.

    Order: `template.spec` as a JSON merge patch over the whole spec (wire keys), then
    `datasetUri`, the search (`template.search`, or the champion's best parameters in place of
    its search), and `params` (shallow merge over the estimator's params, so a param may be
    set to null, as scikit-learn allows). The named fields win over the patch. `model` and
    `parent` are forced; `retired` and the champion's promotion request are never inherited.
    Validation and promotion settings stay the champion's unless the patch changes them.
    `dataset_uri` is the resolved data (see `datasets`); without it a template is checked with a
    sample URI of its shape. Raises ValueError (pydantic's ValidationError) when the result is
    not a valid spec.
    """
    body: Any = copy.deepcopy(champion.spec.wire())
    # Children are trained here: an imported champion's source is not inherited, and how to train
    # must then come from the template.
    imported = body.pop("source", None) is not None
    if template.spec:
        body = merge_patch(body, template.spec)
    if imported and not (isinstance(body, dict) and isinstance(body.get("training"), dict)):
        raise NeedsTraining(
            f"champion {champion.name} was imported (spec.source), so it has no training to repeat: "
            "set template.spec.training (dataset and estimator) to say how its children are trained"
        )
    if not isinstance(body, dict) or not isinstance(body.get("training"), dict):
        raise ValueError("template.spec must leave spec.training an object")
    training = body["training"]
    uri = dataset_uri or template.dataset_uri
    if uri and dataset_uri is None and is_dynamic(uri):
        if error := template_error(uri):
            raise ValueError(f"template.datasetUri {uri!r}: {error}")
        uri = sample(uri)
    if uri:
        if not isinstance(training.get("dataset"), dict):
            raise ValueError("template.spec must leave spec.training.dataset an object")
        training["dataset"]["uri"] = uri
    patched_search = isinstance(template.spec, dict) and "search" in (template.spec.get("training") or {})
    if template.search is not None:
        training["search"] = template.search.wire()
    elif training.get("search") and champion.best_params is not None and not patched_search:
        # Reuse the parent's search instead of repeating it: its best parameters, fixed.
        estimator = training.get("estimator")
        if not isinstance(estimator, dict):
            raise ValueError("template.spec must leave spec.training.estimator an object")
        estimator["params"] = {**(estimator.get("params") or {}), **champion.best_params}
        del training["search"]
    if template.params:
        estimator = training.get("estimator")
        if not isinstance(estimator, dict):
            raise ValueError("template.spec must leave spec.training.estimator an object")
        estimator["params"] = {**(estimator.get("params") or {}), **template.params}
    body["model"] = champion.spec.model
    body["parent"] = champion.name
    body["retired"] = False
    if isinstance(body.get("promotion"), dict):
        body["promotion"].pop("request", None)
    return ModelVersionSpec.model_validate(body)


def next_schedule_time(schedule: ScheduleTrigger, anchor: datetime) -> datetime:
    """The first scheduled time after `anchor`; cron expressions are read in UTC.

    Raises ValueError for a cron expression croniter cannot parse.
    """
    anchor = anchor.astimezone(UTC)
    if schedule.every:
        return anchor + timedelta(seconds=seconds(schedule.every))
    if schedule.cron:
        if not croniter.is_valid(schedule.cron):
            raise ValueError(f"schedule.cron {schedule.cron!r} is not a valid cron expression")
        nxt = croniter(schedule.cron, anchor).get_next(datetime)
        return nxt if nxt.tzinfo else nxt.replace(tzinfo=UTC)
    raise ValueError("schedule needs every or cron")


def _triggers(status: RetrainPolicyStatus) -> list[Trigger]:
    """Every recorded trigger, newest first (pending, last, history)."""
    out = [t for t in (status.pending, status.last_trigger) if t is not None]
    return out + list(status.history)


def schedule_anchor(status: RetrainPolicyStatus, created: datetime) -> datetime:
    """When the schedule last counted as satisfied: status.lastScheduleTime, else the newest
    schedule trigger on record, else the policy's creation."""
    t = try_parse_time(status.last_schedule_time)
    if t is not None:
        return t
    for trig in _triggers(status):
        if trig.reason == "schedule" and (t := try_parse_time(trig.time)) is not None:
            return t
    return created


def in_flight(versions: Sequence[VersionView]) -> list[VersionView]:
    """Children of this policy still on their way (they count against maxConcurrent)."""
    return [v for v in versions if v.owned and v.phase in IN_FLIGHT and not v.deleting]


def cooldown_until(
    spec: RetrainPolicySpec, status: RetrainPolicyStatus, versions: Sequence[VersionView]
) -> datetime | None:
    """End of the cooldown: `cooldown` after the later of the last trigger and the last child
    of this policy that was Rejected or Failed. None when nothing ever happened."""
    recent = [*_triggers(status)[:2], *([status.last_skipped] if status.last_skipped else [])]
    times = [t for trig in recent if (t := try_parse_time(trig.time)) is not None]
    for v in versions:
        if v.owned and v.phase in FAILED:
            times += [t for k in ("rejected", "failed") if (t := try_parse_time(v.timestamps.get(k)))]
    if not times:
        return None
    return max(times) + timedelta(seconds=seconds(spec.cooldown))


def _version_time(v: VersionView, keys: Sequence[str]) -> datetime:
    for k in keys:
        if (t := try_parse_time(v.timestamps.get(k))) is not None:
            return t
    return v.created or datetime.min.replace(tzinfo=UTC)


def rollback_target(versions: Sequence[VersionView], champion: str | None) -> str | None:
    """The previous champion, i.e. the superseded version promoted most recently: what a rollback promotes."""
    superseded = [v for v in versions if v.phase == "Superseded" and v.name != champion]
    if not superseded:
        return None
    return max(superseded, key=lambda v: _version_time(v, ("promoted", "superseded"))).name


def released(versions: Sequence[VersionView]) -> list[str]:
    """Children that were ever champion: the policy lets go of them.

    Ownership model: a child is the policy's (ownerReference, so deleting the policy collects
    it, and GitOps tools show it as generated) only while it is a candidate. Once promoted it
    belongs to the model: deleting the policy must never take down the champion or a rollback
    target. Retention still finds such versions by model, as it does versions a person made.
    """
    return sorted(
        v.name
        for v in versions
        if v.owned and not v.deleting and (v.champion or v.timestamps.get("promoted"))
    )


def retention_victims(versions: Sequence[VersionView], keep_retired: int, champion: str | None) -> list[str]:
    """ModelVersions retention deletes, oldest first.

    Superseded/Retired versions beyond the newest `keep_retired` (by superseded/retired
    time, else creation). Rejected/Failed versions *made by this policy* are kept the same
    way (the newest `keep_retired` of them stay for inspection), so failed retrains do not
    pile up; Rejected/Failed versions a person created are never touched. Never deleted: the
    champion (by name or by status), the rollback target, anything in flight, a version with
    a promotion request, one already being deleted, one a GitOps tool manages (remove it from Git). No champion → nothing is deleted: a
    model without a champion may need any of its old versions.
    """
    if champion is None:
        return []
    protected = {champion, rollback_target(versions, champion)}
    protected |= {
        v.name for v in versions if v.champion or v.promotion_requested or v.deleting or v.gitops_managed
    }
    victims: list[tuple[datetime, str]] = []
    groups = (
        ([v for v in versions if v.phase in RETIRED], ("superseded", "retired")),
        ([v for v in versions if v.phase in FAILED and v.owned], ("rejected", "failed")),
    )
    for group, keys in groups:
        ranked = sorted(
            (v for v in group if v.name != champion and not v.deleting),
            key=lambda v: _version_time(v, keys),
            reverse=True,
        )
        victims += [
            (_version_time(v, keys), v.name) for v in ranked[keep_retired:] if v.name not in protected
        ]
    return [name for _, name in sorted(victims)]


# --- the plan -----------------------------------------------------------------------------------


def _features_patch(status: RetrainPolicyStatus, drift: DriftEvaluation) -> dict[str, Any]:
    out: dict[str, Any] = {name: None for name in status.features if name not in drift.features}
    out.update({name: f.wire() for name, f in drift.features.items()})
    return out


def warm_up_until(o: Observed) -> datetime | None:
    """The end of the first full window after the policy's creation or the champion's promotion, if still ahead."""
    start = o.created
    if o.champion is not None:
        view = next((v for v in o.versions if v.name == o.champion.name), None)
        promoted = try_parse_time(view.timestamps.get("promoted")) if view is not None else None
        if promoted is not None and promoted > start:
            start = promoted
    until = start + timedelta(seconds=seconds(o.spec.window))
    return until if o.now < until else None


@dataclass
class _Evaluated:
    """What one pass learned from Prometheus (or remembered about it)."""

    counter: int
    drift_due: str | None = None
    performance_due: str | None = None
    prom_error: str | None = None
    conditions: list[Cond] = field(default_factory=list)
    events: list[tuple[EventType, str, str]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)


def _evaluate(o: Observed, prev_eval: Mapping[str, Any] | None) -> _Evaluated:
    """Fold this pass's evaluation into the drifted counter, status and conditions.

    Drifted +1, Stable back to 0, Unknown or an error unchanged; a new champion starts over.
    Drift and performance are due only on a fresh, successful evaluation.
    """
    spec, st, champ, model = o.spec, o.status, o.champion, o.spec.model
    drift_trigger = spec.triggers.drift
    counter = st.consecutive_drifted if champ is not None and st.champion == champ.name else 0
    out = _Evaluated(counter=counter)
    ev = o.evaluation if champ is not None else None
    was_down = bool(prev_eval and prev_eval.get("reason") == PROMETHEUS_UNREACHABLE)
    if ev is None:
        if champ is None:
            out.conditions.append(Cond("Evaluated", "False", "NoChampion", f"no champion for model {model}"))
        elif was_down and prev_eval is not None:
            out.prom_error = str(prev_eval.get("message") or "Prometheus unreachable")
    elif ev.error:
        out.status["lastEvaluationTime"] = format_time(o.now)
        out.status["evaluationFailures"] = st.evaluation_failures + 1
        out.prom_error = ev.error
        retry = evaluation_period(
            spec, st.model_copy(update={"evaluation_failures": st.evaluation_failures + 1})
        )
        out.conditions.append(
            Cond("Evaluated", "False", PROMETHEUS_UNREACHABLE, f"{ev.error} (next try in {retry:.0f}s)")
        )
        if not was_down:
            out.events.append(("Warning", PROMETHEUS_UNREACHABLE, f"Cannot evaluate {model}: {ev.error}"))
    else:
        out.status["lastEvaluationTime"] = format_time(o.now)
        out.status["evaluationFailures"] = 0
        if was_down:
            out.events.append(("Normal", "PrometheusReachable", f"Evaluating {model} again"))
        parts: list[str] = []
        drifted = healthy = False
        warming = warm_up_until(o)
        if warming is not None:
            parts.append(f"warming up until {format_time(warming)} (one window after creation or promotion)")
        if drift_trigger is not None:
            d = ev.drift
            result = d.result if d is not None and warming is None else "Unknown"
            if result == "Drifted":
                out.counter += 1
                drifted = True
            elif result == "Stable":
                out.counter = 0
                healthy = True
            if d is None:
                parts.append("drift not evaluated")
            else:
                out.status["features"] = _features_patch(st, d)
                out.status["lastDriftScore"] = None if d.max_score is None else round(d.max_score, 6)
                streak = f" ({out.counter}/{drift_trigger.consecutive})" if drifted else ""
                parts.append(f"drift {d.summary()}{streak}")
                if drifted and out.counter == 1:
                    out.events.append(("Warning", "DriftDetected", _clip(f"{model}: {d.summary()}")))
                if drifted and out.counter >= drift_trigger.consecutive:
                    out.drift_due = f"{d.summary()}; {out.counter} drifted evaluation(s) in a row"
        if ev.online is not None:
            out.status["online"] = ev.online.wire()
            parts.append(ev.online.summary())
            healthy = healthy or ev.online.result == "Healthy"
            if spec.triggers.performance is not None and ev.online.result == "Breached" and warming is None:
                out.performance_due = ev.online.summary()
                if (st.online or {}).get("result") != "Breached":
                    out.events.append(("Warning", "PerformanceDegraded", f"{model}: {ev.online.summary()}"))
        if warming is not None:
            reason = "WarmingUp"
        elif drifted:
            reason = "Drifted"
        elif out.performance_due:
            reason = "PerformanceDegraded"
        else:
            reason = "Healthy" if healthy else "InsufficientData"
        out.conditions.append(Cond("Evaluated", "True", reason, "; ".join(parts) or "nothing to evaluate"))
    if drift_trigger is None:
        out.counter = 0
    return out


def plan(o: Observed) -> Plan:
    """Everything the policy should do now; see the module docstring for the order of acting.

    Four stages: evaluate (Prometheus's answer folded into the drifted counter), check the
    configuration, then either finish the pending decision or take a new one, and say so.
    """
    st, champ = o.status, o.champion
    ev = _evaluate(o, find([c.model_dump(by_alias=True) for c in st.conditions], "Evaluated"))
    cfg = _configuration(o)
    flying = in_flight(o.versions)
    step = _finish_pending(o, cfg) if st.pending is not None else _decide(o, ev, cfg, flying)
    patch: dict[str, Any] = {"champion": champ.name if champ else None, **ev.status, **step.patch}
    patch["consecutiveDrifted"] = 0 if step.decided else ev.counter
    victims = retention_victims(o.versions, o.spec.retention.keep_retired, champ.name if champ else None)
    if deletions := _deletions(o, victims):
        patch["deletions"] = deletions
    message, conds, events = _readiness(o, ev, cfg, step, flying)
    return Plan(
        status=patch,
        conditions=[*ev.conditions, *conds],
        message=message,
        child=step.child,
        delete=victims,
        release=released(o.versions),
        delete_artifacts=o.spec.retention.delete_artifacts,
        events=[*ev.events, *step.events, *events],
        requeue_after=_requeue(o, step, patch),
        resolve=step.resolve,
    )


def _deletions(o: Observed, victims: list[str]) -> list[dict[str, Any]] | None:
    """status.deletions with this pass's victims appended (written before they are deleted, so a
    crash in between records each once: the next pass finds the same victims already there)."""
    recorded = {d.version for d in o.status.deletions}
    new = [v for v in victims if v not in recorded]
    if not new:
        return None
    retention, phases = o.spec.retention, {v.name: v.phase for v in o.versions}
    entries = [d.wire() for d in o.status.deletions] + [
        Deletion(
            time=format_time(o.now),
            version=v,
            artifacts=retention.delete_artifacts,
            reason=f"{phases.get(v)} beyond retention.keepRetired ({retention.keep_retired})",
        ).wire()
        for v in new
    ]
    return entries[-HISTORY_LIMIT:]


@dataclass
class _Config:
    """What of the spec can only be checked against the champion and the clock."""

    error: tuple[str, str] | None = None
    """(reason, message) of a template or schedule that cannot work."""
    child_spec: ModelVersionSpec | None = None
    next_scheduled: datetime | None = None


def _configuration(o: Observed) -> _Config:
    cfg = _Config()
    if o.champion is not None:
        try:
            cfg.child_spec = child_spec(o.champion, o.spec.template)
        except NeedsTraining as e:
            cfg.error = ("TemplateNeedsTraining", str(e))
        except ValueError as e:
            cfg.error = ("InvalidTemplate", f"template does not make a valid ModelVersion: {_first_line(e)}")
    schedule = o.spec.triggers.schedule
    if schedule is not None:
        try:
            cfg.next_scheduled = next_schedule_time(schedule, schedule_anchor(o.status, o.created))
        except ValueError as e:
            cfg.error = cfg.error or ("InvalidSchedule", str(e))
    return cfg


@dataclass
class _Step:
    """What this pass does about retraining: the pending decision's progress, or a new one."""

    child: Child | None = None
    resolve: Resolve | None = None
    skipped: Trigger | None = None
    committed: bool = False
    """The pending child exists: the decision moved to lastTrigger and history."""
    decided: bool = False
    """A new retrain was decided (written ahead as `pending`)."""
    next_scheduled: datetime | None = None
    patch: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[EventType, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _finish_pending(o: Observed, cfg: _Config) -> _Step:
    """Finish the decision written ahead before deciding anything new: commit it once its child
    exists, else create the child (resolving its data first if need be), or abandon it."""
    st, champ = o.status, o.champion
    pending = st.pending
    assert pending is not None
    if any(v.name == pending.child for v in o.versions):
        history = [pending, *(h for h in st.history if h.child != pending.child)][:HISTORY_LIMIT]
        return _Step(
            committed=True,
            next_scheduled=cfg.next_scheduled,
            patch={"pending": None, "lastTrigger": pending.wire(), "history": [h.wire() for h in history]},
        )
    if cfg.child_spec is not None and champ is not None:
        step = _pending_data(o, pending, champ, cfg.child_spec)
        step.next_scheduled = cfg.next_scheduled
        return step
    why = cfg.error[1] if cfg.error else f"no champion for model {o.spec.model}"
    return _Step(
        next_scheduled=cfg.next_scheduled,
        patch={"pending": None},
        events=[("Warning", "RetrainAbandoned", f"Not creating {pending.child}: {why}")],
    )


def _due(o: Observed, ev: _Evaluated, cfg: _Config) -> list[tuple[Reason, str]]:
    """The retrains due now, in priority order: manual > drift > performance > schedule."""
    st, schedule = o.status, o.spec.triggers.schedule
    due: list[tuple[Reason, str]] = []
    if o.retrain_request and o.retrain_request != st.handled_request:
        due.append(("manual", f"requested with modelops.dev/retrain={o.retrain_request}"))
    if ev.drift_due:
        due.append(("drift", ev.drift_due))
    if ev.performance_due:
        due.append(("performance", ev.performance_due))
    if schedule is not None and cfg.next_scheduled is not None and cfg.next_scheduled <= o.now:
        every = f"every {schedule.every}" if schedule.every else f"cron '{schedule.cron}'"
        due.append(("schedule", f"schedule ({every}) was due at {format_time(cfg.next_scheduled)}"))
    return due


def _decide(o: Observed, ev: _Evaluated, cfg: _Config, flying: list[VersionView]) -> _Step:
    """Take the first due retrain unless something holds it; write it ahead as `pending`."""
    step = _Step(next_scheduled=cfg.next_scheduled)
    due = _due(o, ev, cfg)
    if not due:
        return step
    reason, detail = due[0]
    champ = o.champion
    if hold := _hold(o, reason, champ, cfg.error, flying):
        step.notes.append(f"retrain due ({reason}) but held: {hold}")
        return step
    assert champ is not None and cfg.child_spec is not None  # _hold refuses otherwise
    st, model, now = o.status, o.spec.model, o.now
    names = {v.name for v in o.versions}
    seq = sequence(st) + 1
    while (name := child_name(model, o.uid, seq)) in names:
        seq += 1
    if others := [r for r, _ in due[1:]]:
        detail += f" (also due: {', '.join(others)})"
    trigger = Trigger(time=format_time(now), reason=reason, child=name, detail=_clip(detail))
    if needs_resolving(reason, o.spec.template):  # the next passes resolve, then create
        step.resolve = _pending_data(o, trigger, champ, cfg.child_spec).resolve
    else:
        step.child = Child(name, cfg.child_spec, trigger)
    step.decided = True
    step.patch.update(pending=trigger.wire(), sequence=seq)
    if reason == "manual":
        step.patch["handledRequest"] = o.retrain_request
    schedule = o.spec.triggers.schedule
    if schedule is not None and any(r == "schedule" for r, _ in due):  # any trigger satisfies the schedule
        step.patch["lastScheduleTime"] = format_time(now)
        step.next_scheduled = next_schedule_time(schedule, now)
    step.notes.append(f"retraining ({reason}): creating {name}")
    step.events.append(
        ("Normal", "RetrainTriggered", _clip(f"Retraining {model} as {name} ({reason}: {detail})"))
    )
    return step


def _readiness(
    o: Observed, ev: _Evaluated, cfg: _Config, step: _Step, flying: list[VersionView]
) -> tuple[str, list[Cond], list[tuple[EventType, str, str]]]:
    """Ready (and Stalled) with one message saying what the policy is doing and why."""
    champ, model, now = o.champion, o.spec.model, o.now
    notes = list(step.notes)
    if flying:
        notes.append("in flight: " + ", ".join(f"{v.name} {v.phase}" for v in flying))
    if step.next_scheduled is not None and step.next_scheduled > now:
        notes.append(f"next scheduled retrain {format_time(step.next_scheduled)}")
    tail = f"; {'; '.join(notes)}" if notes else ""
    if cfg.error:
        reason, msg = cfg.error
        prev_ready = find([c.model_dump(by_alias=True) for c in o.status.conditions], "Ready")
        events: list[tuple[EventType, str, str]] = []
        if not prev_ready or prev_ready.get("reason") != reason:
            events.append(("Warning", reason, msg))
        return msg, [Cond("Ready", "False", reason, msg), Cond("Stalled", "True", reason, msg)], events
    if champ is None:
        message = f"no champion for model {model}: nothing to evaluate or retrain from" + tail
        return message, [Cond("Ready", "False", "NoChampion", message)], []
    if ev.prom_error:
        message = f"Prometheus query failed, drift and performance cannot trigger: {ev.prom_error}" + tail
        return message, [Cond("Ready", "False", PROMETHEUS_UNREACHABLE, message)], []
    if o.spec.suspend:
        message = f"suspended: evaluating {champ.name}, never retraining" + tail
        return message, [Cond("Ready", "True", "Suspended", message)], []
    if flying or step.child is not None or step.resolve is not None:
        message = f"retraining {model} (champion {champ.name})" + tail
        return message, [Cond("Ready", "True", "Retraining", message)], []
    if (last_skip := step.skipped or _recent_skip(o)) is not None:
        message = f"{last_skip.detail}; watching {model} (champion {champ.name})" + tail
        return message, [Cond("Ready", "True", last_skip.outcome or "NoNewData", _clip(message))], []
    message = f"watching {model} (champion {champ.name})" + tail
    return message, [Cond("Ready", "True", "Watching", message)], []


def needs_resolving(reason: str, template: Template) -> bool:
    """Drift and performance retrains must prove their data is new; a template must be filled in."""
    return reason in NEEDS_NEW_DATA or is_dynamic(template.dataset_uri)


def _pending_data(o: Observed, pending: Trigger, champ: Champion, spec_for_child: ModelVersionSpec) -> _Step:
    """Create the pending child, or first resolve its data, or drop it when the data is not new.

    A decided retrain whose data is the parent's (same sha256) is not made: it would tie the
    champion, be promoted, keep the same reference bins, and the drift would stay. The decision
    is recorded as `lastSkipped` and the cooldown counts from it, so the same drift does not
    start a resolve Job every interval: new data gets its chance after the cooldown.
    """
    step = _Step()
    template = o.spec.template
    if pending.dataset_uri or not needs_resolving(pending.reason, template):
        spec = child_spec(champ, template, pending.dataset_uri) if pending.dataset_uri else spec_for_child
        step.child = Child(pending.child, spec, pending)
        step.notes.append(f"creating {pending.child} ({pending.reason})")
        return step
    res = o.resolution
    if res is None:
        uri = template.dataset_uri if is_dynamic(template.dataset_uri) else spec_for_child.data.uri
        step.resolve = Resolve(pending.child, uri or spec_for_child.data.uri, pending.time)
        step.notes.append(f"resolving the data for {pending.child} ({pending.reason})")
        return step
    if res.error:
        outcome, reason = "DatasetUnresolved", "DatasetUnresolved"
        detail = f"{pending.reason} retrain not made: its data could not be resolved: {res.error}"
    elif pending.reason in NEEDS_NEW_DATA and same_data(res, champ.dataset_digest):
        outcome, reason = "NoNewData", "NoNewData"
        detail = (
            f"{pending.reason} retrain not made: {res.uri} holds the data {champ.name} was trained on "
            f"(sha256 {(res.digest or '')[:12]}); add newer data (template.datasetUri)"
        )
    else:
        resolved = pending.model_copy(update={"dataset_uri": res.uri, "dataset_digest": res.digest})
        try:
            spec = child_spec(champ, template, res.uri)
        except ValueError as e:
            outcome, reason = "DatasetUnresolved", "DatasetUnresolved"
            detail = f"{pending.reason} retrain not made: resolved data {res.uri!r} is not usable: {_first_line(e)}"
        else:
            step.patch["pending"] = resolved.wire()
            step.child = Child(pending.child, spec, resolved)
            step.notes.append(f"creating {pending.child} ({pending.reason}) on {res.uri}")
            return step
    step.skipped = pending.model_copy(
        update={
            "outcome": outcome,
            "detail": _clip(detail),
            "dataset_uri": res.uri,
            "dataset_digest": res.digest,
        }
    )
    step.patch.update(pending=None, lastSkipped=step.skipped.wire())
    step.events.append(("Warning", reason, _clip(detail)))
    return step


def _recent_skip(o: Observed) -> Trigger | None:
    """The last skipped retrain while its cooldown lasts, and nothing was made since."""
    skip, last = o.status.last_skipped, o.status.last_trigger
    t = try_parse_time(skip.time) if skip else None
    if skip is None or t is None or o.now >= t + timedelta(seconds=seconds(o.spec.cooldown)):
        return None
    if last is not None and (lt := try_parse_time(last.time)) is not None and lt > t:
        return None
    return skip


def _hold(
    o: Observed,
    reason: Reason,
    champ: Champion | None,
    config_error: tuple[str, str] | None,
    flying: list[VersionView],
) -> str | None:
    """Why a due retrain may not start now, or None."""
    spec = o.spec
    if champ is None:
        return f"no champion for model {spec.model}"
    if config_error:
        return config_error[1]
    if spec.suspend:
        return "the policy is suspended"
    if len(flying) >= spec.max_concurrent:
        return f"{len(flying)} retrain(s) in flight, maxConcurrent {spec.max_concurrent}"
    if reason != "manual":
        until = cooldown_until(spec, o.status, o.versions)
        if until is not None and o.now < until:
            return f"cooldown until {format_time(until)}"
    return None


def _requeue(o: Observed, step: _Step, patch: Mapping[str, Any]) -> float:
    """When to look again: soon after acting, else at the next evaluation, cooldown end or schedule."""
    if step.child is not None or step.committed:
        return 1.0
    next_scheduled = step.next_scheduled
    last = try_parse_time(patch.get("lastEvaluationTime") or o.status.last_evaluation_time)
    interval = seconds(o.spec.interval)
    candidates = [interval if last is None else (last - o.now).total_seconds() + interval]
    until = cooldown_until(o.spec, o.status, o.versions)
    if until is not None and until > o.now:
        candidates.append((until - o.now).total_seconds())
    if next_scheduled is not None and next_scheduled > o.now:  # a due but held schedule waits for the rest
        candidates.append((next_scheduled - o.now).total_seconds())
    return max(1.0, min(candidates))


def _clip(text: str, limit: int = 400) -> str:
    """Keep status and Events readable when many features drift at once."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(e: Exception) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ()))
            return f"spec.{where}: {first.get('msg')}" if where else str(first.get("msg"))
        except (IndexError, TypeError, AttributeError):
            pass
    return str(e).splitlines()[0]
