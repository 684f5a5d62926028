"""Governance at training time: explanations, fairness per group, lineage and the model card.

- Explanations are scikit-learn's own permutation importance on the held-out split, measured on
  the whole pipeline, so a one-hot encoded column counts as the one input feature it came from.
- Fairness uses fairlearn's `MetricFrame` (the maintained library for disaggregated metrics):
  one frame per sensitive feature, its per-group values and `difference(between_groups)`. The
  gate itself is the planner's (pure, in lifecycle/modelversion.py): the trainer measures.
- The card is written from what the run actually did; nothing in it is typed in twice.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pandas as pd

from modelops.api.modelversion import Card, Fairness

from .errors import BadInput

TOP_FEATURES = 10
MAX_GROUPS = 20
RATE_METRICS = ("selection_rate", "true_positive_rate", "false_positive_rate")


def permutation_importance(
    pipeline: Any,
    X_test: np.ndarray,
    y_test: np.ndarray,
    features: list[str],
    seed: int,
    classification: bool,
) -> dict[str, Any]:
    """Every feature's importance, most important first (the drop of the default score)."""
    from sklearn.inspection import permutation_importance as pi

    result = pi(pipeline, X_test, y_test, n_repeats=5, random_state=seed, n_jobs=1)
    ranked = sorted(
        (
            {"feature": f, "importance": round(float(m), 6), "std": round(float(s), 6)}
            for f, m, s in zip(features, result.importances_mean, result.importances_std, strict=True)
        ),
        key=lambda r: (-r["importance"], r["feature"]),
    )
    return {"method": "permutation", "scoring": "accuracy" if classification else "r2", "top": ranked}


def fairness_table(
    spec: Fairness, y_true: np.ndarray, y_pred: np.ndarray, groups: pd.DataFrame, classes: list[Any] | None
) -> dict[str, Any]:
    """Per sensitive feature: the metric on each group of the held-out rows and the largest gap."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, mean_absolute_error

    classification = classes is not None
    if spec.metric == "mae" and classification:
        raise BadInput(
            "validation.fairness.metric mae needs a regressor; use accuracy or a rate for a classifier"
        )
    if spec.metric != "mae" and not classification:
        raise BadInput(
            f"validation.fairness.metric {spec.metric} needs a classifier; use mae for a regressor"
        )
    if spec.metric in RATE_METRICS and len(classes or []) != 2:
        raise BadInput(
            f"validation.fairness.metric {spec.metric} needs a binary classifier; the target has "
            f"{len(classes or [])} classes (use accuracy)"
        )
    fns: dict[str, Any] = {
        "accuracy": accuracy_score,
        "mae": mean_absolute_error,
        "selection_rate": selection_rate,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
    }
    fn = fns[spec.metric]
    if spec.metric in RATE_METRICS:
        fn = functools.partial(fn, pos_label=(classes or [])[-1])  # the positive class: the last, as in f1
    table: list[dict[str, Any]] = []
    differences: dict[str, float] = {}
    for feature in spec.sensitive_features:
        column = groups[feature].astype(str).to_numpy()
        n_groups = len(set(column))
        if n_groups > MAX_GROUPS:
            raise BadInput(
                f"sensitive feature {feature!r} has {n_groups} groups in the held-out rows (at most "
                f"{MAX_GROUPS}); bin it into a few groups first"
            )
        frame = MetricFrame(
            metrics={"value": fn, "count": count}, y_true=y_true, y_pred=y_pred, sensitive_features=column
        )
        by_group = frame.by_group
        for group, row in by_group.iterrows():
            value = float(row["value"])
            table.append(
                {
                    "feature": feature,
                    "group": str(group),
                    "value": round(value, 6) if np.isfinite(value) else None,
                    "count": int(row["count"]),
                }
            )
        diff = float(frame.difference(method="between_groups")["value"])
        differences[feature] = round(diff, 6) if np.isfinite(diff) else 0.0
    return {
        "metric": spec.metric,
        "groups": table,
        "differences": differences,
        "usedForTraining": spec.used_for_training,
    }


def lineage(parent: str | None, parent_meta: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Back to the first ancestor: the parent's own lineage, after the parent."""
    if not parent:
        return []
    if parent_meta is None:
        return [{"version": parent, "note": "the parent's artifact metadata was not found"}]
    me = {
        "version": parent,
        "datasetDigest": parent_meta.get("datasetDigest"),
        "sha256": (parent_meta.get("artifact") or {}).get("sha256"),
        "metrics": parent_meta.get("metrics"),
    }
    return [me, *(parent_meta.get("lineage") or [])]


def card(
    *,
    model: str,
    version: str,
    spec_card: Card | None,
    metadata: dict[str, Any],
    sensitive_unused: list[str],
) -> dict[str, Any]:
    """The model card as JSON; `card_markdown` renders the same facts for people."""
    c = spec_card or Card()
    q = metadata.get("dataQuality")
    features = [
        {"name": f["name"], "dtype": f["dtype"], "usedForTraining": True} for f in metadata["features"]
    ] + [{"name": n, "dtype": "category", "usedForTraining": False} for n in sensitive_unused]
    return {
        "schemaVersion": 1,
        "model": model,
        "version": version,
        "owner": c.owner,
        "description": c.description,
        "intendedUse": c.intended_use,
        "limitations": list(c.limitations),
        "task": metadata["task"],
        "estimator": metadata["estimator"],
        "dataset": {
            "uri": metadata["dataset"]["uri"],
            "sha256": metadata["datasetDigest"],
            "rows": metadata["rows"],
            "excludedColumns": metadata.get("excludedColumns", 0),
        },
        "target": metadata["target"],
        "classes": metadata.get("classes"),
        "features": features,
        "metrics": metadata.get("evaluation", {"test": metadata["metrics"]}),
        "dataQuality": None
        if q is None
        else {
            "passed": q["passed"],
            "checks": len(q["checks"]),
            "failed": sum(1 for x in q["checks"] if not x["passed"]),
            "droppedRows": q.get("droppedRows", 0),
            "parent": q.get("parent"),
        },
        "parameters": metadata.get("params"),
        "search": _search_card(metadata.get("search")),
        "explanations": metadata.get("explanations"),
        "fairness": metadata.get("fairness"),
        "lineage": metadata.get("lineage", []),
        "artifact": metadata["artifact"],
        "trainedAt": metadata["finishedAt"],
    }


def _search_card(search: dict[str, Any] | None) -> dict[str, Any] | None:
    """The search summary a card carries: how, how wide, and what won (the table is search.json)."""
    if not search:
        return None
    keys = ("method", "scoring", "cv", "candidates", "shards", "bestParams", "bestScore", "bestStd", "table")
    return {k: search.get(k) for k in keys}


def card_markdown(card: dict[str, Any]) -> str:
    def val(x: Any) -> str:
        return "—" if x in (None, "", []) else str(x)

    out = [f"# Model card: {card['model']} / {card['version']}", ""]
    out += [
        f"- **Owner:** {val(card['owner'])}",
        f"- **Description:** {val(card['description'])}",
        f"- **Intended use:** {val(card['intendedUse'])}",
        f"- **Task:** {card['task']} with {card['estimator']}",
        f"- **Trained at:** {card['trainedAt']}",
        f"- **Artifact:** `{card['artifact']['uri']}` (sha256 `{card['artifact']['sha256']}`)",
        "",
        "## Limitations",
        "",
    ]
    out += [f"- {x}" for x in card["limitations"]] or ["—"]
    d = card["dataset"]
    out += [
        "",
        "## Data",
        "",
        f"- **Dataset:** `{d['uri']}` (sha256 `{d['sha256']}`)",
        f"- **Rows:** {d['rows'].get('total')} ({d['rows'].get('train')} train, {d['rows'].get('test')} test)",
        f"- **Target:** {card['target']}"
        + (f" (classes: {', '.join(map(str, card['classes']))})" if card["classes"] else ""),
        f"- **Columns excluded before anything was stored:** {d['excludedColumns']}",
        "",
        "| feature | type | used for training |",
        "|---|---|---|",
    ]
    out += [
        f"| {f['name']} | {f['dtype']} | {'yes' if f['usedForTraining'] else 'no (evaluation only)'} |"
        for f in card["features"]
    ]
    out += ["", "## Metrics", "", "| set | " + " | ".join(sorted(card["metrics"]["test"])) + " |"]
    out += ["|---|" + "---|" * len(card["metrics"]["test"])]
    for name, values in card["metrics"].items():
        out.append(
            f"| {name} | "
            + " | ".join(f"{values.get(k, float('nan')):.4g}" for k in sorted(card["metrics"]["test"]))
            + " |"
        )
    q = card["dataQuality"]
    out += ["", "## Data quality", ""]
    out += (
        ["not checked (spec.training.dataQuality not set)"]
        if q is None
        else [
            f"{'passed' if q['passed'] else 'FAILED'}: {q['checks']} check(s), {q['failed']} failed, "
            f"{q['droppedRows']} row(s) dropped"
            + (f"; compared with parent {q['parent']}" if q["parent"] else "")
        ]
    )
    s = card.get("search")
    out += ["", "## Hyperparameter search", ""]
    out += (
        ["none (spec.training.search not set)"]
        if not s
        else [
            f"{s['method']} search over {s['candidates']} candidate(s) in {s['shards']} Job index(es), "
            f"{s['cv']}-fold cross-validation on the training split, scored by {s['scoring']}.",
            "",
            f"- **Best parameters:** `{json.dumps(s['bestParams'], sort_keys=True)}`",
            f"- **Best CV score:** {s['bestScore']:.4g} ± {s['bestStd']:.2g}",
            f"- **All trials:** `{s['table']}`",
        ]
    )
    e = card["explanations"]
    out += ["", "## Explanations", ""]
    if e:
        out += [f"Permutation importance on the held-out split ({e['scoring']} drop):", ""]
        out += ["| feature | importance | std |", "|---|---|---|"]
        out += [
            f"| {t['feature']} | {t['importance']:.4f} | {t['std']:.4f} |" for t in e["top"][:TOP_FEATURES]
        ]
    else:
        out.append("—")
    f = card["fairness"]
    out += ["", "## Fairness", ""]
    if f:
        out += [f"Metric `{f['metric']}` per group on the held-out split:", ""]
        out += ["| sensitive feature | group | value | rows |", "|---|---|---|---|"]
        out += [f"| {g['feature']} | {g['group']} | {val(g['value'])} | {g['count']} |" for g in f["groups"]]
        out += [""] + [f"- largest difference for {k}: {v:.4g}" for k, v in f["differences"].items()]
    else:
        out.append("not evaluated (spec.validation.fairness not set)")
    out += ["", "## Lineage", ""]
    out += [f"- {a['version']} (model sha256 `{val(a.get('sha256'))}`)" for a in card["lineage"]] or [
        "first version (no parent)"
    ]
    return "\n".join(out) + "\n"
