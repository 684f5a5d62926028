"""What the validating webhook refuses: the API models, then the cross-field checks CEL cannot express.

Pure: a whole object in, a list of (field, message) out. Each check refuses at `kubectl apply`
something the operator, the trainer or the API server would otherwise refuse minutes later
(a metric the estimator's task never measures, a name whose Service cannot exist, a parameter
the estimator does not have). The CRD schema and CEL still refuse what they can express; this
runs the same pydantic models the operator parses with, so the two can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from modelops.api.estimators import (
    CLASSIFIER_METRICS,
    CLASSIFIER_SCORING,
    REGRESSOR_METRICS,
    REGRESSOR_SCORING,
    task_of,
)
from modelops.api.modelversion import DATASET_URI, ModelVersion, ModelVersionSpec, Range, Search
from modelops.api.retrainpolicy import RetrainPolicy, RetrainPolicySpec
from modelops.lifecycle.datasets import sample

Problem = tuple[str, str]
"""(field path as kubectl shows it, what is wrong)."""

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAME_LIMIT = 63
"""A version's name is a label value (modelops.dev/version) and its Service's name prefix."""
BOUNDED = {"accuracy": (0.0, 1.0), "precision": (0.0, 1.0), "recall": (0.0, 1.0), "f1": (0.0, 1.0),
           "roc_auc": (0.0, 1.0), "r2": (None, 1.0), "rmse": (0.0, None), "mae": (0.0, None)}  # fmt: skip
BUNDLED_TASKS = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
"""The trainer's bundled scikit-learn data sets and what their target is."""
RESERVED_MOUNTS = ("/tmp",)
"""Paths the operator's pods mount themselves: another volume there makes the Pod invalid."""


def review(kind: str, body: Mapping[str, Any], pvc_root: str = "/mnt/pvc") -> list[Problem]:
    """Everything wrong with a ModelVersion or RetrainPolicy, each naming its field."""
    if kind == "ModelVersion":
        return review_modelversion(body, pvc_root)
    if kind == "RetrainPolicy":
        return review_retrainpolicy(body)
    return []


def message(problems: list[Problem]) -> str:
    """One line for kubectl: `field: what; field: what`."""
    return "; ".join(f"{where}: {what}" for where, what in problems)


def _pydantic(error: ValidationError, prefix: str = "") -> list[Problem]:
    out = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"])
        out.append((f"{prefix}{where}" if where else prefix.rstrip(".") or "spec", e["msg"]))
    return out


def _name_problems(name: str | None, what: str) -> list[Problem]:
    if not name:
        return []  # generateName: the API server picks it, within its own rules
    if len(name) > NAME_LIMIT:
        return [
            ("metadata.name", f"{len(name)} characters; a {what} name is used as a label value: at most 63")
        ]
    if not DNS_1035.match(name):
        return [
            (
                "metadata.name",
                f"{name!r} must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter): "
                f"its Service {name}-server must be valid",
            )
        ]
    return []


def review_modelversion(body: Mapping[str, Any], pvc_root: str = "/mnt/pvc") -> list[Problem]:
    meta = body.get("metadata") or {}
    problems = _name_problems(meta.get("name"), "ModelVersion")
    try:
        mv = ModelVersion.model_validate({"spec": body.get("spec"), "metadata": meta})
    except ValidationError as e:
        return problems + _pydantic(e)
    return problems + spec_problems(mv.spec, pvc_root)


def spec_problems(spec: ModelVersionSpec, pvc_root: str = "/mnt/pvc", prefix: str = "spec.") -> list[Problem]:
    """Cross-field checks of a ModelVersion spec (also run on what a RetrainPolicy's template makes)."""
    out: list[Problem] = []
    if not DNS_1035.match(spec.model):
        out.append(
            (
                f"{prefix}model",
                f"{spec.model!r} must start with a letter: it names the model's stable Service",
            )
        )
    if spec.parent is not None and (len(spec.parent) > 253 or not DNS_SUBDOMAIN.match(spec.parent)):
        out.append((f"{prefix}parent", f"{spec.parent!r} is not a ModelVersion name"))
    t = spec.training
    if t is None:  # an imported model: its task is known only once the import Job has loaded it
        return out + _storage_problems(spec, prefix, pvc_root)
    estimator = t.estimator.class_
    task = task_of(estimator)
    fits = CLASSIFIER_METRICS if task == "classification" else REGRESSOR_METRICS
    for i, g in enumerate(spec.validation.gates):
        where = f"{prefix}validation.gates[{i}]"
        if g.metric not in fits:
            out.append((f"{where}.metric", _misfit(g.metric, estimator, task, fits)))
            continue
        low, high = BOUNDED[g.metric]
        if g.min is not None and high is not None and g.min > high:
            out.append((f"{where}.min", f"{g.metric} is at most {high:g}: a min of {g.min:g} can never pass"))
        if g.max is not None and low is not None and g.max < low:
            out.append((f"{where}.max", f"{g.metric} is at least {low:g}: a max of {g.max:g} can never pass"))
    if spec.validation.champion and spec.validation.champion.metric not in fits:
        metric = spec.validation.champion.metric
        out.append((f"{prefix}validation.champion.metric", _misfit(metric, estimator, task, fits)))
    out += _dataset_problems(t.dataset, f"{prefix}training.dataset", task, estimator)
    golden = spec.validation.dataset
    if golden is not None and spec.validation.champion is None:
        out.append((f"{prefix}validation.dataset", "a golden set is only scored for validation.champion"))
    elif golden is not None and golden.uri.startswith("sklearn:"):
        out += _dataset_problems(golden, f"{prefix}validation.dataset", task, estimator)
    out += _params_problems(estimator, t.estimator.params, f"{prefix}training.estimator.params")
    if t.search is not None:
        out += search_problems(t.search, estimator, t.estimator.params, f"{prefix}training.search")
    return out + _storage_problems(spec, prefix, pvc_root)


def _storage_problems(spec: ModelVersionSpec, prefix: str, pvc_root: str) -> list[Problem]:
    out: list[Problem] = []
    mount = spec.storage.mount_path.rstrip("/") or "/"
    for reserved in (*RESERVED_MOUNTS, pvc_root):
        if mount in ("/", reserved) or mount.startswith(reserved + "/") or reserved.startswith(mount + "/"):
            out.append(
                (
                    f"{prefix}storage.mountPath",
                    f"{spec.storage.mount_path} overlaps {reserved}, which pods mount",
                )
            )
    return out


def _misfit(metric: str, estimator: str, task: str, fits: tuple[str, ...]) -> str:
    return f"{metric} is not measured for {estimator} (a {task} estimator); use one of {', '.join(fits)}"


def _dataset_problems(ds: Any, where: str, task: str, estimator: str) -> list[Problem]:
    out: list[Problem] = []
    if ds.uri.startswith("sklearn:"):
        name = ds.uri[len("sklearn:") :]
        if name not in BUNDLED_TASKS:
            out.append(
                (f"{where}.uri", f"unknown sklearn data set {name!r}; one of {', '.join(BUNDLED_TASKS)}")
            )
        elif BUNDLED_TASKS[name] != task:
            out.append(
                (
                    f"{where}.uri",
                    f"sklearn:{name} is a {BUNDLED_TASKS[name]} data set; {estimator} does {task}",
                )
            )
    elif not ds.target:
        out.append((f"{where}.target", "required for pvc:// and file:// data sets"))
    features = ds.features or []
    if ds.target and ds.target in features:
        out.append((f"{where}.features", f"the target {ds.target!r} is also listed as a feature"))
    if len(set(features)) != len(features):
        twice = sorted({f for f in features if features.count(f) > 1})
        out.append((f"{where}.features", f"lists {', '.join(twice)} more than once"))
    if ds.features is not None:
        stray = [c for c in ds.categorical if c not in features]
        if stray:
            out.append((f"{where}.categorical", f"{', '.join(stray)} not among the features"))
    if ds.target and ds.target in ds.categorical:
        out.append((f"{where}.categorical", f"the target {ds.target!r} cannot be a categorical feature"))
    # Here, not in CEL: over two unbounded string lists the rule's estimated cost is above the
    # API server's budget. The trainer refuses the same overlap, for objects made without the webhook.
    used = [c for c in getattr(ds, "exclude", []) if c == ds.target or c in features or c in ds.categorical]
    if used:
        out.append(
            (f"{where}.exclude", f"drops {', '.join(used)}, which the target, features or categorical use")
        )
    return out


def _params_problems(estimator: str, params: Mapping[str, Any], where: str) -> list[Problem]:
    """Parameter names and values as scikit-learn itself checks them (its own constraints)."""
    from modelops.trainer.estimators import estimator_class

    cls = estimator_class(estimator)
    valid = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        return [(f"{where}.{k}", f"not a parameter of {estimator}") for k in unknown]
    try:
        cls(**params)._validate_params()
    except (ValueError, TypeError) as e:  # sklearn's InvalidParameterError is a ValueError
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        key = next((k for k in params if f"'{k}'" in text), None)
        return [(f"{where}.{key}" if key else where, text)]
    return []


def search_problems(search: Search, estimator: str, params: Mapping[str, Any], where: str) -> list[Problem]:
    """The search space against the estimator's own parameters, value by value as scikit-learn
    checks them, and a scorer that fits the estimator's task."""
    from modelops.trainer.estimators import estimator_class

    out: list[Problem] = []
    task = task_of(estimator)
    fits = CLASSIFIER_SCORING if task == "classification" else REGRESSOR_SCORING
    if search.scoring is not None and search.scoring not in fits:
        out.append(
            (
                f"{where}.scoring",
                f"{search.scoring} does not score {estimator} (a {task} estimator); use one of {', '.join(fits)}",
            )
        )
    cls = estimator_class(estimator)
    valid = cls().get_params(deep=False)
    for name, values in search.space.items():
        at = f"{where}.space.{name}"
        if name not in valid:
            out.append((at, f"not a parameter of {estimator}"))
            continue
        if isinstance(values, Range):
            tries = [("low", values.low), ("high", values.high)]
            if values.type == "int":
                tries = [(k, int(v)) for k, v in tries]
            labelled = [(f"{at}.{k}", v) for k, v in tries]
        else:
            labelled = [(f"{at}[{i}]", v) for i, v in enumerate(values)]
        for field, value in labelled:
            try:
                cls(**{**params, name: value})._validate_params()
            except (ValueError, TypeError) as e:
                text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                out.append((field, text))
                break  # one value per parameter is enough to say what is wrong
    return out


def review_retrainpolicy(body: Mapping[str, Any]) -> list[Problem]:
    from modelops.drift.promql import seconds

    meta = body.get("metadata") or {}
    try:
        rp = RetrainPolicy.model_validate({"spec": body.get("spec"), "metadata": meta})
    except ValidationError as e:
        return _pydantic(e)
    spec: RetrainPolicySpec = rp.spec
    out: list[Problem] = []
    if not DNS_1035.match(spec.model):
        out.append(
            ("spec.model", f"{spec.model!r} must start with a letter: it names the model's stable Service")
        )
    for field in ("interval", "window", "cooldown"):
        if seconds(getattr(spec, field)) <= 0:
            out.append((f"spec.{field}", "must be longer than 0s"))
    perf = spec.triggers.performance
    if perf is not None:
        where = "spec.triggers.performance"
        if perf.metric == "accuracy" and perf.ceiling is not None:
            out.append((f"{where}.ceiling", "accuracy falls when a model decays: use floor"))
        if perf.metric == "mae" and perf.floor is not None:
            out.append((f"{where}.floor", "mae rises when a model decays: use ceiling"))
        if perf.metric == "accuracy" and perf.floor is not None and not 0 < perf.floor <= 1:
            out.append(
                (f"{where}.floor", f"accuracy is between 0 and 1; {perf.floor:g} never or always fires")
            )
    sched = spec.triggers.schedule
    if sched is not None:
        if sched.cron is not None:
            from croniter import croniter

            if not croniter.is_valid(sched.cron):
                out.append(("spec.triggers.schedule.cron", f"{sched.cron!r} is not a cron expression"))
        if sched.every is not None and seconds(sched.every) <= 0:
            out.append(("spec.triggers.schedule.every", "must be longer than 0s"))
    drift = spec.triggers.drift
    if drift is not None and drift.features is not None and len(set(drift.features)) != len(drift.features):
        out.append(("spec.triggers.drift.features", "lists a feature more than once"))
    tpl = spec.template
    # A template (time fields, a folder) is checked by a concrete URI of its shape, as the policy does.
    if tpl.dataset_uri is not None and not re.match(DATASET_URI, sample(tpl.dataset_uri)):
        out.append(
            (
                "spec.template.datasetUri",
                f"{tpl.dataset_uri!r} is not a pvc://, file://, s3://, https:// or sklearn: data set",
            )
        )
    if tpl.spec:
        known = set(ModelVersionSpec.model_fields) | {
            f.alias for f in ModelVersionSpec.model_fields.values() if f.alias
        }
        for key in tpl.spec:
            if key in ("model", "parent"):
                out.append(
                    (f"spec.template.spec.{key}", "set by the policy for every child; cannot be overridden")
                )
            elif key not in known:
                out.append((f"spec.template.spec.{key}", "not a ModelVersion spec field"))
    return out
